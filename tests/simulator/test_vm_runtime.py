"""The simulator's VM runtime: the firmware inside the MicroPython VM, driven by
the simulator's clock and parts, makes the frames the CPython runtime makes,
byte for byte, from the same scenario (same seed, same clock, same inputs).

The covert SOS runs in the default lane; every other shipped scenario of up to
an hour runs in `make simvm` (marker vm_scenarios, part of `make test`). A day
of heartbeats is left to `sotto sim run --runtime vm`: the firmware polls its
modem every 50 ms while idle, 1.7 million passes a day, 5-7 minutes in
the VM.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulator.clock import VirtualClock
from simulator.device import DeviceSpec, VirtualDevice
from simulator.run import RunResult, run_scenario
from simulator.scenario import ScenarioError, load, parse
from simulator.vmruntime import VmBridgeError, VmDevice

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))
HOUR_MS = 3_600_000
VM_LANE = [p for p in SCENARIOS if p.stem != "covert_sos" and load(p).duration_ms <= HOUR_MS]


def both_ways(path: Path, tmp_path: Path) -> tuple[RunResult, RunResult]:
    sc = load(path)
    cp = run_scenario(sc, tmp_path / "cpython", runtime="cpython")
    return cp, run_scenario(sc, tmp_path / "vm", runtime="vm")


def timeline(result: RunResult) -> list[tuple[int, str, str]]:
    """The timeline, with the run's own receiver port (the one thing two runs do not share) masked."""
    port = str(result.receiver.port)
    return [(t, kind, text.replace(port, "PORT")) for t, kind, text in result.device.timeline]


def assert_same_device(cp: RunResult, vm: RunResult) -> None:
    assert isinstance(vm.device.device, VmDevice) or vm.device.device is None
    assert vm.device.runtime.name == "vm" and vm.device.runtime.passes > 100  # the VM really ran it
    made_cp, made_vm = cp.device.made, vm.device.made
    for a, b in zip(made_cp, made_vm, strict=False):
        # the bytes and the time of making: nothing of the host's speed or of chance
        # (a run's throwaway PKI, simulator/pki.py) may move the timeline
        assert a == b, f"frame seq {a[1]} (made at {a[0]} ms) differs: VM {b[:3]}"
    assert len(made_vm) == len(made_cp)
    assert vm.device.acked == cp.device.acked
    assert vm.device.haptic_patterns == cp.device.haptic_patterns
    for log in ("haptic_log", "gnss_log", "mic_log"):
        assert getattr(vm.device.hal, log) == getattr(cp.device.hal, log), log
    assert (vm.device.boots, vm.device.power_cuts, vm.device.crashes) == \
        (cp.device.boots, cp.device.power_cuts, cp.device.crashes)
    assert timeline(vm) == timeline(cp)
    assert [c.line() for c in cp.failures] == []
    assert [c.line() for c in vm.failures] == []
    assert [c.name for c in vm.checks] == [c.name for c in cp.checks] == list(vm.scenario.expect)


def test_covert_sos_in_the_vm_makes_the_cpython_frames_byte_for_byte(tmp_path):
    cp, vm = both_ways(REPO / "scenarios" / "covert_sos.toml", tmp_path)
    assert_same_device(cp, vm)
    kinds = [ftype for _t, _seq, ftype, _wire in vm.device.made]
    assert kinds.count(3) >= 30 and kinds.count(1) == 1  # 30 s of audio after one alert-start
    assert {seq for _t, seq in vm.device.acked} == {seq for _t, seq, _ty, _w in vm.device.made}


@pytest.mark.vm_scenarios
@pytest.mark.parametrize("path", VM_LANE, ids=[p.stem for p in VM_LANE])
def test_scenario_in_the_vm_makes_the_cpython_frames_byte_for_byte(path, tmp_path):
    cp, vm = both_ways(path, tmp_path)
    assert_same_device(cp, vm)


class _Rx:  # enough of a receiver to provision and boot a device (no network is used)
    pki = None
    host, port, sms_url = "127.0.0.1", 9, "http://127.0.0.1:9/v1/sms"
    centre_public_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()

    def register(self, *args: object) -> None:
        pass


def test_the_vm_runtime_stops_when_the_firmware_reads_bytes_the_parts_do_not_give(tmp_path):
    clock = VirtualClock()
    dev = VirtualDevice(DeviceSpec(device_id=b"VMBRIDGE", runtime="vm"), clock, _Rx(), tmp_path)
    try:
        dev.provision()
        dev.boot()
        assert isinstance(dev.device, VmDevice)
        clock.advance_to(dev.step())
        real = dev.hal.inputs

        def with_phantom_gnss():  # bytes the GNSS part never produced
            inp = real()
            return type(inp)(inp.edges, inp.gnss + b"$GPTXT,01,01,02,phantom*00\r\n", inp.modem, inp.mic,
                             inp.battery_mv)

        dev.hal.inputs = with_phantom_gnss  # type: ignore[method-assign]
        with pytest.raises(VmBridgeError) as e:
            dev.step()
        assert "the firmware read" in str(e.value) and "'g'" in str(e.value)
    finally:
        dev.close()


def test_the_runtime_is_part_of_the_scenario_and_checked():
    sc = parse({"duration_s": 10, "device": {"runtime": "vm"}})
    assert sc.runtime == "vm"
    assert parse({"duration_s": 10}).runtime == "cpython"
    with pytest.raises(ScenarioError) as e:
        parse({"duration_s": 10, "device": {"runtime": "jython"}})
    assert "device.runtime: one of cpython, vm" in str(e.value)


def test_sim_run_cli_runs_the_firmware_in_the_vm():
    p = REPO / "scenarios" / "false_alarm_cancelled.toml"
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "sim", "run", str(p), "--runtime", "vm"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(firmware on MicroPython VM)" in proc.stdout
    assert "PASS  cancelled" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "sotto_cli", "sim", "run", str(p), "--runtime", "jython"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'jython'" in bad.stderr
