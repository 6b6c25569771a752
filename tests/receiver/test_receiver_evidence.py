"""Evidence bundles: export, offline verification, and every kind of tampering it must catch."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import warnings
import wave
from array import array
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, NOW, device, loc

from host_tools.errors import UsageError
from host_tools.frames import split_sequence
from host_tools.receiver import audit, centre_key
from host_tools.receiver.evidence import export_alert, verify_bundle
from host_tools.receiver.ingest import Receiver
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000


def _tone_chunks(seconds: int) -> list[tuple[bytes, tuple[int, int]]]:
    """1 s chunks of a 440 Hz tone, IMA-ADPCM encoded by audioop (nibbles swapped to
    Sotto's low-first order), each with the encoder state before it."""
    pcm = array("h", [int(9000 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(seconds * RATE)])
    chunks = []
    state = None
    for s in range(seconds):
        before = state or (0, 0)
        codes, state = audioop.lin2adpcm(pcm[s * RATE:(s + 1) * RATE].tobytes(), 2, state)
        chunks.append((bytes(((b >> 4) | (b << 4)) & 0xFF for b in codes), before))
    return chunks


@pytest.fixture
def alert_frames(dev: ff.DeviceSim) -> list[bytes]:
    frames = [dev.alert_start(loc=loc(0, 20))]
    for s, (codes, state) in enumerate(_tone_chunks(3)):
        frames.append(dev.audio(codes, s * RATE, RATE, state))
        frames.append(dev.location(loc(s + 1, 10 - s)))
    frames.append(dev.duress(loc(9)))
    frames.append(dev.end(why=2))
    return frames


@pytest.fixture
def centre(db: Path) -> centre_key.CentreKey:
    """The centre's key, beside the database (as `sotto receive` makes it)."""
    conn = db_connect(db)
    try:
        from host_tools.receiver.store import ensure_schema
        ensure_schema(conn)
        return centre_key.ensure(conn, centre_key.default_path(db))[0]
    finally:
        conn.close()


@pytest.fixture
def bundle(receiver: Receiver, db: Path, tmp_path: Path, alert_frames: list[bytes],
           centre: centre_key.CentreKey) -> Path:
    receiver.ingest(alert_frames[::-1])          # arrival order does not matter
    out = tmp_path / "A1-evidence"
    export_alert(db_connect(db), 1, out, operator="Bob", now=NOW + 100)
    return out


def _codes(check) -> list[str]:  # type: ignore[no-untyped-def]
    return [c for c, _ in check.problems]


def _reseal(path: Path) -> None:
    """What a careful forger does after editing: recompute the manifest's hashes."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name in manifest["files"]:
        data = (path / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _copy(bundle: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / name))


def test_an_exported_bundle_verifies_offline(bundle: Path, db: Path, alert_frames: list[bytes],
                                             centre: centre_key.CentreKey) -> None:
    check = verify_bundle(bundle, centre_key=centre.public_key, device_key=device().public_key)
    assert check.ok and check.sealed and check.exit_status == 0, (check.problems, check.missing)
    assert sorted(p.name for p in bundle.iterdir()) == ["audio.wav", "device-key.pem", "frames.cbor",
                                                        "manifest.json", "manifest.sig", "report.html",
                                                        "report.json", "track.geojson"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "sotto-evidence/2" and manifest["centre_key"] == centre.public_hex
    assert manifest["frames"] == [hashlib.sha256(w).hexdigest() for w in alert_frames]
    # frames exactly as received, in chain order
    assert split_sequence((bundle / "frames.cbor").read_bytes()) == alert_frames
    report = json.loads((bundle / "report.json").read_text())
    assert report["chain"]["state"] == "complete" and report["device"] == "SOTTO-42"
    assert report["device_key"]["ed25519"] == device().public_key.hex()
    assert [f["verdict"] for f in report["frames"]] == ["valid"] * len(alert_frames)
    assert report["export"]["operator"] == "Bob" and report["receiver"]["officer"] == "J. Smith"
    (entry,) = [e for e in audit.entries(db_connect(db)) if e.action == "export"]
    assert entry.operator == "Bob" and check.manifest_sha256 in (entry.detail or "")
    html = (bundle / "report.html").read_text()
    assert "<svg" in html and device().public_key.hex() in html and "chain complete" in html


def test_the_wav_is_the_audio_decoded_and_the_track_is_geojson(bundle: Path) -> None:
    with wave.open(io.BytesIO((bundle / "audio.wav").read_bytes())) as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
        assert params == (1, 2, RATE, 3 * RATE)
        pcm = w.readframes(3 * RATE)
    expected = b""
    state = None
    for codes, _ in _tone_chunks(3):
        swapped = bytes(((b >> 4) | (b << 4)) & 0xFF for b in codes)
        out, state = audioop.adpcm2lin(swapped, 2, state)     # audioop decodes what it encoded
        expected += out
    assert pcm == expected
    track = json.loads((bundle / "track.geojson").read_text())
    line, *points = track["features"]
    assert line["geometry"]["type"] == "LineString" and len(line["geometry"]["coordinates"]) == 5
    assert points[0]["geometry"]["coordinates"] == [-0.1246254, 51.5007292]     # [lon, lat]
    assert points[0]["properties"]["accuracy_m"] == 20 and points[-1]["properties"]["frame"] == "duress"


def _rewrite_frames(path: Path, frames: list[bytes]) -> None:
    (path / "frames.cbor").write_bytes(b"".join(frames))


def test_a_removed_frame_is_caught(bundle: Path, tmp_path: Path) -> None:
    frames = split_sequence((bundle / "frames.cbor").read_bytes())
    middle = _copy(bundle, tmp_path, "middle")
    _rewrite_frames(middle, frames[:3] + frames[4:])
    tail = _copy(bundle, tmp_path, "tail")
    _rewrite_frames(tail, frames[:-1])
    _reseal(tail)
    check_middle, check_tail = verify_bundle(middle), verify_bundle(tail)
    assert {"file-altered", "frame-removed", "chain-mismatch"} <= set(_codes(check_middle))
    assert "frames missing before seq 5" in (check_middle.chain or "")
    assert "frame-removed" in _codes(check_tail) and "chain-mismatch" in _codes(check_tail)


def test_reordered_frames_are_caught(bundle: Path, tmp_path: Path) -> None:
    frames = split_sequence((bundle / "frames.cbor").read_bytes())
    moved = _copy(bundle, tmp_path, "moved")
    frames[2], frames[3] = frames[3], frames[2]
    _rewrite_frames(moved, frames)
    _reseal(moved)
    assert _codes(verify_bundle(moved)) == ["frames-reordered"]


def test_an_altered_frame_is_caught(bundle: Path, tmp_path: Path) -> None:
    frames = split_sequence((bundle / "frames.cbor").read_bytes())
    altered = _copy(bundle, tmp_path, "altered")
    f = bytearray(frames[4])
    f[40] ^= 0x01                        # inside the signed payload of a location frame
    _rewrite_frames(altered, frames[:4] + [bytes(f)] + frames[5:])
    _reseal(altered)
    audio = _copy(bundle, tmp_path, "audio-bytes")
    a = bytearray(frames[1])
    a[-10] ^= 0x40                        # the audio bytes beside the signature
    _rewrite_frames(audio, frames[:1] + [bytes(a)] + frames[2:])
    _reseal(audio)
    codes = _codes(verify_bundle(altered))
    audio_check = verify_bundle(audio)
    assert "frame-altered" in codes and "frame-removed" in codes
    assert any("audio-digest-mismatch" in d for c, d in audio_check.problems if c == "frame-altered")


def test_foreign_frames_are_caught(bundle: Path, tmp_path: Path, dev: ff.DeviceSim) -> None:
    frames = split_sequence((bundle / "frames.cbor").read_bytes())
    stranger = device(b"SOTTO-77")
    other = _copy(bundle, tmp_path, "other-device")
    _rewrite_frames(other, frames + [stranger.alert_start(loc=LOC)])
    _reseal(other)
    next_alert = _copy(bundle, tmp_path, "other-alert")
    _rewrite_frames(next_alert, frames + [dev.alert_start(loc=LOC)])     # same device, session 2
    _reseal(next_alert)
    impostor = _copy(bundle, tmp_path, "impostor")
    fake = device(b"SOTTO-42")
    fake.seed = bytes(32)                 # the right id, another key
    fake.sid = 0
    _rewrite_frames(impostor, frames + [fake.alert_start(loc=LOC)])
    _reseal(impostor)
    assert "device SOTTO-77, not SOTTO-42" in dict(verify_bundle(other).problems)["frame-foreign"]
    assert "session 2, not session 1" in dict(verify_bundle(next_alert).problems)["frame-foreign"]
    assert "bad-signature" in dict(verify_bundle(impostor).problems)["frame-altered"]


def test_tampered_audio_track_report_and_page_are_caught(bundle: Path, tmp_path: Path) -> None:
    wav = _copy(bundle, tmp_path, "wav")
    data = bytearray((wav / "audio.wav").read_bytes())
    data[1000] ^= 0x10
    (wav / "audio.wav").write_bytes(bytes(data))
    geo = _copy(bundle, tmp_path, "geo")
    track = json.loads((geo / "track.geojson").read_text())
    track["features"][1]["geometry"]["coordinates"][1] += 0.001        # move a fix ~100 m
    (geo / "track.geojson").write_text(json.dumps(track))
    rep = _copy(bundle, tmp_path, "report")
    report = json.loads((rep / "report.json").read_text())
    report["audio"]["seconds"] = 1.0
    (rep / "report.json").write_text(json.dumps(report))
    page = _copy(bundle, tmp_path, "page")
    (page / "report.html").write_text((page / "report.html").read_text().replace("SOTTO-42", "SOTTO-99"))
    for p in (wav, geo, rep, page):
        _reseal(p)
    assert _codes(verify_bundle(wav)) == ["audio-altered"]
    assert _codes(verify_bundle(geo)) == ["track-altered"]
    assert "report-altered" in _codes(verify_bundle(rep))
    assert _codes(verify_bundle(page)) == ["report-altered"]
    unsealed = _copy(bundle, tmp_path, "unsealed")
    (unsealed / "device-key.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    (unsealed / "notes.txt").write_text("added later")
    (unsealed / "track.geojson").unlink()
    assert set(_codes(verify_bundle(unsealed))) >= {"file-altered", "file-unlisted", "file-missing",
                                                    "key-mismatch"}


def test_a_gap_the_receiver_saw_is_kept_honestly(receiver: Receiver, db: Path, dev: ff.DeviceSim,
                                                tmp_path: Path, centre: centre_key.CentreKey) -> None:
    start, lost, later = dev.alert_start(loc=LOC), dev.location(loc(1)), dev.location(loc(2))
    receiver.ingest([start, later])
    export_alert(db_connect(db), 1, tmp_path / "gap", operator="Bob")
    check = verify_bundle(tmp_path / "gap", centre_key=centre.public_key)
    assert check.verdict == "incomplete" and check.authentic and check.sealed
    assert check.chain is not None and check.chain.startswith("gap: frames missing before seq 3")
    assert [c for c, _ in check.missing] == ["chain-gap", "no-end"]
    assert lost not in (tmp_path / "gap" / "frames.cbor").read_bytes()


def test_export_refuses_to_overwrite_and_unknown_alerts(bundle: Path, db: Path) -> None:
    conn = db_connect(db)
    with pytest.raises(UsageError):
        export_alert(conn, 1, bundle, operator="Bob")
    from host_tools.receiver.alerts import AlertNotFoundError
    with pytest.raises(AlertNotFoundError):
        export_alert(conn, 7, bundle.parent / "x", operator="Bob")
    assert not (bundle.parent / "x").exists()


def test_evidence_cli(receiver: Receiver, db: Path, tmp_path: Path, alert_frames: list[bytes],
                      capsys: pytest.CaptureFixture[str], centre: centre_key.CentreKey) -> None:
    receiver.ingest(alert_frames)
    out = tmp_path / "cli-bundle"
    assert main(["alerts", "export", "A1", "--out", str(out), "--operator", "Bob", "--db", str(db)]) == 0
    exported = capsys.readouterr().out
    assert main(["evidence", "verify", str(out), "--centre-key", centre.public_hex]) == 0
    verified = capsys.readouterr().out
    (out / "audio.wav").write_bytes(b"RIFF")
    assert main(["evidence", "verify", str(out), "--json", "--centre-key", centre.public_hex]) == 1
    failed = json.loads(capsys.readouterr().out)
    digest = exported.split("manifest.json): ")[1].split()[0]
    assert f"bundle digest (SHA-256 of manifest.json): {digest}" in verified
    assert "evidence intact; complete" in verified
    assert not failed["ok"] and {p["code"] for p in failed["problems"]} == {"file-altered", "audio-altered"}
    assert failed["verdict"] == "tampered" and failed["sealed"] is True
    with Registry(db) as reg:
        assert reg.get("SOTTO-42").active_key.fingerprint in verified  # type: ignore[union-attr]
