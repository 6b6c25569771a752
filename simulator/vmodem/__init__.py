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
    vm.close()

Time: everything (boot, registration, command latency, UART speed, network
round trips and bandwidth) runs on the `now_ms` values given to advance().
Sockets are real: AT+CCHOPEN opens a real TCP connection (with real TLS through
Python's ssl, client type 2) to a loopback address; AT+CMGS hands the PDU to a
VirtualSmsc, which posts it to the receiver's /v1/sms webhook. While the firmware
waits for an answer the receiver has not sent yet, advance() blocks on the socket
(at most `io_wait_s` of wall time): the answer is then stamped with its modelled
arrival time, so runs are repeatable whatever the machine's speed.

Faults (the Faults fields, also settable while running with set_fault()):
no_coverage, denied, sim_missing, hang (silent until power-cycled by PWRKEY),
error_rate / cme_rate (random ERROR / +CME ERROR answers, seeded), fail_next
(scripted answers for the next commands matching a prefix), garbage_every_ms,
urc_burst (URCs inside every answer), data_down (registered, SMS works, data
connections fail), drop_after_bytes / drop_before_response (one-shot: the
connection breaks mid-send / after the request reached the receiver), and a slow
link through Timing (rtt_ms, uplink_bps, downlink_bps).

Inside: settings (Timing, Faults, AirRecord), modem (power, registration, the
UART), commandline (AT input and answers, SMS submission), commands (one handler
per AT command), connections (real sockets and TLS, stamp_ready).
"""

from simulator.vmodem.connections import stamp_ready
from simulator.vmodem.modem import VirtualModem, VirtualSerial
from simulator.vmodem.settings import (
    CCH_CONNECT_ERROR,
    CCH_DNS_ERROR,
    CCH_HANDSHAKE_ERROR,
    CCH_NETWORK_ERROR,
    CCH_NO_CERT,
    CCH_OK,
    AirRecord,
    Faults,
    Timing,
)

__all__ = ["CCH_CONNECT_ERROR", "CCH_DNS_ERROR", "CCH_HANDSHAKE_ERROR", "CCH_NETWORK_ERROR", "CCH_NO_CERT",
           "CCH_OK", "AirRecord", "Faults", "Timing", "VirtualModem", "VirtualSerial", "stamp_ready"]
