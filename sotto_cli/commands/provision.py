"""`sotto provision`: configure a flashed device with the centre's trust anchors, let it
make its key, register the key.

Thin handler over host_tools.provision.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from host_tools import efuse_check, flash, provision
from host_tools.errors import UsageError
from host_tools.receiver import audit, devcfg
from host_tools.registry import resolve_db_path
from host_tools.storage import redact
from sotto_cli.options import add_db_and_json, board_name, command, emit, known_boards

DESCRIPTION = """\
Provision a flashed device: write its configuration with the centre's trust
anchors (checked by the firmware's own rules, on the device), let it make its
Ed25519 key from its hardware RNG (the private key never leaves the device),
and register its public key in the registry the receiver trusts.

Trust anchors: the centre's TLS CA certificate (--ca-cert, written to the
device's /data and named in its configuration) and the centre's answer-signing
public key (read from the registry database, where `sotto centre init` put it,
or --centre-key-pub). Without them the firmware delivers nothing over the
network; --insecure-tls (bench work only) runs TLS without a CA, and every
frame says so. An http:// receiver is refused unless it is on loopback.

A device that already has a key is refused unless --force, which starts from a
clean identity (nothing of the old configuration is kept unless given again)
and revokes the old key. A device that still holds queued frames or a live
alert is refused even then: --drain delivers its frames to the centre first,
--discard-queue throws them away (recorded in the audit log)."""

EPILOG = """\
example:
  sotto provision --port /dev/ttyACM0 --id SOTTO-42 --officer "PC 1234 Smith" \\
      --server https://alerts.example.org --apn internet --sms-number +447700900123 \\
      --ca-cert centre-ca.pem --db /srv/sotto/receiver.db

  with a second path (EN 50136 DP), the other centre's receiver, CA and key:
  sotto provision ... --secondary-server https://alerts-b.example.org \\
      --secondary-ca-cert centre-b-ca.pem --secondary-centre-key-pub centre-b-key.pem \\
      --export-pubkey SOTTO-42.pem"""


def add_queue_options(p: argparse.ArgumentParser) -> None:
    """--drain / --discard-queue and their companions (provision --force, rotate-key)."""
    what = p.add_mutually_exclusive_group()
    what.add_argument("--drain", action="store_true",
                      help="deliver the device's queued frames to the centre first (over its USB link), "
                           "removing only what the centre acknowledged")
    what.add_argument("--discard-queue", action="store_true",
                      help="throw the device's queued frames and live alert away (recorded in the audit "
                           "log with the technician's name)")
    p.add_argument("--receiver", metavar="URL",
                   help="where --drain delivers (default: the receiver in the device's configuration)")
    p.add_argument("--technician", metavar="NAME",
                   help=f"who you are, for the audit log (default ${audit.ENV_OPERATOR} or the login name)")


def queue_policy(args: argparse.Namespace, ca_pem: str | None = None) -> provision.QueuePolicy:
    return provision.QueuePolicy(drain=args.drain, discard=args.discard_queue, receiver=args.receiver,
                                 ca_pem=ca_pem, technician=args.technician)


def register(subparsers: Any) -> None:
    """Add `sotto provision` to the CLI."""
    p = command(subparsers, "provision", cmd_provision, help="configure a device and register its new key",
                description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--port", required=True, help="the device's serial port")
    p.add_argument("--id", required=True, dest="device_id",
                   help="device id: 16 hex digits or 8 characters such as SOTTO-42")
    p.add_argument("--officer", help="who wears it (shown to operators)")
    p.add_argument("--server", required=True,
                   help="the receiver's URL, https://HOST[:PORT] (http:// only to a loopback address)")
    p.add_argument("--apn", required=True, help="the SIM's APN")
    p.add_argument("--sms-number", help="SMS fallback number, international form (+447700900123)")
    p.add_argument("--board", type=board_name,
                   help=f"board definition name (default sotto-ref-s3; known: {', '.join(known_boards())})")
    p.add_argument("--ca-cert", metavar="PEM", help="the centre's TLS CA certificate (needed for https)")
    p.add_argument("--centre-key-pub", metavar="HEX|FILE",
                   help="the centre's answer-signing public key (default: the registry database's, "
                        "`sotto centre key`)")
    p.add_argument("--release-key-pub", metavar="PEM|HEX",
                   help="the release key's public half (`sotto release keygen` wrote KEY.pub): the "
                        "device installs updates signed with it, and only those (docs/ota.md); without "
                        "it, no updates")
    p.add_argument("--insecure-tls", action="store_true",
                   help="bench work only: TLS without a CA (the device cannot tell the centre from an "
                        "impostor; every frame carries the insecure-tls flag)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="any other setting, checked by the firmware's own rules (repeatable; VALUE is "
                        "JSON): trigger.alert='{\"presses\": 4, \"window_ms\": 2000}', "
                        "heartbeat_every_s=600, audio.clip_s=60, audio.pre_trigger=true; later changes "
                        "need no re-keying: `sotto devices config ID set`")
    second = p.add_argument_group(
        "second path", "EN 50136 dual path: a second receiver the device delivers to when the first\n"
        "has not answered for delivery.secondary_after_s (60 s); it goes back when the first answers.\n"
        "Register the device's key at that centre too (--export-pubkey, then `sotto devices add` there).")
    second.add_argument("--secondary-server", metavar="URL",
                        help="the secondary receiver's URL, https://HOST[:PORT] (another centre, or another "
                             "site of this one)")
    second.add_argument("--secondary-ca-cert", metavar="PEM",
                        help="the secondary centre's TLS CA certificate (needed for an https "
                             "--secondary-server)")
    second.add_argument("--secondary-centre-key-pub", metavar="HEX|FILE",
                        help="the secondary centre's answer-signing public key (`sotto centre key` there; "
                             "required with --secondary-server)")
    p.add_argument("--repl-lock", action="store_true",
                   help="production units: from the next boot Ctrl-C cannot stop the firmware, so the USB "
                        "REPL (and this tool) cannot reach the device; re-provisioning needs a flash erase, "
                        "which destroys the key (docs/technician-guide.md)")
    p.add_argument("--production", action="store_true",
                   help="a production unit: first check its eFuses (`sotto efuses`; refused with exit 2 "
                        "unless flash encryption, secure boot v2 and the download-mode lock are in place); "
                        "implies --repl-lock")
    p.add_argument("--force", action="store_true",
                   help="re-provision a provisioned device: a clean identity, a new key, the old key revoked")
    add_queue_options(p)
    p.add_argument("--new-registry", action="store_true",
                   help="the registry database does not exist yet: make it")
    p.add_argument("--export-pubkey", metavar="FILE",
                   help="also write the device's public key (PEM) to FILE, for a centre on another machine "
                        "(`sotto devices add --pubkey FILE`)")
    add_db_and_json(p)


def summary_lines(change: provision.KeyChange, db: str) -> list[str]:
    """What was written, for the technician (nothing in it is secret)."""
    cfg = change.config
    tls = ("INSECURE TLS (bench work only; frames are flagged)" if cfg.get("insecure_tls")
           else f"CA certificate /data/{cfg['ca_cert']}" if cfg.get("ca_cert") else "none (loopback http)")
    rows = [("device", f"{change.device_id} ({cfg['device_id']})"),
            ("key", f"{change.fingerprint}, made on the device, registered in {db}"),
            ("receiver", str(cfg["receiver"])), ("TLS", tls),
            ("centre key", f"{cfg['centre_key']} (answers are checked against it)"),
            ("apn", str(cfg["apn"])), ("officer", str(cfg.get("officer") or "-")),
            ("SMS fallback", str(cfg.get("sms_number") or "none")),
            ("board", str(cfg.get("board") or "sotto-ref-s3 (default)")),
            ("release key", str(cfg.get("release_key") or "none (no over-the-air updates)"))]
    if cfg.get("secondary_receiver"):
        ca2 = f"CA /data/{cfg['secondary_ca_cert']}" if cfg.get("secondary_ca_cert") else "no CA file"
        rows.append(("secondary", f"{cfg['secondary_receiver']} ({ca2}; centre key "
                                  f"{cfg['secondary_centre_key']})"))
    extra = sorted(k for k in cfg if k not in ("device_id", "receiver", "apn", "centre_key", "officer",
                                                 "sms_number", "board", "ca_cert", "insecure_tls",
                                                 "release_key", "secondary_receiver", "secondary_ca_cert",
                                                 "secondary_centre_key"))
    if extra:
        rows.append(("settings", ", ".join(f"{k}={json.dumps(cfg[k])}" for k in extra)))
    if change.revoked:
        rows.append(("revoked", ", ".join(change.revoked)))
    if change.drained is not None:
        rows.append(("queue", f"{change.drained.acked} frames delivered to the centre first"))
    if change.discarded:
        rows.append(("queue", f"{change.discarded} frames discarded (recorded in the audit log)"))
    if change.removed:
        rows.append(("removed", ", ".join(change.removed) + " (the old identity's)"))
    width = max(len(k) for k, _ in rows)
    return [f"  {k.ljust(width)}  {v}" for k, v in rows]


def cmd_provision(args: argparse.Namespace) -> int:
    """`sotto provision --port PORT --id ID --server URL --apn APN [...]`."""
    if args.discard_queue or args.drain:
        if not args.force:
            raise UsageError("--drain and --discard-queue go with --force (or `sotto rotate-key`)")
    if args.production:
        efuse_check.require_production(args.port)
        flash.wait_for_micropython(args.port).close()   # espefuse reset the unit into its ROM bootloader
        args.repl_lock = True
    request = provision.ProvisionRequest(args.device_id, officer=args.officer, server=args.server,
                                         sms_number=args.sms_number, apn=args.apn, board=args.board,
                                         ca_cert=args.ca_cert, centre_key_pub=args.centre_key_pub,
                                         release_key_pub=args.release_key_pub,
                                         insecure_tls=args.insecure_tls, repl_lock=args.repl_lock,
                                         new_registry=args.new_registry,
                                         settings=devcfg.parse_settings(args.settings) if args.settings
                                         else {},
                                         secondary_server=args.secondary_server,
                                         secondary_ca_cert=args.secondary_ca_cert,
                                         secondary_centre_key_pub=args.secondary_centre_key_pub)
    ca_pem = Path(args.ca_cert).read_text() if args.ca_cert and Path(args.ca_cert).is_file() else None
    db = resolve_db_path(args.db)
    shown = redact(db)   # a PostgreSQL URL's password never printed
    change = provision.provision(args.port, request, db, force=args.force, queue=queue_policy(args, ca_pem),
                                 export_pubkey=args.export_pubkey)
    lines = [f"provisioned {change.device_id}; configuration written:", *summary_lines(change, shown)]
    if args.export_pubkey:
        lines.append(f"public key written to {args.export_pubkey}")
    return emit({**change.to_json(), "registry": shown, "exported_to": args.export_pubkey}, args, lines)
