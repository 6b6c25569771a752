"""`sotto evidence verify DIR --centre-key KEY`: check an evidence bundle offline.

Thin handler over host_tools.receiver.evidence.verify_bundle: needs the folder
and the keys, given from outside the bundle (no database, no network).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from host_tools.frames import load_public_key, public_key_bytes
from host_tools.receiver.evidence import verify_bundle
from sotto_cli.options import add_json, command, emit, group

EVIDENCE_HELP = """\
Work with evidence bundles made by `sotto alerts export`."""

VERIFY_HELP = """\
Re-verify an evidence bundle with keys given from outside it: the centre's seal
(manifest.sig, the centre's Ed25519 signature over manifest.json, which lists
every file's SHA-256 and every frame's digest), every frame's signature and
audio digest, that every frame comes from the device (and, with --device-key,
that device's key) and alert, the hash chain (removed or reordered frames
show), the WAV and the GeoJSON against the frames, and the report.

--centre-key is the centre's public answer-signing key (`sotto centre key`
prints it; 64 hex digits or a PEM file), never a key taken from the bundle.

Exit status: 0 intact; 1 tampered (anything changed, removed, added, or sealed
by another key); 3 incomplete (authentic, but the alert's chain has a gap, it
has no end frame, or audio the frames announce is missing); 2 usage error."""


def register(subparsers: Any) -> None:
    """Add `sotto evidence` to the CLI."""
    _, sub = group(subparsers, "evidence", help="verify evidence bundles offline", description=EVIDENCE_HELP)
    verify = command(sub, "verify", cmd_verify, help="re-verify a bundle offline", description=VERIFY_HELP,
                     epilog="example: sotto evidence verify A12-evidence/ --centre-key centre.pub")
    verify.add_argument("dir", metavar="DIR", help="the bundle folder")
    verify.add_argument("--centre-key", required=True, metavar="KEY",
                        help="the centre's public key: 64 hex digits or a PEM/DER/raw file")
    verify.add_argument("--device-key", metavar="KEY",
                        help="the device's public key from the registry (`sotto devices show`); "
                             "the frames must verify with it")
    add_json(verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """`sotto evidence verify DIR --centre-key KEY [--device-key KEY] [--json]`."""
    centre = public_key_bytes(load_public_key(args.centre_key))
    device = public_key_bytes(load_public_key(args.device_key)) if args.device_key else None
    check = verify_bundle(args.dir, centre_key=centre, device_key=device)
    if args.json:
        return emit({"verdict": check.verdict, "ok": check.ok, "sealed": check.sealed,
                     "bundle": str(check.path), "device": check.device,
                     "key_fingerprint": check.fingerprint, "chain": check.chain,
                     "manifest_sha256": check.manifest_sha256, "passed": check.passed,
                     "problems": [{"code": c, "detail": d} for c, d in check.problems],
                     "missing": [{"code": c, "detail": d} for c, d in check.missing]},
                    args, [], check.exit_status)
    for line in check.passed:
        print(f"OK    {line}")
    for code, detail in check.problems:
        print(f"FAIL  {code}: {detail}")
    for code, detail in check.missing:
        print(f"MISS  {code}: {detail}")
    if check.device:
        print(f"device {check.device}, key fingerprint {check.fingerprint}")
    if check.manifest_sha256:
        print(f"bundle digest (SHA-256 of manifest.json): {check.manifest_sha256}")
    if check.ok:
        print("evidence intact" + (f"; {check.chain}" if check.chain else ""))
    elif check.authentic:
        print("evidence incomplete (sealed by the centre, nothing altered, but the alert lacks what is "
              "listed above)" + (f"; {check.chain}" if check.chain else ""))
    else:
        print(f"evidence TAMPERED: the bundle failed {len(check.problems)} check(s)")
        print(f"sotto: the bundle failed {len(check.problems)} check(s)", file=sys.stderr)
    return check.exit_status
