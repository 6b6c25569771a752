"""The centre's signed answers (host_tools.receiver.centre_key): byte for byte the
golden vectors of tests/vectors/answers/ from the same inputs, what the device
opens, and the centre key kept out of everything operators and logs see."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import cbor2
import framefactory as ff
import pytest
from conftest import LOC, answer_map, open_answer, post
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sotto.answer import AnswerError

from host_tools.receiver import centre_key
from host_tools.receiver.centre_key import CentreKey, CentreKeyError
from host_tools.receiver.commands import Command
from host_tools.receiver.ingest import Answer, Result
from host_tools.receiver.server import RunningServer, ServerConfig, start_in_thread
from host_tools.receiver.store import open_db
from host_tools.registry import connect as db_connect  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ANSWERS = REPO / "tests" / "vectors" / "answers"
SPEC = json.loads((ANSWERS / "answers.json").read_text())


def _hex(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: _hex(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hex(v) for v in value]
    return value


def _key(name: str) -> CentreKey:
    return CentreKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SPEC["keys"][name]["seed"])))


def _receivers_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the receiver's own code builds it: an Answer of Results and
    Commands (200), or the handler's refusal map (400)."""
    if "results" not in payload:
        return dict(payload)
    results = [Result(r["status"], r["device"], r["seq"], r.get("reason")) for r in payload["results"]]
    cmds = [Command(c["id"], b"SOTTO-42", 7, c.get("sid"), c["op"], {k: c[k] for k in ("s", "q") if k in c},
                    "queued", None, "Bob", 0.0, None, 0, None).wire() for c in payload.get("cmds", [])]
    return Answer(results, payload["time"], payload.get("closed", []), cmds).to_wire()


@pytest.mark.parametrize("name", ["200", "200-minimal", "400", "200-other-key"])
def test_the_receivers_signer_makes_the_golden_answers_byte_for_byte(name: str) -> None:
    spec = SPEC["answers"][name]
    base = SPEC["answers"][spec["like"]] if "like" in spec else spec
    request = (ANSWERS / f"request-{name}.bin").read_bytes()
    key = _key(spec.get("key", "centre"))
    payload = {"req": hashlib.sha256(request).digest(), **_receivers_payload(_hex(base["payload"]))}
    assert key.sign_answer(payload) == (ANSWERS / f"answer-{name}.cbor").read_bytes()


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536])
def test_the_hand_assembled_answer_is_cbor2s_deterministic_encoding(size: int) -> None:
    """sign_answer joins pre-encoded pieces (the receiver's hot path); the bytes must be
    what cbor2's deterministic encoding of the COSE_Sign1 and its Sig_structure give,
    whatever the length of the payload (each CBOR byte-string head size)."""
    key = _key("centre")
    payload = {"req": hashlib.sha256(b"request").digest(), "time": 7, "pad": b"x" * size}
    out = key.sign_answer(payload)
    body = cbor2.dumps(payload, canonical=True)
    protected = cbor2.dumps({1: -8, 4: key.kid}, canonical=True)
    to_sign = cbor2.dumps(["Signature1", protected, b"", body], canonical=True)
    signature = key._private.sign(to_sign)
    assert out == cbor2.dumps(cbor2.CBORTag(18, [protected, {}, body, signature]), canonical=True)
    if size <= 256:    # what the device opens (its answer buffer is smaller than 64 KiB)
        assert open_answer(key.public_key, b"request", out)["pad"] == b"x" * size


def test_both_http_paths_sign_with_the_one_function() -> None:
    """fastpath and http_handler turn an answer into bytes with ingest.answer.signed_answer."""
    from host_tools.receiver import fastpath, http_handler

    for module in (fastpath, http_handler):
        text = Path(module.__file__).read_text()
        assert "sign_answer(" not in text, module.__name__
    assert "signed_answer(" in Path(http_handler.__file__).read_text()
    assert ".signed(" in Path(fastpath.__file__).read_text()


def test_the_answer_over_http_is_what_the_device_opens(server: RunningServer, dev: ff.DeviceSim,
                                                      db: Path) -> None:
    request = dev.alert_start(loc=LOC)
    status, headers, body = post(server.port, request)
    item = cbor2.loads(body)
    protected = cbor2.loads(item.value[0])
    assert status == 200 and headers["content-type"] == "application/cose"
    assert item.tag == 18 and protected == {1: -8, 4: centre_key.kid_of(server.centre.public_key)}
    assert open_answer(server.centre.public_key, request, body)["req"] == hashlib.sha256(request).digest()
    with pytest.raises(AnswerError) as e:     # a key the device does not hold
        open_answer(bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
                    request, body)
    assert e.value.code == "wrong-kid"
    with db_connect(db) as conn:         # the database records the public key only
        assert centre_key.recorded_public_key(conn) == server.centre.public_key


def test_added_bytes_per_answer(server: RunningServer, dev: ff.DeviceSim) -> None:
    """What signing adds to an answer on the wire, against the unsigned map (the
    figure docs/frames.md gives): about 124 bytes, whatever the results."""
    for frames in ([dev.heartbeat()], [dev.location(LOC) for _ in range(16)]):
        body = post(server.port, b"".join(frames))[2]
        unsigned = cbor2.dumps({k: v for k, v in answer_map(body).items() if k != "req"}, canonical=True)
        assert 120 <= len(body) - len(unsigned) <= 126


def test_a_new_key_is_private_and_a_second_init_refuses(tmp_path: Path) -> None:
    path = tmp_path / "db-centre.key"
    key = centre_key.create(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert centre_key.load(path).public_key == key.public_key
    with pytest.raises(CentreKeyError, match="already exists"):
        centre_key.create(path)
    path.chmod(0o640)
    with pytest.raises(CentreKeyError, match="read by others"):
        centre_key.load(path)


def test_a_receiver_without_its_recorded_key_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with closing(open_db(db, create=True)) as conn:
        key, created = centre_key.ensure(conn, centre_key.default_path(db))
    assert created
    centre_key.default_path(db).rename(tmp_path / "moved.key")
    with pytest.raises(CentreKeyError, match="missing"):          # never a new key in its place
        start_in_thread(db, ServerConfig(port=0))
    other = tmp_path / "other.key"
    centre_key.create(other)
    with pytest.raises(CentreKeyError, match="devices provisioned for this database would refuse"):
        start_in_thread(db, ServerConfig(port=0, centre_key=str(other)))
    rs = start_in_thread(db, ServerConfig(port=0, centre_key=str(tmp_path / "moved.key")))
    rs.stop()
    assert rs.centre.public_key == key.public_key


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "sotto_cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120)


def test_the_private_key_appears_in_no_output_log_error_or_database(tmp_path: Path) -> None:
    db = tmp_path / "centre.db"
    outputs = [_cli("centre", "init", "--db", str(db), cwd=tmp_path),
               _cli("centre", "key", "--db", str(db), cwd=tmp_path),
               _cli("centre", "key", "--db", str(db), "--pem", cwd=tmp_path),
               _cli("centre", "key", "--db", str(db), "--json", cwd=tmp_path),
               _cli("centre", "init", "--db", str(db), cwd=tmp_path)]          # refused: names no secret
    key_file = centre_key.default_path(db)
    pem = key_file.read_bytes()
    seed = centre_key.load(key_file)._private.private_bytes_raw()
    public = centre_key.load(key_file).public_hex
    key_file.chmod(0o644)
    outputs.append(_cli("centre", "key", "--db", str(db), cwd=tmp_path))   # refused: readable by others
    outputs.append(_cli("receive", "--db", str(db), "--port", "0", cwd=tmp_path))   # refuses to start
    key_file.chmod(0o600)
    assert [o.returncode for o in outputs] == [0, 0, 0, 0, 1, 1, 1]
    assert outputs[1].stdout.strip() == public
    secrets = [seed.hex(), seed.hex().upper(), pem.decode().split("\n")[1], cbor2.dumps(seed).hex()]
    seen = "".join(o.stdout + o.stderr for o in outputs)
    seen += Path(str(db)).read_bytes().hex() + "".join(
        p.read_bytes().hex() for p in tmp_path.iterdir() if p.name.startswith("centre.db-") and p != key_file)
    for secret in secrets:
        assert secret.lower() not in seen.lower()
    assert seed not in Path(str(db)).read_bytes()


def test_receive_makes_the_key_on_first_start_and_says_so_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "first.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "sotto_cli", "receive", "--db", str(db), "--port", "0",
                             "-q"], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    key = centre_key.load(centre_key.default_path(db))
    notes = [line for line in err.splitlines() if "centre" in line]
    assert first.startswith("listening on ")
    assert len(notes) == 1 and key.public_hex in notes[0] and str(key.path) in notes[0]
    assert any("POST /v1/sms answers 401" in line for line in err.splitlines())
