"""Run Python code inside the MicroPython VM (the pinned WebAssembly port).

Thin wrapper over tools/vm/run.mjs for tests, benchmarks and `make vectors`:
the firmware package is on the VM's sys.path, host folders can be copied in
(`puts`) and VM folders copied back out (`gets`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from host_tools.errors import SottoError

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNNER = REPO_ROOT / "tools" / "vm" / "run.mjs"
VM_PACKAGE = REPO_ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


class VMError(SottoError, RuntimeError):
    """The MicroPython VM is missing, or the code raised inside it."""


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise VMError("node not found: install Node.js 18 or newer, then run `make setup`")
    return node


def run_source(source: str, *, args: list[str] | None = None,
               puts: dict[Path, str] | None = None, gets: dict[str, Path] | None = None,
               heap_bytes: int = 8 * 1024 * 1024, timeout_s: float = 600) -> str:
    """Run `source` in a fresh VM; return its stdout, raise VMError on failure."""
    if not VM_PACKAGE.exists():
        raise VMError("the MicroPython VM is not installed; run `make setup` (npm ci)")
    with tempfile.TemporaryDirectory(prefix="sotto-vm-") as tmp:
        script = Path(tmp) / "script.py"
        script.write_text(source)
        cmd = [node_binary(), str(RUNNER), "--heap", str(heap_bytes)]
        for host, vm in (puts or {}).items():
            cmd += ["--put", f"{host}:{vm}"]
        for vm, host in (gets or {}).items():
            cmd += ["--get", f"{vm}:{host}"]
        cmd += [str(script), *(args or [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise VMError(f"MicroPython VM failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
