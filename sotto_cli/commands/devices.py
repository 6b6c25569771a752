"""`sotto devices add|list|revoke|rotate`: the registry of devices and their public keys.

Thin handlers over host_tools.registry. The keys live in the receiver's
database (--db PATH, else $SOTTO_DB, else the default path); only public keys.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import closing
from typing import Any

from host_tools.frames import load_public_key
from host_tools.receiver import releases
from host_tools.receiver.alerts import DEFAULT_GRACE_S, duration_text, iso_utc, trust_states, utc_text
from host_tools.receiver.audit import operator_name
from host_tools.receiver.store import open_db
from host_tools.registry import DeviceRecord, Registry, add_db_option, resolve_db_path
from sotto_cli.commands.releases import register_device_commands

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
heard from and its heartbeat. --json prints every key with its history."""


def register(subparsers: Any) -> None:
    """Add `sotto devices` and its subcommands to the CLI."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser("devices", help="register, list and revoke devices' public keys",
                                   description=DEVICES_HELP, formatter_class=fmt)
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    sub = parser.add_subparsers(dest="devices_command", metavar="SUBCOMMAND", title="subcommands")

    add = sub.add_parser("add", help="register a device with its public key", description=ADD_HELP,
                         formatter_class=fmt,
                         epilog="example: sotto devices add SOTTO-42 --pubkey sotto-42.pub.pem "
                                "--officer 'J. Smith'")
    add.add_argument("device", metavar="ID", help="device id: 8 characters (SOTTO-42) or 16 hex digits")
    add.add_argument("--pubkey", required=True, metavar="KEY", help="PEM public key file, or 64 hex digits")
    add.add_argument("--officer", metavar="NAME", help="the officer who wears the device")
    add_db_option(add)
    add.set_defaults(func=cmd_add)

    lst = sub.add_parser("list", help="list devices, keys and last contact", description=LIST_HELP,
                         formatter_class=fmt)
    lst.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(lst)
    lst.set_defaults(func=cmd_list)

    revoke = sub.add_parser("revoke", help="stop trusting a device's key",
                            description="Revoke the device's active key: every frame signed with it is "
                                        "rejected as revoked-device from now on (a lost or stolen device). "
                                        "The key stays on record and is never trusted again.")
    revoke.add_argument("device", metavar="ID")
    revoke.add_argument("--reason", metavar="TEXT", help="why (kept with the key)")
    add_db_option(revoke)
    revoke.set_defaults(func=cmd_revoke)

    rotate = sub.add_parser("rotate", help="replace a device's key with a new one",
                            description="Revoke the device's active key and trust the new KEY instead "
                                        "(`sotto rotate-key` does this together with the device).")
    rotate.add_argument("device", metavar="ID")
    rotate.add_argument("--pubkey", required=True, metavar="KEY",
                        help="the new public key: PEM file or 64 hex")
    add_db_option(rotate)
    rotate.set_defaults(func=cmd_rotate)
    register_device_commands(sub)   # update, cohort (docs/ota.md)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


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
    print(f"registered {_describe(record)}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    """`sotto devices rotate ID --pubkey KEY`."""
    key = load_public_key(args.pubkey)
    with Registry(resolve_db_path(args.db), create=False) as reg:
        record = reg.rotate(args.device, key, by=_by())
    old = record.revoked_keys[-1].fingerprint if record.revoked_keys else None
    print(f"rotated {_describe(record)}" + (f" (revoked key {old})" if old else ""))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """`sotto devices revoke ID [--reason TEXT]`."""
    with Registry(resolve_db_path(args.db), create=False) as reg:
        record = reg.revoke(args.device, reason=args.reason, by=_by())
    key = record.revoked_keys[-1]
    print(f"revoked device {record.name}: key {key.fingerprint} is no longer trusted")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto devices list [--json]`."""
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        records = Registry(conn).list()
        state = {bytes(r[0]): r[1:] for r in conn.execute(
            "SELECT device_id, last_seen_at, heartbeat_s, battery, last_via FROM device_state")}
        trust = trust_states(conn)
        versions = releases.device_view(conn)
        cohorts = releases.cohort_summary(conn)
    now = time.time()
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
                "silent": bool(seen and hb and rec.active_key and now > seen + hb + DEFAULT_GRACE_S),
                "insecure_tls": trust.get(rec.device_id, (False, None))[0],
                "unauthenticated_answers": trust.get(rec.device_id, (False, None))[1],
                **versions.get(rec.device_id, {}),
                "keys": [{"fingerprint": k.fingerprint, "public_key": k.public_key.hex(),
                          "added": iso_utc(k.added_at), "added_by": k.added_by,
                          "revoked": iso_utc(k.revoked_at), "revoked_by": k.revoked_by,
                          "revoke_reason": k.revoke_reason} for k in rec.keys],
            })
        print(json.dumps(out, indent=2))   # per cohort: `sotto releases list --json`
        return 0
    if not records:
        print("no devices registered (add one with `sotto devices add ID --pubkey KEY`)")
        return 0
    rows = [("DEVICE", "STATUS", "OFFICER", "KEY", "LAST HEARD", "HEARTBEAT", "BATTERY", "FIRMWARE",
             "UPDATE")]
    for rec in records:
        seen, hb, batt, _via = state.get(rec.device_id, (None, None, None, None))
        status = rec.status
        if seen and hb and rec.active_key and now > seen + hb + DEFAULT_GRACE_S:
            status = "SILENT"
        if trust.get(rec.device_id, (False, None))[0]:
            status += ",INSECURE-TLS"
        rows.append((rec.name, status, rec.officer or "-",
                     rec.active_key.fingerprint if rec.active_key else "-",
                     f"{utc_text(seen)} ({duration_text(now - seen)} ago)" if seen else "never",
                     f"every {duration_text(hb)}" if hb else "-", f"{batt} %" if batt is not None else "-",
                     *_firmware_cells(versions.get(rec.device_id))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for name, c in sorted(cohorts.items()):
        running = ", ".join(f"{v}: {n}" for v, n in sorted(c["running"].items())) or "none reported"
        assigned = ", ".join(f"{v}: {n}" for v, n in sorted(c["assigned"].items())) or "none"
        print(f"cohort {name}: {c['devices']} devices; running {running}; assigned {assigned}; "
              f"rolled back {c['rolled_back']}")
    return 0


def _firmware_cells(v: dict[str, Any] | None) -> tuple[str, str]:
    """FIRMWARE (running, -> staged or assigned) and UPDATE (the last result, and why)."""
    if not v:
        return "-", "-"
    fw = v["fw"] or "?"
    if v["pending"]:
        fw += f" (staged {v['pending']})"
    elif v["assigned_release"] and v["assigned_release"] != v["fw"]:
        fw += f" (-> {v['assigned_release']})"
    upd = v["update_name"] or "-"
    if v["update_error"]:
        upd += f": {v['update_error']}"
    return fw, upd
