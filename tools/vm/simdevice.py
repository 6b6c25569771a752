# The simulator's device inside the MicroPython VM (run by tools/vm/simdevice.mjs
# for simulator/vmruntime.py): the firmware's Device, unchanged, over a HAL
# whose other side is the simulator's SimHal and virtual parts.
#
# One request, one answer, each a JSON line (handle(line) -> line):
#   {"op": "boot", "ticks", "utc", "in", "board", "root"}   a fresh Device (power on), boot()
#   {"op": "step", "ticks", "utc", "in"}                     one Device.step()
#   {"op": "rest", "ticks", "utc", "in", "now", "cap"}       Device.rest(now, cap) after a step
#   {"op": "query", "what": "queue" | "batch" | "pending"}   what the simulator reads of the Device
#   {"op": "cut", "ops", "done"}                             arm (ops > 0) or call off a flash-op power cut
# Answers: {"ops": [...], "wait" | "slept" | "ok"/"error" | "lost" | "crash", "live", "cut"}.
#
# "in" is what the parts hold for the firmware at that moment: button edges
# not yet taken ("e"), the bytes the GNSS and modem UARTs have for it ("g",
# "m", hex), the microphone words produced and not yet read ("mic", hex), the
# battery in mV ("mv"). Time stands still during a pass, so the HAL reads from
# these, and accelerometer edges ("a") on a board with one; what it took comes
# back as ops (["rd", channel, n], ["edges"], ["accel"]), with
# everything else the firmware did that cannot change a later read in the same
# pass (["w", hex] to the modem, ["haptic", on], ["reset"], ["wdt"], ["sleep", ms]) and what
# the Device told its observer (["obs", name, args]) and its log (["log", text]),
# in order. A call that can change what the parts hold (PWRKEY, GNSS power,
# microphone start/stop) or that needs an answer (random_bytes) goes to the
# simulator at once: _simlink.call(line) sends the ops so far and the call, and
# returns the result and fresh "in". So the simulator's parts see the same
# calls in the same order, at the same virtual time, as under CPython.
import binascii
import gc
import json

import _simlink
import vfs
from flashcut import FlashCut, PowerLoss
from hostflash import FlashVfs
from sotto import log
from sotto.app import Device


def _enc(x):
    # JSON for what the observer hears: bytes as {"hex": ...}
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"hex": binascii.hexlify(x).decode()}
    if isinstance(x, (list, tuple)):
        return [_enc(v) for v in x]
    return x


class _Link:
    """The pass in progress: inputs from the simulator, ops going back."""

    def __init__(self):
        self.ops = []
        self.ticks = 0
        self.utc = 0
        self.taken = {"g": 0, "m": 0, "mic": 0}
        self.data = {"g": b"", "m": b"", "mic": b""}
        self.edges = []
        self.accel = []
        self.mv = 0

    def take_in(self, snap):
        for ch in ("g", "m", "mic"):
            self.data[ch] = binascii.unhexlify(snap[ch])
            self.taken[ch] = 0
        self.edges = [tuple(e) for e in snap["e"]]
        self.accel = [tuple(e) for e in snap.get("a", ())]
        self.mv = snap["mv"]

    def flush(self):
        ops = self.ops
        for ch in ("g", "m", "mic"):
            n = self.taken[ch]
            if n:
                ops.append(["rd", ch, n])
                self.data[ch] = self.data[ch][n:]
                self.taken[ch] = 0
        self.ops = []
        return ops

    def call(self, name, *args):
        line = json.dumps({"call": name, "args": list(args), "ops": self.flush()})
        reply = json.loads(_simlink.call(line))
        self.take_in(reply["in"])
        return reply.get("ret")

    def avail(self, ch):
        return len(self.data[ch]) - self.taken[ch]

    def read(self, ch, n):
        pos = self.taken[ch]
        k = len(self.data[ch]) - pos
        if n is not None and 0 <= n < k:
            k = n
        self.taken[ch] = pos + k
        return self.data[ch][pos:pos + k]


class _Uart:
    def __init__(self, link, ch):
        self._link = link
        self._ch = ch

    def any(self):
        return self._link.avail(self._ch)

    def read(self, n=-1):
        data = self._link.read(self._ch, n)
        return data if data else None

    def write(self, b):
        if self._ch == "m":
            self._link.ops.append(["w", binascii.hexlify(b).decode()])
        return len(b)


class LinkHal:
    """sotto.hal's interface, answered by the simulator (see the header)."""

    def __init__(self, link, board, storage_root):
        self._link = link
        self.board = board
        self.storage_root = storage_root
        self.gnss_uart = _Uart(link, "g")
        self.modem_uart = _Uart(link, "m")
        if "accel" in board:  # as on the device: only a board with an accelerometer has it
            self.accel_events = self._accel_events

    def _accel_events(self):
        edges = self._link.accel
        if not edges:
            return []
        self._link.accel = []
        self._link.ops.append(["accel"])
        return edges

    def button_edges(self):
        edges = self._link.edges
        if not edges:
            return []
        self._link.edges = []
        self._link.ops.append(["edges"])
        return edges

    def modem_pwrkey(self, level):
        self._link.call("modem_pwrkey", level)

    def gnss_power(self, on):
        self._link.call("gnss_power", bool(on))

    def mic_start(self, rate_hz):
        self._link.call("mic_start", rate_hz)

    def mic_readinto(self, buf):
        n = min(self._link.avail("mic"), len(buf)) & ~3  # whole 32-bit words
        if n <= 0:
            return 0
        buf[:n] = self._link.read("mic", n)
        return n

    def mic_stop(self):
        self._link.call("mic_stop")

    def battery_mv(self):
        return self._link.mv

    def haptic(self, on):
        self._link.ops.append(["haptic", bool(on)])

    def random_bytes(self, n):
        return binascii.unhexlify(self._link.call("random_bytes", n))

    def wdt_feed(self):
        self._link.ops.append(["wdt"])

    def reset(self):
        self._link.ops.append(["reset"])

    def sleep_until(self, ms):
        # as the simulator's HAL: not while an edge given for this pass waits to be taken
        if self._link.edges or self._link.accel:
            return False
        self._link.ops.append(["sleep", ms])
        return True

    def ticks_ms(self):
        return self._link.ticks


class _Observer:
    """The Device's observer: what it hears goes to the simulator's VirtualDevice,
    in order with the rest of the pass, for the methods it has (`observes`; any
    other is missing here too, as it would be under CPython). time_set is
    answered here at once, as the simulator does under CPython: the world's
    time is the simulator's clock."""

    def __init__(self, link, device, observes):
        self._link = link
        self._device = device
        self._observes = observes

    def time_set(self, epoch_s, source):
        if "time_set" not in self._observes:
            raise AttributeError("time_set")
        self._device.clock.reanchor(self._link.utc, self._link.ticks)

    def __getattr__(self, name):
        if name not in self._observes:
            raise AttributeError(name)
        link = self._link

        def forward(*args):
            link.ops.append(["obs", name, _enc(args)])

        return forward


class Runner:
    def __init__(self):
        self.link = _Link()
        self.device = None
        self.cut = FlashCut(self._note)
        self.mounted = None
        log.set_sink(self._log)

    def _log(self, line):
        self.link.ops.append(["log", line])

    def _note(self, kind, text):
        self.link.ops.append(["note", kind, text])

    def _begin(self, req):
        self.link.ops = []
        self.link.ticks = req["ticks"]
        self.link.utc = req["utc"]
        self.link.take_in(req["in"])

    def _answer(self, **out):
        out["ops"] = self.link.flush()
        session = getattr(self.device, "session", None)
        out["live"] = bool(session is not None and session.live)
        out["cut"] = self.cut.left
        return out

    def boot(self, req):
        if self.mounted != req["root"]:
            if self.mounted is not None:
                vfs.umount(self.mounted)
            vfs.mount(FlashVfs(), req["root"])
            self.mounted = req["root"]
        self.device = None
        self.cut.cancel()
        self.link = _Link()  # the RAM of the last power-on is gone
        self._begin(req)
        dev = Device(LinkHal(self.link, req["board"], req["root"].rstrip("/") + "/data"))
        try:
            ok = dev.boot(self.link.ticks)
        except PowerLoss:
            return self._answer(lost=True)
        if not ok:
            return self._answer(ok=False, error=str(dev.error))
        self.cut.install(dev.storage)
        dev.observer = _Observer(self.link, dev, req["observes"])
        self.device = dev
        return self._answer(ok=True)

    def step(self, req):
        self._begin(req)
        dev = self.device
        try:
            wait = dev.step(self.link.ticks)
        except PowerLoss:
            self.device = None
            return self._answer(lost=True)
        except Exception as e:  # noqa: BLE001 - main.py's crash path, decided by the simulator
            self.device = None
            return self._answer(crash=repr(e))
        return self._answer(wait=wait)

    def rest(self, req):
        self._begin(req)
        dev = self.device
        try:
            slept = dev.rest(req["now"], req["cap"])
        except PowerLoss:
            self.device = None
            return self._answer(lost=True)
        return self._answer(slept=slept)

    def query(self, req):
        dev = self.device
        what = req["what"]
        if what == "queue":
            return {"seqs": list(dev.queue.seqs()), "dropped": dev.queue.dropped}
        if what == "batch":
            return {"frames": _enc(dev.queue.batch(req["max_frames"], req["max_bytes"]))}
        if what == "pending":
            return {"frames": _enc(getattr(dev, "pending", []))}
        raise ValueError("no query %r" % what)

    def arm(self, req):
        if req["ops"] > 0:
            self.cut.arm(req["ops"], req["done"])
        else:
            self.cut.cancel()
        return {"cut": self.cut.left}


# The port collects after every 16 KB allocated (gc.threshold()), scanning the
# whole live heap each time; the simulator measures no heap here
# (tools/vm/heapstep.mjs does), so collect less often: about 25 % less wall time.
gc.threshold(256 * 1024)
_runner = Runner()
_OPS = {"boot": _runner.boot, "step": _runner.step, "rest": _runner.rest, "query": _runner.query,
        "cut": _runner.arm}


def handle(line):
    req = json.loads(line)
    return json.dumps(_OPS[req["op"]](req))
