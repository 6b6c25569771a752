"""PostgreSQL roles of a centre and what each may do (`sotto db roles` applies them).

Group roles (NOLOGIN); each node or person logs in as its own user, a member of one:

    CREATE ROLE ingest1 LOGIN PASSWORD '…' IN ROLE sotto_ingest;

- sotto_ingest   `sotto receive` (the ingest nodes): store frames, alerts, device
                 state, rejections; read the registry; deliver commands.
- sotto_console  the console / API and the CLI's operator commands: read everything,
                 acknowledge and close alerts, accounts, sessions, commands, holds,
                 the device time window (no other centre setting: a row-level
                 policy on centre_settings), append to the audit log. It cannot
                 delete or rewrite audit entries or frames: no UPDATE/DELETE/TRUNCATE
                 grant on either table (and the tables' triggers refuse it anyway;
                 only their owner could lift those).
- sotto_purge    `sotto purge`: empty the personal columns of old frames (a column
                 grant: wire and the location columns, purged_at; nothing else), mark
                 alerts purged, delete old rejections, append to the audit log.
- sotto_registry `sotto devices` / `provision`: devices and their keys, audited.

The tables belong to the role that ran the migrations (the database owner, used
for `sotto db migrate` only). Everyone who appends to the audit log needs UPDATE on
audit_head (the head row serialises appends, host_tools.receiver.centre_schema).
"""

from __future__ import annotations

from typing import Any

INGEST, CONSOLE, PURGE, REGISTRY = "sotto_ingest", "sotto_console", "sotto_purge", "sotto_registry"

_AUDIT_APPEND = {"audit": "SELECT, INSERT", "audit_head": "SELECT, UPDATE"}
_READ_REGISTRY = {"devices": "SELECT", "device_keys": "SELECT", "registry_meta": "SELECT"}
# ingest serves release chunks (POST /v1/release-chunk) and puts the assigned release in answers
_READ_RELEASES = {"releases": "SELECT", "release_files": "SELECT", "release_cohorts": "SELECT",
                  "release_assignments": "SELECT"}
# what `sotto devices list|show` shows beside the registry: last heard, trust, health,
# configuration and firmware (read only)
_READ_DEVICE_VIEW = {"device_state": "SELECT", "device_trust": "SELECT", "device_health": "SELECT",
                     "device_config": "SELECT", "device_versions": "SELECT", "commands": "SELECT",
                     "device_provisioned": "SELECT", **_READ_RELEASES}

GRANTS: dict[str, dict[str, str]] = {
    INGEST: {
        **_READ_REGISTRY,
        "frames": "SELECT, INSERT", "alerts": "SELECT, INSERT, UPDATE",
        "device_state": "SELECT, INSERT, UPDATE", "device_trust": "SELECT, INSERT, UPDATE",
        "rejections": "SELECT, INSERT, DELETE", "commands": "SELECT, UPDATE",
        "centre_settings": "SELECT, INSERT", "alert_holds": "SELECT",
        "device_health": "SELECT, INSERT, UPDATE", "device_config": "SELECT, UPDATE",
        "device_versions": "SELECT, INSERT, UPDATE", **_READ_RELEASES,
        "alert_flags": "SELECT, INSERT, UPDATE",
    },
    CONSOLE: {
        **_READ_REGISTRY, **_AUDIT_APPEND,
        "frames": "SELECT", "alerts": "SELECT, UPDATE", "device_state": "SELECT", "device_trust": "SELECT",
        "rejections": "SELECT", "commands": "SELECT, INSERT, UPDATE",
        "centre_settings": "SELECT, INSERT, UPDATE",  # the time-window rows only: _SETTINGS_POLICIES
        "alert_holds": "SELECT, INSERT, DELETE", "operators": "SELECT, INSERT, UPDATE",
        "console_sessions": "SELECT, INSERT, UPDATE", "notifications": "SELECT, INSERT",
        "device_health": "SELECT", "device_config": "SELECT, INSERT", "device_versions": "SELECT",
        "device_provisioned": "SELECT",   # the silent list: the interval a device was provisioned with
        "releases": "SELECT, INSERT", "release_files": "SELECT, INSERT",
        "release_cohorts": "SELECT, INSERT, UPDATE", "release_assignments": "SELECT, INSERT, UPDATE",
        "alert_flags": "SELECT",
    },
    PURGE: {
        **_AUDIT_APPEND,
        "frames": "SELECT, UPDATE (wire, lat_e7, lon_e7, acc_m, age_s, src, purged_at)",
        "alerts": "SELECT, UPDATE (purged_at)", "alert_holds": "SELECT", "rejections": "SELECT, DELETE",
        "centre_settings": "SELECT, INSERT, UPDATE",
    },
    REGISTRY: {
        **_AUDIT_APPEND,
        "devices": "SELECT, INSERT, UPDATE", "device_keys": "SELECT, INSERT, UPDATE",
        "registry_meta": "SELECT, UPDATE", "centre_settings": "SELECT",
        **_READ_DEVICE_VIEW,
        "device_provisioned": "SELECT, INSERT, UPDATE",   # `sotto provision --set`: what the device runs
    },
}


# `sotto centre time-window` (an operator command, run as the console role) writes these
# centre_settings rows (host_tools.receiver.flags.SETTING_TIME_*) and the console no other
# one: a row-level policy. Every other role keeps the whole table as granted; the owner
# (migrations) is not subject to it.
CONSOLE_SETTINGS = ("time_behind_s", "time_ahead_s")
_CONSOLE_ROWS = "name IN (" + ", ".join(f"'{n}'" for n in CONSOLE_SETTINGS) + ")"
_SETTINGS_POLICIES = {
    "settings_read": "FOR SELECT USING (true)",
    "settings_write": f"FOR ALL TO {INGEST}, {PURGE}, {REGISTRY} USING (true) WITH CHECK (true)",
    "settings_console": f"FOR ALL TO {CONSOLE} USING ({_CONSOLE_ROWS}) WITH CHECK ({_CONSOLE_ROWS})",
}


def statements(database: str) -> list[str]:
    """The SQL that creates the group roles (if missing) and grants exactly GRANTS."""
    out: list[str] = []
    for role, tables in GRANTS.items():
        out.append(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
                   f"CREATE ROLE {role} NOLOGIN; END IF; END $$")
        out.append(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
        out.append(f"GRANT USAGE ON SCHEMA public TO {role}")
        out.append(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        out.append(f"GRANT SELECT ON schema_versions TO {role}")
        for table, privileges in tables.items():
            out.append(f"GRANT {privileges} ON {table} TO {role}")
    out.append("ALTER TABLE centre_settings ENABLE ROW LEVEL SECURITY")
    for name, policy in _SETTINGS_POLICIES.items():
        out.append(f"DROP POLICY IF EXISTS {name} ON centre_settings")
        out.append(f"CREATE POLICY {name} ON centre_settings {policy}")
    return out


def apply(conn: Any) -> list[str]:
    """Create the roles and grant (as the tables' owner); returns the role names."""
    database = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute("BEGIN")
    try:
        for statement in statements(database):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return list(GRANTS)
