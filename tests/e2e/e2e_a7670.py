# A SIMCom A7670E as the firmware sees it over its UART, byte for byte, for
# the end-to-end lane (MicroPython VM) and the firmware tests (both
# interpreters). Written from the A76XX Series AT Command Manual (V1.09):
# power on by PWRKEY (>= 50 ms low; >= 2.5 s powers it off), boot URCs
# (*ATREADY: 1, +CPIN: READY, SMS DONE, PB DONE), echo until ATE0, the status,
# network and SMS commands the driver uses, and the SSL client (AT+CCH*) in
# manual-receive mode: data waits in the module, +CCHEVENT: <id>,RECV EVENT
# says so and AT+CCHRECV fetches it.
#
# Behind the CCH client sits the network: `network.connect(host, port)`
# returns a server object, or None for a host that does not answer. HTTP/1.1
# requests are cut out of the byte stream by Content-Length and handed to
# `server.request(head, body) -> (response bytes, tag)`; each answer arrives
# after the round trip and the link's transfer time, and once its last byte
# has reached the device's UART the module calls `server.delivered(tag)`.
#
# Timing (ms) is that of a registered LTE Cat-1 module; it only has to be
# plausible, the firmware must cope with any of it.
from e2e_world import Line

BOOT_MS = 12000  # PWRKEY released -> *ATREADY: 1
SIM_MS = 1500  # *ATREADY -> +CPIN: READY
REGISTER_MS = 3000  # SIM ready or radio on -> registered
CMD_MS = 15  # a simple command's answer
START_MS = 200  # AT+CCHSTART: PDP context already up on LTE
CONNECT_MS = 150  # DNS and TCP connect, beyond one round trip
TLS_MS = 350  # the module's TLS handshake work, beyond its two round trips
RTT_MS = 80
UPLINK_BPS = 1000000
DOWNLINK_BPS = 5000000
CFUN_OFF_MS = 800
CFUN_ON_MS = 300
SMS_MS = 2500
RECV_MAX = 1500  # bytes per AT+CCHRECV answer

# +CCHOPEN / +CCHSTART result codes (A76XX manual, SSL result codes)
ERR_NETWORK = 9
ERR_DNS = 13
ERR_HANDSHAKE = 15


def _args(text):
    """Comma-separated arguments, quotes kept out: 0,"host",443 -> ['0', 'host', '443']."""
    out = []
    cur = ""
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return [a.strip() for a in out]


def _int(s, default=-1):
    try:
        return int(s)
    except ValueError:
        return default


class _Conn:
    def __init__(self, server, tls, authenticated):
        self.server = server
        self.tls = tls
        self.authenticated = authenticated
        self.open = False
        self.up = bytearray()  # request bytes that reached the server, not yet a whole request
        self.cache = bytearray()  # answer bytes waiting in the module
        self.down_total = 0  # answer bytes that reached the module so far
        self.taken_total = 0  # ... and that went on to the device
        self.marks = []  # (down_total at the end of an answer, its tag)
        self.up_free_us = 0
        self.requests = 0


class A7670:
    def __init__(self, world, network, certs=("ca.pem",), baud=115200):
        self.world = world
        self.network = network
        self.certs = tuple(certs)  # CA certificates stored in the module (AT+CCERTDOWN)
        self.baud = baud
        self.line = None
        self.power = "off"  # off, booting, on
        self._pressed_us = None
        self.power_ons = 0
        self.power_offs = 0
        self.commands = []  # every command line received (for the report)
        self.sms = []  # (t_ms, hex PDU)
        self.unauthenticated_opens = 0
        self.certs_downloaded = 0
        self.opens = 0
        self._gen = 0  # bumps at every power change: events of an older life are void
        self._reset()

    def _reset(self):
        self.echo = True
        self.creg_n = 0
        self.cereg_n = 0
        self.radio = False
        self.sim_ready = False
        self.reg = 0
        self.started = False
        self.recv_manual = False
        self.ssl = {"authmode": "0", "cacert": None, "sslversion": "4", "enableSNI": "0",
                    "ignorelocaltime": "1"}  # the module's defaults (A76XX manual 19.2.1)
        self.conn = None
        self._mode = "cmd"
        self._buf = bytearray()
        self._need = 0
        self._done = None

    # -- wiring ----------------------------------------------------------------
    def uart(self, baud, rxbuf=256, txbuf=256):
        """The device's UART to the module (machine.UART(...) gives this)."""
        if baud != self.baud:
            raise ValueError("modem UART at %d baud, the module runs at %d" % (baud, self.baud))
        self.line = Line(self.world, baud, rxbuf=rxbuf, txbuf=txbuf, peer=self)
        return self.line

    def pwrkey(self, level):
        """PWRKEY line, 1 = pressed (pulled low through the transistor)."""
        now = self.world.device_now_us()
        if level:
            if self._pressed_us is None:
                self._pressed_us = now
            return
        if self._pressed_us is None:
            return
        held_ms = (now - self._pressed_us) // 1000
        self._pressed_us = None
        if self.power == "off" and held_ms >= 50:
            self._power_on()
        elif self.power != "off" and held_ms >= 2500:
            self._power_off(urc=True)

    def registered(self):
        return self.reg in (1, 5)

    # -- power -----------------------------------------------------------------
    def _power_on(self):
        self._gen += 1
        self.power = "booting"
        self.power_ons += 1
        self._reset()
        self._later(BOOT_MS, self._booted)

    def _booted(self):
        self.power = "on"
        self.radio = True
        self._send_line("*ATREADY: 1")
        self._later(SIM_MS, self._sim_up)

    def _sim_up(self):
        if self.power != "on":
            return
        self.sim_ready = True
        self._send_line("+CPIN: READY")
        self._send_line("SMS DONE")
        self._send_line("PB DONE")
        self._radio_up()

    def _radio_up(self):
        if self.radio and self.sim_ready and not self.registered():
            self._set_reg(2)
            self._later(REGISTER_MS, self._set_reg, 1)

    def _set_reg(self, stat):
        if self.power != "on" or (stat == 1 and not self.radio):
            return
        self.reg = stat
        if self.cereg_n:
            self._send_line("+CEREG: %d" % stat)
        if self.creg_n:
            self._send_line("+CREG: %d" % stat)

    def _power_off(self, urc):
        if urc and self.power == "on":
            self._send_line("NORMAL POWER DOWN")
        self._gen += 1
        self.power = "off"
        self.power_offs += 1
        self._reset()

    # -- output ------------------------------------------------------------------
    def _later(self, ms, fn, *args):
        self.world.after_ms(ms, self._if_alive, self._gen, fn, args)

    def _if_alive(self, gen, fn, args):
        if gen == self._gen:
            fn(*args)

    def _send(self, data):
        if self.line is not None and self.power != "off":
            self.line.send(data)

    def _send_line(self, text):
        self._send(b"\r\n" + text.encode() + b"\r\n")

    def _answer(self, *lines, delay=CMD_MS, final="OK"):
        out = b""
        for text in lines:
            out += b"\r\n" + text.encode() + b"\r\n"
        if final:
            out += b"\r\n" + final.encode() + b"\r\n"
        self._later(delay, self._send, out)

    def _error(self, code=None):
        self._answer(final="ERROR" if code is None else "+CME ERROR: %d" % code)

    # -- input from the device -----------------------------------------------------
    def received(self, data):
        if self.power != "on":
            return  # a module that is off or still booting hears nothing
        i = 0
        n = len(data)
        while i < n:
            if self._mode == "data":
                k = min(self._need, n - i)
                self._buf += data[i:i + k]
                self._need -= k
                i += k
                if not self._need:
                    self._mode = "cmd"
                    done, self._done = self._done, None
                    payload = bytes(self._buf)
                    self._buf = bytearray()
                    done(payload)
                continue
            if self._mode == "pdu":
                c = data[i]
                i += 1
                if c in (0x1A, 0x1B):  # Ctrl-Z sends, ESC abandons
                    self._mode = "cmd"
                    pdu = bytes(self._buf)
                    self._buf = bytearray()
                    if c == 0x1A:
                        self.sms.append((self.world.ms(), pdu))
                        self._answer("+CMGS: %d" % len(self.sms), delay=SMS_MS)
                else:
                    self._buf.append(c)
                continue
            c = data[i]
            i += 1
            if c == 13:
                line = bytes(self._buf).strip()
                self._buf = bytearray()
                if line:
                    if self.echo:
                        self._send(line + b"\r")
                    self._command(line.decode())
            elif c != 10:
                self._buf.append(c)

    def _expect(self, nbytes, prompt, done):
        self._mode = "data"
        self._need = nbytes
        self._buf = bytearray()
        self._done = done
        self._send(prompt)

    def _command(self, text):
        self.commands.append(text)
        up = text.upper()
        if not up.startswith("AT"):
            self._error()
            return
        body = text[2:]
        name, op, args = body, "", ""
        for sep in ("=?", "?", "="):
            pos = body.find(sep)
            if pos >= 0 and (not op or pos < len(name)):
                name, op, args = body[:pos], sep, body[pos + len(sep):]
        name = name.upper()
        if name in ("E0", "E1", "E"):
            self.echo = name == "E1"
            self._answer()
            return
        handler = getattr(self, "_at_" + name.replace("+", "").lower(), None) if name else self._at_
        if handler is None:
            self._error()
            return
        handler(op, _args(args) if args else [])

    # -- status and network ------------------------------------------------------
    def _at_(self, op, a):
        self._answer()

    def _at_cmee(self, op, a):
        self._answer()

    def _at_cpsms(self, op, a):
        # 3GPP PSM requested (TS 27.007 7.38): accepted; the stand-in never sleeps, so a
        # device here pays no wake-up (the simulator's virtual modem models that)
        self._answer() if op == "=" and a and a[0] in ("0", "1", "2") else self._error()

    def _at_cmgf(self, op, a):
        self._answer() if a == ["0"] else self._error()

    def _at_creg(self, op, a):
        self._reg_cmd(op, a, "CREG")

    def _at_cereg(self, op, a):
        self._reg_cmd(op, a, "CEREG")

    def _reg_cmd(self, op, a, kind):
        attr = "creg_n" if kind == "CREG" else "cereg_n"
        if op == "?":
            self._answer("+%s: %d,%d" % (kind, getattr(self, attr), self.reg))
        elif op == "=" and a and a[0] in ("0", "1", "2"):
            setattr(self, attr, int(a[0]))
            self._answer()
        else:
            self._error()

    def _at_cpin(self, op, a):
        if op != "?":
            self._error()
        elif self.sim_ready:
            self._answer("+CPIN: READY")
        else:
            self._error(14)  # SIM busy: still starting

    def _at_csq(self, op, a):
        self._answer("+CSQ: %d,99" % (20 if self.radio else 99))

    def _at_cgdcont(self, op, a):
        self._answer()

    def _at_cfun(self, op, a):
        if op == "=" and a and a[0] == "0":
            self.radio = False
            self.reg = 0
            self.started = False
            self.conn = None
            self._answer(delay=CFUN_OFF_MS)
        elif op == "=" and a and a[0] == "1":
            self.radio = True
            self._answer(delay=CFUN_ON_MS)
            self._later(CFUN_ON_MS, self._radio_up)
        else:
            self._error()

    def _at_cpof(self, op, a):
        self._answer()
        self._later(CMD_MS + 1, self._power_off, True)

    def _at_cmgs(self, op, a):
        if op != "=" or not a:
            self._error()
            return
        self._mode = "pdu"
        self._buf = bytearray()
        self._send(b"\r\n> ")

    def _at_cmgd(self, op, a):
        self._answer()

    # -- the SSL client ------------------------------------------------------------
    def _at_cchset(self, op, a):
        if op == "=" and len(a) == 2:
            self.recv_manual = a[1] == "1"
            self._answer()
        else:
            self._error()

    def _at_csslcfg(self, op, a):
        if op == "=" and len(a) == 3 and a[0] in self.ssl:
            self.ssl[a[0]] = a[2]
            self._answer()
        else:
            self._error()

    def _at_ccertdown(self, op, a):
        # AT+CCERTDOWN=<filename>,<len>, ">" prompt, exactly <len> bytes, OK; the
        # module keeps its certificates in its own flash, across power cycles
        n = _int(a[1]) if len(a) == 2 else -1
        if op != "=" or not a[0] or not 1 <= n <= 10240:
            self._error()
            return
        self._expect(n, b"\r\n>", lambda data: self._cert_stored(a[0]))

    def _cert_stored(self, name):
        if name not in self.certs:
            self.certs = self.certs + (name,)
        self.certs_downloaded += 1
        self._answer()

    def _at_cchsslcfg(self, op, a):
        self._answer()

    def _at_cchstart(self, op, a):
        if self.started:
            self._error()
            return
        self._answer()
        if self.registered():
            self.started = True
            self._later(START_MS, self._send_line, "+CCHSTART: 0")
        else:
            self._later(START_MS, self._send_line, "+CCHSTART: %d" % ERR_NETWORK)

    def _at_cchstop(self, op, a):
        self.started = False
        self.conn = None
        self._answer()
        self._later(2 * CMD_MS, self._send_line, "+CCHSTOP: 0")

    def _at_cchopen(self, op, a):
        if op != "=" or len(a) < 3 or a[0] != "0" or not self.started or self.conn is not None:
            self._error()
            return
        host, port = a[1], _int(a[2])
        tls = (a[3] if len(a) > 3 else "2") == "2"
        self._answer()
        server = self.network.connect(host, port) if self.registered() else None
        if server is None:
            self._later(CONNECT_MS + RTT_MS, self._send_line, "+CCHOPEN: 0,%d" % ERR_DNS)
            return
        took = CONNECT_MS + RTT_MS
        authenticated = False
        if tls:
            took += TLS_MS + 2 * RTT_MS
            if self.ssl["authmode"] == "1":
                if self.ssl["cacert"] not in self.certs or self.ssl["cacert"] != server.ca:
                    self._later(took, self._send_line, "+CCHOPEN: 0,%d" % ERR_HANDSHAKE)
                    return
                authenticated = True
        self.opens += 1
        if tls and not authenticated:
            self.unauthenticated_opens += 1
        self.conn = conn = _Conn(server, tls, authenticated)
        self._later(took, self._opened, conn)

    def _opened(self, conn):
        if self.conn is conn:
            conn.open = True
            conn.up_free_us = self.world.now_us
            self._send_line("+CCHOPEN: 0,0")

    def _at_cchsend(self, op, a):
        conn = self.conn
        n = _int(a[1]) if len(a) > 1 else -1
        if op != "=" or a[0] != "0" or conn is None or not conn.open or not 1 <= n <= 2048:
            self._error()
            return
        self._expect(n, b"\r\n>", self._sent)

    def _sent(self, data):
        conn = self.conn
        self._answer()
        if conn is None:
            return
        w = self.world
        start = conn.up_free_us if conn.up_free_us > w.now_us else w.now_us
        conn.up_free_us = start + len(data) * 8 * 1000000 // UPLINK_BPS
        w.at(conn.up_free_us + RTT_MS * 500, self._at_server, conn, data)

    def _at_server(self, conn, data):
        conn.up += data
        while True:
            end = conn.up.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(conn.up[:end + 4])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = _int(line[15:].strip().decode(), 0)
            if len(conn.up) < end + 4 + length:
                return
            body = bytes(conn.up[end + 4:end + 4 + length])
            conn.up = conn.up[end + 4 + length:]
            conn.requests += 1
            answer, tag = conn.server.request(head, body)
            delay_us = RTT_MS * 500 + len(answer) * 8 * 1000000 // DOWNLINK_BPS
            self.world.at(self.world.now_us + delay_us, self._if_alive, self._gen, self._downlink,
                          (conn, answer, tag))

    def _downlink(self, conn, data, tag):
        if self.conn is not conn:
            return
        was_empty = not conn.cache
        conn.cache += data
        conn.down_total += len(data)
        conn.marks.append((conn.down_total, tag))
        if not self.recv_manual:
            self._push(conn)
        elif was_empty:
            self._send_line("+CCHEVENT: 0,RECV EVENT")

    def _take(self, conn, room):
        take = bytes(conn.cache[:min(room, RECV_MAX)])
        conn.cache = conn.cache[len(take):]
        conn.taken_total += len(take)
        tags = []
        while conn.marks and conn.marks[0][0] <= conn.taken_total:
            tags.append(conn.marks.pop(0)[1])
        return take, tags

    def _send_tagged(self, conn, out, tags):
        self._send(out)
        if tags and self.line is not None:
            for tag in tags:
                self.world.at(self.line.drained_us(), conn.server.delivered, tag)

    def _push(self, conn):
        while conn.cache:
            take, tags = self._take(conn, RECV_MAX)
            self._send_tagged(conn, b"\r\n+CCHRECV: DATA,0,%d\r\n" % len(take) + take, tags)

    def _at_cchrecv(self, op, a):
        conn = self.conn
        room = _int(a[1]) if len(a) > 1 else RECV_MAX
        if op != "=" or not a or a[0] != "0" or conn is None or room <= 0:
            self._error()
            return
        take, tags = self._take(conn, room)
        out = b"\r\nOK\r\n"
        if take:
            out += b"\r\n+CCHRECV: DATA,0,%d\r\n" % len(take) + take
        out += b"\r\n+CCHRECV: 0,0\r\n"
        if conn.cache:
            out += b"\r\n+CCHEVENT: 0,RECV EVENT\r\n"
        self._later(CMD_MS, self._send_tagged, conn, out, tags)

    def _at_cchclose(self, op, a):
        if op != "=" or not a or a[0] != "0" or self.conn is None:
            self._error()
            return
        self.conn = None
        self._answer()
        self._later(CMD_MS + RTT_MS // 2, self._send_line, "+CCHCLOSE: 0,0")


class Network:
    """Host names the module can reach: {(host, port): server}."""

    def __init__(self, servers):
        self.servers = dict(servers)

    def connect(self, host, port):
        return self.servers.get((host, port))
