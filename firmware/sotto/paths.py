# The second path (EN 50136-1 dual path): a primary and a secondary receiver,
# each with its own URL, CA certificate (SSL context 0 and 1 of the module)
# and centre key (its own sotto.answer.Opener).
#
# Policy (docs/modem.md, "The second path"):
# - frames go to the primary; when the primary has given no authenticated
#   answer for after_ms (counted from the first failed try, and only tries
#   that reached the network: a modem without coverage says nothing about a
#   receiver), they go to the secondary;
# - while on the secondary, the primary is probed every probe_ms (an empty
#   POST, which a centre answers with its signed refusal: proof enough that it
#   is there and holds its key); the first authenticated answer brings the
#   device back;
# - while on the primary, the secondary is probed every probe_ms too, so that
#   both are supervised; a receiver that has not answered for after_ms is
#   "down": on_down(rx) is called once per outage (the device sends a status
#   frame st 9 receiver-down with rx, through whichever receiver answers);
# - both down: tries alternate between them, after_ms on each (a receiver
#   already reported down is not reported again until it has answered).
#
# Everything is pre-allocated: pick() and the outcome calls allocate nothing.
from micropython import const

from sotto import frames
from sotto.ticks import ticks_add, ticks_diff

PRIMARY = const(0)
SECONDARY = const(1)


class Receiver:
    """One receiver: where (host, port, tls), its SSL context and its opener."""

    def __init__(self, host, port, tls, ctx, opener, ca_cert=None):
        self.host = host
        self.port = port
        self.tls = tls
        self.ctx = ctx  # the module's SSL context (AT+CCHSSLCFG)
        self.opener = opener  # sotto.answer.Opener of this centre's key
        self.ca_cert = ca_cert


class Paths:
    def __init__(self, primary, secondary=None, after_s=60, probe_s=300):
        self.rx = [primary, secondary]
        self.after_ms = after_s * 1000
        self.probe_ms = probe_s * 1000
        self.active = PRIMARY
        self.failing_since = [0, 0]  # ticks of the first unanswered try (valid when failing)
        self.failing = [False, False]
        self.down = [False, False]  # reported down (on_down called) for this outage
        self.answers = [0, 0]  # authenticated answers from each
        self.failures = [0, 0]
        self.switches = 0
        self.probes = 0
        self.next_probe = None  # ticks; None: a full period from the first look
        self.on_down = None  # (rx): a receiver has stopped answering
        self.on_switch = None  # (rx): frames go to rx from now on

    @property
    def dual(self):
        return self.rx[SECONDARY] is not None

    def current(self):
        return self.rx[self.active]

    def probe_due(self, now_ms):
        """The receiver to probe now (the one not in use), else -1."""
        if not self.dual:
            return -1
        if self.next_probe is None:
            self.next_probe = ticks_add(now_ms, self.probe_ms)
        if ticks_diff(now_ms, self.next_probe) < 0:
            return -1
        return 1 - self.active

    def probed(self, now_ms):
        self.probes += 1
        self.next_probe = ticks_add(now_ms, self.probe_ms)

    def answered(self, i, now_ms):
        """An authenticated answer from receiver i."""
        self.answers[i] += 1
        self.failing[i] = False
        self.down[i] = False
        if i == PRIMARY and self.active != PRIMARY:
            self._switch(PRIMARY, now_ms)  # the primary is back: go home

    def failed(self, i, now_ms):
        """A try to receiver i (post or probe) got no authenticated answer."""
        self.failures[i] += 1
        if not self.failing[i]:
            self.failing[i] = True
            self.failing_since[i] = now_ms
        if ticks_diff(now_ms, self.failing_since[i]) < self.after_ms:
            return
        if not self.down[i]:
            self.down[i] = True
            if self.on_down is not None:
                self.on_down(i)
        if i == self.active and self.dual:
            # the other one (when both are down: tries alternate, after_ms on each)
            self._switch(1 - i, now_ms)

    def _switch(self, i, now_ms):
        self.active = i
        self.switches += 1
        # the other one is probed a full period from now
        self.next_probe = ticks_add(now_ms, self.probe_ms)
        self.failing[i] = False  # its own after_ms starts at its first failure there
        if self.on_switch is not None:
            self.on_switch(i)

    def stats(self):
        return {"rx": self.active, "switches": self.switches, "probes": self.probes,
                "answers_primary": self.answers[0], "answers_secondary": self.answers[1],
                "primary_down": 1 if self.down[0] else 0, "secondary_down": 1 if self.down[1] else 0}


# -- wiring into sotto.app.Device ----------------------------------------------------
def openers(dev, cfg, sec_refusal):
    """(primary, secondary) sotto.answer.Opener of the device's centres at boot:
    None where nothing may go over the network (dev.network_error), and no
    secondary without its own centre key or with sec_refusal (a fault the
    device reports and survives: frames go to the primary alone)."""
    from sotto.answer import Opener

    if sec_refusal is not None:
        dev._fault("secondary", sec_refusal)
    if dev.network_error is not None:
        return None, None
    opener = Opener(cfg["centre_key"])
    opener.idle = dev._service_mic  # as the signer: capture never waits for an answer
    sec = None
    if sec_refusal is None and cfg["secondary"] is not None:
        sec = Opener(cfg["secondary_centre_key"])
        sec.idle = dev._service_mic
    return opener, sec


def receiver_down(dev, rx):
    """Supervision of both paths: a status frame st 9 naming rx, reported
    through whichever receiver answers."""
    try:
        dev._emit(dev._now, frames.STATUS, {frames.K_BATT: dev.power.pct,
                                            frames.K_ST: frames.ST_RECEIVER_DOWN, frames.K_RX: rx})
    except OSError as e:
        dev._fault("status", e)
