"""Where the NMEA receiver logs for the parser's differential tests are.

Two sets: the logs this repository ships (tests/data/nmea/*.log, see its README),
and gpsd's regression corpus of real receivers' logs (154 files of gpsd 3.22,
from Debian's source package), which `make nmea-corpus` (part of `make test`)
fetches into build/nmea-corpus/ (tools/fetch_nmea_corpus.py; $SOTTO_NMEA_CACHE moves
it). It is required: without it the tests fail and say how to fetch it. More
folders of logs can be added with $SOTTO_NMEA_CORPUS (separated by ':'), read
recursively for *.log.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OWN_DIR = REPO_ROOT / "tests" / "data" / "nmea"
_TOOL = REPO_ROOT / "tools" / "fetch_nmea_corpus.py"
_spec = importlib.util.spec_from_file_location("fetch_nmea_corpus", _TOOL)
assert _spec is not None and _spec.loader is not None
fetcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetcher)

GPSD_DIR = fetcher.log_dir()


class CorpusMissing(AssertionError):
    """gpsd's logs are not there: a failure, never a skip."""


def gpsd_logs() -> list[Path]:
    """gpsd's logs; raises CorpusMissing when they have not been fetched."""
    if not fetcher.present():
        raise CorpusMissing(f"the gpsd NMEA corpus is not in {fetcher.cache_dir()}: run `make nmea-corpus` "
                            "(it downloads gpsd 3.22's source package once and checks its SHA-256)")
    return sorted(GPSD_DIR.glob("*.log"))


def extra_dirs() -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get("SOTTO_NMEA_CORPUS", "").split(":") if p]


def logs() -> list[Path]:
    """Every log: the repository's, gpsd's, then any extra folders', each sorted."""
    found = sorted(OWN_DIR.glob("*.log"))
    found += gpsd_logs()
    for d in extra_dirs():
        found += sorted(p for p in d.rglob("*.log") if p.is_file())
    return found


def label(path: Path) -> str:
    if path.is_relative_to(GPSD_DIR):
        return f"gpsd-3.22/{path.name}"
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"
