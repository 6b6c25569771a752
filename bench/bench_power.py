"""Battery (issue 16): standby days on the reference cell with heartbeats at the
default interval, and what 3GPP PSM costs an alert.

Standby: the simulator runs scenarios/heartbeats_day.toml (boot, then a day of
idle with a heartbeat every 900 s, the firmware default) and the power model
(simulator/power.py, currents from the board file) integrates the charge drawn
over the whole day, boot included; the standby is the board's cell capacity over
that day's average current (a day is periodic in heartbeats, so the extrapolation
is linear; ageing, temperature and self-discharge are not modelled). Baseline: the
same day on a network that does not grant PSM (Faults.psm_refused: the modem stays
registered-idle), the firmware otherwise unchanged. The firmware as built
light-sleeps between passes when nothing is pending (sotto.app Device.rest ->
hal.sleep_until, charged by the power model as the simulated HAL records it).

Alert latency: covert_sos.toml with the SOS moved to 300 s, when the modem has been
in PSM for minutes; the figure is the time from the officer's completed pattern to
the centre's acknowledgement of the alert-start, against the same with PSM refused.
The firmware wakes the module at the pattern's first press (a bare AT), so the
wake-up overlaps the rest of the pattern; a second row compares that with the same
firmware whose early wake is disabled (the module then wakes when the alert-start
reaches its UART). The wake-up itself is the virtual
modem's Timing.psm_wake_ms, an estimate until it is measured on an A7670.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from sotto.modem.delivery import Delivery

from bench.common import Row, higher_is_better, lower_is_better
from simulator.receiver import ReceiverProcess
from simulator.run import run_scenario
from simulator.scenario import Event, load

REPO = Path(__file__).resolve().parent.parent
TARGET_DAYS = 14.0


def _refused(sc: Any) -> Any:
    """The scenario on a network that does not grant PSM."""
    return dataclasses.replace(sc, events=[Event(0, "modem", {"fault": "psm_refused", "value": True}),
                                           *sc.events])


def _alert_latency_ms(res: Any) -> float:
    dev = res.device
    done = next(t for kind, t in dev.triggers if kind == "sos")
    starts = {seq for t, seq, ftype, _ in dev.made if ftype == 1 and t >= done}
    acked = min(t for t, seq in dev.acked if seq in starts)
    return float(acked - done)


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        rx = ReceiverProcess(Path(d) / "receiver")
        try:
            day = load(REPO / "scenarios" / "heartbeats_day.toml")
            psm = run_scenario(day, Path(d) / "psm", receiver=rx)
            base = run_scenario(_refused(day), Path(d) / "nopsm", receiver=rx)
            s, b = (r.device.meter.summary(r.device.clock.now_ms) for r in (psm, base))
            top = ", ".join(f"{k} {v['share'] * 100:.0f}%"
                            for k, v in sorted(s["states"].items(), key=lambda kv: -kv[1]["mah"])[:3])
            rows.append(higher_is_better(
                "power: standby, heartbeat every 900 s (firmware as built: light sleep between passes)",
                s["days_at_this_rate"], "days", b["days_at_this_rate"], target=f">= {TARGET_DAYS:.0f} days",
                note=f"1200 mAh cell; PSM (AT+CPSMS) granted: {s['charge_mah']:.1f} mAh/day, "
                f"{s['average_ma']:.2f} mA ({top}); light sleep {s['light_sleep_s']:.0f} s of "
                f"{s['span_s']:.0f} s, {s['loop_passes']} loop passes; baseline PSM refused by the network: "
                f"{b['charge_mah']:.1f} mAh/day; one simulated day, boot included, extrapolated "
                f"linearly; modelled currents (hardware/README.md)"))
            sos = load(REPO / "scenarios" / "covert_sos.toml")
            late = dataclasses.replace(sos, duration_ms=380_000,
                                       events=[dataclasses.replace(e, at_ms=300_000) for e in sos.events])
            lp = run_scenario(late, Path(d) / "sos-psm", receiver=rx)
            lb = run_scenario(_refused(late), Path(d) / "sos-nopsm", receiver=rx)
            # the module woken by the alert-start, not by the first press
            with mock.patch.object(Delivery, "wake_modem", lambda self: None):
                late_wake = run_scenario(late, Path(d) / "sos-psm-late-wake", receiver=rx)
            wakes = lp.device.modem.psm_wakes
            rows.append(lower_is_better(
                "power: alert from PSM, pattern done -> alert-start acknowledged",
                _alert_latency_ms(lp), "ms", _alert_latency_ms(lb), target="<= baseline + 2 s",
                note=f"baseline: the modem registered-idle (PSM refused); {wakes} wake(s) from PSM in the "
                f"run, started at the pattern's first press (AT, nothing on the air); wake-up "
                f"{lp.device.modem.timing.psm_wake_ms} ms is an estimate (Timing.psm_wake_ms)"))
            rows.append(lower_is_better(
                "power: alert from PSM, modem woken at the first press (vs. by the alert-start)",
                _alert_latency_ms(lp), "ms", _alert_latency_ms(late_wake), target="<= baseline",
                note="pattern done -> alert-start acknowledged; baseline: the same firmware with "
                "Delivery.wake_modem disabled, so the module wakes from PSM only when the alert-start "
                "reaches its UART"))
        finally:
            rx.stop()
    return rows


if __name__ == "__main__":  # pragma: no cover
    for r in run():
        print(r)
