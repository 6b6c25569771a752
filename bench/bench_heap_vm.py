"""Heap budgets (issue 12), measured in the MicroPython VM. Every row is a VM
figure; none is a device figure.

- Heap allocated per alert-start signature: the bytes one `sign()` allocates
  (gc.mem_alloc() after minus before, inside one VM call, where the VM collects
  nothing), for the engine a device runs (sotto.k_sha512 / sotto.k_f25519,
  here as bytecode; on the device the same source as viper) against the 64 KB
  limit and against today's signer (bench/ref_ed25519_ints.py); the int engine
  that the VM and CPython keep is shown too.
- Signing time of the VM's engine against today's signer (it must not be
  slower), and of the device kernels run as bytecode (slow here by design:
  the device runs them as machine code; no device time is claimed).
- Peak live heap over a whole alert (tools/vm/heapstep.mjs: a Device over the
  fake HAL, one step per VM call, gc.collect() + gc.mem_alloc() between
  steps), including the imported code, against 128 KB; and the allocations of
  more than 1 KB after boot that the heap maps show.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.common import Row, lower_is_better, vm_result
from host_tools.vm import REPO_ROOT, node_binary

BENCH_DIR = Path(__file__).resolve().parent

VM_SCRIPT = r"""
import sys, time, json, gc
sys.path.insert(0, '/ref')
import ref_ed25519_ints as today
from sotto import cbor, cose, ed25519, frames, k_f25519, k_sha512

SEED = bytes(range(32))
KID = b"SOTTO-42"
FIELDS = {1: 1, 2: 7, 3: 1001, 4: 1790000000, 5: 3600000,
          6: frames.pack_location(515007000, -1246000, 8, 2, 1), 7: 76, 9: 1}
ints = ed25519.SigningKey(SEED)
kernels = ed25519.SigningKey(SEED, (k_sha512, k_f25519))
old = today.SigningKey(SEED)
wire = frames.FrameSigner(KID, ints).sign(FIELDS)
TBS = cose.sig_structure(cose.protected_header(KID), cbor.decode(wire).value[2])
sig = old.sign(TBS)
assert ints.sign(TBS) == sig and kernels.sign(TBS) == sig  # the same bytes

def allocated(fn):
    gc.collect()  # (inside a call the VM frees nothing: this only tidies the counters)
    a0 = gc.mem_alloc()
    fn()
    return gc.mem_alloc() - a0

def per_call_ms(fn, min_ms=60):
    n = 1
    while True:
        t = time.ticks_ms()
        for _ in range(n):
            fn()
        dt = time.ticks_diff(time.ticks_ms(), t)
        if dt >= min_ms:
            return dt / n
        n *= 2

out = {"tbs_bytes": len(TBS)}
for name, key in (("kernels", kernels), ("ints", ints), ("today", old)):
    out["alloc_" + name] = min(allocated(lambda: key.sign(TBS)) for _ in range(3))
best = {}
for _ in range(3):  # interleaved rounds, best of each
    for name, key in (("ints", ints), ("today", old)):
        v = per_call_ms(lambda: key.sign(TBS))
        best[name] = min(best.get(name, v), v)
t = time.ticks_ms()
kernels.sign(TBS)
best["kernels"] = time.ticks_diff(time.ticks_ms(), t)
for k, v in best.items():
    out["ms_" + k] = v
print("RESULT " + json.dumps(out))
"""


def measure_signing() -> dict[str, float]:
    return vm_result(VM_SCRIPT, {"/ref": [BENCH_DIR / "ref_ed25519_ints.py"]})


def measure_alert(engine: str = "kernels") -> dict:
    """tools/vm/heapstep.mjs over a 75 s run with an alert at 1 s."""
    tool = REPO_ROOT / "tools" / "vm" / "heapstep.mjs"
    proc = subprocess.run([node_binary(), str(tool), "--engine", engine], capture_output=True, text=True,
                          timeout=900, cwd=REPO_ROOT, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def run() -> list[Row]:
    s = measure_signing()
    a = measure_alert("kernels")
    kb = 1024.0
    big = ", ".join(f"{n}x {k.split(':')[0]} B" for k, n in sorted(a["big_by_size"].items()))
    return [
        lower_is_better("heap allocated per signature (VM)", s["alloc_kernels"] / kb, "KB", 64.0,
                        target="<= 64 KB", note="the device's engine (k_sha512, k_f25519) as bytecode; "
                        f"{s['tbs_bytes']:.0f}-byte alert-start Sig_structure; limit 64 KB"),
        lower_is_better("heap allocated per signature vs today's signer (VM)", s["alloc_kernels"] / kb, "KB",
                        s["alloc_today"] / kb, note="baseline: bench/ref_ed25519_ints.py; "
                        f"the VM's int engine allocates {s['alloc_ints'] / kb:.0f} KB"),
        lower_is_better("ed25519 sign, the VM's int engine vs today's signer (VM)", s["ms_ints"], "ms",
                        s["ms_today"], target=">= 1x", note="baseline: bench/ref_ed25519_ints.py"),
        lower_is_better("ed25519 sign, device kernels run as bytecode (VM)", s["ms_kernels"], "ms",
                        s["ms_ints"], note="the device runs them as viper machine code: no device "
                        "time is claimed; baseline: the int engine"),
        lower_is_better("peak live heap over an alert (VM)", a["peak_live_bytes"] / kb, "KB", 128.0,
                        target="<= 128 KB", note=f"code imported {a['imported_bytes'] / kb:.0f} KB, "
                        f"after boot {a['booted_bytes'] / kb:.0f} KB; {a['frames']} frames; limit 128 KB"),
        Row("allocations over 1 KB after boot, whole alert (VM)", float(a["big_allocations"]), "count",
            target="0", note=big or "none"),
    ]
