"""Verification ahead of the commit: while the writer stores one group, the helper
processes already check the signatures of the next.

Without this the writer handed each group to the helpers and waited for their
verdicts before its SQL, and the helpers then waited for its COMMIT: one after
the other, never side by side (measured on 2 cores under 200 devices' live load:
the writer spent 48 % of its time waiting for the helper, and the helper 52 %
waiting for work). Now the writer takes the next group before it stores the
current one and sends its frames to the helpers (send_to_helpers), and collects
their verdicts (Sent.receive) when that group's turn comes. It stays one thread:
no request passes through another thread on its way, and under a light load
(fewer than HELPER_MIN_FRAMES frames waiting) the writer checks them itself, at
once, as before.

Fail closed: a verdict is only a hint the writer may take. Inside its
transaction, after reloading the key book, the writer uses a verdict only when it
was made with the keys the book holds now (each verdict is tagged with the key
book generation whose keys the helper held); any other frame (keys changed since,
a helper that failed or gave no verdict) is checked in the writer
(host_tools.receiver.ingest.writer._verify). A job given up by its waiter in the
meantime is still skipped at the COMMIT, never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from host_tools.receiver.verifier import Task, VerifyHelper

if TYPE_CHECKING:
    from host_tools.receiver.ingest.keybook import KeyBook

log = logging.getLogger("sotto.receiver")

# a frame's verdict made by a helper: (key book generation of the helper's keys, verifier.Verdict)
Checked = tuple[int, tuple[Any, ...]]


def keys_to(helper: VerifyHelper, book: KeyBook) -> bool:
    """The helper holds the key book's keys (sent now if it held older ones);
    helper.keys_generation says which."""
    if helper.keys_generation != book.generation:
        generation, keys = book.snapshot()
        if not helper.send_keys(keys):
            return False
        helper.keys_generation = generation
    return True


class Sent:
    """Tasks handed to the helpers (split evenly between them); `receive` their verdicts."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.batches: list[tuple[VerifyHelper, int, int, int]] = []   # (helper, generation, first, end)

    def receive(self) -> list[Checked | None]:
        """Each task's verdict, tagged with the generation of the keys it was made with;
        None where a helper failed (the caller checks those frames itself)."""
        out: list[Checked | None] = [None] * self.count
        for helper, generation, first, end in self.batches:
            verdicts = helper.receive()
            if verdicts is not None:
                for n in range(first, end):
                    out[n] = (generation, verdicts[n - first])
        self.batches = []
        return out


def send_to_helpers(helpers: Sequence[VerifyHelper], book: KeyBook, tasks: Sequence[Task]) -> Sent:
    """Hand the tasks to the helpers and return at once (one thread only: the writer's)."""
    sent = Sent(len(tasks))
    ready = [h for h in helpers if keys_to(h, book)]
    first = 0
    for i, helper in enumerate(ready):
        end = len(tasks) * (i + 1) // len(ready)
        generation = helper.keys_generation
        if end > first and helper.send(tasks[first:end]):
            sent.batches.append((helper, generation, first, end))
        first = end
    return sent


def check_with_helpers(helpers: Sequence[VerifyHelper], book: KeyBook,
                       tasks: Sequence[Task]) -> list[Checked | None]:
    """send_to_helpers, then wait for the verdicts."""
    return send_to_helpers(helpers, book, tasks).receive()
