"""The centre's seal on evidence bundles, against the tamperings of issue 14: each one,
done as a careful forger would (rebuilt with the project's own functions and sealed
with a key of their own, or edited with the hashes recomputed), must verify as
`tampered` (exit 1) against the centre key given from outside; an authentic export of
an alert that lacks something verifies as `incomplete` (exit 3), an intact one exit 0."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import framefactory as ff
import pg_support
import pytest
from conftest import Clock, device
from test_receiver_evidence import _tone_chunks, alert_frames, centre, loc  # noqa: F401 (fixtures)

from host_tools.frames import split_sequence
from host_tools.receiver import alerts, centre_key
from host_tools.receiver.evidence import export_alert, verify_bundle
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import ensure_schema
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect
from sotto_cli.cli import main

RATE = 8000


def _export(tmp_path: Path, name: str, frames: list[bytes], dev: ff.DeviceSim, *,
            sealer: centre_key.CentreKey | None = None, officer: str = "J. Smith",
            outcome: str | None = None) -> tuple[Path, centre_key.CentreKey]:
    """A receiver of its own: register `dev`, take `frames`, export A1 (what a forger
    with the project's tools does; also how the real centre exports)."""
    db = pg_support.new_db(tmp_path, f"{name}.db")
    with Registry(db) as reg:
        reg.add(dev.kid, dev.public_key, officer=officer)
    r = Receiver(db, clock=Clock())
    r.ingest(frames)
    r.close()
    conn = db_connect(db)
    ensure_schema(conn)
    key = sealer or centre_key.ensure(conn, centre_key.default_path(db))[0]
    if sealer is not None:
        centre_key.record_public_key(conn, sealer.public_key)
    if outcome is not None:
        alerts.close(conn, 1, operator="Mallory", outcome=outcome)
    out = tmp_path / name
    export_alert(conn, 1, out, operator="Mallory", centre=key)
    conn.close()
    return out, key


@pytest.fixture
def real(tmp_path: Path, alert_frames: list[bytes]) -> tuple[Path, centre_key.CentreKey]:  # noqa: F811
    return _export(tmp_path, "real", alert_frames, device(), outcome="officer safe")


def _verdict(bundle: Path, centre_pub: bytes, device_pub: bytes | None = None) -> tuple[str, set[str]]:
    check = verify_bundle(bundle, centre_key=centre_pub, device_key=device_pub)
    return check.verdict, {c for c, _ in check.problems} | {c for c, _ in check.missing}


def _rehash(path: Path) -> None:
    """Recompute manifest.json's file hashes after an edit (manifest.sig is kept)."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name in list(manifest["files"]):
        if not (path / name).exists():
            del manifest["files"][name]
            continue
        data = (path / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest["frames"] = [hashlib.sha256(w).hexdigest()
                          for w in split_sequence((path / "frames.cbor").read_bytes())]
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_the_real_bundle_is_intact(real: tuple[Path, centre_key.CentreKey]) -> None:
    bundle, key = real
    assert _verdict(bundle, key.public_key, device().public_key) == ("intact", set())


@pytest.mark.parametrize("drop", ["end and last audio", "middle frame", "all audio"])
def test_frames_dropped_and_the_bundle_rebuilt(real: tuple[Path, centre_key.CentreKey], tmp_path: Path,
                                              alert_frames: list[bytes], drop: str) -> None:  # noqa: F811
    _, key = real
    gone = {"end and last audio": {len(alert_frames) - 1, 5}, "middle frame": {3},
            "all audio": {1, 3, 5}}[drop]
    kept = [f for i, f in enumerate(alert_frames) if i not in gone]
    forged, forger_key = _export(tmp_path, "forged", kept, device())        # sealed by another centre
    assert forger_key.public_key != key.public_key
    assert verify_bundle(forged).authentic                  # consistent in itself: the old weakness
    verdict, codes = _verdict(forged, key.public_key, device().public_key)
    assert verdict == "tampered" and "seal-invalid" in codes
    # the same forgery carrying the real bundle's seal
    resealed = Path(shutil.copytree(forged, tmp_path / "with-real-seal"))
    shutil.copy(real[0] / "manifest.sig", resealed / "manifest.sig")
    assert _verdict(resealed, key.public_key)[0] == "tampered"


def test_dropping_frames_in_place_with_hashes_recomputed(real: tuple[Path, centre_key.CentreKey],
                                                        tmp_path: Path) -> None:
    bundle, key = real
    frames = split_sequence((bundle / "frames.cbor").read_bytes())
    edited = Path(shutil.copytree(bundle, tmp_path / "edited"))
    (edited / "frames.cbor").write_bytes(b"".join(frames[:3] + frames[4:-1]))
    (edited / "audio.wav").unlink()
    _rehash(edited)
    verdict, codes = _verdict(edited, key.public_key)
    assert verdict == "tampered" and {"seal-invalid", "frame-removed"} <= codes
    unhashed = Path(shutil.copytree(bundle, tmp_path / "unhashed"))
    (unhashed / "frames.cbor").write_bytes(b"".join(frames[:-1]))
    verdict, codes = _verdict(unhashed, key.public_key)
    assert verdict == "tampered" and "file-altered" in codes and "seal-invalid" not in codes


@pytest.mark.parametrize("field,value", [("officer", "A. Nother"), ("outcome", "false alarm"),
                                         ("receipts", None)])
def test_officer_outcome_and_receipt_times_changed(real: tuple[Path, centre_key.CentreKey], tmp_path: Path,
                                                  field: str, value: str | None) -> None:
    bundle, key = real
    edited = Path(shutil.copytree(bundle, tmp_path / f"edited-{field}"))
    report = json.loads((edited / "report.json").read_text())
    if field == "receipts":
        for r in report["receiver"]["receipts"]:
            r["received_epoch"] -= 3600
            r["received"] = "2026-01-01T00:00:00Z"
    else:
        report["receiver"][field] = value
    (edited / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plain = Path(shutil.copytree(edited, tmp_path / f"plain-{field}"))
    _rehash(edited)
    verdict, codes = _verdict(edited, key.public_key)
    assert verdict == "tampered" and "seal-invalid" in codes
    assert "file-altered" in _verdict(plain, key.public_key)[1]
    # rebuilt from a database of the forger's own with the changed officer / outcome
    if field != "receipts":
        kw = {"officer": value} if field == "officer" else {"outcome": value}
        forged, _ = _export(tmp_path, f"db-{field}", split_sequence((bundle / "frames.cbor").read_bytes()),
                            device(), **kw)  # type: ignore[arg-type]
        assert _verdict(forged, key.public_key) == ("tampered", {"seal-invalid"})


def test_a_whole_bundle_made_with_another_key_under_the_same_device_id(
        real: tuple[Path, centre_key.CentreKey], tmp_path: Path) -> None:
    _, key = real
    impostor = device()
    impostor.seed = hashlib.sha256(b"another key").digest()        # same id SOTTO-42, another key
    frames = [impostor.alert_start(loc=loc(0)), impostor.location(loc(1)), impostor.end()]
    forged, _ = _export(tmp_path, "impostor", frames, impostor)
    assert verify_bundle(forged).authentic                          # self-consistent
    assert _verdict(forged, key.public_key, device().public_key) == ("tampered",
                                                                      {"seal-invalid", "key-mismatch"})
    # an insider who holds the centre's key can seal it: only the device key from the registry catches it
    insider, _ = _export(tmp_path, "insider", frames, impostor, sealer=key)
    assert _verdict(insider, key.public_key) == ("intact", set())
    assert _verdict(insider, key.public_key, device().public_key) == ("tampered", {"key-mismatch"})


@pytest.mark.parametrize("lost,missing", [
    ("end", {"no-end"}),
    ("middle location", {"chain-gap"}),
    ("middle audio", {"chain-gap", "audio-missing"}),
])
def test_an_authentic_export_of_an_alert_that_lacks_something_is_incomplete(
        tmp_path: Path, alert_frames: list[bytes], lost: str, missing: set[str]) -> None:  # noqa: F811
    gone = {"end": len(alert_frames) - 1, "middle location": 2, "middle audio": 3}[lost]
    bundle, key = _export(tmp_path, "incomplete", [f for i, f in enumerate(alert_frames) if i != gone],
                          device())
    assert _verdict(bundle, key.public_key, device().public_key) == ("incomplete", missing)


def test_the_command_line_exit_statuses(real: tuple[Path, centre_key.CentreKey], tmp_path: Path,
                                        alert_frames: list[bytes],  # noqa: F811
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bundle, key = real
    pub = tmp_path / "centre.pem"
    pub.write_text(key.public_pem)
    assert main(["evidence", "verify", str(bundle), "--centre-key", str(pub),
                 "--device-key", device().public_key.hex()]) == 0
    assert "evidence intact" in capsys.readouterr().out
    short, _ = _export(tmp_path, "short", alert_frames[:-1], device(), sealer=key)
    assert main(["evidence", "verify", str(short), "--centre-key", key.public_hex, "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "incomplete" and [m["code"] for m in out["missing"]] == ["no-end"]
    other = device(b"SOTTO-77")
    assert main(["evidence", "verify", str(bundle), "--centre-key", other.public_key.hex(),
                 "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "tampered"
    assert main(["evidence", "verify", str(bundle), "--centre-key", "abc"]) == 2
    assert main(["evidence", "verify", str(bundle), "--centre-key", str(tmp_path / "nope.pem")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["evidence", "verify", str(bundle)])                   # the centre key is required
    assert e.value.code == 2
    private = key.path
    assert private is not None
    assert main(["evidence", "verify", str(bundle), "--centre-key", str(private)]) == 2
    assert "private key" in capsys.readouterr().err
