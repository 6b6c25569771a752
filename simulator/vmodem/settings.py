"""The virtual modem's settings: its timing, its faults, what crossed the air, and the
CCH result codes (see the package docstring)."""


from __future__ import annotations

from dataclasses import dataclass, field

CTRL_Z = 0x1A
ESC = 0x1B

# <err> codes of the CCH commands (A76XX manual, "AT Commands for SSL", result codes)
CCH_OK = 0
CCH_NETWORK_ERROR = 9
CCH_DNS_ERROR = 13
CCH_CONNECT_ERROR = 14
CCH_HANDSHAKE_ERROR = 15
CCH_NO_CERT = 19


@dataclass
class Timing:
    """Nominal delays of a registered LTE Cat-1 module; all in ms or bit/s."""

    uart_baud: int = 115200
    cmd_ms: int = 15  # a simple command's answer
    boot_ms: int = 12000  # PWRKEY released -> *ATREADY
    sim_ms: int = 1500  # *ATREADY -> +CPIN: READY
    register_ms: int = 3000  # SIM ready / radio on -> registered
    cfun_off_ms: int = 800
    cfun_on_ms: int = 300
    power_off_ms: int = 2500
    start_ms: int = 200  # AT+CCHSTART (PDP already up on LTE)
    connect_ms: int = 150  # DNS + TCP connect beyond one round trip
    tls_ms: int = 350  # TLS handshake crypto in the module beyond the round trips
    rtt_ms: int = 80  # network round trip
    uplink_bps: int = 1_000_000
    downlink_bps: int = 5_000_000
    sms_ms: int = 2500  # AT+CMGS -> +CMGS
    fail_connect_ms: int = 5000  # how long a failing connect takes to report


@dataclass
class Faults:
    """What is wrong with the modem or the network; see the module docstring."""

    no_coverage: bool = False
    denied: bool = False
    sim_missing: bool = False
    hang: bool = False
    error_rate: float = 0.0
    cme_rate: float = 0.0
    fail_next: list[tuple[str, str]] = field(default_factory=list)  # (command prefix, answer line)
    garbage_every_ms: int = 0
    urc_burst: int = 0
    data_down: bool = False
    drop_after_bytes: int | None = None  # one-shot
    drop_before_response: bool = False  # one-shot


@dataclass
class AirRecord:
    """Bytes that crossed the radio: `air_bytes` as sent (TLS records, or the SMS
    TPDU), `payload` the application bytes inside (plaintext, or the SMS user data)."""

    t_ms: int
    direction: str  # "up" (device -> network) or "down"
    kind: str  # "data", "tls" (handshake and other TLS records without data), "sms"
    air_bytes: int
    payload: bytes
    peer: str
