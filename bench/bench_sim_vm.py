"""The simulator's VM runtime (simulator/vmruntime.py): simulated seconds per
wall second of the covert SOS with the firmware inside the MicroPython VM,
next to the same scenario with the firmware under CPython, in the same run,
against one receiver. Both figures are best of three after a first run that
pays one-time costs (the VM's start and imports, the firmware's Ed25519
tables). The note says whether the two runtimes made the same frames, byte
for byte (tests/simulator/test_vm_runtime.py requires it).

A VM figure: how fast QA gets an answer from the VM runtime, not how fast a
device runs (the VM is 8-50x faster than an ESP32, and the clock is virtual).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Row, higher_is_better
from simulator.receiver import ReceiverProcess
from simulator.run import RunResult, run_scenario
from simulator.scenario import load

REPO = Path(__file__).resolve().parent.parent


def _best(sc: object, work: Path, rx: ReceiverProcess, runtime: str) -> tuple[RunResult, RunResult]:
    cold = run_scenario(sc, work / f"{runtime}-cold", receiver=rx, runtime=runtime)  # type: ignore[arg-type]
    warm = [run_scenario(sc, work / f"{runtime}-{i}", receiver=rx, runtime=runtime)  # type: ignore[arg-type]
            for i in range(3)]
    return cold, min(warm, key=lambda r: r.wall_s)


def run() -> list[Row]:
    sc = load(REPO / "scenarios" / "covert_sos.toml")
    with tempfile.TemporaryDirectory() as d:
        rx = ReceiverProcess(Path(d) / "receiver")
        try:
            _cold_cp, cp = _best(sc, Path(d), rx, "cpython")
            cold_vm, vm = _best(sc, Path(d), rx, "vm")
        finally:
            rx.stop()
    same = vm.device.made == cp.device.made
    passes = vm.device.runtime.passes
    return [higher_is_better(
        "sim: covert SOS, firmware in the MicroPython VM (sim s per wall s) (VM)", vm.sim_s / vm.wall_s, "x",
        cp.sim_s / cp.wall_s, target="vs the CPython runtime",
        note=f"{vm.sim_s:.0f} s in {vm.wall_s:.2f} s ({passes} passes, {1000 * vm.wall_s / passes:.2f} ms "
        f"each); CPython runtime {cp.wall_s:.2f} s in the same run; first VM run {cold_vm.wall_s:.2f} s; "
        f"{len(vm.device.made)} frames, {'byte-identical' if same else 'DIFFERENT'} to CPython's")]
