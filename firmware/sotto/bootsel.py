# The boot selector: which copy of the application runs, and the switch to a
# new one (docs/ota.md).
#
# Flash layout: the application `sotto flash` wrote is the base (/sotto,
# /boards); an update is staged beside it in a slot, /app/a or /app/b (each
# with its own sotto/ and boards/). One record on the data storage, SEL,
# names the slot that runs; replacing it (Storage.write_atomic: a rename) is
# the switch, so a power cut at any instant leaves either the old or the new
# application selected, and both whole: staging never writes to the slot that
# runs, and the new slot is complete and checked before PEND names it.
#
# boot.py calls at_boot() on every reset, before main.py:
#   good  + PEND naming a whole slot -> SEL: that slot, "trial" (the switch)
#   trial -> boots counted; TRIAL_BOOTS boots without passing the health
#            check, or a check that failed ("failed"), -> SEL: the previous
#            slot again, "good", with the result and the reason (rollback)
# then puts the running slot first on sys.path and forgets the base's sotto
# modules, so main.py imports the selected copy. A fault in here boots the
# base application (boot.py catches everything).
#
# Health (a release on trial) is marked good once it has booted, raised no
# fault and had an authenticated answer from the centre within ota.health_s;
# otherwise it is marked failed with the reason, and the device restarts
# (never during a live alert): the next boot rolls back. A key rotation the
# release carries (rk) takes effect only when it is marked good.
import json
import sys

from micropython import const

from sotto.storage import Storage
from sotto.ticks import ticks_add, ticks_diff

SEL = "ota.sel"
PEND = "ota.pend"
RKEY = "release.key"  # a rotated release key (32 bytes); else config release_key
TRIAL_BOOTS = const(3)  # boots a release on trial gets (power cuts happen) before rollback
GOOD = "good"
TRIAL = "trial"
FAILED = "failed"
# update results (the values of frames.UPD_*; not imported: boot.py keeps its imports few)
_APPLIED = const(1)
_ROLLED_BACK = const(2)


def base(version=None):
    return {"run": "", "ver": version, "prev": "", "pver": None, "state": GOOD, "tries": 0,
            "res": 0, "why": "", "rep": True, "bad": None, "rk": None}


def flash_root(storage_root):
    r = storage_root.rstrip("/")
    i = r.rfind("/")
    return r[:i] if i > 0 else "/"


def slot_path(slot):
    """The slot's folder relative to the flash root ("" for the base)."""
    return "app/" + slot if slot else ""


def other_slot(run):
    return "b" if run == "a" else "a"


def _read_json(st, name):
    raw = st.read(name)
    if raw is None:
        return None
    try:
        v = json.loads(raw)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def read(st):
    """The selector record (the base's when there is none or it is unreadable)."""
    sel = _read_json(st, SEL)
    out = base()
    if sel is not None:
        for k in out:
            if k in sel:
                out[k] = sel[k]
    if out["run"] not in ("", "a", "b"):
        out = base()
    return out


def write(st, sel):
    st.write_atomic(SEL, json.dumps(sel).encode())


def switch(st):
    """The boot-time decisions on flash (see the header); returns the selector
    record that this boot runs."""
    sel = read(st)
    if sel["state"] != GOOD:
        if sel["state"] == FAILED or sel["tries"] >= TRIAL_BOOTS:
            why = sel["why"] or "restarted %d times before its health check passed" % sel["tries"]
            back = base(sel["pver"])
            back["run"] = sel["prev"]
            back["res"] = _ROLLED_BACK
            back["why"] = why[:64]
            back["rep"] = False
            back["bad"] = sel["ver"]
            write(st, back)  # the rollback: one rename
            st.remove(PEND)
            return back
        sel["tries"] += 1
        write(st, sel)
    pend = _read_json(st, PEND)
    if pend is None:
        return sel
    slot = pend.get("slot")
    if sel["state"] == GOOD and slot in ("a", "b") and slot != sel["run"] and pend.get("v") != sel["bad"] \
            and isinstance(pend.get("v"), str):
        new = {"run": slot, "ver": pend["v"], "prev": sel["run"], "pver": sel["ver"], "state": TRIAL,
               "tries": 1, "res": 0, "why": "", "rep": True, "bad": sel["bad"], "rk": pend.get("rk")}
        write(st, new)  # the switch: one rename
        sel = new
    st.remove(PEND)  # switched to, stale, or refused
    return sel


def at_boot(storage_root="/data"):
    """boot.py's call: decide, then make the selected copy the one imported."""
    st = Storage(storage_root)
    sel = switch(st)
    slot = sel["run"]
    if slot:
        root = flash_root(storage_root)
        path = (root.rstrip("/") + "/" + slot_path(slot)) if root != "/" else "/" + slot_path(slot)
        if not Storage(path).exists("sotto"):
            # cannot happen (PEND names a whole slot), but never boot nothing
            sel["state"] = FAILED
            sel["why"] = "slot %s has no application" % slot
            write(st, sel)
            return switch(st)
        sys.path.insert(0, path)
        for name in list(sys.modules):
            if name == "sotto" or name.startswith("sotto."):
                del sys.modules[name]
    return sel


def running_version(sel, base_version):
    return sel["ver"] if sel["run"] and sel["ver"] else base_version


class Health:
    """The health check of a release on trial (nothing to do otherwise)."""

    def __init__(self, st, sel, health_s, now_ms):
        self.st = st
        self.sel = sel
        self.health_s = health_s
        self.deadline = ticks_add(now_ms, health_s * 1000)
        self.on_trial = sel["state"] == TRIAL
        self.failed = False  # the device should restart (when no alert is live)

    def step(self, now_ms, faults, answered):
        """faults: names of the parts that failed since boot; answered: an
        authenticated answer came. Returns True when the verdict was just taken."""
        if not self.on_trial:
            return False
        if faults:
            self._fail("fault in %s" % ",".join(sorted(faults)))
        elif answered:
            self._good()
        elif ticks_diff(now_ms, self.deadline) >= 0:
            self._fail("no authenticated answer in %d s" % self.health_s)
        else:
            return False
        return True

    def _good(self):
        sel = self.sel
        rk = sel.get("rk")
        if rk:
            self.st.write_atomic(RKEY, bytes.fromhex(rk))  # the rotation, once the release is good
        sel["state"] = GOOD
        sel["tries"] = 0
        sel["res"] = _APPLIED
        sel["why"] = ""
        sel["rep"] = False
        sel["rk"] = None
        write(self.st, sel)
        self.on_trial = False

    def _fail(self, why):
        sel = self.sel
        sel["state"] = FAILED
        sel["why"] = why[:64]
        write(self.st, sel)
        self.on_trial = False
        self.failed = True
