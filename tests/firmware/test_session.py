# The alert session on its own, with small fakes around it: what goes first,
# the chain, audio up to the clip, locations on their interval, GNSS kept on,
# cancel and duress and their window, the end, a restart in the middle, and
# all of it across the tick wrap.
from fwtest import tmpdir
from sotto import frames, trigger
from sotto.session import Session
from sotto.storage import Storage
from sotto.ticks import TICKS_PERIOD, ticks_add, ticks_diff

FIX = (514545000, -25879000, 4, 0, frames.SRC_GNSS)


def cfg(**over):
    c = {"trigger": {"alert": {"hold_ms": 3000}, "cancel_window_s": 120},
         "location_every_s": 15, "gnss_keep_on_s": 600, "alert_max_s": 3600,
         "audio": {"clip_s": 5, "chunk_ms": 1000, "rate_hz": 8000}}
    c.update(over)
    return c


class Audio:
    """One 1 s chunk per second of running, like sotto.audio.Audio."""

    def __init__(self, log):
        self.log = log
        self.running = False
        self.total_samples = 0
        self._t0 = 0
        self._chunks = 0

    def start(self, now_ms):
        self.log.append("audio-start")
        self.running = True
        self.total_samples = 0
        self._t0 = now_ms
        self._chunks = 0

    def stop(self):
        self.log.append("audio-stop")
        self.running = False

    def poll(self, now_ms):
        if not self.running or ticks_diff(now_ms, self._t0) < (self._chunks + 1) * 1000:
            return None
        self._chunks += 1
        self.total_samples += 8000
        return (b"\x11" * 4000, 8000, 100 * self._chunks, self._chunks)

    def release(self):
        pass

    def flush(self):
        return None


class Rig:
    def __init__(self, start=0, fix=FIX, storage=None, minimal=False, **over):
        self.log = []
        self.sent = []  # (now_ms, ftype, fields, wire)
        self.fix = lambda now_ms, utc_s=None: fix  # the GNSS's fix(): this rig is the GNSS too
        self.gnss_on = []
        self.haptic = []
        self.audio = Audio(self.log)
        self.sids = [0]
        self.t = start
        self.s = Session(cfg(**over), self.emit, self, self.audio, self, gnss_power=self.power,
                         minimal=minimal, storage=storage)
        self.s.set_battery(lambda: 77)
        self.s.utc_s = lambda now_ms: 1795000000

    # fakes: haptic, power line, emit
    def confirm(self, now_ms):
        self.log.append("haptic")
        self.haptic.append(now_ms)

    def power(self, on):
        self.log.append("gnss-on" if on else "gnss-off")
        self.gnss_on.append(on)

    def emit(self, now_ms, ftype, fields, audio=None):
        wire = b"W%d" % len(self.sent)  # any bytes: the chain hashes what it is given
        self.log.append(ftype)
        self.sent.append((now_ms, ftype, dict(fields), wire))
        return wire

    def next_sid(self):
        self.sids[0] += 1
        return self.sids[0]

    def event(self, ev, at_ms=None):
        if at_ms is not None:
            self.run_to(at_ms)
        self.s.event(ev, self.t, self.next_sid)

    def run_to(self, ms):
        while ticks_diff(ms, self.t) > 0:
            wait = self.s.step(self.t)
            assert wait >= 0
            self.t = ticks_add(self.t, max(1, min(wait, ticks_diff(ms, self.t))))
        self.s.step(self.t)

    def types(self):
        return [x[1] for x in self.sent]


rig = Rig


def test_alert_start_goes_first_with_the_location_before_anything_else():
    r = rig(start=1000)
    r.event(trigger.ALERT)
    assert r.log[0] == frames.ALERT_START  # before the haptic answer, GNSS power, audio
    assert r.log[1:] == ["haptic", "gnss-on", "audio-start"]
    t, ftype, f, _ = r.sent[0]
    assert t == 1000 and f[frames.K_SID] == 1 and f[frames.K_TRIG] == frames.TRIG_HOLD
    assert frames.unpack_location(f[frames.K_LOC]) == FIX and f[frames.K_BATT] == 77
    assert frames.K_PREV not in f and frames.K_FLAGS not in f


def test_without_any_position_the_alert_still_goes_at_once():
    r = rig(fix=None)
    r.event(trigger.ALERT, 500)
    assert r.types() == [frames.ALERT_START] and frames.K_LOC not in r.sent[0][2]
    r.run_to(60000)
    assert frames.LOCATION not in r.types()  # nothing to say: no empty location frames


def test_chain_audio_clip_and_location_interval():
    r = rig()
    r.event(trigger.ALERT, 2000)
    r.run_to(2000 + 61000)
    types = r.types()
    audio = [x[2] for x in r.sent if x[1] == frames.AUDIO]
    assert len(audio) == 5  # clip_s = 5, then the microphone is off
    assert [a[frames.K_OFF] for a in audio] == [0, 8000, 16000, 24000, 32000]
    assert audio[1][frames.K_AST] == [200, 2] and audio[0][frames.K_NS] == 8000
    assert r.log.count("audio-stop") == 1 and not r.audio.running
    locs = [x[0] for x in r.sent if x[1] == frames.LOCATION]
    assert locs == [17000, 32000, 47000, 62000]
    for a, b in zip(r.sent, r.sent[1:]):
        assert b[2][frames.K_PREV] == frames.chain_link(a[3])
        assert b[2][frames.K_SID] == 1
    assert types[0] == frames.ALERT_START


def test_gnss_stays_on_after_a_trigger_even_if_cancelled_at_once():
    r = rig()
    r.event(trigger.ALERT, 1000)
    r.event(trigger.CANCEL, 4000)
    assert r.types()[-1] == frames.CANCEL and not r.s.live
    r.run_to(1000 + 600 * 1000 - 1)
    assert r.gnss_on == [True]  # still on 600 s after the trigger
    r.run_to(4000 + 600 * 1000 + 1)
    assert r.gnss_on == [True, False]


def test_cancel_window_edges_and_presses_during_an_alert():
    r = rig(trigger={"alert": {"presses": 4, "window_ms": 2000}, "cancel_window_s": 30})
    r.event(trigger.ALERT, 1000)
    r.event(trigger.ALERT, 5000)  # the alert pattern again: the same alert
    assert r.types().count(frames.ALERT_START) == 1 and r.sent[0][2][frames.K_TRIG] == frames.TRIG_PRESSES
    r.event(trigger.CANCEL, 1000 + 30000 + 1)  # just after the window
    assert frames.CANCEL not in r.types() and r.s.live and r.s.ignored == 2
    r2 = rig(trigger={"alert": {"hold_ms": 3000}, "cancel_window_s": 30})
    r2.event(trigger.ALERT, 1000)
    r2.event(trigger.CANCEL, 31000)  # at the edge: still a cancel
    assert r2.types()[-1] == frames.CANCEL and r2.sent[-1][2][frames.K_BATT] == 77
    n = len(r2.sent)
    r2.run_to(200000)
    assert len(r2.sent) == n  # nothing after a cancel
    r2.event(trigger.CANCEL)
    r2.event(trigger.DURESS)
    assert len(r2.sent) == n and not r2.s.live  # outside an alert they mean nothing


def test_duress_flags_the_rest_and_answers_like_a_cancel():
    r = rig()
    r.event(trigger.ALERT, 1000)
    r.event(trigger.DURESS, 9000)
    d = [x for x in r.sent if x[1] == frames.DURESS][0]
    assert d[2][frames.K_FLAGS] & frames.FLAG_DURESS and frames.K_LOC in d[2]
    assert r.haptic == [1000, 9000]
    r.event(trigger.CANCEL, 12000)  # a cancel after duress: the same answer, nothing changes
    assert r.haptic == [1000, 9000, 12000] and r.s.live and frames.CANCEL not in r.types()
    r.run_to(60000)
    after = [x for x in r.sent if x[0] > 9000]
    assert after and all(x[2][frames.K_FLAGS] & frames.FLAG_DURESS for x in after)


def test_end_at_max_duration_and_when_the_centre_closes():
    r = rig(alert_max_s=60)
    r.event(trigger.ALERT, 1000)
    r.run_to(1000 + 60000 + 100)
    end = [x for x in r.sent if x[1] == frames.END]
    assert len(end) == 1 and end[0][2][frames.K_WHY] == frames.WHY_MAX_DURATION and end[0][0] == 61000
    r2 = rig()
    r2.event(trigger.ALERT, 1000)
    r2.s.closed_by_centre([7, 8], 5000)  # another alert's id: nothing
    assert r2.s.live
    r2.s.closed_by_centre([1], 6000)
    assert r2.sent[-1][2][frames.K_WHY] == frames.WHY_CENTRE and not r2.s.live


def test_minimal_mode_sends_no_audio():
    r = rig(minimal=True)
    r.event(trigger.ALERT, 1000)
    r.run_to(40000)
    assert frames.AUDIO not in r.types() and "audio-start" not in r.log
    assert frames.LOCATION in r.types()


def test_an_alert_across_the_tick_wrap():
    start = TICKS_PERIOD - 20000  # the tick wraps 20 s into the alert
    r = rig(start=start, alert_max_s=120, trigger={"alert": {"hold_ms": 3000}, "cancel_window_s": 60})
    r.event(trigger.ALERT)
    r.run_to(ticks_add(start, 50000))
    locs = [x[0] for x in r.sent if x[1] == frames.LOCATION]
    assert [ticks_diff(t, start) for t in locs] == [15000, 30000, 45000]
    r.event(trigger.CANCEL, ticks_add(start, 59000))  # inside the 60 s window, after the wrap
    assert r.types()[-1] == frames.CANCEL


def test_a_restart_resumes_the_alert_and_its_chain():
    root = tmpdir("sess")
    st = Storage(root)
    r = rig(storage=st)
    r.event(trigger.ALERT, 1000)
    r.event(trigger.DURESS, 5000)
    r.run_to(20000)
    last = r.sent[-1]
    r2 = rig(storage=Storage(root), start=777)  # after the power cut: new RAM, new ticks
    assert r2.s.resume(777) and r2.s.live and r2.s.duress and r2.s.sid == 1
    r2.run_to(800)
    first = r2.sent[0]
    assert first[1] == frames.LOCATION and first[2][frames.K_PREV] == frames.chain_link(last[3])
    assert first[2][frames.K_FLAGS] & frames.FLAG_DURESS
    assert r2.gnss_on == [True]
    r2.s.closed_by_centre([1], 900)
    assert not rig(storage=Storage(root)).s.resume(1000)  # an alert that ended stays ended


def test_a_damaged_state_file_is_not_resumed():
    root = tmpdir("sess")
    st = Storage(root)
    r = rig(storage=st)
    r.event(trigger.ALERT, 1000)
    raw = bytearray(st.read("alert"))
    raw[0] ^= 0xFF
    st.write_atomic("alert", bytes(raw))
    assert not rig(storage=Storage(root)).s.resume(0)
    st.write_atomic("alert", b"short")
    assert not rig(storage=Storage(root)).s.resume(0)


def test_the_intent_is_on_flash_before_the_pulse_and_the_alert_start():
    root = tmpdir("sess")
    r = rig(storage=Storage(root))
    states = []
    emit = r.emit

    def watching(now_ms, ftype, fields, audio=None):
        states.append(Storage(root).read("alert"))
        return emit(now_ms, ftype, fields, audio)

    r.s._emit = watching
    r.event(trigger.ALERT, 1000)
    assert r.log[:2] == ["haptic", frames.ALERT_START]  # accepted once the intent is durable
    assert states[0] is not None and len(states[0]) == 30  # the intent, before any frame was made
    r.event(trigger.ALERT, 2000)  # the pattern again: the same alert, accepted again
    assert r.haptic == [1000, 2000] and r.types().count(frames.ALERT_START) == 1
