"""The device registry (host_tools.registry) and `sotto devices`."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from conftest import NOW, Clock, device, statuses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.receiver.ingest import Receiver
from host_tools.registry import (
    DatabaseError,
    DeviceNotFoundError,
    Registry,
    RegistryError,
    default_db_path,
    resolve_db_path,
)
from sotto_cli.cli import main


def _pub(seed: int) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_add_get_list(db: Path) -> None:
    with Registry(db) as reg:
        reg.add(b"SOTTO-42", _pub(1), officer="  J.   Smith ")
        reg.add(bytes.fromhex("00112233445566ff"), _pub(2))
        a = reg.get("SOTTO-42")
        b = reg.get("00112233445566FF")
        listed = reg.list()
    assert a.officer == "J. Smith" and a.status == "active" and a.public_key == _pub(1)
    assert len(a.keys) == 1 and a.keys[0].active
    assert b.name == "00112233445566ff" and b.officer is None
    assert [r.device_id for r in listed] == [bytes.fromhex("00112233445566ff"), b"SOTTO-42"]


def test_second_active_key_is_refused_and_rotate_revokes_the_old_one(db: Path) -> None:
    with Registry(db, clock=Clock(100.0)) as reg:
        reg.add(b"SOTTO-42", _pub(1))
        gen = reg.generation()
        with pytest.raises(RegistryError) as e:
            reg.add(b"SOTTO-42", _pub(2))
        rotated = reg.rotate(b"SOTTO-42", _pub(2), by="tech")
        assert reg.generation() > gen
    assert "already has an active key" in str(e.value) and "rotate" in str(e.value)
    old, new = rotated.keys
    assert old.public_key == _pub(1) and old.revoked_at == 100.0 and old.revoke_reason == "rotated"
    assert new.public_key == _pub(2) and new.active and new.added_by == "tech"
    assert rotated.public_key == _pub(2)


def test_adding_the_same_key_again_is_harmless(db: Path) -> None:
    with Registry(db) as reg:
        first = reg.add(b"SOTTO-42", _pub(1))
        again = reg.add(b"SOTTO-42", _pub(1), officer="K. Jones")
    assert again.keys == first.keys
    assert again.officer == "K. Jones"


def test_a_key_is_never_trusted_twice_nor_shared(db: Path) -> None:
    with Registry(db) as reg:
        reg.add(b"SOTTO-42", _pub(1))
        reg.revoke(b"SOTTO-42", reason="lost")
        with pytest.raises(RegistryError) as again:
            reg.add(b"SOTTO-42", _pub(1))
        with pytest.raises(RegistryError) as shared:
            reg.add(b"SOTTO-43", _pub(1))
        with pytest.raises(RegistryError) as twice:
            reg.revoke(b"SOTTO-42")
        with pytest.raises(DeviceNotFoundError):
            reg.revoke(b"SOTTO-99")
        with pytest.raises(DeviceNotFoundError):
            reg.rotate(b"SOTTO-99", _pub(3))
        fresh = reg.add(b"SOTTO-42", _pub(3))     # a new key after revocation is fine
    assert "never trusted again" in str(again.value)
    assert "already registered for device SOTTO-42" in str(shared.value)
    assert "already revoked" in str(twice.value)
    assert fresh.status == "active" and len(fresh.keys) == 2 and fresh.keys[0].revoke_reason == "lost"


def test_private_key_material_is_refused_without_echoing_it(db: Path) -> None:
    seed = bytes(range(32))
    private = Ed25519PrivateKey.from_private_bytes(seed)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with Registry(db) as reg:
        errors = []
        for bad in (seed + _pub(1), pem, b"\x01" * 31):
            with pytest.raises(RegistryError) as e:
                reg.add(b"SOTTO-42", bad)
            errors.append(str(e.value))
        assert reg.list() == []
    assert "private key" in errors[0] and "private key" in errors[1]
    assert all(seed.hex() not in msg and seed.hex()[:16] not in msg for msg in errors)


def test_db_path_resolution(tmp_path: Path) -> None:
    env = {"SOTTO_DB": str(tmp_path / "env.db"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "HOME": "/nonexistent"}
    assert resolve_db_path(str(tmp_path / "cli.db"), env) == tmp_path / "cli.db"
    assert resolve_db_path(None, env) == tmp_path / "env.db"
    assert resolve_db_path(None,
                           {"XDG_DATA_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg/sotto/receiver.db"
    assert default_db_path({}) == Path(os.path.expanduser("~")) / ".local/share/sotto/receiver.db"


def test_the_database_file_is_private_and_a_missing_one_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "receiver.db"
    Registry(path).close()
    mode = stat.S_IMODE(path.stat().st_mode)
    with pytest.raises(DatabaseError) as e:
        Registry(tmp_path / "nothing.db", create=False)
    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("hello, this is not a database at all" * 50)
    with pytest.raises(DatabaseError) as e2:
        Registry(not_sqlite)
    assert mode == 0o600
    assert "no receiver database" in str(e.value) and "SOTTO_DB" in str(e.value)
    assert "not a usable SQLite database" in str(e2.value)


def test_frames_from_revoked_rotated_and_unknown_keys_are_rejected_with_the_reason(db: Path) -> None:
    old = device(b"SOTTO-42")
    new = device(b"SOTTO-42")
    new.seed = bytes(range(1, 33))
    new.seq = 1000
    stranger = device(b"SOTTO-77")
    with Registry(db) as reg:
        reg.add(old.kid, old.public_key)
    clock = Clock(NOW)
    with Receiver(db, clock=clock) as r:
        assert statuses(r.ingest([old.heartbeat()])) == ["accepted"]
        with Registry(db, clock=lambda: old.time + 0.5) as reg:
            reg.rotate(old.kid, new.public_key)
        stale = old.heartbeat()                   # dated after the rotation
        answer = r.ingest([stale, new.heartbeat(), stranger.heartbeat()])
        with Registry(db, clock=lambda: new.time + 0.5) as reg:
            reg.revoke(old.kid)
        after_revoke = r.ingest([new.heartbeat()])
    reasons = [x.reason for x in answer.results]
    assert statuses(answer) == ["rejected", "accepted", "rejected"]
    assert reasons == ["revoked-device", None, "unknown-device"]
    assert "revoked" in answer.results[0].detail
    assert after_revoke.results[0].reason == "revoked-device"


def test_no_private_key_reaches_the_database_or_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "receiver.db"
    d = device(b"SOTTO-42")
    private = d.key
    pem_private = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    der_private = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    (tmp_path / "device.key").write_bytes(pem_private)
    (tmp_path / "device.pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    caplog.set_level(logging.DEBUG)
    # a technician passing the private key by mistake is refused
    assert main(["devices", "add", "SOTTO-42", "--pubkey", str(tmp_path / "device.key"), "--db",
                 str(db)]) == 2
    assert main(["devices", "add", "SOTTO-42", "--pubkey", str(tmp_path / "device.pub"), "--db", str(db),
                 "--officer", "J. Smith"]) == 0
    with Receiver(db, clock=Clock(NOW)) as r:
        good = [d.alert_start(loc=b"\x00" * 12 + b"\x01"), d.location(b"\x00" * 12 + b"\x01")]
        forged = device(b"SOTTO-42")
        forged.seed = bytes(32)
        r.ingest(good + [forged.heartbeat(), b"\xd2\x84garbage"])
    assert main(["devices", "list", "--json", "--db", str(db)]) == 0
    out = capsys.readouterr()
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("receiver.db"))
    texts = (caplog.text + out.out + out.err).encode()
    for haystack in (blobs, texts):
        assert d.seed not in haystack
        assert d.seed.hex().encode() not in haystack
        assert der_private not in haystack
        assert b"PRIVATE KEY" not in haystack
    assert d.public_key in blobs   # the public key is what is stored


def test_devices_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "r.db")
    d = device(b"SOTTO-42")
    assert main(["devices", "add", "SOTTO-42", "--pubkey", d.public_key.hex(), "--officer", "J. Smith",
                 "--db", db]) == 0
    assert main(["devices", "add", "SOTTO-42", "--pubkey", _pub(9).hex(), "--db", db]) == 1
    err = capsys.readouterr().err
    assert main(["devices", "list", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["devices", "rotate", "SOTTO-42", "--pubkey", _pub(9).hex(), "--db", db]) == 0
    assert main(["devices", "revoke", "SOTTO-42", "--db", db]) == 0
    assert main(["devices", "revoke", "SOTTO-42", "--db", db]) == 1
    assert main(["devices", "list", "--db", db]) == 0
    out = capsys.readouterr()
    assert "already has an active key" in err
    assert listed[0]["device"] == "SOTTO-42" and listed[0]["public_key"] == d.public_key.hex()
    assert listed[0]["officer"] == "J. Smith" and listed[0]["last_seen"] is None
    assert "SOTTO-42  revoked  J. Smith" in out.out
    assert "already revoked" in out.err
