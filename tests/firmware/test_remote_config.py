# Remote configuration (the centre's `config` command), a corrupt or missing
# config.json (fallback to config.good or built-in defaults, reported
# config-invalid, the button still raises alerts), device health in status and
# heartbeat frames, and the pre-trigger audio ring. The configuration lives on
# the fake flash here, as on a device.
import json

from fakehal import FakeHal, config
from fwtest import raises, tmpdir
from sotto import VERSION, frames, identity
from sotto import config as cfgmod
from sotto.app import Device
from sotto.prering import PreRing
from sotto.storage import Storage


class Rig:
    def __init__(self, root=None, raw=None, **cfg):
        self.root = root or tmpdir("rcfg")
        self.hal = FakeHal(self.root)
        self.st = Storage(self.root)
        if self.st.read("identity.key") is None:
            identity.create(self.st, self.hal.random_bytes)
        self.pub = identity.public_key(self.st)
        if raw is None:
            raw = json.dumps(config(receiver="http://127.0.0.1:8080", **cfg)).encode()
        if raw is not False:
            self.st.write_atomic(cfgmod.CONFIG, raw)
        self.t = 0
        self.boot()

    def boot(self):
        self.dev = Device(self.hal)
        self.ok = self.dev.boot(self.t)

    def run(self, until_ms):
        while self.t < until_ms:
            self.hal.set_time(self.t)
            wait = self.dev.step(self.t)
            self.t += max(1, min(wait, 1000))

    def frames(self):
        out = []
        for seq, wire in self.dev.queue.batch(10000, 10 ** 8):
            out.append((seq,) + frames.verify(wire, self.pub)[1:])
        out.sort(key=lambda x: x[0])
        return [x[1] for x in out], [x[2] for x in out]

    def of(self, ftype):
        return [f for f in self.frames()[0] if f[frames.K_T] == ftype]


def _cmd(cid, v, settings):
    return {"id": cid, "op": "config", "v": v, "set": settings}


# -- the rules (sotto.config.change) -----------------------------------------------


def test_change_applies_dotted_settings_and_the_version():
    obj = config(receiver="http://127.0.0.1:8080")
    cfg, new = cfgmod.change(obj, {"heartbeat_every_s": 600, "trigger.cancel_window_s": 60,
                                   "trigger.alert": {"presses": 6, "window_ms": 2000}}, 3)
    assert cfg["heartbeat_every_s"] == 600 and cfg["trigger"]["cancel_window_s"] == 60
    assert cfg["trigger"]["alert"] == {"presses": 6, "window_ms": 2000} and cfg["version"] == 3
    assert new["version"] == 3 and "heartbeat_every_s" not in obj  # obj untouched


def test_change_refuses_locked_unknown_and_invalid_settings():
    obj = config(receiver="http://127.0.0.1:8080")
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, {"receiver": "https://evil.example"}, 2)
    assert e.reason == "locked" and e.field == "receiver"
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, {"centre_key": "00" * 32}, 2)
    assert e.reason == "locked"
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, {"heartbeat_evry_s": 600}, 2)
    assert e.reason == "unknown-field"
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, {"heartbeat_every_s": 5}, 2)
    assert e.reason == "range" and e.field == "heartbeat_every_s"
    same_as_duress = {"trigger.cancel": {"presses": 5, "window_ms": 2000}}
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, same_as_duress, 2)
    assert e.field == "trigger.duress"  # cannot be told apart from the cancel now
    e = raises(cfgmod.ConfigError, cfgmod.change, obj, {"heartbeat_every_s": 600}, 0)
    assert e.field == "version"
    assert len(e.short(64).encode()) <= 64
    long = cfgmod.ConfigError("x" * 80, "range", "y" * 80).short(64)
    assert len(long.encode()) == 64 and long.endswith("...")


# -- the command on the device --------------------------------------------------------


def test_config_command_applies_atomically_and_reports_the_version():
    r = Rig()
    assert r.ok and r.dev.cfg["version"] == 0
    r.dev.commands.run([_cmd(1, 5, {"heartbeat_every_s": 600, "feedback.ask_timeout_s": 30})], r.t)
    st = r.of(frames.STATUS)[-1]
    reply = r.of(frames.REPLY)[-1]
    assert st[frames.K_ST] == frames.ST_HEALTH and st[frames.K_CFGV] == 5 and frames.K_ERR not in st
    assert reply[frames.K_CMD] == 1 and reply[frames.K_RES] == frames.RES_DONE
    assert st[frames.K_SEQ] < reply[frames.K_SEQ]  # the version is reported before the reply
    on_flash = json.loads(r.st.read(cfgmod.CONFIG))
    assert on_flash["heartbeat_every_s"] == 600 and on_flash["version"] == 5
    assert r.st.read(cfgmod.GOOD) == r.st.read(cfgmod.CONFIG)
    assert r.dev.power.heartbeat_s == 600 and r.dev.commands.ask_timeout_ms == 30000
    r.t += 1000
    r.boot()  # and it stays after a restart
    assert r.dev.cfg["version"] == 5 and r.dev.cfg["heartbeat_every_s"] == 600
    assert r.of(frames.STATUS)[-1][frames.K_CFGV] == 5


def test_config_command_refused_keeps_the_old_config_and_says_why():
    r = Rig()
    before = r.st.read(cfgmod.CONFIG)
    r.dev.commands.run([_cmd(1, 2, {"trigger.cancel": {"presses": 5, "window_ms": 2000}})], r.t)
    st = r.of(frames.STATUS)[-1]
    assert r.of(frames.REPLY)[-1][frames.K_RES] == frames.RES_REFUSED
    assert st[frames.K_CFGV] == 0 and st[frames.K_ERR].startswith("trigger.duress: cannot be told apart")
    assert r.st.read(cfgmod.CONFIG) == before
    r.dev.commands.run([_cmd(2, 3, {"receiver": "https://elsewhere.example"})], r.t)
    assert r.of(frames.STATUS)[-1][frames.K_ERR].startswith("receiver: identity and trust")
    r.dev.commands.run([_cmd(3, 4, {"heartbeat_every_s": 600})], r.t)
    r.dev.commands.run([_cmd(4, 4, {"heartbeat_every_s": 700})], r.t)  # not above the applied one
    assert "not above" in r.of(frames.STATUS)[-1][frames.K_ERR]
    assert r.dev.cfg["heartbeat_every_s"] == 600
    r.dev.commands.run([{"id": 5, "op": "config", "v": 9}], r.t)  # no settings
    assert r.of(frames.REPLY)[-1][frames.K_RES] == frames.RES_INVALID


def test_config_command_is_refused_while_an_alert_is_live():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(6000)
    assert r.dev.session.live
    r.dev.commands.run([_cmd(1, 2, {"heartbeat_every_s": 600})], r.t)
    assert r.of(frames.STATUS)[-1][frames.K_ERR].startswith("busy")
    assert r.dev.cfg["heartbeat_every_s"] == 900


def test_a_new_trigger_pattern_works_at_once():
    r = Rig()
    r.dev.commands.run([_cmd(1, 2, {"trigger.alert": {"presses": 6, "window_ms": 3000}})], r.t)
    r.hal.press(1000, 3200)  # the old hold means nothing now
    r.run(6000)
    assert not r.of(frames.ALERT_START)
    for i in range(6):
        r.hal.press(7000 + 250 * i, 80)
    r.run(12000)
    starts = r.of(frames.ALERT_START)
    assert len(starts) == 1 and starts[0][frames.K_TRIG] == frames.TRIG_PRESSES


# -- corrupt or missing configuration ------------------------------------------------------


def test_boot_keeps_config_good_and_falls_back_to_it():
    r = Rig(heartbeat_every_s=600)
    assert r.ok and r.dev.config_invalid is None
    assert json.loads(r.st.read(cfgmod.GOOD))["heartbeat_every_s"] == 600
    r.st.write_atomic(cfgmod.CONFIG, b'{"device_id": "00000000000000a7", "receiv')  # torn
    r.t += 1000
    r.boot()
    assert r.ok and r.dev.cfg["heartbeat_every_s"] == 600  # config.good, whole
    st = r.of(frames.STATUS)[-1]
    assert st[frames.K_ST] == frames.ST_CONFIG_INVALID and st[frames.K_FLAGS] & frames.FLAG_CONFIG_INVALID
    assert st[frames.K_ERR] == "config.json: not valid JSON"
    r.hal.press(r.t + 100, 3200)  # the button is not dead
    r.run(r.t + 6000)
    assert len(r.of(frames.ALERT_START)) == 1
    r.run(r.t + 700000)
    hb = r.of(frames.HEARTBEAT)
    assert hb and hb[-1][frames.K_FLAGS] & frames.FLAG_CONFIG_INVALID
    r.dev.session.end(r.t, frames.WHY_DEVICE)
    r.dev.commands.run([_cmd(1, 2, {"heartbeat_every_s": 900})], r.t)  # the centre repairs it
    assert r.dev.config_invalid is None and json.loads(r.st.read(cfgmod.CONFIG))["version"] == 2


def test_no_config_good_salvages_identity_over_safe_defaults():
    # a config whose trigger patterns are wrong and no config.good: the identity,
    # receiver and trust anchors are kept, everything else is built in
    r = Rig(raw=json.dumps(config(receiver="http://127.0.0.1:8080", heartbeat_every_s=600,
                                  trigger={"alert": {"hold_ms": 1}})).encode())
    assert r.ok and r.dev.config_invalid.startswith("trigger.alert.hold_ms")
    assert r.dev.cfg["receiver"] == "http://127.0.0.1:8080" and r.dev.cfg["heartbeat_every_s"] == 900
    assert r.dev.cfg["trigger"]["alert"] == {"hold_ms": 3000}
    assert r.st.read(cfgmod.GOOD) is None  # a fallback is never kept as good
    r.hal.press(1000, 3200)
    r.run(6000)
    assert len(r.of(frames.ALERT_START)) == 1


def test_nothing_that_names_the_device_still_stops_with_the_reason():
    r = Rig(raw=b"\xff\x00garbage")
    assert not r.ok and r.dev.error.reason == "corrupt"
    r = Rig(raw=False)
    assert not r.ok and r.dev.error.reason == "missing"


# -- health ---------------------------------------------------------------------------------


def test_status_and_heartbeat_carry_health_without_location():
    r = Rig()
    r.t += 1000
    r.boot()
    st = r.of(frames.STATUS)[-1]
    assert st[frames.K_FW] == VERSION and st[frames.K_CFGV] == 0 and st[frames.K_BOOTS] == 2
    # one fault: this test config has no centre key (network refused, counted)
    assert st[frames.K_RST] == frames.RST_UNKNOWN and st[frames.K_FAULTS] == 1
    assert st[frames.K_QD] >= 1 and st[frames.K_CSQ] == 99 and frames.K_LOC not in st
    r.run(r.t + 950000)
    hb = r.of(frames.HEARTBEAT)[-1]
    assert hb[frames.K_FW] == VERSION and hb[frames.K_QD] >= 2 and frames.K_LOC not in hb
    assert frames.K_BOOTS not in hb and frames.K_RST not in hb
    r.t += 1000
    r.boot()  # boots since provisioning survive a stable run (the boot-loop count resets)
    assert r.of(frames.STATUS)[-1][frames.K_BOOTS] == 3 and not r.dev.minimal


def _with(d, *pairs):
    out = dict(d)
    for i in range(0, len(pairs), 2):
        out[pairs[i]] = pairs[i + 1]
    return out


def test_frame_schema_takes_the_health_keys_and_refuses_them_elsewhere():
    base = {frames.K_V: 1, frames.K_SEQ: 1, frames.K_TIME: 0, frames.K_UP: 0, frames.K_BATT: 50}
    f = _with(base, frames.K_T, frames.STATUS, frames.K_ST, frames.ST_HEALTH, frames.K_FW, "0.1.0",
              frames.K_CSQ, 31, frames.K_ERR, "x" * 64)
    frames.check_fields(f)
    e = raises(frames.FrameError, frames.check_fields, _with(f, frames.K_ERR, "x" * 65))
    assert e.code == "bad-field"
    e = raises(frames.FrameError, frames.check_fields, _with(f, frames.K_CSQ, 100))
    assert e.code == "bad-field"
    hb = _with(base, frames.K_T, frames.HEARTBEAT, frames.K_HB, 900, frames.K_ERR, "no")
    e = raises(frames.FrameError, frames.check_fields, hb)
    assert e.code == "bad-field"  # err is a status key only


# -- pre-trigger audio --------------------------------------------------------------------------


def test_prering_keeps_the_newest_chunks_in_order():
    ring = PreRing(3, 1000, 4)
    assert ring.slots == 3 and len(ring._buf) == 12
    for i in range(5):
        ring.put((bytes([i]) * 4, 8000, i, i))
    assert ring.count == 3 and ring.samples == 24000
    assert [bytes(ring.get(k)[0]) for k in range(3)] == [b"\x02" * 4, b"\x03" * 4, b"\x04" * 4]
    ring.clear()
    assert ring.count == 0 and ring.samples == 0


def test_prering_put_allocates_nothing():
    # it runs for every microphone chunk while the device is idle: under heap_lock
    # any allocation is a MemoryError in the VM (a no-op in the CPython shim)
    import micropython

    ring = PreRing(1, 250, 8)
    src = bytearray(b"\x01" * 8)
    chunk = (memoryview(src)[:8], 2000, 3, 4)
    micropython.heap_lock()
    try:
        for _ in range(10):
            ring.put(chunk)
    finally:
        micropython.heap_unlock()
    assert ring.count == 4 and ring.samples == 8000 and bytes(ring.get(3)[0]) == bytes(src)


def test_pre_trigger_off_by_default_keeps_the_microphone_off():
    r = Rig()
    r.run(5000)
    assert r.dev.prering is None and not r.hal.mic.on


def test_pre_trigger_chunks_go_first_flagged_then_the_clip_carries_on():
    r = Rig(audio={"pre_trigger": True, "pre_s": 3, "clip_s": 2, "max_clip_s": 120})
    r.run(8000)  # idle: the ring fills (RAM only: nothing framed, nothing on flash)
    assert r.hal.mic.on and r.dev.prering.count == 3 and not r.of(frames.AUDIO)
    r.hal.press(8000, 3200)
    r.run(16000)
    fs, audio = r.frames()
    chunks = [(f, a) for f, a in zip(fs, audio) if f[frames.K_T] == frames.AUDIO]
    pre = [f for f, a in chunks if f.get(frames.K_FLAGS, 0) & frames.FLAG_PRE_TRIGGER]
    live = [f for f, a in chunks if not f.get(frames.K_FLAGS, 0) & frames.FLAG_PRE_TRIGGER]
    assert len(pre) == 3 and [f[frames.K_OFF] for f in pre] == [0, 8000, 16000]
    assert chunks[0][0] is pre[0] and chunks[2][0] is pre[2]  # first
    assert live and live[0][frames.K_OFF] == 24000  # the same stream, carried on
    assert sum(f[frames.K_NS] for f in live) == 16000  # the clip itself is still clip_s
    r.run(30000)
    assert not r.hal.mic.on  # the clip is done; the alert is still live
    r.dev.session.end(r.t, frames.WHY_DEVICE)
    r.run(31000)
    assert r.hal.mic.on and r.dev.prering.count <= 1  # a fresh ring once the alert is over


def _flash_bytes(path):
    # every file under the fake flash, concatenated (os only: runs in the VM too)
    import os

    out = b""
    for name in sorted(os.listdir(path)):
        full = path + "/" + name
        if os.stat(full)[0] & 0x4000:
            out += _flash_bytes(full)
        else:
            with open(full, "rb") as f:
                out += f.read()
    return out


def test_pre_trigger_audio_stays_in_ram_never_on_flash():
    r = Rig(audio={"pre_trigger": True, "pre_s": 3})
    r.run(8000)
    assert r.dev.prering.count == 3
    on_flash = _flash_bytes(r.root)
    for k in range(3):
        chunk = bytes(r.dev.prering.get(k)[0])
        assert len(chunk) > 100 and len(set(chunk)) > 4  # real audio, not silence
        assert chunk[:64] not in on_flash and chunk[-64:] not in on_flash


def test_pre_trigger_is_never_sent_without_a_trigger():
    r = Rig(audio={"pre_trigger": True, "pre_s": 3})
    r.run(60000)
    assert not r.of(frames.AUDIO)
    assert frames.FLAG_PRE_TRIGGER == 16 and frames.FLAG_CONFIG_INVALID == 32


def test_a_power_cut_while_a_change_is_written_leaves_a_config_that_loads():
    # every point of the write (tmp, rename of config.json, config.good): at the
    # next boot the device runs the old version or the new one, never nothing
    from faultstorage import FaultStorage

    for cut in range(1, 5):
        r = Rig()
        fs = FaultStorage(r.root, cut_at=cut)
        got = raises(OSError, cfgmod.apply_change, fs, r.dev._cfg_obj, {"heartbeat_every_s": 600}, 2, 0)
        assert got is not None
        r.t += 1000
        r.boot()  # power back: a fresh Storage over the same flash
        assert r.ok and r.dev.cfg["heartbeat_every_s"] in (900, 600)
        assert r.dev.config_invalid is None  # config.json itself is whole, old or new


def test_a_flash_that_refuses_the_change_says_so():
    r = Rig()
    real = r.dev.storage.write_atomic

    def refuse(name, data):
        if name.startswith("config"):
            raise OSError(28, "no space")
        return real(name, data)

    r.dev.storage.write_atomic = refuse
    r.dev.commands.run([_cmd(1, 2, {"heartbeat_every_s": 600})], r.t)
    r.dev.storage.write_atomic = real
    assert r.of(frames.STATUS)[-1][frames.K_ERR].startswith("flash:")
    assert r.of(frames.REPLY)[-1][frames.K_RES] == frames.RES_REFUSED and r.dev.cfg_version == 0


def test_the_second_receiver_release_key_and_repl_lock_are_provision_only():
    obj = config(receiver="http://127.0.0.1:8080")
    for name, value in (("secondary_receiver", "https://evil.example"), ("secondary_centre_key", "00" * 32),
                        ("secondary_ca_cert", "x.pem"), ("release_key", "00" * 32), ("repl_lock", False)):
        e = raises(cfgmod.ConfigError, cfgmod.change, obj, {name: value}, 2)
        assert e.reason == "locked" and e.field == name
