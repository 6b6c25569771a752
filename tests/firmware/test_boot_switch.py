# boot.py's side of the switch (sotto.bootsel.at_boot): the selected slot is
# what `import sotto` gives afterwards, in the MicroPython VM as under CPython;
# a rollback gives the base again. The modules are put back afterwards.
import sys

from fwtest import tmpdir
from sotto import bootsel
from sotto.storage import Storage


def _slot(root, slot, version):
    st = Storage(root + "/" + bootsel.slot_path(slot) + "/sotto")
    st.write_atomic("__init__.py", ('VERSION = "%s"\n' % version).encode())


def _boot(root):
    saved = {}
    for k in list(sys.modules):
        if k == "sotto" or k.startswith("sotto."):
            saved[k] = sys.modules[k]
    path0 = list(sys.path)
    try:
        sel = bootsel.at_boot(root + "/data")
        import sotto

        return sel, sotto.VERSION
    finally:
        for k in list(sys.modules):
            if k == "sotto" or k.startswith("sotto."):
                del sys.modules[k]
        sys.modules.update(saved)
        sys.path[:] = path0


def test_at_boot_switches_then_rolls_back():
    root = tmpdir("boot")
    data = Storage(root + "/data")
    _slot(root, "a", "0.2.0")
    data.write_atomic(bootsel.PEND, b'{"slot": "a", "v": "0.2.0", "rk": null}')
    sel, version = _boot(root)
    assert sel["run"] == "a" and sel["state"] == bootsel.TRIAL
    assert version == "0.2.0"  # the slot's package, not the base's
    sel = bootsel.read(data)
    sel["state"] = bootsel.FAILED
    sel["why"] = "fault in session"
    bootsel.write(data, sel)
    sel, version = _boot(root)
    assert sel["run"] == "" and sel["why"] == "fault in session"
    assert version != "0.2.0"  # the base again


def test_at_boot_without_a_slot_boots_the_base():
    root = tmpdir("boot")
    data = Storage(root + "/data")
    data.write_atomic(bootsel.PEND, b'{"slot": "b", "v": "0.3.0", "rk": null}')
    sel, version = _boot(root)  # PEND names a slot with no application: never boot nothing
    assert sel["run"] == "" and sel["state"] == bootsel.GOOD
    assert version != "0.3.0"
