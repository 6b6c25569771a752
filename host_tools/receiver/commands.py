"""Commands from operators to a device, carried back in its signed answers.

    c = queue(conn, 12, "ask", operator="Bob", question=1)   # for alert A12's device (audited)
    for_alert(conn, 12) -> [Command]                          # what `sotto alerts show` lists
    undone_for(conn, device_id, now) -> [wire map]            # the writer: the answer's `cmds`
    apply_replies(conn, [(device_id, cmd, res, seq)], now)    # the writer: reply frames

A command is queued, then `delivered` once it rode in a signed answer (it goes
in every answer to that device until its reply arrives; the device runs each
id at most once), then `done`, `refused` (also for an op or arguments the
device does not know) or, for `ask`, `answered` with yes / no / no answer.
Ids only increase (the device ignores an id at or below the highest it ran),
so commands are never deleted. docs/frames.md, "Commands", has the wire form.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError
from host_tools.frames import REPLY_RESULT_NAMES
from host_tools.ids import format_device_id
from host_tools.receiver import audit
from host_tools.receiver.alert_records import AlertNotFoundError, AlertStateError
from host_tools.receiver.format import iso_utc
from host_tools.receiver.store import alert_code
from host_tools.registry import write_transaction
from host_tools.storage.inlist import chunks, marks

LISTENING, MORE_AUDIO, LOCATE, ASK = "listening", "more-audio", "locate", "ask"
OPS = (LISTENING, MORE_AUDIO, LOCATE, ASK)
QUEUED, DELIVERED, DONE, REFUSED, ANSWERED = "queued", "delivered", "done", "refused", "answered"
UNDONE = (QUEUED, DELIVERED)
# The device's questions (config feedback.questions, one haptic pattern each):
# codes 1.. by name; operators may also give the number.
QUESTIONS = {"can-you-talk": 1, "are-you-safe": 2}
QUESTION_MAX = 8
MORE_AUDIO_MAX_S = 600
MAX_PER_ANSWER = 8          # commands in one answer (the device reads at most 4 KB)
_STATE_OF_RESULT = {1: DONE, 2: REFUSED, 3: ANSWERED, 4: ANSWERED, 5: ANSWERED, 6: REFUSED, 7: REFUSED}
_COLUMNS = ("command_id, device_id, alert_id, sid, op, args, state, result, operator, queued_at, "
            "delivered_at, sent, replied_at")


@dataclass(frozen=True)
class Command:
    """One command and what became of it."""

    command_id: int
    device_id: bytes
    alert_id: int | None
    sid: int | None
    op: str
    args: dict[str, int]
    state: str
    result: int | None
    operator: str
    queued_at: float
    delivered_at: float | None
    sent: int
    replied_at: float | None

    def wire(self) -> dict[str, Any]:
        """The command as it rides in an answer: {"id", "op", "sid"?, "s"?, "q"?}."""
        out: dict[str, Any] = {"id": self.command_id, "op": self.op, **self.args}
        if self.sid is not None:
            out["sid"] = self.sid
        return out

    @property
    def answer(self) -> str | None:
        """ask: `yes`, `no`, `no answer`; None before the reply or for other ops."""
        return REPLY_RESULT_NAMES.get(self.result or 0) if self.state == ANSWERED else None

    @property
    def what(self) -> str:
        """`ask can-you-talk`, `more-audio 30 s`, `locate`."""
        if self.op == ASK:
            q = self.args.get("q", 0)
            return f"ask {question_name(q)}"
        if self.op == MORE_AUDIO:
            return f"more-audio {self.args.get('s')} s"
        return self.op

    @property
    def outcome(self) -> str:
        """For people: `queued`, `delivered`, `done`, `refused (unknown command)`, `answered: yes`."""
        if self.state == ANSWERED:
            return f"answered: {self.answer}"
        if self.state == REFUSED and self.result not in (None, 2):
            return f"refused ({REPLY_RESULT_NAMES.get(self.result or 0, self.result)})"
        return self.state

    def to_json(self) -> dict[str, Any]:
        return {"id": self.command_id, "device": format_device_id(self.device_id),
                "alert": alert_code(self.alert_id) if self.alert_id else None, "sid": self.sid,
                "op": self.op, "args": self.args, "state": self.state, "result": self.result,
                "result_name": REPLY_RESULT_NAMES.get(self.result or 0) if self.result else None,
                "answer": self.answer, "operator": self.operator, "queued": iso_utc(self.queued_at),
                "delivered": iso_utc(self.delivered_at), "sent_in_answers": self.sent,
                "replied": iso_utc(self.replied_at)}


def question_name(code: int) -> str:
    return next((n for n, c in QUESTIONS.items() if c == code), f"question {code}")


def parse_question(text: str | int) -> int:
    """A question code from its name (`can-you-talk`) or number (1..8)."""
    if isinstance(text, int) and not isinstance(text, bool):
        code = text
    elif str(text).strip().lower() in QUESTIONS:
        return QUESTIONS[str(text).strip().lower()]
    elif str(text).strip().isdigit():
        code = int(str(text).strip())
    else:
        names = ", ".join(f"{n} ({c})" for n, c in QUESTIONS.items())
        raise UsageError(f"no question {text!r}; the questions are {names}, or a code 1..{QUESTION_MAX} "
                         "the device's configuration defines (feedback.questions)")
    if not 1 <= code <= QUESTION_MAX:
        raise UsageError(f"question code {code} is not 1..{QUESTION_MAX}")
    return code


def _row(r: Sequence[Any]) -> Command:
    return Command(int(r[0]), bytes(r[1]), r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], r[10],
                   r[11], r[12])


def _args(op: str, seconds: int | None, question: int | str | None) -> dict[str, int]:
    if op not in OPS:
        raise UsageError(f"no command {op!r}; commands are {', '.join(OPS)}")
    if op == MORE_AUDIO:
        if seconds is None or not 1 <= seconds <= MORE_AUDIO_MAX_S:
            raise UsageError(f"more-audio needs --seconds 1..{MORE_AUDIO_MAX_S}")
        return {"s": int(seconds)}
    if op == ASK:
        if question is None:
            raise UsageError("ask needs --question NAME or code")
        return {"q": parse_question(question)}
    return {}


def queue(conn: sqlite3.Connection, alert_id: int, op: str, *, operator: str, seconds: int | None = None,
          question: int | str | None = None, now: float | None = None, in_transaction: bool = False,
          role: str = audit.CLI_ROLE) -> Command:
    """Queue `op` for the device of alert `alert_id` (audited, as `role`); it goes
    in that device's next signed answer. Refused for a closed alert."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    args = _args(op, seconds, question)
    if in_transaction:
        return _queue(conn, alert_id, op, args, operator, now, role)
    with write_transaction(conn):
        return _queue(conn, alert_id, op, args, operator, now, role)


def _queue(conn: sqlite3.Connection, alert_id: int, op: str, args: dict[str, int], operator: str,
           now: float, role: str) -> Command:
    row = conn.execute("SELECT device_id, sid, state FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFoundError(f"no alert {alert_code(alert_id)}")
    device_id, sid, state = bytes(row[0]), int(row[1]), row[2]
    if state == "closed":
        raise AlertStateError(f"{alert_code(alert_id)} is closed: the device has no alert to act on")
    command_id = conn.execute(
        "INSERT INTO commands(device_id, alert_id, sid, op, args, operator, queued_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING command_id",
        (device_id, alert_id, sid, op, json.dumps(args, sort_keys=True), operator, now)).fetchone()[0]
    cmd = Command(int(command_id), device_id, alert_id, sid, op, args, QUEUED, None, operator, now,
                  None, 0, None)
    audit.record(conn, operator, "command", alert_id=alert_id, device_id=device_id, at=now,
                 detail=f"command {command_id}: {cmd.what}", in_transaction=True, role=role)
    return cmd


def for_alert(conn: sqlite3.Connection, alert_id: int) -> list[Command]:
    """The alert's commands, oldest first."""
    return [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM commands WHERE alert_id = ? ORDER BY command_id", (alert_id,))]


# --------------------------------------------------------------------------
# The writer's side (inside its transaction).


def devices_with_undone(conn: sqlite3.Connection, device_ids: Iterable[bytes]) -> set[bytes]:
    """Which of these devices have commands without a reply: one query for a whole
    group commit (most answers carry none), so undone_for runs only for those."""
    found: set[bytes] = set()
    for chunk in chunks(list(dict.fromkeys(device_ids))):
        found.update(bytes(r[0]) for r in conn.execute(
            f"SELECT DISTINCT device_id FROM commands WHERE state IN (?, ?) "
            f"AND device_id IN ({marks(len(chunk))})", (*UNDONE, *chunk)))
    return found


def undone_for(conn: sqlite3.Connection, device_id: bytes, now: float) -> list[dict[str, Any]]:
    """The device's commands without a reply (oldest first, at most
    MAX_PER_ANSWER), marked delivered: they go in the answer being made."""
    rows = [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM commands WHERE device_id = ? AND state IN (?, ?) "
        f"ORDER BY command_id LIMIT {MAX_PER_ANSWER}", (device_id, *UNDONE))]
    if rows:
        conn.executemany(
            "UPDATE commands SET state = CASE WHEN state = ? THEN ? ELSE state END, "
            "delivered_at = coalesce(delivered_at, ?), sent = sent + 1 WHERE command_id = ?",
            [(QUEUED, DELIVERED, now, c.command_id) for c in rows])
    return [c.wire() for c in rows]


def apply_replies(conn: sqlite3.Connection, replies: Sequence[tuple[bytes, int, int, int]],
                  now: float) -> int:
    """Reply frames (device, cmd, res, seq): each closes its command (a reply for
    an id the device does not have, or for one already closed, changes nothing).
    Returns how many commands changed."""
    changed = 0
    for device_id, cmd, res, seq in replies:
        state = _STATE_OF_RESULT.get(res, REFUSED)
        cur = conn.execute(
            "UPDATE commands SET state = ?, result = ?, replied_at = ?, reply_seq = ? "
            "WHERE command_id = ? AND device_id = ? AND state IN (?, ?)",
            (state, res, now, seq, cmd, device_id, *UNDONE))
        changed += cur.rowcount if cur.rowcount > 0 else 0
    return changed
