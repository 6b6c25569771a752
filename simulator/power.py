"""The charge a virtual device draws: a per-state power model integrated over a run.

    meter = PowerMeter(board["power"], capacity_mah, modem, gnss, mic, hal, device=lambda: dev.device)
    meter.sample(now_ms)        # at every pass of the device's loop (VirtualDevice.step)
    meter.summary(now_ms)       # {"charge_mah": ..., "states": {name: {"mah", "share", "s"}}, ...}

Currents are the board file's `power` section (mA at the cell; hardware/README.md,
"Power budget", says where each figure comes from). The meter only looks at what the
simulator already observes: the virtual modem's power, registration, open
connections, radio traffic (`air`) and PSM (AT+CPSMS, `VirtualModem.psm_start_ms`),
the GNSS receiver's and the microphone's power, the HAL's haptic log, and whether
the firmware's alert session is live. Between two samples every part keeps the state
it had at the first one, except the modem's timers, which are known in advance: the
radio stays connected `modem_rrc_tail_ms` after its last traffic (the network's
inactivity timer), then idles, then enters PSM when the granted active time runs out.

Charges that are shorter than a sample are counted per event: each radio record
(`air`) is a `modem_tx_burst_ms` burst at `modem_tx_ma` (on top of the connected
current), and each pass of the firmware's loop outside an alert wakes the CPU for `mcu_wake_ms`.
Between passes the CPU is in light sleep (`mcu_sleep_ma`) for exactly the time the
firmware asked the HAL to sleep (`hal.sleep_until`, recorded by the simulated HAL as
`sleep_window`; the sleep ends early at a wake event, where the next pass is), and
clocked and idle (`mcu_idle_ma`, firmware/main.py awaiting `asyncio.sleep_ms`) for the
rest of the time between passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STATES = ("mcu sleep", "mcu idle", "mcu awake", "modem off", "modem psm", "modem idle", "modem connected",
          "modem transmitting", "gnss on", "mic on", "haptic", "accelerometer")
_MS_PER_H = 3_600_000


class PowerMeter:
    """Integrates current over time by state (see the module docstring)."""

    def __init__(self, currents: dict[str, float], capacity_mah: float, modem: Any, gnss: Any, mic: Any,
                 hal: Any, device: Callable[[], Any] | None = None, start_ms: int = 0) -> None:
        self.c = currents
        self.capacity_mah = capacity_mah
        self.modem, self.gnss, self.mic, self.hal = modem, gnss, mic, hal
        self.device = device or (lambda: None)
        self.mas: dict[str, float] = dict.fromkeys(STATES, 0.0)  # mA x ms per state
        self.ms: dict[str, float] = dict.fromkeys(STATES, 0.0)  # time per state
        self.t0 = self.last = start_ms
        self.passes = 0
        self.quiet_passes = 0  # passes outside an alert: the CPU wakes for mcu_wake_ms each
        self._air_seen = 0
        self._rest_ma = currents["mcu_idle_ma"]  # the CPU's current before the pass being sampled
        self._snap = self._snapshot()

    # -- what the parts are doing --------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        m = self.modem
        dev = self.device()
        session = getattr(dev, "session", None)
        log = getattr(self.hal, "haptic_log", None) or []
        air = m.air
        return {"modem_power": m.power, "registered": m.registered,
                "conns": m.open_connections, "last_air": air[-1].t_ms if air else None,
                "psm_start": m.psm_start_ms(),
                "gnss": bool(self.gnss.powered), "mic": bool(self.mic.on),
                "haptic": bool(log and log[-1][1]),
                "awake": bool(session is not None and getattr(session, "live", False))}

    def modem_state(self, snap: dict[str, Any], t: float) -> str:
        """The modem's state at time t (ms) given a snapshot taken before t."""
        if snap["modem_power"] == "off":
            return "modem off"
        if snap["conns"]:
            return "modem connected"
        la = snap["last_air"]
        if la is not None and t < la + self.c["modem_rrc_tail_ms"]:
            return "modem connected"
        ps = snap["psm_start"]
        if ps is not None and t >= ps:
            return "modem psm"
        return "modem idle"

    # -- integrating ------------------------------------------------------------------
    def _add(self, state: str, ma: float, dt: float) -> None:
        self.mas[state] += ma * dt
        self.ms[state] += dt

    def _integrate(self, a: float, b: float) -> None:
        if b <= a:
            return
        s, c = self._snap, self.c
        dt = b - a
        if s["awake"]:
            self._add("mcu awake", c["mcu_awake_ma"], dt)
            self._rest_ma = c["mcu_awake_ma"]
        else:
            # the light sleep the firmware asked for at the pass that began this interval
            w = getattr(self.hal, "sleep_window", None)
            slept = max(0.0, min(b, w[1]) - a) if w is not None and a <= w[0] < b else 0.0
            if slept:
                self._add("mcu sleep", c["mcu_sleep_ma"], slept)
            if dt > slept:
                self._add("mcu idle", c["mcu_idle_ma"], dt - slept)
            self._rest_ma = c["mcu_sleep_ma"] if slept else c["mcu_idle_ma"]
        self._add("accelerometer", c["accel_lp_ma"], dt)
        for flag, state, key in (("gnss", "gnss on", "gnss_on_ma"), ("mic", "mic on", "mic_on_ma"),
                                 ("haptic", "haptic", "haptic_ma")):
            if s[flag]:
                self._add(state, c[key], dt)
        # the modem: split [a, b) where its own timers change its state
        cuts = [a, b]
        if s["last_air"] is not None:
            cuts.append(s["last_air"] + c["modem_rrc_tail_ms"])
        if s["psm_start"] is not None:
            cuts.append(s["psm_start"])
        edges = sorted({x for x in cuts if a <= x <= b})
        currents = {"modem off": c["modem_off_ma"], "modem psm": c["modem_psm_ma"],
                    "modem idle": c["modem_idle_ma"], "modem connected": c["modem_connected_ma"]}
        for lo, hi in zip(edges, edges[1:], strict=False):
            state = self.modem_state(s, lo)
            self._add(state, currents[state], hi - lo)

    def sample(self, now_ms: int) -> None:
        """Charge the time since the last sample; then note the parts' states and the
        events since (radio bursts, this pass of the loop)."""
        self._integrate(self.last, now_ms)
        self.last = max(self.last, now_ms)
        c = self.c
        air = self.modem.air
        burst = c["modem_tx_burst_ms"]
        for _ in range(self._air_seen, len(air)):  # each radio record: a burst on top of connected
            self.mas["modem transmitting"] += (c["modem_tx_ma"] - c["modem_connected_ma"]) * burst
            self.ms["modem transmitting"] += burst
        self._air_seen = len(air)
        self.passes += 1
        if not self._snap["awake"]:  # a pass of the loop between sleeps: mcu_wake_ms awake
            self.quiet_passes += 1
            self.mas["mcu awake"] += (c["mcu_awake_ma"] - self._rest_ma) * c["mcu_wake_ms"]
            self.ms["mcu awake"] += c["mcu_wake_ms"]
        self._snap = self._snapshot()

    # -- the outcome ------------------------------------------------------------------
    def summary(self, now_ms: int | None = None) -> dict[str, Any]:
        """Charge used so far (mAh), its share by state, the average current, and the
        days the board's cell would last at that average."""
        if now_ms is not None:
            self._integrate(self.last, now_ms)
            self.last = max(self.last, now_ms)
        mas = dict(self.mas)
        ms = self.ms
        total = sum(mas.values())
        span = max(1, self.last - self.t0)
        avg = total / span
        states = {k: {"mah": round(v / _MS_PER_H, 4), "share": round(v / total, 4) if total else 0.0,
                      "s": round(ms[k] / 1000, 1)}
                  for k, v in mas.items() if v}
        return {"charge_mah": round(total / _MS_PER_H, 4), "span_s": round(span / 1000, 1),
                "average_ma": round(avg, 4), "capacity_mah": self.capacity_mah,
                "days_at_this_rate": round(self.capacity_mah / avg / 24, 2) if avg else None,
                "loop_passes": self.passes, "light_sleep_s": round(ms["mcu sleep"] / 1000, 1),
                "states": states}


def summary_lines(s: dict[str, Any], top: int = 5) -> list[str]:
    """The charge report as text (`sotto sim run`)."""
    parts = sorted(s["states"].items(), key=lambda kv: -kv[1]["mah"])[:top]
    return [f"charge used: {s['charge_mah']:.2f} mAh over {s['span_s']:.0f} s "
            f"(average {s['average_ma']:.2f} mA; {s['days_at_this_rate']} days of a "
            f"{s['capacity_mah']} mAh cell at this rate)",
            "  by state: " + ", ".join(f"{k} {v['share'] * 100:.1f}%" for k, v in parts)]


def meter_for(vdev: Any, board: dict[str, Any]) -> PowerMeter | None:
    """The meter of a virtual device on `board` (None: the board has no power section)."""
    p = board.get("power")
    if not p:
        return None
    cap = float(board.get("battery", {}).get("capacity_mah", 0)) or 1.0
    return PowerMeter(p, cap, vdev.modem, vdev.gnss, vdev.mic, vdev.hal, device=lambda: vdev.device,
                      start_ms=vdev.clock.now_ms)
