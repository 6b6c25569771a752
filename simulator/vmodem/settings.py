"""The virtual modem's settings: its timing, its faults, what crossed the air, and the
CCH result codes (see the package docstring)."""


from __future__ import annotations

from dataclasses import dataclass, field

from simulator.clock import HostStall  # noqa: F401 - the modem raises it (re-exported)

CTRL_Z = 0x1A
ESC = 0x1B

# <err> codes of the CCH commands (A76XX AT Command Manual V1.09 19.3.1; the same
# table in the A76XX SSL Application Note, 4.1.1)
CCH_OK = 0
CCH_NETWORK_ERROR = 9
CCH_STATE_ERROR = 11
CCH_DNS_ERROR = 13
CCH_CONNECT_ERROR = 14
CCH_HANDSHAKE_ERROR = 15
CCH_NONET = 17
CCH_SEND_TIMEOUT = 18
CCH_NO_CERT = 19
# AT+CCHRECV on an empty cache answers "+CCHRECV: <id>,<err>" and ERROR (19.2.15); the
# manual names no <err> for it: 11 "State error", as tests/data/at/manual_cchrecv_empty.at
CCH_RECV_EMPTY = CCH_STATE_ERROR

RECV_MAX = 2048  # <max_recv_len> of AT+CCHRECV: 0..2048 (19.2.15)
RECV_BLOCK = 1024  # a read's data comes in "+CCHRECV: DATA,<id>,<len>" blocks of at most this
SEND_MAX = 2048  # AT+CCHSEND: 1..2048 bytes (19.2.14)
CERT_MAX = 10240  # AT+CCERTDOWN: a file of at most 10 240 bytes (19.2.2)
CERT_PACKET_MAX = 3072  # ... sent in packets of at most 3 072 bytes (19.2.2)
CERT_PACKET_GAP_MS = 20  # a quiet UART line this long ends one packet


@dataclass
class Timing:
    """Nominal delays of a registered LTE Cat-1 module; all in ms or bit/s.

    Power (A7670 hardware design manual V1.06, 3.2, Tables 11-12): PWRKEY low for
    `pwrkey_on_ms` switches it on, for `pwrkey_off_ms` off; a power-down takes
    `power_off_ms` (Toff typ. 2 s), and a press less than `off_on_ms` after it
    (Toff-on >= 2 s) is ignored, as is any press during the power-down.
    """

    uart_baud: int = 115200
    cmd_ms: int = 15  # a simple command's answer
    boot_ms: int = 12000  # PWRKEY released -> *ATREADY (Ton(uart) typ. 11.1 s)
    sim_ms: int = 1500  # *ATREADY -> +CPIN: READY
    sms_ready_ms: int = 2500  # +CPIN: READY -> SMS DONE (SMS and SIM commands refused until then)
    pb_ms: int = 500  # SMS DONE -> PB DONE
    register_ms: int = 3000  # SIM ready / radio on -> registered
    cfun_off_ms: int = 800
    cfun_on_ms: int = 300
    pwrkey_on_ms: int = 50
    pwrkey_off_ms: int = 2500
    power_off_ms: int = 2000  # the power-down itself (PWRKEY or AT+CPOF)
    off_on_ms: int = 2000  # off at least this long before a press counts
    cpof_ms: int = 1000  # AT+CPOF -> OK (Max Response Time 9 000 ms: the `cpof_ms` fault)
    start_ms: int = 200  # AT+CCHSTART (PDP already up on LTE)
    connect_ms: int = 150  # DNS + TCP connect beyond one round trip
    tls_ms: int = 350  # TLS handshake crypto in the module beyond the round trips
    rtt_ms: int = 80  # network round trip
    uplink_bps: int = 1_000_000
    downlink_bps: int = 5_000_000
    sms_ms: int = 2500  # AT+CMGS -> +CMGS
    fail_connect_ms: int = 5000  # how long a failing connect or PDP activation takes to report
    # 3GPP PSM (AT+CPSMS): the radio is released `rrc_tail_ms` after the last traffic (the
    # network's inactivity timer), PSM starts when the active time (T3324) runs out after
    # that and the UART's last activity; the host's next bytes wake the module, which hears
    # them `psm_wake_ms` later (an ESTIMATE: comparable LTE Cat-1 modules answer an uplink
    # from PSM within ~1.5 s; to be measured with an A7670 on the bench)
    rrc_tail_ms: int = 10000
    psm_wake_ms: int = 1500


@dataclass
class Faults:
    """What is wrong with the modem or the network (the package docstring lists them).

    Persistent conditions stay until set back; the one-shot ones (`cch_stop`,
    `recv_closed`, `send_fail`, `drop_*`, `proxy_answer_bytes`) act once."""

    no_coverage: bool = False
    denied: bool = False
    sim_missing: bool = False
    hang: bool = False  # silent until a PWRKEY power-down (or a power removal)
    hang_needs_reset: bool = False  # silent and deaf to PWRKEY: only a power removal clears it
    error_rate: float = 0.0
    cme_rate: float = 0.0
    fail_next: list[tuple[str, str]] = field(default_factory=list)  # (command prefix, answer line)
    garbage_every_ms: int = 0
    urc_burst: int = 0
    data_down: bool = False
    drop_after_bytes: int | None = None  # one-shot
    drop_before_response: bool = False  # one-shot
    # the network (3GPP TS 27.007 +CREG / +CEREG <stat>)
    roaming: bool = False  # registered roaming (stat 5)
    sms_only: bool = False  # CREG "registered for SMS only" (6, roaming 7) beside CEREG 1/5 on LTE
    apns: tuple[str, ...] = ("internet",)  # APNs the network accepts ("" always: its default)
    # the SSL service and its connections (AT manual V1.09 19.4)
    cch_stop: bool = False  # one-shot: the network stops the SSL service (+CCH: CCH STOP)
    recv_closed: bool = False  # one-shot: receiving fails on open sessions (+CCH_RECV_CLOSED)
    send_fail: bool = False  # one-shot: the next AT+CCHSEND's data never leaves (+CCHSEND: <id>,18)
    idle_close_ms: int = 0  # the server closes a connection idle this long (+CCH_PEER_CLOSED)
    proxy_answer_bytes: int = 0  # one-shot: a front end answers the next request with a 502 page this big
    # worst-case latencies (0: nominal): AT+CCHOPEN up to 120 s (19.2.12), AT+CMGS up to
    # 40 s, AT+CPOF up to 9 s (3.2.5)
    cchopen_ms: int = 0
    cmgs_ms: int = 0
    cpof_ms: int = 0
    # the module's firmware
    old_firmware: bool = False  # before V1.11: no AT+SIMCOMATI, AT+CSSLCFG="enableSNI" answers ERROR
    tls_strict: bool = False  # OpenSSL-strict TLS (host name, dates, SNI always), not the module's
    # the network does not grant PSM: AT+CPSMS=1 answers OK, the module never enters it
    psm_refused: bool = False


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
