"""`sotto db migrate|roles`: the database's schema and (PostgreSQL) its roles.

Thin handler over host_tools.storage (migrations, roles)."""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

from host_tools.errors import UsageError
from host_tools.registry import DatabaseError, add_db_option, connect, resolve_db_path
from host_tools.storage import backend_of, is_postgres, migrations, redact, roles


def register(subparsers: Any) -> None:
    """Add `sotto db` to the CLI."""
    parser = subparsers.add_parser(
        "db", help="the centre database: migrate its schema, set up PostgreSQL roles",
        description="The centre's database is a SQLite file (the default) or PostgreSQL (--db "
        "postgresql://user@host/dbname). Every command migrates it when it opens it; `sotto db migrate` "
        "does it on its own, as the tables' owner (on PostgreSQL the other roles may not).")
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    mig = sub.add_parser("migrate", help="create or migrate every table (registry, receiver, centre)",
                         description="Apply the migrations this database still needs; "
                                     "print what was applied.")
    mig.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(mig)
    mig.set_defaults(func=cmd_migrate)
    rol = sub.add_parser(
        "roles", help="PostgreSQL: create the group roles and grant each its tables",
        description="Create sotto_ingest, sotto_console, sotto_purge and sotto_registry (NOLOGIN) if "
        "missing and grant each exactly its privileges (host_tools.storage.roles; docs/operator-guide.md). "
        "Run as the tables' owner; then make login users members: "
        "CREATE ROLE ingest1 LOGIN PASSWORD '...' IN ROLE sotto_ingest.")
    rol.add_argument("--json", action="store_true", help="print JSON for tools")
    add_db_option(rol)
    rol.set_defaults(func=cmd_roles)


def cmd_migrate(args: Any) -> int:
    """`sotto db migrate [--json]`."""
    db = resolve_db_path(args.db)
    with closing(connect(db, create=True)) as conn:
        try:
            done = migrations.migrate(conn)
        except migrations.SchemaTooNewError as e:
            raise DatabaseError(str(e)) from None
        backend = backend_of(conn)
    applied = [{"component": m.component, "version": m.version} for m in done]
    if args.json:
        print(json.dumps({"database": redact(str(db)), "backend": backend, "applied": applied,
                          "versions": migrations.LATEST}, indent=2))
    elif applied:
        names = ", ".join(f"{a['component']} {a['version']}" for a in applied)
        print(f"migrated {redact(str(db))}: {names}")
    else:
        print(f"{redact(str(db))} is up to date")
    return 0


def cmd_roles(args: Any) -> int:
    """`sotto db roles [--json]`."""
    db = resolve_db_path(args.db)
    if not is_postgres(db):
        raise UsageError("database roles are PostgreSQL's: give --db postgresql://owner@host/dbname "
                         "(a SQLite file is protected by its file permissions)")
    with closing(connect(db, create=False)) as conn:
        migrations.migrate(conn)
        made = roles.apply(conn)
    if args.json:
        grants = {r: roles.GRANTS[r] for r in made}
        print(json.dumps({"database": redact(str(db)), "roles": grants}, indent=2))
    else:
        print(f"roles on {redact(str(db))}: {', '.join(made)} (members log in as themselves: "
              "CREATE ROLE name LOGIN PASSWORD '...' IN ROLE sotto_ingest)")
    return 0
