# Helpers shared by firmware tests. Runs under CPython (pytest) and inside the
# MicroPython VM (tools/vm/test.mjs), so it uses only what both have.
import os

_counter = [0]


def tmpdir(prefix="t"):
    """A fresh, empty directory: under /tmp in the VM, a tempfile dir in CPython."""
    try:
        import tempfile  # CPython only

        return tempfile.mkdtemp(prefix="sotto-" + prefix + "-")
    except ImportError:
        pass
    _counter[0] += 1
    base = "/tmp"
    try:
        os.mkdir(base)
    except OSError:
        pass
    path = "%s/%s%d" % (base, prefix, _counter[0])
    os.mkdir(path)
    return path


def raises(exc_type, func, *args, **kwargs):
    """Call func and return the exception it raised; fail if it raised nothing."""
    try:
        func(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s" % exc_type.__name__)


def unhex(text):
    """bytes.fromhex that also accepts whitespace, in both interpreters."""
    import binascii

    return binascii.unhexlify("".join(text.split()))


def data_path(relative):
    """Path of a file under tests/data/: /testdata/... in the VM (the runner
    copies tests/data there), the repository's tests/data/... under CPython."""
    try:
        os.stat("/testdata")
        return "/testdata/" + relative
    except OSError:
        pass
    here = __file__.rsplit("/", 1)[0]
    return here + "/../data/" + relative


def vector_path(relative):
    """Path of a file under tests/vectors/answers/: /testvectors/answers/... in the
    VM (the runner copies that folder there), the repository's file under CPython."""
    try:
        os.stat("/testvectors")
        return "/testvectors/answers/" + relative
    except OSError:
        pass
    here = __file__.rsplit("/", 1)[0]
    return here + "/../vectors/answers/" + relative


class DeviceRig:
    """A whole Device on a FakeHal with a fresh identity, driven on a simulated
    clock (self.t, ms ticks). cfg goes to fakehal.config(). The imports are
    here, not at the top, so tests that only want tmpdir() do not load the app."""

    def __init__(self, prefix="dev", t=1000, **cfg):
        from fakehal import FakeHal, config
        from sotto import identity
        from sotto.storage import Storage

        self.root = tmpdir(prefix)
        self.hal = FakeHal(self.root)
        st = Storage(self.root)
        identity.create(st, self.hal.random_bytes)
        self.pub = identity.public_key(st)
        self.cfg = config(**cfg)
        self.t = t
        self.boot()

    def boot(self):
        """(Re)start the Device at self.t on the same storage and config."""
        from sotto.app import Device

        self.hal.set_time(self.t)
        self.dev = Device(self.hal, self.cfg)
        assert self.dev.boot(self.t)

    def run(self, ms):
        """Step the Device until ms have passed, waking when it asks (1 s at most)."""
        from sotto.ticks import ticks_add, ticks_diff

        end = ticks_add(self.t, ms)
        while ticks_diff(end, self.t) > 0:
            self.hal.set_time(self.t)
            wait = self.dev.step(self.t)
            self.t = ticks_add(self.t, max(1, min(wait, 1000, ticks_diff(end, self.t))))

    def frames(self):
        """Every queued frame, verified against the identity: (seq, fields, audio), by seq."""
        from sotto import frames

        out = []
        for seq, wire in self.dev.queue.batch(10000, 10 ** 8):
            out.append((seq,) + frames.verify(wire, self.pub)[1:])
        out.sort(key=lambda x: x[0])
        return out

    def of(self, ftype):
        """The fields of every queued frame of type ftype, by seq."""
        from sotto import frames

        return [x[1] for x in self.frames() if x[1][frames.K_T] == ftype]
