"""Signed releases of the device application (docs/ota.md).

A release is a folder:

    DIR/manifest.cose   COSE_Sign1 (tag 18, EdDSA, kid = SHA-256(release key)[:8])
                        over a deterministic CBOR map, the manifest
    DIR/files/...       the application files, at their device paths
                        (files/sotto/app.mpy is /sotto/app.mpy on the device)
    DIR/release.json    the manifest in words, for people (not signed, never trusted)

The manifest (text keys, docs/ota.md has the CDDL):

    fmt     1
    v       the release's version, "MAJOR.MINOR.PATCH"
    min     the lowest running version it may replace
    boards  board names it runs on (hardware/boards/*.json)
    down    true if it may replace a newer version (a deliberate downgrade)
    files   [[device path, SHA-256, size], ...] sorted by path
    made    when it was built (unix seconds)
    rk      (optional) a new release public key: the device trusts it from
            this release on (rotation, signed with the old key)

The release key (Ed25519) is kept apart from device keys and the centre's key:
`sotto release keygen` writes it (0600) and its public half; devices get the
public half at provisioning (`sotto provision --release-key-pub`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from host_tools.errors import SottoError, UsageError
from host_tools.keyfile import KeyFileError, create_private_key, read_private_key

MANIFEST = "manifest.cose"
FILES = "files"
SUMMARY = "release.json"
FORMAT = 1
ALG_EDDSA = -8
KID_BYTES = 8
VERSION_RE = re.compile(r"^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$")
PATH_RE = re.compile(r"^/(sotto|boards)/[A-Za-z0-9_./-]+$")
# what an OTA release may carry: the package and the board definitions. boot.py and
# main.py stay as `sotto flash` wrote them (they hold the boot selector's hook)
RELEASE_ROOTS = ("/sotto/", "/boards/")
MAX_FILES = 200
MAX_FILE_BYTES = 256 * 1024


class ReleaseError(SottoError, ValueError):
    """A release that cannot be made, read or trusted; `reason` is a short code
    (bad-signature, wrong-key, file-digest, file-size, missing-file, bad-manifest...)."""

    exit_code = 2

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "M.m.p"; ReleaseError otherwise."""
    m = VERSION_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ReleaseError("bad-version", f"{text!r} is not MAJOR.MINOR.PATCH (e.g. 0.2.0)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def kid_of(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:KID_BYTES]


def _canonical(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


# --------------------------------------------------------------------------
# The release key.


def keygen(out: str | os.PathLike[str]) -> bytes:
    """Write a new release key to `out` (PEM, 0600, never over a file) and its
    public half to `out`.pub (PEM); returns the public key's 32 bytes."""
    path = Path(out)
    try:
        key = create_private_key(path)
    except FileExistsError:
        raise UsageError(f"{path} already exists: a release key is never overwritten") from None
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror or e}") from None
    public = key.public_key()
    Path(str(path) + ".pub").write_bytes(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The release key in `path`; ReleaseError if missing, readable by others or not Ed25519."""
    try:
        return read_private_key(path, "the release key")
    except KeyFileError as e:
        raise ReleaseError("key-exposed" if e.exposed else "no-key", str(e)) from None


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --------------------------------------------------------------------------
# Making a release.


def sign_manifest(manifest: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    protected = _canonical({1: ALG_EDDSA, 4: kid_of(public_bytes(key))})
    body = _canonical(dict(manifest))
    signature = key.sign(_canonical(["Signature1", protected, b"", body]))
    return _canonical(cbor2.CBORTag(18, [protected, {}, body, signature]))


def build(files: Mapping[str, bytes], version: str, key: Ed25519PrivateKey, out: str | os.PathLike[str], *,
          min_version: str = "0.0.0", boards: list[str] | None = None, allow_downgrade: bool = False,
          rotate_to: bytes | None = None, made: int | None = None) -> dict[str, Any]:
    """Write the release of `files` ({device path: bytes}) to `out` (made; must be
    empty or absent) and return its manifest."""
    parse_version(version)
    parse_version(min_version)
    if not files:
        raise ReleaseError("bad-manifest", "a release needs at least one file")
    if len(files) > MAX_FILES:
        raise ReleaseError("bad-manifest", f"{len(files)} files, at most {MAX_FILES}")
    entries = []
    for path in sorted(files):
        if not PATH_RE.match(path) or ".." in path.split("/") or not path.startswith(RELEASE_ROOTS):
            raise ReleaseError("bad-path", f"{path!r} is not under /sotto or /boards")
        data = files[path]
        if len(data) > MAX_FILE_BYTES:
            raise ReleaseError("file-size", f"{path} is {len(data)} bytes, at most {MAX_FILE_BYTES}")
        entries.append([path, hashlib.sha256(data).digest(), len(data)])
    if rotate_to is not None and len(rotate_to) != 32:
        raise ReleaseError("bad-manifest", "the new release key must be 32 bytes")
    manifest: dict[str, Any] = {"fmt": FORMAT, "v": version, "min": min_version,
                                "boards": sorted(boards or ["sotto-ref-s3"]), "down": bool(allow_downgrade),
                                "files": entries, "made": int(time.time() if made is None else made)}
    if rotate_to is not None:
        manifest["rk"] = bytes(rotate_to)
    outp = Path(out)
    if outp.exists() and any(outp.iterdir()):
        raise UsageError(f"{outp} is not empty: give a new folder for the release")
    for path, data in files.items():
        target = outp / FILES / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (outp / MANIFEST).write_bytes(sign_manifest(manifest, key))
    (outp / SUMMARY).write_text(json.dumps(summary(manifest, public_bytes(key)), indent=1) + "\n")
    return manifest


def firmware_files(march: str | None) -> dict[str, bytes]:
    """What `sotto flash` puts on a device under /sotto and /boards, compiled."""
    from host_tools import flash

    b = flash.build_firmware(march=march)
    return {f.device_path: f.host_path.read_bytes() for f in b.files
            if f.device_path.startswith(RELEASE_ROOTS)}


def summary(manifest: Mapping[str, Any], signer: bytes | None = None) -> dict[str, Any]:
    out = {"version": manifest["v"], "min_version": manifest["min"], "boards": list(manifest["boards"]),
           "allow_downgrade": manifest["down"], "made": manifest["made"],
           "files": [{"path": p, "sha256": d.hex(), "size": n} for p, d, n in manifest["files"]],
           "bytes": sum(n for _p, _d, n in manifest["files"]),
           "rotates_release_key_to": manifest["rk"].hex() if "rk" in manifest else None}
    if signer is not None:
        out["release_key"] = signer.hex()
        out["release_kid"] = kid_of(signer).hex()
    return out


# --------------------------------------------------------------------------
# Reading and checking a release.


def open_manifest(blob: bytes, public_key: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """(manifest, kid) of a signed manifest. With public_key, the signature must
    be that key's (ReleaseError wrong-key / bad-signature); without, only its shape is read."""
    try:
        item = cbor2.loads(blob)
        protected, _unprotected, payload, signature = item.value
        header = cbor2.loads(protected)
        manifest = cbor2.loads(payload)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a signed manifest
        raise ReleaseError("bad-manifest", "not a COSE_Sign1 manifest") from None
    if getattr(item, "tag", None) != 18 or not isinstance(header, dict) or header.get(1) != ALG_EDDSA:
        raise ReleaseError("bad-manifest", "not an EdDSA COSE_Sign1")
    kid = header.get(4)
    if public_key is not None:
        if kid != kid_of(public_key):
            got = kid.hex() if isinstance(kid, bytes) else repr(kid)
            raise ReleaseError("wrong-key", f"signed by key {got}, "
                                            f"not the release key {kid_of(public_key).hex()}")
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                signature, _canonical(["Signature1", protected, b"", payload]))
        except Exception:  # noqa: BLE001 - InvalidSignature
            raise ReleaseError("bad-signature", "the manifest's signature does not verify") from None
    check_manifest(manifest)
    return manifest, kid


def check_manifest(m: Any) -> None:
    if not isinstance(m, dict) or m.get("fmt") != FORMAT:
        raise ReleaseError("bad-manifest", "not a format-1 manifest")
    parse_version(m.get("v"))
    parse_version(m.get("min"))
    files = m.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise ReleaseError("bad-manifest", "files must be a list of 1..200 entries")
    for f in files:
        if not (isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and PATH_RE.match(f[0])
                and isinstance(f[1], bytes) and len(f[1]) == 32 and isinstance(f[2], int)
                and 0 <= f[2] <= MAX_FILE_BYTES and ".." not in f[0].split("/")):
            raise ReleaseError("bad-manifest", f"bad file entry {f!r:.80}")
    if not isinstance(m.get("boards"), list) or not all(isinstance(b, str) for b in m["boards"]):
        raise ReleaseError("bad-manifest", "boards must be a list of names")
    if not isinstance(m.get("down"), bool) or not isinstance(m.get("made"), int):
        raise ReleaseError("bad-manifest", "down must be a bool, made an integer")


@dataclass(frozen=True)
class Release:
    path: Path
    manifest: dict[str, Any]
    manifest_blob: bytes
    kid: bytes

    @property
    def version(self) -> str:
        return str(self.manifest["v"])

    def file_bytes(self, device_path: str) -> bytes:
        return (self.path / FILES / device_path.lstrip("/")).read_bytes()


def load(directory: str | os.PathLike[str], public_key: bytes | None = None) -> Release:
    """The release in `directory`, every file checked against the manifest
    (size, SHA-256; no file missing, none extra). With public_key the signature
    is checked too."""
    d = Path(directory)
    try:
        blob = (d / MANIFEST).read_bytes()
    except OSError as e:
        raise ReleaseError("missing-file", f"{d / MANIFEST}: {e.strerror or e}") from None
    manifest, kid = open_manifest(blob, public_key)
    listed = set()
    for path, digest, size in manifest["files"]:
        listed.add(path)
        try:
            data = (d / FILES / path.lstrip("/")).read_bytes()
        except OSError:
            raise ReleaseError("missing-file", f"{path} is in the manifest but not in {d / FILES}") from None
        if len(data) != size:
            raise ReleaseError("file-size", f"{path} is {len(data)} bytes, the manifest says {size}")
        if hashlib.sha256(data).digest() != digest:
            raise ReleaseError("file-digest", f"{path} does not match its SHA-256 in the manifest")
    root = d / FILES
    for p in root.rglob("*") if root.is_dir() else []:
        if p.is_file() and "/" + p.relative_to(root).as_posix() not in listed:
            raise ReleaseError("extra-file", f"{p} is not in the manifest")
    return Release(d, manifest, blob, kid if isinstance(kid, bytes) else b"")
