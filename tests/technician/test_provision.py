"""`sotto provision` and `sotto rotate-key` end to end on the flashed virtual device.

The device makes its key; the test reads only what the host may see (the public
key, over mpremote) and, to prove the seed never reached the host side, looks for
the seed in the registry file by reading the virtual device's flash folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from host_tools import provision
from host_tools.device_link import DeviceLink
from host_tools.receiver.ingest import Receiver
from host_tools.registry import Registry, RegistryError

REQUEST = provision.ProvisionRequest("SOTTO-42", officer="PC 1234 Smith", server="https://alerts.example.org",
                                     apn="internet", sms_number="+447700900123")


@pytest.fixture
def device(flashed):
    """The shared flashed device with an empty /data (never provisioned)."""
    flashed.wipe_data()
    yield flashed
    flashed.wipe_data()


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


def test_provision_makes_the_key_on_the_device_and_registers_only_its_public_half(device, tmp_path):
    db = tmp_path / "receiver.db"
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
    for path in db.parent.iterdir():  # database, WAL, anything the registry wrote
        assert seed not in path.read_bytes() and seed.hex() not in path.read_text(errors="ignore")
    cfg = json.loads((device.flash / "data" / "config.json").read_bytes())
    assert cfg == {"device_id": "534f54544f2d3432", "receiver": "https://alerts.example.org",
                   "apn": "internet", "officer": "PC 1234 Smith", "sms_number": "+447700900123"}
    # the firmware boots with it: config.load on the device accepts it
    out = device.mpremote("exec", "from sotto import config; from sotto.storage import Storage; "
                                  "c = config.load(Storage('/data')); print(c['server']['host'], c['board'])")
    assert out.stdout.split() == ["alerts.example.org", "sotto-ref-s3"]


def test_reprovision_is_refused_without_force_and_force_revokes_the_old_key(device, tmp_path):
    db = tmp_path / "receiver.db"
    first = provision.provision(device.port, REQUEST, db)
    with pytest.raises(provision.AlreadyProvisioned) as err:
        provision.provision(device.port, REQUEST, db)
    assert "--force" in str(err.value)
    # the same through the CLI, with a fresh registry: the device itself refuses
    cli = subprocess.run([sys.executable, "-m", "sotto_cli", "provision", "--port", device.port,
                          "--id", "SOTTO-42", "--db", str(tmp_path / "other.db")],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1
    assert "already provisioned" in cli.stderr and "--force" in cli.stderr
    assert _device_public_key(device) == first.public_key  # untouched
    second = provision.provision(device.port, provision.ProvisionRequest("SOTTO-42"), db, force=True)
    assert second.public_key != first.public_key
    assert second.public_key == _device_public_key(device)
    assert second.revoked == (first.fingerprint,)
    assert second.config["receiver"] == "https://alerts.example.org"  # kept from the device's config
    with Registry(db) as reg:
        keys = reg.get("SOTTO-42").keys
    assert [k.public_key for k in keys] == [first.public_key, second.public_key]
    assert keys[0].revoked_at is not None and keys[1].revoked_at is None


def test_config_the_firmware_refuses_writes_nothing(device, tmp_path):
    db = tmp_path / "receiver.db"
    bad = provision.ProvisionRequest("SOTTO-42", server="https://alerts.example.org", apn="internet",
                                     sms_number="07700 900123")
    with pytest.raises(provision.ConfigRejected) as err:
        provision.provision(device.port, bad, db)
    assert err.value.field == "sms_number" and err.value.reason == "range"
    assert "+447700900123" in str(err.value)  # the firmware's own advice
    assert not (device.flash / "data" / "config.json").exists()
    assert not (device.flash / "data" / "identity.key").exists()
    with Registry(db) as reg:
        assert reg.find("SOTTO-42") is None


def test_missing_server_is_a_usage_error_before_the_device_is_touched(device, tmp_path):
    with pytest.raises(provision.UsageError) as err:
        provision.provision(device.port, provision.ProvisionRequest("SOTTO-42", apn="internet"),
                            tmp_path / "r.db")
    assert "--server" in str(err.value)
    assert not (device.flash / "data" / "config.json").exists()


def test_registry_failure_puts_the_device_back(device, tmp_path, monkeypatch):
    db = tmp_path / "receiver.db"
    first = provision.provision(device.port, REQUEST, db)

    def refuse(*args, **kwargs):
        raise RegistryError("disk on fire")

    monkeypatch.setattr(Registry, "rotate", refuse)
    with pytest.raises(RegistryError):
        provision.rotate_key(device.port, db)
    assert _device_public_key(device) == first.public_key  # the old key is back: still trusted
    assert not (device.flash / "data" / "identity.bak").exists()


def test_rotate_key_refused_when_the_registry_does_not_trust_the_device(device, tmp_path):
    provision.provision(device.port, REQUEST, tmp_path / "a.db")
    key = _device_public_key(device)
    with pytest.raises(provision.ProvisionError) as err:
        provision.rotate_key(device.port, tmp_path / "b.db")
    assert "--force" in str(err.value)
    assert _device_public_key(device) == key
    with pytest.raises(provision.NotProvisioned):
        device.wipe_data()
        provision.rotate_key(device.port, tmp_path / "a.db")


def test_identity_end_to_end_frames_verify_and_old_key_is_revoked_after_rotation(device, tmp_path):
    db = tmp_path / "receiver.db"
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
    assert (late.status, late.reason) == ("rejected", "revoked-device")
    # an outside check (cbor2 + cryptography, not our verifier): RFC 9052 Sig_structure
    with Registry(db) as reg:
        key = reg.get("SOTTO-42").active_key.public_key_object()
    protected, _unprotected, payload, signature = cbor2.loads(new_frame).value
    key.verify(signature, cbor2.dumps(["Signature1", protected, b"", payload]))


def test_provision_requires_flashed_firmware(make_vdev, tmp_path):
    dev = make_vdev("bare")
    with pytest.raises(provision.NotFlashed) as err:
        provision.provision(dev.port, REQUEST, tmp_path / "r.db")
    assert f"sotto flash --port {dev.port}" in str(err.value)
    with DeviceLink.open(dev.port) as link:
        assert link.hashes(["/data/identity.key"]) == {"/data/identity.key": None}
