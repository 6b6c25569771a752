"""The VM runtime: a virtual device's firmware in the MicroPython VM instead of
under CPython, driven by the same clock, parts and receiver.

    dev = VirtualDevice(spec, clock, receiver, flash_dir, runtime="vm")

A Node process (tools/vm/simdevice.mjs) hosts the VM with the firmware package
and tools/vm/simdevice.py; the device's flash is the simulator's flash folder,
mounted in the VM at the same path. For each pass the simulator sends the time
(ticks and the world's UTC) and what its parts hold for the firmware
(SimHal.inputs(): button edges, GNSS and modem UART bytes, microphone words,
battery mV); the VM runs Device.step() over a HAL that reads from those and
answers with what the firmware did, in order: bytes it took, modem writes,
haptic, resets, the observer's calls (frames made and acknowledged, haptic
patterns) and its log lines. Those are replayed here on the SimHal and the
VirtualDevice, so the parts, the timeline and dev.made come out as under
CPython. Calls that change what the parts hold within a pass (PWRKEY, GNSS
power, microphone start/stop) or that need an answer (random_bytes) come
back during the pass and are answered at once, with the parts' fresh inputs.

Every byte the firmware took is checked against what the part gives when the
read is replayed: a runtime that drifted from the simulator's parts stops
with VmBridgeError instead of producing frames nobody can trust.

What the VM runtime shows that CPython does not: the firmware running on
MicroPython itself (32-bit small ints, MicroPython's modules, its json, its
struct, its exceptions), with the same inputs at the same virtual times; same
seed, same clock, same inputs give the same signed bytes (Ed25519 is
deterministic), which tests/simulator/test_vm_runtime.py checks frame by frame.
What it does not: device timing (virtual time stands still during a pass, as
under CPython) and heap limits (tools/vm/heapstep.mjs measures the heap).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from host_tools.errors import SottoError
from host_tools.vm import VM_PACKAGE, VMError, node_binary
from simulator.clock import VirtualClock
from simulator.flashcut import PowerLoss
from simulator.hal import Inputs, SimHal

REPO = Path(__file__).resolve().parent.parent
SIMDEVICE = REPO / "tools" / "vm" / "simdevice.mjs"
OBSERVED = ("frame_made", "frames_acked", "haptic_played", "time_set")  # VirtualDevice's observer methods


class VmBridgeError(SottoError, RuntimeError):
    """The VM runtime failed: Node or the VM missing, the VM process gone, or
    the firmware in the VM took bytes the simulator's parts do not give."""


class FirmwareCrash(Exception):
    """An exception out of Device.step() in the VM; repr() is the VM's own."""

    def __repr__(self) -> str:
        return str(self.args[0])


def _hex(b: bytes) -> str:
    return b.hex()


def _dec(x: Any) -> Any:
    if isinstance(x, dict) and set(x) == {"hex"}:
        return bytes.fromhex(x["hex"])
    if isinstance(x, list):
        return [_dec(v) for v in x]
    return x


class VmProcess:
    """The Node process and its line protocol (tools/vm/simdevice.py's header)."""

    def __init__(self, flash_dir: Path, on_call: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        if not VM_PACKAGE.exists():
            raise VmBridgeError("the MicroPython VM is not installed; run `make setup` (npm ci)")
        try:
            node = node_binary()
        except VMError as e:
            raise VmBridgeError(str(e)) from None
        self._on_call = on_call
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - kept while the process runs
        self.proc = subprocess.Popen([node, str(SIMDEVICE), "--flash", str(flash_dir)], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.requests = 0
        ready = self._line()
        if "ready" not in ready:
            raise self._failed(f"the VM did not start: {ready}")

    def _failed(self, what: str) -> VmBridgeError:
        self._stderr.seek(0)
        tail = self._stderr.read()[-3000:].decode(errors="replace").strip()
        self.close()
        return VmBridgeError(f"VM runtime: {what}" + (f"\n{tail}" if tail else ""))

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = self.proc.stdout.readline()
        if not raw:
            raise self._failed(f"the VM process stopped (exit status {self.proc.poll()})")
        msg: dict[str, Any] = json.loads(raw)
        if "fatal" in msg:
            raise self._failed(f"simdevice.py failed:\n{msg['fatal']}")
        return msg

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failed("the VM process stopped") from None

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send a request; answer the firmware's calls until its answer comes."""
        self.requests += 1
        self._send(msg)
        while True:
            got = self._line()
            if "call" not in got:
                return got
            self._send(self._on_call(got))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


class _Queue:
    """What the simulator reads of the VM Device's queue (sotto.queue.FrameQueue)."""

    def __init__(self, rt: VmRuntime) -> None:
        self._rt = rt

    def seqs(self) -> list[int]:
        return list(self._rt.query("queue")["seqs"])

    @property
    def dropped(self) -> int:
        return int(self._rt.query("queue")["dropped"])

    def batch(self, max_frames: int, max_bytes: int) -> list[tuple[int, bytes]]:
        got = self._rt.query("batch", max_frames=max_frames, max_bytes=max_bytes)
        return [(int(seq), wire) for seq, wire in _dec(got["frames"])]


class _Session:
    def __init__(self, rt: VmRuntime) -> None:
        self._rt = rt

    @property
    def live(self) -> bool:
        return self._rt.live


class VmDevice:
    """The firmware Device in the VM, as the VirtualDevice drives it: the same
    boot(now_ms) / step(now_ms) and the few members the simulator reads."""

    def __init__(self, rt: VmRuntime) -> None:
        self._rt = rt
        self.error: str | None = None
        self.queue = _Queue(rt)
        self.session = _Session(rt)

    def boot(self, now_ms: int) -> bool:
        ok, self.error = self._rt.boot(now_ms)
        return ok

    def step(self, now_ms: int) -> int:
        return self._rt.step(now_ms)

    def rest(self, now_ms: int, cap_ms: int) -> int:
        return self._rt.rest(now_ms, cap_ms)

    @property
    def pending(self) -> list[tuple[bytes, int, int]]:
        return [(w, int(t), int(s)) for w, t, s in _dec(self._rt.query("pending")["frames"])]


class VmRuntime:
    """One virtual device's VM: started on the first boot, kept across reboots
    (as under CPython, the firmware's modules stay imported; every boot builds a
    fresh Device and HAL over the same flash)."""

    name = "vm"

    def __init__(self, hal: SimHal, clock: VirtualClock, flash_dir: Path, observer: Any) -> None:
        self.hal = hal
        self.clock = clock
        self.flash_dir = Path(flash_dir).resolve()
        self.observer = observer  # the VirtualDevice: frame_made, ..., note()
        self.live = False
        self.cut_left = 0
        self.passes = 0
        self._proc: VmProcess | None = None
        self._given: dict[str, bytes] = {}  # what the firmware was handed this pass, per channel
        self._taken: dict[str, int] = {}

    # -- the VirtualDevice's side ------------------------------------------------------
    def new_device(self) -> VmDevice:
        return VmDevice(self)

    def watch(self, dev: VmDevice) -> None:
        """Nothing to do: the VM attaches its observer and flash seam at boot."""

    def arm_cut(self, ops: int, done: bool | None) -> None:
        self.cut_left = int(self._request({"op": "cut", "ops": ops, "done": done})["cut"])

    def cancel_cut(self) -> None:
        self.arm_cut(0, None)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()
            self._proc = None

    # -- passes --------------------------------------------------------------------------
    def boot(self, now_ms: int) -> tuple[bool, str | None]:
        self.live = False
        got = self._pass({"op": "boot", "board": self.hal.board, "root": str(self.flash_dir),
                          "observes": list(OBSERVED)}, now_ms)
        if got.get("lost"):
            raise PowerLoss
        return bool(got["ok"]), got.get("error")

    def step(self, now_ms: int) -> int:
        got = self._pass({"op": "step"}, now_ms)
        self.passes += 1
        if got.get("lost"):
            raise PowerLoss
        if "crash" in got:
            raise FirmwareCrash(got["crash"])
        return int(got["wait"])

    def rest(self, now_ms: int, cap_ms: int) -> int:
        """Device.rest(now_ms, cap_ms) in the VM (its sleep_until is replayed here)."""
        got = self._pass({"op": "rest", "now": now_ms, "cap": cap_ms}, now_ms)
        if got.get("lost"):
            raise PowerLoss
        return int(got.get("slept", 0))

    def query(self, what: str, **args: Any) -> dict[str, Any]:
        return self._request({"op": "query", "what": what, **args})

    def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._proc is None:
            self._proc = VmProcess(self.flash_dir, self._call)
        return self._proc.request(msg)

    def _pass(self, msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
        msg.update(ticks=now_ms, utc=int(self.clock.utc()), **{"in": self._inputs()})
        got = self._request(msg)
        self._replay(got["ops"])
        self.live = bool(got.get("live"))
        self.cut_left = int(got.get("cut", 0))
        return got

    def _inputs(self) -> dict[str, Any]:
        inp: Inputs = self.hal.inputs()
        self._given = {"g": inp.gnss, "m": inp.modem, "mic": inp.mic}
        self._taken = {"g": 0, "m": 0, "mic": 0}
        return {"e": [[t, p] for t, p in inp.edges], "g": _hex(inp.gnss), "m": _hex(inp.modem),
                "mic": _hex(inp.mic), "mv": inp.battery_mv, "a": [[t, k] for t, k in inp.accel]}

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The firmware in the VM calls the HAL in the middle of a pass."""
        self._replay(msg["ops"])
        hal, args, ret = self.hal, msg["args"], None
        name = msg["call"]
        if name == "modem_pwrkey":
            hal.modem_pwrkey(int(args[0]))
        elif name == "gnss_power":
            hal.gnss_power(bool(args[0]))
        elif name == "mic_start":
            hal.mic_start(int(args[0]))
        elif name == "mic_stop":
            hal.mic_stop()
        elif name == "random_bytes":
            ret = _hex(hal.random_bytes(int(args[0])))
        else:
            raise VmBridgeError(f"VM runtime: the firmware called an unknown HAL function {name!r}")
        return {"ret": ret, "in": self._inputs()}

    def _replay(self, ops: list[list[Any]]) -> None:
        """What the firmware did during the pass, on the simulator's side, in order."""
        hal, obs = self.hal, self.observer
        for op in ops:
            kind = op[0]
            if kind == "rd":
                self._take(op[1], int(op[2]))
            elif kind == "edges":
                hal.button_edges()
            elif kind == "accel":
                hal.accel_events()
            elif kind == "w":
                hal.modem_uart.write(bytes.fromhex(op[1]))
            elif kind == "haptic":
                hal.haptic(bool(op[1]))
            elif kind == "reset":
                hal.reset()
            elif kind == "wdt":
                hal.wdt_feed()
            elif kind == "sleep":
                hal.sleep_until(int(op[1]))
            elif kind == "log":
                obs.note("log", op[1])
            elif kind == "note":
                obs.note(op[1], op[2])
            elif kind == "obs":
                getattr(obs, op[1])(*_dec(op[2]))
            else:
                raise VmBridgeError(f"VM runtime: unknown op {kind!r} from the VM")

    def _take(self, ch: str, n: int) -> None:
        """The firmware read n bytes of channel ch: take them from the part, and
        check they are the bytes it was given."""
        pos = self._taken[ch]
        want = self._given[ch][pos:pos + n]
        if ch == "g":
            got = self.hal.gnss_uart.read(n) or b""
        elif ch == "m":
            got = self.hal.modem_uart.read(n) or b""
        else:
            buf = bytearray(n)
            got = bytes(buf[:self.hal.mic_readinto(buf)])
        if got != want or len(got) != n:
            raise VmBridgeError(f"VM runtime: the firmware read {n} bytes of {ch!r} that the simulator's "
                                f"part does not give ({len(got)} bytes, {'same' if got == want else 'other'} "
                                "content): the runtime and the parts disagree")
        self._taken[ch] = pos + n
