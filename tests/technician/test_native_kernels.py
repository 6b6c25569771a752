"""The device's native kernels: `sotto flash` builds sotto/k_*.py again with
real viper/native marks for the device's -march. The bytecode of the same
source is proven byte-for-byte in tests/firmware/test_kernels.py (CPython and
the MicroPython VM); here: the native source is that same code, it compiles
for the ESP32-S3 (xtensawin) and the others, and a flash build ships it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from host_tools import firmware_build, flash
from host_tools.firmware_build import FIRMWARE_DIR, CompileError, kernel_sources, native_build, native_source

KERNELS = kernel_sources()
# mpy arch codes (py/persistentcode.h) in the .mpy header's third byte, bits 2..7
MPY_ARCH = {"x64": 2, "armv7m": 5, "xtensawin": 10}


def _strip_marks(tree: ast.Module) -> str:
    """The module with decorators and the marks' import removed, as text."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.decorator_list = []
    tree.body = [n for n in tree.body
                 if not (isinstance(n, ast.ImportFrom) and n.module == "sotto.kern")
                 and not (isinstance(n, ast.Import) and n.names[0].name == "micropython")]
    return ast.dump(tree)


def test_there_are_kernels_for_sha512_the_field_and_adpcm():
    assert {p.name for p in KERNELS} == {"k_sha512.py", "k_f25519.py", "k_adpcm.py"}


@pytest.mark.parametrize("rel", KERNELS, ids=lambda p: p.stem)
def test_native_source_is_the_same_code_with_real_marks(rel):
    text = (FIRMWARE_DIR / rel).read_text()
    native = native_source(text)
    assert "from sotto.kern" not in native and "import micropython\n" in native
    portable_decorators = text.count("\n@viper\n") + text.count("\n@native\n")
    assert portable_decorators >= 1
    assert native.count("@micropython.viper\n") + native.count("@micropython.native\n") == portable_decorators
    assert _strip_marks(ast.parse(text)) == _strip_marks(ast.parse(native))


@pytest.mark.parametrize("rel", KERNELS, ids=lambda p: p.stem)
def test_pointer_casts_only_inside_viper_functions(rel):
    # outside viper a ptrN() call would be the identity shim on the device too
    tree = ast.parse((FIRMWARE_DIR / rel).read_text())
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        marks = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
        calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        if calls & {"ptr8", "ptr16", "ptr32"}:
            assert "viper" in marks, f"{rel}: {fn.name} casts pointers without @viper"


@pytest.mark.parametrize("march", sorted(MPY_ARCH))
def test_every_kernel_compiles_as_native_code(march, tmp_path):
    for rel in KERNELS:
        out = native_build(rel, tmp_path, march)
        header = out.read_bytes()[:4]
        assert header[:2] == b"M\x06" and header[2] >> 2 == MPY_ARCH[march], (rel, header)


def test_a_viper_type_error_fails_the_build(tmp_path):
    bad = tmp_path / "sotto" / "k_bad.py"
    bad.parent.mkdir()
    bad.write_text("from sotto.kern import ptr8, viper\n\n\n@viper\ndef f(b):\n    p = ptr8(b)\n"
                   "    x = 1\n    x = p\n    return x\n")
    with pytest.raises(CompileError, match="k_bad"):
        native_build(Path("sotto/k_bad.py"), tmp_path / "out", "xtensawin", tmp_path)


def test_native_source_refuses_a_kernel_without_the_marks_import():
    with pytest.raises(CompileError):
        native_source("import micropython\n\n@micropython.viper\ndef f():\n    pass\n")


def test_a_flash_build_for_a_native_device_ships_the_kernels(tmp_path):
    build = flash.build_firmware(tmp_path, "xtensawin")
    paths = {f.device_path for f in build.files}
    for rel in KERNELS:
        assert f"/sotto/{rel.stem}.mpy" in paths  # the bytecode stays
        assert f"/sotto/{rel.stem}_native.mpy" in paths
    assert build.manifest()["march"] == "xtensawin"
    bytecode = flash.build_firmware(tmp_path, None)
    assert not any(p.endswith("_native.mpy") for p in (f.device_path for f in bytecode.files))


def test_the_command_builds_native_kernels(tmp_path, capsys):
    assert firmware_build.main(["--out", str(tmp_path), "--march", "xtensawin"]) == 0
    assert "3 native kernels for xtensawin" in capsys.readouterr().out
    assert (tmp_path / "sotto" / "k_f25519_native.mpy").exists()
