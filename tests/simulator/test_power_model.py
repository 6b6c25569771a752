"""The power model (simulator/power.py): integration over states checked against a
hand-computed case, the virtual modem's PSM (AT+CPSMS, active time, wake-up), and the
charge of whole scenarios (positive, larger with an alert than without)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from simulator.hal import load_board
from simulator.power import STATES, PowerMeter, summary_lines
from simulator.run import run_scenario
from simulator.scenario import load
from simulator.vmodem import Faults, VirtualModem
from simulator.vmodem.settings import AirRecord

REPO = Path(__file__).resolve().parents[2]
CURRENTS = {"mcu_sleep_ma": 1.0, "mcu_idle_ma": 4.0,
            "mcu_awake_ma": 11.0, "mcu_wake_ms": 2, "modem_off_ma": 0.0,
            "modem_psm_ma": 0.5, "modem_idle_ma": 5.0, "modem_edrx_ma": 1.0, "modem_connected_ma": 50.0,
            "modem_tx_ma": 250.0, "modem_tx_burst_ms": 100, "modem_rrc_tail_ms": 1000,
            "gnss_on_ma": 20.0, "mic_on_ma": 2.0, "haptic_ma": 100.0, "accel_lp_ma": 0.0}


class FakeModem:
    def __init__(self) -> None:
        self.power, self.registered, self.open_connections = "on", True, 0
        self.air: list[AirRecord] = []
        self.psm_at: int | None = None

    def psm_start_ms(self) -> int | None:
        return self.psm_at


def test_integration_over_states_matches_a_hand_computed_case():
    m = FakeModem()
    gnss, mic = SimpleNamespace(powered=False), SimpleNamespace(on=False)
    hal = SimpleNamespace(haptic_log=[], sleep_window=None)
    pm = PowerMeter(CURRENTS, 100.0, m, gnss, mic, hal)  # t=0: idle modem, CPU idle
    m.psm_at = 4000  # 0..4 s idle (5 mA), then PSM (0.5 mA) until 10 s
    pm.sample(0)  # pass 1 (CPU wake from idle: 2 ms x 7 mA extra)
    hal.sleep_window = (0, 8000)  # the firmware light-slept 8 s after pass 1 (hal.sleep_until)
    gnss.powered = True
    hal.haptic_log.append((10_000, True))
    m.air.append(AirRecord(10_000, "up", "data", 100, b"", "rx"))
    m.psm_at = None
    pm.sample(10_000)  # pass 2 (woken from sleep: 2 ms x 10 mA): a radio burst; GNSS, haptic on
    hal.haptic_log.append((12_000, False))
    pm.sample(12_000)  # pass 3 (no sleep since pass 2: from idle): 10..11 s connected, 11..12 s idle
    s = pm.summary()
    mas = {  # mA x ms, by hand: slept 0..8 s, clocked idle 8..12 s
        "mcu sleep": 1.0 * 8000, "mcu idle": 4.0 * 4000, "mcu awake": 7 * 2 + 10 * 2 + 7 * 2,
        "modem idle": 5.0 * 4000 + 5.0 * 1000, "modem psm": 0.5 * 6000, "modem connected": 50.0 * 1000,
        "modem transmitting": 200.0 * 100, "gnss on": 20.0 * 2000, "haptic": 100.0 * 2000}
    total = sum(mas.values())
    assert s["charge_mah"] == pytest.approx(total / 3.6e6, abs=1e-4)
    for k, v in mas.items():
        assert s["states"][k]["mah"] == pytest.approx(v / 3.6e6, abs=1e-4), k
        assert s["states"][k]["share"] == pytest.approx(v / total, abs=1e-4), k
    assert s["states"]["modem psm"]["s"] == 6.0 and s["states"]["modem connected"]["s"] == 1.0
    assert s["average_ma"] == pytest.approx(total / 12_000, abs=1e-3)
    assert s["days_at_this_rate"] == pytest.approx(100.0 / (total / 12_000) / 24, abs=0.01)
    assert set(s["states"]) <= set(STATES)
    assert "charge used" in summary_lines(s)[0]
    assert s["light_sleep_s"] == 8.0


def test_the_reference_board_has_every_figure_the_model_needs():
    p = load_board("sotto-ref-s3")["power"]
    assert set(CURRENTS) <= set(p)
    assert all(float(p[k]) >= 0 for k in CURRENTS)


def _settle(vm: VirtualModem, t: int) -> None:
    vm.advance(t)


def test_virtual_modem_psm_needs_the_request_and_a_grant_and_wakes_on_the_uart():
    for refused in (False, True):
        vm = VirtualModem(powered=True, faults=Faults(psm_refused=refused))
        assert vm.psm_start_ms() is None  # not requested
        vm.stream.write(b'AT+CPSMS=1,,,"00100001","00000101"\r')  # active time 5 x 2 s
        _settle(vm, 100)
        assert b"OK" in (vm.stream.read() or b"")
        start = vm.psm_start_ms()
        if refused:
            assert start is None
            continue
        assert start is not None and 10_000 <= start <= 10_200
        _settle(vm, start + 1)
        assert vm.in_psm
        vm.stream.write(b"AT\r")  # the host's bytes wake it: answered after the wake-up
        t0 = vm.now
        _settle(vm, t0 + vm.timing.psm_wake_ms - 1)
        assert not vm.stream.any() and vm.psm_wakes == 1
        _settle(vm, t0 + vm.timing.psm_wake_ms + 100)
        assert b"OK" in (vm.stream.read() or b"")
        assert not vm.in_psm


def test_cpsms_checks_its_arguments():
    vm = VirtualModem(powered=True)
    vm.cmee = 1
    vm.stream.write(b'AT+CPSMS=1,,,"0010001","00000101"\r')  # 7 bits
    _settle(vm, 100)
    assert b"+CME ERROR: 50" in (vm.stream.read() or b"")
    vm.stream.write(b"AT+CPSMS=3\r")
    _settle(vm, 200)
    assert b"+CME ERROR: 50" in (vm.stream.read() or b"")
    assert vm.psm_mode == 0


def test_a_scenario_charge_is_positive_and_larger_with_an_alert(tmp_path: Path):
    sos = load(REPO / "scenarios" / "covert_sos.toml")
    quiet = dataclasses.replace(sos, events=[], expect={})
    a = run_scenario(sos, tmp_path / "a")
    q = run_scenario(quiet, tmp_path / "q")
    ca, cq = (r.device.meter.summary(r.device.clock.now_ms) for r in (a, q))
    assert cq["charge_mah"] > 0
    assert ca["charge_mah"] > cq["charge_mah"] * 1.5, (ca, cq)
    assert ca["states"]["gnss on"]["mah"] > 0 and ca["states"]["mic on"]["mah"] > 0
    assert "gnss on" not in cq["states"]  # no location outside an alert: the GNSS stays off
    json.dumps(ca)  # the --json report carries it as is


def test_a_standby_day_lasts_at_least_14_days_on_the_reference_cell(tmp_path: Path):
    """heartbeats_day.toml: the firmware as built (light sleep between passes, PSM)."""
    r = run_scenario(load(REPO / "scenarios" / "heartbeats_day.toml"), tmp_path / "day")
    s = r.device.meter.summary(r.device.clock.now_ms)
    assert s["days_at_this_rate"] >= 14.0, s
    assert s["light_sleep_s"] > 0.9 * s["span_s"], s
    assert r.device.hal.sleeps > 1000
