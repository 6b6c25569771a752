"""`sotto frame inspect|verify`: look at frames and check their signatures.

Thin handlers over host_tools.frames. A FILE holds one frame or a CBOR
sequence of frames (what a device POSTs), as raw bytes or, with --hex, as hex
text; `-` reads standard input.
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.errors import UsageError
from host_tools.frames import (
    Frame,
    FrameError,
    KeySource,
    Reason,
    decode_frame,
    describe_frame,
    frame_summary,
    frame_to_json,
    load_public_key,
    split_sequence,
    verify_frame,
)
from host_tools.ids import format_device_id, parse_device_id
from sotto_cli.options import add_json, command, emit, group

FRAME_HELP = """\
Look at Sotto frames (docs/frames.md) and check them.

A FILE holds one frame or a CBOR sequence of frames, exactly as a device sends
them (raw bytes; --hex for hex text); `-` reads standard input."""

INSPECT_HELP = """\
Print each frame for a person: type, device, sequence number, alert session,
time (UTC) and uptime, location in degrees with accuracy, fix age and source,
battery, flags, audio fields and the hash-chain links. Inspecting does not check
signatures: use `sotto frame verify` before trusting what a frame says.

Exit status: 0 when every frame decodes, 1 when one does not (its reason code
goes to stderr), 2 for a usage error."""

VERIFY_HELP = """\
Verify every frame in FILE with the device's public key: structure, payload
schema, Ed25519 signature, the audio digest, and that its time is not more than
5 minutes ahead of this machine's clock. Prints one OK line per valid frame;
each invalid frame goes to stderr with its reason code (docs/frames.md).

Exit status: 0 when every frame is valid, 1 when any is not, 2 for a usage error
(unreadable file or key)."""

INSPECT_EPILOG = "example: sotto frame inspect alert.cbor --json | jq '.[0].location'"
VERIFY_EPILOG = "example: sotto frame verify alert.cbor --pubkey device.pub.pem --device SOTTO-42"


def register(subparsers: Any) -> None:
    """Add `sotto frame` and its subcommands to the CLI."""
    _, sub = group(subparsers, "frame", help="inspect and verify signed frames", description=FRAME_HELP)

    inspect = command(sub, "inspect", cmd_inspect, help="print frames for a person (or --json for tools)",
                      description=INSPECT_HELP, epilog=INSPECT_EPILOG)
    _add_input_args(inspect)
    add_json(inspect, "print a JSON array with one object per frame instead")

    verify = command(sub, "verify", cmd_verify, help="check frames' signatures with a device's public key",
                     description=VERIFY_HELP, epilog=VERIFY_EPILOG)
    _add_input_args(verify)
    add_json(verify, "print a JSON array with one verdict per frame instead")
    verify.add_argument("--pubkey", required=True, metavar="KEY",
                        help="the device's Ed25519 public key: a PEM file, or 64 hex digits")
    verify.add_argument("--device", metavar="ID",
                        help="also require every frame to come from this device id "
                             "(16 hex digits or 8 characters such as SOTTO-42); others are unknown-device")
    verify.add_argument("--now", type=int, metavar="EPOCH",
                        help="judge time-in-future against this UTC epoch second instead of the clock")


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="frame or CBOR sequence of frames; - for stdin")
    parser.add_argument("--hex", action="store_true", help="FILE holds hex text (whitespace ignored)")


def read_frames(path: str, *, hex_text: bool = False) -> list[bytes]:
    """The frames in FILE (`-`: stdin), each as its exact bytes."""
    if path == "-":
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
        name = path
    if hex_text:
        text = "".join(data.decode("ascii", errors="replace").split())
        bad = next((c for c in text if c not in string.hexdigits), None)
        if bad is not None or len(text) % 2:
            what = f"{bad!r} is not a hex digit" if bad is not None else "an odd number of hex digits"
            raise UsageError(f"{name} is not hex text: {what}")
        data = bytes.fromhex(text)
    frames = split_sequence(data)
    if not frames:
        raise FrameError(Reason.MALFORMED_CBOR, f"{name} holds no frames")
    return frames


def _label(index: int, count: int) -> str:
    return f"frame {index + 1}/{count}" if count > 1 else "frame"


def _report(index: int, count: int, error: FrameError | None, reason: Reason | None = None,
            detail: str = "") -> None:
    reason = error.reason if error else reason
    detail = error.detail if error else detail
    print(f"sotto: {_label(index, count)}: {reason}: {detail}", file=sys.stderr)


def cmd_inspect(args: argparse.Namespace) -> int:
    """`sotto frame inspect FILE [--json]`."""
    items = read_frames(args.file, hex_text=args.hex)
    decoded: list[Frame | FrameError] = []
    for wire in items:
        try:
            decoded.append(decode_frame(wire))
        except FrameError as e:
            decoded.append(e)
    failed = sum(isinstance(d, FrameError) for d in decoded)
    if args.json:
        out: list[dict[str, Any]] = []
        for i, d in enumerate(decoded):
            entry: dict[str, Any] = {"index": i + 1}
            if isinstance(d, FrameError):
                entry["error"] = {"reason": d.reason.value, "detail": d.detail, "size": len(items[i])}
            else:
                entry.update(frame_to_json(d))
            out.append(entry)
        emit(out, args, [])
    else:
        links: dict[bytes, int] = {}
        for i, d in enumerate(decoded):
            if i:
                print()
            if isinstance(d, FrameError):
                print(f"{_label(i, len(items))}: not a valid frame ({len(items[i])} bytes)")
                _report(i, len(items), d)
                continue
            if len(items) > 1:
                print(f"{_label(i, len(items))}")
            extra = []
            if d.prev is not None and len(items) > 1:
                before = links.get(d.prev)
                extra.append(("chain", f"follows frame {before} of this file" if before
                              else "its previous frame is not in this file"))
            for line in describe_frame(d, extra):
                print("  " + line)
            links[d.link] = i + 1
    if failed:
        print(f"sotto: {failed} of {len(items)} frames could not be decoded", file=sys.stderr)
        return 1
    return 0


def _only_device(device: bytes, key: Ed25519PublicKey) -> KeySource:
    """A key source that knows one device: frames from any other are unknown-device."""
    def resolve(kid: bytes) -> Ed25519PublicKey:
        if kid != device:
            raise FrameError(Reason.UNKNOWN_DEVICE, f"the frame comes from device {format_device_id(kid)}, "
                             f"not {format_device_id(device)} (--device)")
        return key
    return resolve


def cmd_verify(args: argparse.Namespace) -> int:
    """`sotto frame verify FILE --pubkey KEY [--device ID] [--now EPOCH]`."""
    key = load_public_key(args.pubkey)
    keys: KeySource = _only_device(parse_device_id(args.device), key) if args.device else key
    items = read_frames(args.file, hex_text=args.hex)
    now = args.now if args.now is not None else time.time()
    failed = 0
    verdicts: list[dict[str, Any]] = []
    for i, wire in enumerate(items):
        verdict = verify_frame(wire, keys, now=now)
        ok = verdict.ok and verdict.frame is not None
        verdicts.append({"index": i + 1, "ok": ok, **({"frame": frame_to_json(verdict.frame)} if ok else
                        {"reason": str(getattr(verdict.reason, "value", verdict.reason)),
                         "detail": verdict.detail})})
        if args.json:
            failed += not ok
        elif ok:
            print(f"OK  {_label(i, len(items))}: {frame_summary(verdict.frame)}")
        else:
            failed += 1
            _report(i, len(items), None, verdict.reason, verdict.detail)
    if args.json:
        emit(verdicts, args, [])
    if failed:
        if len(items) > 1:
            print(f"sotto: {failed} of {len(items)} frames failed verification", file=sys.stderr)
        return 1
    return 0
