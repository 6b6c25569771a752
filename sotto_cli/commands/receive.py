"""`sotto receive`: run the monitoring-centre receiver.

Thin handler over host_tools.receiver.server.serve. The first line on standard
output is `listening on URL (database PATH)` once the port is open (with
--port 0 the URL names the port the system chose), so scripts and the
simulator can wait for it. Alerts, rejections and errors are logged on
standard error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver.server import ServerConfig, serve
from host_tools.receiver.sms_auth import ENV_SECRET_FILE, load_secret
from host_tools.registry import add_db_option, resolve_db_path
from sotto_cli.commands.centre import add_centre_key_option

RECEIVE_HELP = """\
Receive frames from devices: verify each one against the registry, store it
durably (SQLite, WAL, synchronous) and only then answer `accepted`.

Endpoints: POST /v1/frames (application/cbor-seq), POST /v1/sms (the SMS
gateway's JSON webhook), GET /v1/health. Runs until Ctrl-C or SIGTERM, then
finishes the requests in progress. One receiver per database.

Every answer to a device is signed with the centre's key (`sotto centre`),
made on the first start when the database has none (said on standard error).
The SMS gateway signs its posts with a shared secret (--sms-secret-file, or
$SOTTO_SMS_SECRET_FILE; docs/operator-guide.md); without one, /v1/sms refuses
every post.

Location and audio may only travel over TLS: give --tls-cert and --tls-key
unless a TLS proxy sits in front, or the receiver only listens on loopback."""

EPILOG = "example: sotto receive --db /srv/sotto/receiver.db --host 0.0.0.0 --port 8443 " \
         "--tls-cert centre.crt --tls-key centre.key"


def register(subparsers: Any) -> None:
    """Add `sotto receive` to the CLI."""
    parser = subparsers.add_parser("receive", help="run the receiver (HTTP ingest of frames)",
                                   description=RECEIVE_HELP, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    parser.add_argument("--tls-cert", metavar="C", help="PEM certificate (chain) for HTTPS")
    parser.add_argument("--tls-key", metavar="K", help="PEM private key of that certificate")
    parser.add_argument("--max-body-bytes", type=int, default=ServerConfig.max_body_bytes, metavar="N",
                        help=f"largest request body accepted (default {ServerConfig.max_body_bytes})")
    add_centre_key_option(parser)
    parser.add_argument("--sms-secret-file", metavar="PATH",
                        help=f"the SMS gateway's shared HMAC secret (mode 0600; default ${ENV_SECRET_FILE}); "
                             "without one, POST /v1/sms answers 401 to everything")
    parser.add_argument("--sms-per-minute", type=float, default=ServerConfig.sms_per_minute, metavar="N",
                        help=f"posts per minute one address may make to /v1/sms before 429 "
                             f"(default {ServerConfig.sms_per_minute:g})")
    parser.add_argument("--no-verify-helper", action="store_true",
                        help="verify every signature in the receiver process itself (by default a helper "
                             "process checks part of them when the machine has more than one core)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only errors")
    parser.set_defaults(func=cmd_receive)


def cmd_receive(args: argparse.Namespace) -> int:
    """`sotto receive --db PATH [--host H] [--port P] [--tls-cert C --tls-key K]`."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0..65535)")
    if args.max_body_bytes < 1024:
        raise UsageError("--max-body-bytes must be at least 1024")
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    if args.sms_per_minute <= 0:
        raise UsageError("--sms-per-minute must be above 0")
    secret_file = args.sms_secret_file or os.environ.get(ENV_SECRET_FILE, "").strip() or None
    config = ServerConfig(host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          max_body_bytes=args.max_body_bytes,
                          verify_helper=ServerConfig.verify_helper and not args.no_verify_helper,
                          centre_key=args.centre_key,
                          sms_secret=load_secret(secret_file) if secret_file else None,
                          sms_per_minute=args.sms_per_minute)

    def announce(line: str) -> None:
        print(line, flush=True)

    def note(line: str) -> None:
        print(f"sotto receive: {line}", file=sys.stderr, flush=True)

    return serve(resolve_db_path(args.db), config, announce=announce, note=note)
