"""The SSL client's commands (A76XX AT Command Manual V1.09, chapter 19): AT+CSSLCFG,
AT+CCERTDOWN, AT+CCHSET, AT+CCHSTART / CCHSTOP, AT+CCHSSLCFG, AT+CCHOPEN,
AT+CCHSEND, AT+CCHRECV, AT+CCHCLOSE. handler(modem, op, args) as in
simulator.vmodem.commands; the sockets behind them are simulator.vmodem.connections.

What the module does, as modelled here:
- AT+CCHSET only before AT+CCHSTART (19.2.5: ERROR while the service runs);
- AT+CCHSTART: OK then `+CCHSTART: 0`; ERROR alone when it already runs; `ERROR`
  then `+CCHSTART: <err>` when the network fails (19.2.7): 17 without registration,
  9 when the PDP context cannot be activated (data down, an APN the network refuses);
- a session exists from AT+CCHOPEN until AT+CCHCLOSE, AT+CCHSTOP or a stop of the
  service: a server close (+CCH_PEER_CLOSED) or a receive failure (+CCH_RECV_CLOSED)
  ends sending, not the session, and AT+CCHOPEN on a held session is refused;
- in manual receive mode (AT+CCHSET=...,1) data is cached, `+CCHEVENT: <id>,RECV EVENT`
  says that *new* data arrived (19.4); AT+CCHRECV gives at most 2 048 bytes (0 = as
  much as that), in blocks of up to 1 024, and refuses an empty cache with
  `+CCHRECV: <id>,11` and ERROR (19.2.15); the cache survives a server close;
- errors of these commands are a plain ERROR, whatever AT+CMEE says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.vmodem.atargs import as_int, int_in, quoted, unquote
from simulator.vmodem.sessions import _Conn
from simulator.vmodem.settings import (
    CCH_NETWORK_ERROR,
    CCH_NONET,
    CCH_RECV_EMPTY,
    CERT_MAX,
    CERT_PACKET_MAX,
    RECV_BLOCK,
    RECV_MAX,
    SEND_MAX,
)
from simulator.vmodem.tls import SSL_FILES, SSL_INT_RANGES, ssl_settings

if TYPE_CHECKING:
    from simulator.vmodem.modem import VirtualModem

SESSIONS = (0, 1)
HOST_MAX = 256
FILE_NAME_MAX = 108


def _h_csslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 3 or not int_in(a, 1, 0, 9):
        m._plain_error()
        return
    key = unquote(a[0])
    value: Any
    if key == "enableSNI" and m.faults.old_firmware:
        m._plain_error()  # older firmware does not know it
        return
    if key in SSL_INT_RANGES:
        lo, hi = SSL_INT_RANGES[key]
        if not int_in(a, 2, lo, hi):
            m._plain_error()
            return
        value = as_int(a[2])
    elif key in SSL_FILES and quoted(a, 2, FILE_NAME_MAX):
        value = unquote(a[2])
    else:
        m._plain_error()
        return
    ssl_settings(m.ssl_cfg, as_int(a[1]))[key] = value
    m._ok()


def _h_ccertdown(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 2 or not quoted(a, 0, FILE_NAME_MAX) or not int_in(a, 1, 1, CERT_MAX):
        m._plain_error()
        return
    name, size = unquote(a[0]), as_int(a[1])

    def stored(data: bytes) -> None:
        packets = m._data_packets_seen
        if any(p > CERT_PACKET_MAX for p in packets):
            m._plain_error()  # "every packet data should be no larger than 3072 bytes" (19.2.2)
            return
        m.certs[name] = data.decode("ascii", "replace")
        m._ok()

    m._expect_data(size, b"\r\n>", stored, packets=True)


def _h_cchset(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CCHSET: {m.cch_report},{m.cch_recv_mode}")
    elif op != "=" or not 1 <= len(a) <= 2 or not all(int_in(a, i, 0, 1) for i in range(len(a))):
        m._plain_error()
    elif m.cch_started:
        m._plain_error()  # "must be called before AT+CCHSTART" (19.2.5)
    else:
        m.cch_report = as_int(a[0])
        if len(a) > 1:
            m.cch_recv_mode = as_int(a[1])
        m._ok()


def _h_cchstart(m: VirtualModem, op: str, a: list[str]) -> None:
    if op or m.cch_started:
        m._plain_error()  # already started: ERROR alone
        return
    t = m.timing
    if not m.registered:
        m._later(t.fail_connect_ms, "ERROR", f"+CCHSTART: {CCH_NONET}")
    elif m.faults.data_down or not m._apn_accepted():
        m._later(t.fail_connect_ms, "ERROR", f"+CCHSTART: {CCH_NETWORK_ERROR}")
    else:
        m.cch_started = True
        m._ok()
        m._later(t.start_ms, "+CCHSTART: 0")


def _h_cchstop(m: VirtualModem, op: str, a: list[str]) -> None:
    if op or not m.cch_started:
        m._plain_error()
        return
    m.cch_started = False
    m.close()
    m.session_ctx.clear()
    m._ok()
    m._later(m.timing.cmd_ms * 2, "+CCHSTOP: 0")


def _h_cchsslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    # after AT+CCHSTART, before AT+CCHOPEN (19.2.10)
    if (op != "=" or len(a) != 2 or not int_in(a, 0, 0, 1) or not int_in(a, 1, 0, 9) or not m.cch_started
            or as_int(a[0]) in m._conns):
        m._plain_error()
        return
    m.session_ctx[as_int(a[0])] = as_int(a[1])
    m._ok()


def _h_cchopen(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(*[f'+CCHOPEN: {sid},"{c.peer}"' for sid, c in sorted(m._conns.items())
                    if c.state == "open"])
        return
    if (op != "=" or not 3 <= len(a) <= 5 or not int_in(a, 0, 0, 1) or not quoted(a, 1, HOST_MAX)
            or not int_in(a, 2, 1, 65535) or (len(a) > 3 and not int_in(a, 3, 1, 2))
            or (len(a) > 4 and not int_in(a, 4, 0, 65535))):
        m._plain_error()
        return
    sid, host, port = as_int(a[0]), unquote(a[1]), as_int(a[2])
    client_type = as_int(a[3]) if len(a) > 3 else 2
    if not m.cch_started or sid in m._conns:
        m._plain_error()  # no service, or the session is held (also after a server close)
        return
    conn = _Conn(None, f"{host}:{port}")
    m._conns[sid] = conn
    err, took = m._connect(conn, host, port, client_type, m.session_ctx.get(sid, 0))
    if m.faults.cchopen_ms:
        took = max(took, m.faults.cchopen_ms)  # a worst case: Max Response Time 120 s (19.2.12)
    m._ok()
    m._at(took, m._opened, sid, conn, err)


def _h_cchsend(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 2 or not int_in(a, 0, 0, 1) or not int_in(a, 1, 1, SEND_MAX):
        m._plain_error()
        return
    sid, length = as_int(a[0]), as_int(a[1])
    conn = m._conns.get(sid)
    if conn is None or conn.state != "open":
        m._plain_error()
        return

    def sent(data: bytes) -> None:
        # taken (OK) whether or not it can leave: a failed send is reported later as
        # "+CCHSEND: <id>,<err>", whatever AT+CCHSET says (19.4)
        ok = m._send(sid, data)
        m._ok()
        if ok and m.cch_report:
            m._later(m.timing.cmd_ms + 1, f"+CCHSEND: {sid},0")

    m._expect_data(length, b"\r\n>", sent)


def _h_cchrecv(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        lens = [len(m._conns[s].cache) if s in m._conns else 0 for s in SESSIONS]
        m._answer(f"+CCHRECV: LEN,{lens[0]},{lens[1]}")
        return
    if (op != "=" or not 1 <= len(a) <= 2 or not int_in(a, 0, 0, 1)
            or (len(a) > 1 and not int_in(a, 1, 0, RECV_MAX))):
        m._plain_error()
        return
    sid = as_int(a[0])
    limit = as_int(a[1]) if len(a) > 1 else 0
    conn = m._conns.get(sid)
    if conn is None or conn.state == "connecting":
        m._plain_error()
        return
    if not conn.cache:
        m._later(m.timing.cmd_ms, f"+CCHRECV: {sid},{CCH_RECV_EMPTY}", "ERROR")
        return
    take = bytes(conn.cache[:limit or RECV_MAX])
    del conn.cache[:len(take)]

    def out() -> None:
        m._line("OK")
        for i in range(0, len(take), RECV_BLOCK):
            block = take[i:i + RECV_BLOCK]
            m._emit(f"\r\n+CCHRECV: DATA,{sid},{len(block)}\r\n".encode() + block)
        m._line(f"+CCHRECV: {sid},0")

    m._at(m.timing.cmd_ms, out)


def _h_cchclose(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 1 or not int_in(a, 0, 0, 1) or as_int(a[0]) not in m._conns:
        m._plain_error()  # no such session
        return
    sid = as_int(a[0])
    conn = m._conns.pop(sid)
    m.session_ctx.pop(sid, None)
    # a session still connecting is given up (its +CCHOPEN never comes); the real
    # module's answer to that is one of docs/modem.md's open questions
    m._drop(conn)
    m._ok()
    m._later(m.timing.cmd_ms + m.timing.rtt_ms // 2, f"+CCHCLOSE: {sid},0")


CCH_HANDLERS: dict[str, Callable[[VirtualModem, str, list[str]], None]] = {
    "+CSSLCFG": _h_csslcfg,
    "+CCERTDOWN": _h_ccertdown,
    "+CCHSET": _h_cchset,
    "+CCHSTART": _h_cchstart,
    "+CCHSTOP": _h_cchstop,
    "+CCHSSLCFG": _h_cchsslcfg,
    "+CCHOPEN": _h_cchopen,
    "+CCHSEND": _h_cchsend,
    "+CCHRECV": _h_cchrecv,
    "+CCHCLOSE": _h_cchclose,
}
