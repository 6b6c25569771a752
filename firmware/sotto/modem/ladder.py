# The delivery task's answer to failure: which kind it was, what the modem
# needs before the next attempt (the recovery ladder) and how long to wait
# (exponential backoff with jitter from the HAL RNG). Rung 1, sending a failed
# command again, lives in the driver (sotto.modem.base); this decides rungs 2
# (AT+CFUN=0/1) and 3 (power cycle). docs/modem.md has the table.
from micropython import const

from sotto.modem import at as _at
from sotto.modem import http
from sotto.ticks import ticks_diff

# failure classes
SILENT = const(1)  # the module stopped answering
MODEM = const(2)  # the module answered with errors
NETWORK = const(3)  # no service, the connection failed or dropped
SERVER = const(4)  # the receiver's answer was unusable (HTTP status, bad body)
SEARCHING = const(5)  # not registered yet: look again soon, no escalation

# what the modem needs before the next attempt
NONE = const(0)
CFUN = const(1)
POWER = const(2)  # power cycle an answering module (AT+CPOF, then PWRKEY on)
POWER_HUNG = const(3)  # power cycle a silent one (PWRKEY held)
PROBE = const(4)  # a command timed out: is the module still answering?


class Ladder:
    backoff_base_ms = 1000
    backoff_max_ms = 30000  # while an alert is live
    idle_backoff_max_ms = 300000  # otherwise (heartbeats can wait; the battery cannot)
    reg_poll_ms = 2000
    reg_timeout_ms = 60000  # unregistered this long counts as a network failure
    net_fails_cfun = 3  # consecutive network failures before AT+CFUN=0/1 ...
    net_fails_power = 6  # ... and before a power cycle

    def __init__(self, random_bytes=None):
        self.random_bytes = random_bytes
        self.pending = NONE
        self.failures = 0  # consecutive
        self.modem_fails = 0
        self.net_fails = 0
        self.unreg_since = None

    def take(self):
        """The action due before the next attempt (and forget it)."""
        action = self.pending
        self.pending = NONE
        return action

    def succeeded(self):
        self.failures = 0
        self.modem_fails = 0
        self.net_fails = 0
        self.unreg_since = None

    def classify(self, e, phase):
        """phase 0: bringing the modem up; 1: connecting and posting; 2: the answer."""
        kind = getattr(e, "kind", 0)
        if isinstance(e, http.HttpError):
            return NETWORK if e.code == http.TRUNCATED else SERVER
        if kind == _at.TIMEOUT or kind == _at.NO_POWER:
            return SILENT
        if phase == 1 or kind in (_at.CLOSED, _at.RESULT, _at.NOT_REGISTERED, _at.DENIED):
            return NETWORK
        return MODEM

    def failed(self, e, phase, now, alert_live):
        """Record a failed attempt; returns (class, ms to wait before the next)."""
        kind = getattr(e, "kind", 0)
        if kind == _at.NOT_REGISTERED:
            if self.unreg_since is None:
                self.unreg_since = now
            if ticks_diff(now, self.unreg_since) < self.reg_timeout_ms:
                return SEARCHING, self.reg_poll_ms
            self.unreg_since = now  # searching too long: a network failure, then search on
        cls = self.classify(e, phase)
        self.failures += 1
        if cls == SILENT:
            # a timed-out command may be a slow network, not a hung module: probe first
            self.pending = POWER_HUNG if kind == _at.NO_POWER else PROBE
        elif cls == MODEM:
            self.modem_fails += 1
            if self.modem_fails == 1:
                self.pending = CFUN
            else:
                self.pending = POWER
                self.modem_fails = 0
        elif cls == NETWORK:
            self.net_fails += 1
            if self.net_fails >= self.net_fails_power:
                self.pending = POWER
                self.net_fails = 0
            elif self.net_fails == self.net_fails_cfun:
                self.pending = CFUN
        return cls, self.backoff_ms(alert_live)

    def backoff_ms(self, alert_live):
        """d/2 + random(0..d/2), d = base x 2^(failures-1), capped."""
        cap = self.backoff_max_ms if alert_live else self.idle_backoff_max_ms
        n = self.failures - 1 if self.failures > 0 else 0
        d = self.backoff_base_ms << (n if n < 16 else 16)
        if d > cap:
            d = cap
        half = d // 2
        return half + self._rand(half + 1)

    def _rand(self, n):
        if self.random_bytes is None or n <= 1:
            return 0
        return int.from_bytes(self.random_bytes(3), "big") % n
