"""`sotto sim run|fleet`: the desktop simulator for QA (docs/qa-guide.md).

Thin handlers over simulator.run and simulator.fleet (and, for an outside
receiver, simulator.receiver.OutsideReceiver)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from host_tools.errors import UsageError
from host_tools.ids import format_device_id
from host_tools.registry import ENV_DB, resolve_db_path
from sotto_cli.options import add_json, command, emit, group

SIM_HELP = """\
Run the firmware, unchanged, on virtual hardware (button, GNSS, microphone,
battery, flash, a virtual SIMCom modem) against a real receiver on this
machine's loopback interface, on a virtual clock: an hour of a scenario takes
seconds, and a scenario gives the same timeline on every run."""

RUN_HELP = """\
Run one scenario file (TOML: the device, a timeline of events, expectations;
see scenarios/ and docs/qa-guide.md). Prints the timeline and every
expectation with PASS or FAIL.

Exit status: 0 when every expectation holds, 1 when one fails (named), 2 for a
scenario file that cannot run. The run's working folder (device key, TLS
key, locations) is removed afterwards unless --keep."""

FLEET_HELP = """\
Run N devices against one receiver, each through the same scenario (with its
own id, key and seed), and print how the receiver kept up: frames accepted,
ingest latency percentiles and simulated seconds per wall second; then hold
every device to the scenario's [expect] and name each failure.

Exit status: 0 when every frame was accepted and every expectation held for
every device, 1 otherwise, 2 for a scenario file that cannot run."""


KEYS_HELP = """\
Print the devices a run (or, with --devices N, a fleet) would provision and
their public keys. The simulator's devices make their keys from a seeded
generator, so the keys are known before the run: register them with an outside
receiver (`sotto devices add ID --pubkey HEX --db ITS-DATABASE`) before
`sotto sim run|fleet --receiver URL` without --db."""

OUTSIDE_HELP = """\
By default the simulator starts its own `sotto receive` on loopback. With
--receiver it uses one that already runs (a staging centre): give its CA
certificate (--ca-cert) and its centre public key (--centre-key, what `sotto
centre key` prints). With --db (that receiver's database: a file on this
machine or a PostgreSQL URL; else $SOTTO_DB when set) the devices' keys are
registered there and every expectation is checked; without either, register
the keys first (`sotto sim keys`) and only the device's side can be checked."""


def _outside_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outside receiver", OUTSIDE_HELP)
    g.add_argument("--receiver", metavar="URL", help="an already-running `sotto receive`, https://HOST:PORT")
    g.add_argument("--ca-cert", metavar="PEM", help="that receiver's TLS CA certificate (PEM file)")
    g.add_argument("--centre-key", metavar="PUB",
                   help="that receiver's centre public key: 64 hex digits or a PEM file (`sotto centre key`)")
    g.add_argument("--db", metavar="PATH|URL",
                   help="that receiver's database (a SQLite file on this machine, or a PostgreSQL URL "
                        "postgresql://user@host/dbname; default with --receiver: $SOTTO_DB if set): "
                        "register the devices there and check every expectation")


def register(subparsers: Any) -> None:
    """Add `sotto sim` and its subcommands to the CLI."""
    _, sub = group(subparsers, "sim", help="run scenarios and fleets in the simulator", description=SIM_HELP)
    run = command(sub, "run", cmd_run, help="run a scenario and check its expectations", description=RUN_HELP,
                  epilog="example: sotto sim run scenarios/covert_sos.toml --report build/sos")
    run.add_argument("scenario", metavar="SCENARIO", help="scenario file (.toml)")
    run.add_argument("--report", metavar="DIR", help="write the timeline (text and SVG), the frames and "
                     "the receiver's view to DIR")
    run.add_argument("--verbose", "-v", action="store_true", help="show every firmware log line")
    run.add_argument("--runtime", choices=("cpython", "vm"), default=None,
                     help="where the firmware runs: cpython (imported into the simulator) or vm (the "
                     "MicroPython VM, as on the device; slower, same frames byte for byte); default: the "
                     "scenario's [device] runtime, else cpython")
    run.add_argument("--keep", action="store_true",
                     help="keep the run's working folder (device flash with its key, the receiver's TLS key "
                          "and database, locations) and say where; by default it is removed")
    add_json(run, "print the outcome (checks, figures, charge used, report folder) as JSON")
    _outside_options(run)

    fleet = command(sub, "fleet", cmd_fleet, help="many devices against one receiver", description=FLEET_HELP,
                    epilog="example: sotto sim fleet --devices 50 --scenario scenarios/covert_sos.toml")
    fleet.add_argument("--devices", type=int, default=10, metavar="N", help="how many devices (default 10)")
    fleet.add_argument("--scenario", required=True, metavar="SCENARIO_FILE",
                       help="scenario (.toml) each device runs; its [expect] is checked for every device")
    fleet.add_argument("--spread", type=float, default=60.0, metavar="SECONDS",
                       help="spread the devices' scenario events over SECONDS (default 60; 0: all at once)")
    add_json(fleet, "print the figures as JSON")
    _outside_options(fleet)

    keys = command(sub, "keys", cmd_keys,
                   help="the devices' public keys, to register with an outside receiver",
                   description=KEYS_HELP,
                   epilog="example: sotto sim keys scenarios/covert_sos.toml --devices 5 --json")
    keys.add_argument("scenario", metavar="SCENARIO", help="scenario file (.toml)")
    keys.add_argument("--devices", type=int, metavar="N",
                      help="the N devices of `sim fleet --devices N` (default: the one device of `sim run`)")
    add_json(keys)


def _progress(t_ms: int, end_ms: int) -> None:
    if sys.stderr.isatty():
        width = 30
        done = width * t_ms // max(end_ms, 1)
        print(f"\r  [{'#' * done}{'.' * (width - done)}] {t_ms // 1000}/{end_ms // 1000} s simulated",
              end="" if t_ms < end_ms else "\n", file=sys.stderr, flush=True)


def outside_receiver(args: argparse.Namespace) -> Any:
    """The OutsideReceiver the options name, or None (the simulator starts its own)."""
    # $SOTTO_DB counts only with --receiver (without it the simulator starts its own receiver)
    given = [o for o in ("ca_cert", "centre_key", "db") if getattr(args, o)]
    if not args.receiver:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"{flag} is for an outside receiver: give --receiver URL")
        return None
    from host_tools.frames import load_public_key
    from simulator.receiver import OutsideReceiver

    if not args.centre_key:
        raise UsageError("--receiver needs --centre-key (that receiver's `sotto centre key`)")
    key = load_public_key(args.centre_key)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ca = None
    if args.ca_cert:
        try:
            ca = Path(args.ca_cert).read_text()
        except OSError as e:
            raise UsageError(f"cannot read --ca-cert {args.ca_cert}: {e.strerror or e}") from None
    db = resolve_db_path(args.db) if args.db or os.environ.get(ENV_DB, "").strip() else None
    if isinstance(db, Path) and not db.exists():
        raise UsageError(f"--db {db}: no such database (the outside receiver's, on this machine)")
    return OutsideReceiver(args.receiver, ca, raw, db)


def cmd_run(args: argparse.Namespace) -> int:
    """`sotto sim run SCENARIO [--report DIR] [--keep] [--json] [--receiver URL ...]`."""
    from simulator.power import summary_lines
    from simulator.report import check_lines, timeline_lines, write_report
    from simulator.run import run_scenario
    from simulator.scenario import load

    sc = load(args.scenario)
    rx = outside_receiver(args)
    work = Path(tempfile.mkdtemp(prefix="sotto-sim-"))
    try:
        result = run_scenario(sc, work, receiver=rx, on_progress=_progress, runtime=args.runtime)
        out = write_report(result, Path(args.report)) if args.report else None
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    where = "MicroPython VM" if result.device.spec.runtime == "vm" else "CPython"
    meter = result.device.meter
    charge = meter.summary(result.device.clock.now_ms) if meter is not None else None
    lines = [f"scenario: {sc.name}", *("  " + line for line in timeline_lines(result, verbose=args.verbose)),
             f"{result.sim_s:.0f} s simulated in {result.wall_s:.1f} s (firmware on {where})",
             *(summary_lines(charge) if charge else []), *check_lines(result)]
    if out:
        lines.append(f"report: {out}/timeline.svg, timeline.txt, frames.jsonl, receiver.json")
    if args.keep:
        lines.append(f"kept the run's folder (device key, TLS key, locations): {work}")
    data = {"scenario": sc.name, "file": str(args.scenario), "ok": result.ok, "simulated_s": result.sim_s,
            "wall_s": round(result.wall_s, 2), "runtime": result.device.spec.runtime,
            "receiver": getattr(rx, "url", None) or "own (loopback)",
            "expectations": len(sc.expect),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
            "report": str(out) if out else None, "kept": str(work) if args.keep else None,
            "charge": charge}
    status = emit(data, args, lines, 1 if result.failures else 0)
    if result.failures and not args.json:
        print(f"FAILED: {', '.join(c.name for c in result.failures)}", file=sys.stderr)
    return status


def cmd_fleet(args: argparse.Namespace) -> int:
    """`sotto sim fleet --scenario FILE [--devices N] [--spread SECONDS] [--json] [--receiver URL ...]`."""
    from simulator.fleet import run_fleet
    from simulator.scenario import load

    if args.devices < 1:
        raise UsageError("--devices must be at least 1")
    if args.spread < 0:
        raise UsageError("--spread must not be negative")
    sc = load(args.scenario)
    fr = run_fleet(sc, args.devices, on_progress=_progress, spread_s=args.spread,
                   receiver=outside_receiver(args))
    return emit(fr.to_json(), args, fr.lines, 0 if fr.ok else 1)


def cmd_keys(args: argparse.Namespace) -> int:
    """`sotto sim keys SCENARIO [--devices N] [--json]`."""
    from simulator.fleet import device_keys
    from simulator.scenario import load

    if args.devices is not None and args.devices < 1:
        raise UsageError("--devices must be at least 1")
    sc = load(args.scenario)
    keys = device_keys(sc, args.devices)
    rows = [{"device": format_device_id(d), "officer": o, "public_key": k.hex()} for d, o, k in keys]
    lines = [f"sotto devices add {r['device']} --pubkey {r['public_key']}" + (
        f" --officer {shlex.quote(r['officer'])}" if r["officer"] else "") for r in rows]
    return emit(rows, args, lines)
