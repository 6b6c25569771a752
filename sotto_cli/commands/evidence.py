"""`sotto evidence verify DIR`: check an evidence bundle offline.

Thin handler over host_tools.receiver.evidence.verify_bundle: needs nothing but
the folder (no database, no network).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from host_tools.receiver.evidence import verify_bundle
from sotto_cli.options import add_json, command, emit, group

EVIDENCE_HELP = """\
Work with evidence bundles made by `sotto alerts export`."""

VERIFY_HELP = """\
Re-verify an evidence bundle using only its files: every frame's signature and
audio digest against the device key in the bundle, that every frame comes from
that device and alert, the hash chain (removed or reordered frames show), the
WAV and the GeoJSON against the frames, the report, and every file's SHA-256.

Prints the bundle digest (SHA-256 of manifest.json): compare it with the one
the receiver's audit log recorded at export, and the key fingerprint with the
registry, to know it is the bundle that was exported, of the right device.

Exit status: 0 when the bundle is intact, 1 when anything is wrong (each
problem is printed with its code), 2 for a usage error."""


def register(subparsers: Any) -> None:
    """Add `sotto evidence` to the CLI."""
    _, sub = group(subparsers, "evidence", help="verify evidence bundles offline", description=EVIDENCE_HELP)
    verify = command(sub, "verify", cmd_verify, help="re-verify a bundle offline", description=VERIFY_HELP,
                     epilog="example: sotto evidence verify A12-evidence/")
    verify.add_argument("dir", metavar="DIR", help="the bundle folder")
    add_json(verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """`sotto evidence verify DIR [--json]`."""
    check = verify_bundle(args.dir)
    if args.json:
        return emit({"ok": check.ok, "bundle": str(check.path), "device": check.device,
                     "key_fingerprint": check.fingerprint, "chain": check.chain,
                     "manifest_sha256": check.manifest_sha256, "passed": check.passed,
                     "problems": [{"code": c, "detail": d} for c, d in check.problems]},
                    args, [], 0 if check.ok else 1)
    for line in check.passed:
        print(f"OK    {line}")
    for code, detail in check.problems:
        print(f"FAIL  {code}: {detail}")
    if check.device:
        print(f"device {check.device}, key fingerprint {check.fingerprint}")
    if check.manifest_sha256:
        print(f"bundle digest (SHA-256 of manifest.json): {check.manifest_sha256}")
    if check.ok:
        print("evidence intact" + (f"; {check.chain}" if check.chain else ""))
        return 0
    print(f"sotto: the bundle failed {len(check.problems)} check(s)", file=sys.stderr)
    return 1
