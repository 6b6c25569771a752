"""`sotto alerts list|show|ack|close|export|audit|listen|more-audio|locate|ask|hold|release`:
what monitoring-centre operators do.

Thin handlers over host_tools.receiver.alerts, .commands, .holds and .evidence.
Showing an alert (its location and track) and exporting it (its audio) are
written to the audit log with the operator's name first: --operator, else
$SOTTO_OPERATOR, else the login name. So are commands to the device and holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from typing import Any

from host_tools.receiver import audit, commands, holds
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
from host_tools.registry import add_db_option, resolve_db_path

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
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser("alerts", help="list, show, acknowledge, close and export alerts",
                                   description=ALERTS_HELP, formatter_class=fmt)
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    sub = parser.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", title="subcommands")

    lst = sub.add_parser("list", help="open alerts and silent devices",
                         description="Open and acknowledged alerts, most urgent first (duress, then open), "
                                     "and the devices whose heartbeat is overdue. No location is shown here.")
    lst.add_argument("--all", action="store_true", help="include closed alerts")
    lst.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                     help=f"how late a heartbeat may be before a device counts as silent "
                          f"(default {DEFAULT_GRACE_S})")
    lst.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(lst)
    lst.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="one alert in full (audited)",
                          description="Officer, device, start time, trigger, duress, the latest location "
                                      "with its age and accuracy, the track, audio received and the hash "
                                      "chain. The access is written to the audit log.")
    show.add_argument("alert", metavar="ID", help="alert id, e.g. A12")
    show.add_argument("--operator", metavar="NAME", help=f"who is looking (default ${audit.ENV_OPERATOR} "
                                                         "or the login name)")
    show.add_argument("--full-track", action="store_true",
                      help=f"print every position, not the last {TRACK_ROWS}")
    show.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(show)
    show.set_defaults(func=cmd_show)

    ack = sub.add_parser("ack", help="acknowledge: an operator is handling it",
                         description="Mark the alert as being handled by NAME (audited).")
    ack.add_argument("alert", metavar="ID")
    ack.add_argument("--operator", required=True, metavar="NAME")
    add_db_option(ack)
    ack.set_defaults(func=cmd_ack)

    cls = sub.add_parser("close", help="close with an outcome",
                         description="Close the alert with its outcome (audited). The device learns it in "
                                     "its next answer and sends its end frame.")
    cls.add_argument("alert", metavar="ID")
    cls.add_argument("--operator", required=True, metavar="NAME")
    cls.add_argument("--outcome", required=True, metavar="TEXT", help="what happened, e.g. 'officer safe'")
    add_db_option(cls)
    cls.set_defaults(func=cmd_close)

    exp = sub.add_parser("export", help="write an evidence bundle (audited)",
                         description="Write the alert's evidence to DIR (new or empty): the frames exactly "
                                     "as received, the audio as WAV, the track as GeoJSON, a verification "
                                     "report (JSON and HTML) with the device's public key, and a manifest "
                                     "of SHA-256s. Check it with `sotto evidence verify DIR`.")
    exp.add_argument("alert", metavar="ID")
    exp.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    exp.add_argument("--operator", metavar="NAME", help="who exports (default $SOTTO_OPERATOR or login name)")
    add_db_option(exp)
    exp.set_defaults(func=cmd_export)

    _register_commands(sub)

    aud = sub.add_parser("audit", help="the audit log (who accessed what, when)",
                         description="Print the audit log: every view, export, acknowledgement, closure "
                                     "and purge, oldest first.")
    aud.add_argument("alert", metavar="ID", nargs="?", help="only this alert")
    aud.add_argument("--limit", type=int, metavar="N", help="only the newest N entries")
    aud.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(aud)
    aud.set_defaults(func=cmd_audit)


def _operator_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("alert", metavar="ID", help="alert id, e.g. A12")
    p.add_argument("--operator", metavar="NAME",
                   help=f"who asks (default ${audit.ENV_OPERATOR} or the login name)")
    p.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(p)


def _register_commands(sub: Any) -> None:
    """The commands to the device, and holds."""
    listen = sub.add_parser("listen", help="tell the officer an operator is listening (covert haptic)",
                            description="Queue the `listening` command: the officer's device plays the "
                                        "listening pattern on the wrist (audited). `ack` sends it too.")
    _operator_args(listen)
    listen.set_defaults(func=cmd_command, op=commands.LISTENING)

    more = sub.add_parser("more-audio", help="ask the device for more audio (listen-in)",
                          description="Queue `more-audio`: the device extends the alert's audio clip by "
                                      "SECONDS, up to its configured maximum (audio.max_clip_s).")
    _operator_args(more)
    more.add_argument("--seconds", type=int, required=True, metavar="N",
                      help=f"seconds of audio to add (1..{commands.MORE_AUDIO_MAX_S})")
    more.set_defaults(func=cmd_command, op=commands.MORE_AUDIO)

    locate = sub.add_parser("locate", help="ask the device for a location now",
                            description="Queue `locate`: the device sends a location frame of the live "
                                        "alert at once.")
    _operator_args(locate)
    locate.set_defaults(func=cmd_command, op=commands.LOCATE)

    names = ", ".join(f"{n} ({c})" for n, c in commands.QUESTIONS.items())
    ask = sub.add_parser("ask", help="ask the officer a silent yes/no question",
                         description="Queue `ask`: the device plays the question's haptic code; the officer "
                                     "answers with the yes or no press pattern, or not at all in time. "
                                     f"`show` gives the answer. Questions: {names}.")
    _operator_args(ask)
    ask.add_argument("--question", required=True, metavar="CODE",
                     help=f"{names}, or a code 1..{commands.QUESTION_MAX} of the device's configuration")
    ask.set_defaults(func=cmd_command, op=commands.ASK)

    hold = sub.add_parser("hold", help="keep an alert whole whatever the retention (audited)",
                          description="Place the alert on hold: `sotto purge` never touches it until "
                                      "`sotto alerts release`.")
    _operator_args(hold)
    hold.add_argument("--reason", required=True, metavar="TEXT", help="why, e.g. 'police investigation 4411'")
    hold.set_defaults(func=cmd_hold)

    release = sub.add_parser("release", help="release an alert's hold (audited)",
                             description="Release the hold: the alert is purged again with the others once "
                                         "it is older than the retention.")
    _operator_args(release)
    release.set_defaults(func=cmd_release)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto alerts list [--all] [--json]`."""
    with closing(open_db(resolve_db_path(args.db))) as conn:
        ov = overview(conn, include_closed=args.all, grace_s=args.grace)
    if args.json:
        print(json.dumps(ov.to_json(), indent=2))
        return 0
    if ov.alerts:
        rows = [("ALERT", "STATE", "OFFICER", "DEVICE", "STARTED (UTC)", "TRIGGER", "CHAIN", "AUDIO",
                 "ENDED", "NOTE")]
        for a in ov.alerts:
            rows.append((a.code, state_text(a), a.officer or "-", a.device, utc_text(a.start_time)[:19],
                         a.trigger_name if a.trigger else "?", a.chain.state, f"{a.audio_seconds:.1f} s",
                         "cancelled" if a.end_type == 4 else "ended" if a.end_type == 6 else "-",
                         flags_text(a)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    else:
        print("no alerts" if args.all else "no open alerts")
    if ov.silent:
        print(f"\nsilent devices (heartbeat overdue, grace {duration_text(ov.grace_s)}):")
        for s in ov.silent:
            if s.never_heard:
                print(f"  {s.device}  {s.officer or '-'}  NEVER HEARD since it was registered "
                      f"{utc_text(s.last_seen_at)} ({duration_text(ov.now - s.last_seen_at)} ago)")
                continue
            print(f"  {s.device}  {s.officer or '-'}  last heard {utc_text(s.last_seen_at)} "
                  f"({duration_text(ov.now - s.last_seen_at)} ago), "
                  f"heartbeat every {duration_text(s.heartbeat_s)}"
                  + (f", battery {s.battery} %" if s.battery is not None else ""))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """`sotto alerts show ID [--operator NAME] [--json]`."""
    alert_id = parse_alert_id(args.alert)
    operator = audit.operator_name(args.operator)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        detail = show_alert(conn, alert_id, operator=operator)
    if args.json:
        print(json.dumps(detail.to_json(), indent=2))
    else:
        print("\n".join(format_alert(detail, args.full_track)))
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    """`sotto alerts ack ID --operator NAME`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        a = acknowledge(conn, alert_id, operator=args.operator)
    print(f"{a.code} acknowledged by {a.acked_by}; the officer feels it (listening) after the device's "
          "next answer")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    """`sotto alerts close ID --operator NAME --outcome TEXT`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        a = close(conn, alert_id, operator=args.operator, outcome=args.outcome)
    note = "" if a.end_type else "; the device is told in its next answer and sends its end frame"
    print(f"{a.code} closed by {a.closed_by}: {a.outcome}{note}")
    return 0


def cmd_command(args: argparse.Namespace) -> int:
    """`sotto alerts listen|more-audio|locate|ask ID [...]`."""
    alert_id = parse_alert_id(args.alert)
    operator = audit.operator_name(args.operator)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        c = commands.queue(conn, alert_id, args.op, operator=operator, seconds=getattr(args, "seconds", None),
                           question=getattr(args, "question", None))
    if args.json:
        print(json.dumps(c.to_json(), indent=2))
    else:
        print(f"{alert_code(alert_id)}: command {c.command_id} ({c.what}) queued by {c.operator}; it goes in "
              "the device's next answer (`sotto alerts show` follows it)")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    """`sotto alerts hold ID --reason TEXT`."""
    alert_id = parse_alert_id(args.alert)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        h = holds.hold(conn, alert_id, operator=audit.operator_name(args.operator), reason=args.reason)
    print(json.dumps(h.to_json(), indent=2) if args.json
          else f"{alert_code(alert_id)} on hold ({h.text}); purge leaves it whole until released")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """`sotto alerts release ID`."""
    alert_id = parse_alert_id(args.alert)
    operator = audit.operator_name(args.operator)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        h = holds.release(conn, alert_id, operator=operator)
    print(json.dumps({**h.to_json(), "released_by": operator}, indent=2) if args.json
          else f"{alert_code(alert_id)} released by {operator} (it was held {h.text})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`sotto alerts export ID --out DIR`."""
    alert_id = parse_alert_id(args.alert)
    operator = audit.operator_name(args.operator)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        result = export_alert(conn, alert_id, args.out, operator=operator)
    print(f"exported {alert_code(alert_id)} to {result.path}: {result.frames} frames, "
          f"{result.audio_seconds:.1f} s audio; chain {result.chain}")
    print(f"bundle digest (SHA-256 of manifest.json): {result.manifest_sha256} (recorded in the audit log)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """`sotto alerts audit [ID] [--json]`."""
    alert_id = parse_alert_id(args.alert) if args.alert else None
    with closing(open_db(resolve_db_path(args.db))) as conn:
        rows = audit.entries(conn, alert_id=alert_id, limit=args.limit)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        print("the audit log is empty" if alert_id is None
              else f"no audit entries for {alert_code(alert_id)}")
    for r in rows:
        what = alert_code(r.alert_id) if r.alert_id else "-"
        print(f"{utc_text(r.at)}  {r.operator}  {r.action}  {what}" + (f"  {r.detail}" if r.detail else ""))
    return 0
