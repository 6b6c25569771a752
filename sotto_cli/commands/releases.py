"""`sotto releases publish|list`, and `sotto devices update|cohort`: releases at the
centre and which devices should run them (docs/ota.md).

Thin handlers over host_tools.receiver.releases. A release is published into the
receiver's database (--db); devices learn of the release assigned to them in the
centre's signed answer and download it over POST /v1/release-chunk.
"""

from __future__ import annotations

import argparse
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
from host_tools.registry import Registry, resolve_db_path
from sotto_cli.options import add_db_and_json, add_operator, command, emit, group, operator_of, table

RELEASES_HELP = """\
Releases held by the centre for over-the-air updates (docs/ota.md).

`publish` stores a release made with `sotto release build` (every file checked
against the signed manifest, and the signature against --release-key-pub);
`list` shows them with how many devices are assigned each and how many run it.
Assign one with `sotto devices update`."""


def register(subparsers: Any) -> None:
    """Add `sotto releases`."""
    _, sub = group(subparsers, "releases", help="publish and list releases for over-the-air updates",
                   description=RELEASES_HELP)
    pub = command(sub, "publish", cmd_publish, help="store a signed release at the centre",
                  description="Check the release in DIR (files, digests, and the signature against "
                              "--release-key-pub) and store it in the database. A version is "
                              "published once: the same release again changes nothing, another with "
                              "the same version is refused.")
    pub.add_argument("dir", metavar="DIR", help="the release folder (sotto release build --out DIR)")
    pub.add_argument("--release-key-pub", metavar="PUB",
                     help="the release public key (PEM file or 64 hex); without it only the files are "
                          "checked (devices check the signature anyway)")
    add_operator(pub, what="who publishes it")
    add_db_and_json(pub)
    lst = command(sub, "list", cmd_list, help="the published releases",
                  description="Published releases, oldest version first: files, bytes, the release "
                              "key's id, devices assigned and devices running each; then each cohort.")
    add_db_and_json(lst)


def register_device_commands(sub: Any) -> None:
    """`sotto devices update` and `sotto devices cohort` (called by sotto_cli.commands.devices)."""
    upd = command(sub, "update", cmd_update, help="assign a release to devices, or roll it out to a cohort",
                  description="Assign release V to the devices named, or step a staged rollout in a "
                              "cohort: without --share, a first device; with --share PCT, that share "
                              "of the cohort; --share 100, all. A step that widens the rollout waits "
                              "until every device already given V runs it (--force: does not wait). "
                              "Devices learn of it in the centre's next answer.",
                  epilog="example: sotto devices update --cohort north --release 0.2.0 --share 25")
    upd.add_argument("devices", metavar="ID", nargs="*", help="devices to update (or --cohort)")
    upd.add_argument("--release", required=True, metavar="VERSION",
                     help="a published version (sotto releases list)")
    upd.add_argument("--cohort", metavar="NAME", help="roll out to this cohort (sotto devices cohort)")
    upd.add_argument("--share", type=int, metavar="PCT",
                     help="with --cohort: per cent of the cohort, 1..100")
    upd.add_argument("--force", action="store_true", help="widen even if devices given V do not run it yet")
    add_operator(upd, what="who assigns it")
    add_db_and_json(upd)
    coh = command(sub, "cohort", cmd_cohort, help="put devices in a cohort for staged rollouts",
                  description="Make the devices named members of cohort NAME (a device is in one "
                              "cohort at a time).")
    coh.add_argument("cohort", metavar="NAME", help="the cohort")
    coh.add_argument("devices", metavar="ID", nargs="+", help="devices (8 characters or 16 hex digits)")
    add_db_and_json(coh)


def cmd_publish(args: argparse.Namespace) -> int:
    pub = None
    if args.release_key_pub:
        try:
            pub = public_key_bytes(load_public_key(args.release_key_pub))
        except KeyFormatError as e:
            raise UsageError(f"--release-key-pub: {e}") from None
    with closing(open_db(resolve_db_path(args.db), create=True)) as conn:
        out = releases.publish(conn, args.dir, release_key_pub=pub, by=operator_of(args))
    if out["published"]:
        text = (f"published release {out['version']}: {out['files']} files, {out['bytes']} bytes, "
                f"release key {out['release_kid']}" + ("" if pub else " (signature not checked here)"))
    else:
        text = f"release {out['version']} was already published; nothing changed"
    return emit(out, args, text)


def cmd_list(args: argparse.Namespace) -> int:
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        rows = releases.list_releases(conn)
        cohorts = releases.cohort_summary(conn)
    data = {"releases": [{**r, "published_at": iso_utc(r["published_at"])} for r in rows], "cohorts": cohorts}
    if not rows:
        return emit(data, args, "no releases published (sotto releases publish DIR)")
    lines = table([("VERSION", "FILES", "BYTES", "KEY", "ASSIGNED", "RUNNING")]
                  + [(r["version"], str(r["files"]), str(r["bytes"]), r["release_kid"], str(r["assigned"]),
                      str(r["running"])) for r in rows])
    for name, c in sorted(cohorts.items()):
        running = ", ".join(f"{v}: {n}" for v, n in sorted(c["running"].items())) or "none reported"
        lines.append(f"cohort {name}: {c['devices']} devices; running {running}; "
                     f"rolled back {c['rolled_back']}")
    return emit(data, args, lines)


def _ids(conn: Any, names: list[str]) -> list[bytes]:
    reg = Registry(conn)
    return [reg.get(n).device_id for n in names]


def cmd_cohort(args: argparse.Namespace) -> int:
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        ids = _ids(conn, args.devices)
        releases.set_cohort(conn, args.cohort, ids)
    names = [format_device_id(i) for i in ids]
    return emit({"cohort": args.cohort, "added": names}, args,
                f"cohort {args.cohort}: {', '.join(names)} added")


def cmd_update(args: argparse.Namespace) -> int:
    if bool(args.devices) == bool(args.cohort):
        raise UsageError("name devices (ID...) or --cohort NAME, not both")
    if args.share is not None and not args.cohort:
        raise UsageError("--share goes with --cohort")
    by = operator_of(args)
    with closing(open_db(resolve_db_path(args.db), create=False)) as conn:
        if args.cohort:
            r = releases.rollout(conn, args.cohort, args.release, args.share, force=args.force, by=by)
            out = {"release": r.version, "cohort": r.cohort, "stage": r.stage, "members": r.members,
                   "assigned": [format_device_id(i) for i in r.assigned],
                   "added": [format_device_id(i) for i in r.added]}
        else:
            ids = _ids(conn, args.devices)
            releases.assign(conn, ids, args.release, by)
            out = {"release": args.release, "assigned": [format_device_id(i) for i in ids],
                   "added": [format_device_id(i) for i in ids]}
    if args.cohort:
        text = (f"release {out['release']} in cohort {out['cohort']} ({out['stage']}): "
                f"{len(out['assigned'])} of {out['members']} devices"
                + (f"; added {', '.join(out['added'])}" if out["added"] else "; nobody added"))
    else:
        text = f"release {out['release']} assigned to {', '.join(out['assigned'])}"
    return emit(out, args, text)
