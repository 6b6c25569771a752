"""The centre's side of updates: publish, list, assign, staged rollouts by cohort,
what devices report, and POST /v1/release-chunk (device-signed request, signed answer).
On SQLite and PostgreSQL (`make pytest-pg`): the conftest's `db`."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from framefactory import canonical

from host_tools import release
from host_tools.receiver import release_chunk, releases
from host_tools.receiver.centre_key import verify_answer
from host_tools.receiver.store import open_db
from host_tools.registry import Registry
from sotto_cli.cli import main

FILES = {"/sotto/app.mpy": b"x" * 5000, "/sotto/b.mpy": b"b" * 10}


def _centre(tmp_path, db):
    keys = {}
    with closing(open_db(db, create=True)) as conn:
        reg = Registry(conn)
        for i in range(1, 9):
            k = Ed25519PrivateKey.generate()
            did = bytes(7) + bytes([i])
            reg.add(did.hex(), k.public_key())
            keys[did] = k
    pub = release.keygen(tmp_path / "rel.key")
    release.build(FILES, "0.2.0", release.load_key(tmp_path / "rel.key"), tmp_path / "r2")
    return db, keys, pub, tmp_path


@pytest.fixture
def centre(tmp_path, db):
    return _centre(tmp_path, db)


def test_publish_list_and_idempotent(centre, capsys):
    db, _keys, pub, tmp = centre
    assert main(["releases", "publish", str(tmp / "r2"), "--db", str(db), "--release-key-pub",
                 str(tmp / "rel.key.pub"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["published"] and out["signature_checked"] and out["files"] == 2
    assert main(["releases", "publish", str(tmp / "r2"), "--db", str(db)]) == 0
    assert "already published" in capsys.readouterr().out
    assert main(["releases", "list", "--db", str(db), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["releases"]
    assert [r["version"] for r in rows] == ["0.2.0"] and rows[0]["bytes"] == 5010
    other = release.keygen(tmp / "other.key")
    assert other != pub
    assert main(["releases", "publish", str(tmp / "r2"), "--db", str(db), "--release-key-pub",
                 str(tmp / "other.key.pub")]) == 2
    assert "wrong-key" in capsys.readouterr().err


def test_staged_rollout_first_share_all(centre, capsys):
    db, keys, _pub, tmp = centre
    ids = sorted(keys)
    with closing(open_db(db)) as conn:
        releases.publish(conn, tmp / "r2", release_key_pub=None)
    assert main(["devices", "cohort", "north", *[i.hex() for i in ids], "--db", str(db)]) == 0
    args = ["devices", "update", "--cohort", "north", "--release", "0.2.0", "--db", str(db), "--json"]
    capsys.readouterr()
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["stage"] == "first" and len(first["assigned"]) == 1
    # widening waits until the first device runs it
    assert main([*args, "--share", "50"]) == 2
    assert "do not run it yet" in capsys.readouterr().err
    with closing(open_db(db)) as conn:
        releases.record_versions(conn, {ids[0]: ("0.2.0", None, 1, None, 1.0)})
    assert main([*args, "--share", "50"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert half["stage"] == "share" and len(half["assigned"]) == 4 and len(half["added"]) == 3
    assert main([*args, "--share", "100", "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["stage"] == "all"
    with closing(open_db(db)) as conn:
        assert all(releases.assigned_for(conn, i) == "0.2.0" for i in ids)
        summary = releases.cohort_summary(conn)["north"]
    assert summary["devices"] == 8 and summary["running"] == {"0.2.0": 1}
    assert summary["assigned"] == {"0.2.0": 8}
    assert main(["devices", "list", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "FIRMWARE" in text and "cohort north: 8 devices" in text and "applied" in text


def _request(key, kid, body_map):
    protected = canonical({1: -8, 4: kid})
    payload = canonical(body_map)
    sig = key.sign(canonical(["Signature1", protected, b"", payload]))
    return canonical(cbor2.CBORTag(18, [protected, {}, payload, sig]))


def test_release_chunk_answers(centre):
    db, keys, _pub, tmp = centre
    did = sorted(keys)[0]
    with closing(open_db(db)) as conn:
        releases.publish(conn, tmp / "r2", release_key_pub=None)
    req = {"op": "get", "v": "0.2.0", "p": "/sotto/app.mpy", "o": 0, "n": 4096}
    status, ans, _ = release_chunk.answer(db, _request(keys[did], did, req))
    assert status == 404 and ans["reason"] == "not-assigned"
    with closing(open_db(db)) as conn:
        releases.assign(conn, [did], "0.2.0")
    status, ans, _ = release_chunk.answer(db, _request(keys[did], did, req))
    assert status == 200 and ans["d"] == FILES["/sotto/app.mpy"][:releases.CHUNK_MAX] and ans["z"] == 5000
    status, ans, _ = release_chunk.answer(db, _request(keys[did], did, dict(req, o=4000)))
    assert ans["d"] == FILES["/sotto/app.mpy"][4000:]          # resumes at the offset asked
    status, ans, _ = release_chunk.answer(db, _request(keys[did], did, dict(req, p="manifest", o=0)))
    assert release.open_manifest(ans["d"])[0]["v"] == "0.2.0"
    # signed by another device's key: refused
    other = sorted(keys)[1]
    status, ans, _ = release_chunk.answer(db, _request(keys[other], did, req))
    assert status == 400 and ans["reason"] == "bad-signature"
    status, ans, _ = release_chunk.answer(db, b"\x00garbage")
    assert status == 400


def test_release_chunk_over_http_is_signed_and_bound(tmp_path):
    import http.client

    from simulator.receiver import ReceiverProcess

    db, keys, _pub, tmp = _centre(tmp_path, tmp_path / "http.db")   # the simulator's receiver: SQLite
    rx = ReceiverProcess(tmp / "rx", tls=False, db=db)
    try:
        did = sorted(keys)[0]
        with closing(open_db(db)) as conn:
            releases.publish(conn, tmp / "r2", release_key_pub=None)
            releases.assign(conn, [did], "0.2.0")
        body = _request(keys[did], did, {"op": "get", "v": "0.2.0", "p": "/sotto/b.mpy", "o": 0, "n": 100})
        c = http.client.HTTPConnection(rx.host, rx.port, timeout=10)
        c.request("POST", "/v1/release-chunk", body, {"Content-Type": "application/cbor-seq"})
        r = c.getresponse()
        answer = verify_answer(rx.centre_public_key, r.read(), body)
        assert r.status == 200 and answer["d"] == b"b" * 10 and answer["rel"] == "0.2.0"
        assert answer["req"] == hashlib.sha256(body).digest()
    finally:
        rx.stop()


def test_update_status_is_kept_apart_from_configuration_and_health(receiver, db, dev, capsys):
    # one request: an update status (st 11), then a refused configuration (st 7, err) and a
    # heartbeat; all carry fw. The update's result and reason survive the later frames,
    # and the configuration's err is not taken for an update's.
    ans = receiver.ingest([
        dev.status(11, extra={24: "0.1.0", 35: "0.2.1", 36: 2, 37: "no authenticated answer in 600 s"}),
        dev.status(7, extra={24: "0.1.0", 25: 3, 37: "trigger.duress: cannot be told apart"}),
        dev.heartbeat(extra={24: "0.1.0", 25: 3})])
    assert all(r.status == "accepted" for r in ans.results)
    with closing(open_db(db)) as conn:
        v = releases.device_view(conn)[dev.kid]
    assert (v["fw"], v["pending"], v["update"], v["update_name"]) == ("0.1.0", "0.2.1", 2, "rolled back")
    assert v["update_error"] == "no authenticated answer in 600 s"
    assert main(["devices", "show", "SOTTO-42", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "rolled back: no authenticated answer" in text and "0.2.1" in text
    assert main(["devices", "show", "SOTTO-42", "--db", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["release"]["update_name"] == "rolled back" and shown["health"]["config_version"] == 3
