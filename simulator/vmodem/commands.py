"""The AT command model: one handler per command, handler(modem, op, args), where op
is "", "?", "=?" or "=" (docs/modem.md lists the subset the firmware speaks).
Status, network, packet-domain and SMS commands here; the SSL client's (AT+CCH*,
AT+CSSLCFG, AT+CCERTDOWN) in simulator.vmodem.cch.

Parameters are checked against the ranges of the A76XX AT Command Manual V1.09;
a value out of range answers `+CME ERROR: 50` (incorrect parameters) under AT+CMEE,
`+CMS ERROR: 304` (invalid PDU mode parameter) for SMS commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.vmodem.atargs import as_int as _int
from simulator.vmodem.atargs import int_in as _in
from simulator.vmodem.atargs import split_args as _split_args
from simulator.vmodem.atargs import unquote as _unquote
from simulator.vmodem.cch import CCH_HANDLERS

if TYPE_CHECKING:
    from simulator.vmodem.modem import VirtualModem

PDP_TYPES = ("IP", "PPP", "IPV6", "IPV4V6")
APN_MAX = 99


# -- command handlers: handler(modem, op, args); op is "", "?", "=?" or "=" ----------
def _h_at(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()


def _h_cmee(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CMEE: {m.cmee}")
    elif op == "=" and len(a) == 1 and _in(a, 0, 0, 2):
        m.cmee = _int(a[0])
        m._ok()
    else:
        m._error(50)


def _h_ident(text: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        m._answer(text if text else m.imei)
    return h


def _h_ati(m: VirtualModem, op: str, a: list[str]) -> None:
    # the form of the manual's example (2.2.7)
    m._answer("Manufacturer: SIMCOM INCORPORATED", "Model: A7670E-LASE", "Revision: A7670M7_V1.11.1",
              f"IMEI: {m.imei}", "+GCAP: +CGSM,+FCLASS,+DS")


def _h_simcomati(m: VirtualModem, op: str, a: list[str]) -> None:
    # later firmware's identification, with the build line (not in V1.09; older
    # firmware refuses it, and the driver asks ATI)
    if m.faults.old_firmware:
        m._plain_error()  # a command it does not know
        return
    m._answer("Manufacturer: SIMCOM INCORPORATED", "Model: A7670E-LASE", "Revision: A7670M7_V1.11.1",
              "A7670M7_B12V02_220613", f"IMEI: {m.imei}")


def _h_cpin(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "?":
        m._error(3 if op == "=" else 50)  # no PIN to enter on the virtual SIM
    elif m.faults.sim_missing:
        m._error(10)  # SIM not inserted
    elif not m.sim_ready or not m.sms_ready:
        m._error(14)  # SIM busy: still starting (until "SMS DONE", AT manual 28.3)
    else:
        m._answer("+CPIN: READY")


def _h_csq(m: VirtualModem, op: str, a: list[str]) -> None:
    if op not in ("",):
        m._error(50)
        return
    rssi = m.rssi if m.radio and not m.faults.no_coverage else 99
    m._answer(f"+CSQ: {rssi},99")


def _h_reg(kind: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        attr = "creg_n" if kind == "CREG" else "cereg_n"
        stat = m.cs_stat if kind == "CREG" else m.reg_stat
        if op == "?":
            m._answer(f"+{kind}: {getattr(m, attr)},{stat}")
        elif op == "=" and len(a) == 1 and _in(a, 0, 0, 2):
            setattr(m, attr, _int(a[0]))
            m._ok()
        else:
            m._error(50)
    return h


def _h_cgdcont(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(*[f'+CGDCONT: {cid},"{t}","{apn}"' for cid, (t, apn) in sorted(m.contexts.items())])
    elif op == "=" and len(a) == 1 and _in(a, 0, 1, 24):
        m.contexts.pop(_int(a[0]), None)  # the context is undefined
        m._ok()
    elif (op == "=" and 2 <= len(a) and _in(a, 0, 1, 24) and _unquote(a[1]).upper() in PDP_TYPES
          and len(_unquote(a[2]) if len(a) > 2 else "") <= APN_MAX):
        # stored (AUTO_SAVE); the attach that uses context 1 is the next one (5.2.5)
        m.contexts[_int(a[0])] = (_unquote(a[1]).upper(), _unquote(a[2]) if len(a) > 2 else "")
        m._ok()
    else:
        m._error(50)


def _h_cfun(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CFUN: {1 if m.radio else 0}")
        return
    if op != "=" or not _in(a, 0, 0, 4) or _int(a[0]) in (2, 3) or (len(a) > 1 and not _in(a, 1, 0, 1)):
        m._error(50)
        return
    fun = _int(a[0])
    if fun == 1 and len(a) > 1 and _int(a[1]) == 1:  # reset
        m._ok()
        m._at(m.timing.cmd_ms + 100, m._reboot_now)
        return
    if fun in (0, 4):
        m._radio_off(keep_sim=fun == 4)
        m._ok(delay=m.timing.cfun_off_ms)
        m._at(m.timing.cfun_off_ms, m._registration_changed)
    else:
        was = m.radio
        m.radio = True
        m._ok(delay=m.timing.cfun_on_ms)
        if not was:
            m._radio_gen += 1
            if m.sim_ready:  # flight mode kept the SIM
                m._at(m.timing.cfun_on_ms, m._registration_changed)
            else:
                m._at(m.timing.cfun_on_ms, m._sim_up, m._radio_gen)


def _h_cpof(m: VirtualModem, op: str, a: list[str]) -> None:
    if op:
        m._error(50)
        return
    # deaf at once; OK within the Max Response Time of 9 s (3.2.5), then off
    m._shut_down(m.faults.cpof_ms or m.timing.cpof_ms, "OK", "NORMAL POWER DOWN")


def _sms_refused(m: VirtualModem) -> bool:
    """An SMS command before the SMS service is up: +CMS ERROR (310 no SIM, 500 before SMS DONE)."""
    if m.faults.sim_missing or not m.sim_ready:
        m._error(310 if m.faults.sim_missing else 500, sms=True)
        return True
    if not m.sms_ready:
        m._error(500, sms=True)
        return True
    return False


def _h_cmgf(m: VirtualModem, op: str, a: list[str]) -> None:
    # a setting of the command interface itself: answered before SMS DONE as well
    # (what a real module answers then is among docs/modem.md's open questions)
    if op == "=" and len(a) == 1 and _in(a, 0, 0, 1):
        m.cmgf = _int(a[0])
        m._ok()
    elif op == "?":
        m._answer(f"+CMGF: {m.cmgf}")
    else:
        m._error(304, sms=True)


def _h_cmgs(m: VirtualModem, op: str, a: list[str]) -> None:
    length = _int(a[0]) if op == "=" and len(a) == 1 else -1
    if m.cmgf != 0 or not 7 <= length <= 164:
        m._error(304, sms=True)  # only PDU mode is modelled
        return
    if _sms_refused(m):
        return
    m._mode = "pdu"
    m._data_buf = bytearray()
    m._data_done = lambda hexpdu: m._sms_submit(length, hexpdu)
    m._emit(b"\r\n> ")


def _h_cmgd(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or not _in(a, 0, 0, 255) or (len(a) > 1 and not _in(a, 1, 0, 4)):
        m._error(304, sms=True)
    elif not _sms_refused(m):
        m._ok()


def _timer2_ms(bits: str) -> int | None:
    """A GPRS Timer 2 value (3GPP TS 24.008 10.5.7.4, T3324 active time) in ms; None: deactivated."""
    unit = {"000": 2_000, "001": 60_000, "010": 360_000}.get(bits[:3])
    return None if unit is None else unit * int(bits[3:], 2)


def _h_cpsms(m: VirtualModem, op: str, a: list[str]) -> None:
    """AT+CPSMS (3GPP TS 27.007 7.38): <mode>[,<RAU>,<GPRS-READY>,<TAU>,<Active-Time>],
    timers as 8-bit strings; kept across power cycles."""
    if op == "?":
        m._answer(f"+CPSMS: {m.psm_mode},,,,")
        return
    if op == "=?":
        m._answer("+CPSMS: (0-2),,,,")
        return
    timers = [x.strip('"') for x in a[1:]]
    if op != "=" or not _in(a, 0, 0, 2) or len(a) > 5 or any(
            x and (len(x) != 8 or set(x) - {"0", "1"}) for x in timers):
        m._error(50)
        return
    m.psm_mode = _int(a[0])
    active = timers[3] if len(timers) > 3 else ""
    m.psm_active_ms = _timer2_ms(active) if active else 60_000
    if m.psm_mode != 1:
        m.psm_active_ms = None
    m._ok()


_HANDLERS: dict[str, Callable[[VirtualModem, str, list[str]], None]] = {
    "": _h_at,
    "+CMEE": _h_cmee,
    "I": _h_ati,
    "+SIMCOMATI": _h_simcomati,
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
    "+CPSMS": _h_cpsms,
    **CCH_HANDLERS,
}

__all__ = ["_HANDLERS", "_split_args"]
