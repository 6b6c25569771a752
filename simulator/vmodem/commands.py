"""The AT command model: one handler per command, handler(modem, op, args), where op
is "", "?", "=?" or "=" (docs/modem.md lists the subset the firmware speaks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.vmodem.settings import (
    CCH_NETWORK_ERROR,
)

if TYPE_CHECKING:
    from simulator.vmodem.modem import VirtualModem


def _split_args(args: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if args:
        out.append("".join(cur).strip())
    return out


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _int(s: str, default: int = -1) -> int:
    try:
        return int(s)
    except ValueError:
        return default


# -- command handlers: handler(modem, op, args); op is "", "?", "=?" or "=" ----------
def _h_at(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()


def _h_cmee(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CMEE: {m.cmee}")
    elif op == "=" and a and _int(a[0]) in (0, 1, 2):
        m.cmee = _int(a[0])
        m._ok()
    else:
        m._error(50)


def _h_ident(text: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        m._answer(text if text else m.imei)
    return h


def _h_cpin(m: VirtualModem, op: str, a: list[str]) -> None:
    if m.faults.sim_missing or not m.sim_ready:
        m._error(10 if m.faults.sim_missing else 14)  # not inserted / SIM busy
    else:
        m._answer("+CPIN: READY")


def _h_csq(m: VirtualModem, op: str, a: list[str]) -> None:
    rssi = m.rssi if m.radio and not m.faults.no_coverage else 99
    m._answer(f"+CSQ: {rssi},99")


def _h_reg(kind: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        attr = "creg_n" if kind == "CREG" else "cereg_n"
        if op == "?":
            m._answer(f"+{kind}: {getattr(m, attr)},{m.reg_stat}")
        elif op == "=" and a and _int(a[0]) in (0, 1, 2):
            setattr(m, attr, _int(a[0]))
            m._ok()
        else:
            m._error(50)
    return h


def _h_cgdcont(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and len(a) >= 3 and _int(a[0]) == 1:
        m.apn = _unquote(a[2])
        m._ok()
    elif op == "?":
        m._answer(f'+CGDCONT: 1,"IP","{m.apn}"')
    else:
        m._error(50)


def _h_cfun(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CFUN: {1 if m.radio else 0}")
        return
    fun = _int(a[0]) if a else -1
    if fun == 1 and len(a) > 1 and _int(a[1]) == 1:  # reset
        m._ok()
        m._at(m.timing.cmd_ms + 100, m._reboot_now)
        return
    if fun == 0:
        m.radio = False
        m.cch_started = False
        for conn in list(m._conns.values()):
            m._drop(conn)
        m._conns.clear()
        m._ok(delay=m.timing.cfun_off_ms)
        m._at(m.timing.cfun_off_ms, m._registration_changed)
    elif fun == 1:
        was = m.radio
        m.radio = True
        m._ok(delay=m.timing.cfun_on_ms)
        if not was:
            m.sim_ready = False
            m._at(m.timing.cfun_on_ms, m._sim_up)
    else:
        m._error(50)


def _h_cpof(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()
    m._at(m.timing.cmd_ms + 50, m._power_off)


def _h_cmgf(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and a and _int(a[0]) in (0, 1):
        m.cmgf = _int(a[0])
        m._ok()
    elif op == "?":
        m._answer(f"+CMGF: {m.cmgf}")
    else:
        m._error(50)


def _h_cmgs(m: VirtualModem, op: str, a: list[str]) -> None:
    length = _int(a[0]) if op == "=" and a else -1
    if m.cmgf != 0 or not 7 <= length <= 164:
        m._error(304, sms=True)  # only PDU mode is modelled
        return
    m._mode = "pdu"
    m._data_buf = bytearray()
    m._data_done = lambda hexpdu: m._sms_submit(length, hexpdu)
    m._emit(b"\r\n> ")


def _h_cmgd(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()


def _h_cchset(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and a:
        m.cch_report = _int(a[0], 0)
        if len(a) > 1:
            m.cch_recv_mode = _int(a[1], 0)
        m._ok()
    elif op == "?":
        m._answer(f"+CCHSET: {m.cch_report},{m.cch_recv_mode}")
    else:
        m._error(50)


def _h_cchstart(m: VirtualModem, op: str, a: list[str]) -> None:
    if m.cch_started:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    if not m.registered or m.faults.data_down:
        m._answer(delay=m.timing.cmd_ms)
        m._later(m.timing.fail_connect_ms, f"+CCHSTART: {CCH_NETWORK_ERROR}")
        return
    m.cch_started = True
    m._ok()
    m._later(m.timing.start_ms, "+CCHSTART: 0")


def _h_cchstop(m: VirtualModem, op: str, a: list[str]) -> None:
    if not m.cch_started:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m.cch_started = False
    for conn in list(m._conns.values()):
        m._drop(conn)
    m._conns.clear()
    m._ok()
    m._later(m.timing.cmd_ms * 2, "+CCHSTOP: 0")


def _h_csslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) < 3:
        m._error(50)
        return
    key = _unquote(a[0])
    value: Any = _unquote(a[2])
    if key in ("sslversion", "authmode", "enableSNI"):
        value = _int(value)
    m.ssl_cfg[key] = value
    m._ok()


def _h_cchsslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok() if op == "=" and len(a) == 2 else m._error(50)


def _h_ccertdown(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 2 or _int(a[1]) <= 0:
        m._error(50)
        return
    name, size = _unquote(a[0]), _int(a[1])

    def stored(data: bytes) -> None:
        m.certs[name] = data.decode("ascii", "replace")
        m._ok()

    m._expect_data(size, b"\r\n>", stored)


def _h_cchopen(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(*[f'+CCHOPEN: {sid},"{c.peer}"' for sid, c in m._conns.items() if not c.closed])
        return
    if op != "=" or len(a) < 3:
        m._error(50)
        return
    sid, host, port = _int(a[0]), _unquote(a[1]), _int(a[2])
    client_type = _int(a[3]) if len(a) > 3 else 2
    if sid not in (0, 1) or not m.cch_started or (sid in m._conns and not m._conns[sid].closed):
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m._conns.pop(sid, None)
    err, took = m._open(sid, host, port, client_type)
    m._ok()
    m._later(took, f"+CCHOPEN: {sid},{err}")


def _h_cchsend(m: VirtualModem, op: str, a: list[str]) -> None:
    sid = _int(a[0]) if a else -1
    length = _int(a[1]) if len(a) > 1 else -1
    conn = m._conns.get(sid)
    if op != "=" or conn is None or conn.closed or not 1 <= length <= 2048:
        m._later(m.timing.cmd_ms, "ERROR")
        return

    def sent(data: bytes) -> None:
        m._send(sid, data)
        lines: list[str] = []
        if m.cch_report:
            lines.append(f"+CCHSEND: {sid},0")
        m._answer(delay=m.timing.cmd_ms)
        if lines:
            m._later(m.timing.cmd_ms + 1, *lines)

    m._expect_data(length, b"\r\n>", sent)


def _h_cchrecv(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        lens = [len(m._conns[s].cache) if s in m._conns else 0 for s in (0, 1)]
        m._answer(f"+CCHRECV: LEN,{lens[0]},{lens[1]}")
        return
    sid = _int(a[0]) if a else -1
    limit = _int(a[1]) if len(a) > 1 else 1500
    conn = m._conns.get(sid)
    if op != "=" or conn is None or limit <= 0:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    take = bytes(conn.cache[:min(limit, 1500)])
    del conn.cache[:len(take)]
    conn.event_sent = bool(conn.cache)

    def out() -> None:
        m._line("OK")
        if take:
            m._emit(f"\r\n+CCHRECV: DATA,{sid},{len(take)}\r\n".encode() + take)
        m._line(f"+CCHRECV: {sid},0")
        if conn.cache:
            m._line(f"+CCHEVENT: {sid},RECV EVENT")

    m._at(m.timing.cmd_ms, out)


def _h_cchclose(m: VirtualModem, op: str, a: list[str]) -> None:
    sid = _int(a[0]) if a else -1
    conn = m._conns.pop(sid, None)
    if op != "=" or conn is None:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m._drop(conn)
    m._ok()
    m._later(m.timing.cmd_ms + m.timing.rtt_ms // 2, f"+CCHCLOSE: {sid},0")


_HANDLERS: dict[str, Callable[[VirtualModem, str, list[str]], None]] = {
    "": _h_at,
    "+CMEE": _h_cmee,
    "I": _h_ident("SIMCOM INCORPORATED\r\nModel: A7670E-LASE\r\nRevision: A7670M7_V1.11.1"),
    "+CGMI": _h_ident("SIMCOM INCORPORATED"),
    "+CGMM": _h_ident("A7670E-LASE"),
    "+CGSN": _h_ident(""),
    "+CPIN": _h_cpin,
    "+CSQ": _h_csq,
    "+CREG": _h_reg("CREG"),
    "+CEREG": _h_reg("CEREG"),
    "+CGDCONT": _h_cgdcont,
    "+CFUN": _h_cfun,
    "+CPOF": _h_cpof,
    "+CMGF": _h_cmgf,
    "+CMGS": _h_cmgs,
    "+CMGD": _h_cmgd,
    "+CCHSET": _h_cchset,
    "+CCHSTART": _h_cchstart,
    "+CCHSTOP": _h_cchstop,
    "+CSSLCFG": _h_csslcfg,
    "+CCHSSLCFG": _h_cchsslcfg,
    "+CCERTDOWN": _h_ccertdown,
    "+CCHOPEN": _h_cchopen,
    "+CCHSEND": _h_cchsend,
    "+CCHRECV": _h_cchrecv,
    "+CCHCLOSE": _h_cchclose,
}
