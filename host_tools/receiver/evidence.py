"""Evidence bundles: export an alert, verify a bundle offline.

    result = export_alert(conn, 12, Path("A12-evidence"), operator="Bob")
    check = verify_bundle(Path("A12-evidence"))      # needs nothing but the folder
    check.ok, check.problems

A bundle is a folder:

    frames.cbor      the alert's frames exactly as received, in chain order (CBOR sequence)
    audio.wav        the audio frames decoded (IMA-ADPCM) to 16-bit PCM, gaps as silence
    track.geojson    the positions (RFC 7946): a LineString and one Point per fix
    device-key.pem   the device's Ed25519 public key
    report.json      per-frame verdicts, the hash chain, audio and track summaries,
                     when and how each frame arrived, who exported it and when
    report.html      the same for people, with the track and a timeline drawn inline (SVG)
    manifest.json    SHA-256 and size of every file above

Verification recomputes everything from frames.cbor and the public key: every
signature and audio digest, that every frame belongs to this device and alert,
the chain (a removed frame leaves a gap, a reordered file no longer follows the
chain), the WAV, the GeoJSON and the report, and every file's hash. It reports
the SHA-256 of manifest.json, which the receiver's audit log recorded at export:
comparing the two shows the bundle is the one exported (a bundle rewritten as a
whole by someone holding only the device's *public* key cannot contain frames
the device did not sign, but could leave frames out).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools import __version__
from host_tools.adpcm import AdpcmError, decode, wav_bytes
from host_tools.errors import SottoError, UsageError
from host_tools.frames import (
    SOURCE_NAMES,
    Frame,
    FrameError,
    FrameType,
    decode_frame,
    split_sequence,
    verify_frame,
)
from host_tools.ids import format_device_id
from host_tools.receiver import audit
from host_tools.receiver.alerts import AlertSummary, get_alert, iso_utc
from host_tools.receiver.report import render_html
from host_tools.registry import key_fingerprint

BUNDLE_FORMAT = "sotto-evidence/1"
FRAMES_FILE, WAV_FILE, TRACK_FILE = "frames.cbor", "audio.wav", "track.geojson"
KEY_FILE, REPORT_FILE, HTML_FILE = "device-key.pem", "report.json", "report.html"
MANIFEST_FILE = "manifest.json"
MAX_AUDIO_SECONDS = 2 * 3600     # a WAV longer than this is refused (a device's offsets are its own)


class EvidenceError(SottoError, ValueError):
    """An export that cannot be made (no such alert, purged, folder not empty)."""


# --------------------------------------------------------------------------
# Shared by export and verification: both must compute exactly the same.


@dataclass
class ChainAnalysis:
    """The hash chain of a set of frames of one alert, from the frames alone."""

    order: list[Frame]                  # the chain from alert-start, then frames off it (by seq)
    labels: dict[bytes, str]            # frame link -> its place in the chain, for people
    state: str                          # complete | open | gap | broken
    problems: list[str]

    @property
    def summary(self) -> str:
        if self.problems:
            return f"{self.state}: " + "; ".join(self.problems)
        if self.state == "complete":
            return f"complete: {len(self.order)} frames, one unbroken chain from alert-start to " \
                   f"{self.order[-1].type.label}"
        return f"unbroken so far: {len(self.order)} frames from alert-start, no end frame"


def analyse_chain(frames: Sequence[Frame]) -> ChainAnalysis:
    """Order frames along their `prev` links and say what is missing or wrong."""
    by_seq = sorted(frames, key=lambda f: (f.seq, f.link))
    links = {f.link for f in by_seq}
    successors: dict[bytes, list[Frame]] = {}
    for f in by_seq:
        if f.prev is not None:
            successors.setdefault(f.prev, []).append(f)
    starts = [f for f in by_seq if f.type == FrameType.ALERT_START]
    broken: list[str] = []
    gaps: list[str] = []
    labels: dict[bytes, str] = {}
    order: list[Frame] = []
    if len(starts) > 1:
        broken.append(f"{len(starts)} alert-start frames (seq {', '.join(str(f.seq) for f in starts)})")
    for nexts in sorted(successors.values(), key=lambda fs: fs[0].seq):
        if len(nexts) > 1:
            seqs = ", ".join(str(f.seq) for f in nexts)
            broken.append(f"frames seq {seqs} all claim the same previous frame")
    ends = [f for f in by_seq if f.type == FrameType.END and f.link in successors]
    for f in ends:
        seqs = ", ".join(str(g.seq) for g in successors[f.link])
        broken.append(f"frame seq {seqs} came after the end frame")
    if starts:
        cur: Frame | None = starts[0]
        labels[starts[0].link] = "alert-start"
        while cur is not None:
            order.append(cur)
            nexts = successors.get(cur.link, [])
            cur = nexts[0] if nexts else None
            if cur is not None:
                labels[cur.link] = f"follows seq {order[-1].seq}"
    else:
        gaps.append("the alert-start frame is missing")
    on_chain = {f.link for f in order}
    for f in by_seq:
        if f.link in on_chain:
            continue
        order.append(f)
        if f.prev is not None and f.prev not in links:
            labels[f.link] = "its previous frame is missing"
            held = [g.seq for g in by_seq if g.seq < f.seq]
            gaps.append(f"frames missing before seq {f.seq}"
                        + (f" (the frame before it that is here is seq {held[-1]})" if held else ""))
        elif f.type == FrameType.ALERT_START:
            labels[f.link] = "a second alert-start"
        else:
            before = next((g.seq for g in by_seq if g.link == f.prev), None)
            labels[f.link] = f"off the chain (also follows seq {before})" if before is not None \
                else "off the chain"
    if broken:
        state = "broken"
    elif gaps:
        state = "gap"
    elif order and order[-1].type in (FrameType.CANCEL, FrameType.END):
        state = "complete"
    else:
        state = "open"
    return ChainAnalysis(order, labels, state, broken + gaps)


@dataclass
class AudioBuild:
    """The alert's audio reassembled from its chunks."""

    pcm: array | None
    rate_hz: int | None
    chunks: int
    samples: int
    gaps: list[tuple[int, int]]         # (first sample, count) of silence where chunks are missing
    notes: list[str]

    @property
    def seconds(self) -> float:
        return self.samples / self.rate_hz if self.rate_hz else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "rate_hz": self.rate_hz, "samples": self.samples,
                "seconds": round(self.seconds, 3),
                "gaps": [{"first_sample": a, "samples": n, "seconds": round(n / (self.rate_hz or 1), 3)}
                         for a, n in self.gaps], "notes": self.notes}


def build_audio(frames: Sequence[Frame]) -> AudioBuild:
    """Decode every audio chunk from its own ADPCM state into one PCM timeline
    (the chunk's `off` places it); missing stretches stay silent and are listed."""
    chunks = sorted((f for f in frames if f.type == FrameType.AUDIO),
                    key=lambda f: (f.audio_offset or 0, f.seq))
    notes: list[str] = []
    if not chunks:
        return AudioBuild(None, None, 0, 0, [], notes)
    rate = chunks[0].rate_hz or 0
    usable = []
    for f in chunks:
        if f.rate_hz != rate:
            notes.append(f"seq {f.seq}: {f.rate_hz} Hz, unlike the first chunk's {rate} Hz; left out")
            continue
        if (f.audio_offset or 0) + (f.samples or 0) > MAX_AUDIO_SECONDS * rate:
            notes.append(f"seq {f.seq}: starts {(f.audio_offset or 0) / rate:.0f} s into the alert, beyond "
                         f"the {MAX_AUDIO_SECONDS} s a bundle holds; left out")
            continue
        usable.append(f)
    total = max(((f.audio_offset or 0) + (f.samples or 0) for f in usable), default=0)
    pcm = array("h", bytes(2 * total))
    covered = bytearray(total)
    for f in usable:
        off, ns = f.audio_offset or 0, f.samples or 0
        data = f.audio or b""
        state = f.adpcm_state or (0, 0)
        if len(data) * 2 < ns:
            notes.append(f"seq {f.seq}: {ns} samples announced but {len(data)} bytes hold only "
                         f"{len(data) * 2}")
            ns = len(data) * 2
        try:
            samples, _ = decode(data, ns, state[0], state[1])
        except AdpcmError as e:
            notes.append(f"seq {f.seq}: cannot decode: {e}")
            continue
        if any(covered[off:off + ns]):
            notes.append(f"seq {f.seq}: overlaps audio already placed at sample {off}")
        pcm[off:off + ns] = samples
        covered[off:off + ns] = b"\x01" * ns
    gaps: list[tuple[int, int]] = []
    i = 0
    while i < total:
        if not covered[i]:
            j = covered.find(1, i)
            j = total if j < 0 else j
            gaps.append((i, j - i))
            i = j
        else:
            j = covered.find(0, i)
            i = total if j < 0 else j
    return AudioBuild(pcm, rate, len(usable), total, gaps, notes)


def build_track(frames: Sequence[Frame], alert_code: str, device: str) -> dict[str, Any]:
    """The positions as a GeoJSON FeatureCollection (RFC 7946, [lon, lat] in degrees)."""
    points = sorted((f for f in frames if f.location is not None), key=lambda f: f.seq)
    features: list[dict[str, Any]] = []
    coords = []
    for f in points:
        loc = f.location
        assert loc is not None
        pos = [loc.lon_e7 / 1e7, loc.lat_e7 / 1e7]
        coords.append(pos)
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": pos},
                         "properties": {"seq": f.seq, "frame": f.type.label, "time": iso_utc(f.time),
                                        "time_epoch": f.time, "accuracy_m": loc.accuracy_m,
                                        "fix_age_s": loc.age_s, "source": SOURCE_NAMES.get(loc.source)}})
    if len(coords) >= 2:
        features.insert(0, {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coords},
                            "properties": {"alert": alert_code, "device": device, "points": len(coords)}})
    return {"type": "FeatureCollection", "features": features}


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _pem(key: bytes) -> str:
    return Ed25519PublicKey.from_public_bytes(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def derive_report(frames: Sequence[Frame], verdicts: dict[bytes, str], public_key: bytes, device_id: bytes,
                  sid: int, alert_code: str) -> dict[str, Any]:
    """Everything in report.json that follows from the frames and the key alone."""
    chain = analyse_chain(frames)
    audio = build_audio(frames)
    positions = [{"seq": ft["properties"]["seq"], "lon": ft["geometry"]["coordinates"][0],
                  "lat": ft["geometry"]["coordinates"][1], "accuracy_m": ft["properties"]["accuracy_m"],
                  "time": ft["properties"]["time"]}
                 for ft in build_track(frames, alert_code, format_device_id(device_id))["features"]
                 if ft["geometry"]["type"] == "Point"]
    return {
        "format": BUNDLE_FORMAT,
        "alert": alert_code,
        "device": format_device_id(device_id),
        "device_hex": device_id.hex(),
        "session": sid,
        "device_key": {"ed25519": public_key.hex(), "fingerprint": key_fingerprint(public_key),
                       "pem": _pem(public_key)},
        "chain": {"state": chain.state, "summary": chain.summary, "problems": chain.problems},
        "frames": [{
            "index": i + 1, "seq": f.seq, "type": f.type.label, "time": f.time, "time_utc": iso_utc(f.time),
            "size": len(f.wire), "sha256": hashlib.sha256(f.wire).hexdigest(),
            "prev": f.prev.hex() if f.prev is not None else None, "link": f.link.hex(),
            "verdict": verdicts.get(f.wire, "valid"), "chain": chain.labels.get(f.link, ""),
            "duress": f.duress,
        } for i, f in enumerate(chain.order)],
        "audio": audio.to_json(),
        "track": {"points": len(positions), "positions": positions},
    }


# --------------------------------------------------------------------------
# Export.


@dataclass
class ExportResult:
    """What `sotto alerts export` wrote."""

    path: Path
    manifest_sha256: str
    frames: int
    audio_seconds: float
    chain: str
    files: list[str]
    audit_id: int


def _stored_frames(conn: sqlite3.Connection, alert: AlertSummary) -> tuple[list[Frame], list[dict[str, Any]]]:
    rows = conn.execute("SELECT seq, wire, received_at, via, peer, purged_at FROM frames WHERE alert_id = ? "
                        "ORDER BY seq", (alert.alert_id,)).fetchall()
    if any(r[1] is None for r in rows):
        when = max((r[5] or 0) for r in rows)
        raise EvidenceError(f"{alert.code}: its location and audio were purged ({iso_utc(when)}, retention); "
                            "the evidence no longer exists")
    frames = [decode_frame(bytes(r[1])) for r in rows]
    receipts = [{"seq": r[0], "sha256": hashlib.sha256(bytes(r[1])).hexdigest(), "received": iso_utc(r[2]),
                 "received_epoch": r[2], "via": r[3], "sms_sender": r[4] if r[3] == "sms" else None}
                for r in rows]
    return frames, receipts


def export_alert(conn: sqlite3.Connection, alert_id: int, out_dir: str | os.PathLike[str], *, operator: str,
                 now: float | None = None) -> ExportResult:
    """Write the alert's evidence bundle to out_dir (new or empty). The export is
    recorded in the audit log, with the bundle's manifest digest, before the
    folder appears under its name."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder; give a new --out folder")
    alert = get_alert(conn, alert_id)
    key_row = conn.execute("SELECT public_key, revoked_at FROM device_keys WHERE key_id = ?",
                           (alert.key_id,)).fetchone()
    if key_row is None:
        raise EvidenceError(f"{alert.code}: the device key it was verified with is not in the registry")
    public_key, revoked_at = bytes(key_row[0]), key_row[1]
    frames, receipts = _stored_frames(conn, alert)
    if not frames:
        raise EvidenceError(f"{alert.code} has no stored frames")
    verdicts = {}
    for f in frames:
        v = verify_frame(f, public_key)
        if not v.ok:   # never expected: only verified frames are stored
            verdicts[f.wire] = str(v.reason)
    report = derive_report(frames, verdicts, public_key, alert.device_id, alert.sid, alert.code)
    chain = analyse_chain(frames)
    audio = build_audio(frames)
    report["receiver"] = {
        "officer": alert.officer, "state": alert.state, "acknowledged_by": alert.acked_by,
        "acknowledged": iso_utc(alert.acked_at), "closed_by": alert.closed_by,
        "closed": iso_utc(alert.closed_at),
        "outcome": alert.outcome, "chain_at_receiver": alert.chain.summary,
        "key_revoked": iso_utc(revoked_at), "receipts": receipts,
    }
    report["export"] = {"at": iso_utc(now), "at_epoch": now, "operator": operator,
                        "tool": f"sotto {__version__}"}
    files: dict[str, bytes] = {FRAMES_FILE: b"".join(f.wire for f in chain.order)}
    if audio.pcm is not None and audio.rate_hz:
        files[WAV_FILE] = wav_bytes(audio.pcm, audio.rate_hz)
    files[TRACK_FILE] = _json_bytes(build_track(frames, alert.code, alert.device))
    files[KEY_FILE] = _pem(public_key).encode("ascii")
    files[REPORT_FILE] = _json_bytes(report)
    files[HTML_FILE] = render_html(report).encode("utf-8")
    manifest = {"format": BUNDLE_FORMAT, "alert": alert.code, "device": alert.device,
                "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                          for name, data in sorted(files.items())}}
    files[MANIFEST_FILE] = _json_bytes(manifest)
    digest = hashlib.sha256(files[MANIFEST_FILE]).hexdigest()

    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        audit_id = audit.record(conn, operator, "export", alert_id=alert.alert_id, device_id=alert.device_id,
                                detail=f"evidence bundle {out.resolve()}: {len(frames)} frames, "
                                       f"{audio.seconds:.1f} s audio, manifest sha256 {digest}", at=now)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(out, digest, len(frames), audio.seconds, chain.summary, sorted(files), audit_id)


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, code: str, detail: str) -> None:
        self.problems.append((code, detail))


def _load_json(check: BundleCheck, name: str) -> Any:
    path = check.path / name
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        check.fail("file-missing", f"{name} is missing")
    except (ValueError, UnicodeDecodeError) as e:
        check.fail("file-altered", f"{name} is not valid JSON ({e})")
    return None


def verify_bundle(path: str | os.PathLike[str]) -> BundleCheck:
    """Re-verify an evidence bundle using nothing but its files (see module doc)."""
    root = Path(path)
    check = BundleCheck(root)
    if not root.is_dir():
        check.fail("not-a-bundle", f"{root} is not a folder")
        return check
    manifest_path = root / MANIFEST_FILE
    if manifest_path.is_file():
        check.manifest_sha256 = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
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
        extra = sorted(p.name for p in root.iterdir() if p.name not in listed and p.name != MANIFEST_FILE)
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
            check.passed.append(f"audio: {WAV_FILE} is exactly the {audio.chunks} audio frames decoded "
                                f"({audio.seconds:.1f} s)")
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
    return check
