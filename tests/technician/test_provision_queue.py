"""A device's key never changes under its queued frames: `rotate-key` and `provision
--force` refuse while it holds frames or a live alert; --drain delivers them to
the centre first (over the USB link, checking the centre's signed answers);
--discard-queue throws them away, recorded in the audit log."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import closing

import pytest
from centre_support import centre_db

from host_tools import provision
from host_tools.drain import DrainError
from host_tools.receiver import audit
from host_tools.receiver.server import ServerConfig, start_in_thread
from host_tools.receiver.store import open_db

SEQS = (1, 2, 3)


def _provision(device, db, server: str) -> provision.KeyChange:
    return provision.provision(device.port, provision.ProvisionRequest("SOTTO-42", server=server,
                                                                       apn="internet"), db)


def _queue_on_device(device, seqs=SEQS, live_alert: bool = False) -> None:
    """Frames signed by the device's firmware with its key, waiting in its queue (and an alert record)."""
    code = ("from sotto import frames, identity, config, alertrec\nfrom sotto.storage import Storage\n"
            "from sotto.queue import FrameQueue\n"
            "st = Storage('/data')\ncfg = config.load(st)\n"
            "s = frames.FrameSigner(cfg['device_id'], identity.load(st))\nq = FrameQueue(st)\nq.recover()\n"
            f"for seq in {list(seqs)!r}:\n"
            "    w = s.sign({frames.K_T: frames.HEARTBEAT, frames.K_SEQ: seq, "
            f"frames.K_TIME: {int(time.time())}, frames.K_UP: 1000 * seq, frames.K_BATT: 90, "
            "frames.K_HB: 900})\n"
            "    q.push(w, frames.HEARTBEAT, seq)\n")
    if live_alert:
        code += "alertrec.write(st, alertrec.Record(0, 1, False, 1, 0, 0))\n"
    code += "print(len(q))\n"
    assert device.mpremote("exec", code).stdout.strip().splitlines()[-1] == str(len(seqs))


def _queued(device) -> list[str]:
    return sorted(p.name for p in (device.flash / "data" / "q").iterdir())


def test_a_busy_device_is_refused_saying_how_many_frames_wait(device, tmp_path):
    db = centre_db(tmp_path / "r.db")
    first = _provision(device, db, "http://127.0.0.1:9")
    _queue_on_device(device)
    with pytest.raises(provision.DeviceBusy) as err:
        provision.rotate_key(device.port, db)
    assert "3 frames waiting (3 heartbeat)" in str(err.value) and "--drain" in str(err.value)
    assert "--discard-queue" in str(err.value)
    with pytest.raises(provision.DeviceBusy, match="3 frames waiting"):
        _provision_force(device, db)
    cli = subprocess.run([sys.executable, "-m", "sotto_cli", "rotate-key", "--port", device.port,
                          "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "3 frames waiting" in cli.stderr
    assert len(_queued(device)) == 3                # nothing changed on the device
    with closing(open_db(db)) as conn:
        assert conn.execute("SELECT count(*) FROM device_keys WHERE revoked_at IS NULL").fetchone()[0] == 1
    assert first.public_key == _public_key(device)


def _provision_force(device, db, **queue) -> provision.KeyChange:
    return provision.provision(device.port, provision.ProvisionRequest("SOTTO-42", server="http://127.0.0.1:9",
                                                                       apn="internet"), db, force=True,
                               queue=provision.QueuePolicy(**queue))


def _public_key(device) -> bytes:
    out = device.mpremote("exec", "from sotto import identity; from sotto.storage import Storage; "
                                  "print(identity.public_key(Storage('/data')).hex())")
    return bytes.fromhex(out.stdout.strip().splitlines()[-1])


def test_discard_queue_is_the_only_way_to_throw_frames_away_and_is_audited(device, tmp_path):
    db = centre_db(tmp_path / "r.db")
    first = _provision(device, db, "http://127.0.0.1:9")
    _queue_on_device(device, live_alert=True)
    change = provision.rotate_key(device.port, db, queue=provision.QueuePolicy(discard=True,
                                                                              technician="T. Nguyen"))
    assert change.discarded == 3 and change.public_key != first.public_key
    assert _queued(device) == [] and not (device.flash / "data" / "alert").exists()
    with closing(open_db(db)) as conn:
        entries = [(e.operator, e.action, e.detail) for e in audit.entries(conn)]
    assert entries == [("T. Nguyen", "discard-queue",
                        f"rotate-key on {device.port} with --discard-queue: 3 frames waiting "
                        "(3 heartbeat); an alert is live on it; all thrown away")]


def test_drain_delivers_the_queue_to_the_centre_before_the_key_changes(device, tmp_path):
    db = centre_db(tmp_path / "r.db")
    rs = start_in_thread(db, ServerConfig(port=0))
    try:
        first = _provision(device, db, rs.url)
        _queue_on_device(device)
        change = provision.rotate_key(device.port, db, queue=provision.QueuePolicy(drain=True))
        with closing(open_db(db)) as conn:
            stored = [r[0] for r in conn.execute("SELECT seq FROM frames ORDER BY seq")]
    finally:
        rs.stop()
    assert change.drained is not None and (change.drained.sent, change.drained.acked) == (3, 3)
    assert stored == list(SEQS)                     # at the centre, stored under the old (trusted) key
    assert _queued(device) == [] and change.public_key != first.public_key


def test_drain_trusts_only_the_centres_signed_answer(device, tmp_path):
    """A receiver answering with another key (a man in the middle, or the wrong centre):
    nothing leaves the device's queue and the key stays."""
    db = centre_db(tmp_path / "r.db")
    impostor_db = centre_db(tmp_path / "impostor.db")      # its own centre key
    with closing(open_db(impostor_db)) as conn:
        conn.execute("INSERT INTO devices(device_id, officer, created_at, updated_at) VALUES (?, NULL, 0, 0)",
                     (b"SOTTO-42",))
    rs = start_in_thread(impostor_db, ServerConfig(port=0))
    try:
        first = _provision(device, db, rs.url)
        _queue_on_device(device)
        with pytest.raises(DrainError, match="not the centre's"):
            provision.rotate_key(device.port, db, queue=provision.QueuePolicy(drain=True))
    finally:
        rs.stop()
    assert len(_queued(device)) == 3 and _public_key(device) == first.public_key
