"""host_tools.release and `sotto release`: build, verify, tamper, wrong key."""

from __future__ import annotations

import json
import os

import pytest

from host_tools import release
from sotto_cli.cli import main

FILES = {"/sotto/app.mpy": b"app-v2" * 100, "/sotto/frames.mpy": b"frames" * 50,
         "/boards/sotto-ref-s3.json": b'{"name": "sotto-ref-s3"}'}


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "release.key"
    pub = release.keygen(path)
    return path, pub


def test_keygen_private_0600_and_never_overwritten(key, capsys):
    path, pub = key
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(pub) == 32
    assert main(["release", "keygen", "--out", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_build_then_verify(tmp_path, key):
    path, pub = key
    m = release.build(FILES, "0.2.0", release.load_key(path), tmp_path / "rel", min_version="0.1.0")
    assert [f[0] for f in m["files"]] == sorted(FILES)
    rel = release.load(tmp_path / "rel", pub)
    assert rel.version == "0.2.0"
    assert rel.file_bytes("/sotto/app.mpy") == FILES["/sotto/app.mpy"]
    assert rel.kid == release.kid_of(pub)


@pytest.mark.parametrize("how,reason", [
    ("flip", "file-digest"), ("truncate", "file-size"), ("remove", "missing-file"), ("extra", "extra-file")])
def test_tampered_release_refused(tmp_path, key, how, reason):
    path, pub = key
    release.build(FILES, "0.2.0", release.load_key(path), tmp_path / "rel")
    target = tmp_path / "rel" / "files" / "sotto" / "app.mpy"
    data = target.read_bytes()
    if how == "flip":
        target.write_bytes(data[:10] + bytes([data[10] ^ 1]) + data[11:])
    elif how == "truncate":
        target.write_bytes(data[:-1])
    elif how == "remove":
        target.unlink()
    else:
        (tmp_path / "rel" / "files" / "sotto" / "evil.mpy").write_bytes(b"x")
    with pytest.raises(release.ReleaseError) as e:
        release.load(tmp_path / "rel", pub)
    got = e.value.reason
    assert got == reason


def test_wrong_key_and_bad_signature(tmp_path, key):
    path, pub = key
    other = release.keygen(tmp_path / "other.key")
    release.build(FILES, "0.2.0", release.load_key(path), tmp_path / "rel")
    with pytest.raises(release.ReleaseError) as e:
        release.load(tmp_path / "rel", other)
    assert e.value.reason == "wrong-key"
    blob = bytearray((tmp_path / "rel" / "manifest.cose").read_bytes())
    blob[-5] ^= 0x40  # inside the signature
    (tmp_path / "rel" / "manifest.cose").write_bytes(bytes(blob))
    with pytest.raises(release.ReleaseError) as e:
        release.load(tmp_path / "rel", pub)
    assert e.value.reason == "bad-signature"


def test_bad_input_refused(tmp_path, key):
    k = release.load_key(key[0])
    for files, version, reason in [({"/etc/x": b"1"}, "0.2.0", "bad-path"),
                                   ({"/sotto/../x": b"1"}, "0.2.0", "bad-path"),
                                   (FILES, "2", "bad-version"), ({}, "0.2.0", "bad-manifest")]:
        with pytest.raises(release.ReleaseError) as e:
            release.build(files, version, k, tmp_path / f"r{reason}")
        assert e.value.reason == reason
    os.chmod(key[0], 0o644)
    with pytest.raises(release.ReleaseError) as e:
        release.load_key(key[0])
    assert e.value.reason == "key-exposed"


def test_cli_build_verify_json(tmp_path, key, capsys):
    path, _pub = key
    src = tmp_path / "src"
    for p, data in FILES.items():
        (src / p.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (src / p.lstrip("/")).write_bytes(data)
    (src / "main.py").write_text("ignored: not under /sotto or /boards")
    out = tmp_path / "rel"
    assert main(["release", "build", "--version", "0.3.1", "--key", str(path), "--out", str(out),
                 "--from", str(src), "--board", "sotto-ref-s3", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["version"] == "0.3.1" and len(built["files"]) == 3
    assert "PRIVATE" not in json.dumps(built)
    assert main(["release", "verify", str(out), "--release-key-pub", str(path) + ".pub", "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] and v["signature_checked"]
    (out / "files" / "sotto" / "app.mpy").write_bytes(b"evil")
    assert main(["release", "verify", str(out), "--json"]) == 2
    bad = json.loads(capsys.readouterr().out)
    assert bad["reason"] == "file-size"


def test_firmware_release_is_what_flash_puts_under_sotto(tmp_path, key):
    files = release.firmware_files(None)
    assert "/sotto/app.mpy" in files and "/sotto/__init__.mpy" in files
    assert all(p.startswith(("/sotto/", "/boards/")) for p in files)
    release.build(files, "0.1.0", release.load_key(key[0]), tmp_path / "fw")
    assert release.load(tmp_path / "fw", key[1]).version == "0.1.0"
