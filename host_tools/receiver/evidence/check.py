"""Verifying a bundle offline, from its folder alone (see the package docstring)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.adpcm import wav_bytes
from host_tools.frames import (
    Frame,
    FrameError,
    FrameType,
    decode_frame,
    split_sequence,
    verify_frame,
)
from host_tools.ids import format_device_id
from host_tools.receiver.evidence.derive import (
    FRAMES_FILE,
    HTML_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    REPORT_FILE,
    TRACK_FILE,
    WAV_FILE,
    _json_bytes,
    analyse_chain,
    build_audio,
    build_track,
    derive_report,
)
from host_tools.receiver.evidence.seal import EXIT_STATUS, INCOMPLETE, INTACT, SEAL_FILE, TAMPERED, seal_valid
from host_tools.receiver.report import render_html
from host_tools.registry import key_fingerprint

# --------------------------------------------------------------------------
# Offline verification.


@dataclass
class BundleCheck:
    """The outcome of verify_bundle: `ok`, the problems found, and what was checked."""

    path: Path
    problems: list[tuple[str, str]] = field(default_factory=list)   # (code, detail)
    passed: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None
    device: str | None = None
    fingerprint: str | None = None
    chain: str | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)   # (code, detail): incomplete, not altered
    sealed: bool | None = None      # the centre's seal verified (None: no centre key given)

    @property
    def verdict(self) -> str:
        """tampered (any problem), incomplete (authentic, but the alert lacks
        something), or intact."""
        if self.problems:
            return TAMPERED
        return INCOMPLETE if self.missing else INTACT

    @property
    def ok(self) -> bool:
        """Intact: nothing altered and nothing missing."""
        return self.verdict == INTACT

    @property
    def authentic(self) -> bool:
        """Nothing altered (it may still be incomplete)."""
        return not self.problems

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    def fail(self, code: str, detail: str) -> None:
        self.problems.append((code, detail))

    def lacks(self, code: str, detail: str) -> None:
        self.missing.append((code, detail))


def _load_json(check: BundleCheck, name: str) -> Any:
    path = check.path / name
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        check.fail("file-missing", f"{name} is missing")
    except (ValueError, UnicodeDecodeError) as e:
        check.fail("file-altered", f"{name} is not valid JSON ({e})")
    return None


def _check_seal(check: BundleCheck, centre_key: bytes, manifest_bytes: bytes | None) -> None:
    sig_path = check.path / SEAL_FILE
    if not sig_path.is_file():
        check.sealed = False
        check.fail("seal-missing", f"{SEAL_FILE} is missing: the bundle is not sealed by the centre")
    elif manifest_bytes is None or not seal_valid(centre_key, manifest_bytes, sig_path.read_bytes()):
        check.sealed = False
        check.fail("seal-invalid", f"{SEAL_FILE} is not the centre's signature over {MANIFEST_FILE} "
                   f"(centre key {key_fingerprint(centre_key)}): the bundle was changed or made elsewhere")
    else:
        check.sealed = True
        check.passed.append(f"seal: {MANIFEST_FILE} is signed by the centre key "
                            f"{key_fingerprint(centre_key)}")


def verify_bundle(path: str | os.PathLike[str], *, centre_key: bytes | None = None,
                  device_key: bytes | None = None) -> BundleCheck:
    """Re-verify an evidence bundle (see module doc). centre_key (32 bytes, from
    outside the bundle) checks the centre's seal; device_key, when given, must be
    the key the bundle's frames verify with. Without centre_key only the bundle's
    own consistency is checked, which a forger can recompute."""
    root = Path(path)
    check = BundleCheck(root)
    if not root.is_dir():
        check.fail("not-a-bundle", f"{root} is not a folder")
        return check
    manifest_path = root / MANIFEST_FILE
    manifest_bytes = manifest_path.read_bytes() if manifest_path.is_file() else None
    if manifest_bytes is not None:
        check.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    if centre_key is not None:
        _check_seal(check, centre_key, manifest_bytes)
    manifest = _load_json(check, MANIFEST_FILE)
    listed: dict[str, Any] = {}
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
        listed = manifest["files"]
        bad = 0
        for name, entry in sorted(listed.items()):
            file = root / name
            if os.sep in name or name.startswith(".") or not file.is_file():
                check.fail("file-missing", f"{name} is listed in the manifest but missing")
                bad += 1
                continue
            actual = hashlib.sha256(file.read_bytes()).hexdigest()
            if not isinstance(entry, dict) or entry.get("sha256") != actual:
                check.fail("file-altered", f"{name} does not match its SHA-256 in the manifest")
                bad += 1
        extra = sorted(p.name for p in root.iterdir()
                       if p.name not in listed and p.name not in (MANIFEST_FILE, SEAL_FILE))
        for name in extra:
            check.fail("file-unlisted", f"{name} is not part of the bundle's manifest")
        if not bad:
            check.passed.append(f"manifest: {len(listed)} files match their SHA-256")
    elif manifest is not None:
        check.fail("file-altered", "manifest.json does not list the bundle's files")

    report = _load_json(check, REPORT_FILE)
    if not isinstance(report, dict):
        if report is not None:
            check.fail("file-altered", "report.json is not an object")
        return check
    try:
        public_key = bytes.fromhex(report["device_key"]["ed25519"])
        device_id = bytes.fromhex(report["device_hex"])
        sid = int(report["session"])
        alert_code = str(report["alert"])
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except (KeyError, TypeError, ValueError) as e:
        check.fail("report-altered", f"report.json lacks the device key, device or session ({e})")
        return check
    check.device = format_device_id(device_id) if len(device_id) == 8 else device_id.hex()
    check.fingerprint = key_fingerprint(public_key)
    if device_key is not None:
        if device_key != public_key:
            check.fail("key-mismatch", f"the bundle's frames are signed by key {check.fingerprint}, not the "
                       f"device key given ({key_fingerprint(device_key)})")
        else:
            check.passed.append(f"device key: the frames' key is the one given ({check.fingerprint})")
    if isinstance(manifest, dict) and manifest.get("device_key") not in (None, public_key.hex()):
        check.fail("key-mismatch", f"{MANIFEST_FILE} names another device key than report.json")
    key_file = root / KEY_FILE
    if key_file.is_file():
        try:
            pem_key = serialization.load_pem_public_key(key_file.read_bytes())
            same = isinstance(pem_key, Ed25519PublicKey) and pem_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public_key
        except ValueError:
            same = False
        if not same:
            check.fail("key-mismatch", f"{KEY_FILE} is not the key named in report.json")

    frames_path = root / FRAMES_FILE
    if not frames_path.is_file():
        check.fail("file-missing", f"{FRAMES_FILE} is missing")
        return check
    try:
        wires = split_sequence(frames_path.read_bytes())
    except FrameError as e:
        check.fail("frame-altered", f"{FRAMES_FILE} is not a CBOR sequence of frames: {e.detail}")
        return check
    good: list[Frame] = []
    for i, wire in enumerate(wires, 1):
        try:
            frame = decode_frame(wire)
        except FrameError as e:
            check.fail("frame-altered", f"frame {i} cannot be decoded ({e.reason}: {e.detail})")
            continue
        if frame.kid != device_id:
            check.fail("frame-foreign", f"frame {i} (seq {frame.seq}) comes from device {frame.device_id}, "
                       f"not {check.device}")
            continue
        if frame.sid != sid:
            what = f"alert session {frame.sid}" if frame.sid is not None else f"a {frame.type.label} frame"
            check.fail("frame-foreign", f"frame {i} (seq {frame.seq}) belongs to {what}, not session {sid}")
            continue
        verdict = verify_frame(frame, key)
        if not verdict.ok:
            check.fail("frame-altered", f"frame {i} (seq {frame.seq}): {verdict.reason}: {verdict.detail}")
            continue
        good.append(frame)
    if good and len(good) == len(wires):
        check.passed.append(f"frames: {len(good)} frames, every signature and audio digest valid, all from "
                            f"device {check.device} (key {check.fingerprint}), session {sid}")

    claimed = report.get("frames") if isinstance(report.get("frames"), list) else []
    claimed_digests = [c.get("sha256") for c in claimed if isinstance(c, dict)]
    have = {hashlib.sha256(f.wire).hexdigest(): f for f in good}
    all_have = {hashlib.sha256(w).hexdigest() for w in wires}
    for c in claimed:
        if isinstance(c, dict) and c.get("sha256") not in all_have:
            check.fail("frame-removed", f"frame seq {c.get('seq')} ({c.get('type')}) named in the report is "
                       "not in frames.cbor")
    for digest, f in have.items():
        if digest not in claimed_digests:
            check.fail("frame-added", f"frame seq {f.seq} is in frames.cbor but not in the report")
    sealed_frames = manifest.get("frames") if isinstance(manifest, dict) else None
    if isinstance(sealed_frames, list):
        in_bundle = [hashlib.sha256(w).hexdigest() for w in wires]
        gone = [d for d in sealed_frames if d not in all_have]
        if gone:
            check.fail("frame-removed", f"{len(gone)} frame(s) listed in {MANIFEST_FILE} are not in "
                       f"{FRAMES_FILE}")
        if [d for d in in_bundle if d not in sealed_frames]:
            check.fail("frame-added", f"{FRAMES_FILE} holds frames {MANIFEST_FILE} does not list")
    elif centre_key is not None:
        check.fail("file-altered", f"{MANIFEST_FILE} does not list the frames' digests (sotto-evidence/2)")

    chain = analyse_chain(good)
    check.chain = chain.summary
    in_file = [hashlib.sha256(f.wire).hexdigest() for f in good]
    in_chain = [hashlib.sha256(f.wire).hexdigest() for f in chain.order]
    if in_file != in_chain:
        check.fail("frames-reordered", "frames.cbor is not in chain order (frames were moved)")
    claimed_chain = report.get("chain", {}) if isinstance(report.get("chain"), dict) else {}
    if claimed_chain.get("state") != chain.state or claimed_chain.get("problems") != chain.problems:
        check.fail("chain-mismatch", f"the frames' chain is '{chain.summary}', the report says "
                   f"'{claimed_chain.get('summary')}'")
    elif not check.problems or all(code.startswith("file-") for code, _ in check.problems):
        check.passed.append(f"chain: {chain.summary}")

    audio = build_audio(good)
    wav = root / WAV_FILE
    if audio.pcm is not None and audio.rate_hz:
        expected = wav_bytes(audio.pcm, audio.rate_hz)
        if not wav.is_file():
            check.fail("file-missing", f"{WAV_FILE} is missing though the frames carry audio")
        elif wav.read_bytes() != expected:
            check.fail("audio-altered", f"{WAV_FILE} is not what the audio frames decode to")
        else:
            pre = audio.pre_trigger_samples / audio.rate_hz
            pre_text = (f"; the first {pre:.1f} s are pre-trigger audio, recorded before the alarm was raised"
                        if audio.pre_trigger_samples else "")
            check.passed.append(f"audio: {WAV_FILE} is exactly the {audio.chunks} audio frames decoded "
                                f"({audio.seconds:.1f} s{pre_text})")
    elif wav.exists():
        check.fail("audio-altered", f"{WAV_FILE} is present but no frame carries audio")

    track = build_track(good, alert_code, check.device)
    track_file = root / TRACK_FILE
    try:
        stored_track = json.loads(track_file.read_bytes())
    except FileNotFoundError:
        check.fail("file-missing", f"{TRACK_FILE} is missing")
    except (ValueError, UnicodeDecodeError):
        check.fail("track-altered", f"{TRACK_FILE} is not valid JSON")
    else:
        if stored_track != json.loads(_json_bytes(track)):
            check.fail("track-altered", f"{TRACK_FILE} does not match the positions in the frames")
        else:
            points = sum(1 for ft in track["features"] if ft["geometry"]["type"] == "Point")
            check.passed.append(f"track: {TRACK_FILE} matches the {points} positions in the frames")

    derived = derive_report(good, {}, public_key, device_id, sid, alert_code)
    differing = sorted(k for k, v in derived.items() if json.loads(_json_bytes(report.get(k))) !=
                       json.loads(_json_bytes(v)))
    if differing and not any(code.startswith("frame-") for code, _ in check.problems):
        check.fail("report-altered",
                   f"report.json differs from what the frames say in: {', '.join(differing)}")
    elif not differing:
        check.passed.append("report: report.json agrees with the frames")
    html = root / HTML_FILE
    if html.is_file() and html.read_bytes() != render_html(report).encode("utf-8"):
        check.fail("report-altered", f"{HTML_FILE} is not the rendering of report.json")
    ended = any(f.type in (FrameType.CANCEL, FrameType.END) for f in good)
    _what_is_missing(check, chain.state, chain.problems, audio, ended)
    return check


def _what_is_missing(check: BundleCheck, state: str, problems: list[str], audio: Any, ended: bool) -> None:
    """What the alert itself lacks (the bundle may be authentic): chain gaps, no end, lost audio."""
    if state == "gap":
        check.lacks("chain-gap", "; ".join(problems))
    elif state == "broken":
        check.lacks("chain-broken", "; ".join(problems))
    if not ended:
        check.lacks("no-end", "the alert has no cancel or end frame: it may have gone on after the export")
    if audio.gaps:
        rate = audio.rate_hz or 1
        lost = sum(n for _, n in audio.gaps) / rate
        check.lacks("audio-missing", f"{len(audio.gaps)} stretch(es) of audio the frames' offsets announce "
                    f"are missing ({lost:.1f} s, silent in {WAV_FILE})")
    for note in audio.notes:
        if "announced" in note:
            check.lacks("audio-missing", note)
