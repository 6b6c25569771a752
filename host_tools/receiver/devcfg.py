"""Remote configuration and device health at the centre.

    v = set_config(conn, device_id, {"heartbeat_every_s": 600}, operator="Ann")  # version v, queued
    config_view(conn, device_id) -> ConfigView      # `sotto devices config ID show`
    health_of(conn) -> {device_id: Health}           # `sotto devices list/show`
    record_provisioned(conn, device_id, {"heartbeat_every_s": 300}, by="sotto provision (tech)")
    expected_heartbeats(conn) -> {device_id: ExpectedHeartbeat}   # the silent list

A change is a numbered version per device (1, 2, ...): it rides to the device as
a `config` command (host_tools.receiver.commands) in its signed answers; the
device checks it with its own rules and answers with a health status frame
(`st` 7: `cfgv`, and `err` when refused) and the command's reply. The writer
calls apply_health() with every status and heartbeat frame and
apply_config_replies() with the reply frames, inside its transaction.

States of a version: queued, delivered (rode in an answer), applied (the
device runs it), refused (with the device's reason), superseded (a newer
version was applied first). The device's own `cfgv` is kept apart, as
reported: the centre shows both.

`sotto provision` records the settings it gave the device (its version 0,
device_provisioned): with the versions the device applied they say which
heartbeat interval the centre should expect before the device's heartbeats
say it themselves, or after a change its last heartbeat predates
(expected_heartbeats).

Names and values are checked here only for shape (dotted names, JSON values,
settings only `sotto provision` may set refused early): the device's rules
are the authority, and a refusal comes back with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError
from host_tools.ids import format_device_id
from host_tools.receiver import audit
from host_tools.receiver.alert_records import (
    FROM_CONFIGURED,
    FROM_HEARTBEAT,
    FROM_PENDING,
    FROM_PROVISIONED,
    MIN_HEARTBEAT_S,
    PROVISIONED_HEARTBEAT_S,
    ExpectedHeartbeat,
)
from host_tools.receiver.format import iso_utc
from host_tools.registry import write_transaction

CONFIG_OP = "config"
# identity, receiver and trust anchors: `sotto provision` only (firmware sotto.config.LOCKED)
LOCKED = ("device_id", "receiver", "apn", "sms_number", "ca_cert", "centre_key", "insecure_tls",
          "board", "version", "release_key", "secondary_receiver", "secondary_ca_cert",
          "secondary_centre_key", "repl_lock")
QUEUED, DELIVERED, APPLIED, REFUSED, SUPERSEDED = "queued", "delivered", "applied", "refused", "superseded"
UNDONE = (QUEUED, DELIVERED)
MAX_SETTINGS_BYTES = 1024           # one version in an answer; the device reads answers of at most 4 KB
_HEALTH_KEYS = {24: "fw", 25: "cfgv", 26: "rst", 27: "boots", 28: "faults", 29: "qd", 30: "csq"}
_FLAG_CONFIG_INVALID = 32
_ST_HEALTH, _ST_CONFIG_INVALID = 7, 8
HEARTBEAT_SETTING = "heartbeat_every_s"     # firmware sotto.config, range MIN_HEARTBEAT_S..86400
_MAX_HEARTBEAT_S = 86400

@dataclass(frozen=True)
class Health:
    """What the device last said about itself (status and heartbeat frames)."""

    fw: str | None
    cfgv: int | None
    rst: int | None
    boots: int | None
    faults: int | None
    qd: int | None
    csq: int | None
    at: float | None
    config_invalid: str | None      # the device's reason while it runs on a fallback, else None

    def to_json(self) -> dict[str, Any]:
        return {"firmware": self.fw, "config_version": self.cfgv, "reset_cause": self.rst,
                "boots": self.boots, "faults": self.faults, "queued": self.qd, "signal": self.csq,
                "reported": iso_utc(self.at), "config_invalid": self.config_invalid}


@dataclass(frozen=True)
class Version:
    version: int
    settings: dict[str, Any]
    operator: str
    created_at: float
    command_id: int | None
    state: str
    err: str | None
    done_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "settings": self.settings, "operator": self.operator,
                "created": iso_utc(self.created_at), "command": self.command_id, "state": self.state,
                "reason": self.err, "done": iso_utc(self.done_at)}


@dataclass(frozen=True)
class ConfigView:
    device_id: bytes
    reported: int | None            # cfgv the device last reported
    desired: dict[str, Any]         # every applied or pending setting, newest wins
    versions: list[Version]

    def to_json(self) -> dict[str, Any]:
        return {"device": format_device_id(self.device_id), "reported_version": self.reported,
                "settings": self.desired, "versions": [v.to_json() for v in self.versions]}


# --------------------------------------------------------------------------
# Operators' side.


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """{name: value} from `KEY=VALUE` words; a value is JSON (600, true,
    {"presses": 4, "window_ms": 2000}) or else taken as text. UsageError for a
    word without `=`, a bad name or a setting only `sotto provision` may set."""
    out: dict[str, Any] = {}
    if not pairs:
        raise UsageError("give at least one KEY=VALUE (e.g. heartbeat_every_s=600)")
    for word in pairs:
        name, sep, raw = word.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{word!r} is not KEY=VALUE (e.g. trigger.cancel_window_s=60)")
        parts = name.split(".")
        if any(not p or not all(c.isalnum() or c == "_" for c in p) for p in parts):
            raise UsageError(f"{name!r} is not a setting name (letters, digits, _ and dots)")
        if parts[0] in LOCKED:
            raise UsageError(f"{name} is identity or a trust anchor: only `sotto provision` sets it")
        try:
            value = json.loads(raw)
        except ValueError as e:
            if raw.lstrip()[:1] in ("{", "[", '"'):   # meant as JSON (a pattern, a list): say where it breaks
                raise UsageError(f"{name}: the value {raw!r} is not valid JSON ({e.msg} at character "
                                 f"{e.pos}); quote the whole word, e.g. "
                                 f"'{name}={{\"presses\": 4, \"window_ms\": 2000}}'") from None
            value = raw
        out[name] = value
    if len(json.dumps(out)) > MAX_SETTINGS_BYTES:
        raise UsageError(f"the settings are over {MAX_SETTINGS_BYTES} bytes; send them in parts")
    return out


def set_config(conn: Any, device_id: bytes, settings: Mapping[str, Any], *, operator: str,
               now: float | None = None, role: str = audit.CLI_ROLE) -> Version:
    """Queue the next configuration version of a device (audited); it rides
    in the device's next signed answer as a `config` command."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    with write_transaction(conn):
        row = conn.execute("SELECT max(version) FROM device_config WHERE device_id = ?",
                           (device_id,)).fetchone()
        reported = conn.execute("SELECT cfgv FROM device_health WHERE device_id = ?", (device_id,)).fetchone()
        version = max(row[0] or 0, (reported[0] or 0) if reported else 0) + 1
        args = {"v": version, "set": dict(settings)}
        command_id = conn.execute(
            "INSERT INTO commands(device_id, alert_id, sid, op, args, operator, queued_at) "
            "VALUES (?, NULL, NULL, ?, ?, ?, ?) RETURNING command_id",
            (device_id, CONFIG_OP, json.dumps(args, sort_keys=True), operator, now)).fetchone()[0]
        conn.execute("INSERT INTO device_config(device_id, version, settings, operator, created_at, "
                     "command_id) VALUES (?, ?, ?, ?, ?, ?)",
                     (device_id, version, json.dumps(dict(settings), sort_keys=True), operator, now,
                      command_id))
        audit.record(conn, operator, "config", device_id=device_id, at=now, in_transaction=True, role=role,
                     detail=f"configuration version {version}: {', '.join(sorted(settings))}")
    return Version(version, dict(settings), operator, now, int(command_id), QUEUED, None, None)


def _version(r: Sequence[Any]) -> Version:
    return Version(int(r[0]), json.loads(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])


def config_view(conn: Any, device_id: bytes) -> ConfigView:
    """The device's configuration versions (newest first), the settings they
    add up to (applied and pending ones; refused ones are left out) and the
    version the device last reported."""
    rows = conn.execute("SELECT c.version, c.settings, c.operator, c.created_at, c.command_id, "
                        "CASE WHEN c.state = 'queued' AND k.state = 'delivered' THEN 'delivered' "
                        "ELSE c.state END, c.err, c.done_at FROM device_config c "
                        "LEFT JOIN commands k ON k.command_id = c.command_id "
                        "WHERE c.device_id = ? ORDER BY c.version", (device_id,)).fetchall()
    versions = [_version(r) for r in rows]
    desired: dict[str, Any] = {}
    for v in versions:
        if v.state != REFUSED:
            desired.update(v.settings)
    h = conn.execute("SELECT cfgv FROM device_health WHERE device_id = ?", (device_id,)).fetchone()
    return ConfigView(device_id, h[0] if h else None, dict(sorted(desired.items())), versions[::-1])


def health_of(conn: Any) -> dict[bytes, Health]:
    """Every device's last health report."""
    return {bytes(r[0]): Health(*r[1:]) for r in conn.execute(
        "SELECT device_id, fw, cfgv, rst, boots, faults, qd, csq, health_at, config_invalid "
        "FROM device_health")}


def record_provisioned(conn: Any, device_id: bytes, settings: Mapping[str, Any], *, by: str,
                       now: float | None = None) -> None:
    """Keep the settings `sotto provision --set` gave the device (its whole
    configuration is new: remote versions made before now no longer apply)."""
    now = time.time() if now is None else now
    with write_transaction(conn):
        conn.execute("INSERT INTO device_provisioned(device_id, settings, provisioned_at, provisioned_by) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET settings = excluded.settings, "
                     "provisioned_at = excluded.provisioned_at, provisioned_by = excluded.provisioned_by",
                     (device_id, json.dumps(dict(settings), sort_keys=True), now, by))


def _heartbeat_of(settings_json: str) -> int | None:
    """The heartbeat interval a settings map sets (None: it sets none the firmware would run)."""
    try:
        value = json.loads(settings_json).get(HEARTBEAT_SETTING)
    except (ValueError, AttributeError):
        return None
    return value if type(value) is int and MIN_HEARTBEAT_S <= value <= _MAX_HEARTBEAT_S else None


def expected_heartbeats(conn: Any) -> dict[bytes, ExpectedHeartbeat]:
    """The heartbeat interval each device runs, as far as the centre knows it, for
    devices where that is not the firmware's default: what its last heartbeat said,
    unless a configuration version setting the interval was applied since (the
    device runs it; the firmware restarts its heartbeat timer when it applies a
    version, so the next heartbeat is due one new interval after that: `since`);
    for a device without a heartbeat yet, the setting of the newest version it
    applied, else the one it was provisioned with. Versions made before the device
    was (last) provisioned are left out, and so is a heartbeat from before then;
    refused versions and ones still waiting to ride in an answer do not run. A
    version sent but not confirmed (or superseded since the last heartbeat: perhaps
    applied, perhaps skipped) may or may not run: the longer interval counts until
    the device says (see ExpectedHeartbeat). An unconfirmed one counts even if sent
    before the last heartbeat: it rides in every answer until confirmed, and the
    device may apply it from the next one on."""
    out: dict[bytes, ExpectedHeartbeat] = {}
    since: dict[bytes, float] = {}
    for device_id, settings, at in conn.execute(
            "SELECT device_id, settings, provisioned_at FROM device_provisioned"):
        since[bytes(device_id)] = at
        hb = _heartbeat_of(settings)
        if hb is not None:
            out[bytes(device_id)] = ExpectedHeartbeat(hb, FROM_PROVISIONED)
    heard: dict[bytes, float] = {}     # when its last heartbeat (that still counts) arrived
    for raw_id, hb, at in conn.execute(
            "SELECT device_id, heartbeat_s, heartbeat_at FROM device_state WHERE heartbeat_s IS NOT NULL"):
        device_id = bytes(raw_id)
        if at is not None and at < since.get(device_id, at):
            continue                   # it ran the configuration it had before it was provisioned
        out[device_id] = ExpectedHeartbeat(int(hb), FROM_HEARTBEAT)
        heard[device_id] = at if at is not None else float("-inf")
    rows = conn.execute(
        "SELECT c.device_id, c.version, c.settings, c.state, c.created_at, c.done_at, k.state, "
        "k.delivered_at FROM device_config c LEFT JOIN commands k ON k.command_id = c.command_id "
        "WHERE c.settings LIKE ? ORDER BY c.device_id, c.version", (f'%"{HEARTBEAT_SETTING}"%',)).fetchall()
    for raw_id, version, settings, state, created_at, done_at, sent, delivered_at in rows:
        device_id = bytes(raw_id)
        hb = _heartbeat_of(settings)
        if hb is None or created_at < since.get(device_id, created_at):
            continue
        before = out.get(device_id)
        # settled after the last heartbeat (or no heartbeat yet): the heartbeat does not say it
        since_heartbeat = done_at is not None and done_at >= heard.get(device_id, done_at)
        if state == APPLIED and since_heartbeat:
            out[device_id] = ExpectedHeartbeat(hb, FROM_CONFIGURED, int(version), done_at)
        elif (state == SUPERSEDED and since_heartbeat) or (state in UNDONE and sent not in (None, QUEUED)):
            longer = max(hb, before.seconds if before is not None else PROVISIONED_HEARTBEAT_S)
            at = [t for t in (before.since if before is not None else None,
                              done_at if state == SUPERSEDED else delivered_at) if t is not None]
            out[device_id] = ExpectedHeartbeat(longer, FROM_PENDING, int(version), max(at, default=None))
    return out


# --------------------------------------------------------------------------
# The writer's side (inside its transaction).


def apply_health(conn: Any, reports: Sequence[tuple[bytes, int, int, Mapping[int, Any]]],
                 now: float) -> list[str]:
    """Status and heartbeat frames (device, seq, type, payload), in seq order
    per device: the health fields, config-invalid, and the fate of a
    configuration version (st 7). Returns news lines for the console."""
    news: list[str] = []
    for device_id, _seq, _ftype, p in sorted(reports, key=lambda x: (x[0], x[1])):
        fields = {name: p[k] for k, name in _HEALTH_KEYS.items() if k in p}
        invalid = bool(p.get(10, 0) & _FLAG_CONFIG_INVALID)
        st = p.get(18)
        reason = p.get(37) if st == _ST_CONFIG_INVALID else None
        conn.execute(
            "INSERT INTO device_health(device_id, fw, cfgv, rst, boots, faults, qd, csq, health_at, "
            "config_invalid, invalid_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(device_id) DO UPDATE SET "
            "fw = coalesce(excluded.fw, device_health.fw), "
            "cfgv = coalesce(excluded.cfgv, device_health.cfgv), "
            "rst = coalesce(excluded.rst, device_health.rst), "
            "boots = coalesce(excluded.boots, device_health.boots), "
            "faults = coalesce(excluded.faults, device_health.faults), "
            "qd = coalesce(excluded.qd, device_health.qd), "
            "csq = coalesce(excluded.csq, device_health.csq), "
            "health_at = excluded.health_at, "
            "config_invalid = CASE WHEN ? THEN coalesce(?, device_health.config_invalid, 'invalid') "
            "ELSE NULL END, "
            "invalid_at = CASE WHEN ? THEN coalesce(device_health.invalid_at, excluded.invalid_at) "
            "ELSE NULL END",
            (device_id, fields.get("fw"), fields.get("cfgv"), fields.get("rst"), fields.get("boots"),
             fields.get("faults"), fields.get("qd"), fields.get("csq"), now,
             (reason or "invalid") if invalid else None, now if invalid else None, invalid, reason, invalid))
        if st == _ST_CONFIG_INVALID:
            news.append(f"CONFIG INVALID on device {format_device_id(device_id)}: "
                        f"{reason or 'no reason given'}")
        if st != _ST_HEALTH or "cfgv" not in fields:
            continue
        cfgv = fields["cfgv"]
        err = p.get(37)
        if err is None:
            conn.execute("UPDATE device_config SET state = ?, done_at = ? WHERE device_id = ? "
                         "AND version = ? AND state IN (?, ?)", (APPLIED, now, device_id, cfgv, *UNDONE))
            conn.execute("UPDATE device_config SET state = ?, done_at = ? WHERE device_id = ? "
                         "AND version < ? AND state IN (?, ?)", (SUPERSEDED, now, device_id, cfgv, *UNDONE))
        else:
            # the device refuses versions in order: the oldest one it was sent above what it runs
            row = conn.execute("SELECT c.version FROM device_config c JOIN commands k "
                               "ON k.command_id = c.command_id WHERE c.device_id = ? AND c.version > ? "
                               "AND c.state IN (?, ?) AND k.state != 'queued' ORDER BY c.version LIMIT 1",
                               (device_id, cfgv, *UNDONE)).fetchone()
            if row is not None:
                conn.execute("UPDATE device_config SET state = ?, err = ?, done_at = ? "
                             "WHERE device_id = ? AND version = ?", (REFUSED, err, now, device_id, row[0]))
                news.append(f"configuration {row[0]} refused by device {format_device_id(device_id)}: {err}")
    return news


def apply_config_replies(conn: Any, replies: Sequence[tuple[bytes, int, int, int]],
                         now: float) -> None:
    """Reply frames (device, cmd, res, seq) that close a `config` command whose
    version no status frame has settled: done -> applied, else refused."""
    for device_id, cmd, res, _seq in replies:
        state = APPLIED if res == 1 else REFUSED
        conn.execute("UPDATE device_config SET state = ?, done_at = ?, "
                     "err = coalesce(err, CASE WHEN ? = 'refused' THEN ? END) "
                     "WHERE device_id = ? AND command_id = ? AND state IN (?, ?)",
                     (state, now, state, f"refused (reply result {res})", device_id, cmd, *UNDONE))
