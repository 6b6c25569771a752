"""Scenario files (TOML) for QA: a device, a timeline of events, expectations.

    name = "covert SOS in coverage"
    duration_s = 120
    secondary_receiver = true     a second centre's receiver (the second path; optional)
    [device]                      id, officer, battery_pct, track, audio, ttff_s, hdop, seed, runtime
    [device.config]               firmware settings (docs/architecture.md, config)
    [[events]]  at_s = 20  action = "sos"
    [expect]                      alert_within_s = 5, chain_complete = true, ...

docs/qa-guide.md lists every action and expectation. Paths are relative to the
scenario file. parse() checks the whole file first and names what is wrong.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotto import config as fw_config

from host_tools.errors import SottoError
from host_tools.ids import parse_device_id
from simulator.accel import PROFILES
from simulator.device import RUNTIMES
from simulator.hal import BoardFileError, load_board
from simulator.peripherals import read_wav
from simulator.track import Track, load_track, standing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ScenarioError(SottoError, ValueError):
    """A scenario file that cannot run; the message names the field."""

    exit_code = 2  # `sotto sim run`: the scenario cannot run (1 is for a failed expectation)


# action -> the fields it takes (name -> type)
ACTIONS: dict[str, dict[str, type]] = {
    "sos": {}, "cancel": {}, "duress": {},
    "press": {"hold_ms": int},
    "presses": {"count": int, "gap_ms": int, "hold_ms": int},
    "coverage": {"on": bool},
    "data": {"on": bool},
    "modem": {"fault": str, "value": object},
    "gnss_signal": {"on": bool},
    "gnss_accuracy": {"hdop": float},
    "gnss_cold_start": {},
    "power_cut": {"off_s": float, "flash_op": int},
    "reboot": {},
    "battery": {"pct": float},
    "ack_alert": {"operator": str},
    "close_alert": {"operator": str, "outcome": str},
    # the centre's commands to the device (sotto alerts listen|more-audio|locate|ask)
    "listen": {"operator": str},
    "more_audio": {"seconds": int, "operator": str},
    "locate": {"operator": str},
    "ask": {"question": str, "operator": str},
    "answer": {"reply": str},                    # the officer's yes / no press pattern
    # remote configuration (sotto devices config ID set KEY=VALUE...): the next version
    "configure": {"set": dict, "operator": str},
    # damage the device's config.json on flash (read at the next boot: follow with reboot)
    "corrupt_config": {"how": str},
    # over-the-air updates (docs/ota.md): a release of the flashed base with `changed` files
    # changed, published and assigned to the device
    "release": {"version": str, "changed": int, "tamper": bool, "wrong_key": bool, "min_version": str,
                "allow_downgrade": bool},
    "kill_receiver": {"which": str},             # SIGKILL a centre's receiver: primary / secondary
    # issue 16: the accelerometer's motion, and the officer's timed check-in patterns
    "motion": {"profile": str, "for_s": float},
    "check_in": {"minutes": int},
    "check_in_extend": {"minutes": int},
    "check_in_end": {},
}
CORRUPTIONS = ("torn", "garbage", "missing", "bad-value")
RECEIVERS = ("primary", "secondary")
ANSWERS = ("yes", "no")
MODEM_FAULTS = ("hang", "sim_missing", "denied", "no_coverage", "error_rate", "cme_rate",
                "garbage_every_ms", "urc_burst", "data_down", "drop_after_bytes", "drop_before_response",
                # issue 19: the module as its manuals describe it (simulator/vmodem, docs/qa-guide.md)
                "hang_needs_reset", "roaming", "sms_only", "cch_stop", "recv_closed", "send_fail",
                "idle_close_ms", "proxy_answer_bytes", "cchopen_ms", "cmgs_ms", "cpof_ms", "old_firmware",
                "tls_strict",
                "psm_refused")  # issue 16: the network does not grant 3GPP PSM (AT+CPSMS)
EXPECTATIONS: dict[str, type] = {
    "alert_within_s": float, "all_frames_verified": bool, "chain_complete": bool, "privacy": bool,
    "sms_sent": int, "sms_sent_min": int, "alerts": int, "duress": bool, "cancelled": bool,
    "audio_seconds_min": float, "location_source": str, "heartbeats_min": int,
    "every_frame_delivered": bool, "nothing_lost": bool, "max_frames_dropped": int,
    "closed_by_centre": bool, "statuses": list, "heartbeats": int, "alert_flags": list,
    "haptic_order": list, "received_within_s": float, "commands": list, "not_through": bool,
    "config_versions": list, "config_invalid": bool, "pre_trigger_seconds_min": float,
    "pre_trigger_seconds": float,
    "running_version": str, "update_result": str, "no_release_chunks_during_alert": bool,
    "release_chunks_min": int,
    # the second path: where the alert's view says it came, which receivers were reported down,
    # every centre's own record verifying by itself
    "delivered_via_secondary": bool, "receivers_down": list, "records_verify": bool,
    "trigger_kind": list, "visit_states": list,
}
VISIT_STATES = ("overdue", "alerted", "open", "ended")
TRIGGER_KINDS = ("hold", "presses", "check-in-overdue", "no-motion", "man-down")
HAPTIC_PATTERNS = ("confirm", "received", "listening", "not-through", "q1", "q2", "q3", "q4", "q5", "q6",
                   "q7", "q8", "visit-started", "visit-extended", "visit-ended", "visit-reminder",
                   "pre-alarm")
DEVICE_KEYS: dict[str, type] = {
    "id": str, "officer": str, "battery_pct": float, "track": str, "audio": str, "ttff_s": float,
    "hot_ttff_s": float, "hdop": float, "seed": int, "config": dict, "board": str, "start_lat": float,
    "start_lon": float, "runtime": str,
}
LOCATION_SOURCES = ("gnss", "cell", "last-known")
# expectations about alerts that also take a list: one value per alert, in order
PER_ALERT = ("alert_within_s", "location_source")
# what `sotto provision` writes, for checking [device.config] when the scenario loads (the
# centre key must be a real Ed25519 public key: the firmware checks it is one)
_PROVISIONED = {"receiver": "https://receiver.test:8443", "apn": "internet", "ca_cert": "ca.pem",
                "centre_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}
ALERT_FLAGS = ("duress", "minimal mode", "battery reserve")
STATUS_NAMES = ("started", "battery-low", "battery-critical", "battery-reserve", "boot-loop", "queue-full",
                "health", "config-invalid", "receiver-down")


def _check_motion(args: dict[str, Any], name: str, dev: dict[str, Any], fail: Any) -> None:
    if args.get("profile") not in PROFILES:
        raise fail(f"{name}.profile: one of {', '.join(PROFILES)}")
    if not args.get("for_s", 0) > 0:
        raise fail(f"{name}.for_s: how long the motion lasts, in seconds (more than 0)")
    if "accel" not in _board(dev):
        raise fail(f"{name}: board {dev.get('board', 'sotto-ref-s3')!r} has no accelerometer")


def _board(dev: dict[str, Any]) -> dict[str, Any]:
    try:
        return load_board(str(dev.get("board", "sotto-ref-s3")))
    except BoardFileError:
        return {}


def _check_check_in(action: str, args: dict[str, Any], name: str, dev: dict[str, Any], fail: Any) -> None:
    """The officer's check-in patterns: the device must have check-in on, and the
    minutes a scenario names must be the ones the device is configured for (the
    patterns carry no number: the length is the device's setting)."""
    given = dev.get("config", {}).get("checkin", {})
    ci = dict(fw_config.DEFAULTS["checkin"])
    ci.update(given if isinstance(given, dict) else {})
    if ci.get("enabled") is not True:
        raise fail(f"{name}: {action} needs check-in on the device: [device.config.checkin] enabled = true")
    setting = "extend_minutes" if action == "check_in_extend" else "minutes"
    if "minutes" in args and action != "check_in_end" and args["minutes"] != ci[setting]:
        raise fail(f"{name}.minutes: the device's {'extension' if setting != 'minutes' else 'visit'} is "
                   f"checkin.{setting} = {ci[setting]} min; set [device.config.checkin] {setting} = "
                   f"{args['minutes']} to run this one")


@dataclass
class Event:
    at_ms: int
    action: str
    args: dict[str, Any]

    def describe(self) -> str:
        if self.action == "_power_on":  # scheduled by a power cut or a fleet, not written by QA
            return "power back on"
        extra = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return self.action + (f" ({extra})" if extra else "")


@dataclass
class Scenario:
    name: str
    path: Path | None
    duration_ms: int
    seed: int
    epoch_s: int
    device_id: bytes
    officer: str | None
    config: dict[str, Any]
    board: str
    track: Track
    audio: Any
    ttff_s: float
    hdop: float
    battery_pct: float
    events: list[Event] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    hot_ttff_s: float = 2.0
    runtime: str = "cpython"
    secondary: bool = False  # a second receiver (another centre) for the second path


def _type_ok(value: Any, want: type) -> bool:
    if want is object:
        return True
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _check_config(config: dict[str, Any], device_id: bytes, fail: Any) -> None:
    """[device.config] as the firmware's own rules see it (sotto.config.validate), over
    what provisioning writes: a value the device would refuse is a ScenarioError."""
    from sotto import config as fw_config

    try:
        fw_config.validate({"device_id": device_id.hex(), **_PROVISIONED, **config})
    except fw_config.ConfigError as e:
        why = str(e).split(": ", 1)[-1].split(" (run `sotto provision`")[0]
        field = "" if e.field == "config.json" else "." + e.field
        raise fail(f"device.config{field}: {why}") from None


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ScenarioError(f"cannot read scenario {p}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML: {e}") from None
    return parse(data, p)


def parse(data: dict[str, Any], path: Path | None = None) -> Scenario:
    where = str(path) if path else "scenario"
    base = path.parent if path else Path(".")

    def fail(msg: str) -> ScenarioError:
        return ScenarioError(f"{where}: {msg}")

    unknown = set(data) - {"name", "description", "duration_s", "seed", "start", "device", "events", "expect",
                           "secondary_receiver"}
    if unknown:
        raise fail(f"unknown top-level key(s) {sorted(unknown)}")
    if not isinstance(data.get("secondary_receiver", False), bool):
        raise fail("secondary_receiver: true or false")
    if not _type_ok(data.get("duration_s"), float) or data["duration_s"] <= 0:
        raise fail("duration_s: give the scenario's length in seconds")
    dev = data.get("device", {})
    if not isinstance(dev, dict):
        raise fail("device: must be a table ([device])")
    bad = set(dev) - set(DEVICE_KEYS)
    if bad:
        raise fail(f"device: unknown key(s) {sorted(bad)} (known: {', '.join(sorted(DEVICE_KEYS))})")
    for k, v in dev.items():
        if not _type_ok(v, DEVICE_KEYS[k]):
            raise fail(f"device.{k}: must be {DEVICE_KEYS[k].__name__}, not {type(v).__name__}")
    if "battery_pct" in dev and not 0 <= dev["battery_pct"] <= 100:
        raise fail("device.battery_pct: a state of charge from 0 to 100")
    if dev.get("runtime", "cpython") not in RUNTIMES:
        raise fail(f"device.runtime: one of {', '.join(RUNTIMES)}")
    for k in ("ttff_s", "hot_ttff_s", "hdop"):
        if k in dev and dev[k] < 0:
            raise fail(f"device.{k}: must not be negative")
    try:
        device_id = parse_device_id(str(dev.get("id", "SOTTO-01")))
    except ValueError as e:
        raise fail(f"device.id: {e}") from None
    if "track" in dev:
        track = load_track(base / dev["track"])
    else:
        track = standing(float(dev.get("start_lat", 51.4545)), float(dev.get("start_lon", -2.5879)))
    audio = read_wav(base / dev["audio"]) if "audio" in dev else None
    start = data.get("start", "2025-06-02T09:00:00Z")
    try:
        epoch = int(datetime.datetime.fromisoformat(str(start).replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise fail(f"start: {start!r} is not an ISO 8601 time") from None
    events = []
    for i, ev in enumerate(data.get("events", [])):
        name = f"events[{i}]"
        action = ev.get("action")
        if action not in ACTIONS:
            raise fail(f"{name}.action: {action!r} is not one of {sorted(ACTIONS)}")
        if not _type_ok(ev.get("at_s"), float) or ev["at_s"] < 0:
            raise fail(f"{name}.at_s: give the time in seconds from the start")
        if ev["at_s"] > data["duration_s"]:
            raise fail(f"{name}.at_s: {ev['at_s']} s is after the end of the scenario "
                       f"(duration_s = {data['duration_s']}); it would never happen")
        args = {k: v for k, v in ev.items() if k not in ("at_s", "action")}
        for k, v in args.items():
            want = ACTIONS[action].get(k)
            if want is None:
                takes = sorted(ACTIONS[action]) or "nothing"
                raise fail(f"{name}: {action!r} takes no {k!r} (it takes {takes})")
            if not _type_ok(v, want):
                raise fail(f"{name}.{k}: must be {want.__name__}")
        if action == "modem" and args.get("fault") not in MODEM_FAULTS:
            raise fail(f"{name}.fault: one of {', '.join(MODEM_FAULTS)}")
        if action == "battery" and not 0 <= args.get("pct", 0) <= 100:
            raise fail(f"{name}.pct: a state of charge from 0 to 100")
        if action == "power_cut" and (args.get("off_s", 5) < 0 or args.get("flash_op", 0) < 0):
            raise fail(f"{name}: off_s and flash_op must not be negative")
        if action == "answer" and args.get("reply") not in ANSWERS:
            raise fail(f"{name}.reply: one of {', '.join(ANSWERS)}")
        if action == "ask" and "question" not in args:
            raise fail(f"{name}.question: give the question's name or code (e.g. can-you-talk)")
        if action == "kill_receiver":
            if args.get("which") not in RECEIVERS:
                raise fail(f"{name}.which: one of {', '.join(RECEIVERS)}")
            if args["which"] == "secondary" and not data.get("secondary_receiver"):
                raise fail(f"{name}: no secondary receiver (set secondary_receiver = true)")
        if action == "more_audio" and not 1 <= args.get("seconds", 0) <= 600:
            raise fail(f"{name}.seconds: 1..600")
        if action == "configure" and not args.get("set"):
            raise fail(f"{name}.set: a table of settings, e.g. set = {{ heartbeat_every_s = 600 }}")
        if action == "corrupt_config" and args.get("how", "torn") not in CORRUPTIONS:
            raise fail(f"{name}.how: one of {', '.join(CORRUPTIONS)}")
        if action == "motion":
            _check_motion(args, name, dev, fail)
        if action.startswith("check_in"):
            _check_check_in(action, args, name, dev, fail)
        events.append(Event(int(ev["at_s"] * 1000), action, args))
    events.sort(key=lambda e: e.at_ms)
    expect = data.get("expect", {})
    for k, v in expect.items():
        if k not in EXPECTATIONS:
            raise fail(f"expect.{k}: unknown expectation (known: {', '.join(sorted(EXPECTATIONS))})")
        per_alert = k in PER_ALERT and isinstance(v, list)
        if per_alert and (not v or not all(_type_ok(x, EXPECTATIONS[k]) for x in v)):
            raise fail(f"expect.{k}: a list takes one {EXPECTATIONS[k].__name__} per alert, in order")
        if not per_alert and not _type_ok(v, EXPECTATIONS[k]):
            raise fail(f"expect.{k}: must be {EXPECTATIONS[k].__name__}"
                       + (" (or a list of them, one per alert)" if k in PER_ALERT else ""))
        if k == "alert_flags" and any(f not in ALERT_FLAGS for f in v):
            raise fail(f"expect.alert_flags: each one of {', '.join(ALERT_FLAGS)}")
        if k == "statuses" and any(st not in STATUS_NAMES for st in v):
            raise fail(f"expect.statuses: each one of {', '.join(STATUS_NAMES)}")
        if k == "haptic_order" and any(p not in HAPTIC_PATTERNS for p in v):
            raise fail(f"expect.haptic_order: each one of {', '.join(HAPTIC_PATTERNS)}")
        if k == "commands" and any(not isinstance(c, str) or len(c.split()) != 2 for c in v):
            raise fail("expect.commands: each \"OP OUTCOME\", e.g. \"listening done\", \"ask yes\"")
        if k == "config_versions" and any(not isinstance(c, str) or len(c.split()) != 2
                                          or not c.split()[0].isdigit() for c in v):
            raise fail('expect.config_versions: each "VERSION STATE", e.g. "1 applied", "2 refused"')
        if k == "receivers_down" and any(r not in RECEIVERS for r in v):
            raise fail(f"expect.receivers_down: each one of {', '.join(RECEIVERS)}")
        if k in ("delivered_via_secondary", "receivers_down") and not data.get("secondary_receiver"):
            raise fail(f"expect.{k}: needs a second receiver (secondary_receiver = true)")
        if k == "visit_states" and any(x not in VISIT_STATES for x in v):
            raise fail(f"expect.visit_states: each one of {', '.join(VISIT_STATES)}")
        if k == "trigger_kind" and any(x not in TRIGGER_KINDS for x in v):
            raise fail(f"expect.trigger_kind: each one of {', '.join(TRIGGER_KINDS)}")
        if k == "location_source" and not per_alert and v not in LOCATION_SOURCES:
            raise fail(f"expect.location_source: one of {', '.join(LOCATION_SOURCES)}")
        if k == "location_source" and per_alert and any(x not in (*LOCATION_SOURCES, "none") for x in v):
            raise fail(f"expect.location_source: each one of {', '.join(LOCATION_SOURCES)}, or none "
                       "(an alert without a position)")
    config = dict(dev.get("config", {}))
    _check_config(config, device_id, fail)
    return Scenario(
        name=str(data.get("name", path.stem if path else "scenario")), path=path,
        duration_ms=int(data["duration_s"] * 1000), seed=int(data.get("seed", 1)), epoch_s=epoch,
        device_id=device_id, officer=dev.get("officer"), config=config,
        board=str(dev.get("board", "sotto-ref-s3")), track=track, audio=audio,
        ttff_s=float(dev.get("ttff_s", 10.0)), hdop=float(dev.get("hdop", 0.9)),
        hot_ttff_s=float(dev.get("hot_ttff_s", 2.0)),
        battery_pct=float(dev.get("battery_pct", 90.0)), events=events, expect=dict(expect),
        description=str(data.get("description", "")), runtime=str(dev.get("runtime", "cpython")),
        secondary=bool(data.get("secondary_receiver", False)))
