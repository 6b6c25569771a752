# The configuration checked at boot: defaults for everything optional, a
# ConfigError naming the field, the reason and what to do for anything wrong.
import json

from fakehal import config
from fwtest import raises, tmpdir
from sotto import config as cfgmod
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
    assert cfg["audio"] == {"clip_s": 10, "chunk_ms": 1000, "rate_hz": 8000, "max_clip_s": 120,
                            "pre_trigger": False, "pre_s": 10}
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


def test_defaults_are_never_shared_with_a_config():
    cfg = cfgmod.validate(config())
    cfg["trigger"]["alert"]["hold_ms"] = 100
    cfg["audio"]["clip_s"] = 0
    again = cfgmod.validate(config())
    assert again["trigger"]["alert"] == {"hold_ms": 3000} and again["audio"]["clip_s"] == 30
    assert cfgmod.DEFAULTS["trigger"]["alert"] == {"hold_ms": 3000}


def test_every_documented_default():
    cfg = cfgmod.validate(config(sms_number=None))
    assert cfg["officer"] is None and cfg["board"] == "sotto-ref-s3" and cfg["ca_cert"] is None
    assert cfg["sms_number"] is None
    assert cfg["trigger"] == {"alert": {"hold_ms": 3000}, "cancel": {"presses": 3, "window_ms": 2000},
                              "duress": {"presses": 5, "window_ms": 2500}, "cancel_window_s": 120,
                              "debounce_ms": 20, "haptic": True, "yes": {"presses": 2, "window_ms": 1500},
                              "no": {"presses": 4, "window_ms": 2500}}
    assert cfg["audio"] == {"clip_s": 30, "chunk_ms": 1000, "rate_hz": 8000, "max_clip_s": 120,
                            "pre_trigger": False, "pre_s": 10}
    assert cfg["version"] == 0
    assert cfg["centre_key"] is None and cfg["insecure_tls"] is False
    assert cfg["feedback"] == {"enabled": True, "received": [400], "listening": [120, 150, 120, 150, 120],
                               "not_through": [600, 250, 600], "not_through_s": 20, "ask_timeout_s": 60,
                               "questions": [[100, 150, 100, 150, 500], [500, 150, 100, 150, 100]]}
    assert (cfg["location_every_s"], cfg["gnss_keep_on_s"], cfg["alert_max_s"]) == (15, 600, 3600)
    assert cfg["delivery"] == {"sms_after_s": 30, "sms_every_s": 120, "secondary_after_s": 60, "probe_s": 300}
    assert cfg["secondary_receiver"] is None and cfg["secondary"] is None
    assert cfg["queue_max_bytes"] == 262144


def test_a_trigger_pattern_is_replaced_whole():
    cfg = cfgmod.validate(config(trigger={"alert": {"presses": 6, "window_ms": 3000}, "haptic": False}))
    assert cfg["trigger"]["alert"] == {"presses": 6, "window_ms": 3000}  # no hold_ms merged in
    assert cfg["trigger"]["cancel"] == {"presses": 3, "window_ms": 2000} and cfg["trigger"]["haptic"] is False
    e = error(config(trigger={"alert": {"hold_ms": 3000, "hold": 1}}))
    assert (e.field, e.reason) == ("trigger.alert.hold", "unknown-field")
    e = error(config(trigger={"haptic": 1}))
    assert (e.field, e.reason) == ("trigger.haptic", "type")
    e = error(config(trigger={"cancel": "3 presses"}))
    assert (e.field, e.reason) == ("trigger.cancel", "type")


def test_device_id_is_exactly_16_hex_digits():
    assert cfgmod.validate(config(device_id="00000000000000A7"))["device_id"] == bytes(7) + b"\xa7"
    for bad in ("0000 0000 000000", "00000000000000a", "00000000000000a7a", "0x000000000000a7", 167):
        e = error(config(device_id=bad))
        assert (e.field, e.reason) == ("device_id", "type"), bad
        assert "16 hex digits" in str(e)


def test_receiver_urls():
    ok = {"https://alerts.example.org": ("alerts.example.org", 443, True),
          "https://alerts.example.org/": ("alerts.example.org", 443, True),
          "https://10.0.0.7:8443": ("10.0.0.7", 8443, True),
          "http://127.0.0.1:8080": ("127.0.0.1", 8080, False)}
    for url, (host, port, tls) in ok.items():
        assert cfgmod.validate(config(receiver=url))["server"] == {"host": host, "port": port, "tls": tls}
    bad = {"alerts.example.org": "type", "https://": "missing", "https://host:0": "range",
           "https://host:https": "range", "https://host/v1/frames": "range",
           'https://evil"host': "range", "https://a b": "range", 42: "type"}
    for url, reason in bad.items():
        e = error(config(receiver=url))
        assert (e.field, e.reason) == ("receiver", reason), url


def test_text_fields_that_reach_the_modem_are_checked():
    e = error(config(apn='internet","IP'))  # would break out of the AT command's quotes
    assert (e.field, e.reason) == ("apn", "range")
    assert error(config(apn=7)).reason == "type"
    assert error(config(apn="")).reason == "missing"
    assert cfgmod.validate(config(apn="payandgo.o2.co.uk"))["apn"] == "payandgo.o2.co.uk"
    for bad in ("../identity.key", "/data/ca.pem", ".hidden", ""):
        e = error(config(ca_cert=bad))
        assert (e.field, e.reason) == ("ca_cert", "range"), bad
    assert cfgmod.validate(config(ca_cert="ca.pem"))["ca_cert"] == "ca.pem"
    assert error(config(officer=12)).field == "officer"
    assert cfgmod.validate(config(officer="PC 4471 Jones"))["officer"] == "PC 4471 Jones"


def test_whole_numbers_only_and_in_range():
    assert error(config(queue_max_bytes=True)).reason == "type"  # JSON true is not 1
    assert error(config(location_every_s=15.0)).reason == "type"
    e = error(config(queue_max_bytes=1024))
    assert (e.field, e.reason) == ("queue_max_bytes", "range") and "1024" in str(e)
    e = error(config(audio={"rate_hz": 16000}))
    assert (e.field, e.reason) == ("audio.rate_hz", "range")
    e = error(config(battery=None))
    assert (e.field, e.reason) == ("battery", "type")
    e = error(config(battery={"low_pct": 30, "critical_pct": 10, "reserve_pct": 10}))
    assert (e.field, e.reason) == ("battery", "range")


def test_not_an_object_and_unreadable_bytes_are_clear_errors():
    assert (error([1, 2]).reason, error("x").reason) == ("type", "type")
    st = Storage(tmpdir("cfg"))
    for raw in (b"\xff\xfe\x00garbage", b"", b"[1, 2]", b'{"apn": "internet"'):
        st.write_atomic("config.json", raw)
        e = raises(cfgmod.ConfigError, cfgmod.load, st)
        assert e.reason in ("corrupt", "type") and isinstance(e, ValueError)
        assert "sotto provision" in str(e)
    st.write_atomic("config.json", b"{}")
    e = raises(cfgmod.ConfigError, cfgmod.load, st)
    assert (e.field, e.reason) == ("device_id", "missing")


CENTRE = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"  # RFC 8032 TEST 1's public key


def test_trust_anchors_are_checked():
    cfg = cfgmod.validate(config(centre_key=CENTRE.upper(), ca_cert="ca.pem"))
    assert cfg["centre_key"] == bytes.fromhex(CENTRE) and cfg["insecure_tls"] is False
    for bad, reason in ((CENTRE[:63], "type"), ("zz" * 32, "type"), (12, "type"),
                        ("02" + "00" * 31, "range")):  # 64 hex digits, but not a point
        e = error(config(centre_key=bad))
        assert (e.field, e.reason) == ("centre_key", reason), bad
        assert "centre_key" in str(e) and "sotto provision" in str(e)
    e = error(config(insecure_tls="yes"))
    assert (e.field, e.reason) == ("insecure_tls", "type")
    e = error(config(insecure_tls=True, ca_cert="ca.pem"))
    assert (e.field, e.reason) == ("insecure_tls", "range")


def test_network_refusals_name_the_field_and_the_reason():
    st = Storage(tmpdir("cfg"))
    st.write_atomic("ca.pem", b"-----BEGIN CERTIFICATE-----\n")

    def refusal(**over):
        return cfgmod.network_refusal(cfgmod.validate(config(**over)), st)

    assert refusal(centre_key=CENTRE, ca_cert="ca.pem") is None
    assert refusal(centre_key=CENTRE, insecure_tls=True) is None  # bench work: frames flagged
    for url in ("http://127.0.0.1:8080", "http://127.9.0.1:80", "http://localhost:8080", "http://[::1]:8080"):
        assert refusal(centre_key=CENTRE, receiver=url) is None, url
    cases = [
        (dict(ca_cert="ca.pem"), ("centre_key", "missing")),
        (dict(centre_key=CENTRE), ("ca_cert", "missing")),
        (dict(centre_key=CENTRE, ca_cert="other.pem"), ("ca_cert", "missing")),
        (dict(centre_key=CENTRE, receiver="http://alerts.example.org:8080"), ("receiver", "insecure")),
        (dict(centre_key=CENTRE, receiver="http://10.0.0.7:80"), ("receiver", "insecure")),
        (dict(centre_key=CENTRE, receiver="http://127.0.0.1.example.org:80"), ("receiver", "insecure")),
        (dict(receiver="http://127.0.0.1:8080"), ("centre_key", "missing")),  # loopback needs the key too
    ]
    for over, want in cases:
        e = refusal(**over)
        assert isinstance(e, cfgmod.ConfigError) and (e.field, e.reason) == want, over
        # `sotto provision` (strict) refuses the same configuration outright
        e2 = raises(cfgmod.ConfigError, cfgmod.validate, config(**over), st, True)
        assert (e2.field, e2.reason) == want
    st.write_atomic("big.pem", bytes(cfgmod.CA_MAX_BYTES + 1))
    e = refusal(centre_key=CENTRE, ca_cert="big.pem")
    assert (e.field, e.reason) == ("ca_cert", "range")
    # at boot a refusal is no ConfigError: the device runs, queues alerts, sends SMS
    st.write_atomic("config.json", json.dumps(config(ca_cert="ca.pem")).encode())
    assert cfgmod.load(st)["centre_key"] is None


def test_answer_patterns_and_haptic_patterns_are_told_apart():
    e = error(config(trigger={"yes": {"presses": 3, "window_ms": 1500}}))
    assert (e.field, e.reason) == ("trigger.yes", "range") and "trigger.cancel" in str(e)
    e = error(config(trigger={"no": {"presses": 5, "window_ms": 1500}}))
    assert (e.field, e.reason) == ("trigger.no", "range") and "trigger.duress" in str(e)
    cases = [
        ({"received": [70, 130, 70]}, "feedback.received", "range"),  # the pattern-accepted pulse
        ({"listening": [400]}, "feedback.listening", "range"),  # feels like received
        ({"questions": [[100], [900]]}, "feedback.questions.2", "range"),  # two single pulses
        ({"received": [400, 100]}, "feedback.received", "type"),  # must end with a pulse
        ({"received": [10]}, "feedback.received", "range"),
        ({"received": [400, 20, 400]}, "feedback.received", "range"),  # a gap nobody feels
        ({"received": [1500, 1500, 1500, 1500, 1500]}, "feedback.received", "range"),  # too long
        ({"received": "buzz"}, "feedback.received", "type"),
        ({"questions": []}, "feedback.questions", "type"),
        ({"enabled": 1}, "feedback.enabled", "type"),
        ({"not_through_s": 1}, "feedback.not_through_s", "range"),
        ({"ask_timeout_s": 5}, "feedback.ask_timeout_s", "range"),
        ({"listen": [100]}, "feedback.listen", "unknown-field"),
    ]
    for fb, field, reason in cases:
        e = error(config(feedback=fb))
        assert (e.field, e.reason) == (field, reason), fb
    cfg = cfgmod.validate(config(feedback={"received": [300, 200, 100], "questions": [[800]]}))
    assert cfg["feedback"]["received"] == [300, 200, 100] and cfg["feedback"]["not_through_s"] == 20
    assert cfgmod.haptic_shape([70, 130, 70]) == cfgmod.CONFIRM_SHAPE
    e = error(config(audio={"clip_s": 60, "max_clip_s": 30}))
    assert (e.field, e.reason) == ("audio.max_clip_s", "range")
