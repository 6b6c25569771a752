"""Releases at the centre (docs/ota.md): published releases, which device should
run which, staged rollouts by cohort, what each device reports, and the chunks
devices download (POST /v1/release-chunk).

The tables are one small schema component (`releases`: host_tools.storage.schema
RELEASES_DDL, migrated with the rest). SQL is plain (`?`, ON CONFLICT), for
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools import release
from host_tools.errors import SottoError
from host_tools.registry import write_transaction
from host_tools.storage.inlist import chunks, marks

CHUNK_MAX = 3072   # bytes of file data in one answer (the device's answer buffer is 4 KB)
UPDATE_NAMES = {1: "applied", 2: "rolled back", 3: "staged", 4: "refused: signature", 5: "refused: version",
                6: "refused: board", 7: "refused: file digest", 8: "flash", 9: "centre could not give it"}


class ReleaseStoreError(SottoError, ValueError):
    """A release or an assignment the centre refuses (unknown version, a rollout to wait for...)."""

    exit_code = 2


# --------------------------------------------------------------------------
# Publishing and listing.


def publish(conn: Any, directory: str | Path, *, release_key_pub: bytes | None,
            by: str | None = None) -> dict[str, Any]:
    """Store the release in `directory` (checked whole, and against release_key_pub when given)."""
    rel = release.load(directory, release_key_pub)
    m = rel.manifest
    row = conn.execute("SELECT manifest FROM releases WHERE version = ?", (rel.version,)).fetchone()
    if row is not None:
        if bytes(row[0]) != rel.manifest_blob:
            raise ReleaseStoreError(f"release {rel.version} is already published with another manifest: "
                                    "a version is never reused; build a new one")
        return {"version": rel.version, "published": False}
    total = sum(n for _p, _d, n in m["files"])
    with write_transaction(conn):
        conn.execute("INSERT INTO releases(version, manifest, release_kid, files, bytes, published_at, "
                     "published_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (rel.version, rel.manifest_blob, rel.kid.hex(), len(m["files"]), total, time.time(), by))
        conn.executemany("INSERT INTO release_files(version, path, sha256, size, data) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [(rel.version, p, d.hex(), n, rel.file_bytes(p)) for p, d, n in m["files"]])
    return {"version": rel.version, "published": True, "files": len(m["files"]), "bytes": total,
            "release_kid": rel.kid.hex(), "signature_checked": release_key_pub is not None}


def list_releases(conn: Any) -> list[dict[str, Any]]:
    out = []
    for version, kid, files, size, at, by in conn.execute(
            "SELECT version, release_kid, files, bytes, published_at, published_by FROM releases"):
        assigned = conn.execute("SELECT count(*) FROM release_assignments WHERE version = ?",
                                (version,)).fetchone()[0]
        running = conn.execute("SELECT count(*) FROM device_versions WHERE fw = ?", (version,)).fetchone()[0]
        out.append({"version": version, "release_kid": kid, "files": files, "bytes": size,
                    "published_at": at, "published_by": by, "assigned": assigned, "running": running})
    out.sort(key=lambda r: release.parse_version(r["version"]))
    return out


def _known(conn: Any, version: str) -> None:
    if conn.execute("SELECT 1 FROM releases WHERE version = ?", (version,)).fetchone() is None:
        raise ReleaseStoreError(f"no release {version} is published (`sotto releases list`)")


# --------------------------------------------------------------------------
# Assignments, cohorts, staged rollouts.


def assign(conn: Any, devices: list[bytes], version: str, by: str | None = None) -> None:
    _known(conn, version)
    now = time.time()
    with write_transaction(conn):
        conn.executemany("INSERT INTO release_assignments(device_id, version, assigned_at, assigned_by) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET "
                         "version = excluded.version, "
                         "assigned_at = excluded.assigned_at, assigned_by = excluded.assigned_by",
                         [(d, version, now, by) for d in devices])


def set_cohort(conn: Any, cohort: str, devices: list[bytes]) -> None:
    with write_transaction(conn):
        conn.executemany("INSERT INTO release_cohorts(device_id, cohort) VALUES (?, ?) "
                         "ON CONFLICT(device_id) DO UPDATE SET cohort = excluded.cohort",
                         [(d, cohort) for d in devices])


def cohort_members(conn: Any, cohort: str) -> list[bytes]:
    return sorted(bytes(r[0]) for r in conn.execute(
        "SELECT device_id FROM release_cohorts WHERE cohort = ?", (cohort,)))


@dataclass(frozen=True)
class Rollout:
    cohort: str
    version: str
    members: int
    assigned: list[bytes]      # every member assigned the version now
    added: list[bytes]         # assigned by this call
    stage: str                 # "first", "share", "all"


def rollout(conn: Any, cohort: str, version: str, share: int | None, *, force: bool = False,
            by: str | None = None) -> Rollout:
    """One step of a staged rollout: without share, a first device; with share
    (1..100), that share of the cohort (at least one); 100: all. A step that
    widens waits until every device already assigned runs the version (force: not)."""
    _known(conn, version)
    members = cohort_members(conn, cohort)
    if not members:
        raise ReleaseStoreError(f"cohort {cohort!r} has no devices (`sotto devices cohort {cohort} ID...`)")
    if share is not None and not 1 <= share <= 100:
        raise ReleaseStoreError(f"--share {share}: give a per cent, 1..100")
    assigned = {bytes(r[0]) for r in conn.execute(
        "SELECT device_id FROM release_assignments WHERE version = ?", (version,))} & set(members)
    target = 1 if share is None else max(1, math.ceil(share * len(members) / 100))
    if target > len(assigned) and assigned and not force:
        running = {bytes(r[0]) for r in conn.execute(
            "SELECT device_id FROM device_versions WHERE fw = ?", (version,))}
        waiting = sorted(assigned - running)
        if waiting:
            raise ReleaseStoreError(f"{len(waiting)} of the {len(assigned)} devices given {version} do "
                                    "not run it yet (see `sotto devices list`): wait for them, or --force")
    added = [m for m in members if m not in assigned][:max(0, target - len(assigned))]
    if added:
        assign(conn, added, version, by)
    stage = "all" if target >= len(members) else ("first" if target == 1 else "share")
    return Rollout(cohort, version, len(members), sorted(assigned | set(added)), added, stage)


def assigned_for(conn: Any, device_id: bytes) -> str | None:
    row = conn.execute("SELECT version FROM release_assignments WHERE device_id = ?", (device_id,)).fetchone()
    return str(row[0]) if row else None


def assigned_for_many(conn: Any, device_ids: Iterable[bytes]) -> dict[bytes, str]:
    """The release assigned to each of these devices that has one: one query per
    chunk (the writer asks for a whole group commit at once)."""
    out: dict[bytes, str] = {}
    for chunk in chunks(list(dict.fromkeys(device_ids))):
        out.update((bytes(d), str(v)) for d, v in conn.execute(
            f"SELECT device_id, version FROM release_assignments WHERE device_id IN ({marks(len(chunk))})",
            chunk))
    return out


# --------------------------------------------------------------------------
# What devices report (status frames: fw 24, pend 35, upd 36, err 37).


def record_versions(conn: Any, rows: dict[bytes, tuple[Any, ...]]) -> None:
    """rows: device id -> (fw, pend, upd, err, at); a field the frame lacked keeps its value,
    except that an update status replaces pend and err (the device sends them when set)."""
    for kid, (fw, pend, upd, err, at) in rows.items():
        conn.execute("INSERT INTO device_versions(device_id, fw, pend, upd, err, at) "
                     "VALUES (?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT(device_id) DO UPDATE SET fw = coalesce(excluded.fw, device_versions.fw), "
                     "pend = CASE WHEN excluded.upd IS NULL THEN device_versions.pend "
                     "ELSE excluded.pend END, "
                     "upd = coalesce(excluded.upd, device_versions.upd), "
                     "err = CASE WHEN excluded.upd IS NULL THEN device_versions.err ELSE excluded.err END, "
                     "at = excluded.at", (kid, fw, pend, upd, err, at))


def device_view(conn: Any) -> dict[bytes, dict[str, Any]]:
    """Per device: fw, pend, upd (and its name), err, cohort, assigned release."""
    out: dict[bytes, dict[str, Any]] = {}

    def row(kid: bytes) -> dict[str, Any]:
        return out.setdefault(kid, {"fw": None, "pending": None, "update": None, "update_name": None,
                                    "update_error": None, "cohort": None, "assigned_release": None})
    for kid, fw, pend, upd, err in conn.execute("SELECT device_id, fw, pend, upd, err FROM device_versions"):
        r = row(bytes(kid))
        r.update(fw=fw, pending=pend, update=upd, update_name=UPDATE_NAMES.get(upd) if upd else None,
                 update_error=err)
    for kid, cohort in conn.execute("SELECT device_id, cohort FROM release_cohorts"):
        row(bytes(kid))["cohort"] = cohort
    for kid, version in conn.execute("SELECT device_id, version FROM release_assignments"):
        row(bytes(kid))["assigned_release"] = version
    return out


def cohort_summary(conn: Any) -> dict[str, dict[str, Any]]:
    """Per cohort: devices, and per version how many run it and how many are assigned it."""
    view = device_view(conn)
    out: dict[str, dict[str, Any]] = {}
    for v in view.values():
        if v["cohort"] is None:
            continue
        c = out.setdefault(v["cohort"], {"devices": 0, "running": {}, "assigned": {}, "rolled_back": 0})
        c["devices"] += 1
        if v["fw"]:
            c["running"][v["fw"]] = c["running"].get(v["fw"], 0) + 1
        if v["assigned_release"]:
            c["assigned"][v["assigned_release"]] = c["assigned"].get(v["assigned_release"], 0) + 1
        if v["update"] == 2:
            c["rolled_back"] += 1
    return out


# --------------------------------------------------------------------------
# Chunks (the body of the centre's signed answer to POST /v1/release-chunk).


def chunk_answer(conn: Any, device_id: bytes, request: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer payload without req) for a device's authenticated request
    {"op": "get", "v": version, "p": "manifest" or a file path, "o": offset, "n": bytes}."""
    if not isinstance(request, dict) or request.get("op") != "get":
        return 400, {"reason": "bad-request", "detail": "op must be get"}
    v, p, o, n = request.get("v"), request.get("p"), request.get("o"), request.get("n")
    if not (isinstance(v, str) and isinstance(p, str) and type(o) is int and type(n) is int
            and o >= 0 and n > 0):
        return 400, {"reason": "bad-request", "detail": "v, p, o, n"}
    rel = assigned_for(conn, device_id)
    if rel != v:
        return 404, {"reason": "not-assigned", "detail": f"this device is assigned {rel or 'no release'}"}
    if p == "manifest":
        row = conn.execute("SELECT manifest FROM releases WHERE version = ?", (v,)).fetchone()
    else:
        row = conn.execute("SELECT data FROM release_files WHERE version = ? AND path = ?", (v, p)).fetchone()
    if row is None:
        return 404, {"reason": "no-such-file", "detail": p[:64]}
    data = bytes(row[0])
    if o > len(data):
        return 400, {"reason": "bad-request", "detail": "offset beyond the end"}
    return 200, {"p": p, "o": o, "d": data[o:o + min(n, CHUNK_MAX)], "z": len(data), "rel": v}


def digest_of(conn: Any, version: str, path: str) -> str | None:
    row = conn.execute("SELECT data FROM release_files WHERE version = ? AND path = ?",
                       (version, path)).fetchone()
    return hashlib.sha256(bytes(row[0])).hexdigest() if row else None
