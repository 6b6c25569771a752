"""`sotto alerts list|show|ack|close|export|audit|listen|more-audio|locate|ask|hold|release`:
what monitoring-centre operators do.

Thin handlers over host_tools.receiver.alerts, .commands, .holds and .evidence.
Showing an alert (its location and track) and exporting it (its audio) are
written to the audit log with the operator's name first: --operator, else
$SOTTO_OPERATOR, else the login name. So are commands to the device and holds.
"""

from __future__ import annotations

import argparse
import dataclasses
from contextlib import closing
from typing import Any

from host_tools.receiver import audit, commands, holds
from host_tools.receiver.alert_records import FROM_HEARTBEAT
from host_tools.receiver.alerts import (
    DEFAULT_GRACE_S,
    acknowledge,
    close,
    duration_text,
    overview,
    show_alert,
    utc_text,
)
from host_tools.receiver.evidence import export_alert
from host_tools.receiver.format import TRACK_ROWS, flags_text, format_alert, state_text
from host_tools.receiver.store import alert_code, open_db, parse_alert_id
from host_tools.receiver.visits import OVERDUE, list_visits, visit_line
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, add_operator, command, emit, group, operator_of, table

ALERTS_HELP = """\
Alerts from the devices, for the monitoring centre.

An alert is every frame of one alert session of one device. `list` shows the
open ones (duress first) and the devices whose heartbeat is overdue; `show`
gives one alert in full (audited: it shows where the officer is); `ack` says an
operator is handling it (the officer feels the `listening` pattern); `close`
ends it with an outcome (the device is told and sends its end frame); `export`
writes an evidence bundle anyone can check with `sotto evidence verify`.

`listen`, `more-audio`, `locate` and `ask` send a command to the alert's device
in its next signed answer (`show` lists each command with its state: queued,
delivered, done, refused, answered). `hold` keeps an alert whole whatever the
retention (`sotto purge` never touches it) until `release`."""

def register(subparsers: Any) -> None:
    """Add `sotto alerts` and its subcommands to the CLI."""
    _, sub = group(subparsers, "alerts", help="list, show, acknowledge, close and export alerts",
                   description=ALERTS_HELP)

    lst = command(sub, "list", cmd_list, help="open alerts, silent devices and open check-in visits",
                  description="Open and acknowledged alerts, most urgent first (duress, then open), the "
                              "devices whose heartbeat is overdue, and the open timed check-in visits "
                              "(overdue first). No location is shown here.")
    lst.add_argument("--all", action="store_true", help="include closed alerts")
    lst.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                     help=f"how late a heartbeat may be before a device counts as silent "
                          f"(default {DEFAULT_GRACE_S})")
    add_db_and_json(lst)

    show = command(sub, "show", cmd_show, help="one alert in full (audited)",
                   description="Officer, device, start time, trigger, duress, the latest location with its "
                               "age and accuracy, the track, audio received and the hash chain. The access "
                               "is written to the audit log.")
    _alert_args(show, "who is looking")
    show.add_argument("--full-track", action="store_true",
                      help=f"print every position, not the last {TRACK_ROWS}")

    ack = command(sub, "ack", cmd_ack, help="acknowledge: an operator is handling it",
                  description="Mark the alert as being handled by the operator (audited).")
    _alert_args(ack, "who handles it", login_fallback=False)

    cls = command(sub, "close", cmd_close, help="close with an outcome",
                  description="Close the alert with its outcome (audited). The device learns it in its next "
                              "answer and sends its end frame.")
    _alert_args(cls, "who closes it", login_fallback=False)
    cls.add_argument("--outcome", required=True, metavar="TEXT", help="what happened, e.g. 'officer safe'")

    exp = command(sub, "export", cmd_export, help="write an evidence bundle (audited)",
                  description="Write the alert's evidence to DIR (new or empty): the frames exactly as "
                              "received, the audio as WAV, the track as GeoJSON, a verification report (JSON "
                              "and HTML) with the device's public key, and a manifest of SHA-256s sealed by "
                              "the centre's key (manifest.sig). Check it with `sotto evidence verify DIR "
                              "--centre-key KEY`.")
    _alert_args(exp, "who exports")
    exp.add_argument("--centre-key", metavar="PATH",
                     help="the centre's private key file that seals the bundle (default: the database's "
                          "path + -centre.key)")
    exp.add_argument("--out", required=True, metavar="DIR", help="folder to create")

    _register_commands(sub)

    aud = command(sub, "audit", cmd_audit, help="the audit log (who accessed what, when)",
                  description="Print the audit log: every view, export, acknowledgement, closure and purge, "
                              "oldest first.")
    aud.add_argument("alert", metavar="ID", nargs="?", help="only this alert")
    aud.add_argument("--limit", type=int, metavar="N", help="only the newest N entries")
    add_db_and_json(aud)


def _alert_args(p: argparse.ArgumentParser, who: str = "who asks", login_fallback: bool = True) -> None:
    p.add_argument("alert", metavar="ID", help="alert id, e.g. A12")
    add_operator(p, what=who, login_fallback=login_fallback)
    add_db_and_json(p)


def _register_commands(sub: Any) -> None:
    """The commands to the device, and holds."""
    listen = command(sub, "listen", cmd_command, op=commands.LISTENING,
                     help="tell the officer an operator is listening (covert haptic)",
                     description="Queue the `listening` command: the officer's device plays the listening "
                                 "pattern on the wrist (audited). `ack` sends it too.")
    _alert_args(listen)

    more = command(sub, "more-audio", cmd_command, op=commands.MORE_AUDIO,
                   help="ask the device for more audio (listen-in)",
                   description="Queue `more-audio`: the device extends the alert's audio clip by SECONDS, up "
                               "to its configured maximum (audio.max_clip_s).")
    _alert_args(more)
    more.add_argument("--seconds", type=int, required=True, metavar="N",
                      help=f"seconds of audio to add (1..{commands.MORE_AUDIO_MAX_S})")

    locate = command(sub, "locate", cmd_command, op=commands.LOCATE, help="ask the device for a location now",
                     description="Queue `locate`: the device sends a location frame of the live alert at "
                                 "once.")
    _alert_args(locate)

    names = ", ".join(f"{n} ({c})" for n, c in commands.QUESTIONS.items())
    ask = command(sub, "ask", cmd_command, op=commands.ASK, help="ask the officer a silent yes/no question",
                  description="Queue `ask`: the device plays the question's haptic code; the officer answers "
                              "with the yes or no press pattern, or not at all in time. `show` gives the "
                              f"answer. Questions: {names}.")
    _alert_args(ask)
    ask.add_argument("--question", required=True, metavar="CODE",
                     help=f"{names}, or a code 1..{commands.QUESTION_MAX} of the device's configuration")

    hold = command(sub, "hold", cmd_hold, help="keep an alert whole whatever the retention (audited)",
                   description="Place the alert on hold: `sotto purge` never touches it until "
                               "`sotto alerts release`.")
    _alert_args(hold, "who holds it")
    hold.add_argument("--reason", required=True, metavar="TEXT", help="why, e.g. 'police investigation 4411'")

    release = command(sub, "release", cmd_release, help="release an alert's hold (audited)",
                      description="Release the hold: the alert is purged again with the others once it is "
                                  "older than the retention.")
    _alert_args(release, "who releases it")


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto alerts list [--all] [--json]`."""
    with closing(open_db(resolve_db_path(args.db))) as conn:
        ov = overview(conn, include_closed=args.all, grace_s=args.grace)
        visits = list_visits(conn, now=ov.now)  # open, overdue and alerted timed check-ins
    if args.json:
        out = ov.to_json()
        out["visits"] = [v.to_json() for v in visits]
        return emit(out, args, [])
    if ov.alerts:
        rows = [("ALERT", "STATE", "OFFICER", "DEVICE", "STARTED (UTC)", "TRIGGER", "CHAIN", "AUDIO",
                 "ENDED", "NOTE")]
        for a in ov.alerts:
            rows.append((a.code, state_text(a), a.officer or "-", a.device, utc_text(a.start_time)[:19],
                         a.trigger_name if a.trigger else "?", a.chain.state, f"{a.audio_seconds:.1f} s",
                         "cancelled" if a.end_type == 4 else "ended" if a.end_type == 6 else "-",
                         flags_text(a)))
        emit(None, args, table(rows))
    else:
        print("no alerts" if args.all else "no open alerts")
    if ov.silent:
        print(f"\nsilent devices (heartbeat overdue, grace {duration_text(ov.grace_s)}):")
        for s in ov.silent:
            if s.never_heard:
                print(f"  {s.device}  {s.officer or '-'}  NEVER HEARD since it was registered "
                      f"{utc_text(s.last_seen_at)} ({duration_text(ov.now - s.last_seen_at)} ago, "
                      f"expected within {s.interval_text})")
                continue
            print(f"  {s.device}  {s.officer or '-'}  last heard {utc_text(s.last_seen_at)} "
                  f"({duration_text(ov.now - s.last_seen_at)} ago), "
                  + (f"no heartbeat yet (expected within {s.interval_text})" if s.no_heartbeat_yet
                     else s.interval_text if s.heartbeat_from == FROM_HEARTBEAT
                     else f"heartbeat expected within {s.interval_text}, set since its last heartbeat")
                  + (f", battery {s.battery} %" if s.battery is not None else ""))
    if visits:
        overdue = sum(1 for v in visits if v.state == OVERDUE)
        print(f"\nvisits (timed check-in){f', {overdue} OVERDUE' if overdue else ''}:")
        for v in visits:
            print("  " + visit_line(v))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """`sotto alerts show ID [--operator NAME] [--json]`."""
    alert_id = parse_alert_id(args.alert)
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        detail = show_alert(conn, alert_id, operator=operator)
    return emit(detail.to_json(), args, lambda: format_alert(detail, args.full_track))


def cmd_ack(args: argparse.Namespace) -> int:
    """`sotto alerts ack ID --operator NAME`."""
    alert_id = parse_alert_id(args.alert)
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        a = acknowledge(conn, alert_id, operator=operator)
    return emit(a.to_json(), args, f"{a.code} acknowledged by {a.acked_by}; the officer feels it (listening) "
                "after the device's next answer")


def cmd_close(args: argparse.Namespace) -> int:
    """`sotto alerts close ID --operator NAME --outcome TEXT`."""
    alert_id = parse_alert_id(args.alert)
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        a = close(conn, alert_id, operator=operator, outcome=args.outcome)
    note = "" if a.end_type else "; the device is told in its next answer and sends its end frame"
    return emit(a.to_json(), args, f"{a.code} closed by {a.closed_by}: {a.outcome}{note}")


def cmd_command(args: argparse.Namespace) -> int:
    """`sotto alerts listen|more-audio|locate|ask ID [...]`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        c = commands.queue(conn, alert_id, args.op, operator=operator_of(args),
                           seconds=getattr(args, "seconds", None), question=getattr(args, "question", None))
    return emit(c.to_json(), args, f"{alert_code(alert_id)}: command {c.command_id} ({c.what}) queued by "
                f"{c.operator}; it goes in the device's next answer (`sotto alerts show` follows it)")


def cmd_hold(args: argparse.Namespace) -> int:
    """`sotto alerts hold ID --reason TEXT`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        h = holds.hold(conn, alert_id, operator=operator_of(args), reason=args.reason)
    return emit(h.to_json(), args, f"{alert_code(alert_id)} on hold ({h.text}); purge leaves it whole until "
                "released")


def cmd_release(args: argparse.Namespace) -> int:
    """`sotto alerts release ID`."""
    alert_id = parse_alert_id(args.alert)
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        h = holds.release(conn, alert_id, operator=operator)
    return emit({**h.to_json(), "released_by": operator}, args,
                f"{alert_code(alert_id)} released by {operator} (it was held {h.text})")


def cmd_export(args: argparse.Namespace) -> int:
    """`sotto alerts export ID --out DIR`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        result = export_alert(conn, alert_id, args.out, operator=operator_of(args),
                              centre_key_path=args.centre_key)
    data = {**dataclasses.asdict(result), "alert": alert_code(alert_id), "path": str(result.path)}
    return emit(data, args, [
        f"exported {alert_code(alert_id)} to {result.path}: {result.frames} frames, "
        f"{result.audio_seconds:.1f} s audio; chain {result.chain}",
        f"bundle digest (SHA-256 of manifest.json): {result.manifest_sha256} (recorded in the audit log); "
        "sealed by the centre key (manifest.sig)"])


def cmd_audit(args: argparse.Namespace) -> int:
    """`sotto alerts audit [ID] [--json]`."""
    alert_id = parse_alert_id(args.alert) if args.alert else None
    with closing(open_db(resolve_db_path(args.db))) as conn:
        rows = audit.entries(conn, alert_id=alert_id, limit=args.limit)
    if args.json:
        return emit([r.to_json() for r in rows], args, [])
    if not rows:
        print("the audit log is empty" if alert_id is None
              else f"no audit entries for {alert_code(alert_id)}")
    for r in rows:
        what = alert_code(r.alert_id) if r.alert_id else "-"
        print(f"{utc_text(r.at)}  {r.operator}  {r.action}  {what}" + (f"  {r.detail}" if r.detail else ""))
    return 0
