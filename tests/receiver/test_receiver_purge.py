"""Retention: `sotto purge` removes location and audio, keeps what keeps retries and the
audit trail whole, erases the bytes for real, and says what it removed."""

from __future__ import annotations

import json
from pathlib import Path

import framefactory as ff
import pg_support
import pytest
from conftest import NOW, Clock, loc, statuses

from host_tools.errors import UsageError
from host_tools.receiver import audit, holds
from host_tools.receiver.alerts import acknowledge, close, get_alert, show_alert
from host_tools.receiver.evidence import EvidenceError, export_alert
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.purge import min_retention_days, purge, set_min_retention
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main

DAY = 86400
AUDIO = bytes.fromhex("5a17c3e9") * 500           # a pattern to look for in the file afterwards
PLACE = ff.pack_location(123456789, 98765432, 7, 1, ff.SRC_GNSS)


@pytest.fixture
def old_and_new(db: Path, dev: ff.DeviceSim) -> tuple[list[bytes], list[bytes], Clock]:
    """A1 (old: audio, a position, a check-in; closed by an operator), then 40 days
    later A2 (recent, open)."""
    clock = Clock(NOW)
    with Receiver(db, clock=clock) as r:
        old = [dev.alert_start(loc=PLACE), dev.audio(AUDIO, 0, 4000), dev.location(PLACE), dev.end()]
        r.ingest(old)
        close(db_connect(db), 1, operator="Bob", outcome="officer safe", now=NOW + 3600)
        r.ingest([ff.check_in(dev, loc=PLACE)])
        r.ingest([b"\x00"])                                   # a rejection record
        clock.t = NOW + 40 * DAY
        dev.time += 40 * DAY
        new = [dev.alert_start(loc=loc(1)), dev.audio(b"\x01" * 100, 0, 200)]
        r.ingest(new)
    return old, new, clock


def test_purge_removes_old_location_and_audio_and_keeps_the_rest(db: Path, dev: ff.DeviceSim, tmp_path: Path,
                                                                 old_and_new: tuple) -> None:
    old, new, clock = old_and_new
    conn = db_connect(db)
    dry = purge(conn, 30, operator="dpo", now=clock.t, dry_run=True)
    assert (len(dry.alerts), dry.locations, dry.audio_chunks) == (1, 3, 1)
    assert conn.execute("SELECT count(*) FROM frames WHERE wire IS NULL").fetchone()[0] == 0
    result = purge(conn, 30, operator="dpo", now=clock.t)
    assert [a.alert_id for a in result.alerts] == [1]
    assert (result.locations, result.other_locations, result.audio_chunks, result.rejections) == (3, 1, 1, 1)
    assert result.audio_seconds == 0.5 and result.wal_truncated
    rows = conn.execute("SELECT seq, type, wire IS NULL, lat_e7, digest IS NOT NULL, link IS NOT NULL "
                        "FROM frames WHERE alert_id = 1 ORDER BY seq").fetchall()
    # alert-start, audio and location lose their bytes; the end frame (no location, no audio) keeps them
    assert rows == [(1, 1, 1, None, 1, 1), (2, 3, 1, None, 1, 1), (3, 2, 1, None, 1, 1),
                    (4, 6, 0, None, 1, 1)]
    assert conn.execute("SELECT wire IS NULL FROM frames WHERE type = 8").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM frames WHERE alert_id = 2 AND wire IS NULL").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM rejections").fetchone() == (0,)
    a1 = get_alert(conn, 1)
    assert a1.purged_at == clock.t and a1.chain.state == "complete"    # the chain is still known
    entries = [e for e in audit.entries(conn) if e.action == "purge"]
    assert entries[0].alert_id == 1
    assert "removed 2 locations and 1 audio chunks (0.5 s)" in (entries[0].detail or "")
    assert "1 alerts, 3 locations" in (entries[-1].detail or "")
    assert show_alert(conn, 1, operator="Bob").track == []
    with pytest.raises(EvidenceError) as e:
        export_alert(conn, 1, tmp_path / "gone", operator="Bob")
    assert "purged" in str(e.value)


def test_purged_bytes_are_gone_from_the_files(db: Path, old_and_new: tuple) -> None:
    _old, _new, clock = old_and_new
    if pg_support.PG:
        # PostgreSQL keeps old row versions until VACUUM and its WAL until recycled
        # (docs/operator-guide.md); what the database returns no longer has them
        purge(db_connect(db), 30, operator="dpo", now=clock.t)
        rows = db_connect(db).execute("SELECT wire, lat_e7 FROM frames").fetchall()
        assert not any(w is not None and (AUDIO[:16] in bytes(w) or PLACE[:8] in bytes(w)) for w, _ in rows)
        assert not any(lat == 123456789 for _, lat in rows)
        return
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    before = b"".join(p.read_bytes() for p in files)
    assert AUDIO[:64] in before and PLACE[:8] in before
    purge(db_connect(db), 30, operator="dpo", now=clock.t)
    after = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert AUDIO[:16] not in after and PLACE[:8] not in after


def test_a_purged_frame_sent_again_is_still_a_duplicate(db: Path, dev: ff.DeviceSim,
                                                        old_and_new: tuple) -> None:
    old, _new, clock = old_and_new
    purge(db_connect(db), 30, operator="dpo", now=clock.t)
    with Receiver(db, clock=clock) as r:
        assert statuses(r.ingest(old)) == ["duplicate"] * 4


def test_purge_needs_whole_days_at_least_the_minimum_retention(db: Path, dev: ff.DeviceSim) -> None:
    with Receiver(db):
        pass
    conn = db_connect(db)
    for days in (0, 0.0001, 29, 1.5, -3):
        with pytest.raises(UsageError):
            purge(conn, days, operator="dpo")  # type: ignore[arg-type]
    assert min_retention_days(conn) == 30
    assert set_min_retention(conn, 7, operator="dpo") == 30
    purge(conn, 7, operator="dpo", dry_run=True)
    with pytest.raises(UsageError, match="at least 7 days"):
        purge(conn, 6, operator="dpo")
    with pytest.raises(UsageError):
        set_min_retention(conn, 0, operator="dpo")
    assert [(e.action, e.detail) for e in audit.entries(conn)] == \
        [("setting", "minimum retention 30 -> 7 days")]


def test_open_acknowledged_and_held_alerts_are_never_purged(db: Path, dev: ff.DeviceSim) -> None:
    """The issue's case: an old OPEN alert (never acknowledged) lost its audio and track."""
    clock = Clock(NOW)
    other = ff.DeviceSim(kid=b"SOTTO-43", seed=bytes(32), time=NOW - 500)
    with Registry(db) as reg:
        reg.add(other.kid, other.public_key)
    with Receiver(db, clock=clock) as r:
        r.ingest([dev.alert_start(loc=PLACE), dev.audio(AUDIO, 0, 4000)])        # A1: stays open
        r.ingest([other.alert_start(loc=PLACE), other.location(PLACE)])          # A2: acknowledged
        r.ingest([dev.end(), dev.alert_start(loc=PLACE), dev.location(PLACE)])  # A3: closed, then held
    conn = db_connect(db)
    acknowledge(conn, 2, operator="Bob", now=NOW)
    close(conn, 3, operator="Bob", outcome="safe", now=NOW)
    holds.hold(conn, 3, operator="Bob", reason="court case 17", now=NOW)
    later = NOW + 100 * DAY
    result = purge(conn, 30, operator="dpo", now=later)
    assert result.alerts == [] and [(k.alert_id, k.why) for k in result.kept] == [
        (1, "open"), (2, "acknowledged"), (3, "on hold")]
    assert conn.execute("SELECT count(*) FROM frames WHERE wire IS NULL").fetchone()[0] == 0
    holds.release(conn, 3, operator="Bob", now=later)
    again = purge(conn, 30, operator="dpo", now=later)
    assert [a.alert_id for a in again.alerts] == [3] and [k.alert_id for k in again.kept] == [1, 2]
    assert get_alert(conn, 1).purged_at is None and show_alert(conn, 1, operator="Bob").track != []


def test_purge_cli(db: Path, old_and_new: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--operator", "dpo", "--db", str(db)]
    assert main(["purge", "--older-than", "1", *common]) == 2                # below the minimum (30)
    refused = capsys.readouterr().err
    assert main(["purge", "--set-min-retention-days", "1", *common]) == 0
    assert capsys.readouterr().out == "minimum retention 30 -> 1 days (set by dpo)\n"
    assert main(["purge", "--older-than", "1", "--dry-run", *common]) == 0
    dry = capsys.readouterr().out
    assert main(["purge", "--older-than", "1", "--dry-run", "--json", *common]) == 0
    dry_json = json.loads(capsys.readouterr().out)
    assert main(["purge", "--older-than", "1", *common]) == 0
    done = capsys.readouterr().out
    assert main(["purge", "--older-than", "0", *common]) == 2
    with pytest.raises(SystemExit):                                           # whole days only
        main(["purge", "--older-than", "1.5", *common])
    # the CLI uses the real clock: both test alerts are older than a day; A2 is open: kept
    assert "at least 30 days" in refused
    assert dry.startswith("would remove") and "kept A2: open" in dry
    assert dry_json["dry_run"] and [a["alert"] for a in dry_json["alerts"]] == ["A1"]
    assert dry_json["kept"] == [{"alert": "A2", "why": "open"}]
    assert done.startswith("removed") and "A1:" in done and "kept A2: open" in done
