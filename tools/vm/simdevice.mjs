// The simulator's VM runtime: one virtual device's firmware in the MicroPython
// VM, driven line by line by simulator/vmruntime.py over stdin/stdout.
//
//   node tools/vm/simdevice.mjs --flash DIR
//
// The firmware package (firmware/sotto) is put on the VM's in-memory
// filesystem; the device's flash is the simulator's flash folder DIR, mounted
// inside the VM at the same path (tools/vm/hostflash.py over
// tools/vm/hostflash.mjs, no fsync: the CPython runtime does not fsync either),
// so both runtimes see the same files under the same names.
//
// The protocol is tools/vm/simdevice.py's: each line on stdin is a request,
// answered by one line on stdout; during a pass the firmware may call the
// simulator (_simlink.call: a line out, then a line in) before the answer.
// The first line out is {"ready": ...}. Whatever the VM prints goes to stderr.
// Everything here is synchronous: the VM runs only inside a request.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startVM, putTree } from "./mpvm.mjs";
import { hostFlash } from "./hostflash.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../..");

let flashDir = null;
{
  const argv = process.argv.slice(2);
  while (argv.length) {
    const flag = argv.shift();
    if (flag === "--flash" && argv.length) flashDir = path.resolve(argv.shift());
    else {
      process.stderr.write(`simdevice.mjs: unknown option ${flag}\n`);
      process.exit(2);
    }
  }
  if (!flashDir) {
    process.stderr.write("usage: node tools/vm/simdevice.mjs --flash DIR\n");
    process.exit(2);
  }
}

// ------------------------------------------------------------ line I/O (blocking)
const inBuf = Buffer.alloc(1 << 16);
let pending = "";

function readLine() {
  for (;;) {
    const nl = pending.indexOf("\n");
    if (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      return line;
    }
    let n;
    try {
      n = fs.readSync(0, inBuf, 0, inBuf.length, null);
    } catch (e) {
      if (e.code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      if (e.code === "EOF") return null;
      throw e;
    }
    if (n === 0) return null; // the simulator closed the pipe
    pending += inBuf.toString("utf8", 0, n);
  }
}

function writeLine(text) {
  const data = Buffer.from(text + "\n", "utf8");
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(1, data, off);
    } catch (e) {
      if (e.code === "EAGAIN") continue;
      if (e.code === "EPIPE") process.exit(0); // the simulator is gone
      throw e;
    }
  }
}

// ------------------------------------------------------------------------ the VM
const toStderr = (line) => process.stderr.write(line + "\n");
const mp = await startVM({ stdout: toStderr, stderr: toStderr });
const flash = hostFlash({ root: flashDir, flashKb: 0, fsync: false });
mp.registerJsModule("_hostflash", flash.api);
mp.registerJsModule("_simlink", {
  call(line) {
    writeLine(line);
    const reply = readLine();
    if (reply === null) process.exit(0); // the simulator went away mid-pass
    return reply;
  },
});
putTree(mp, path.join(repoRoot, "firmware"), "/fw");
mp.FS.mkdirTree("/simlib");
for (const [dir, name] of [[here, "hostflash.py"], [here, "simdevice.py"], [path.join(repoRoot, "simulator"), "flashcut.py"]]) {
  mp.FS.writeFile("/simlib/" + name, fs.readFileSync(path.join(dir, name)));
}
mp.runPython("import sys\nsys.path[:0] = ['/fw', '/simlib']\nimport simdevice");
const handle = mp.pyimport("simdevice").handle;

writeLine(JSON.stringify({ ready: "simdevice", flash: flashDir }));
for (;;) {
  const line = readLine();
  if (line === null) break;
  let answer;
  try {
    answer = handle(line);
  } catch (e) {
    // a bug in simdevice.py (the firmware's own exceptions are answers): report it whole
    answer = JSON.stringify({ fatal: e && e.message ? e.message : String(e) });
  }
  writeLine(answer);
}
flash.closeAll();
process.exit(0);
