"""What one group commit accumulates: the request jobs, each alert's new frames and
hash-chain deltas (dangling, forks), each device's new state."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from host_tools.frames import MAX_FUTURE_S
from host_tools.receiver.ingest.answer import (
    Answer,
    Result,
)
from host_tools.receiver.ingest.keybook import (
    Incoming,
)

# A job's life: QUEUED -> TAKEN (the writer put it in a transaction) -> DONE (its
# outcome is set: results, or an error after ROLLBACK), or QUEUED -> ABANDONED (its
# waiter gave up first; the writer never stores it). A job that never reached the
# writer (the writer stopped) goes QUEUED -> DONE with an error. Every change is a
# compare-and-set under one lock, so a waiter and the writer never both win.
QUEUED, TAKEN, DONE, ABANDONED = "queued", "taken", "done", "abandoned"
_STATE_LOCK = threading.Lock()


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
    cmds: list[dict[str, Any]] = field(default_factory=list)   # the requesting device's commands
    error: str | None = None
    rel: str | None = None   # the release the requesting device is assigned (docs/ota.md)
    req: bytes | None = None      # SHA-256 of the HTTP body: the writer may sign the answer (fastpath)
    signed: bytes | None = None   # the signed answer, made after COMMIT by a helper; None: not made
    # each frame's verdict made ahead by the helpers (ingest.ahead), tagged with the key book
    # generation it was made with; None (or an entry None): the writer checks it itself
    checked: list[Any] | None = None
    state: str = QUEUED
    # a COMMIT holding this job's frames failed: it may have committed all the same (a
    # connection lost in the middle of it), so its error must not say "nothing was stored"
    maybe_stored: bool = False

    def move(self, old: str, new: str) -> bool:
        """old -> new if the job is in `old` now (compare-and-set); False: it is not."""
        with _STATE_LOCK:
            if self.state != old:
                return False
            self.state = new
            return True

    def abandon(self) -> str:
        """The waiter gives up: ABANDONED if the job was still queued (it will never
        be stored), else the state the writer gave it (TAKEN: it may yet be
        committed; DONE: its outcome is set)."""
        with _STATE_LOCK:
            if self.state == QUEUED:
                self.state = ABANDONED
            return self.state

    def finish(self) -> None:
        """The writer's last word on the job (its results or error are set): DONE, then wake the waiter."""
        with _STATE_LOCK:
            if self.state == ABANDONED:
                return          # its waiter answered already (never stored: the writer skipped it)
            self.state = DONE
        self.done.set()

    def answer(self) -> dict[str, Any]:
        """The answer's map (docs/frames.md), once committed (without `req`)."""
        return Answer(self.results, int(self.now), self.closed, self.cmds, self.rel).to_wire()


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
                 "heartbeat_at", "battery", "battery_at", "status", "status_at", "dropped",
                 "insecure", "insecure_frames", "insecure_at", "unauth", "unauth_at")

    def __init__(self) -> None:
        self.frames = self.dropped = 0
        self.insecure = self.insecure_frames = 0     # flag bit 3: the newest frame's, and how many had it
        self.insecure_at: float | None = None
        self.unauth: int | None = None
        self.unauth_at: float | None = None
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
        self.replies: list[tuple[bytes, int, int, int]] = []   # reply frames: (device, cmd, res, seq)
        # status and heartbeat frames: (device, seq, type, payload), for devcfg.apply_health
        self.health: list[tuple[bytes, int, int, Any]] = []
        self.versions: dict[bytes, tuple[Any, ...]] = {}   # device -> (fw, pend, upd, err, at) (docs/ota.md)
        self.flags: list[tuple[int, str, float, int | None]] = []   # (alert, flag, received, offset s)
