"""`sotto provision` and `sotto rotate-key` end to end on the flashed virtual device.

The device makes its key; the test reads only what the host may see (the public
key, over mpremote) and, to prove the seed never reached the host side, looks for
the seed in the registry file by reading the virtual device's flash folder.
Provisioning installs the centre's trust anchors (CA file, centre key) and
refuses to change a key while the device holds frames (tests/technician/
test_provision_queue.py has the queue cases).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace

import cbor2
import pytest
from centre_support import centre_db, stored_bytes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from host_tools import provision
from host_tools.device_link import DeviceLink
from host_tools.frames import load_public_key, public_key_bytes
from host_tools.receiver import centre_key, devcfg
from host_tools.receiver.alert_records import ExpectedHeartbeat
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import open_db
from host_tools.registry import Registry, RegistryError
from simulator.pki import make_pki


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    """The centre's TLS CA certificate, as a technician gets it."""
    d = tmp_path_factory.mktemp("pki")
    pem = d / "centre-ca.pem"
    pem.write_text(make_pki(str(d)).ca_pem)
    return pem


@pytest.fixture
def REQUEST(ca_file):  # noqa: N802 - the request every test provisions with
    return provision.ProvisionRequest("SOTTO-42", officer="PC 1234 Smith", server="https://alerts.example.org",
                                      apn="internet", sms_number="+447700900123", ca_cert=ca_file)


def _device_public_key(dev) -> bytes:
    out = dev.mpremote("exec", "from sotto import identity; from sotto.storage import Storage; "
                               "print(identity.public_key(Storage('/data')).hex())")
    return bytes.fromhex(out.stdout.strip().splitlines()[-1])


def _seed(dev) -> bytes:
    raw = (dev.flash / "data" / "identity.key").read_bytes()
    assert len(raw) == 40 and raw[:4] == b"SID1"
    return raw[4:36]


def _sign_on_device(dev, seq: int) -> bytes:
    """A heartbeat frame signed by the device's firmware with the key it holds now."""
    code = ("from sotto import frames, identity, config\nfrom sotto.storage import Storage\n"
            "st = Storage('/data')\ncfg = config.load(st)\n"
            "s = frames.FrameSigner(cfg['device_id'], identity.load(st))\n"
            f"w = s.sign({{frames.K_T: frames.HEARTBEAT, frames.K_SEQ: {seq}, "
            f"frames.K_TIME: {int(time.time())}, frames.K_UP: 1000, frames.K_BATT: 90, "
            "frames.K_HB: 900})\nprint(w.hex())\n")
    return bytes.fromhex(dev.mpremote("exec", code).stdout.strip().splitlines()[-1])


def test_provision_makes_the_key_on_the_device_and_registers_only_its_public_half(device, tmp_path, REQUEST,
                                                                                   ca_file):
    db = centre_db(tmp_path / "receiver.db")
    change = provision.provision(device.port, REQUEST, db)
    public = _device_public_key(device)
    assert change.public_key == public
    seed = _seed(device)
    # the seed on the device's flash is the private half of what the registry trusts
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert derived.public_bytes(Encoding.Raw, PublicFormat.Raw) == public
    with Registry(db) as reg:
        record = reg.get("SOTTO-42")
    assert record.public_key == public and record.officer == "PC 1234 Smith" and record.status == "active"
    for blob in stored_bytes(db):  # database, WAL, anything the registry wrote
        assert seed not in blob and seed.hex().encode() not in blob
    cfg = json.loads((device.flash / "data" / "config.json").read_bytes())
    centre = centre_key.load(centre_key.default_path(db)).public_key
    assert cfg == {"device_id": "534f54544f2d3432", "receiver": "https://alerts.example.org",
                   "apn": "internet", "officer": "PC 1234 Smith", "sms_number": "+447700900123",
                   "ca_cert": "centre-ca.pem", "centre_key": centre.hex()}
    assert (device.flash / "data" / "centre-ca.pem").read_bytes() == ca_file.read_bytes()
    # the firmware boots with it and may deliver: config.load and network_refusal on the device
    out = device.mpremote("exec", "from sotto import config; from sotto.storage import Storage; "
                                  "st = Storage('/data'); c = config.load(st); "
                                  "print(c['server']['host'], c['board'], config.network_refusal(c, st))")
    assert out.stdout.split() == ["alerts.example.org", "sotto-ref-s3", "None"]


def test_reprovision_is_refused_without_force_and_force_starts_a_clean_identity(device, tmp_path, REQUEST,
                                                                                ca_file):
    db = centre_db(tmp_path / "receiver.db")
    first = provision.provision(device.port, REQUEST, db)
    with pytest.raises(provision.AlreadyProvisioned) as err:
        provision.provision(device.port, REQUEST, db)
    assert "--force" in str(err.value)
    # the same through the CLI, with a fresh registry: the device itself refuses
    other = centre_db(tmp_path / "other.db")
    cli = subprocess.run([sys.executable, "-m", "sotto_cli", "provision", "--port", device.port,
                          "--id", "SOTTO-42", "--server", "https://alerts.example.org", "--apn", "internet",
                          "--ca-cert", str(ca_file), "--db", str(other)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1
    assert "already provisioned" in cli.stderr and "--force" in cli.stderr
    assert _device_public_key(device) == first.public_key  # untouched
    # what the old identity left under /data (its command state, last position, an old CA)
    for name in ("cmds", "lastfix", "rejected.log", "old-ca.pem"):
        (device.flash / "data" / name).write_bytes(b"old")
    plain = provision.ProvisionRequest("SOTTO-42", server="http://127.0.0.1:8080", apn="internet")
    second = provision.provision(device.port, plain, db, force=True)
    assert second.public_key != first.public_key
    assert second.public_key == _device_public_key(device)
    assert second.revoked == (first.fingerprint,)
    # nothing of the old identity survives unless given again: no officer, SMS number or CA
    assert set(second.config) == {"device_id", "receiver", "apn", "centre_key"}
    left = {p.name for p in (device.flash / "data").iterdir()} - {"ctr.a", "ctr.b"}   # counters stay
    assert left == {"config.json", "identity.key", "q"}
    assert sorted(second.removed) == ["centre-ca.pem", "cmds", "lastfix", "old-ca.pem", "rejected.log"]
    with Registry(db) as reg:
        keys = reg.get("SOTTO-42").keys
    assert [k.public_key for k in keys] == [first.public_key, second.public_key]
    assert keys[0].revoked_at is not None and keys[1].revoked_at is None


def test_config_the_firmware_refuses_writes_nothing(device, tmp_path, ca_file):
    db = centre_db(tmp_path / "receiver.db")
    bad = provision.ProvisionRequest("SOTTO-42", server="https://alerts.example.org", apn="internet",
                                     sms_number="07700 900123", ca_cert=ca_file)
    with pytest.raises(provision.ConfigRejected) as err:
        provision.provision(device.port, bad, db)
    assert err.value.field == "sms_number" and err.value.reason == "range"
    assert "+447700900123" in str(err.value)  # the firmware's own advice
    assert not (device.flash / "data" / "config.json").exists()
    assert not (device.flash / "data" / "identity.key").exists()
    with Registry(db) as reg:
        assert reg.find("SOTTO-42") is None


@pytest.mark.parametrize(("request_kw", "message"), [
    ({"apn": "internet"}, "--server"),
    ({"server": "http://alerts.example.org", "apn": "internet"}, "only to a loopback address"),
    ({"server": "http://127.0.0.1.example.org", "apn": "internet"}, "only to a loopback address"),
    ({"server": "https://alerts.example.org", "apn": "internet"}, "--ca-cert"),
    ({"server": "https://alerts.example.org", "apn": "internet", "insecure_tls": True, "ca_cert": "x.pem"},
     "not both"),
    ({"server": "https://alerts.example.org", "apn": "internet", "ca_cert": "/no/such.pem"}, "cannot read"),
    ({"server": "https://alerts.example.org", "apn": "internet", "insecure_tls": True,
      "centre_key_pub": "00" * 32}, "not the centre key this registry records"),
])
def test_bad_requests_are_refused_before_the_device_is_touched(device, tmp_path, request_kw, message):
    with pytest.raises((provision.UsageError, provision.ProvisionError)) as err:
        provision.provision(device.port, provision.ProvisionRequest("SOTTO-42", **request_kw),
                            centre_db(tmp_path / "r.db"))
    assert message in str(err.value)
    assert not (device.flash / "data" / "config.json").exists()


def test_a_registry_that_does_not_exist_needs_new_registry_and_a_centre_key(device, tmp_path, ca_file):
    db = tmp_path / "new.db"
    request = provision.ProvisionRequest("SOTTO-42", server="https://alerts.example.org", apn="internet",
                                         ca_cert=ca_file)
    with pytest.raises(provision.ProvisionError, match="--new-registry"):
        provision.provision(device.port, request, db)
    assert not db.exists()
    with pytest.raises(provision.ProvisionError, match="no centre key"):
        provision.provision(device.port, replace(request, new_registry=True), db)
    centre = centre_key.create(tmp_path / "elsewhere.key")           # a centre on another machine
    pem = tmp_path / "device.pem"
    request = replace(request, new_registry=True, centre_key_pub=centre.public_hex)
    change = provision.provision(device.port, request, db, export_pubkey=pem)
    assert change.config["centre_key"] == centre.public_hex
    assert public_key_bytes(load_public_key(pem)) == change.public_key == _device_public_key(device)


def test_insecure_tls_is_written_and_the_device_flags_it(device, tmp_path):
    db = centre_db(tmp_path / "r.db")
    bench = provision.ProvisionRequest("SOTTO-42", server="https://bench.local", apn="internet",
                                       insecure_tls=True)
    change = provision.provision(device.port, bench, db)
    assert change.config["insecure_tls"] is True and "ca_cert" not in change.config
    out = device.mpremote("exec", "from sotto import config; from sotto.storage import Storage; "
                                  "st = Storage('/data'); c = config.load(st); "
                                  "print(c['insecure_tls'], config.network_refusal(c, st))")
    assert out.stdout.split() == ["True", "None"]


def test_registry_failure_puts_the_device_back(device, tmp_path, monkeypatch, REQUEST):
    db = centre_db(tmp_path / "receiver.db")
    first = provision.provision(device.port, REQUEST, db)

    def refuse(*args, **kwargs):
        raise RegistryError("disk on fire")

    monkeypatch.setattr(Registry, "rotate", refuse)
    with pytest.raises(RegistryError):
        provision.rotate_key(device.port, db)
    assert _device_public_key(device) == first.public_key  # the old key is back: still trusted
    assert not (device.flash / "data" / "identity.bak").exists()


def test_rotate_key_refused_when_the_registry_does_not_trust_the_device(device, tmp_path, REQUEST):
    trusting = centre_db(tmp_path / "a.db")
    provision.provision(device.port, REQUEST, trusting)
    key = _device_public_key(device)
    with pytest.raises(provision.ProvisionError) as err:
        provision.rotate_key(device.port, centre_db(tmp_path / "b.db"))
    assert "--force" in str(err.value)
    assert _device_public_key(device) == key
    with pytest.raises(provision.NotProvisioned):
        device.wipe_data()
        provision.rotate_key(device.port, trusting)


def test_identity_end_to_end_frames_verify_and_old_key_is_revoked_after_rotation(device, tmp_path, REQUEST):
    db = centre_db(tmp_path / "receiver.db")
    provision.provision(device.port, REQUEST, db)
    sent_now = _sign_on_device(device, 1)
    queued = _sign_on_device(device, 2)  # signed before the rotation, delivered after it
    receiver = Receiver(db)
    first = receiver.ingest([sent_now]).results[0]
    assert (first.status, first.device) == ("accepted", b"SOTTO-42")
    cli = subprocess.run([sys.executable, "-m", "sotto_cli", "rotate-key", "--port", device.port,
                          "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "revoked" in cli.stdout
    new_frame = _sign_on_device(device, 3)
    after = receiver.ingest([new_frame]).results[0]
    assert after.status == "accepted"
    late = receiver.ingest([queued]).results[0]
    # signed by the old key and dated before the rotation: still accepted (docs/operator-guide.md)
    assert (late.status, late.reason) == ("accepted", None)
    # an outside check (cbor2 + cryptography, not our verifier): RFC 9052 Sig_structure
    with Registry(db) as reg:
        key = reg.get("SOTTO-42").active_key.public_key_object()
    protected, _unprotected, payload, signature = cbor2.loads(new_frame).value
    key.verify(signature, cbor2.dumps(["Signature1", protected, b"", payload]))


def test_provision_requires_flashed_firmware(make_vdev, tmp_path, REQUEST):
    dev = make_vdev("bare")
    with pytest.raises(provision.NotFlashed) as err:
        provision.provision(dev.port, REQUEST, centre_db(tmp_path / "r.db"))
    assert f"sotto flash --port {dev.port}" in str(err.value)
    with DeviceLink.open(dev.port) as link:
        assert link.hashes(["/data/identity.key"]) == {"/data/identity.key": None}


def test_the_cli_prints_what_it_wrote_and_nothing_secret(device, tmp_path, ca_file):
    db = centre_db(tmp_path / "receiver.db")
    base = [sys.executable, "-m", "sotto_cli", "provision", "--port", device.port, "--id", "SOTTO-42",
            "--server", "https://alerts.example.org", "--apn", "internet", "--officer", "PC 1234 Smith",
            "--ca-cert", str(ca_file), "--db", str(db)]
    text = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    again = subprocess.run(base + ["--force", "--json"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    seed = _seed(device)
    centre = centre_key.load(centre_key.default_path(db))
    for shown in (text.stdout, again.stdout):
        assert seed.hex() not in shown and centre.public_hex in shown
    assert "TLS" in text.stdout and "CA certificate /data/centre-ca.pem" in text.stdout
    assert "PC 1234 Smith" in text.stdout and "alerts.example.org" in text.stdout
    first = next(line.split()[1].rstrip(",") for line in text.stdout.splitlines()
                 if line.strip().startswith("key "))
    assert out["device"] == "SOTTO-42" and out["config"]["ca_cert"] == "centre-ca.pem"
    assert out["revoked"] == [first] and out["fingerprint"] != first


def test_provision_set_gives_other_settings_checked_by_the_firmware(device, tmp_path, ca_file, REQUEST):
    db = centre_db(tmp_path / "receiver.db")
    bad = replace(REQUEST, settings={"trigger.cancel": {"presses": 5, "window_ms": 2000}})
    with pytest.raises(provision.ConfigRejected) as err:
        provision.provision(device.port, bad, db)
    assert err.value.field == "trigger.duress"   # the firmware's rule: same as the duress pattern
    assert not (device.flash / "data" / "config.json").exists()
    with closing(open_db(db)) as conn:     # refused: the centre keeps nothing of it
        assert conn.execute("SELECT count(*) FROM device_provisioned").fetchone()[0] == 0
    good = replace(REQUEST, settings={"heartbeat_every_s": 600, "audio.pre_trigger": True,
                                      "trigger.alert": {"presses": 6, "window_ms": 3000}})
    change = provision.provision(device.port, good, db)
    on_device = json.loads((device.flash / "data" / "config.json").read_text())
    assert on_device["heartbeat_every_s"] == 600 and on_device["audio"] == {"pre_trigger": True}
    assert on_device["trigger"]["alert"] == {"presses": 6, "window_ms": 3000}
    assert change.config["heartbeat_every_s"] == 600
    # the centre keeps them: a device never heard is expected within its 10 min, not the default
    with closing(open_db(db)) as conn:
        kept = conn.execute("SELECT settings, provisioned_by FROM device_provisioned").fetchall()
        assert [json.loads(k[0]) for k in kept] == [good.settings] and "sotto provision" in kept[0][1]
        assert devcfg.expected_heartbeats(conn)[b"SOTTO-42"] == ExpectedHeartbeat(600, "provisioned")


def test_provision_set_refuses_what_only_provisioning_flags_set():
    from host_tools.errors import UsageError
    from host_tools.receiver import devcfg

    with pytest.raises(UsageError, match="only `sotto provision`"):
        devcfg.parse_settings(["receiver=https://elsewhere.example"])
    # what --secondary-*, --release-key-pub and --repl-lock set
    for name in ("secondary_receiver", "secondary_ca_cert", "secondary_centre_key", "release_key",
                 "repl_lock"):
        with pytest.raises(UsageError, match="only `sotto provision`"):
            devcfg.parse_settings([f"{name}=x"])
    with pytest.raises(UsageError, match="KEY=VALUE"):
        devcfg.parse_settings(["heartbeat_every_s"])
    assert devcfg.parse_settings(["a.b=600", "c=text", "d=true"]) == {"a.b": 600, "c": "text", "d": True}


def test_flash_provision_and_rotate_key_name_a_corrupt_configuration_not_a_missing_one(device, tmp_path,
                                                                                         REQUEST, build_dir):
    """Issue 16: a damaged config.json on a provisioned unit is "corrupt", a new unit's is "missing"."""
    from host_tools import config_state, flash

    assert flash.flash_firmware(device.port, build_dir=build_dir).config.state == "missing"
    db = centre_db(tmp_path / "receiver.db")
    provision.provision(device.port, REQUEST, db)
    ok = flash.flash_firmware(device.port, build_dir=build_dir).config
    assert (ok.state, ok.device_id) == ("ok", "SOTTO-42")
    (device.flash / "data" / "config.json").write_bytes(b'{"device_id": "SOTTO-42", "recei')  # torn write
    found = flash.flash_firmware(device.port, build_dir=build_dir).config
    assert found.state == "corrupt" and "CORRUPT" in found.detail and "missing" not in found.detail
    with pytest.raises(provision.AlreadyProvisioned) as err:   # it still holds its key (another registry)
        provision.provision(device.port, REQUEST, centre_db(tmp_path / "other.db"))
    assert "CORRUPT configuration" in str(err.value) and "--force" in str(err.value)
    with pytest.raises(provision.NotProvisioned) as err2:
        provision.rotate_key(device.port, db)
    assert "CORRUPT configuration" in str(err2.value) and "missing" not in str(err2.value)
    device.wipe_data()
    with pytest.raises(provision.NotProvisioned) as err3:
        provision.rotate_key(device.port, db)
    assert "config.json is missing" in str(err3.value) and "CORRUPT" not in str(err3.value)
    # the JSON and the sentence of `sotto flash` (no device needed for these)
    for raw in (b"[1]", b'{"device_id": 7}', b"\xff"):
        assert config_state.describe(raw).state == "corrupt"
