"""A virtual SIMCom A7670-class modem for the simulator and the tests.

It answers the AT subset the firmware speaks (docs/modem.md) over a virtual
serial stream, on the simulator's clock, and carries data for real:

    vm = VirtualModem(timing=Timing(), faults=Faults(), seed=1, smsc=VirtualSmsc(url))
    hal.modem_uart = vm.stream          # read(n) -> bytes | None, write(b), any()
    hal.modem_pwrkey = vm.pwrkey        # 1 = key pressed (PWRKEY pulled low)
    ...
    vm.advance(now_ms)                  # before each firmware step; never sleeps
    vm.next_event_ms()                  # when the modem next has something to say
    vm.air                              # every byte that crossed the air (AirRecord)
    vm.tls_log                          # every TLS handshake (TlsOpen: host, SNI, authenticated, ok)
    vm.close()

It behaves as the A7670's manuals say (the A76XX AT Command Manual V1.09, its SSL
application note, the A7670 hardware design manual V1.06), where the firmware
could otherwise pass a test that a device would fail: data waits in the module
and `+CCHEVENT` announces only new data, 2 048 bytes per AT+CCHRECV; a server close
keeps the session (and its cache) until AT+CCHCLOSE; the network can stop the SSL
service (`+CCH: CCH STOP`); sends and receives fail with `+CCHSEND: <id>,<err>` and
`+CCH_RECV_CLOSED`; AT+CCHSTART fails as `ERROR` + `+CCHSTART: <err>`; PWRKEY
presses during a power-down or too soon after it are ignored; SIM and SMS commands
are refused until `SMS DONE`; CEREG and CREG are separate domains; parameters are
range-checked. The modules say how: modem (power, boot, registration), cch (the
SSL commands), commands (the others), connections (sockets), tls (the checks).

TLS, like the module (the default): the server's chain must end at the installed
CA, dates are checked only with `ignorelocaltime` 0, the host name never, SNI is
sent only with `enableSNI` 1. Faults(tls_strict=True): as OpenSSL checks by
default (host name, dates, SNI always).

Time: everything (boot, registration, command latency, UART speed, network
round trips and bandwidth) runs on the `now_ms` values given to advance().
Sockets are real: AT+CCHOPEN opens a real TCP connection (with real TLS through
Python's ssl, client type 2) to a loopback address; AT+CMGS hands the PDU to a
VirtualSmsc, which posts it to the receiver's /v1/sms webhook. While the firmware
sends a whole HTTP request, advance() blocks on the socket until the whole answer
is in (the simulation stands still meanwhile, so the receiver sees the send
time), and the answer reaches the device at its modelled arrival time: runs are
repeatable whatever the machine's speed. Waiting on the host is bounded only by
`io_wait_s` of wall time, a safety net: past it the run stops with HostStall,
never does the device see a timeout that the wall clock chose.

Faults (the Faults fields, also settable while running with set_fault()):
- the module: hang (silent until a PWRKEY power-down), hang_needs_reset (silent and
  deaf to PWRKEY: a real one needs the RESET line, which the HAL lacks, so only a
  power removal clears it), error_rate / cme_rate (random ERROR / +CME ERROR,
  seeded), fail_next (scripted answers for the next commands matching a prefix),
  garbage_every_ms, urc_burst (URCs inside every answer), old_firmware (no
  AT+SIMCOMATI, no "enableSNI"), tls_strict (above);
- the network: no_coverage, denied, sim_missing, roaming, sms_only (CREG 6/7),
  apns (the APNs it accepts: another one registers but AT+CCHSTART fails),
  data_down (registered, SMS works, data does not: the SSL service is stopped);
- connections: cch_stop, recv_closed, send_fail (one-shot failures as the module
  reports them), idle_close_ms (the server closes idle connections), drop_after_bytes
  / drop_before_response (one-shot: the connection breaks mid-send / after the
  request reached the receiver), proxy_answer_bytes (one-shot: a front end answers
  the next request with an HTTP 502 page that big);
- worst-case latencies: cchopen_ms (up to 120 s), cmgs_ms (up to 40 s), cpof_ms
  (up to 9 s); and a slow link through Timing (rtt_ms, uplink_bps, downlink_bps).
"""

from simulator.vmodem.modem import VirtualModem, VirtualSerial
from simulator.vmodem.sessions import TlsOpen
from simulator.vmodem.settings import (
    CCH_CONNECT_ERROR,
    CCH_DNS_ERROR,
    CCH_HANDSHAKE_ERROR,
    CCH_NETWORK_ERROR,
    CCH_NO_CERT,
    CCH_NONET,
    CCH_OK,
    CCH_RECV_EMPTY,
    CCH_SEND_TIMEOUT,
    AirRecord,
    Faults,
    HostStall,
    Timing,
)
from simulator.vmodem.traffic import stamp_ready

__all__ = ["CCH_CONNECT_ERROR", "CCH_DNS_ERROR", "CCH_HANDSHAKE_ERROR", "CCH_NETWORK_ERROR", "CCH_NONET",
           "CCH_NO_CERT", "CCH_OK", "CCH_RECV_EMPTY", "CCH_SEND_TIMEOUT", "AirRecord", "Faults", "HostStall",
           "TlsOpen", "Timing", "VirtualModem", "VirtualSerial", "stamp_ready"]
