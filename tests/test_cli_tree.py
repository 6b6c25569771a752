"""The whole `sotto` argparse tree, walked: help on every command and argument,
--json on every command that prints data (and its output parses), $SOTTO_OPERATOR
wherever --operator is taken, metavars that say what they are, `vdev stop`
confirms, `flash --board` refuses an unknown board, default paths relative to
the working folder."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # tests/: framefactory

import framefactory as ff  # noqa: E402
import pg_support  # noqa: E402

from host_tools import efuse_check  # noqa: E402
from host_tools.errors import UsageError  # noqa: E402
from host_tools.receiver.ingest import Receiver  # noqa: E402
from host_tools.registry import Registry  # noqa: E402
from sotto_cli.cli import build_parser, main  # noqa: E402
from sotto_cli.options import known_boards, operator_of  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# commands that print no data for tools, and why
NO_JSON = {
    "receive": "a server: it prints where it listens, then logs",
    "vdev start": "prints only its port, for PORT=$(sotto vdev start --detach)",
}


Tree = list[tuple[str, argparse.ArgumentParser, str]]


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Tree:
    """(command path, parser, its help in the parent's list) of every runnable command."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub_path = (*path, name)
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    out.append((" ".join(sub_path), sub, helps.get(name, "")))
                    out += leaves(sub, sub_path)
                else:
                    out.append((" ".join(sub_path), sub, helps.get(name, "")))
    return out


TREE = leaves(build_parser())
COMMANDS = [(name, p) for name, p, _ in TREE
            if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


def test_the_tree_is_whole():
    names = {n for n, _ in COMMANDS}
    assert {"alerts ack", "sim run", "sim fleet", "sim keys", "vdev stop", "flash", "devices list"} <= names
    assert len(COMMANDS) >= 38


@pytest.mark.parametrize("name,parser,help_text", TREE, ids=[t[0] for t in TREE])
def test_every_command_and_argument_has_help(name, parser, help_text):
    assert help_text and help_text.strip(), f"`sotto {name}` has no help in its parent's list"
    assert parser.description and parser.description.strip(), f"`sotto {name}` has no description"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        what = "/".join(action.option_strings) or action.dest
        assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), \
            f"`sotto {name}` {what} has no help"


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_that_prints_data_takes_json(name, parser):
    if name in NO_JSON:
        assert "--json" not in options(parser)
        return
    assert "--json" in options(parser), f"`sotto {name}` prints data but has no --json"


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_metavars_say_what_they_are(name, parser):
    for action in parser._actions:
        mv = action.metavar
        if isinstance(mv, str):
            assert mv == "N" or len(mv) > 1, f"`sotto {name}` {action.option_strings}: metavar {mv!r}"


def test_sim_fleet_metavars():
    fleet = dict(COMMANDS)["sim fleet"]
    opts = options(fleet)
    assert opts["--scenario"].metavar == "SCENARIO_FILE"
    assert opts["--spread"].metavar == "SECONDS"
    assert opts["--devices"].metavar == "N"
    assert "SECONDS" in opts["--spread"].help


OPERATOR_COMMANDS = [(n, p) for n, p in COMMANDS if "--operator" in options(p)]


def test_operator_commands_are_found():
    names = {n for n, _ in OPERATOR_COMMANDS}
    assert {"alerts ack", "alerts close", "alerts show", "alerts export", "purge", "operators add"} <= names


@pytest.mark.parametrize("name,parser", OPERATOR_COMMANDS, ids=[c[0] for c in OPERATOR_COMMANDS])
def test_every_operator_option_honours_the_environment(name, parser, monkeypatch):
    assert "$SOTTO_OPERATOR" in options(parser)["--operator"].help
    args = parser.parse_args(_minimal_args(parser))
    monkeypatch.setenv("SOTTO_OPERATOR", "Env Olga")
    assert operator_of(args) == "Env Olga"
    args.operator = "Cli Pat"
    assert operator_of(args) == "Cli Pat"


def test_ack_without_an_operator_is_a_usage_error(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("SOTTO_OPERATOR", raising=False)
    assert main(["alerts", "ack", "A1", "--db", str(tmp_path / "x.db")]) == 2
    assert "SOTTO_OPERATOR" in capsys.readouterr().err


def _minimal_args(parser: argparse.ArgumentParser) -> list[str]:
    """Arguments that satisfy the parser's required ones."""
    out: list[str] = []
    for a in parser._actions:
        if not a.option_strings and a.nargs != "?" and not isinstance(a, argparse._SubParsersAction):
            out.append(a.choices[0] if a.choices else "A1")
        elif a.required:
            value = "1" if a.type in (int, float) else (a.choices[0] if a.choices else "x")
            out += [a.option_strings[0], value]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            a = group._group_actions[0]
            out += [a.option_strings[0], "30"]
    return out


# -- every data command's --json output parses, against a small registry ------------------

def _device(name: bytes, t0: int = 1_790_000_000) -> ff.DeviceSim:
    return ff.DeviceSim(kid=name, seed=hashlib.sha256(b"seed " + name).digest(), time=t0)


@pytest.fixture
def small_db(tmp_path: Path) -> dict[str, Any]:
    """A SQLite file, or a PostgreSQL URL in `make pytest-pg` (pg_support): every data command
    below runs against it through $SOTTO_DB."""
    db = pg_support.new_db(tmp_path)
    dev = _device(b"SOTTO-42")
    with Registry(db) as reg:
        reg.add(dev.kid, dev.public_key, officer="J. Smith")
    rx = Receiver(db, clock=lambda: 1_790_000_500)
    loc = ff.pack_location(515007292, -1246254, 8, 1, ff.SRC_GNSS)
    frames = [dev.alert_start(loc=loc), dev.location(loc), dev.audio(b"\x33" * 4000, 0, 8000)]
    rx.ingest(frames)
    rx.close()
    (tmp_path / "frames.cbor").write_bytes(b"".join(frames))
    (tmp_path / "pw").write_text("a long enough password 1\n")
    src = tmp_path / "app" / "sotto"   # what `sotto release build --from` takes (no compiling here)
    src.mkdir(parents=True)
    (src / "app.mpy").write_bytes(b"M\x06 app")
    # a blank (open) ESP32-S3 as espefuse's virtual chip reports it: `sotto efuses --summary` exits 3
    blank = efuse_check.read_summary(["--virt", "--chip", "esp32s3"])
    (tmp_path / "efuses.json").write_text(json.dumps(blank))
    return {"db": str(db), "dir": tmp_path, "pub": dev.public_key.hex(), "kid": dev.kid.decode()}


def _json_runs(d: dict[str, Any]) -> list[tuple[list[str], int]]:
    t = d["dir"]
    other = _device(b"SOTTO-43")
    third = _device(b"SOTTO-44")
    return [
        (["devices", "list"], 0), (["devices", "show", "SOTTO-42"], 0),
        (["devices", "config", "SOTTO-42", "set", "heartbeat_every_s=600"], 0),
        (["devices", "config", "SOTTO-42", "show"], 0),
        (["devices", "add", "SOTTO-43", "--pubkey", other.public_key.hex()], 0),
        (["devices", "rotate", "SOTTO-43", "--pubkey", third.public_key.hex()], 0),
        (["devices", "revoke", "SOTTO-43", "--reason", "lost"], 0),
        (["centre", "init", "--centre-key", str(t / "centre.key")], 0),
        (["centre", "key", "--centre-key", str(t / "centre.key")], 0),
        (["alerts", "list", "--all"], 0), (["visits", "list", "--all"], 0), (["alerts", "show", "A1"], 0),
        (["alerts", "listen", "A1"], 0), (["alerts", "more-audio", "A1", "--seconds", "10"], 0),
        (["alerts", "locate", "A1"], 0), (["alerts", "ask", "A1", "--question", "1"], 0),
        (["alerts", "hold", "A1", "--reason", "case 1"], 0), (["alerts", "release", "A1"], 0),
        (["alerts", "ack", "A1"], 0), (["alerts", "close", "A1", "--outcome", "safe"], 0),
        (["centre", "time-window", "--behind-s", "1800"], 0), (["centre", "time-window"], 0),
        (["alerts", "export", "A1", "--out", str(t / "bundle"), "--centre-key", str(t / "centre.key")], 0),
        (["evidence", "verify", str(t / "bundle"), "--centre-key", str(t / "centre.pub")], 3),  # no end frame
        (["alerts", "audit"], 0), (["audit", "verify"], 0), (["ledger", "SOTTO-42"], 0),
        (["stats", "--month", "2026-09"], 0), (["purge", "--older-than", "30", "--dry-run"], 0),
        (["purge", "--set-min-retention-days", "30"], 0),
        (["operators", "add", "olga", "--role", "operator", "--password-stdin"], 0),
        (["operators", "passwd", "olga", "--password-stdin"], 0),
        (["operators", "disable", "olga"], 0), (["operators", "list"], 0),
        (["frame", "inspect", str(t / "frames.cbor")], 0),
        (["frame", "verify", str(t / "frames.cbor"), "--pubkey", d["pub"], "--now", "1790000500"], 0),
        (["db", "migrate"], 0), (["efuses", "--summary", str(t / "efuses.json")], 3),
        (["release", "keygen", "--out", str(t / "release.key")], 0),
        (["release", "build", "--version", "0.2.0", "--key", str(t / "release.key"), "--out", str(t / "rel"),
          "--from", str(t / "app"), "--board", "sotto-ref-s3"], 0),
        (["release", "verify", str(t / "rel"), "--release-key-pub", str(t / "release.key.pub")], 0),
        (["releases", "publish", str(t / "rel"), "--release-key-pub", str(t / "release.key.pub")], 0),
        (["releases", "list"], 0), (["devices", "cohort", "north", "SOTTO-42"], 0),
        (["devices", "update", "--cohort", "north", "--release", "0.2.0"], 0),
        *([(["db", "roles"], 0)] if pg_support.PG else []),   # PostgreSQL only
    ]


def test_json_output_of_every_data_command_parses(small_db, monkeypatch, capsys):
    monkeypatch.setenv("SOTTO_DB", small_db["db"])
    monkeypatch.setenv("SOTTO_OPERATOR", "Olga")
    ran = set()
    for argv, status in _json_runs(small_db):
        if "--password-stdin" in argv:
            monkeypatch.setattr(sys, "stdin", open(small_db["dir"] / "pw"))   # noqa: SIM115
        assert main([*argv, "--json"]) == status, (argv, capsys.readouterr().err)
        out = capsys.readouterr().out
        data = json.loads(out)   # one JSON document, nothing else on stdout
        if argv[:2] == ["centre", "key"]:    # the public key `evidence verify` takes from outside the bundle
            (small_db["dir"] / "centre.pub").write_bytes(bytes.fromhex(data["public_key"]))
        words = [a for a in argv[:2] if not a.startswith(("-", "/"))]
        ran.add(" ".join(w for w in words if w not in ("A1", "SOTTO-42", "SOTTO-43", "olga")))
    runnable_offline = {n for n, p in COMMANDS if n not in NO_JSON} - {
        "flash", "provision", "rotate-key", "vdev stop",   # need a device (vdev stop: below)
        "sim run", "sim fleet", "sim keys",                 # tests/simulator/test_sim_cli.py
    } - (set() if pg_support.PG else {"db roles"})   # PostgreSQL only (also tests/storage/test_pg_roles.py)
    assert runnable_offline <= ran, runnable_offline - ran


def test_acting_commands_record_the_environments_operator(small_db, monkeypatch, capsys):
    monkeypatch.setenv("SOTTO_DB", small_db["db"])
    monkeypatch.setenv("SOTTO_OPERATOR", "Env Olga")
    assert main(["alerts", "ack", "A1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["acknowledged_by"] == "Env Olga"
    assert main(["alerts", "close", "A1", "--outcome", "safe", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["closed_by"] == "Env Olga"


# -- vdev stop, flash --board, default paths -------------------------------------------------

def test_vdev_stop_confirms(monkeypatch, tmp_path, capsys):
    from host_tools import vdev

    monkeypatch.setattr(vdev, "stop", lambda d: 4242)
    assert main(["vdev", "stop", "--dir", str(tmp_path)]) == 0
    assert f"stopped the virtual device in {tmp_path.resolve()} (pid 4242)" in capsys.readouterr().out
    assert main(["vdev", "stop", "--dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dir": str(tmp_path.resolve()), "pid": 4242,
                                                   "stopped": True}


@pytest.mark.parametrize("command", [["flash", "--port", "/dev/null"],
                                     ["provision", "--port", "/dev/null", "--id", "SOTTO-42", "--server",
                                      "https://x", "--apn", "internet"]])
def test_an_unknown_board_is_refused(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--board", "no-such-board"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no board 'no-such-board'" in err and known_boards()[0] in err


def _defaults(parser: argparse.ArgumentParser) -> list[tuple[str, Any]]:
    return [("/".join(a.option_strings) or a.dest, a.default) for a in parser._actions]


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_no_default_path_points_into_the_checkout(name, parser):
    for what, default in _defaults(parser):
        if isinstance(default, (str, Path)) and str(default).startswith(str(REPO)):
            raise AssertionError(f"`sotto {name}` {what} defaults to {default}, inside the checkout")


def test_default_paths_are_relative_to_the_working_folder(tmp_path):
    """Run from elsewhere: what the CLI writes by default lands in the working folder."""
    flash = dict(COMMANDS)["flash"]
    build_dir = flash.parse_args(["--port", "/dev/null"]).build_dir
    assert not build_dir.is_absolute()
    env = dict(os.environ, PYTHONPATH=str(REPO), SOTTO_DB="relative.db")
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "centre", "init", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert (tmp_path / "relative.db").exists()
    assert (tmp_path / made["key_file"]).resolve().parent == tmp_path.resolve()
    assert (tmp_path / made["key_file"]).exists()
    assert not (REPO / "relative.db").exists()


def test_operator_of_without_one_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("SOTTO_OPERATOR", raising=False)
    ack = dict(COMMANDS)["alerts ack"]
    with pytest.raises(UsageError):
        operator_of(ack.parse_args(["A1"]))


# -- $SOTTO_DB (and --db) select PostgreSQL in every command that takes --db ----------------

UNREACHABLE_PG = "postgresql://sotto:s3cret-pw@127.0.0.1:1/centre"   # nothing listens on port 1
KEY_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"   # RFC 8032 test 1
SCENARIO = REPO / "scenarios" / "covert_sos.toml"
OUTSIDE = ["--receiver", "http://127.0.0.1:1", "--centre-key", KEY_HEX]
# arguments that get each command past its own checks to the point where it opens the database
DB_ARGS: dict[str, list[str]] = {
    "devices add": ["SOTTO-42", "--pubkey", KEY_HEX], "devices list": [], "devices show": ["SOTTO-42"],
    "devices config": ["SOTTO-42", "show"], "devices revoke": ["SOTTO-42"],
    "devices rotate": ["SOTTO-42", "--pubkey", KEY_HEX], "devices update": ["SOTTO-42", "--release", "0.2.0"],
    "devices cohort": ["north", "SOTTO-42"], "centre init": [], "centre key": [], "centre time-window": [],
    "db migrate": [], "db roles": [], "receive": ["--port", "0"], "alerts list": [], "alerts show": ["A1"],
    "alerts ack": ["A1"], "alerts close": ["A1", "--outcome", "safe"], "alerts export": ["A1", "--out", "x"],
    "alerts listen": ["A1"], "alerts more-audio": ["A1", "--seconds", "10"], "alerts locate": ["A1"],
    "alerts ask": ["A1", "--question", "1"], "alerts hold": ["A1", "--reason", "case 1"],
    "alerts release": ["A1"], "alerts audit": [], "visits list": [], "purge": ["--older-than", "30"],
    "operators add": ["olga", "--role", "operator", "--password-stdin"], "operators list": [],
    "operators disable": ["olga"], "operators passwd": ["olga", "--password-stdin"], "audit verify": [],
    "stats": ["--month", "2026-09"], "ledger": ["SOTTO-42"],
    "provision": ["--port", "/dev/null", "--id", "SOTTO-42", "--server", "https://alerts.example.org",
                  "--apn", "internet", "--insecure-tls"],
    "rotate-key": ["--port", "/dev/null"], "sim run": [str(SCENARIO), *OUTSIDE],
    "sim fleet": ["--scenario", str(SCENARIO), "--devices", "1", *OUTSIDE],
    "releases publish": ["build/no-such-release"], "releases list": [],
}
DB_COMMANDS = [(n, p) for n, p in COMMANDS if "--db" in options(p)]


def test_every_command_that_takes_db_is_in_the_table():
    assert {n for n, _ in DB_COMMANDS} == set(DB_ARGS)


@pytest.mark.parametrize("via", ["env", "option"])
@pytest.mark.parametrize("name,parser", DB_COMMANDS, ids=[c[0] for c in DB_COMMANDS])
def test_sotto_db_selects_postgresql_in_every_command(name, parser, via, monkeypatch, tmp_path, capsys):
    """$SOTTO_DB=postgresql://… (or --db postgresql://…) reaches PostgreSQL in every command that
    takes --db — not a SQLite file named after the URL — and its password is never printed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOTTO_OPERATOR", "Olga")
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("a long enough password 1\n"))
    argv = [*name.split(), *DB_ARGS[name], "--json"] if name != "receive" else [*name.split(), *DB_ARGS[name]]
    if via == "env":
        monkeypatch.setenv("SOTTO_DB", UNREACHABLE_PG)
    else:
        monkeypatch.delenv("SOTTO_DB", raising=False)
        argv += ["--db", UNREACHABLE_PG]
    assert main(argv) == 1
    out = capsys.readouterr()
    assert "cannot connect to postgresql://sotto:***@127.0.0.1:1/centre" in out.err, out
    assert "s3cret-pw" not in out.err + out.out
    assert list(tmp_path.iterdir()) == []   # no SQLite file (or anything else) made in its place
