"""`sotto centre init|key|time-window`: the monitoring centre's own identity and settings.

Thin handlers over host_tools.receiver.centre_key. The private key is written
once to its file and never printed; these commands print the public key only.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path
from typing import Any

from host_tools.receiver import centre_key, flags
from host_tools.receiver.store import open_db
from host_tools.registry import add_db_option, resolve_db_path
from host_tools.storage import redact
from sotto_cli.options import add_db_and_json, add_json, add_operator, command, emit, group, operator_of

CENTRE_HELP = """\
The centre's answer-signing key (Ed25519).

Every answer the receiver gives a device is signed with it, and bound to the
request it answers; devices hold its public key from provisioning
(`sotto provision` reads it from the database) and act on nothing that does
not verify against it. `init` makes the key (a file with mode 0600 beside the
database, `<db>-centre.key`, or --centre-key PATH) and records its public key
in the database; `key` prints the public key. The private key never appears
in output, logs or the database. `sotto receive` makes the key on its first
start when there is none."""


def add_centre_key_option(parser: argparse.ArgumentParser) -> None:
    """`--centre-key PATH`, shared by `sotto centre` and `sotto receive`."""
    parser.add_argument("--centre-key", metavar="PATH",
                        help="the centre's private answer-signing key file (default: the database's "
                             f"path + {centre_key.KEY_SUFFIX})")


def centre_key_path(args: argparse.Namespace, db: Path) -> Path:
    return Path(args.centre_key).expanduser() if args.centre_key else centre_key.default_path(db)


def register(subparsers: Any) -> None:
    """Add `sotto centre` and its subcommands to the CLI."""
    _, sub = group(subparsers, "centre", help="the centre's answer-signing key (init, key), time-window",
                   description=CENTRE_HELP)

    init = command(sub, "init", cmd_init, help="make the centre's answer-signing key",
                          description="Make the centre's Ed25519 answer-signing key: written to its file "
                                      "(mode 0600; never over an existing one) and its public key recorded "
                                      "in the database (made if missing). Prints the public key.",
                          epilog="example: sotto centre init --db /srv/sotto/receiver.db")
    add_db_and_json(init)
    add_centre_key_option(init)

    key = command(sub, "key", cmd_key, help="print the centre's public key",
                         description="Print the centre's public key: 64 hex digits (what `sotto provision "
                                     "--centre-key-pub` takes), or PEM. Read from the key file when it is "
                                     "here, else from the database's record (a technician's machine needs "
                                     "no private key).",
                         epilog="example: sotto centre key --db /srv/sotto/receiver.db --pem")
    add_db_option(key)
    add_centre_key_option(key)
    form = key.add_mutually_exclusive_group()
    form.add_argument("--pem", action="store_true", help="print a PEM public key instead of hex")
    add_json(form)

    win = command(sub, "time-window", cmd_time_window,
                  help="show or set how far a frame's device time may be from receipt",
                  description="Frames whose device time is more than --behind-s behind or --ahead-s "
                              "ahead of when the receiver got them are accepted but flagged on their "
                              "alert (time-behind / time-ahead; a time of 0 counts as behind). "
                              f"Defaults {flags.DEFAULT_TIME_BEHIND_S} s behind, "
                              f"{flags.DEFAULT_TIME_AHEAD_S} s ahead. A change is audited and taken "
                              "by a running receiver at its next group commit.",
                  epilog="example: sotto centre time-window --behind-s 1800 --operator dpo")
    add_db_and_json(win)
    win.add_argument("--behind-s", type=int, metavar="SECONDS",
                     help="seconds behind receipt before a frame is flagged")
    win.add_argument("--ahead-s", type=int, metavar="SECONDS",
                     help="seconds ahead of receipt before it is flagged")
    add_operator(win, what="who changes it")


def _public_json(public_key: bytes, path: Path | None, created: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"public_key": public_key.hex(), "kid": centre_key.kid_of(public_key).hex(),
                           "key_file": str(path) if path else None}
    if created is not None:
        out["created"] = created
    return out


def cmd_init(args: argparse.Namespace) -> int:
    """`sotto centre init --db PATH [--centre-key PATH] [--json]`."""
    db = resolve_db_path(args.db)
    path = centre_key_path(args, db)
    with closing(open_db(db, create=True)) as conn:
        recorded = centre_key.recorded_public_key(conn)
        if recorded is not None:
            raise centre_key.CentreKeyError(
                f"the database {redact(db)} already has a centre key ({recorded.hex()}); "
                "`sotto centre key` prints it. A new one would make every provisioned device refuse the "
                "centre's answers")
        key = centre_key.create(path)
        try:
            centre_key.record_public_key(conn, key.public_key)
        except BaseException:   # not recorded (e.g. a role that may not): no orphan key file left behind
            path.unlink(missing_ok=True)
            raise
    return emit(_public_json(key.public_key, path, True), args, [
        f"made the centre key {path} (mode 0600; keep it with the database, back it up safely)",
        f"public key {key.public_hex}"])


def cmd_key(args: argparse.Namespace) -> int:
    """`sotto centre key --db PATH [--pem | --json]`."""
    db = resolve_db_path(args.db)
    path = centre_key_path(args, db)
    with closing(open_db(db)) as conn:
        public = centre_key.public_key_for(conn, path)
    text = centre_key.public_pem(public).rstrip("\n") if args.pem else public.hex()
    return emit(_public_json(public, path if path.exists() else None), args, text)


def cmd_time_window(args: argparse.Namespace) -> int:
    """`sotto centre time-window [--behind-s S] [--ahead-s S] [--json]`."""
    db = resolve_db_path(args.db)
    with closing(open_db(db)) as conn:
        if args.behind_s is None and args.ahead_s is None:
            behind, ahead = flags.time_window(conn)
        else:
            behind, ahead = flags.set_time_window(conn, behind_s=args.behind_s, ahead_s=args.ahead_s,
                                                  operator=operator_of(args))
    return emit({"behind_s": behind, "ahead_s": ahead}, args,
                f"frames are flagged when their device time is over {behind} s behind or {ahead} s ahead "
                "of receipt")
