// The heap through a whole alert, measured in the MicroPython VM one step per
// call (the VM collects garbage only between calls from JavaScript).
//
//   node tools/vm/heapstep.mjs [--engine ints|kernels] [--until-ms MS] [--loop] [--mpy DIR]
//
// A Device over the fake HAL of tests/firmware/fakehal.py boots, the officer
// holds the button at 1 s, and the device runs to --until-ms (default 75000:
// alert-start, 30 s of audio, locations every 15 s). --loop: the device has
// its trust anchors (the test centre's key, a CA file) and delivers: a modem
// double in place of the SIMCom driver (whose objects stay referenced, so
// they still count) posts to the signing fake centre of
// tests/firmware/deliveryfake.py, and the device opens every answer. The
// centre runs in a VM call of its own after each step, so its allocations
// are not the device's, and what it keeps (the request buffer, the centre's
// key) is measured once when it is made and subtracted from every figure.
// --mpy DIR: the firmware is imported from the .mpy files in DIR (what
// `sotto flash` writes; host_tools.firmware_build) instead of compiled from
// .py in the VM: the bytecode a device without ROMFS holds in its heap.
// The test helpers (fakehal, fwtest) are imported before the baseline; after
// boot the boot-only modules are dropped, as main.py does.
// Every step is one call:
// gc.collect() and gc.mem_alloc() between steps give the live heap; within a
// step nothing is collected, so the bytes a step allocates are
// gc.mem_alloc() after minus before. When a step allocated 1 KB or more, the
// heap map (micropython.mem_info(1)) printed at its end is compared with the
// map after the collection before it: every allocation of more than 64 blocks
// (16-byte blocks: over 1 KB) that was not there is reported with its size.
// Limits: a buffer that C code frees again within the same call (a temporary
// of a big-int operation, a realloc that moved) is not in the map; Python
// code cannot free, so every Python-level allocation is seen.
//
// --engine kernels signs with sotto.k_sha512 / sotto.k_f25519 as bytecode (what
// a device runs as viper); ints: the VM's default engines.
// Prints one line: RESULT {json}.
import crypto from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { FIRMWARE_DIR_IN_VM, startVM, putFirmware, putTree } from "./mpvm.mjs";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
let engine = "kernels";
let untilMs = 75000;
let loop = false;
let mpyDir = null;
while (args.length) {
  const flag = args.shift();
  if (flag === "--engine") engine = args.shift();
  else if (flag === "--until-ms") untilMs = parseInt(args.shift(), 10);
  else if (flag === "--loop") loop = true;
  else if (flag === "--mpy") mpyDir = path.resolve(args.shift());
  else {
    console.error(`heapstep.mjs: unknown option ${flag}`);
    process.exit(2);
  }
}

let captured = [];
let value = null;
const mp = await startVM({
  heapBytes: 128 * 1024,
  stdout: (text) => {
    const line = text.replace(/\r$/, "");
    if (line.startsWith("@@")) value = JSON.parse(line.slice(2));
    else captured.push(line);
  },
});
const get = (expr) => {
  mp.runPython(`print("@@" + repr(${expr}))`);
  return value;
};

// Allocations of more than `minBlocks` blocks in a mem_info(1) dump, as
// Map(address -> {blocks, kind}); kind is the map letter of the head block.
function bigBlocks(lines, minBlocks = 65) {
  const out = new Map();
  let base = null;
  let cells = "";
  let at = 0;
  const flush = () => {
    let i = 0;
    while (i < cells.length) {
      const c = cells[i];
      if (c !== "." && c !== "=") {
        let j = i + 1;
        while (j < cells.length && cells[j] === "=") j++;
        if (j - i >= minBlocks) out.set(`${base}+${at + i}`, { blocks: j - i, kind: c });
        i = j;
      } else i++;
    }
  };
  for (const line of lines) {
    const area = line.match(/^GC memory layout; from ([0-9a-f]+):/);
    if (area) {
      if (base !== null) flush();
      base = area[1];
      cells = "";
      at = 0;
      continue;
    }
    const row = line.match(/^([0-9a-f]{8}): (.*)$/);
    if (row && base !== null) {
      const offset = parseInt(row[1], 16) / 16;
      cells += ".".repeat(Math.max(0, offset - cells.length)) + row[2];
    }
  }
  if (base !== null) flush();
  return out;
}

function heapMap(code) {
  captured = [];
  mp.runPython(code);
  const lines = captured;
  captured = [];
  return bigBlocks(lines);
}

if (mpyDir) {
  putTree(mp, mpyDir, FIRMWARE_DIR_IN_VM, { all: true });
  mp.runPython(`import sys\nsys.path.insert(0, '${FIRMWARE_DIR_IN_VM}')`);
} else putFirmware(mp, repoRoot);
putTree(mp, path.join(repoRoot, "tests", "firmware"), "/t");
mp.runPython("import sys, gc, micropython\nsys.path.insert(0, '/t')\nfrom fakehal import FakeHal, config, nmea\nfrom fwtest import tmpdir");
mp.runPython("gc.collect()");
const base = get("gc.mem_alloc()");
mp.runPython(`
from sotto import ed25519, identity, k_f25519, k_sha512, log
from sotto.app import Device
from sotto.storage import Storage
if ${JSON.stringify(engine)} == "kernels":
    ed25519.NATIVE = (k_sha512, k_f25519)  # what a device with the native build chooses
log.set_sink(lambda line: None)
`);
mp.runPython("gc.collect()");
const imported = get("gc.mem_alloc()") - base;
// the test centre's public key (the seed of tests/firmware/deliveryfake.py), derived here so
// that making it costs the VM nothing before the device boots
const centreSeed = Buffer.from([...Array(32).keys()].map((i) => 0xc0 + i));
const centrePub = crypto.createPublicKey(crypto.createPrivateKey({
  key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), centreSeed]),
  format: "der", type: "pkcs8",
})).export({ format: "der", type: "spki" }).subarray(-32).toString("hex");
mp.runPython(`
FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))
_root = tmpdir("heap")
hal = FakeHal(_root)
identity.create(Storage(_root), hal.random_bytes)
LOOP = ${loop ? "True" : "False"}
cfg = config()
if LOOP:
    Storage(_root).write_atomic("ca.pem", b"-----BEGIN CERTIFICATE-----\\nTEST\\n-----END CERTIFICATE-----\\n")
    cfg = config(centre_key="${centrePub}", ca_cert="ca.pem")
dev = Device(hal, cfg)
assert dev.boot(0), dev.error
assert (dev.network_error is None) == LOOP, dev.network_error
from sotto import app
app.forget_boot_modules()  # as main.py does after boot
T = [0, 0]
def one():
    t = T[0]
    if t % 1000 < 20 and hal.gnss_on:
        hal.gnss_uart.rx += FIX
    hal.set_time(t)
    wait = dev.step(t)
    T[0] = t + max(1, min(wait, 200 if LOOP else 1000))
def network():
    pass
hal.press(1000, 3200)
`);
mp.runPython("gc.collect()");
let fakes = 0;
if (loop) {
  const before = get("gc.mem_alloc()");
  mp.runPython(`
from deliveryfake import FakeModem, FakeServer
from sotto.ticks import ticks_add

class HeapModem(FakeModem):
    """deliveryfake's modem double, as the measurement needs it: a request is
    copied into a buffer made once and answered by network(), in a VM call of
    its own; consume() hands out a view of rx, as the SIMCom driver does."""

    def __init__(self, clock, server):
        FakeModem.__init__(self, clock, server)
        self.rx = bytearray(2048)  # the driver's receive buffer (Cch rx_max)
        self.req = bytearray(32768)
        self.req_n = 0
        self.asked = False

    def send(self, parts, tx):
        self._call("send")
        n = 0
        for p in parts:
            k = len(p)
            self.req[n:n + k] = p
            n += k
        self.req_n = n
        yield 20 + n // 12
        self.asked = True

    def consume(self):
        mv = memoryview(self.rx)[:self.rx_n]
        self.rx_n = 0
        return mv

DRIVER = dev.delivery.modem  # the SIMCom driver made at boot: still the device's memory
SERVER = FakeServer(None)
MODEM = HeapModem(dev.sched, SERVER)
dev.delivery.modem = MODEM
dev.delivery.sms.modem = MODEM

def network():
    m = MODEM
    if m.asked:
        m.asked = False
        r = SERVER(bytes(memoryview(m.req)[:m.req_n]))
        if r is not None:
            m.pending = (ticks_add(m.clock.now_ms, m.rtt_ms), r)
    m._deliver()
    # what the centre and the double remember: kept from growing
    SERVER.seen = []
    SERVER.frames = []
    SERVER.requests = []
    SERVER.answers = []
    SERVER.stored = set()
    m.calls = []
`);
  mp.runPython("network()"); // the centre's key is made on its first answer: make it now
  mp.runPython("from deliveryfake import centre_key\ncentre_key()");
  mp.runPython("gc.collect()");
  fakes = get("gc.mem_alloc()") - before;
}
const booted = get("gc.mem_alloc()") - base - fakes;
let live = heapMap("micropython.mem_info(1)");
let peak = booted;
let peakAtMs = 0;
let steps = 0;
let maxStepAlloc = 0;
let maxStepAt = 0;
const big = [];
const frames0 = get("dev.frames_made");
for (;;) {
  const before = heapMap("micropython.mem_info(1)");
  // one step, and in the same call (so nothing is collected) its heap map if it allocated >= 1 KB
  captured = [];
  mp.runPython("_a0 = gc.mem_alloc()\none()\nT[1] = gc.mem_alloc() - _a0\nif T[1] >= 1024:\n    micropython.mem_info(1)");
  const after = bigBlocks(captured);
  captured = [];
  const [t, allocated] = get("T");
  steps++;
  if (allocated > maxStepAlloc) {
    maxStepAlloc = allocated;
    maxStepAt = t;
  }
  for (const [addr, blk] of after) {
    const was = before.get(addr);
    if (!was || was.blocks !== blk.blocks) big.push({ t_ms: t, bytes: blk.blocks * 16, kind: blk.kind });
  }
  mp.runPython("network()");
  mp.runPython("gc.collect()");
  const now = get("gc.mem_alloc()") - base - fakes;
  if (now > peak) {
    peak = now;
    peakAtMs = t;
  }
  if (t >= untilMs) break;
}
live = null;
const frames = get("dev.frames_made") - frames0;
const delivered = loop ? get("dev.delivery.acked") : 0;
// the firmware's modules in RAM at the end (the code a ROMFS estimate leaves in flash)
mp.runPython("import json\nprint('@@' + json.dumps(sorted([k for k in sys.modules if k == 'sotto' or k.startswith('sotto.')])))");
const modules = value;
const opened = loop ? get("dev.delivery.posts") : 0;
const bySize = {};
for (const b of big) bySize[`${b.bytes}:${b.kind}`] = (bySize[`${b.bytes}:${b.kind}`] || 0) + 1;
console.log("RESULT " + JSON.stringify({
  engine, loop, mpy: Boolean(mpyDir), until_ms: untilMs, steps, frames, delivered, answers: opened,
  unauth: loop ? get("dev.delivery.unauth") : 0, fakes_bytes: fakes, imported_bytes: imported, booted_bytes: booted,
  peak_live_bytes: peak, peak_at_ms: peakAtMs, max_step_alloc_bytes: maxStepAlloc, max_step_at_ms: maxStepAt,
  big_allocations: big.length, big_by_size: bySize, first_big: big.slice(0, 10), modules,
}));
