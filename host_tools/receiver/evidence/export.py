"""Exporting an alert as an evidence bundle (audited; see the package docstring)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools import __version__
from host_tools.adpcm import wav_bytes
from host_tools.errors import UsageError
from host_tools.frames import (
    Frame,
    decode_frame,
    verify_frame,
)
from host_tools.receiver import audit, centre_key
from host_tools.receiver.alerts import AlertSummary, get_alert, iso_utc
from host_tools.receiver.evidence.derive import (
    BUNDLE_FORMAT,
    FRAMES_FILE,
    HTML_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    REPORT_FILE,
    TRACK_FILE,
    WAV_FILE,
    EvidenceError,
    _json_bytes,
    _pem,
    analyse_chain,
    build_audio,
    build_track,
    derive_report,
)
from host_tools.receiver.evidence.seal import SEAL_FILE, seal
from host_tools.receiver.report import render_html
from host_tools.storage.backend import POSTGRESQL, backend_of

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


def _centre_for(conn: sqlite3.Connection, centre: centre_key.CentreKey | None,
                key_path: str | os.PathLike[str] | None) -> centre_key.CentreKey:
    """The key that seals the bundle: the one given, else the file at key_path,
    else the one beside the database; it must be the key the database records."""
    if centre is None:
        if key_path is None:
            if backend_of(conn) == POSTGRESQL:     # the key file named after the server and database
                target = getattr(conn, "url", None)
            else:
                row = conn.execute("PRAGMA database_list").fetchone()
                target = row[2] if row is not None else None
            if not target:
                raise EvidenceError("no centre key to seal the bundle with (give --centre-key PATH)")
            key_path = centre_key.default_path(target)
        try:
            centre = centre_key.load(key_path)
        except centre_key.CentreKeyError as e:
            raise EvidenceError(f"the bundle must be sealed by the centre's key: {e}") from None
    recorded = centre_key.recorded_public_key(conn)
    if recorded is not None and recorded != centre.public_key:
        raise EvidenceError("the centre key given is not the one this database records; a bundle sealed "
                            "with it would not verify against the centre's published key")
    return centre


def export_alert(conn: sqlite3.Connection, alert_id: int, out_dir: str | os.PathLike[str], *, operator: str,
                 now: float | None = None, role: str = audit.CLI_ROLE,
                 centre: centre_key.CentreKey | None = None,
                 centre_key_path: str | os.PathLike[str] | None = None) -> ExportResult:
    """Write the alert's evidence bundle to out_dir (new or empty), sealed by the
    centre's key (`centre`, else the file at centre_key_path, else `<db>-centre.key`).
    The export is recorded in the audit log, with the bundle's manifest digest,
    before the folder appears under its name."""
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
    sealer = _centre_for(conn, centre, centre_key_path)
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
        "flags": [f.to_json() for f in alert.flags],   # clock far off, signed before revocation
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
                "device_key": public_key.hex(), "centre_key": sealer.public_hex, "sealed": iso_utc(now),
                "frames": [hashlib.sha256(f.wire).hexdigest() for f in chain.order],
                "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                          for name, data in sorted(files.items())}}
    files[MANIFEST_FILE] = _json_bytes(manifest)
    files[SEAL_FILE] = seal(sealer, files[MANIFEST_FILE])
    digest = hashlib.sha256(files[MANIFEST_FILE]).hexdigest()

    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        audit_id = audit.record(conn, operator, "export", alert_id=alert.alert_id, device_id=alert.device_id,
                                detail=f"evidence bundle {out.resolve()}: {len(frames)} frames, "
                                       f"{audio.seconds:.1f} s audio, manifest sha256 {digest}", at=now,
                                role=role)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(out, digest, len(frames), audio.seconds, chain.summary, sorted(files), audit_id)
