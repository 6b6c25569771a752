"""`sotto devices show ID` and `sotto devices config ID set|show`: one device's
health and its remote configuration (host_tools.receiver.devcfg)."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import closing
from typing import Any

from host_tools.errors import UsageError
from host_tools.frames import RESET_CAUSE_NAMES
from host_tools.receiver import devcfg, releases
from host_tools.receiver.alert_records import DEFAULT_HEARTBEAT, FROM_HEARTBEAT
from host_tools.receiver.alerts import DEFAULT_GRACE_S, duration_text, iso_utc, silent_devices, utc_text
from host_tools.receiver.store import open_db
from host_tools.registry import Registry, resolve_db_path
from sotto_cli.options import add_db_and_json, add_operator, command, emit, operator_of

SHOW_HELP = """\
One device: its key, last contact, battery and the health it last reported
(firmware, configuration version, reset cause, boots, faults, queued frames,
signal), its releases (staged, assigned, the last update's result), whether
it is silent (a device registered but never heard counts too) or running on a
fallback configuration, and its configuration versions."""

CONFIG_HELP = """\
Change a device's settings without re-keying it. `set` queues the next
configuration version; it rides to the device in the centre's signed answer,
the device checks it with its own rules and reports the version it runs (or
why it refused). Identity, receiver and trust anchors (device_id, receiver,
apn, sms_number, ca_cert, centre_key, insecure_tls, release_key) stay with
`sotto provision`.
A change is refused by the device while an alert is live: set it again after."""

SET_EPILOG = """\
examples:
  sotto devices config SOTTO-42 set heartbeat_every_s=600 trigger.cancel_window_s=60
  sotto devices config SOTTO-42 set 'trigger.alert={"presses": 4, "window_ms": 2000}'
  sotto devices config SOTTO-42 set audio.pre_trigger=true audio.pre_s=10
VALUE is JSON (600, true, {...}); anything else is taken as text."""


def register(sub: Any) -> None:
    """Add `show` and `config` under `sotto devices`."""
    show = command(sub, "show", cmd_show, help="one device's health, silence and configuration",
                   description=SHOW_HELP)
    show.add_argument("device", metavar="ID", help="device id: 8 characters (SOTTO-42) or 16 hex digits")
    add_db_and_json(show)

    cfg = command(sub, "config", cmd_config, help="change a device's settings remotely (versioned)",
                  description=CONFIG_HELP, epilog=SET_EPILOG)
    cfg.usage = "%(prog)s ID {set KEY=VALUE... | show} [--json] [--operator NAME] [--db PATH]"
    cfg.add_argument("device", metavar="ID", help="device id: 8 characters (SOTTO-42) or 16 hex digits")
    cfg.add_argument("action", choices=("set", "show"),
                     help="set: queue the next configuration version; show: the versions and their fate "
                          "(applied, or refused with the device's reason) and the version the device reports")
    cfg.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                     help="set: dotted setting name and JSON value")
    add_operator(cfg, what="who changes it")
    add_db_and_json(cfg)


def cmd_config(args: argparse.Namespace) -> int:
    """`sotto devices config ID set KEY=VALUE...` / `sotto devices config ID show`."""
    if args.action == "show":
        if args.settings:
            raise UsageError("`show` takes no KEY=VALUE (did you mean `set`?)")
        return cmd_config_show(args)
    return cmd_set(args)


def cmd_set(args: argparse.Namespace) -> int:
    """`sotto devices config ID set KEY=VALUE...`."""
    settings = devcfg.parse_settings(args.settings)
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        rec = Registry(conn).get(args.device)
        v = devcfg.set_config(conn, rec.device_id, settings, operator=operator)
    return emit({"device": rec.name, **v.to_json()}, args,
                f"device {rec.name}: configuration version {v.version} queued "
                f"({', '.join(f'{k}={json.dumps(val)}' for k, val in sorted(settings.items()))}); "
                "it goes in the device's next answer")


def cmd_config_show(args: argparse.Namespace) -> int:
    """`sotto devices config ID show [--json]`."""
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        rec = Registry(conn).get(args.device)
        view = devcfg.config_view(conn, rec.device_id)
    if args.json:
        return emit({**view.to_json(), "device": rec.name}, args, [])
    print(f"device {rec.name}: runs configuration version "
          f"{view.reported if view.reported is not None else 'unknown (not reported yet)'}")
    if not view.versions:
        print("no remote configuration set (as provisioned)")
        return 0
    for key, value in view.desired.items():
        print(f"  {key} = {json.dumps(value)}")
    print("versions:")
    for v in view.versions:
        why = f": {v.err}" if v.err else ""
        print(f"  {v.version}  {v.state}{why}  by {v.operator} {utc_text(v.created_at)}  "
              + ", ".join(f"{k}={json.dumps(val)}" for k, val in sorted(v.settings.items())))
    return 0


def health_text(h: devcfg.Health | None) -> list[tuple[str, str]]:
    """(label, value) rows of a device's last health report."""
    if h is None:
        return [("health", "not reported yet")]
    rows = [("firmware", h.fw or "-"), ("config version", "-" if h.cfgv is None else str(h.cfgv))]
    if h.rst is not None:
        rows.append(("reset cause", RESET_CAUSE_NAMES.get(h.rst, str(h.rst))))
    for label, value in (("boots", h.boots), ("faults", h.faults), ("queued", h.qd)):
        if value is not None:
            rows.append((label, str(value)))
    if h.csq is not None:
        rows.append(("signal", "unknown" if h.csq == 99 else f"{h.csq}/31"))
    if h.config_invalid:
        rows.append(("CONFIG INVALID", f"{h.config_invalid} (running on config.good or defaults)"))
    return rows


def release_text(v: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) rows of a device's releases (docs/ota.md): staged, assigned, the last update."""
    if not v:
        return []
    rows = []
    if v["pending"]:
        rows.append(("release staged", f"{v['pending']} (switched to at the next boot)"))
    if v["assigned_release"]:
        rows.append(("release assigned", v["assigned_release"]
                     + (f" (cohort {v['cohort']})" if v["cohort"] else "")))
    if v["update_name"]:
        why = f": {v['update_error']}" if v["update_error"] else ""
        rows.append(("last update", v["update_name"] + why))
    return rows


def cmd_show(args: argparse.Namespace) -> int:
    """`sotto devices show ID [--json]`."""
    now = time.time()
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        rec = Registry(conn).get(args.device)
        row = conn.execute("SELECT last_seen_at, heartbeat_s, battery, last_via FROM device_state "
                           "WHERE device_id = ?", (rec.device_id,)).fetchone()
        health = devcfg.health_of(conn).get(rec.device_id)
        expected_all = devcfg.expected_heartbeats(conn)
        silent = next((s for s in silent_devices(conn, now=now, expected=expected_all)
                       if s.device_id == rec.device_id), None)
        view = devcfg.config_view(conn, rec.device_id)
        expected = expected_all.get(rec.device_id, DEFAULT_HEARTBEAT)
        rel = releases.device_view(conn).get(rec.device_id)
    seen, hb, batt, via = row if row else (None, None, None, None)
    if args.json:
        return emit({
            "device": rec.name, "device_hex": rec.device_id.hex(), "status": rec.status,
            "officer": rec.officer,
            "fingerprint": rec.active_key.fingerprint if rec.active_key else None,
            "last_seen": iso_utc(seen), "last_via": via, "heartbeat_s": hb, "battery": batt,
            "silent": silent is not None, "never_heard": seen is None,
            # until its heartbeats say their interval, or when a configuration changed it since
            # the last one: what the centre expects, and why
            "expected_heartbeat": None if expected.source == FROM_HEARTBEAT else {
                "heartbeat_s": expected.seconds, "from": expected.source, "config_version": expected.version},
            "health": health.to_json() if health else None, "config": view.to_json(),
            "release": rel}, args, [])
    rows = [("device", f"{rec.name} ({rec.status})"), ("officer", rec.officer or "-"),
            ("key", rec.active_key.fingerprint if rec.active_key else "-")]
    if seen is None:
        rows.append(("last heard", "never" + (" - SILENT" if silent else "")))
    else:
        rows.append(("last heard", f"{utc_text(seen)} ({duration_text(now - seen)} ago, via {via})"
                     + (f" - SILENT (grace {duration_text(DEFAULT_GRACE_S)})" if silent else "")))
    rows += [("heartbeat", f"none yet (expected within {expected.text})" if not hb
              else f"every {duration_text(hb)}" if expected.source == FROM_HEARTBEAT
              else f"every {duration_text(hb)} by its last one; expected within {expected.text} since"),
             ("battery", f"{batt} %" if batt is not None else "-")]
    rows += health_text(health)
    rows += release_text(rel)
    pending = [v for v in view.versions if v.state in devcfg.UNDONE]
    refused = next((v for v in view.versions if v.state == devcfg.REFUSED), None)
    if pending:
        rows.append(("config pending", ", ".join(str(v.version) for v in pending[::-1])))
    if refused is not None:
        rows.append(("config refused", f"version {refused.version}: {refused.err or 'no reason'}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 0
