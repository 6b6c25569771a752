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
import sys
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver.server import ServerConfig, serve
from host_tools.registry import add_db_option, resolve_db_path

RECEIVE_HELP = """\
Receive frames from devices: verify each one against the registry, store it
durably (SQLite, WAL, synchronous) and only then answer `accepted`.

Endpoints: POST /v1/frames (application/cbor-seq), POST /v1/sms (the SMS
gateway's JSON webhook), GET /v1/health. Runs until Ctrl-C or SIGTERM, then
finishes the requests in progress. One receiver per database.

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
    config = ServerConfig(host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          max_body_bytes=args.max_body_bytes,
                          verify_helper=ServerConfig.verify_helper and not args.no_verify_helper)

    def announce(line: str) -> None:
        print(line, flush=True)

    return serve(resolve_db_path(args.db), config, announce=announce)
