"""Retention: `sotto purge` removes location and audio, keeps what keeps retries and the
audit trail whole, erases the bytes for real, and says what it removed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import framefactory as ff
import pytest
from conftest import NOW, Clock, loc, statuses

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.alerts import get_alert, show_alert
from host_tools.receiver.evidence import EvidenceError, export_alert
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.purge import purge
from sotto_cli.cli import main

DAY = 86400
AUDIO = bytes.fromhex("5a17c3e9") * 500           # a pattern to look for in the file afterwards
PLACE = ff.pack_location(123456789, 98765432, 7, 1, ff.SRC_GNSS)


@pytest.fixture
def old_and_new(db: Path, dev: ff.DeviceSim) -> tuple[list[bytes], list[bytes], Clock]:
    """A1 (old: audio, a position, a check-in), then 40 days later A2 (recent)."""
    clock = Clock(NOW)
    with Receiver(db, clock=clock) as r:
        old = [dev.alert_start(loc=PLACE), dev.audio(AUDIO, 0, 4000), dev.location(PLACE), dev.end()]
        r.ingest(old)
        r.ingest([ff.check_in(dev, loc=PLACE)])
        r.ingest([b"\x00"])                                   # a rejection record
        clock.t = NOW + 40 * DAY
        dev.time += 40 * DAY
        new = [dev.alert_start(loc=loc(1)), dev.audio(b"\x01" * 100, 0, 200)]
        r.ingest(new)
    return old, new, clock


def test_purge_removes_old_location_and_audio_and_keeps_the_rest(db: Path, dev: ff.DeviceSim,
                                                                 old_and_new: tuple) -> None:
    old, new, clock = old_and_new
    conn = sqlite3.connect(db)
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
        export_alert(conn, 1, db.parent / "gone", operator="Bob")
    assert "purged" in str(e.value)


def test_purged_bytes_are_gone_from_the_files(db: Path, old_and_new: tuple) -> None:
    _old, _new, clock = old_and_new
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    before = b"".join(p.read_bytes() for p in files)
    assert AUDIO[:64] in before and PLACE[:8] in before
    purge(sqlite3.connect(db), 30, operator="dpo", now=clock.t)
    after = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert AUDIO[:16] not in after and PLACE[:8] not in after


def test_a_purged_frame_sent_again_is_still_a_duplicate(db: Path, dev: ff.DeviceSim,
                                                        old_and_new: tuple) -> None:
    old, _new, clock = old_and_new
    purge(sqlite3.connect(db), 30, operator="dpo", now=clock.t)
    with Receiver(db, clock=clock) as r:
        assert statuses(r.ingest(old)) == ["duplicate"] * 4


def test_purge_needs_a_retention(db: Path, dev: ff.DeviceSim) -> None:
    with Receiver(db):
        pass
    with pytest.raises(UsageError):
        purge(sqlite3.connect(db), 0, operator="dpo")


def test_purge_cli(db: Path, old_and_new: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["purge", "--older-than", "1", "--dry-run", "--operator", "dpo", "--db", str(db)]) == 0
    dry = capsys.readouterr().out
    assert main(["purge", "--older-than", "1", "--operator", "dpo", "--db", str(db)]) == 0
    done = capsys.readouterr().out
    assert main(["purge", "--older-than", "0", "--operator", "dpo", "--db", str(db)]) == 2
    # the CLI uses the real clock: both test alerts are older than a day
    assert dry.startswith("would remove") and done.startswith("removed") and "A1:" in done and "A2:" in done
