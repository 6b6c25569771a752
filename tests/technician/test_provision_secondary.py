"""`sotto provision --secondary-server URL --secondary-ca-cert PEM --secondary-centre-key-pub KEY`:
the second path's trust anchors written to the flashed virtual device and
accepted by the firmware's own rules there (config.load, secondary_refusal)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from centre_support import centre_db
from test_provision import REQUEST, ca_file  # noqa: F401 - fixtures

from host_tools import provision
from host_tools.receiver import centre_key
from simulator.pki import make_pki

KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"   # RFC 8032 test 1's public key


@pytest.fixture(scope="module")
def second_ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki2")
    pem = d / "centre-b-ca.pem"
    pem.write_text(make_pki(str(d)).ca_pem)
    return pem


def test_the_second_path_is_written_and_the_firmware_takes_it(device, tmp_path, REQUEST,  # noqa: F811
                                                             second_ca):
    db = centre_db(tmp_path / "receiver.db")
    other = centre_key.create(tmp_path / "centre-b.key")    # the other centre's key, on its machine
    pub = tmp_path / "centre-b.pub"
    pub.write_text(centre_key.public_pem(other.public_key))
    request = provision.ProvisionRequest(
        **{**REQUEST.__dict__, "secondary_server": "https://alerts-b.example.org:8443",
           "secondary_ca_cert": second_ca, "secondary_centre_key_pub": str(pub)})
    change = provision.provision(device.port, request, db)
    cfg = json.loads((device.flash / "data" / "config.json").read_bytes())
    assert cfg["secondary_receiver"] == "https://alerts-b.example.org:8443"
    assert cfg["secondary_ca_cert"] == provision.CA2_FILE and cfg["secondary_centre_key"] == other.public_hex
    assert change.config == cfg
    assert (device.flash / "data" / provision.CA2_FILE).read_bytes() == second_ca.read_bytes()
    out = device.mpremote("exec", "from sotto import config; from sotto.storage import Storage; "
                                  "st = Storage('/data'); c = config.load(st); "
                                  "print(c['secondary']['host'], c['secondary']['port'], "
                                  "config.secondary_refusal(c, st))")
    assert out.stdout.split() == ["alerts-b.example.org", "8443", "None"]


@pytest.mark.parametrize(("extra", "message"), [
    ({"secondary_ca_cert": "x.pem"}, "goes with --secondary-server"),
    ({"secondary_centre_key_pub": "00" * 32}, "goes with --secondary-server"),
    ({"secondary_server": "https://b.example.org"}, "--secondary-centre-key-pub"),
    ({"secondary_server": "https://b.example.org", "secondary_centre_key_pub": "zz"},
     "--secondary-centre-key-pub"),
    ({"secondary_server": "http://b.example.org", "secondary_centre_key_pub": KEY},
     "only to a loopback address"),
    ({"secondary_server": "https://b.example.org", "secondary_centre_key_pub": KEY}, "--secondary-ca-cert"),
])
def test_bad_second_paths_are_refused_before_the_device_is_touched(device, tmp_path, REQUEST,  # noqa: F811
                                                                  extra, message):
    request = provision.ProvisionRequest(**{**REQUEST.__dict__, **extra})
    with pytest.raises((provision.UsageError, provision.ProvisionError)) as err:
        provision.provision(device.port, request, centre_db(tmp_path / "r.db"))
    assert message in str(err.value)
    assert not (device.flash / "data" / "config.json").exists()


def test_the_help_names_the_second_path() -> None:
    out = subprocess.run([sys.executable, "-m", "sotto_cli", "provision", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for option in ("--secondary-server", "--secondary-ca-cert", "--secondary-centre-key-pub", "EN 50136"):
        assert option in out
