"""The import graph, read from the source with `ast` (nothing is imported):

    sotto_cli  ->  host_tools, simulator  ->  (firmware) sotto

- no module of host_tools or simulator imports the CLI package (sotto_cli);
- host_tools does not import simulator (the simulator is built on the host tools);
- firmware/sotto imports only MicroPython's own modules and itself, and only
  sotto/hal touches the hardware modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI_PACKAGE = "sotto_cli"

# MicroPython's library (docs.micropython.org, "MicroPython libraries", release 1.27):
# the Python-standard subset and the MicroPython-specific modules.
MICROPYTHON_MODULES = frozenset({
    "array", "asyncio", "binascii", "builtins", "cmath", "collections", "deflate", "errno", "gc", "hashlib",
    "heapq", "io", "json", "math", "os", "platform", "random", "re", "select", "socket", "ssl", "struct",
    "sys", "time", "zlib", "_thread",
    "bluetooth", "btree", "cryptolib", "framebuf", "machine", "micropython", "neopixel", "network",
    "uctypes", "vfs", "esp", "esp32",
})
HARDWARE_MODULES = frozenset({"machine", "esp32", "esp", "network", "bluetooth", "neopixel"})


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _sources(root: Path, package: str) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def _offenders(root: Path, package: str, forbidden: str) -> list[str]:
    return [f"{p.relative_to(root)}:{line} imports {name}"
            for p in _sources(root, package)
            for line, name in imports_of(p, root)
            if name == forbidden or name.startswith(forbidden + ".")]


@pytest.mark.parametrize("package", ["host_tools", "simulator"])
def test_library_packages_never_import_the_cli(package: str) -> None:
    assert _sources(REPO, package), f"no sources found under {package}/"
    offenders = _offenders(REPO, package, CLI_PACKAGE)
    assert offenders == []


def test_host_tools_does_not_import_the_simulator() -> None:
    offenders = _offenders(REPO, "host_tools", "simulator")
    assert offenders == []


def test_the_cli_sits_on_top() -> None:
    """The CLI is a real layer: it uses both packages below it."""
    names = {name.split(".")[0] for p in _sources(REPO, CLI_PACKAGE) for _, name in imports_of(p, REPO)}
    assert {"host_tools", "simulator"} <= names


def test_firmware_imports_only_micropython_modules_and_itself() -> None:
    root = REPO / "firmware"
    sources = _sources(root, "sotto")
    assert len(sources) > 20
    outside = [f"{p.relative_to(REPO)}:{line} imports {name}"
               for p in sources for line, name in imports_of(p, root)
               if name.split(".")[0] not in MICROPYTHON_MODULES and name.split(".")[0] != "sotto"]
    assert outside == []


def test_only_the_hal_touches_hardware_modules() -> None:
    root = REPO / "firmware"
    hal = root / "sotto" / "hal"
    touching = [f"{p.relative_to(REPO)}:{line} imports {name}"
                for p in _sources(root, "sotto") if hal not in p.parents
                for line, name in imports_of(p, root) if name.split(".")[0] in HARDWARE_MODULES]
    assert touching == []


def test_the_checks_see_imports_of_every_form(tmp_path: Path) -> None:
    """The parser behind the checks finds plain, from, relative and nested imports."""
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import mod\n")
    (pkg / "mod.py").write_text("import sotto_cli.cli\nfrom ..other import x\n"
                                "def f():\n    from sotto_cli import commands\n")
    assert imports_of(pkg / "mod.py", tmp_path) == [(1, "sotto_cli.cli"), (2, "pkg.other"), (4, "sotto_cli")]
    assert imports_of(pkg / "__init__.py", tmp_path) == [(1, "pkg.sub")]
    assert len(_offenders(tmp_path, "pkg", CLI_PACKAGE)) == 2
