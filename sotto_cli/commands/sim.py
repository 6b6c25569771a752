"""`sotto sim run|fleet`: the desktop simulator for QA (docs/qa-guide.md).

Thin handlers over simulator.run and simulator.fleet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
scenario file that cannot run."""

FLEET_HELP = """\
Run N devices against one receiver, each through the same scenario (with its
own id, key and seed), and print how the receiver kept up: frames accepted,
ingest latency percentiles and simulated seconds per wall second."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="run scenarios and fleets in the simulator",
                                   description=SIM_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", title="subcommands")
    run = sub.add_parser("run", help="run a scenario and check its expectations", description=RUN_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="example: sotto sim run scenarios/covert_sos.toml --report build/sos")
    run.add_argument("scenario", metavar="SCENARIO", help="scenario file (.toml)")
    run.add_argument("--report", metavar="DIR", help="write the timeline (text and SVG), the frames and "
                     "the receiver's view to DIR")
    run.add_argument("--verbose", "-v", action="store_true", help="show every firmware log line")
    run.add_argument("--runtime", choices=("cpython", "vm"), default=None,
                     help="where the firmware runs: cpython (imported into the simulator) or vm (the "
                     "MicroPython VM, as on the device; slower, same frames byte for byte); default: the "
                     "scenario's [device] runtime, else cpython")
    run.set_defaults(func=cmd_run)
    fleet = sub.add_parser("fleet", help="many devices against one receiver", description=FLEET_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="example: sotto sim fleet --devices 50 "
                                  "--scenario scenarios/covert_sos.toml")
    fleet.add_argument("--devices", type=int, default=10, metavar="N", help="how many devices (default 10)")
    fleet.add_argument("--scenario", required=True, metavar="S", help="scenario each device runs")
    fleet.add_argument("--spread", type=float, default=60.0, metavar="S",
                       help="spread the devices' scenario events over S seconds (default 60; 0: all at once)")
    fleet.add_argument("--json", action="store_true", help="print the figures as JSON")
    fleet.set_defaults(func=cmd_fleet)


def _progress(t_ms: int, end_ms: int) -> None:
    if sys.stderr.isatty():
        width = 30
        done = width * t_ms // max(end_ms, 1)
        print(f"\r  [{'#' * done}{'.' * (width - done)}] {t_ms // 1000}/{end_ms // 1000} s simulated",
              end="" if t_ms < end_ms else "\n", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.report import timeline_lines, write_report
    from simulator.run import run_scenario
    from simulator.scenario import load

    sc = load(args.scenario)
    print(f"scenario: {sc.name}")
    result = run_scenario(sc, on_progress=_progress, runtime=args.runtime)
    for line in timeline_lines(result, verbose=args.verbose):
        print("  " + line)
    where = "MicroPython VM" if result.device.spec.runtime == "vm" else "CPython"
    print(f"{result.sim_s:.0f} s simulated in {result.wall_s:.1f} s (firmware on {where})")
    for c in result.checks:
        print(c.line())
    if args.report:
        out = write_report(result, Path(args.report))
        print(f"report: {out}/timeline.svg, timeline.txt, frames.jsonl, receiver.json")
    if result.failures:
        print(f"FAILED: {', '.join(c.name for c in result.failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    import json

    from host_tools.errors import UsageError
    from simulator.fleet import run_fleet
    from simulator.scenario import load

    if args.devices < 1:
        raise UsageError("--devices must be at least 1")
    sc = load(args.scenario)
    fr = run_fleet(sc, args.devices, on_progress=_progress, spread_s=args.spread)
    if args.json:
        print(json.dumps(fr.to_json(), indent=2))
    else:
        for line in fr.lines():
            print(line)
    return 0 if fr.ok else 1
