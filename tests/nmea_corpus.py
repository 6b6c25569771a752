"""Where the NMEA receiver logs for the parser's differential tests are.

Two sets: the logs this repository ships (tests/data/nmea/*.log, see its
README), and an optional outside corpus of real receivers' logs kept beside the
repository, not in it: every directory named by $SOTTO_NMEA_CORPUS (separated
by ':'), and shared/nmea/ beside the repository or its worktree folder (the
steering repository's shared folder, which CI copies beside the clone). Logs are
found recursively by the .log suffix.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OWN_DIR = REPO_ROOT / "tests" / "data" / "nmea"


def outside_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("SOTTO_NMEA_CORPUS", "").split(":") if p]
    for up in (REPO_ROOT.parent, REPO_ROOT.parent.parent):
        dirs.append(up / "shared" / "nmea")
    seen: list[Path] = []
    for d in dirs:
        d = d.resolve()
        if d.is_dir() and d not in seen:
            seen.append(d)
    return seen


def logs() -> list[Path]:
    """Every log: the repository's first, then the outside corpus's, each sorted."""
    found = sorted(OWN_DIR.glob("*.log"))
    for d in outside_dirs():
        found += sorted(p for p in d.rglob("*.log") if p.is_file())
    return found


def label(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"
