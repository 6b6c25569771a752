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
from pathlib import Path
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver.server import (
    MAX_DEFAULT_VERIFY_PROCESSES,
    ServerConfig,
    default_verify_processes,
    serve,
)
from host_tools.receiver.sms_auth import ENV_SECRET_FILE, load_secret
from host_tools.registry import add_db_option, resolve_db_path
from sotto_cli.commands.centre import add_centre_key_option
from sotto_cli.options import command

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
unless a TLS proxy sits in front, or the receiver only listens on loopback.

With --console-port, the operators' console (a web page and its JSON API
under /api/) listens on its own port, normally on the operators' network
apart from the devices' one: it uses the same certificate, and refuses plain
HTTP unless --console-host is a loopback address. Its address is the second
line on standard output: `console on URL`. Accounts: `sotto operators add`."""

EPILOG = "example: sotto receive --db /srv/sotto/receiver.db --host 0.0.0.0 --port 8443 " \
         "--tls-cert centre.crt --tls-key centre.key"


def register(subparsers: Any) -> None:
    """Add `sotto receive` to the CLI."""
    parser = command(subparsers, "receive", cmd_receive, help="run the receiver (HTTP ingest of frames)",
                     description=RECEIVE_HELP, epilog=EPILOG)
    add_db_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    parser.add_argument("--tls-cert", metavar="CERT_PEM", help="PEM certificate (chain) for HTTPS")
    parser.add_argument("--tls-key", metavar="KEY_PEM", help="PEM private key of that certificate")
    parser.add_argument("--max-body-bytes", type=int, default=ServerConfig.max_body_bytes, metavar="N",
                        help=f"largest request body accepted (default {ServerConfig.max_body_bytes})")
    parser.add_argument("--max-connections", type=int, default=ServerConfig.max_connections, metavar="N",
                        help=f"open connections in all; more are answered 503 busy and closed "
                             f"(default {ServerConfig.max_connections})")
    parser.add_argument("--max-per-address", type=int, default=ServerConfig.max_per_address, metavar="N",
                        help=f"open connections from one source address; more are answered 503 "
                             f"too-many-connections and closed (default {ServerConfig.max_per_address}; "
                             "raise it when many devices share an address, e.g. behind a carrier's NAT)")
    parser.add_argument("--header-timeout", type=float, default=ServerConfig.header_timeout_s,
                        metavar="SECONDS",
                        help=f"seconds a client has for the TLS handshake, request line and headers; "
                             f"slower ones are answered 408 and closed "
                             f"(default {ServerConfig.header_timeout_s:g})")
    parser.add_argument("--listen-backlog", type=int, default=ServerConfig.listen_backlog, metavar="N",
                        help=f"connections the kernel holds waiting to be accepted; beyond it new ones "
                             f"are dropped and the devices' TCP retries after 1 s, 3 s... (raise it when "
                             f"thousands of devices may connect at once; the kernel caps it at "
                             f"net.core.somaxconn; default {ServerConfig.listen_backlog})")
    add_centre_key_option(parser)
    parser.add_argument("--sms-secret-file", metavar="PATH",
                        help=f"the SMS gateway's shared HMAC secret (mode 0600; default ${ENV_SECRET_FILE}); "
                             "without one, POST /v1/sms answers 401 to everything")
    parser.add_argument("--sms-per-minute", type=float, default=ServerConfig.sms_per_minute, metavar="N",
                        help=f"posts per minute one address may make to /v1/sms before 429 "
                             f"(default {ServerConfig.sms_per_minute:g})")
    parser.add_argument("--verify-processes", type=int, metavar="N",
                        help="helper processes that check the frames' signatures, so ingest uses more than "
                             "one core (0: every signature in the receiver process itself; default: one per "
                             f"core beyond the first, at most {MAX_DEFAULT_VERIFY_PROCESSES}, here "
                             f"{default_verify_processes()}; with any, one more signs the answers); a helper "
                             "that dies is restarted and its frames are checked in the receiver, never "
                             "stored unchecked")
    parser.add_argument("--no-verify-helper", action="store_true",
                        help="the same as --verify-processes 0")
    con = parser.add_argument_group("operators' console")
    con.add_argument("--console-port", type=int, metavar="PORT",
                     help="serve the console on this port (0 = any free port); off without it")
    con.add_argument("--console-host", default="127.0.0.1", metavar="HOST",
                     help="address the console listens on (default 127.0.0.1; others need TLS)")
    con.add_argument("--console-tiles", metavar="URL",
                     help="map tile server, e.g. https://tiles.example/{z}/{x}/{y}.png (default: none; the "
                          "map is then a plain scaled plot that works offline)")
    con.add_argument("--console-tiles-attribution", default="", metavar="TEXT",
                     help="the tile server's required attribution text")
    con.add_argument("--console-url", metavar="URL",
                     help="the console's address as operators reach it, for links in notifications")
    con.add_argument("--console-idle-min", type=float, default=15, metavar="MIN",
                     help="log a console session out after this many idle minutes (default 15)")
    con.add_argument("--console-export-dir", metavar="DIR",
                     help="where console exports are written (default: exports/ beside the database)")
    note = parser.add_argument_group(
        "notifications (new alert, duress, silent device; never location or audio)")
    note.add_argument("--notify-webhook", metavar="URL", help="POST JSON notifications to this URL")
    note.add_argument("--notify-secret-file", metavar="FILE",
                      help="file holding the webhook's HMAC-SHA256 key (header X-Sotto-Signature)")
    note.add_argument("--notify-smtp", metavar="HOST[:PORT]",
                      help="send notification e-mails via this SMTP server")
    note.add_argument("--notify-starttls", action="store_true", help="use STARTTLS with the SMTP server")
    note.add_argument("--notify-from", default="sotto@localhost", metavar="ADDR", help="the e-mails' sender")
    note.add_argument("--notify-to", action="append", default=[], metavar="ADDR",
                      help="an e-mail recipient (repeatable)")
    parser.add_argument("--clock-file", metavar="PATH",
                        help="simulated runs only: stamp receipts with the UTC epoch seconds the simulator "
                             "writes to PATH instead of this machine's clock (one clock in the evidence)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only errors")


def cmd_receive(args: argparse.Namespace) -> int:
    """`sotto receive --db PATH [--host H] [--port P] [--tls-cert C --tls-key K]`."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0..65535)")
    if args.max_body_bytes < 1024:
        raise UsageError("--max-body-bytes must be at least 1024")
    if args.max_connections < 1 or args.max_per_address < 1:
        raise UsageError("--max-connections and --max-per-address must be at least 1")
    if not 1 <= args.listen_backlog <= 65535:
        raise UsageError("--listen-backlog must be 1..65535")
    if not 0 < args.header_timeout <= 600:
        raise UsageError("--header-timeout must be above 0 and at most 600 seconds")
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    if args.sms_per_minute <= 0:
        raise UsageError("--sms-per-minute must be above 0")
    if args.verify_processes is not None and not 0 <= args.verify_processes <= 64:
        raise UsageError("--verify-processes must be 0..64")
    if args.no_verify_helper and args.verify_processes:
        raise UsageError("--no-verify-helper and --verify-processes N contradict each other")
    verify_processes = (0 if args.no_verify_helper else default_verify_processes()
                        if args.verify_processes is None else args.verify_processes)
    secret_file = args.sms_secret_file or os.environ.get(ENV_SECRET_FILE, "").strip() or None
    config = ServerConfig(host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          max_body_bytes=args.max_body_bytes, max_connections=args.max_connections,
                          max_per_address=args.max_per_address, header_timeout_s=args.header_timeout,
                          listen_backlog=args.listen_backlog,
                          verify_processes=verify_processes,
                          centre_key=args.centre_key,
                          sms_secret=load_secret(secret_file) if secret_file else None,
                          sms_per_minute=args.sms_per_minute)
    if args.clock_file:
        from host_tools.receiver.clock_file import ClockFile

        config.clock = ClockFile(args.clock_file)

    def announce(line: str) -> None:
        print(line, flush=True)

    def note(line: str) -> None:
        print(f"sotto receive: {line}", file=sys.stderr, flush=True)

    return serve(resolve_db_path(args.db), config, announce=announce, note=note, console=console_config(args))


def console_config(args: argparse.Namespace) -> Any:
    """The ConsoleConfig the options ask for, or None without --console-port."""
    if args.console_port is None:
        if args.notify_webhook or args.notify_smtp:
            raise UsageError("notifications are sent by the console: give --console-port as well")
        return None
    from host_tools.receiver.console import ConsoleConfig, NotifyConfig

    if args.console_idle_min <= 0:
        raise UsageError("--console-idle-min must be more than 0")
    secret = None
    if args.notify_secret_file:
        try:
            secret = Path(args.notify_secret_file).read_bytes().strip()
        except OSError as e:
            raise UsageError(f"cannot read --notify-secret-file {args.notify_secret_file}: "
                             f"{e.strerror}") from None
        if len(secret) < 16:
            raise UsageError("the webhook secret must be at least 16 bytes")
    smtp_host, smtp_port = None, 25
    if args.notify_smtp:
        smtp_host, _, port = args.notify_smtp.rpartition(":") if ":" in args.notify_smtp else \
            (args.notify_smtp, "", "25")
        if not port.isdigit():
            raise UsageError(f"--notify-smtp {args.notify_smtp}: give HOST or HOST:PORT")
        smtp_port = int(port)
        if not args.notify_to:
            raise UsageError("--notify-smtp needs at least one --notify-to address")
    notify = NotifyConfig(webhook_url=args.notify_webhook, webhook_secret=secret, smtp_host=smtp_host,
                          smtp_port=smtp_port, smtp_starttls=args.notify_starttls, mail_from=args.notify_from,
                          mail_to=tuple(args.notify_to))
    cfg = ConsoleConfig(host=args.console_host, port=args.console_port, tls_cert=args.tls_cert,
                        tls_key=args.tls_key, tile_url=args.console_tiles,
                        tile_attribution=args.console_tiles_attribution, public_url=args.console_url,
                        idle_timeout_s=args.console_idle_min * 60, export_dir=args.console_export_dir,
                        centre_key_path=args.centre_key, notify=notify)
    cfg.check()
    return cfg
