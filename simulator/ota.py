"""Over-the-air updates in the simulator (docs/ota.md, docs/qa-guide.md).

A scenario with a `release` event gets: a release key made for the run (its
public half in the device's configuration, as `sotto provision
--release-key-pub` writes it), the base application on the virtual flash (the
compiled /sotto and /boards files, as `sotto flash` writes them), and at the
event a release built from that base with `changed` files changed, published
and assigned at the centre through host_tools.receiver.releases.

What the simulator cannot show: the CPython runtime runs the repository's
firmware whatever slot the boot selector picks. What it checks is everything
around that: the files that travel and land in the slot, the selector on the
flash, the switch at boot (boot.py's bootsel.at_boot, done by boot()), the
health check, the rollback and what the device reports."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sotto import bootsel
from sotto.storage import Storage

from host_tools import release
from host_tools.receiver import releases, store

_BASE: dict[str, bytes] = {}


def base_files() -> dict[str, bytes]:
    """The compiled application `sotto flash` writes under /sotto and /boards (built once)."""
    if not _BASE:
        _BASE.update(release.firmware_files(None))
    return _BASE


def release_key(work: Path, name: str = "release.key") -> tuple[Path, bytes]:
    path = work / name
    if path.exists():
        return path, release.public_bytes(release.load_key(path))
    return path, release.keygen(path)


def flash_base(flash_dir: Path) -> None:
    st = Storage(str(flash_dir))
    for p, data in base_files().items():
        name = p[1:]
        st.makedirs(name[:name.rfind("/")])
        st.write_atomic(name, data)


def build(work: Path, version: str, changed: int, *, wrong_key: bool = False, min_version: str = "0.0.0",
          allow_downgrade: bool = False) -> Path:
    """A release of the base with `changed` files changed (a byte appended)."""
    files = dict(base_files())
    for p in sorted(files)[:changed]:
        files[p] = files[p] + b"\x00" + version.encode()
    key_path, _ = release_key(work, "other.key" if wrong_key else "release.key")
    out = work / f"release-{version}{'-wrongkey' if wrong_key else ''}"
    release.build(files, version, release.load_key(key_path), out, min_version=min_version,
                  allow_downgrade=allow_downgrade, boards=[p.stem for p in
                                                          (Path(__file__).resolve().parents[1] / "hardware"
                                                           / "boards").glob("*.json")])
    return out


def publish_and_assign(db: Path, directory: Path, device_id: bytes, *, tamper: bool = False) -> str:
    """Publish at the centre and assign to the device; tamper: then change one file
    in the centre's store (what a compromised centre or storage would serve): the
    first by path, which build() changed (an unchanged one never travels)."""
    with closing(store.open_db(db)) as conn:
        out = releases.publish(conn, directory, release_key_pub=None, by="qa-scenario")
        version = out["version"]
        if tamper:
            path, data = conn.execute("SELECT path, data FROM release_files WHERE version = ? ORDER BY path "
                                      "LIMIT 1", (version,)).fetchone()
            evil = bytes(data)[:-1] + bytes([bytes(data)[-1] ^ 0xFF])   # same size, another digest
            conn.execute("UPDATE release_files SET data = ? WHERE version = ? AND path = ?",
                         (evil, version, path))
        releases.assign(conn, [device_id], version, by="qa-scenario")
    return version


def reported(db: Path, device_id: bytes) -> dict[str, Any]:
    with closing(store.open_db(db)) as conn:
        return releases.device_view(conn).get(device_id, {})


def selector(flash_dir: Path) -> dict[str, Any]:
    return bootsel.read(Storage(str(flash_dir / "data")))


def watch(dev: Any, posts_before: int) -> None:
    """After a step: note each release-chunk request and whether an alert was live,
    the release bytes received, and when a new version first runs good."""
    d = getattr(dev.device, "delivery", None)
    if d is None:
        return
    n = d.ota_posts - posts_before
    if n > 0:
        live = bool(dev.device.session.live)
        dev.ota_posts.extend([(dev.clock.now_ms, live)] * n)
    f = dev.device.fetcher
    if f is not None:
        seen = dev.ota_seen.get(id(f), 0)
        if f.air_bytes > seen:
            dev.ota_air_bytes += f.air_bytes - seen
            dev.ota_seen = {id(f): f.air_bytes}
    h = dev.device.health
    fw = dev.device.fw
    if h is not None and not h.on_trial and fw not in dev.ota_running and dev.ota_running:
        dev.ota_running[fw] = dev.clock.now_ms
    elif not dev.ota_running:
        dev.ota_running[fw] = dev.clock.now_ms   # the version it started with


def posts_of(dev: Any) -> int:
    d = getattr(dev.device, "delivery", None) if dev.device is not None else None
    return d.ota_posts if d is not None else 0


def _conn(db: Path) -> sqlite3.Connection:
    return store.open_db(db)
