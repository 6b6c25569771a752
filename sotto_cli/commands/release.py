"""`sotto release keygen|build|verify`: signed releases of the device application.

Thin handlers over host_tools.release (docs/ota.md). The release key is a file
(0600) kept apart from device keys and the centre's key; only its public half is
ever printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from host_tools import release
from host_tools.errors import UsageError
from host_tools.frames import load_public_key
from host_tools.frames.keys import public_key_bytes
from host_tools.frames.reasons import KeyFormatError
from sotto_cli.options import add_json, board_name, command, emit, group, known_boards

RELEASE_HELP = """\
Releases of the device application for over-the-air updates.

A release is the compiled application (the /sotto and /boards files `sotto flash`
puts on a device) with a manifest (version, each file's SHA-256 and size, the
lowest version it may replace, the boards it runs on, whether it may downgrade)
signed with the release key (Ed25519). Devices hold the release key's public
half from provisioning (`sotto provision --release-key-pub`) and switch to
nothing that does not verify against it. Publish a release to the centre with
`sotto releases publish DIR`."""


def register(subparsers: Any) -> None:
    """Add `sotto release` and its subcommands to the CLI."""
    _, sub = group(subparsers, "release", help="make and check signed application releases",
                   description=RELEASE_HELP)

    kg = command(sub, "keygen", cmd_keygen, help="make a release key",
                 description="Write a new Ed25519 release key to KEY (PEM, mode 0600, never over "
                                    "an existing file) and its public half to KEY.pub. Keep KEY off the "
                                    "centre's machines: whoever holds it can update every device.")
    kg.add_argument("--out", required=True, metavar="KEY", help="the private key file to write")
    add_json(kg)

    b = command(sub, "build", cmd_build, help="compile the firmware and sign a release",
                description="Compile firmware/ (as `sotto flash` does) and write a signed release "
                                   "to DIR: manifest.cose, files/, release.json.",
                       epilog="example: sotto release build --version 0.2.0 --key release.key "
                              "--out rel-0.2.0")
    b.add_argument("--version", required=True, metavar="VERSION",
                   help="the release's version, MAJOR.MINOR.PATCH")
    b.add_argument("--key", required=True, metavar="KEY", help="the release key file (sotto release keygen)")
    b.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder for the release")
    b.add_argument("--min-version", default="0.0.0", metavar="VERSION",
                   help="the lowest running version this release may replace (default 0.0.0: any)")
    b.add_argument("--board", action="append", metavar="NAME", type=board_name,
                   help="a board it runs on (repeatable; default: every board in hardware/boards)")
    b.add_argument("--allow-downgrade", action="store_true",
                   help="devices running a newer version may install it (otherwise they refuse)")
    b.add_argument("--march", default="xtensawin",
                   help="mpy-cross -march of the device (default xtensawin, the ESP32-S3; 'none': "
                        "bytecode only)")
    b.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="take the files from DIR (its sotto/ and boards/) instead of compiling firmware/")
    b.add_argument("--rotate-release-key", metavar="PUB",
                   help="devices installing this release trust PUB as the release key from then on")
    add_json(b)

    v = command(sub, "verify", cmd_verify, help="check a release offline",
                description="Check DIR's manifest signature (against --release-key-pub, else only "
                                   "its form) and every file's size and SHA-256. Exit 0 if it is whole and "
                                   "signed, 2 otherwise, with the reason.")
    v.add_argument("dir", metavar="DIR", help="the release folder")
    v.add_argument("--release-key-pub", metavar="PUB",
                   help="the release public key (PEM file or 64 hex); without it the signature is "
                        "not checked")
    add_json(v)


def _pub(text: str, option: str) -> bytes:
    try:
        return public_key_bytes(load_public_key(text))
    except KeyFormatError as e:
        raise UsageError(f"{option}: {e}") from None


def cmd_keygen(args: argparse.Namespace) -> int:
    pub = release.keygen(args.out)
    return emit({"key": args.out, "public_key_file": args.out + ".pub", "public_key": pub.hex(),
                 "kid": release.kid_of(pub).hex()}, args,
                f"release key written to {args.out} (0600); public key {pub.hex()} in {args.out}.pub")


def _files_from(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        raise UsageError(f"--from {directory}: not a folder")
    out = {}
    for p in sorted(directory.rglob("*")):
        rel = "/" + p.relative_to(directory).as_posix()
        if p.is_file() and rel.startswith(release.RELEASE_ROOTS) and "__pycache__" not in p.parts:
            out[rel] = p.read_bytes()
    return out


def cmd_build(args: argparse.Namespace) -> int:
    key = release.load_key(args.key)
    files = _files_from(Path(args.from_dir)) if args.from_dir else \
        release.firmware_files(None if args.march == "none" else args.march)
    boards = args.board or known_boards()
    rk = _pub(args.rotate_release_key, "--rotate-release-key") if args.rotate_release_key else None
    manifest = release.build(files, args.version, key, args.out, min_version=args.min_version,
                             boards=boards, allow_downgrade=args.allow_downgrade, rotate_to=rk)
    s = release.summary(manifest, release.public_bytes(key))
    return emit({"dir": args.out, **s}, args,
                f"release {s['version']} written to {args.out}: {len(s['files'])} files, {s['bytes']} bytes, "
                f"boards {', '.join(s['boards'])}, signed by release key {s['release_kid']}")


def cmd_verify(args: argparse.Namespace) -> int:
    pub = _pub(args.release_key_pub, "--release-key-pub") if args.release_key_pub else None
    try:
        rel = release.load(args.dir, pub)
    except release.ReleaseError as e:
        if args.json:
            return emit({"dir": args.dir, "ok": False, "reason": e.reason, "error": str(e)}, args, [], 2)
        raise
    s = release.summary(rel.manifest)
    s["signer_kid"] = rel.kid.hex()
    s["signature_checked"] = pub is not None
    how = "signature good" if pub is not None else "signature NOT checked (give --release-key-pub)"
    return emit({"dir": args.dir, "ok": True, **s}, args,
                f"release {s['version']} in {args.dir}: {len(s['files'])} files whole; {how} "
                f"(key {s['signer_kid']})")
