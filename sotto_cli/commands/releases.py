"""`sotto releases publish|list`, and `sotto devices update|cohort`: releases at the
centre and which devices should run them (docs/ota.md).

Thin handlers over host_tools.receiver.releases. A release is published into the
receiver's database (--db); devices learn of the release assigned to them in the
centre's signed answer and download it over POST /v1/release-chunk.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from typing import Any

from host_tools.errors import UsageError
from host_tools.frames import load_public_key
from host_tools.frames.keys import public_key_bytes
from host_tools.frames.reasons import KeyFormatError
from host_tools.ids import format_device_id
from host_tools.receiver import releases
from host_tools.receiver.alerts import iso_utc
from host_tools.receiver.store import open_db
from host_tools.registry import Registry, add_db_option, resolve_db_path

RELEASES_HELP = """\
Releases held by the centre for over-the-air updates (docs/ota.md).

`publish` stores a release made with `sotto release build` (every file checked
against the signed manifest, and the signature against --release-key-pub);
`list` shows them with how many devices are assigned each and how many run it.
Assign one with `sotto devices update`."""


def register(subparsers: Any) -> None:
    """Add `sotto releases`."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser("releases", help="publish and list releases for over-the-air updates",
                                   description=RELEASES_HELP, formatter_class=fmt)
    parser.set_defaults(func=lambda args: _usage(parser))
    sub = parser.add_subparsers(dest="releases_command", metavar="SUBCOMMAND", title="subcommands")
    pub = sub.add_parser("publish", help="store a signed release at the centre",
                         description="Check the release in DIR (files, digests, and the signature against "
                                     "--release-key-pub) and store it in the database. A version is "
                                     "published once: the same release again changes nothing, another with "
                                     "the same version is refused.")
    pub.add_argument("dir", metavar="DIR", help="the release folder (sotto release build --out DIR)")
    pub.add_argument("--release-key-pub", metavar="PUB",
                     help="the release public key (PEM file or 64 hex); without it only the files are "
                          "checked (devices check the signature anyway)")
    pub.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(pub)
    pub.set_defaults(func=cmd_publish)
    lst = sub.add_parser("list", help="the published releases",
                         description="Published releases, oldest version first: files, bytes, the release "
                                     "key's id, devices assigned and devices running each.")
    lst.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(lst)
    lst.set_defaults(func=cmd_list)


def register_device_commands(sub: Any) -> None:
    """`sotto devices update` and `sotto devices cohort` (called by sotto_cli.commands.devices)."""
    upd = sub.add_parser("update", help="assign a release to devices, or roll it out to a cohort",
                         description="Assign release V to the devices named, or step a staged rollout in a "
                                     "cohort: without --share, a first device; with --share PCT, that share "
                                     "of the cohort; --share 100, all. A step that widens the rollout waits "
                                     "until every device already given V runs it (--force: does not wait). "
                                     "Devices learn of it in the centre's next answer.",
                         epilog="example: sotto devices update --cohort north --release 0.2.0 --share 25")
    upd.add_argument("devices", metavar="ID", nargs="*", help="devices to update (or --cohort)")
    upd.add_argument("--release", required=True, metavar="V",
                     help="a published version (sotto releases list)")
    upd.add_argument("--cohort", metavar="NAME", help="roll out to this cohort (sotto devices cohort)")
    upd.add_argument("--share", type=int, metavar="PCT",
                     help="with --cohort: per cent of the cohort, 1..100")
    upd.add_argument("--force", action="store_true", help="widen even if devices given V do not run it yet")
    upd.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(upd)
    upd.set_defaults(func=cmd_update)
    coh = sub.add_parser("cohort", help="put devices in a cohort for staged rollouts",
                         description="Make the devices named members of cohort NAME (a device is in one "
                                     "cohort at a time).")
    coh.add_argument("cohort", metavar="NAME", help="the cohort")
    coh.add_argument("devices", metavar="ID", nargs="+", help="devices (8 characters or 16 hex digits)")
    add_db_option(coh)
    coh.set_defaults(func=cmd_cohort)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_publish(args: argparse.Namespace) -> int:
    pub = None
    if args.release_key_pub:
        try:
            pub = public_key_bytes(load_public_key(args.release_key_pub))
        except KeyFormatError as e:
            raise UsageError(f"--release-key-pub: {e}") from None
    with closing(open_db(resolve_db_path(args.db), create=True)) as conn:
        out = releases.publish(conn, args.dir, release_key_pub=pub)
    if args.json:
        print(json.dumps(out, indent=2))
    elif out["published"]:
        print(f"published release {out['version']}: {out['files']} files, {out['bytes']} bytes, release key "
              f"{out['release_kid']}" + ("" if pub else " (signature not checked here)"))
    else:
        print(f"release {out['version']} was already published; nothing changed")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        rows = releases.list_releases(conn)
        cohorts = releases.cohort_summary(conn)
    if args.json:
        print(json.dumps({"releases": [{**r, "published_at": iso_utc(r["published_at"])} for r in rows],
                          "cohorts": cohorts}, indent=2))
        return 0
    if not rows:
        print("no releases published (sotto releases publish DIR)")
        return 0
    print("VERSION  FILES  BYTES    KEY               ASSIGNED  RUNNING")
    for r in rows:
        print(f"{r['version']:<8} {r['files']:>5}  {r['bytes']:>7}  {r['release_kid']}  {r['assigned']:>8}  "
              f"{r['running']:>7}")
    return 0


def _ids(conn: Any, names: list[str]) -> list[bytes]:
    reg = Registry(conn)
    return [reg.get(n).device_id for n in names]


def cmd_cohort(args: argparse.Namespace) -> int:
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        ids = _ids(conn, args.devices)
        releases.set_cohort(conn, args.cohort, ids)
    print(f"cohort {args.cohort}: {', '.join(format_device_id(i) for i in ids)} added")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    if bool(args.devices) == bool(args.cohort):
        raise UsageError("name devices (ID...) or --cohort NAME, not both")
    if args.share is not None and not args.cohort:
        raise UsageError("--share goes with --cohort")
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        if args.cohort:
            r = releases.rollout(conn, args.cohort, args.release, args.share, force=args.force)
            out = {"release": r.version, "cohort": r.cohort, "stage": r.stage, "members": r.members,
                   "assigned": [format_device_id(i) for i in r.assigned],
                   "added": [format_device_id(i) for i in r.added]}
        else:
            ids = _ids(conn, args.devices)
            releases.assign(conn, ids, args.release)
            out = {"release": args.release, "assigned": [format_device_id(i) for i in ids],
                   "added": [format_device_id(i) for i in ids]}
    if args.json:
        print(json.dumps(out, indent=2))
    elif args.cohort:
        print(f"release {out['release']} in cohort {out['cohort']} ({out['stage']}): {len(out['assigned'])} "
              f"of {out['members']} devices" + (f"; added {', '.join(out['added'])}" if out["added"] else
                                                 "; nobody added"))
    else:
        print(f"release {out['release']} assigned to {', '.join(out['assigned'])}")
    return 0
