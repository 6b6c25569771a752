# The production REPL lock (config repl_lock, sotto.hal.lock_repl from boot.py):
# Ctrl-C stops nothing once locked; an unprovisioned or unreadable config leaves
# the REPL reachable. Runs under CPython (the shim records the interrupt
# character) and in the MicroPython VM (the built-in micropython.kbd_intr).
import micropython
from fwtest import raises, tmpdir
from sotto import config
from sotto.hal import lock_repl


def _write(root, text):
    with open(root + "/config.json", "w") as f:
        f.write(text)


def _recorded():
    return getattr(micropython, "kbd_intr_char", None)  # None in the VM: not readable there


def test_a_locked_config_stops_ctrl_c():
    root = tmpdir("repl")
    _write(root, '{"device_id": "534f54544f2d3432", "repl_lock": true}')
    try:
        assert lock_repl(root) is True
        assert _recorded() in (None, -1)
    finally:
        micropython.kbd_intr(3)  # the test runner's own Ctrl-C back


def test_unlocked_missing_or_broken_configs_leave_the_repl():
    root = tmpdir("repl2")
    assert lock_repl(root) is False  # not provisioned yet: no config.json
    for text in ('{"repl_lock": false}', '{"repl_lock": "yes"}', '{"repl_lock": 1}', "{not json", "[1, 2]"):
        _write(root, text)
        assert lock_repl(root) is False
    assert _recorded() in (None, 3)


def test_the_configuration_checks_the_setting():
    base = {"device_id": "534f54544f2d3432", "receiver": "https://alerts.example.org", "apn": "internet"}
    assert config.validate(dict(base))["repl_lock"] is False  # the default: unlocked
    assert config.validate(dict(base, repl_lock=True))["repl_lock"] is True
    e = raises(config.ConfigError, config.validate, dict(base, repl_lock="true"))
    assert e.field == "repl_lock" and e.reason == "type"


def test_provision_writes_the_lock_only_when_asked():
    try:
        from host_tools import provision  # CPython only: the host tool
    except ImportError:
        return
    req = provision.ProvisionRequest("SOTTO-42", server="https://alerts.example.org", apn="internet")
    locked = provision.ProvisionRequest("SOTTO-42", server="https://alerts.example.org", apn="internet",
                                        repl_lock=True)
    kid, centre = b"SOTTO-42", bytes(32)
    assert "repl_lock" not in provision._config_for(req, kid, centre, b"ca")
    cfg = provision._config_for(locked, kid, centre, b"ca")
    assert cfg["repl_lock"] is True
    assert config.validate(dict(cfg, centre_key=None))["repl_lock"] is True
