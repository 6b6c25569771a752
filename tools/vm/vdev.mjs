// The virtual device's microcontroller: the MicroPython VM (the pinned
// WebAssembly port) with its REPL on stdin/stdout and its flash in a host folder.
//
//   node tools/vm/vdev.mjs --flash DIR [--flash-kb N] [--heap-kb N] [--status-fd N]
//                          [--report-version X.Y.Z]
//
// host_tools/vdev.py runs this behind a pseudo-terminal (it plays the USB-serial
// chip and the power supply); read its docstring for the whole picture. Here:
//
// - stdin carries the bytes the host sends, stdout the bytes the board sends.
//   --status-fd N tells the bridge "B" (busy: running Python) and "I" (idle), so
//   it can hard-reset a board that ignores Ctrl-C.
// - The REPL is the port's event-driven pyexec (replInit/replProcessChar): the
//   friendly REPL, raw REPL (Ctrl-A), Ctrl-B, Ctrl-C, and Ctrl-D as a board does
//   it: in raw REPL it executes the buffer, on an empty line it soft-resets.
// - Soft reset: "MPY: soft reboot", a fresh VM instance, boot.py, main.py (in
//   the friendly REPL only, as on a board), then the REPL in the mode it was in.
// - Raw-paste mode: the port's raw REPL would try to read stdin synchronously,
//   which the VM cannot do, so the host's "\x05A\x01" probe is answered "R\x00"
//   here, as a board without raw-paste answers it; mpremote then uses the plain
//   raw REPL.
// - Ctrl-C while Python runs: the VM is single-threaded, so stdin is polled from
//   inside the VM whenever it asks for the time (time.sleep, ticks, asyncio) or
//   prints; a Ctrl-C there schedules KeyboardInterrupt, as a board's UART ISR
//   does. A loop that does neither cannot be interrupted; the bridge then
//   hard-resets the VM.
// - Flash: a Python VFS (tools/vm/hostflash.py, mounted at "/" by
//   tools/vm/vdev_flash.py) whose methods reach Node's fs through the JS module
//   of tools/vm/hostflash.mjs, so every write lands in DIR at once and
//   survives resets and restarts. Errors carry
//   MicroPython's errno values (ENOENT is 2, not Emscripten's 44). --flash-kb
//   sets its size (littlefs-like accounting in 4 KiB blocks), so "filesystem
//   full" can be tested.
// - os.urandom: the VM's os module has none; a board's comes from its hardware
//   RNG. vdev_flash.py adds one backed by Node's crypto.randomBytes.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { hostFlash } from "./hostflash.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const POLL_INTERVAL_MS = 10;

// ---------------------------------------------------------------- arguments
const opts = { flash: null, flashKb: 2048, heapKb: 256, statusFd: null, reportVersion: null };
{
  const argv = process.argv.slice(2);
  while (argv.length) {
    const flag = argv.shift();
    const value = argv.shift();
    if (flag === "--flash") opts.flash = path.resolve(value);
    else if (flag === "--flash-kb") opts.flashKb = parseInt(value, 10);
    else if (flag === "--heap-kb") opts.heapKb = parseInt(value, 10);
    else if (flag === "--status-fd") opts.statusFd = parseInt(value, 10);
    else if (flag === "--report-version" && /^\d+\.\d+\.\d+$/.test(value)) opts.reportVersion = value;
    else {
      process.stderr.write(`vdev.mjs: unknown option ${flag}\n`);
      process.exit(2);
    }
  }
  if (!opts.flash || !(opts.flashKb > 0) || !(opts.heapKb > 0)) {
    process.stderr.write("usage: node tools/vm/vdev.mjs --flash DIR [--flash-kb N] [--heap-kb N] [--status-fd N]\n");
    process.exit(2);
  }
  fs.mkdirSync(opts.flash, { recursive: true });
}

// ------------------------------------------------------------------- output
// Everything the board prints goes through here. A board's print() turns "\n"
// into "\r\n" (mp_hal_stdout_tx_strn_cooked); the VM does not, so a lone "\n"
// is cooked here. The REPL's own "\r\n" pass unchanged.
let outBuf = [];
let lastOut = 0;
let rawMode = false; // tracked from what the REPL prints and what it is fed
let rawTail = ""; // last bytes printed, to spot "raw REPL; CTRL-B to exit\r\n"
let muted = false;
let rawLineLen = 0; // bytes in the raw REPL's line buffer (mirrors pyexec)
let held = []; // a possible raw-paste probe being matched: \x05 'A' \x01
const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";

function emit(byte) {
  if (muted) return;
  if (byte === 10 && lastOut !== 13) outBuf.push(13);
  outBuf.push(byte);
  lastOut = byte;
  rawTail = (rawTail + String.fromCharCode(byte)).slice(-RAW_BANNER.length);
  if (rawTail === RAW_BANNER) {
    rawMode = true;
    rawLineLen = 0;
  }
  // Flush at each line end, and at the raw REPL's "OK" (sent just before the
  // VM starts running the command), so the host sees it even if the command
  // then runs for a long time without printing.
  if (byte === 10 || outBuf.length >= 4096 || (byte === 0x4b && rawMode && rawTail.endsWith("OK"))) flushOut();
}

function emitText(text) {
  for (const b of Buffer.from(text, "latin1")) emit(b);
}

function flushOut() {
  if (!outBuf.length) return;
  const data = Buffer.from(outBuf);
  outBuf = [];
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(1, data, off);
    } catch (e) {
      if (e.code === "EAGAIN") continue; // the bridge is slow; it always drains
      if (e.code === "EPIPE") process.exit(0); // the bridge is gone
      throw e;
    }
  }
}

let statusFd = opts.statusFd;
let statusBusy = null;
function setBusy(busy) {
  if (statusFd === null || statusBusy === busy) return;
  statusBusy = busy;
  try {
    fs.writeSync(statusFd, busy ? "B" : "I");
  } catch {
    statusFd = null;
  }
}

// -------------------------------------------------------------------- input
const queue = []; // bytes from the host not yet given to the REPL
let inputClosed = false;
let lastPoll = 0;
let vm = null; // the current VM instance (replaced on soft reset)
let executing = false;
const pollBuf = Buffer.alloc(4096);

// Called from inside the VM (time queries, prints): read what the host sent,
// turning the interrupt character into a KeyboardInterrupt as a board's UART
// ISR does. Only reads when Node's own stdin reader cannot run (while busy).
function pollInput() {
  if (!executing || inputClosed) return;
  const now = Date.now();
  if (now - lastPoll < POLL_INTERVAL_MS) return;
  lastPoll = now;
  flushOut();
  let n;
  try {
    n = fs.readSync(0, pollBuf, 0, pollBuf.length, null);
  } catch (e) {
    if (e.code === "EAGAIN") return;
    throw e;
  }
  if (n === 0) {
    inputClosed = true;
    return;
  }
  const intr = vm ? vm._module._mp_hal_get_interrupt_char() : 3;
  for (let i = 0; i < n; i++) {
    if (pollBuf[i] === intr) vm._module._mp_sched_keyboard_interrupt();
    else queue.push(pollBuf[i]);
  }
}

// Wrap the VM's clock imports so that a running program polls stdin. The
// imports object is only reachable when the module is instantiated.
const realInstantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async function (binary, imports) {
  if (imports && imports.env) {
    for (const name of ["mp_js_ticks_ms", "mp_js_time_ms"]) {
      const real = imports.env[name];
      if (typeof real === "function") {
        imports.env[name] = (...args) => {
          pollInput();
          return real(...args);
        };
      }
    }
  }
  return realInstantiate.call(this, binary, imports);
};

// -------------------------------------------------------------------- flash
const flash = hostFlash({ root: opts.flash, flashKb: opts.flashKb });
const vdevApi = {
  // The board's hardware RNG (os.urandom on an ESP32): the host's CSPRNG.
  urandom(n) {
    return crypto.randomBytes(Math.max(0, Math.min(n, 4096))).toString("hex");
  },
};

// ---------------------------------------------------------------- lifecycle
const hostFlashSource = fs.readFileSync(path.join(here, "hostflash.py"), "utf8");
const flashSource = fs.readFileSync(path.join(here, "vdev_flash.py"), "utf8");

// Run a board file (boot.py, main.py) as a board does: in __main__, its
// exception printed, never fatal. KeyboardInterrupt lands here too.
let runFile = null; // vdev_flash.py's run_file, a PyProxy
function runBoardFile(name) {
  executing = true;
  setBusy(true);
  try {
    runFile(name);
  } catch (e) {
    if (!(e && e.name === "PythonError")) throw e;
    emitText(e.message);
  } finally {
    executing = false;
  }
}

async function boot({ soft }) {
  flash.closeAll();
  if (soft) emitText("MPY: soft reboot\r\n");
  const mode = rawMode;
  vm = await loadMicroPython({
    heapsize: opts.heapKb * 1024,
    stdout: (bytes) => {
      for (const b of bytes) emit(b);
      pollInput();
    },
    stderr: (bytes) => {
      for (const b of bytes) emit(b);
    },
    linebuffer: false,
  });
  vm.registerJsModule("_hostflash", flash.api);
  vm.registerJsModule("_vdev_flash", vdevApi);
  // Run the flash driver in a namespace of its own; keep only its run_file.
  vm.runPython(`_vdev_ns = {"__name__": "_vdev", "REPORT_VERSION": ${opts.reportVersion ? JSON.stringify(opts.reportVersion) : "None"}}
exec(compile(${JSON.stringify(hostFlashSource)}, "<hostflash>", "exec"), _vdev_ns)
exec(compile(${JSON.stringify(flashSource)}, "<vdev flash>", "exec"), _vdev_ns)
_vdev_run_file = _vdev_ns["run_file"]
del _vdev_ns`);
  runFile = vm.globals.get("_vdev_run_file");
  vm.globals.delete("_vdev_run_file");
  flash.recount();
  runBoardFile("boot.py");
  if (!mode) runBoardFile("main.py");
  // Start the REPL in the mode it was in, as a board's soft reset does.
  rawLineLen = 0;
  held = [];
  if (mode) {
    muted = true;
    vm.replInit();
    vm.replProcessChar(1);
    muted = false;
    emitText(RAW_BANNER + ">");
  } else {
    rawMode = false;
    vm.replInit(); // the VM's own banner and prompt
  }
  setBusy(false);
  flushOut();
}

// --------------------------------------------------------------------- REPL
let pumping = false;

async function feed(c) {
  if (rawMode) {
    if (held.length === 0 && c === 0x05 && rawLineLen === 0) {
      held.push(c);
      return;
    }
    if (held.length === 1 && c === 0x41) {
      held.push(c);
      return;
    }
    if (held.length === 2 && c === 0x01) {
      held = [];
      emitText("R\x00"); // raw-paste understood but not supported
      return;
    }
    if (held.length) {
      const pending = held;
      held = [];
      for (const h of pending) await feedVM(h);
    }
  }
  await feedVM(c);
}

async function feedVM(c) {
  const wasRaw = rawMode;
  executing = true;
  let ret;
  try {
    ret = vm.replProcessChar(c);
  } finally {
    executing = false;
  }
  if (wasRaw) {
    if (c === 0x01 || c === 0x03 || c === 0x04) rawLineLen = 0;
    else if (c === 0x02) rawMode = false;
    else rawLineLen++;
  }
  if (ret) await boot({ soft: true }); // PYEXEC_FORCED_EXIT: soft reset
}

async function pump() {
  if (pumping || !vm) return;
  pumping = true;
  try {
    while (queue.length) {
      const c = queue.shift();
      if (c === 0x04 || c === 0x0d || c === 0x0a) setBusy(true);
      await feed(c);
      if (!queue.length) setBusy(false);
      flushOut();
    }
  } finally {
    pumping = false;
  }
  flushOut();
  if (inputClosed) process.exit(0);
}

process.on("SIGTERM", () => {
  flushOut();
  flash.closeAll();
  process.exit(0);
});

emitText(`sotto virtual device: flash ${opts.flash} (${opts.flashKb} KB), heap ${opts.heapKb} KB\r\n`);
await boot({ soft: false });
process.stdin.on("data", (data) => {
  for (const b of data) queue.push(b);
  pump();
});
process.stdin.on("end", () => {
  inputClosed = true;
  if (!pumping) process.exit(0);
});
pump();
