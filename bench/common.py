"""Shared pieces of `make bench`: rows, ratios and the VM runner.

Every figure is printed next to a baseline measured in the same run (or a fixed
limit), as a ratio oriented so that above 1 means better than the baseline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.vm import run_source


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "unit": self.unit, "baseline": self.baseline,
                "ratio": self.ratio, "target": self.target, "note": self.note}


def lower_is_better(name: str, value: float, unit: str, baseline: float, **kw: str) -> Row:
    """A cost (time, bytes): ratio = baseline / value."""
    return Row(name, value, unit, baseline, baseline / value if value else None, **kw)


def higher_is_better(name: str, value: float, unit: str, baseline: float, **kw: str) -> Row:
    """A rate (frames/s, x real time): ratio = value / baseline."""
    return Row(name, value, unit, baseline, value / baseline if baseline else None, **kw)


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Best wall time per call, in seconds (least disturbed by a noisy machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def vm(source: str, **kw: object) -> str:
    """Run MicroPython source in the VM and return its stdout."""
    return run_source(source, **kw)  # type: ignore[arg-type]


def vm_result(source: str, files: dict[str, list[Path]] | None = None) -> dict[str, Any]:
    """Run a VM benchmark script that prints one `RESULT {json}` line; return
    the JSON. files: VM directory -> host files copied into it first."""
    files = {"/bench": [Path(__file__).with_name("vm_timing.py")], **(files or {})}
    source = "import sys\nsys.path.insert(0, '/bench')\n" + source
    with tempfile.TemporaryDirectory(prefix="sotto-bench-") as tmp:
        puts = {}
        for i, (vm_dir, paths) in enumerate(files.items()):
            host = Path(tmp) / str(i)
            host.mkdir()
            for path in paths:
                shutil.copy(path, host / path.name)
            puts[host] = vm_dir
        out = vm(source, puts=puts)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def raw_verify_rate(frames: list[bytes], keys: dict[bytes, Any], repeat: int = 3) -> float:
    """Frames/s of cryptography's raw Ed25519 verify of the frames' Sig_structures on
    one core, best of `repeat` (the floor of any receiver's per-frame work).
    keys: device id -> Ed25519PublicKey."""
    from host_tools.frames import decode_frame

    decoded = [decode_frame(w) for w in frames]
    jobs = [(keys[f.kid], f.signature, f.sig_structure) for f in decoded]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for key, sig, msg in jobs:
            key.verify(sig, msg)
        best = min(best, time.perf_counter() - t0)
    return len(jobs) / best


def process_tree(pid: int) -> list[int]:
    """pid and its live descendants (a receiver's verify worker processes, say)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of pid and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def runqueue_wait_s(pid: int | None = None) -> float:
    """Seconds the threads of process `pid` (default: this one) and its live
    descendants have spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat,
    second field): how much a loaded machine delayed them, apart from their own CPU
    time. NaN where not available."""
    total = 0
    try:
        for p in process_tree(os.getpid() if pid is None else pid):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int((task / "schedstat").read_text().split()[1])
    except OSError:
        return float("nan")
    return total / 1e9


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full
    (TcpExt ListenOverflows, this network namespace: other listeners' included)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()
                 if ln.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1], strict=True))["ListenOverflows"])
    except (OSError, IndexError, KeyError, ValueError):
        return -1
