# Configuration checked at boot; the device key; counters that never repeat.
import json

from fakehal import FakeHal, config
from faultstorage import FaultStorage
from fwtest import raises, tmpdir
from sotto import config as cfgmod
from sotto import ed25519, identity
from sotto.counters import Counters
from sotto.storage import Storage


def test_minimal_config_gets_every_default():
    cfg = cfgmod.validate(config())
    assert cfg["device_id"] == b"\x00\x00\x00\x00\x00\x00\x00\xa7"
    assert cfg["server"] == {"host": "receiver.sotto.test", "port": 443, "tls": True}
    assert cfg["trigger"]["alert"] == {"hold_ms": 3000}
    assert cfg["audio"]["clip_s"] == 30 and cfg["location_every_s"] == 15
    assert cfg["heartbeat_every_s"] == 900 and cfg["gnss_keep_on_s"] == 600
    assert cfg["battery"] == {"low_pct": 20, "critical_pct": 10, "reserve_pct": 5}


def test_nested_settings_merge_key_by_key():
    cfg = cfgmod.validate(config(audio={"clip_s": 10}, receiver="http://127.0.0.1:8080"))
    assert cfg["audio"] == {"clip_s": 10, "chunk_ms": 1000, "rate_hz": 8000}
    assert cfg["server"] == {"host": "127.0.0.1", "port": 8080, "tls": False}


def error(obj):
    return raises(cfgmod.ConfigError, cfgmod.validate, obj)


def test_missing_and_bad_fields_name_the_field():
    c = config()
    del c["apn"]
    e = error(c)
    assert (e.field, e.reason) == ("apn", "missing")
    assert "sotto provision" in str(e)
    assert error(config(device_id="xyz")).field == "device_id"
    assert error(config(receiver="ftp://x")).field == "receiver"
    assert error(config(receiver="https://host:99999")).reason == "range"
    e = error(config(audio={"clip_s": "30"}))
    assert (e.field, e.reason) == ("audio.clip_s", "type")
    e = error(config(location_every_s=1))
    assert (e.field, e.reason) == ("location_every_s", "range")
    e = error(config(heartbeat_evry_s=60))
    assert (e.field, e.reason) == ("heartbeat_evry_s", "unknown-field")
    assert error(config(sms_number="07700 900123")).field == "sms_number"
    assert error(config(battery={"low_pct": 5, "critical_pct": 10})).field == "battery"


def test_patterns_must_be_told_apart():
    e = error(config(trigger={"cancel": {"presses": 5, "window_ms": 2000}}))
    assert (e.field, e.reason) == ("trigger.duress", "range")
    e = error(config(trigger={"alert": {"hold_ms": 3000, "presses": 2}}))
    assert e.field == "trigger.alert"
    e = error(config(trigger={"alert": {"hold_ms": 100}}))
    assert e.field == "trigger.alert.hold_ms"


def test_load_from_flash_corrupt_or_missing():
    st = Storage(tmpdir("cfg"))
    assert raises(cfgmod.ConfigError, cfgmod.load, st).reason == "missing"
    st.write_atomic("config.json", b'{"device_id": "00')
    assert raises(cfgmod.ConfigError, cfgmod.load, st).reason == "corrupt"
    st.write_atomic("config.json", json.dumps(config()).encode())
    assert cfgmod.load(st)["apn"] == "internet"


def test_modem_settings_from_config():
    s = cfgmod.modem_settings(cfgmod.validate(config()))
    assert s["host"] == "receiver.sotto.test" and s["port"] == 443 and s["tls"]
    assert s["sms_number"] == "+447700900999" and s["sms_after_s"] == 30


def test_identity_made_from_the_rng_and_kept():
    st = Storage(tmpdir("id"))
    hal = FakeHal(st.root)
    assert raises(identity.IdentityError, identity.load, st).reason == "missing"
    pub = identity.create(st, hal.random_bytes)
    assert identity.public_key(st) == pub
    key = identity.load(st)
    sig = key.sign(b"hello")
    assert ed25519.verify(pub, b"hello", sig)
    assert raises(identity.IdentityError, identity.create, st, hal.random_bytes).reason == "exists"
    pub2 = identity.create(st, hal.random_bytes, force=True)
    assert pub2 != pub


def test_identity_errors_never_show_the_seed():
    st = Storage(tmpdir("id"))
    seed_bytes = bytes(range(1, 33))
    identity.create(st, lambda n: seed_bytes)
    raw = bytearray(st.read("identity.key"))
    raw[10] ^= 1
    st.write_atomic("identity.key", raw)
    e = raises(identity.IdentityError, identity.load, st)
    assert e.reason == "corrupt"
    text = str(e) + repr(e)
    assert seed_bytes.hex() not in text and "0102030405" not in text
    assert raises(identity.IdentityError, identity.create, st, lambda n: bytes(n), True).reason == "rng"


def test_counters_never_repeat_across_reboots_and_write_in_blocks():
    root = tmpdir("ctr")
    seen = set()
    for boot in range(5):
        c = Counters(Storage(root))
        c.load()
        for _ in range(100):
            s = c.next_seq()
            assert s not in seen
            seen.add(s)
        assert c.writes <= 3  # one block at boot, one or two while running
    sids = set()
    for boot in range(3):
        c = Counters(Storage(root))
        c.load()
        sids.add(c.next_sid())
    assert len(sids) == 3


def test_counters_survive_a_cut_while_reserving():
    root = tmpdir("ctr")
    c = Counters(Storage(root))
    c.load()
    used = [c.next_seq() for _ in range(70)]  # crosses a block
    for n in range(1, 4):
        st = FaultStorage(root, cut_at=n)
        c2 = Counters(st)
        try:
            c2.load(floor_seq=max(used))
            used.append(c2.next_seq())
        except Exception:  # noqa: BLE001 - the cut
            pass
        c3 = Counters(Storage(root))
        c3.load(floor_seq=0)
        assert c3.next_seq() > max(used)


def test_counters_step_over_a_damaged_slot():
    root = tmpdir("ctr")
    st = Storage(root)
    c = Counters(st)
    c.load()
    last = [c.next_seq() for _ in range(10)][-1]
    c.top_up()
    for name in ("ctr.a", "ctr.b"):
        raw = st.read(name)
        if raw is not None:
            st.write_atomic(name, b"\xff" + raw[1:])
            break
    c2 = Counters(Storage(root))
    c2.load()
    assert c2.next_seq() > last
