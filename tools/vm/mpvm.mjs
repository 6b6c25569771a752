// Load the pinned MicroPython VM (official WebAssembly port) and move files in
// and out of its in-memory filesystem. Shared by the test runner, the vector
// generator and the benchmarks.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

export const FIRMWARE_DIR_IN_VM = "/fw";

export async function startVM({ heapBytes = 8 * 1024 * 1024, stdout, stderr } = {}) {
  const out = stdout ?? ((line) => process.stdout.write(line + "\n"));
  const err = stderr ?? ((line) => process.stderr.write(line + "\n"));
  return loadMicroPython({ heapsize: heapBytes, stdout: out, stderr: err, linebuffer: true });
}

// Copy a host directory tree into the VM (only .py files unless all=true).
export function putTree(mp, hostDir, vmDir, { all = false } = {}) {
  mp.FS.mkdirTree(vmDir);
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || entry.name === "__pycache__") continue;
    const src = path.join(hostDir, entry.name);
    const dst = vmDir + "/" + entry.name;
    if (entry.isDirectory()) putTree(mp, src, dst, { all });
    else if (all || entry.name.endsWith(".py")) mp.FS.writeFile(dst, fs.readFileSync(src));
  }
}

// Copy a VM directory tree back to the host.
export function getTree(mp, vmDir, hostDir) {
  fs.mkdirSync(hostDir, { recursive: true });
  for (const name of mp.FS.readdir(vmDir)) {
    if (name === "." || name === "..") continue;
    const src = vmDir + "/" + name;
    const dst = path.join(hostDir, name);
    if (mp.FS.isDir(mp.FS.stat(src).mode)) getTree(mp, src, dst);
    else fs.writeFileSync(dst, mp.FS.readFile(src));
  }
}

// Put the firmware package on the VM's filesystem and on sys.path.
export function putFirmware(mp, repoRoot) {
  putTree(mp, path.join(repoRoot, "firmware"), FIRMWARE_DIR_IN_VM);
  mp.runPython(`import sys\nsys.path.insert(0, '${FIRMWARE_DIR_IN_VM}')`);
}

// Run Python source; return null on success or the Python traceback text.
export function runPythonCatching(mp, source) {
  try {
    mp.runPython(source);
    return null;
  } catch (error) {
    if (error && error.name === "PythonError") {
      if (error.type === "SystemExit") return null;
      return error.message;
    }
    throw error;
  }
}
