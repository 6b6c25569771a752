// Run a Python script inside the MicroPython VM with the firmware on sys.path.
//
//   node tools/vm/run.mjs [--heap BYTES] [--put HOST:VM]... [--get VM:HOST]... SCRIPT.py [ARGS...]
//
// --put copies a host directory (all files) into the VM before the script runs;
// --get copies a VM directory back to the host afterwards (also on failure).
// sys.argv inside the VM is [SCRIPT, ARGS...]. Exit status 1 on an exception.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startVM, putTree, getTree, putFirmware, runPythonCatching } from "./mpvm.mjs";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
let heapBytes = 8 * 1024 * 1024;
const puts = [];
const gets = [];
while (args.length && args[0].startsWith("--")) {
  const flag = args.shift();
  const value = args.shift();
  if (flag === "--heap") heapBytes = parseInt(value, 10);
  else if (flag === "--put") puts.push(value.split(":"));
  else if (flag === "--get") gets.push(value.split(":"));
  else {
    console.error(`run.mjs: unknown option ${flag}`);
    process.exit(2);
  }
}
if (!args.length) {
  console.error("usage: node tools/vm/run.mjs [--heap BYTES] [--put HOST:VM] [--get VM:HOST] SCRIPT.py [ARGS...]");
  process.exit(2);
}
const script = args.shift();
const mp = await startVM({ heapBytes });
putFirmware(mp, repoRoot);
for (const [hostDir, vmDir] of puts) putTree(mp, hostDir, vmDir, { all: true });
for (const [vmDir] of gets) mp.FS.mkdirTree(vmDir);
mp.runPython(`import sys\nsys.argv[:] = ${JSON.stringify([script, ...args])}`);
const failure = runPythonCatching(mp, fs.readFileSync(script, "utf8"));
for (const [vmDir, hostDir] of gets) getTree(mp, vmDir, hostDir);
if (failure) {
  process.stderr.write(failure);
  process.exit(1);
}
