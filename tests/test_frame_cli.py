"""`sotto frame inspect|verify`: output for people and tools, exit codes, stderr."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import framefactory as ff
import pytest
from cryptography.hazmat.primitives import serialization

from sotto_cli.cli import main

LOC = ff.pack_location(515007292, -1246254, 5, 3, ff.SRC_GNSS)


def alert() -> tuple[ff.DeviceSim, list[bytes]]:
    """A short alert from SOTTO-42: start, location, 1 s of audio, duress, end."""
    d = ff.DeviceSim(kid=b"SOTTO-42", seed=bytes(range(32)))
    frames = [d.alert_start(loc=LOC, battery=64), d.location(LOC),
              d.audio(bytes(range(250)) * 16, offset=0, samples=8000),
              d.duress(loc=LOC), d.end(why=1)]
    return d, frames


@pytest.fixture
def files(tmp_path):
    d, frames = alert()
    pub = d.key.public_key()
    paths = {
        "one": tmp_path / "start.cbor", "seq": tmp_path / "alert.cbor",
        "pem": tmp_path / "device.pub.pem", "priv": tmp_path / "device.key.pem",
    }
    paths["one"].write_bytes(frames[0])
    paths["seq"].write_bytes(b"".join(frames))
    paths["pem"].write_bytes(pub.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    paths["priv"].write_bytes(d.key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d, frames, {k: str(v) for k, v in paths.items()}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- verify


def test_verify_one_valid_frame(files, capsys):
    d, _, p = files
    code, out, err = run(capsys, "frame", "verify", p["one"], "--pubkey", d.public_key.hex())
    assert (code, err) == (0, "")
    assert out == "OK  frame: alert-start device SOTTO-42 seq 1 sid 1\n"


def test_verify_a_sequence_with_a_pem_key(files, capsys):
    _, frames, p = files
    code, out, err = run(capsys, "frame", "verify", p["seq"], "--pubkey", p["pem"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == len(frames)
    assert lines[2] == "OK  frame 3/5: audio device SOTTO-42 seq 3 sid 1"
    assert all(line.startswith("OK  frame ") for line in lines)


def test_verify_reports_each_bad_frame_with_its_reason(files, tmp_path, capsys):
    d, frames, p = files
    bad_sig = frames[1][:-1] + bytes([frames[1][-1] ^ 0x40])
    bad_audio = frames[2][:-1] + b"\x00"
    path = tmp_path / "mixed.cbor"
    path.write_bytes(frames[0] + bad_sig + bad_audio + frames[3])
    code, out, err = run(capsys, "frame", "verify", str(path), "--pubkey", p["pem"])
    assert code == 1
    assert out.splitlines() == ["OK  frame 1/4: alert-start device SOTTO-42 seq 1 sid 1",
                                "OK  frame 4/4: duress device SOTTO-42 seq 4 sid 1"]
    lines = err.splitlines()
    assert lines[0].startswith("sotto: frame 2/4: bad-signature: ")
    assert lines[1].startswith("sotto: frame 3/4: audio-digest-mismatch: ")
    assert lines[2] == "sotto: 2 of 4 frames failed verification"


def test_verify_with_the_wrong_key_fails(files, capsys):
    _, _, p = files
    other = ff.DeviceSim(seed=bytes(32)).public_key.hex()
    code, out, err = run(capsys, "frame", "verify", p["one"], "--pubkey", other)
    assert (code, out) == (1, "")
    assert err.startswith("sotto: frame: bad-signature: the signature does not verify")


def test_verify_device_option(files, capsys):
    d, _, p = files
    ok = run(capsys, "frame", "verify", p["one"], "--pubkey", p["pem"], "--device", "534f54544f2d3432")
    assert ok[0] == 0
    code, out, err = run(capsys, "frame", "verify", p["one"], "--pubkey", p["pem"], "--device", "SOTTO-43")
    assert (code, out) == (1, "")
    assert "unknown-device" in err and "SOTTO-42" in err and "SOTTO-43" in err
    code, _, err = run(capsys, "frame", "verify", p["one"], "--pubkey", p["pem"], "--device", "SOTTO")
    assert code == 2 and "device id 'SOTTO'" in err


def test_verify_time_in_future_against_now(files, tmp_path, capsys):
    d, frames, p = files
    t = ff.cbor2.loads(ff.cbor2.loads(frames[0]).value[2])[4]
    assert run(capsys, "frame", "verify", p["one"], "--pubkey", p["pem"], "--now", str(t - 300))[0] == 0
    code, _, err = run(capsys, "frame", "verify", p["one"], "--pubkey", p["pem"], "--now", str(t - 3600))
    assert code == 1 and "time-in-future" in err
    # without --now the machine's clock is the judge: a frame dated 2100 is in the future
    future = tmp_path / "future.cbor"
    future.write_bytes(ff.resign(d, {0: 1, 1: 7, 3: 9, 4: 4_102_444_800, 5: 0, 7: 50, 17: 900}))
    code, _, err = run(capsys, "frame", "verify", str(future), "--pubkey", p["pem"])
    assert code == 1 and "time-in-future: time 4102444800" in err


def test_verify_refuses_a_private_key_file(files, capsys):
    _, _, p = files
    code, out, err = run(capsys, "frame", "verify", p["one"], "--pubkey", p["priv"])
    assert (code, out) == (2, "")
    assert "private key" in err
    assert "PRIVATE KEY" not in err


@pytest.mark.parametrize(("args", "words"), [
    (["--pubkey", "/nonexistent/key.pem"], "no such key file"),
    (["--pubkey", "abcd"], "4 hex digits"),
])
def test_verify_usage_errors_exit_2(files, capsys, args, words):
    _, _, p = files
    code, out, err = run(capsys, "frame", "verify", p["one"], *args)
    assert (code, out) == (2, "")
    assert words in err and err.count("\n") == 1


def test_verify_missing_and_empty_files(files, tmp_path, capsys):
    _, _, p = files
    code, _, err = run(capsys, "frame", "verify", str(tmp_path / "none.cbor"), "--pubkey", p["pem"])
    assert code == 2 and "cannot read" in err
    empty = tmp_path / "empty.cbor"
    empty.write_bytes(b"")
    code, _, err = run(capsys, "frame", "verify", str(empty), "--pubkey", p["pem"])
    assert code == 1 and "malformed-cbor" in err and "holds no frames" in err


def test_verify_a_file_that_is_not_cbor(files, tmp_path, capsys):
    _, frames, p = files
    path = tmp_path / "cut.cbor"
    path.write_bytes(frames[0] + frames[1][:40])
    code, out, err = run(capsys, "frame", "verify", str(path), "--pubkey", p["pem"])
    assert (code, out) == (1, "")
    assert err.startswith("sotto: error: malformed-cbor: item 2 of the sequence")


def test_verify_from_stdin_and_hex(files, monkeypatch, capsys):
    d, frames, p = files
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"".join(frames[:2]))))
    code, out, _ = run(capsys, "frame", "verify", "-", "--pubkey", p["pem"])
    assert code == 0 and len(out.splitlines()) == 2
    text = frames[0].hex()
    spaced = "\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(spaced.encode())))
    code, out, _ = run(capsys, "frame", "verify", "-", "--hex", "--pubkey", p["pem"])
    assert code == 0 and out.startswith("OK  frame: alert-start")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"d2zz")))
    code, _, err = run(capsys, "frame", "verify", "-", "--hex", "--pubkey", p["pem"])
    assert code == 2 and "'z' is not a hex digit" in err


# ---------------------------------------------------------------- inspect


def test_inspect_one_frame_for_a_person(files, capsys):
    _, _, p = files
    code, out, err = run(capsys, "frame", "inspect", p["one"])
    assert (code, err) == (0, "")
    for words in ("alert-start (1)", "SOTTO-42", "session 1", "2026-09-21 14:13:21 UTC",
                  "61.000 s", "51.5007292, -0.1246254", "±5 m", "fix 3 s old", "source gnss", "64 %",
                  "trigger", "hold", "flags", "none", "link", "EdDSA (-8)"):
        assert words in out, words


def test_inspect_a_sequence_shows_audio_and_the_chain(files, capsys):
    _, _, p = files
    code, out, _ = run(capsys, "frame", "inspect", p["seq"])
    assert code == 0
    blocks = out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"frame {i}/5" for i in range(1, 6)]
    assert "follows frame 1 of this file" in blocks[1]
    assert "IMA-ADPCM, 8000 Hz, 8000 samples (1.000 s)" in blocks[2]
    assert "audio bytes  4000" in blocks[2]
    assert "duress" in blocks[3] and "follows frame 3" in blocks[3]
    assert "ended on the device" in blocks[4]


def test_inspect_json(files, capsys):
    _, frames, p = files
    code, out, _ = run(capsys, "frame", "inspect", p["seq"], "--json")
    assert code == 0
    data = json.loads(out)
    assert [f["type"] for f in data] == ["alert-start", "location", "audio", "duress", "end"]
    assert data[0]["location"]["lat_e7"] == 515007292 and data[0]["battery"] == 64
    assert data[2]["audio"]["bytes"] == 4000 and data[3]["flag_names"] == ["duress"]
    assert data[1]["prev"] == data[0]["link"]
    assert data[0]["index"] == 1 and data[0]["size"] == len(frames[0])


def test_inspect_reports_frames_it_cannot_decode(files, tmp_path, capsys):
    d, frames, p = files
    path = tmp_path / "bad.cbor"
    hb = ff.resign(d, {0: 2, 1: 7})
    path.write_bytes(frames[0] + hb)
    code, out, err = run(capsys, "frame", "inspect", str(path))
    assert code == 1
    assert "frame 2/2: not a valid frame" in out
    assert "sotto: frame 2/2: unsupported-version: format version 2" in err
    code, out, _ = run(capsys, "frame", "inspect", str(path), "--json")
    assert code == 1
    assert json.loads(out)[1]["error"]["reason"] == "unsupported-version"


def test_frame_without_subcommand_prints_help(capsys):
    code, _, err = run(capsys, "frame")
    assert code == 2 and "inspect" in err and "verify" in err


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frame", "verify", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "--pubkey KEY" in out and "Exit status" in out and "64 hex digits" in out


def test_the_console_script_exit_codes(files):
    d, _, p = files
    base = [sys.executable, "-m", "sotto_cli", "frame", "verify", p["one"]]
    good = subprocess.run(base + ["--pubkey", p["pem"]], capture_output=True, text=True)
    assert (good.returncode, good.stderr) == (0, "")
    bad = subprocess.run(base + ["--pubkey", ff.DeviceSim(seed=bytes(32)).public_key.hex()],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "bad-signature" in bad.stderr and bad.stdout == ""
