# SMS fallback: while an alert is live and data has failed for after_ms, the
# newest queued frame that carries a location (a location frame, else the
# alert-start or duress frame; <= 140 bytes) goes as one binary SMS to the
# monitoring number, then again every every_ms while data stays down. An SMS is
# not an acknowledgement: the frame stays queued until the receiver answers for
# it over data (then as a duplicate).
from micropython import const

import sotto.cbor as cbor
from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem.at import ModemError
from sotto.ticks import ticks_add, ticks_diff

T_ALERT_START = const(1)
T_LOCATION = const(2)
T_AUDIO = const(3)
T_DURESS = const(5)
SMS_MAX = const(140)

_log = Logger("delivery")


def frame_info(wire):
    """(type, seq, has_location) of a frame on the wire; audio frames: (3, None, False).
    A frame we cannot read gives (0, None, False): it still goes, and the receiver says why."""
    if wire and wire[0] == 0x82:  # [COSE_Sign1, audio]
        return T_AUDIO, None, False
    try:
        item = cbor.decode(bytes(wire))
        payload = cbor.decode(item.value[2])
        return payload.get(1), payload.get(3), 6 in payload
    except Exception:
        return 0, None, False


class SmsFallback:
    after_ms = 30000
    every_ms = 60000
    retry_ms = 10000  # after a failed SMS

    def __init__(self, modem, queue, number):
        self.modem = modem
        self.queue = queue
        self.number = number
        self.last = None  # ticks of the last SMS (or a failed try, shifted)
        self.sent = 0
        self.failed = 0

    def due(self, now, down_since, alert_live):
        if not self.number or down_since is None:
            return False
        if ticks_diff(now, down_since) < self.after_ms:
            return False
        if self.last is not None and ticks_diff(now, self.last) < self.every_ms:
            return False
        return alert_live

    def frame(self):
        """The newest queued frame with a location (else the alert-start) that fits an SMS."""
        best = None
        best_seq = -1
        fallback = None
        for ftype in (T_LOCATION, T_ALERT_START, T_DURESS):
            wire = self.queue.newest(ftype)
            if wire is None or len(wire) > SMS_MAX:
                continue
            _t, seq, has_loc = frame_info(wire)
            if has_loc and seq is not None and seq > best_seq:
                best, best_seq = wire, seq
            elif ftype == T_ALERT_START:
                fallback = wire
        return best if best is not None else fallback

    def send(self, now):
        m = self.modem
        wire = self.frame()
        if wire is None:
            self.last = now
            return
        try:
            if not m.ready:  # bringing the module back is the data path's ladder's job
                raise ModemError(0, _at.NO_POWER, "SMS")
            if not m.is_registered() and not (yield from m.registration()):
                raise ModemError(0, _at.NOT_REGISTERED, "SMS")
            mr = yield from m.send_sms(self.number, wire)
        except ModemError as e:
            self.failed += 1
            self.last = ticks_add(now, self.retry_ms - self.every_ms)  # again sooner
            _log.w("SMS fallback failed: %s", e)
            return
        self.sent += 1
        self.last = now
        _log.i("SMS fallback sent (%d bytes, ref %d)", len(wire), mr)
