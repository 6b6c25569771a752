// The VM lane: run every firmware test module inside the MicroPython VM.
//
//   node tools/vm/test.mjs [FILE_OR_DIR ...]     (default: tests/firmware)
//
// Each module runs in its own Node process (its own fresh VM) with a time limit.
// Test functions are the module's plain `test_*` functions, called with no
// arguments. A module that fails to import counts as a failure, never a skip.
// Prints one line per test and a closing "N passed, N failed"; exits 1 on any
// failure.
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startVM, putTree, putFirmware, runPythonCatching } from "./mpvm.mjs";

const here = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(here), "../..");
const MARK = "\u0001SOTTO-TEST ";
const MODULE_TIMEOUT_MS = parseInt(process.env.SOTTO_VM_TEST_TIMEOUT_MS || "300000", 10);

function harness(moduleName) {
  return `
import sys
sys.path.insert(0, '/tests')
def _run():
    try:
        mod = __import__('${moduleName}')
    except Exception as e:
        sys.print_exception(e)
        print('${MARK}IMPORT-FAIL ${moduleName}')
        return
    names = [n for n in dir(mod) if n.startswith('test_') and callable(getattr(mod, n))]
    names.sort()
    if not names:
        print('${MARK}EMPTY ${moduleName}')
    for name in names:
        try:
            getattr(mod, name)()
            print('${MARK}PASS ' + name)
        except Exception as e:
            sys.print_exception(e)
            print('${MARK}FAIL ' + name)
_run()
`;
}

async function runOne(file) {
  const lines = [];
  const mp = await startVM({ stdout: (l) => lines.push(l), stderr: (l) => lines.push(l) });
  putFirmware(mp, repoRoot);
  putTree(mp, path.dirname(file), "/tests", { all: true });
  // Data files shared with the host tests (tests/data/...) appear at /testdata/...
  const dataDir = path.join(path.dirname(file), "..", "data");
  if (fs.existsSync(dataDir)) putTree(mp, dataDir, "/testdata", { all: true });
  // The answer golden vectors (tests/vectors/answers/...) appear at /testvectors/answers/...
  const answersDir = path.join(path.dirname(file), "..", "vectors", "answers");
  if (fs.existsSync(answersDir)) putTree(mp, answersDir, "/testvectors/answers", { all: true });
  // The end-to-end lane's stand-ins (modem emulator, receiver) appear at /e2e/...
  const e2eDir = path.join(path.dirname(file), "..", "e2e");
  if (fs.existsSync(e2eDir)) putTree(mp, e2eDir, "/e2e");
  const moduleName = path.basename(file, ".py");
  const failure = runPythonCatching(mp, harness(moduleName));
  if (failure) lines.push(failure, `${MARK}IMPORT-FAIL ${moduleName}`);
  process.stdout.write(lines.join("\n") + "\n");
}

function collect(targets) {
  const files = [];
  for (const t of targets) {
    const stat = fs.statSync(t);
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(t).sort()) {
        if (name.startsWith("test_") && name.endsWith(".py")) files.push(path.join(t, name));
      }
    } else files.push(t);
  }
  return files;
}

function spawnOne(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [here, "--one", file], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      out += `\n${MARK}TIMEOUT after ${MODULE_TIMEOUT_MS} ms\n`;
    }, MODULE_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ file, out, code });
    });
  });
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === "--one") return runOne(argv[1]);
  const files = collect(argv.length ? argv : [path.join(repoRoot, "tests/firmware")]);
  let passed = 0;
  let failed = 0;
  const jobs = Math.max(1, parseInt(process.env.SOTTO_VM_JOBS || "2", 10));
  const queue = files.slice();
  const results = [];
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (queue.length) results.push(await spawnOne(queue.shift()));
    }),
  );
  results.sort((a, b) => a.file.localeCompare(b.file));
  for (const { file, out, code } of results) {
    const rel = path.relative(process.cwd(), file);
    const detail = [];
    let sawResult = false;
    const failedBefore = failed;
    for (const line of out.split("\n")) {
      if (!line.startsWith(MARK)) {
        if (line.trim()) detail.push(line);
        continue;
      }
      const [kind, ...rest] = line.slice(MARK.length).split(" ");
      const name = rest.join(" ");
      sawResult = true;
      if (kind === "PASS") {
        passed++;
        console.log(`PASS ${rel}::${name}`);
        detail.length = 0;
      } else {
        failed++;
        const what = kind === "FAIL" ? `${rel}::${name}` : `${rel} (${kind.toLowerCase()}${name ? ": " + name : ""})`;
        console.log(`FAIL ${what}`);
        for (const d of detail) console.log("    " + d);
        detail.length = 0;
      }
    }
    if (!sawResult || (code !== 0 && failed === failedBefore)) {
      failed++;
      console.log(`FAIL ${rel} (VM exited with status ${code})`);
      for (const d of detail) console.log("    " + d);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
