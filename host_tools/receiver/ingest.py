"""Ingest: verify each frame, store it durably, then answer.

    receiver = Receiver(db_path)
    answer = receiver.ingest([wire, wire, ...], via="http", peer="10.0.0.7")
    answer.results[0].status          # "accepted" | "duplicate" | "rejected" (+ .reason)
    answer.to_cbor()                  # the body of the HTTP answer (docs/frames.md)

One writer thread owns the database: it takes every request waiting at that
moment, decodes and verifies their frames (host_tools.frames against the
registry's keys, reloaded when the registry changed) and stores them in a single
transaction (group commit). The request threads only do HTTP.
A request's answer is built only after that COMMIT returned: `accepted` and
`duplicate` mean "on disk". If the transaction fails, nothing is acknowledged
(StorageUnavailable, HTTP 503) and the device sends the frames again.

Per frame, in order:
1. not decodable -> rejected with the decoder's reason;
2. the exact bytes are already stored (same device and seq, same SHA-256)
   -> duplicate, whatever else is true now (e.g. the key was rotated since);
3. verification failed (unknown or revoked key, bad signature, digest, time)
   -> rejected with that reason, recorded in `rejections`, never stored;
4. otherwise stored (accepted). A *different* frame with a seq this key used
   before is stored too, not discarded: it is signed by the device, so it is
   evidence; the alert counts it (`seq_reused`) and the log warns.

Alert frames join their alert (device key, sid); the alert's hash-chain
counters are updated as frames arrive in any order: `starts` (alert-start
frames), `dangling` (frames whose predecessor is not here yet: a gap) and
`forks` (two frames naming the same predecessor: a break).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.errors import SottoError
from host_tools.frames import MAX_FUTURE_S, Frame, FrameError, FrameType, Reason, decode_frame, verify_frame
from host_tools.ids import format_device_id
from host_tools.receiver.store import open_db
from host_tools.receiver.verifier import VerifyHelper
from host_tools.registry import KeyBookEntry, Registry

log = logging.getLogger("sotto.receiver")

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
MAX_TXN_FRAMES = 2000          # frames per group commit
COMMIT_TIMEOUT_S = 30.0        # a request waits this long for its commit, then gets 503
MAX_REJECTIONS_KEPT = 100_000  # the rejections table keeps the newest this many
MAX_CLOSED_LISTED = 16
HELPER_MIN_FRAMES = 4          # smaller groups are verified in the writer alone
HELPER_SHARE = 0.6             # the share of a group's signatures the helper checks


class StorageUnavailable(SottoError, OSError):
    """The frames could not be committed; nothing was acknowledged (HTTP 503)."""


class Result(NamedTuple):
    """The outcome for one frame of a request."""

    status: str
    device: bytes | None
    seq: int | None
    reason: str | None = None
    detail: str = ""
    alert_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The result map of docs/frames.md."""
        out: dict[str, Any] = {"status": self.status, "device": self.device, "seq": self.seq}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Answer:
    """The answer to one request: a result per frame, the receiver's clock and
    the sessions of the requesting device(s) the centre has closed."""

    results: list[Result]
    time: int
    closed: list[int] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"results": [r.to_wire() for r in self.results], "time": self.time}
        if self.closed:
            out["closed"] = list(self.closed)
        return out

    def to_cbor(self) -> bytes:
        """Deterministically encoded (the device decodes it strictly)."""
        return cbor2.dumps(self.to_wire(), canonical=True)


# --------------------------------------------------------------------------
# Keys.


@dataclass(frozen=True)
class _Key:
    key_id: int
    key: Ed25519PublicKey
    raw: bytes
    revoked_at: float | None


@dataclass(frozen=True)
class _Device:
    device_id: bytes
    officer: str | None
    active: _Key | None
    revoked: tuple[_Key, ...]


def _device(entry: KeyBookEntry) -> _Device:
    def key(k: Any) -> _Key:
        return _Key(k.key_id, Ed25519PublicKey.from_public_bytes(k.public_key), k.public_key, k.revoked_at)
    return _Device(entry.device_id, entry.officer, key(entry.active) if entry.active else None,
                   tuple(key(k) for k in entry.revoked))


class KeyBook:
    """The registry's keys in memory, reloaded whenever the registry changed
    (its generation number moves on any add, rotate or revoke, from any process)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()   # for a registry connection shared between threads
        self._generation = -1
        self._devices: dict[bytes, _Device] = {}

    def refresh(self) -> None:
        """Reload if the registry changed since the last look (one small query)."""
        with self._lock:
            gen = self._registry.generation()
            if gen == self._generation:
                return
            gen, book = self._registry.key_book()
            self._devices = {kid: _device(entry) for kid, entry in book.items()}
            self._generation = gen

    def get(self, kid: bytes) -> _Device | None:
        return self._devices.get(kid)

    @property
    def generation(self) -> int:
        return self._generation

    def active_keys(self) -> dict[bytes, bytes]:
        """{device id: active public key (32 bytes)} for every device that has one."""
        return {kid: d.active.raw for kid, d in self._devices.items() if d.active is not None}

    def __len__(self) -> int:
        return len(self._devices)


# --------------------------------------------------------------------------
# Verification (the caller's thread).


@dataclass
class Incoming:
    """One frame of a request after verification, on its way to the writer."""

    wire: bytes
    digest: bytes
    frame: Frame | None
    reason: Reason | None
    detail: str
    key_id: int | None = None
    officer: str | None = None


def _time_text(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


@dataclass
class _Pending:
    """A decoded frame whose device has an active key: its signature is next."""

    wire: bytes
    digest: bytes
    frame: Frame
    device: _Device


def _resolve(wire: bytes, keys: KeyBook) -> Incoming | _Pending:
    """Decode the frame and find its key; an Incoming when that already decides it."""
    digest = hashlib.sha256(wire).digest()
    try:
        frame = decode_frame(wire)
    except FrameError as e:
        return Incoming(wire, digest, None, e.reason, e.detail)
    device = keys.get(frame.kid)
    if device is None:
        return Incoming(wire, digest, frame, Reason.UNKNOWN_DEVICE,
                        f"device {frame.device_id} is not in the registry")
    if device.active is None:
        when = max((k.revoked_at or 0) for k in device.revoked) if device.revoked else None
        return Incoming(wire, digest, frame, Reason.REVOKED_DEVICE,
                        f"device {frame.device_id} was revoked ({_time_text(when)})")
    return _Pending(wire, digest, frame, device)


def _finish(p: _Pending, ok: bool, reason: Reason | None, detail: str) -> Incoming:
    """The Incoming for a verified (or not) frame; a bad signature that a revoked
    key of the device makes good is `revoked-device`."""
    device = p.device
    frame = p.frame
    if ok:
        assert device.active is not None
        return Incoming(p.wire, p.digest, frame, None, "", device.active.key_id, device.officer)
    if reason == Reason.BAD_SIGNATURE:
        for old in device.revoked:
            try:
                old.key.verify(frame.signature, frame.sig_structure)
            except InvalidSignature:
                continue
            return Incoming(p.wire, p.digest, frame, Reason.REVOKED_DEVICE,
                            f"signed with a key of device {frame.device_id} that was revoked "
                            f"({_time_text(old.revoked_at)})")
    return Incoming(p.wire, p.digest, frame, reason, detail)


def _verify_here(p: _Pending, now: float, max_future_s: int) -> Incoming:
    assert p.device.active is not None
    v = verify_frame(p.frame, p.device.active.key, now=now, max_future_s=max_future_s)
    return _finish(p, v.ok, v.reason, v.detail)


def check_frame(wire: bytes, keys: KeyBook, now: float, max_future_s: int = MAX_FUTURE_S) -> Incoming:
    """Decode and verify one frame against the registry; never raises for bad input."""
    r = _resolve(wire, keys)
    return r if isinstance(r, Incoming) else _verify_here(r, now, max_future_s)


# --------------------------------------------------------------------------
# The writer (one thread, one connection, group commit).


@dataclass
class _Job:
    wires: Sequence[bytes]
    via: str
    peer: str | None
    now: float
    max_future_s: int = MAX_FUTURE_S
    items: list[Incoming] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Result] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    error: str | None = None


_STOP = object()
_IN_CHUNK = 400            # values per IN (...) list, well under SQLite's variable limit
MAX_CACHED_CHAINS = 4096   # alerts whose links the writer keeps in memory

_INSERT_FRAME = (
    "INSERT INTO frames(device_id, key_id, seq, digest, type, sid, alert_id, time, up_ms, flags, link, "
    "prev, received_at, via, peer, size, lat_e7, lon_e7, acc_m, age_s, src, battery, audio_off, audio_ns, "
    "audio_rate, wire) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# All expressions of an UPDATE see the row as it was, so the conditions below
# compare with the old start_seq / end_seq / battery_seq.
_NEWER_START = "(:start_seq IS NOT NULL AND (start_seq IS NULL OR start_seq > :start_seq))"
_NEWER_END = "(:end_seq IS NOT NULL AND (end_seq IS NULL OR end_seq < :end_seq))"
_NEWER_BATT = "(:batt_seq IS NOT NULL AND (battery_seq IS NULL OR battery_seq < :batt_seq))"
_ALERT_UPDATE = (
    "UPDATE alerts SET frames = frames + :frames, starts = starts + :starts, "
    "dangling = dangling + :dangling, "
    "forks = forks + :forks, seq_reused = seq_reused + :reused, audio_frames = audio_frames + :audio_frames, "
    "audio_samples = audio_samples + :audio_samples, audio_rate = coalesce(:audio_rate, audio_rate), "
    "duress = max(duress, :duress), "
    "duress_at = CASE WHEN :duress = 1 AND duress_at IS NULL THEN :now ELSE duress_at END, "
    "last_received_at = max(last_received_at, :now), "
    f"started_at = CASE WHEN {_NEWER_START} THEN :started_at ELSE started_at END, "
    f"trigger = CASE WHEN {_NEWER_START} THEN :trigger ELSE trigger END, "
    f"start_received_at = CASE WHEN {_NEWER_START} THEN :now ELSE start_received_at END, "
    f"start_seq = CASE WHEN {_NEWER_START} THEN :start_seq ELSE start_seq END, "
    f"end_type = CASE WHEN {_NEWER_END} THEN :end_type ELSE end_type END, "
    f"end_why = CASE WHEN {_NEWER_END} THEN :end_why ELSE end_why END, "
    f"ended_at = CASE WHEN {_NEWER_END} THEN :now ELSE ended_at END, "
    f"end_seq = CASE WHEN {_NEWER_END} THEN :end_seq ELSE end_seq END, "
    f"battery = CASE WHEN {_NEWER_BATT} THEN :battery ELSE battery END, "
    f"battery_seq = CASE WHEN {_NEWER_BATT} THEN :batt_seq ELSE battery_seq END "
    "WHERE alert_id = :alert_id")
_DEVICE_STATE = (
    "INSERT INTO device_state(device_id, last_seen_at, last_seq, last_type, last_via, frames, "
    "heartbeat_s, heartbeat_at, battery, battery_at, status, status_at, dropped_total) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, "
    "last_seq = excluded.last_seq, last_type = excluded.last_type, last_via = excluded.last_via, "
    "frames = frames + excluded.frames, heartbeat_s = coalesce(excluded.heartbeat_s, heartbeat_s), "
    "heartbeat_at = coalesce(excluded.heartbeat_at, heartbeat_at), "
    "battery = coalesce(excluded.battery, battery), battery_at = coalesce(excluded.battery_at, battery_at), "
    "status = coalesce(excluded.status, status), status_at = coalesce(excluded.status_at, status_at), "
    "dropped_total = dropped_total + excluded.dropped_total")
_INSERT_REJECTION = ("INSERT INTO rejections(at, via, peer, device_id, seq, reason, detail, size, digest) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
# Frame types as plain ints for the hot path (FrameType(...) builds an enum member each time).
_ALERT_START, _AUDIO = int(FrameType.ALERT_START), int(FrameType.AUDIO)
_DURESS, _END = int(FrameType.DURESS), int(FrameType.END)
_HEARTBEAT, _STATUS = int(FrameType.HEARTBEAT), int(FrameType.STATUS)
_TERMINAL = (int(FrameType.CANCEL), _END)
_LOCATION = struct.Struct(">iiHHB")


def _chunks(values: list[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class _Chain:
    """The links of one alert's stored frames and how many frames name each as `prev`."""

    __slots__ = ("links", "named")

    def __init__(self) -> None:
        self.links: set[bytes] = set()
        self.named: dict[bytes, int] = {}


class _AlertDelta:
    """One alert's new frames in this transaction and what they change."""

    __slots__ = ("frames", "starts", "reused", "audio_frames", "audio_samples", "audio_rate", "duress",
                 "links", "prevs", "start_seq", "started_at", "trigger", "end_seq", "end_type", "end_why",
                 "batt_seq", "battery")

    def __init__(self) -> None:
        self.frames = self.starts = self.reused = 0
        self.audio_frames = self.audio_samples = self.duress = 0
        self.audio_rate: int | None = None
        self.links: list[bytes] = []            # of the new frames, in arrival order
        self.prevs: list[bytes] = []            # their `prev` (alert-start has none)
        self.start_seq: int | None = None       # the earliest alert-start among them
        self.started_at: int | None = None
        self.trigger: int | None = None
        self.end_seq: int | None = None         # the latest cancel / end among them
        self.end_type: int | None = None
        self.end_why: int | None = None
        self.batt_seq: int | None = None        # the latest battery reading
        self.battery: int | None = None

    def chain_deltas(self, chain: _Chain) -> tuple[int, int]:
        """(dangling, forks) changes when these frames join `chain`.

        dangling = frames whose `prev` names no frame of the alert; forks = for
        each `prev` value, the frames naming it beyond the first. New frames are
        unique (duplicates never get here), so their links are new: stored frames
        naming one of them were dangling until now.
        """
        new_links = set(self.links)
        dangling = sum(1 for p in self.prevs if p not in chain.links and p not in new_links)
        dangling -= sum(chain.named.get(link, 0) for link in new_links)
        counts: dict[bytes, int] = {}
        for p in self.prevs:
            counts[p] = counts.get(p, 0) + 1
        forks = 0
        for p, n in counts.items():
            before = chain.named.get(p, 0)
            forks += max(0, before + n - 1) - max(0, before - 1)
        return dangling, forks

    def apply_to(self, chain: _Chain) -> None:
        chain.links.update(self.links)
        for p in self.prevs:
            chain.named[p] = chain.named.get(p, 0) + 1


class _DeviceDelta:
    __slots__ = ("last_seen_at", "last_seq", "last_type", "last_via", "frames", "heartbeat_s",
                 "heartbeat_at", "battery", "battery_at", "status", "status_at", "dropped")

    def __init__(self) -> None:
        self.frames = self.dropped = 0
        self.last_seen_at = 0.0
        self.last_seq: int | None = None
        self.last_type: int | None = None
        self.last_via: str | None = None
        self.heartbeat_s: int | None = None
        self.heartbeat_at: float | None = None
        self.battery: int | None = None
        self.battery_at: float | None = None
        self.status: int | None = None
        self.status_at: float | None = None


class _Txn:
    """What one group commit accumulates, written with one statement per kind."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.seen: dict[tuple[bytes, int], list[tuple[int, bytes]]] = {}   # (kid, seq) -> [(key_id, digest)]
        self.rows: list[tuple[Any, ...]] = []
        self.alerts: dict[int, _AlertDelta] = {}
        self.devices: dict[bytes, _DeviceDelta] = {}
        self.rejections: list[tuple[Any, ...]] = []
        self.new_alert_keys: list[tuple[int, int]] = []
        self.seq_reuse: list[tuple[bytes, int]] = []
        self.news: list[str] = []     # for the console, logged after COMMIT


class Writer(threading.Thread):
    """The one thread that verifies and writes frames (see module doc).

    Only one receiver writes a database (`sotto receive` holds a lock file), so
    the writer may keep what it wrote in memory: alert ids by (key, session) and
    each recent alert's chain links. Both are dropped for whatever a failed
    transaction touched.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, name: str = "sotto-writer",
                 verify_helper: bool = False) -> None:
        super().__init__(name=name, daemon=True)
        self.helper = VerifyHelper() if verify_helper else None
        if self.helper is not None and not self.helper.start():
            self.helper = None
        self.conn = open_db(db_path, create=True)
        self.keys = KeyBook(Registry(self.conn))
        self.keys.refresh()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._alert_ids: dict[tuple[int, int], int] = {}
        self._chains: OrderedDict[int, _Chain] = OrderedDict()
        self._duress_alerts: set[int] = set()
        self._rejections_since_trim = 0
        self.commits = 0
        self.failed_commits = 0
        self.last_error: str | None = None

    # -- the request threads' side ------------------------------------------------
    def submit(self, job: _Job) -> None:
        if not self.is_alive():
            job.error = "the storage writer is not running"
            job.done.set()
            return
        self._queue.put(job)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop and close the database."""
        if self.is_alive():
            self._queue.put(_STOP)
            self.join(timeout_s)

    # -- the thread -----------------------------------------------------------------
    def run(self) -> None:
        try:
            stopping = False
            while not stopping:
                job = self._queue.get()
                if job is _STOP:
                    break
                jobs = [job]
                count = len(job.wires)
                while count < MAX_TXN_FRAMES:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stopping = True
                        break
                    jobs.append(more)
                    count += len(more.wires)
                self._commit_group(jobs)
        finally:
            self._fail_waiting("the receiver is shutting down")
            if self.helper is not None:
                self.helper.close()
            self.conn.close()

    def _fail_waiting(self, why: str) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job.error = why
                job.done.set()

    def _commit_group(self, jobs: list[_Job]) -> None:
        try:
            self._commit(jobs)
        except Exception as e:
            if len(jobs) > 1:
                # One bad request must not take the others down: retry each alone.
                for job in jobs:
                    self._commit_group([job])
                return
            self.failed_commits += 1
            self.last_error = f"{type(e).__name__}: {e}"
            if isinstance(e, sqlite3.Error):
                log.error("storage failed, %d frames not acknowledged: %s", len(jobs[0].wires), e)
            else:
                log.exception("bug while storing %d frames; not acknowledged", len(jobs[0].wires))
            jobs[0].error = f"storage failed: {e}"
            jobs[0].results = []
            jobs[0].done.set()
            return
        for job in jobs:
            job.done.set()

    def _commit(self, jobs: list[_Job]) -> None:
        conn = self.conn
        txn = _Txn(max(job.now for job in jobs))
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Verify here, not in the request threads: one thread doing all the CPU
            # work keeps the GIL from bouncing between verifiers and the writer.
            self.keys.refresh()
            self._verify(jobs)
            self._load_seen(txn, jobs)
            for job in jobs:
                job.results = [self._decide(txn, job, item) for item in job.items]
            self._write(txn)
            self._closed_for(jobs)
            conn.execute("COMMIT")
        except BaseException:
            for key in txn.new_alert_keys:
                self._alert_ids.pop(key, None)
            for alert_id in txn.alerts:
                self._chains.pop(alert_id, None)
                self._duress_alerts.discard(alert_id)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # a failed COMMIT may already have rolled back
            raise
        for alert_id, d in txn.alerts.items():
            chain = self._chains.get(alert_id)
            if chain is not None:
                d.apply_to(chain)
        self.commits += 1
        self.last_error = None
        for news in txn.news:
            log.warning("%s", news)
        for kid, seq in txn.seq_reuse:
            log.warning("device %s sent a different frame with seq %d, which it used before; both are kept "
                        "(a device whose counters went back? a cloned key?)", format_device_id(kid), seq)
        for job in jobs:
            for item, result in zip(job.items, job.results, strict=True):
                if result.status == REJECTED:
                    _log_rejection(job, item, result)

    def _verify(self, jobs: list[_Job]) -> None:
        """Every job's items: decoded, keys found, signatures checked. With a helper
        process, the first share of the frames goes to it at once (it decodes and
        verifies them with the keys it was given) while this thread decodes every
        frame and verifies the rest; then its verdicts are matched up."""
        wires = [(job, wire) for job in jobs for wire in job.wires]
        helper = self.helper
        cut = 0
        if helper is not None and len(wires) >= HELPER_MIN_FRAMES:
            if helper.keys_generation != self.keys.generation:
                if helper.send_keys(self.keys.active_keys()):
                    helper.keys_generation = self.keys.generation
            if helper.keys_generation == self.keys.generation:
                cut = int(len(wires) * HELPER_SHARE)
                if not helper.send([(w, job.now, job.max_future_s) for job, w in wires[:cut]]):
                    cut = 0
        resolved = [_resolve(w, self.keys) for _job, w in wires]
        for n in range(cut, len(wires)):
            r = resolved[n]
            if isinstance(r, _Pending):
                job = wires[n][0]
                resolved[n] = _verify_here(r, job.now, job.max_future_s)
        if cut:
            verdicts = helper.receive() if helper is not None else None
            for n in range(cut):
                r = resolved[n]
                if not isinstance(r, _Pending):
                    continue        # decided by decoding or by the key book already
                v = verdicts[n] if verdicts is not None else None
                if v is None:       # no verdict from the helper: verify here, never store unverified
                    job = wires[n][0]
                    resolved[n] = _verify_here(r, job.now, job.max_future_s)
                else:
                    resolved[n] = _finish(r, v[0], Reason(v[1]) if v[1] is not None else None, v[2])
        i = 0
        for job in jobs:
            job.items = resolved[i:i + len(job.wires)]  # type: ignore[assignment]   # all Incoming now
            i += len(job.wires)

    def _load_seen(self, txn: _Txn, jobs: list[_Job]) -> None:
        """What is stored under the (device, seq) of every decoded frame (one indexed query)."""
        wanted = {(i.frame.kid, i.frame.seq) for job in jobs for i in job.items if i.frame is not None}
        kids = sorted({kid for kid, _ in wanted})
        seqs = sorted({seq for _, seq in wanted})
        for kid_chunk in _chunks(kids):
            for seq_chunk in _chunks(seqs):
                sql = (f"SELECT device_id, seq, key_id, digest FROM frames WHERE device_id IN "
                       f"({_marks(len(kid_chunk))}) AND seq IN ({_marks(len(seq_chunk))})")
                for kid, seq, key_id, digest in self.conn.execute(sql, [*kid_chunk, *seq_chunk]):
                    pair = (bytes(kid), seq)
                    if pair in wanted:
                        txn.seen.setdefault(pair, []).append((key_id, bytes(digest)))

    def _decide(self, txn: _Txn, job: _Job, item: Incoming) -> Result:
        """accepted / duplicate / rejected for one frame; accepted ones are queued for insertion.
        (The hot path of ingest: plain ints and tuples, each value computed once.)"""
        f = item.frame
        if f is None:
            txn.rejections.append((job.now, job.via, job.peer, None, None, str(item.reason),
                                   item.detail[:500], len(item.wire), item.digest))
            return Result(REJECTED, None, None, str(item.reason), item.detail)
        payload = f.payload
        kid, seq = f.kid, payload[3]
        stored = txn.seen.setdefault((kid, seq), [])
        for _key_id, digest in stored:
            if digest == item.digest:
                return Result(DUPLICATE, kid, seq)
        if item.reason is not None:
            txn.rejections.append((job.now, job.via, job.peer, kid, seq, str(item.reason),
                                   item.detail[:500], len(item.wire), item.digest))
            return Result(REJECTED, kid, seq, str(item.reason), item.detail)
        key_id = item.key_id
        assert key_id is not None  # set for every verified frame
        reused = False
        for k, _ in stored:
            reused = reused or k == key_id
        if reused:
            txn.seq_reuse.append((kid, seq))
        stored.append((key_id, item.digest))
        ftype = payload[1]
        link = f.link
        prev = payload.get(8)
        alert_id = None
        if ftype <= _END:
            alert_id = self._alert_for(txn, f, key_id, item.officer)
            self._alert_frame(txn, alert_id, ftype, payload, link, prev, reused)
        loc = payload.get(6)
        lat = lon = acc = age = src = None
        if loc is not None:
            lat, lon, acc, age, src = _LOCATION.unpack(loc)   # checked by decode_frame
        audio = ftype == _AUDIO
        txn.rows.append((
            kid, key_id, seq, item.digest, ftype, payload.get(2), alert_id, payload[4], payload[5],
            payload.get(10, 0), link, prev, job.now, job.via, job.peer, len(item.wire),
            lat, lon, acc, age, src, payload.get(7), payload[13] if audio else None,
            payload[16] if audio else None, payload[12] if audio else None, item.wire))
        self._device_frame(txn, job, kid, ftype, payload)
        return Result(ACCEPTED, kid, seq, None, "", alert_id)

    def _alert_for(self, txn: _Txn, f: Frame, key_id: int, officer: str | None) -> int:
        sid = f.sid
        assert sid is not None
        key = (key_id, sid)
        alert_id = self._alert_ids.get(key)
        if alert_id is not None:
            return alert_id
        row = self.conn.execute("SELECT alert_id FROM alerts WHERE key_id = ? AND sid = ?", key).fetchone()
        if row is not None:
            alert_id = int(row[0])
        else:
            cur = self.conn.execute(
                "INSERT INTO alerts(device_id, key_id, sid, officer, first_received_at, last_received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (f.kid, key_id, sid, officer, txn.now, txn.now))
            alert_id = int(cur.lastrowid or 0)
            txn.news.append(f"ALERT A{alert_id}: device {f.device_id}{f' ({officer})' if officer else ''}, "
                            f"session {sid}")
        txn.new_alert_keys.append(key)
        self._alert_ids[key] = alert_id
        return alert_id

    @staticmethod
    def _alert_frame(txn: _Txn, alert_id: int, ftype: int, payload: Any, link: bytes, prev: bytes | None,
                     reused: bool) -> None:
        seq = payload[3]
        d = txn.alerts.get(alert_id)
        if d is None:
            d = txn.alerts[alert_id] = _AlertDelta()
        d.frames += 1
        d.reused += reused
        d.links.append(link)
        if prev is not None:
            d.prevs.append(prev)
        if payload.get(10, 0) & 1 or ftype == _DURESS:
            d.duress = 1
        if ftype == _AUDIO:
            d.audio_frames += 1
            d.audio_samples += payload[16]
            d.audio_rate = payload[12]
        elif ftype == _ALERT_START:
            d.starts += 1
            if d.start_seq is None or seq < d.start_seq:
                d.start_seq, d.started_at, d.trigger = seq, payload[4] or None, payload[9]
        elif ftype in _TERMINAL and (d.end_seq is None or seq > d.end_seq):
            d.end_seq, d.end_type, d.end_why = seq, ftype, payload.get(20)
        battery = payload.get(7)
        if battery is not None and (d.batt_seq is None or seq > d.batt_seq):
            d.batt_seq, d.battery = seq, battery

    @staticmethod
    def _device_frame(txn: _Txn, job: _Job, kid: bytes, ftype: int, payload: Any) -> None:
        dev = txn.devices.get(kid)
        if dev is None:
            dev = txn.devices[kid] = _DeviceDelta()
        dev.frames += 1
        dev.last_seen_at = job.now
        dev.last_seq = payload[3]
        dev.last_type = ftype
        dev.last_via = job.via
        battery = payload.get(7)
        if battery is not None:
            dev.battery = battery
            dev.battery_at = job.now
        if ftype == _HEARTBEAT:
            dev.heartbeat_s = payload[17]
            dev.heartbeat_at = job.now
        elif ftype == _STATUS:
            dev.status = payload[18]
            dev.status_at = job.now
            dev.dropped += payload.get(19, 0)

    def _chain(self, alert_id: int) -> _Chain:
        """The alert's stored links (from memory; read once from the database)."""
        chain = self._chains.get(alert_id)
        if chain is not None:
            self._chains.move_to_end(alert_id)
            return chain
        chain = _Chain()
        for link, prev in self.conn.execute("SELECT link, prev FROM frames WHERE alert_id = ?", (alert_id,)):
            chain.links.add(bytes(link))
            if prev is not None:
                p = bytes(prev)
                chain.named[p] = chain.named.get(p, 0) + 1
        self._chains[alert_id] = chain
        while len(self._chains) > MAX_CACHED_CHAINS:
            self._chains.popitem(last=False)
        return chain

    def _write(self, txn: _Txn) -> None:
        conn = self.conn
        now = txn.now
        updates = []
        for alert_id, d in txn.alerts.items():
            dangling, forks = d.chain_deltas(self._chain(alert_id))
            if d.duress and alert_id not in self._duress_alerts:
                was = conn.execute("SELECT duress FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
                if was is not None and not was[0]:
                    txn.news.append(f"DURESS on alert A{alert_id}: the officer's cancel was a duress cancel")
                self._duress_alerts.add(alert_id)
            updates.append({
                "alert_id": alert_id, "now": now, "frames": d.frames, "starts": d.starts,
                "dangling": dangling,
                "forks": forks, "reused": d.reused, "audio_frames": d.audio_frames,
                "audio_samples": d.audio_samples, "audio_rate": d.audio_rate, "duress": d.duress,
                "start_seq": d.start_seq, "started_at": d.started_at, "trigger": d.trigger,
                "end_seq": d.end_seq, "end_type": d.end_type, "end_why": d.end_why,
                "batt_seq": d.batt_seq, "battery": d.battery})
        if updates:
            conn.executemany(_ALERT_UPDATE, updates)
        if txn.rows:
            conn.executemany(_INSERT_FRAME, txn.rows)
        if txn.devices:
            conn.executemany(_DEVICE_STATE, [
                (kid, s.last_seen_at, s.last_seq, s.last_type, s.last_via, s.frames, s.heartbeat_s,
                 s.heartbeat_at, s.battery, s.battery_at, s.status, s.status_at, s.dropped)
                for kid, s in txn.devices.items()])
        if txn.rejections:
            conn.executemany(_INSERT_REJECTION, txn.rejections)
            self._rejections_since_trim += len(txn.rejections)
            if self._rejections_since_trim > 1000:
                self._rejections_since_trim = 0
                conn.execute("DELETE FROM rejections WHERE rejection_id <= "
                             "(SELECT max(rejection_id) FROM rejections) - ?", (MAX_REJECTIONS_KEPT,))

    def _closed_for(self, jobs: list[_Job]) -> None:
        """Each job's `closed`: sessions of the keys that signed one of its frames
        which an operator closed and the device has not ended yet."""
        per_job = [{item.key_id for item, r in zip(job.items, job.results, strict=True)
                    if r.status != REJECTED and item.key_id is not None} for job in jobs]
        keys = sorted(set().union(*per_job))
        closed: dict[int, list[int]] = {}
        for chunk in _chunks(keys):
            for key_id, sid in self.conn.execute(
                    f"SELECT key_id, sid FROM alerts WHERE key_id IN ({_marks(len(chunk))}) "
                    "AND state = 'closed' AND end_type IS NULL ORDER BY alert_id DESC", chunk):
                closed.setdefault(key_id, []).append(int(sid))
        for job, job_keys in zip(jobs, per_job, strict=True):
            job.closed = [sid for key_id in sorted(job_keys)
                          for sid in closed.get(key_id, [])[:MAX_CLOSED_LISTED]]


class _RateLimit:
    """At most `per_s` log lines a second; the rest are counted and summarised."""

    def __init__(self, per_s: float = 20.0) -> None:
        self.per_s = per_s
        self.window = 0.0
        self.count = 0
        self.suppressed = 0
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self.window >= 1.0:
                if self.suppressed:
                    log.warning("%d more rejections not logged in the last second", self.suppressed)
                self.window, self.count, self.suppressed = now, 0, 0
            self.count += 1
            if self.count > self.per_s:
                self.suppressed += 1
                return False
            return True


_rejection_log_limit = _RateLimit()


def _log_rejection(job: _Job, item: Incoming, result: Result) -> None:
    if not _rejection_log_limit.allow():
        return
    who = f"device {format_device_id(result.device)} seq {result.seq}" if result.device else \
        f"{len(item.wire)} bytes"
    log.warning("rejected %s via %s from %s: %s: %s", who, job.via, job.peer or "?", result.reason,
                result.detail)


# --------------------------------------------------------------------------
# The library facade.


class Receiver:
    """Verify, store, answer: everything `sotto receive` does except HTTP.

    clock: epoch seconds (tests move it); the frames' `time` is judged against it.
    verify_helper: check part of the signatures in a helper process (a second
    core; `sotto receive` turns it on when the machine has more than one).
    """

    def __init__(self, db_path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time,
                 max_future_s: int = MAX_FUTURE_S, commit_timeout_s: float = COMMIT_TIMEOUT_S,
                 verify_helper: bool = False) -> None:
        self.db_path = db_path
        self.clock = clock
        self.max_future_s = max_future_s
        self.commit_timeout_s = commit_timeout_s
        self.writer = Writer(db_path, verify_helper=verify_helper)
        self._registry = Registry(open_db(db_path, create=True))
        self.keys = KeyBook(self._registry)
        self.keys.refresh()
        self.writer.start()
        self._closed = False

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Commit what is queued and close the database."""
        if not self._closed:
            self._closed = True
            self.writer.stop()
            self._registry.connection.close()

    @property
    def healthy(self) -> bool:
        """The writer runs and its last transaction (if any) committed."""
        return self.writer.is_alive() and self.writer.last_error is None

    def check(self, wires: Sequence[bytes], now: float | None = None) -> list[Incoming]:
        """Decode and verify (no storage)."""
        now = self.clock() if now is None else now
        self.keys.refresh()
        return [check_frame(w, self.keys, now, self.max_future_s) for w in wires]

    def ingest(self, wires: Sequence[bytes], *, via: str = "http", peer: str | None = None) -> Answer:
        """Verify and store `wires`; the answer exists only once they are committed.
        Raises StorageUnavailable when they could not be (nothing acknowledged)."""
        now = self.clock()
        job = _Job(list(wires), via, peer, now, self.max_future_s)
        self.writer.submit(job)
        if not job.done.wait(self.commit_timeout_s):
            raise StorageUnavailable(f"storing {len(job.wires)} frames took over "
                                     f"{self.commit_timeout_s:.0f} s")
        if job.error is not None:
            raise StorageUnavailable(job.error)
        return Answer(job.results, int(now), job.closed)
