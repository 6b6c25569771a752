"""Regenerate the golden vectors by running the firmware inside the MicroPython VM.

`make vectors` runs this: every tests/vectors/NAME.json (the inputs) is signed
by sotto.frames inside the VM (tools/vectors_in_vm.py) and NAME.cbor is
rewritten with the exact wire bytes. `--check` writes nothing and exits 1 if
any committed .cbor differs from what the VM produces.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from host_tools.errors import SottoError  # noqa: E402
from host_tools.vm import run_source  # noqa: E402

VECTORS_DIR = REPO_ROOT / "tests" / "vectors"
VM_SCRIPT = REPO_ROOT / "tools" / "vectors_in_vm.py"


def generate_in_vm(vectors_dir: Path = VECTORS_DIR) -> dict[str, bytes]:
    """{name: wire bytes} for every NAME.json, as the firmware makes them in the VM."""
    with tempfile.TemporaryDirectory(prefix="sotto-vectors-") as tmp:
        out = Path(tmp) / "out"
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for spec in sorted(vectors_dir.glob("*.json")):
            (inputs / spec.name).write_bytes(spec.read_bytes())
        run_source(VM_SCRIPT.read_text(), puts={inputs: "/vectors"}, gets={"/out": out})
        return {p.stem: p.read_bytes() for p in sorted(out.glob("*.cbor"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed .cbor files; write nothing")
    args = parser.parse_args(argv)
    try:
        made = generate_in_vm()
    except SottoError as e:
        print(f"make_vectors: {e}", file=sys.stderr)
        return 1
    specs = sorted(p.stem for p in VECTORS_DIR.glob("*.json"))
    if sorted(made) != specs:
        print(f"make_vectors: the VM made {sorted(made)}, expected {specs}", file=sys.stderr)
        return 1
    differ = []
    for name, wire in made.items():
        path = VECTORS_DIR / f"{name}.cbor"
        if path.exists() and path.read_bytes() == wire:
            continue
        differ.append(name)
        if not args.check:
            path.write_bytes(wire)
    if args.check:
        for name in differ:
            print(f"differs: tests/vectors/{name}.cbor", file=sys.stderr)
        print(f"{len(made) - len(differ)} of {len(made)} vectors match the VM's output")
        return 1 if differ else 0
    print(f"{len(made)} vectors made in the MicroPython VM; {len(differ)} rewritten"
          + (f": {', '.join(differ)}" if differ else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
