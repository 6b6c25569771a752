# Power cut at every flash operation of a whole alert's queue traffic: after
# recovery no queued frame is lost, none is duplicated, no acknowledged frame
# comes back, every frame is byte-exact, and the queue carries on.
#
# A whole alert: a heartbeat waiting, the alert-start (delivered alone and
# first), 30 audio chunks, 40 locations (10 min at 15 s), the end; delivery
# acknowledges in batches, with a network outage in the middle. For EVERY N the
# N-th write, rename or remove fails (power off from then on), once with the
# operation not done and once done just before the power goes. Audio payloads
# are small (300 bytes) so that the ~900 runs stay fast in the MicroPython VM;
# test_queue.py checks capacity with real 4 KB chunks.
from faultstorage import FaultStorage
from fwtest import tmpdir
from sotto import frames
from sotto.queue import FrameQueue, record_bytes
from sotto.storage import Storage

A, L, AU, E, H = frames.ALERT_START, frames.LOCATION, frames.AUDIO, frames.END, frames.HEARTBEAT
SIZES = {A: 132, L: 137, AU: 300, E: 127, H: 115}


def wire(seq, ftype):
    n = SIZES[ftype]
    b = bytearray(n)
    for i in range(n):
        b[i] = (seq * 29 + i * 7 + ftype) & 0xFF
    return bytes(b)


def alert_ops():
    """[("push", seq, type) | ("ack", [seqs])], and the model's queue after
    each op: states[k] is what is queued once ops[:k] returned."""
    ops = []
    queued = []  # the model: seqs in delivery order (no drops: the queue has room)
    seq = [0]

    def push(t):
        seq[0] += 1
        ops.append(("push", seq[0], t))
        queued.append((seq[0], t))

    def ack(n):
        starts = [e for e in queued if e[1] == A]
        rest = [e for e in queued if e[1] != A]
        done = (starts + rest)[:n]
        if done:
            ops.append(("ack", [s for s, _ in done]))
            for e in done:
                queued.remove(e)

    push(H)
    push(A)
    ack(1)  # the alert-start alone, first
    for sec in range(1, 601):
        if sec <= 30:
            push(AU)
        if sec % 15 == 0:
            push(L)
        if sec % 10 == 0 and not 100 <= sec < 400:  # an outage from 100 s to 400 s
            ack(8)
    push(E)
    while queued:
        ack(8)
    states = [{}]
    model = {}
    for op in ops:
        if op[0] == "push":
            model[op[1]] = wire(op[1], op[2])
        else:
            for s in op[1]:
                del model[s]
        states.append(dict(model))
    return ops, states


def apply(q, op):
    if op[0] == "push":
        assert q.push(wire(op[1], op[2]), op[2], op[1]) is True
    else:
        q.ack(op[1])


def contents(q):
    got = q.batch(10000, 10 ** 9)
    seqs = [s for s, _ in got]
    assert len(seqs) == len(set(seqs)), "a frame duplicated"
    return dict(got)


def check_between(got, before, after, what):
    for s, w in got.items():
        assert s in before or s in after, "%s: frame %d came back or appeared" % (what, s)
        assert w == (before.get(s) or after.get(s)), "%s: frame %d changed" % (what, s)
    for s in before:
        if s in after:
            assert s in got, "%s: queued frame %d lost" % (what, s)


def test_the_model_matches_the_queue_without_cuts():
    ops, states = alert_ops()
    assert len([o for o in ops if o[0] == "push"]) == 73
    q = FrameQueue(FaultStorage(tmpdir("ref"), count_removes=True))
    for k in range(len(ops)):
        apply(q, ops[k])
        assert contents(q) == states[k + 1], "op %d" % k
    assert len(q) == 0 and q.storage.ops > 200  # 73 writes + 73 renames + 73 removes


def run_cuts(cut_after):
    ops, states = alert_ops()
    n = 0
    while True:
        n += 1
        root = tmpdir("cut")
        st = FaultStorage(root, cut_at=n, count_removes=True, cut_after=cut_after)
        q = FrameQueue(st)
        k = 0
        try:
            while k < len(ops):
                apply(q, ops[k])
                k += 1
        except OSError:
            assert st.dead, "op %d failed without a power cut" % k
        if k == len(ops):
            assert not st.dead
            return n - 1  # the cut came after the whole alert: every N is covered
        what = "cut %d (%s) in op %d %r" % (n, "after" if cut_after else "before", k, ops[k][:2])
        # boot: a second cut during recovery itself, then a clean boot
        try:
            FrameQueue(FaultStorage(root, cut_at=1, count_removes=True)).recover()
        except OSError:
            pass
        q = FrameQueue(Storage(root))
        q.storage.fsync = False
        q.recover()
        got = contents(q)
        check_between(got, states[k], states[k + 1], what)
        used = 0
        for w in got.values():
            used += record_bytes(len(w))
        assert q.used_bytes == used, what
        assert len(q.storage.listdir("q")) == len(got), what + ": stray files"
        # carry on with the rest of the alert (an interrupted ack is simply acked again)
        op = ops[k]
        if op[0] == "ack":
            q.ack(op[1])
        for later in ops[k + 1:]:
            apply(q, later)
        assert len(q) == 0 and q.storage.listdir("q") == [], what + ": not all delivered"


def test_power_cut_before_any_operation_loses_and_duplicates_nothing():
    assert run_cuts(False) > 200


def test_power_cut_just_after_any_operation_loses_and_duplicates_nothing():
    assert run_cuts(True) > 200
