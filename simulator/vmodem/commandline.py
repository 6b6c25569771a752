"""The virtual modem's command line: AT input, data and PDU modes, answers, errors,
the URC noise of the `urc_burst` fault, and SMS submission to the SMS centre."""

from __future__ import annotations

from collections.abc import Callable

from simulator.smsc import PduDecodeError
from simulator.vmodem.commands import _HANDLERS, _split_args
from simulator.vmodem.settings import (
    CTRL_Z,
    ESC,
)

_CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
             14: "SIM busy", 50: "incorrect parameters", 100: "unknown"}


class CommandLine:
    """VirtualModem's UART input side (a mixin: it uses the modem's clock, faults and UART)."""
    def _receive(self, data: bytes) -> None:
        if self.power != "on" or self._hung():
            return
        i = 0
        while i < len(data):
            if self._mode == "data":
                k = min(self._data_left, len(data) - i)
                self._data_buf += data[i:i + k]
                self._data_left -= k
                i += k
                if self._data_left == 0:
                    self._mode = "cmd"
                    self._data_packets_seen, self._data_packets = self._data_packets or [], None
                    done, self._data_done = self._data_done, None
                    if done is not None:
                        done(bytes(self._data_buf))
                continue
            if self._mode == "pdu":
                c = data[i]
                i += 1
                if c in (CTRL_Z, ESC):
                    self._mode = "cmd"
                    done, self._data_done = self._data_done, None
                    if done is not None and c == CTRL_Z:
                        done(bytes(self._data_buf))
                else:
                    self._data_buf.append(c)
                continue
            c = data[i]
            i += 1
            if c == 13:
                line = bytes(self._linebuf).strip()
                self._linebuf.clear()
                if line:
                    if self.echo:
                        self._emit(line + b"\r")
                    self._command(line)
            elif c != 10:
                self._linebuf.append(c)

    def _expect_data(self, nbytes: int, prompt: bytes, done: Callable[[bytes], None],
                     packets: bool = False) -> None:
        """Take exactly nbytes of raw data after `prompt`, then done(data); with
        `packets`, note the sizes of the bursts they come in (self._data_packets)."""
        self._mode = "data"
        self._data_left = nbytes
        self._data_buf = bytearray()
        self._data_done = done
        self._data_packets = [] if packets else None
        self._emit(prompt)

    def _command(self, line: bytes) -> None:
        self.commands += 1
        text = line.decode("latin-1")
        upper = text.upper()
        if not upper.startswith("AT"):
            self._later(self.timing.cmd_ms, "ERROR")
            return
        f = self.faults
        for k, (prefix, answer) in enumerate(f.fail_next):
            if upper.startswith(prefix.upper()):
                del f.fail_next[k]
                self._later(self.timing.cmd_ms, answer)
                return
        if f.error_rate and self.rng.random() < f.error_rate:
            self._later(self.timing.cmd_ms, "ERROR")
            return
        if f.cme_rate and self.rng.random() < f.cme_rate:
            self._later(self.timing.cmd_ms, "+CME ERROR: 100")
            return
        body = text[2:]
        name, op, args = body, "", ""
        for sep in ("=?", "?", "="):
            pos = body.find(sep)
            if pos >= 0 and (op == "" or pos < len(name)):
                name, op, args = body[:pos], sep, body[pos + len(sep):]
        name = name.upper()
        handler = _HANDLERS.get(name)
        if handler is None and name.startswith("E") and name[1:] in ("", "0", "1"):
            self.echo = name != "E0"
            self._ok()
            return
        if handler is None:
            self._plain_error()  # a command it does not know: ERROR, whatever AT+CMEE says
            return
        handler(self, op, _split_args(args))

    def _answer(self, *lines: str | bytes, delay: float | None = None) -> None:
        """Info lines, then (with a burst of URCs inside, if asked) OK."""
        burst = [self._urc_noise(k) for k in range(self.faults.urc_burst)]
        self._later(self.timing.cmd_ms if delay is None else delay, *lines, *burst, "OK")

    def _ok(self, delay: float | None = None) -> None:
        self._answer(delay=delay)

    def _error(self, code: int = 100, sms: bool = False, delay: float | None = None) -> None:
        # +CMS ERROR is always numeric (TS 27.005 §3.2.5); +CME ERROR follows AT+CMEE
        # (0: ERROR, 1: numeric, 2: verbose; TS 27.007 §9.1)
        if sms:
            line = f"+CMS ERROR: {code}"
        elif self.cmee == 0:
            line = "ERROR"
        elif self.cmee == 2 and code in _CME_TEXT:
            line = f"+CME ERROR: {_CME_TEXT[code]}"
        else:
            line = f"+CME ERROR: {code}"
        self._later(self.timing.cmd_ms if delay is None else delay, line)

    def _plain_error(self, delay: float | None = None) -> None:
        """ERROR whatever AT+CMEE says (the CCH commands' form, AT manual chapter 19)."""
        self._later(self.timing.cmd_ms if delay is None else delay, "ERROR")

    def _urc_noise(self, k: int) -> str:
        choice = k % 4
        if choice == 0:
            return f"+CEREG: {self.reg_stat}"
        if choice == 1:
            return f"+CREG: {self.reg_stat}"
        if choice == 2:
            return "+CGEV: ME PDN ACT 1"
        return f'+CMTI: "SM",{k % 20}'

    def _sms_submit(self, length: int, hex_pdu: bytes) -> None:
        took = self.faults.cmgs_ms or self.timing.sms_ms
        try:
            pdu = bytes.fromhex(hex_pdu.decode("ascii"))
        except ValueError:
            self._error(304, sms=True)  # invalid PDU mode parameter
            return
        if not pdu or len(pdu) - 1 - pdu[0] != length:
            self._error(304, sms=True)
            return
        if not self.sim_ready:
            self._error(310, sms=True)  # SIM not inserted
            return
        if not self.sms_ready:
            self._error(500, sms=True)  # before "SMS DONE" (AT manual 28.4)
            return
        if not self.sms_service:
            self._error(331, sms=True, delay=took)  # no network service
            return
        tpdu = pdu[1 + pdu[0]:]
        if self.smsc is not None:
            try:
                record = self.smsc.submit(self.now + took, self.msisdn, tpdu)
            except PduDecodeError:
                self._error(304, sms=True, delay=took)
                return
            payload = record.payload
        else:
            payload = b""
        self._air("up", "sms", len(tpdu), payload, "smsc")
        self.sms_sent += 1
        self._mr = (self._mr + 1) % 256
        self._answer(f"+CMGS: {self._mr}", delay=took)
