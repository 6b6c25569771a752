"""The writer: the one thread that verifies and writes frames (see the package docstring).

Over 400 lines because it is one class: the group commit's steps share the writer's
connection, caches and the open transaction, and read best side by side."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import zlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from host_tools.frames import Frame, Reason
from host_tools.frames.frame import decoded_from_parts
from host_tools.ids import format_device_id
from host_tools.receiver import devcfg, releases
from host_tools.receiver.commands import apply_replies, devices_with_undone, undone_for
from host_tools.receiver.flags import BEFORE_REVOCATION, UPSERT, time_flag, time_window
from host_tools.receiver.ingest.ahead import Sent, check_with_helpers, send_to_helpers
from host_tools.receiver.ingest.answer import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    Result,
    answer_payload,
)
from host_tools.receiver.ingest.behind import SignBehind, sign_then_finish
from host_tools.receiver.ingest.keybook import (
    Incoming,
    KeyBook,
    _finish,
    _Pending,
    _resolve,
    _resolve_decoded,
    _verify_here,
)
from host_tools.receiver.ingest.rejection_log import _log_rejection
from host_tools.receiver.ingest.sql import (
    _ALERT_START,
    _ALERT_UPDATE,
    _AUDIO,
    _DEVICE_STATE,
    _DEVICE_TRUST,
    _DURESS,
    _END,
    _HEARTBEAT,
    _INSECURE_TLS,
    _INSERT_FRAME,
    _INSERT_REJECTION,
    _LOCATION,
    _REPLY,
    _STATUS,
    _TERMINAL,
)
from host_tools.receiver.ingest.txn import QUEUED, TAKEN, _AlertDelta, _Chain, _DeviceDelta, _Job, _Txn
from host_tools.receiver.store import open_db
from host_tools.receiver.verifier import VerifyHelper
from host_tools.registry import Registry
from host_tools.storage import POSTGRESQL, backend_of
from host_tools.storage import Error as StorageError
from host_tools.storage.inlist import chunks, marks

if TYPE_CHECKING:
    from host_tools.receiver.centre_key import CentreKey

log = logging.getLogger("sotto.receiver")
MAX_TXN_FRAMES = 2000          # frames per group commit
MAX_REJECTIONS_KEPT = 100_000  # the rejections table keeps the newest this many
MAX_CLOSED_LISTED = 16
HELPER_MIN_FRAMES = 4          # smaller groups are verified in the writer alone
SIGN_MIN_ANSWERS = 4           # fewer answers in a group are signed on the event loop
# Overlap only under load (a group waiting with this many frames, answers): each overlap
# hands work to another thread or process, and on a busy machine every hand-off can wait
# for a CPU or the interpreter lock; a light load is answered sooner without them.
AHEAD_MIN_FRAMES = 16          # the next group's frames go to the helpers during this COMMIT
BEHIND_MIN_ANSWERS = 16        # the answers are signed while the next group is stored
# PostgreSQL: the advisory locks a receiver's write transaction takes, one per device
# whose frames it carries: pg_advisory_xact_lock(INGEST_LOCK, device_lock_key(id))
INGEST_LOCK = 0x50770002
_LOCK_DEVICES = ("SELECT count(pg_advisory_xact_lock(?, k)) "       # in the array's (ascending) order
                 "FROM unnest(?::int4[]) WITH ORDINALITY AS t(k, n)")

_STOP = object()
MAX_CACHED_CHAINS = 4096   # alerts whose links the writer keeps in memory


class Writer(threading.Thread):
    """The one thread that verifies and writes frames (see module doc).

    On SQLite only one receiver writes a database (`sotto receive` holds a lock
    file), so the writer may keep what it wrote in memory: alert ids by (key,
    session) and each recent alert's chain links. Both are dropped for whatever a
    failed transaction touched.

    On PostgreSQL several receivers (nodes) share the database. Each verifies its
    frames in parallel with the others, then takes a transaction-scoped advisory
    lock for each device whose frames the transaction carries (INGEST_LOCK with
    device_lock_key, in ascending order, so two nodes never wait on each other in a
    circle) before it reads what is stored. Everything ingest reads and then writes
    belongs to one device (its frames, the duplicate check, its alerts' rows and
    chain counters, its state), so one device's frames are written by one node at a
    time, as on SQLite: no frame is stored twice (the unique index would refuse it
    anyway) and dangling/fork counts stay exact when one alert's frames arrive
    through two nodes at once, while nodes writing different devices commit side
    by side. Alert ids stay cached (an alert's id never changes); chain links are
    read again in each transaction (another node may have added some).
    """

    def __init__(self, db_path: str | os.PathLike[str], *, name: str = "sotto-writer",
                 verify_processes: int = 0) -> None:
        super().__init__(name=name, daemon=True)
        self.helpers: list[VerifyHelper] = []     # check signatures (ahead of the writer: ingest.ahead)
        for _ in range(verify_processes):
            helper = VerifyHelper()
            if not helper.start():
                break
            self.helpers.append(helper)
        # one more signs the answers after each COMMIT, so that never waits behind a check ahead
        self.signer: VerifyHelper | None = None
        if self.helpers:
            signer = VerifyHelper()
            self.signer = signer if signer.start() else None
        self.conn = open_db(db_path, create=True, prepared=True)  # the hot path: statements prepared
        self.shared = backend_of(self.conn) == POSTGRESQL    # other receivers may write too
        self.keys = KeyBook(Registry(self.conn))
        self.keys.refresh()
        self.behind = SignBehind(self._sign_answers) if self.signer is not None else None
        self._nxt: tuple[list[_Job], Sent | None] | None = None   # the next group (_look_ahead)
        self._stopping = False        # _STOP taken from the queue
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._alert_ids: dict[tuple[int, int], int] = {}
        self._chains: OrderedDict[int, _Chain] = OrderedDict()
        self._duress_alerts: set[int] = set()
        self._rejections_since_trim = 0
        self.commits = 0
        self.failed_commits = 0
        self.abandoned = 0      # jobs skipped: their waiter timed out while they were queued
        self.last_error: str | None = None
        self._window = (0, 0)          # (behind_s, ahead_s), read at each commit (flags.py)
        # the centre key (set by the front end when there are helpers): the helpers then sign
        # the answers of each committed group (_sign_answers)
        self.answer_key: CentreKey | None = None

    # -- the request threads' side ------------------------------------------------
    def start(self) -> None:
        super().start()
        if self.behind is not None:
            self.behind.start()

    def submit(self, job: _Job) -> None:
        if not self.is_alive():
            job.error = "the storage writer is not running"
            job.finish()
            return
        self._queue.put(job)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop and close the database."""
        if self.is_alive():
            self._queue.put(_STOP)
            self.join(timeout_s)

    # -- the thread -----------------------------------------------------------------
    def run(self) -> None:
        """Group after group. Once a group's frames are checked (in _commit), the requests
        waiting by then go to the helpers (_look_ahead), so their checks overlap that
        group's SQL and COMMIT."""
        try:
            while True:
                if self._nxt is None:
                    if self._stopping:
                        break
                    jobs, self._stopping = self._next_jobs(block=True)
                else:
                    (jobs, sent), self._nxt = self._nxt, None
                    if sent is not None:
                        self._collect(jobs, sent)
                taken = [job for job in jobs if self._take(job)]
                if taken:
                    self._commit_group(taken)
        finally:
            for job in self._nxt[0] if self._nxt is not None else ():   # a bug stopped the thread
                if job.move(QUEUED, TAKEN):
                    job.error = "the storage writer stopped"
                    job.finish()
            self._fail_waiting("the receiver is shutting down")
            if self.behind is not None:
                self.behind.stop()      # finishes every committed group it holds
            for helper in [*self.helpers, *([self.signer] if self.signer else [])]:
                helper.close()
            self.conn.close()

    def _look_ahead(self) -> None:
        """Take the requests waiting now as the next group, their frames sent to the
        helpers when there are enough (called once this group's frames are checked)."""
        if self._nxt is not None or self._stopping or not self.helpers:
            return
        jobs, self._stopping = self._next_jobs(block=False)
        if jobs:
            self._nxt = self._check_ahead(jobs)

    def _next_jobs(self, block: bool) -> tuple[list[_Job], bool]:
        """(the requests waiting, up to MAX_TXN_FRAMES frames; whether _STOP came).
        block: wait for the first one."""
        jobs: list[_Job] = []
        count = 0
        while count < MAX_TXN_FRAMES:
            try:
                job = self._queue.get() if block and not jobs else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
            count += len(job.wires)
        return jobs, False

    def _check_ahead(self, jobs: list[_Job]) -> tuple[list[_Job], Sent | None]:
        """Send the jobs' frames to the helpers (when there are enough to be worth it)."""
        tasks = [(w, job.now, job.max_future_s) for job in jobs for w in job.wires]
        if len(tasks) < AHEAD_MIN_FRAMES:
            return jobs, None          # a light load: checked in the COMMIT (_verify)
        try:
            return jobs, send_to_helpers(self.helpers, self.keys, tasks)
        except Exception:      # checked here instead (_verify)
            log.exception("bug while sending %d frames to the helpers", len(tasks))
            return jobs, None

    def _collect(self, jobs: list[_Job], sent: Sent) -> None:
        """Hang each frame's verdict from the helpers on its job (_verify takes it)."""
        try:
            checked = sent.receive()
        except Exception:
            log.exception("bug while receiving the helpers' verdicts")
            return
        n = 0
        for job in jobs:
            job.checked = checked[n:n + len(job.wires)]
            n += len(job.wires)

    def _take(self, job: _Job) -> bool:
        """The job goes into the next transaction, unless its waiter abandoned it
        (timed out while it was queued and answered "nothing was stored"): such a
        job is never stored."""
        if job.move(QUEUED, TAKEN):
            return True
        self.abandoned += 1
        log.debug("skipped a request of %d frames whose waiter gave up while it was queued", len(job.wires))
        return False

    def _fail_waiting(self, why: str) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job.error = why
                job.finish()

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
            if isinstance(e, StorageError):
                log.error("storage failed, %d frames not acknowledged: %s", len(jobs[0].wires), e)
            else:
                log.exception("bug while storing %d frames; not acknowledged", len(jobs[0].wires))
            jobs[0].error = f"storage failed: {e}"
            jobs[0].results = []
            jobs[0].finish()
            return
        signable = sum(job.req is not None for job in jobs) if self.answer_key is not None else 0
        if signable >= BEHIND_MIN_ANSWERS and self.behind is not None and self.behind.is_alive():
            self.behind.put(jobs)     # signed and finished there, while this thread goes on
            return
        sign_then_finish(self._sign_answers, jobs)   # fewer than SIGN_MIN_ANSWERS: signed on the loop

    def _sign_answers(self, jobs: list[_Job]) -> None:
        """After COMMIT: the signed answer of each fast-path job, its signature made by the
        signing helper (self.signer); without one from it (it failed) a job is signed by
        the caller (fastpath)."""
        key = self.answer_key
        signer = self.signer
        todo = [job for job in jobs if job.req is not None and job.error is None]
        if key is None or signer is None or len(todo) < SIGN_MIN_ANSWERS:
            return
        parts = [key.answer_to_sign(answer_payload(job.req, job.answer())) for job in todo]   # type: ignore[arg-type]
        with signer.lock:
            if not (signer.has_centre_key or signer.send_centre_key(key.private_raw())):
                return
            if not signer.sign([p[0] for p in parts]):
                return
            signatures = signer.receive_signatures()
        if signatures is not None:
            for job, (_, payload), signature in zip(todo, parts, signatures, strict=True):
                job.signed = key.answer_with(payload, signature)

    def _commit(self, jobs: list[_Job]) -> None:
        conn = self.conn
        txn = _Txn(max(job.now for job in jobs))
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Verify here, not in the request threads: one thread doing all the CPU
            # work keeps the GIL from bouncing between verifiers and the writer.
            self.keys.refresh()
            self._window = time_window(conn)
            self._verify(jobs)
            self._look_ahead()
            if self.shared:     # one node per device from here to COMMIT (see class doc)
                keys = sorted({device_lock_key(i.frame.kid) for job in jobs for i in job.items
                               if i.frame is not None})
                if keys:
                    conn.execute(_LOCK_DEVICES, (INGEST_LOCK, keys))
                self._chains.clear()
            self._load_seen(txn, jobs)
            for job in jobs:
                job.results = [self._decide(txn, job, item) for item in job.items]
            self._write(txn)
            self._closed_for(jobs)
            if txn.health:
                txn.news += devcfg.apply_health(conn, txn.health, txn.now)
            apply_replies(conn, txn.replies, txn.now)   # before the commands are listed
            devcfg.apply_config_replies(conn, txn.replies, txn.now)
            self._commands_for(jobs)
            self._releases_for(jobs, txn)
            try:
                conn.execute("COMMIT")
            except BaseException:
                # a COMMIT that fails may have committed (the connection lost after the
                # server took it): these jobs' answers must not say "nothing was stored".
                # (In a group of several, each job's retry alone in _commit_group finds out.)
                for job in jobs:
                    job.maybe_stored = True
                raise
        except BaseException:
            for key in txn.new_alert_keys:
                self._alert_ids.pop(key, None)
            for alert_id in txn.alerts:
                self._chains.pop(alert_id, None)
                self._duress_alerts.discard(alert_id)
            try:
                conn.execute("ROLLBACK")
            except StorageError:
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
        """Every job's items: decoded, keys found, signatures checked. A frame checked
        ahead (ingest.ahead) with the keys the book holds now takes that verdict; the
        others go to the helpers now (when there are at least HELPER_MIN_FRAMES) or
        are checked here. The helpers hand each frame back decoded (frame_parts), so
        it is not decoded twice. A helper that gives no verdict: its frames are
        checked here; a frame whose device the helper knew no key for is checked
        here with the key book (which may be newer)."""
        generation = self.keys.generation
        todo: list[tuple[_Job, int]] = []        # (job, frame index) still to check
        for job in jobs:
            checked = job.checked or ()
            job.items = [None] * len(job.wires)  # type: ignore[list-item]   # all Incoming below
            for n, wire in enumerate(job.wires):
                ahead = checked[n] if n < len(checked) else None
                if ahead is not None and ahead[0] == generation:
                    job.items[n] = self._from_helper(wire, job, ahead[1])
                else:
                    todo.append((job, n))
        verdicts: list[Any] = [None] * len(todo)
        ahead = self._nxt is not None and self._nxt[1] is not None  # helpers busy with the next group
        if self.helpers and not ahead and len(todo) >= HELPER_MIN_FRAMES:
            try:
                verdicts = check_with_helpers(self.helpers, self.keys,
                                              [(job.wires[n], job.now, job.max_future_s) for job, n in todo])
            except Exception:       # checked here instead
                log.exception("bug while checking %d frames in the helpers", len(todo))
        for (job, n), verdict in zip(todo, verdicts, strict=True):
            wire = job.wires[n]
            if verdict is not None and verdict[0] == generation:
                job.items[n] = self._from_helper(wire, job, verdict[1])
            else:
                job.items[n] = self._check_here(wire, job)

    def _check_here(self, wire: bytes, job: _Job) -> Incoming:
        r = _resolve(wire, self.keys)
        return _verify_here(r, job.now, job.max_future_s) if isinstance(r, _Pending) else r

    def _from_helper(self, wire: bytes, job: _Job, verdict: tuple[Any, ...]) -> Incoming:
        """The Incoming for a helper's verdict (verifier.Verdict) on `wire`."""
        ok, reason, detail, parts = verdict
        digest = hashlib.sha256(wire).digest()
        if parts is None:            # it does not decode
            return Incoming(wire, digest, None, Reason(reason), detail)
        r = _resolve_decoded(wire, digest, decoded_from_parts(wire, parts), self.keys)
        if not isinstance(r, _Pending):
            return r
        if ok is None:               # the helper knew no key for it: the key book here may be newer
            return _verify_here(r, job.now, job.max_future_s)
        why = Reason(reason) if reason is not None else None
        return _finish(r, ok, why, detail, job.now, job.max_future_s)

    def _load_seen(self, txn: _Txn, jobs: list[_Job]) -> None:
        """What is stored under the (device, seq) of every decoded frame (one indexed query)."""
        wanted = {(i.frame.kid, i.frame.seq) for job in jobs for i in job.items if i.frame is not None}
        kids = sorted({kid for kid, _ in wanted})
        seqs = sorted({seq for _, seq in wanted})
        for kid_chunk in chunks(kids):
            for seq_chunk in chunks(seqs):
                sql = (f"SELECT device_id, seq, key_id, digest FROM frames WHERE device_id IN "
                       f"({marks(len(kid_chunk))}) AND seq IN ({marks(len(seq_chunk))})")
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
        if ftype == _REPLY:
            txn.replies.append((kid, payload[21], payload[22], seq))
        elif ftype == _STATUS or ftype == _HEARTBEAT:
            txn.health.append((kid, seq, ftype, payload))
        if ftype <= _END:
            alert_id = self._alert_for(txn, f, key_id, item.officer)
            self._alert_frame(txn, alert_id, ftype, payload, link, prev, reused)
            skew = time_flag(payload[4], job.now, *self._window)
            if skew is not None:
                txn.flags.append((alert_id, skew[0], job.now, skew[1]))
            if item.before_revocation is not None:
                txn.flags.append((alert_id, BEFORE_REVOCATION, job.now, None))
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
            self._cache_chain(alert_id, _Chain())   # new in this transaction: no stored frames to read
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
        dev.insecure = payload.get(10, 0) & _INSECURE_TLS
        if dev.insecure:
            dev.insecure_frames += 1
            dev.insecure_at = job.now
        if 23 in payload:
            dev.unauth, dev.unauth_at = payload[23], job.now
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
        if 24 in payload or 36 in payload:   # what runs, and updates (docs/ota.md)
            upd, old = payload.get(36), txn.versions.get(kid)
            if upd is None and old is not None and old[2] is not None:
                # a later heartbeat in the same transaction keeps the update's result
                txn.versions[kid] = (payload.get(24) or old[0], old[1], old[2], old[3], job.now)
            else:   # err is an update's only with upd (st 7 and 8 use it for configurations)
                txn.versions[kid] = (payload.get(24), payload.get(35), upd,
                                     payload.get(37) if upd is not None else None, job.now)

    def _chain(self, alert_id: int) -> _Chain:
        """The alert's stored links (from memory; read once from the database)."""
        chain = self._chains.get(alert_id)
        if chain is not None:
            self._chains.move_to_end(alert_id)
            return chain
        return self._load_chains([alert_id])[alert_id]

    def _load_chains(self, alert_ids: list[int]) -> dict[int, _Chain]:
        """The stored links of these alerts, read and cached, one query per chunk (on
        several nodes the cache is dropped at every transaction: one read per alert
        added a round trip to the database per alert in every group)."""
        chains = {a: _Chain() for a in alert_ids}
        for chunk in chunks(alert_ids):
            rows = self.conn.execute(
                f"SELECT alert_id, link, prev FROM frames WHERE alert_id IN ({marks(len(chunk))})", chunk)
            for alert_id, link, prev in rows:
                chain = chains[int(alert_id)]
                chain.links.add(bytes(link))
                if prev is not None:
                    p = bytes(prev)
                    chain.named[p] = chain.named.get(p, 0) + 1
        for alert_id, chain in chains.items():
            self._cache_chain(alert_id, chain)
        return chains

    def _cache_chain(self, alert_id: int, chain: _Chain) -> None:
        self._chains[alert_id] = chain
        while len(self._chains) > MAX_CACHED_CHAINS:
            self._chains.popitem(last=False)

    def _write(self, txn: _Txn) -> None:
        conn = self.conn
        now = txn.now
        updates = []
        self._load_chains([a for a in txn.alerts if a not in self._chains])
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
        if txn.flags:
            flags: dict[tuple[int, str], list[Any]] = {}
            for alert_id, flag, at, offset in txn.flags:
                f = flags.setdefault((alert_id, flag), [0, at, at, offset])
                f[0] += 1
                f[1], f[2] = min(f[1], at), max(f[2], at)
                if offset is not None and abs(offset) > abs(f[3] or 0):
                    f[3] = offset
            conn.executemany(UPSERT, [(a, fl, *v) for (a, fl), v in flags.items()])
        if txn.devices:
            conn.executemany(_DEVICE_STATE, [
                (kid, s.last_seen_at, s.last_seq, s.last_type, s.last_via, s.frames, s.heartbeat_s,
                 s.heartbeat_at, s.battery, s.battery_at, s.status, s.status_at, s.dropped)
                for kid, s in txn.devices.items()])
            conn.executemany(_DEVICE_TRUST, [
                (kid, 1 if s.insecure else 0, s.insecure_frames, s.insecure_at, s.unauth, s.unauth_at)
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
        for chunk in chunks(keys):
            for key_id, sid in self.conn.execute(
                    f"SELECT key_id, sid FROM alerts WHERE key_id IN ({marks(len(chunk))}) "
                    "AND state = 'closed' AND end_type IS NULL ORDER BY alert_id DESC", chunk):
                closed.setdefault(key_id, []).append(int(sid))
        for job, job_keys in zip(jobs, per_job, strict=True):
            job.closed = [sid for key_id in sorted(job_keys)
                          for sid in closed.get(key_id, [])[:MAX_CLOSED_LISTED]]

    def _releases_for(self, jobs: list[_Job], txn: _Txn) -> None:
        """What devices report running, and each job's `rel`: the release its one
        device is assigned (docs/ota.md)."""
        if txn.versions:
            releases.record_versions(self.conn, txn.versions)
        one = [(job, _one_device(job)) for job in jobs]
        assigned = releases.assigned_for_many(self.conn, [kid for _job, kid in one if kid is not None])
        for job, kid in one:
            if kid is not None:
                job.rel = assigned.get(kid)

    def _commands_for(self, jobs: list[_Job]) -> None:
        """Each job's `cmds`: the undone commands of the device whose frames it
        carried (authenticated: accepted or duplicate). A request that mixes
        devices gets none: a command names no device, only the answer does. Nor
        does one carrying frames of a revoked key (signed before the revocation):
        the commands are for the unit that holds the device's active key."""
        one = [(job, _one_device(job)) for job in jobs
               if not any(item.before_revocation is not None for item in job.items)]
        waiting = devices_with_undone(self.conn, [kid for _job, kid in one if kid is not None])
        for job, kid in one:
            if kid in waiting:
                job.cmds = undone_for(self.conn, kid, job.now)


def device_lock_key(device_id: bytes) -> int:
    """The second half of a device's ingest lock: a signed 32-bit hash of its id (two
    devices that share one only wait for each other)."""
    return zlib.crc32(device_id) - 0x80000000


def _one_device(job: _Job) -> bytes | None:
    """The one device whose authenticated frames (accepted or duplicate) the job
    carried; None for none or several (a command or release names no device,
    only the answer does)."""
    devices = {item.frame.kid for item, r in zip(job.items, job.results, strict=True)
               if r.status != REJECTED and item.frame is not None}
    return devices.pop() if len(devices) == 1 else None
