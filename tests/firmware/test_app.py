# The Device's own duties, beyond the alert story (tests/firmware/test_device.py
# has that): a frame the flash refuses is held in RAM and queued later, not
# lost; uptime and time in frames across the tick wrap; a damaged alert state
# or a part that raises does not stop the device; the centre's clock.
from fwtest import DeviceRig
from sotto import frames
from sotto.app import PENDING_MAX
from sotto.storage import ENOSPC, Storage, StorageError
from sotto.ticks import TICKS_PERIOD


class Rig(DeviceRig):
    def __init__(self, t=0, **cfg):
        DeviceRig.__init__(self, "app", t, **cfg)


def _refusing(queue, n):
    """Make the next n pushes fail as a full flash does."""
    real = queue.push
    left = [n]

    def push(wire, ftype, seq):
        if left[0] > 0:
            left[0] -= 1
            raise StorageError(ENOSPC, "flash-full", "q/x")
        return real(wire, ftype, seq)

    queue.push = push
    return left


def test_an_alert_start_the_flash_refuses_is_queued_when_it_can_be():
    r = Rig()
    r.run(1000)
    left = _refusing(r.dev.queue, 4)  # the flash refuses everything for about 4 s
    r.hal.press(r.t + 100, 3200)
    r.run(3400)
    assert r.dev.pending and r.dev.pending[0][1] == frames.ALERT_START
    assert not r.of(frames.ALERT_START)
    assert r.dev.faults["queue"] >= 1
    r.run(10000)
    assert left[0] == 0 and not r.dev.pending
    starts = r.of(frames.ALERT_START)
    assert len(starts) == 1 and r.dev.lost == 0
    alert = [(f, w) for _, f, w in r.frames() if frames.K_SID in f]
    assert alert[0][0][frames.K_T] == frames.ALERT_START
    audio = [f for f, _ in alert if f[frames.K_T] == frames.AUDIO]
    assert [f[frames.K_OFF] for f in audio] == [8000 * i for i in range(len(audio))]  # none lost
    seqs = [s for s, _, _ in r.frames()]
    assert seqs == sorted(set(seqs))


def test_ram_holds_the_frames_that_must_not_be_lost_first():
    r = Rig()
    r.run(1000)
    _refusing(r.dev.queue, 10 ** 6)  # a flash that never comes back
    r.hal.press(r.t + 100, 3200)
    r.run(30000)  # alert-start, audio, locations: all refused
    kinds = [p[1] for p in r.dev.pending]
    assert kinds[0] == frames.ALERT_START and len(kinds) <= PENDING_MAX + 1
    assert r.dev.lost > 0  # audio given up, counted
    for i in range(3):
        r.hal.press(r.t + 100 + 300 * i, 100)
    r.run(3000)
    kinds = [p[1] for p in r.dev.pending]
    assert frames.ALERT_START in kinds and frames.CANCEL in kinds


def test_uptime_and_time_in_frames_across_the_tick_wrap():
    start = TICKS_PERIOD - 5000
    r = Rig(t=start, heartbeat_every_s=60)
    r.dev.clock.set_network(1795000000, start)
    r.run(130 * 1000)
    hb = r.of(frames.HEARTBEAT)
    assert len(hb) == 2
    assert [f[frames.K_UP] for f in hb] == [60000, 120000]  # the tick wrapped 5 s in
    assert [f[frames.K_TIME] for f in hb] == [1795000060, 1795000120]


def test_a_damaged_alert_state_does_not_stop_the_boot():
    r = Rig()
    st = Storage(r.root)
    st.write_atomic("alert", b"\x00" * 19 + b"garbage")
    r.boot()
    assert r.dev.ready and not r.dev.session.live
    r.hal.press(r.t + 100, 3200)
    r.run(5000)
    assert len(r.of(frames.ALERT_START)) == 1


def test_every_frame_is_signed_with_a_fresh_seq_and_the_device_key():
    r = Rig(heartbeat_every_s=60)
    r.hal.press(1000, 3200)
    r.run(130 * 1000)
    got = r.frames()
    seqs = [s for s, _, _ in got]
    assert len(seqs) == len(set(seqs)) and all(f[frames.K_SEQ] == s for s, f, _ in got)
    assert r.dev.frames_made == len(got)


class Watcher:
    """A Device observer that writes down what it is told."""

    def __init__(self):
        self.made = []
        self.acked = []
        self.times = []
        self.haptics = []

    def frame_made(self, seq, ftype, wire):
        self.made.append((seq, ftype, bytes(wire)))  # a view of the frame buffer: copied to keep

    def frames_acked(self, seqs):
        self.acked.append(list(seqs))

    def time_set(self, epoch_s, source):
        self.times.append((epoch_s, source))

    def haptic_played(self, pattern):
        self.haptics.append(pattern)


def test_the_observer_hears_frames_acks_time_and_haptics_from_the_firmware():
    r = Rig()
    booted = r.dev.queue.seqs()  # the boot status frame, made before anyone watched
    w = Watcher()
    r.dev.observer = w
    r.hal.press(1000, 3200)  # an alert: hold
    r.run(6000)
    queued = [(seq, wire) for seq, wire in r.dev.queue.batch(10000, 10 ** 8) if seq not in booted]
    assert len(queued) > 1 and sorted((s, wire) for s, _, wire in w.made) == sorted(queued)
    start = [m for m in w.made if m[1] == frames.ALERT_START]
    assert len(start) == 1 and frames.verify(start[0][2], r.pub)[1][frames.K_SEQ] == start[0][0]
    assert w.haptics == ["confirm"]  # the covert confirmation of the hold
    r.dev.queue.ack([start[0][0]])  # what the delivery does when the centre stored it
    assert w.acked == [[start[0][0]]] and start[0][0] not in r.dev.queue.seqs()
    r.dev.delivery.on_time(1795000000)  # a signed answer carried the centre's clock
    assert w.times == [(1795000000, "network")]
    assert r.dev.clock.utc_s(r.t) == 1795000000


def test_without_an_observer_the_device_runs_the_same():
    a, b = Rig(), Rig()
    b.dev.observer = Watcher()
    for r in (a, b):
        r.hal.press(1000, 3200)
        r.run(8000)
    seqs = [[s for s, _ in r.dev.queue.batch(10000, 10 ** 8)] for r in (a, b)]
    assert seqs[0] == seqs[1]
    assert a.hal.motor == b.hal.motor and a.dev.frames_made == b.dev.frames_made > 1


def test_the_boot_only_modules_can_be_forgotten_and_the_device_runs_on():
    # main.py drops sotto.config and sotto.identity after boot: nothing after it needs them
    import sys

    import sotto
    from sotto import app

    kept = {n: sys.modules["sotto." + n] for n in app.BOOT_ONLY if "sotto." + n in sys.modules}
    try:
        r = Rig()
        # the callbacks sotto.startup wires hold its globals: a boot-only module kept there would stay
        from sotto import startup

        boot_only = [sys.modules["sotto." + n] for n in app.BOOT_ONLY]
        assert not [v for v in startup.__dict__.values() if any(v is m for m in boot_only)]
        app.forget_boot_modules()
        assert not [n for n in app.BOOT_ONLY if "sotto." + n in sys.modules or n in sotto.__dict__]
        r.hal.press(r.t + 1000, 3200)
        r.run(8000)
        assert r.dev.session.live and r.dev.frames_made > 2
        assert not [n for n in app.BOOT_ONLY if "sotto." + n in sys.modules]  # nothing imported them again
    finally:
        for n, m in kept.items():  # the other tests hold these very modules
            sys.modules["sotto." + n] = m
            setattr(sotto, n, m)
