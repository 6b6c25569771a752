"""`sotto devices add|list|show|config|revoke|rotate|update|cohort`: the registry of
devices, their public keys, health and remote configuration (show and config:
devices_config.py), and their releases (update and cohort: releases.py, docs/ota.md).

Thin handlers over host_tools.registry. The keys live in the receiver's
database (--db PATH, else $SOTTO_DB, else the default path); only public keys.
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from typing import Any

from host_tools.frames import load_public_key
from host_tools.receiver import devcfg, releases
from host_tools.receiver.alerts import duration_text, iso_utc, silent_devices, trust_states, utc_text
from host_tools.receiver.audit import operator_name
from host_tools.receiver.store import open_db
from host_tools.registry import DeviceRecord, Registry, resolve_db_path
from sotto_cli.commands import devices_config
from sotto_cli.commands.releases import register_device_commands
from sotto_cli.options import add_db_and_json, command, emit, group, table

DEVICES_HELP = """\
The devices the receiver trusts and their Ed25519 public keys.

A device makes its own key and keeps the private half; only the public key is
registered here. A device has one active key at a time; revoked keys stay on
record, so frames signed with them are rejected as revoked-device."""

ADD_HELP = """\
Register a device and its public key. KEY is the device's Ed25519 public key: a
PEM file, or 64 hex digits. Adding the key a device already has changes nothing
(except --officer); a device with an active key needs `sotto devices rotate`."""

LIST_HELP = """\
List the registered devices: status, officer, key fingerprint, when it was last
heard from, its heartbeat, battery and the health it last reported (firmware,
configuration version, queued frames, signal). A device whose heartbeat is
overdue is SILENT, and so is one registered longer ago than the default
heartbeat interval plus grace that was never heard at all; CONFIG-INVALID: it
runs on a fallback configuration. --json prints every key with its history."""


def register(subparsers: Any) -> None:
    """Add `sotto devices` and its subcommands to the CLI."""
    _, sub = group(subparsers, "devices", help="register, list and revoke devices' public keys",
                   description=DEVICES_HELP)

    add = command(sub, "add", cmd_add, help="register a device with its public key", description=ADD_HELP,
                  epilog="example: sotto devices add SOTTO-42 --pubkey sotto-42.pub.pem --officer 'J. Smith'")
    add.add_argument("device", metavar="ID", help="device id: 8 characters (SOTTO-42) or 16 hex digits")
    add.add_argument("--pubkey", required=True, metavar="KEY", help="PEM public key file, or 64 hex digits")
    add.add_argument("--officer", metavar="NAME", help="the officer who wears the device")
    add_db_and_json(add, "print the device's record as JSON")

    lst = command(sub, "list", cmd_list, help="list devices, keys, last contact and health",
                  description=LIST_HELP)
    add_db_and_json(lst)
    devices_config.register(sub)

    revoke = command(sub, "revoke", cmd_revoke, help="stop trusting a device's key",
                     description="Revoke the device's active key: every frame signed with it is rejected as "
                                 "revoked-device from now on (a lost or stolen device). The key stays on "
                                 "record and is never trusted again.")
    revoke.add_argument("device", metavar="ID", help="device id (SOTTO-42 or 16 hex digits)")
    revoke.add_argument("--reason", metavar="TEXT", help="why (kept with the key)")
    add_db_and_json(revoke, "print the device's record as JSON")

    rotate = command(sub, "rotate", cmd_rotate, help="replace a device's key with a new one",
                     description="Revoke the device's active key and trust the new KEY instead "
                                 "(`sotto rotate-key` does this together with the device).")
    rotate.add_argument("device", metavar="ID", help="device id (SOTTO-42 or 16 hex digits)")
    rotate.add_argument("--pubkey", required=True, metavar="KEY",
                        help="the new public key: PEM file or 64 hex")
    add_db_and_json(rotate, "print the device's record as JSON")
    register_device_commands(sub)   # update, cohort (docs/ota.md)


def _record_json(rec: DeviceRecord) -> dict[str, Any]:
    return {"device": rec.name, "device_hex": rec.device_id.hex(), "status": rec.status,
            "officer": rec.officer, "public_key": rec.public_key.hex() if rec.public_key else None,
            "fingerprint": rec.active_key.fingerprint if rec.active_key else None,
            "revoked_keys": [k.fingerprint for k in rec.revoked_keys]}


def _by() -> str | None:
    try:
        return operator_name(None)
    except Exception:
        return None


def _describe(record: DeviceRecord) -> str:
    key = record.active_key
    officer = f", officer {record.officer}" if record.officer else ""
    if key is None:
        return f"device {record.name}: revoked{officer}"
    return f"device {record.name}: active, key {key.fingerprint}{officer}"


def cmd_add(args: argparse.Namespace) -> int:
    """`sotto devices add ID --pubkey KEY [--officer NAME]`."""
    key = load_public_key(args.pubkey)
    with Registry(resolve_db_path(args.db)) as reg:
        record = reg.add(args.device, key, officer=args.officer, by=_by())
    return emit(_record_json(record), args, f"registered {_describe(record)}")


def cmd_rotate(args: argparse.Namespace) -> int:
    """`sotto devices rotate ID --pubkey KEY`."""
    key = load_public_key(args.pubkey)
    with Registry(resolve_db_path(args.db), create=False) as reg:
        record = reg.rotate(args.device, key, by=_by())
    old = record.revoked_keys[-1].fingerprint if record.revoked_keys else None
    return emit(_record_json(record), args,
                f"rotated {_describe(record)}" + (f" (revoked key {old})" if old else ""))


def cmd_revoke(args: argparse.Namespace) -> int:
    """`sotto devices revoke ID [--reason TEXT]`."""
    with Registry(resolve_db_path(args.db), create=False) as reg:
        record = reg.revoke(args.device, reason=args.reason, by=_by())
    key = record.revoked_keys[-1]
    return emit(_record_json(record), args,
                f"revoked device {record.name}: key {key.fingerprint} is no longer trusted")


def _num(v: int | None) -> str:
    return "-" if v is None else str(v)


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto devices list [--json]`."""
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        records = Registry(conn).list()
        state = {bytes(r[0]): r[1:] for r in conn.execute(
            "SELECT device_id, last_seen_at, heartbeat_s, battery, last_via FROM device_state")}
        trust = trust_states(conn)
        now = time.time()
        silent = {s.device_id for s in silent_devices(conn, now=now)}
        health = devcfg.health_of(conn)
        versions = releases.device_view(conn)
        cohorts = releases.cohort_summary(conn)
    if args.json:
        out = []
        for rec in records:
            seen, hb, batt, via = state.get(rec.device_id, (None, None, None, None))
            out.append({
                "device": rec.name, "device_hex": rec.device_id.hex(), "status": rec.status,
                "officer": rec.officer, "added": iso_utc(rec.created_at),
                "public_key": rec.public_key.hex() if rec.public_key else None,
                "fingerprint": rec.active_key.fingerprint if rec.active_key else None,
                "last_seen": iso_utc(seen), "last_via": via, "heartbeat_s": hb, "battery": batt,
                "silent": rec.device_id in silent, "never_heard": seen is None,
                "health": health[rec.device_id].to_json() if rec.device_id in health else None,
                "insecure_tls": trust.get(rec.device_id, (False, None))[0],
                "unauthenticated_answers": trust.get(rec.device_id, (False, None))[1],
                **versions.get(rec.device_id, {}),
                "keys": [{"fingerprint": k.fingerprint, "public_key": k.public_key.hex(),
                          "added": iso_utc(k.added_at), "added_by": k.added_by,
                          "revoked": iso_utc(k.revoked_at), "revoked_by": k.revoked_by,
                          "revoke_reason": k.revoke_reason} for k in rec.keys],
            })
        return emit(out, args, [])   # per cohort: `sotto releases list --json`
    if not records:
        return emit([], args, "no devices registered (add one with `sotto devices add ID --pubkey KEY`)")
    rows = [("DEVICE", "STATUS", "OFFICER", "KEY", "LAST HEARD", "HEARTBEAT", "BATTERY", "FIRMWARE",
             "UPDATE", "CFG", "QUEUED", "SIGNAL")]
    for rec in records:
        seen, hb, batt, _via = state.get(rec.device_id, (None, None, None, None))
        status = rec.status
        if rec.device_id in silent:
            status = "SILENT"
        h = health.get(rec.device_id)
        if h is not None and h.config_invalid:
            status += ",CONFIG-INVALID"
        if trust.get(rec.device_id, (False, None))[0]:
            status += ",INSECURE-TLS"
        rows.append((rec.name, status, rec.officer or "-",
                     rec.active_key.fingerprint if rec.active_key else "-",
                     f"{utc_text(seen)} ({duration_text(now - seen)} ago)" if seen else "never",
                     f"every {duration_text(hb)}" if hb else "-", f"{batt} %" if batt is not None else "-",
                     *_firmware_cells(versions.get(rec.device_id), h),
                     _num(h.cfgv if h else None), _num(h.qd if h else None),
                     "-" if h is None or h.csq is None else ("?" if h.csq == 99 else f"{h.csq}/31")))
    lines = table(rows)
    for name, c in sorted(cohorts.items()):
        running = ", ".join(f"{v}: {n}" for v, n in sorted(c["running"].items())) or "none reported"
        assigned = ", ".join(f"{v}: {n}" for v, n in sorted(c["assigned"].items())) or "none"
        lines.append(f"cohort {name}: {c['devices']} devices; running {running}; assigned {assigned}; "
                     f"rolled back {c['rolled_back']}")
    return emit(None, args, lines)


def _firmware_cells(v: dict[str, Any] | None, h: devcfg.Health | None) -> tuple[str, str]:
    """FIRMWARE (running, -> staged or assigned) and UPDATE (the last result, and why)."""
    running = (v or {}).get("fw") or (h.fw if h else None)
    if not v:
        return running or "-", "-"
    fw = running or "?"
    if v["pending"]:
        fw += f" (staged {v['pending']})"
    elif v["assigned_release"] and v["assigned_release"] != running:
        fw += f" (-> {v['assigned_release']})"
    upd = v["update_name"] or "-"
    if v["update_error"]:
        upd += f": {v['update_error']}"
    return fw, upd
