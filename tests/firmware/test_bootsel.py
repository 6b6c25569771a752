# The boot selector and staging (sotto.bootsel, sotto.otafetch): the switch,
# the health check, rollback, and a power cut at every flash operation of
# staging and of the switch leaving the old or the new application bootable.
import hashlib

import otarig
from faultstorage import FaultStorage
from fwtest import tmpdir
from sotto import bootsel, frames
from sotto.storage import Storage


def _device():
    root = tmpdir("ota")
    rs = Storage(root)
    otarig.put_base(rs, otarig.base_files())
    return root, rs, Storage(root + "/data")


def _slot_whole(rs, sel, files_by_slot):
    files = files_by_slot[sel["run"]]
    prefix = bootsel.slot_path(sel["run"])
    for p, data in files.items():
        got = rs.read((prefix + p) if prefix else p[1:])
        if got != data:
            return False
    return True


def _stage(data, rs):
    new = otarig.new_files()
    c = otarig.Centre(new, otarig.manifest(new))
    f = otarig.fetcher(data, rs)
    f.assign("0.2.0")
    otarig.run(f, c)
    return f, c, new


def test_staged_switch_health_good():
    root, rs, data = _device()
    f, c, new = _stage(data, rs)
    assert f.pending() == "0.2.0" and f.restart
    # only the changed and new files travelled (plus the manifest)
    assert f.local_bytes == 700 + 2
    assert c.air == len(c.man) + 1500 + 300
    assert bootsel.read(data)["run"] == ""  # nothing switched before the boot
    sel = bootsel.switch(data)
    assert sel["run"] == "a" and sel["state"] == bootsel.TRIAL and sel["ver"] == "0.2.0"
    assert not data.exists(bootsel.PEND)
    assert _slot_whole(rs, sel, {"a": new})
    h = bootsel.Health(data, sel, 600, 0)
    assert not h.step(1000, [], False)
    assert h.step(2000, [], True) and not h.failed
    sel = bootsel.switch(data)
    assert sel["state"] == bootsel.GOOD and sel["run"] == "a" and sel["res"] == frames.UPD_APPLIED


def test_failed_health_rolls_back_and_is_not_retried():
    root, rs, data = _device()
    _stage(data, rs)
    sel = bootsel.switch(data)
    h = bootsel.Health(data, sel, 600, 0)
    assert h.step(601000, [], False) and h.failed
    back = bootsel.switch(data)
    assert back["run"] == "" and back["res"] == frames.UPD_ROLLED_BACK and back["bad"] == "0.2.0"
    assert "no authenticated answer in 600 s" in back["why"]
    f = otarig.fetcher(data, rs, sel=back)
    f.assign("0.2.0")
    assert f.phase == 0  # the rolled-back release is not fetched again


def test_fault_on_trial_and_restarts_on_trial():
    root, rs, data = _device()
    _stage(data, rs)
    sel = bootsel.switch(data)
    h = bootsel.Health(data, sel, 600, 0)
    assert h.step(10, ["session"], True) and h.failed
    assert bootsel.switch(data)["why"] == "fault in session"
    # a release that keeps resetting before its check passes
    root, rs, data = _device()
    _stage(data, rs)
    for _ in range(bootsel.TRIAL_BOOTS):
        sel = bootsel.switch(data)
        assert sel["run"] == "a"
    back = bootsel.switch(data)
    assert back["run"] == "" and "restarted 3 times" in back["why"]


def test_refusals():
    root, rs, data = _device()
    new = otarig.new_files()
    for man, running, code in [
            (otarig.manifest(new, seed=otarig.OTHER_SEED), "0.1.0", frames.UPD_BAD_SIGNATURE),
            (otarig.manifest(new, version="0.0.9"), "0.1.0", frames.UPD_BAD_VERSION),
            (otarig.manifest(new, min_version="0.1.5"), "0.1.0", frames.UPD_BAD_VERSION),
            (otarig.manifest(new, boards=["other"]), "0.1.0", frames.UPD_BAD_BOARD)]:
        rep = []
        v = "0.0.9" if b"0.0.9" in man else "0.2.0"
        f = otarig.fetcher(data, rs, running=running, reports=rep)
        f.assign(v)
        otarig.run(f, otarig.Centre(new, man, v))
        assert rep and rep[-1][0] == code, (rep, code)
        assert not data.exists(bootsel.PEND)
    # allowed downgrade goes through
    f = otarig.fetcher(data, rs)
    f.assign("0.0.9")
    otarig.run(f, otarig.Centre(new, otarig.manifest(new, version="0.0.9", down=True), "0.0.9"))
    assert f.pending() == "0.0.9"


def test_tampered_file_refused():
    root, rs, data = _device()
    new = otarig.new_files()
    man = otarig.manifest(new)
    evil = dict(new)
    evil["/sotto/c.mpy"] = b"X" * 300
    rep = []
    f = otarig.fetcher(data, rs, reports=rep)
    f.assign("0.2.0")
    otarig.run(f, otarig.Centre(evil, man))
    assert rep[-1][0] == frames.UPD_BAD_FILE and "c.mpy" in rep[-1][1]
    assert f.pending() is None and not data.exists(bootsel.PEND)
    assert bootsel.switch(data)["run"] == ""


def test_paused_while_busy_and_resumed_after_drops():
    root, rs, data = _device()
    new = otarig.new_files()
    c = otarig.Centre(new, otarig.manifest(new))
    busy = [True]
    f = otarig.fetcher(data, rs, busy=lambda: busy[0])
    f.assign("0.2.0")
    otarig.run(f, c)
    assert c.requests == 0  # nothing while an alert is live
    busy[0] = False
    otarig.run(f, c, drop_every=3)  # coverage comes and goes
    assert f.pending() == "0.2.0"


def test_key_rotation_only_when_good():
    root, rs, data = _device()
    new = otarig.new_files()
    rk = otarig.release_key(otarig.OTHER_SEED)
    c = otarig.Centre(new, otarig.manifest(new, rk=rk))
    f = otarig.fetcher(data, rs)
    f.assign("0.2.0")
    otarig.run(f, c)
    sel = bootsel.switch(data)
    assert not data.exists(bootsel.RKEY)
    bootsel.Health(data, sel, 600, 0).step(5, [], True)
    assert data.read(bootsel.RKEY) == rk


def _snapshot(root):
    # which application the next boot would run, and whether it is whole
    data = Storage(root + "/data")
    rs = Storage(root)
    sel = bootsel.switch(data)
    return sel, _slot_whole(rs, sel, {"": otarig.base_files(), "a": otarig.new_files()})


class Twin(FaultStorage):
    """A second root on the same flash: one operation count, one power supply."""

    def __init__(self, root, main):
        self.main = main
        FaultStorage.__init__(self, root)

    def _op(self):
        return self.main._op()

    @property
    def dead(self):
        return self.main.dead

    @dead.setter
    def dead(self, v):
        pass


def test_power_cut_at_every_operation_of_staging_and_switch():
    new = otarig.new_files()
    man = otarig.manifest(new)
    runs = 0
    n = 1
    while True:
        cut_any = False
        for after in (False, True):
            root = tmpdir("cut")
            otarig.put_base(Storage(root), otarig.base_files())
            data = FaultStorage(root + "/data", cut_at=n, count_removes=True, cut_after=after)
            rs = Twin(root, data)
            try:
                f = otarig.fetcher(data, rs)
                f.assign("0.2.0")
                otarig.run(f, otarig.Centre(new, man))
                sel = bootsel.switch(data)
                if sel["state"] == bootsel.TRIAL:
                    bootsel.Health(data, sel, 600, 0).step(1, [], True)
            except OSError:
                pass
            if data.dead:
                cut_any = True
            runs += 1
            # power back: whatever the next boot selects is whole
            sel, whole = _snapshot(root)
            assert whole, (n, after, sel)
            # and staging resumes to the end: the new release runs in the end
            data2 = Storage(root + "/data")
            if sel["run"] == "":
                f = otarig.fetcher(data2, Storage(root), sel=sel)
                f.resume()
                f.assign("0.2.0")
                otarig.run(f, otarig.Centre(new, man))
                sel = bootsel.switch(data2)
            assert sel["run"] == "a" and sel["ver"] == "0.2.0", (n, after, sel)
            assert _slot_whole(Storage(root), sel, {"a": new})
        if not cut_any:
            break
        n += 1
    assert runs > 20, runs


def test_digest_of_running_copy_used_only_when_equal():
    root, rs, data = _device()
    rs.write_atomic("sotto/a.mpy", b"A" * 699 + b"Z")  # the running copy differs: it must travel
    new = otarig.new_files()
    c = otarig.Centre(new, otarig.manifest(new))
    f = otarig.fetcher(data, rs)
    f.assign("0.2.0")
    otarig.run(f, c)
    assert c.air == len(c.man) + 700 + 1500 + 300
    assert rs.read("app/a/sotto/a.mpy") == new["/sotto/a.mpy"]
    got = rs.read("app/a/sotto/b.mpy")
    assert hashlib.sha256(got).digest() == hashlib.sha256(new["/sotto/b.mpy"]).digest()


def test_the_trial_check_allocates_nothing_while_no_part_failed():
    # it runs every pass while a release is on trial: under heap_lock any
    # allocation is a MemoryError in the VM (a no-op in the CPython shim)
    import micropython
    from sotto import updates

    only_ota, none = {"ota": 2}, {}
    micropython.heap_lock()
    try:
        a = updates._other_faults(only_ota)
        b = updates._other_faults(none)
    finally:
        micropython.heap_unlock()
    assert a == () and b == ()
    assert updates._other_faults({"ota": 1, "gnss": 1}) == ["gnss"]
