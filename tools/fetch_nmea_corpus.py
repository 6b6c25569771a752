"""Fetch the real receivers' NMEA logs the parser's differential tests read
(`make nmea-corpus`, which `make test` runs first).

gpsd's regression logs (test/daemon/*.log: 154 files from many chipsets, among
them april6_2019.log, a Telit HE910 just after the 2019 GPS week roll-over) come
from Debian's source package of gpsd 3.22, downloaded once, checked against its
SHA-256 and unpacked under build/nmea-corpus/ (or $SOTTO_NMEA_CACHE). The
repository keeps none of them: tests/data/nmea/README.md records the source, the
version, the licence (BSD-2-Clause) and the hash.

    python tools/fetch_nmea_corpus.py            # fetch if needed; prints the log folder
    python tools/fetch_nmea_corpus.py --check    # only say whether it is there (exit 1 if not)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

URL = "http://deb.debian.org/debian/pool/main/g/gpsd/gpsd_3.22.orig.tar.xz"
SHA256 = "68d2a04e237a02ce42158ceda462a24afe11eeaa2b13482e94ac7ef66693f3a0"
TOP = "gpsd-3.22"
MEMBERS = ("test/daemon/", "COPYING")  # the logs, and the licence they are under
LOG_COUNT = 154
REPO_ROOT = Path(__file__).resolve().parent.parent


class CorpusError(Exception):
    """The corpus could not be fetched or is not what it should be."""


def cache_dir() -> Path:
    return Path(os.environ.get("SOTTO_NMEA_CACHE") or REPO_ROOT / "build" / "nmea-corpus")


def log_dir(cache: Path | None = None) -> Path:
    """Where the gpsd logs are once fetched."""
    return (cache or cache_dir()) / TOP / "test" / "daemon"


def _stamp(cache: Path) -> Path:
    return cache / f"{TOP}.sha256"


def present(cache: Path | None = None) -> bool:
    """The corpus is unpacked from the archive with the expected hash, and whole."""
    cache = cache or cache_dir()
    stamp = _stamp(cache)
    return (stamp.exists() and stamp.read_text().strip() == SHA256
            and len(list(log_dir(cache).glob("*.log"))) == LOG_COUNT)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def fetch(cache: Path | None = None, url: str = URL) -> Path:
    """Download (once), check and unpack; returns the log folder."""
    cache = cache or cache_dir()
    if present(cache):
        return log_dir(cache)
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / url.rsplit("/", 1)[1]
    if not archive.exists() or _sha256(archive) != SHA256:
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".part")
        os.close(fd)
        try:
            print(f"nmea-corpus: downloading {url}", file=sys.stderr)
            with urllib.request.urlopen(url, timeout=120) as answer, open(tmp, "wb") as out:
                while block := answer.read(1 << 16):
                    out.write(block)
            os.replace(tmp, archive)
        except OSError as e:
            raise CorpusError(f"cannot download {url}: {e}") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    got = _sha256(archive)
    if got != SHA256:
        archive.unlink()
        raise CorpusError(f"{url}: SHA-256 {got}, expected {SHA256}; the file was removed")
    with tarfile.open(archive, "r:xz") as tar:
        wanted = [m for m in tar.getmembers()
                  if m.isfile() and any(m.name.startswith(f"{TOP}/{p}") for p in MEMBERS)
                  and (m.name.endswith(".log") or m.name.endswith("COPYING"))]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuse links and odd paths
            tar.extractall(cache, members=wanted, filter="data")
        else:  # pragma: no cover - older Pythons; the members are plain files checked above
            tar.extractall(cache, members=wanted)
    found = len(list(log_dir(cache).glob("*.log")))
    if found != LOG_COUNT:
        raise CorpusError(f"{archive}: {found} logs in test/daemon, expected {LOG_COUNT}")
    _stamp(cache).write_text(SHA256 + "\n")
    return log_dir(cache)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fetch gpsd's NMEA regression logs for the parser's tests.")
    ap.add_argument("--check", action="store_true", help="only say whether the corpus is there")
    args = ap.parse_args(argv)
    if args.check:
        ok = present()
        print(log_dir() if ok else f"no NMEA corpus in {cache_dir()}: run `make nmea-corpus`")
        return 0 if ok else 1
    try:
        print(fetch())
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
