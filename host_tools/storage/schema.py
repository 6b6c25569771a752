"""Every table of the centre's database, in SQLite's dialect (translated for
PostgreSQL by migrations.pg_ddl), and the PostgreSQL-only statements (triggers).

Components: registry (devices, keys), receiver (frames, alerts, device state,
rejections, audit, settings, commands, holds, device trust; host_tools.receiver.store
describes them), centre (operators, console sessions, the audit chain's head,
notifications; host_tools.receiver.centre_schema), alert_flags (host_tools.receiver.flags).
"""

# ruff: noqa: E501

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS devices (
    device_id   BLOB PRIMARY KEY CHECK (length(device_id) = 8),
    officer     TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_keys (
    key_id      INTEGER PRIMARY KEY,
    device_id   BLOB NOT NULL REFERENCES devices(device_id),
    public_key  BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at    REAL NOT NULL,
    added_by    TEXT,
    revoked_at  REAL,
    revoked_by  TEXT,
    revoke_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS device_keys_one_active ON device_keys(device_id) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS registry_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO registry_meta(name, value) VALUES ('generation', 0) ON CONFLICT DO NOTHING;
""" + "".join(
    # any change to a device or a key moves the registry's generation on (the KeyBook reloads)
    f"CREATE TRIGGER IF NOT EXISTS {prefix}_gen_{event[:3].lower()} AFTER {event} ON {table} BEGIN\n"
    "    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;\n"
    for prefix, table in (("devices", "devices"), ("keys", "device_keys"))
    for event in ("INSERT", "UPDATE", "DELETE"))


RECEIVER_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          INTEGER PRIMARY KEY,
    device_id         BLOB NOT NULL,
    key_id            INTEGER NOT NULL,
    sid               INTEGER NOT NULL,
    officer           TEXT,
    state             TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'closed')),
    started_at        INTEGER,
    start_seq         INTEGER,
    start_received_at REAL,
    first_received_at REAL NOT NULL,
    last_received_at  REAL NOT NULL,
    trigger           INTEGER,
    duress            INTEGER NOT NULL DEFAULT 0,
    duress_at         REAL,
    frames            INTEGER NOT NULL DEFAULT 0,
    starts            INTEGER NOT NULL DEFAULT 0,
    dangling          INTEGER NOT NULL DEFAULT 0,
    forks             INTEGER NOT NULL DEFAULT 0,
    seq_reused        INTEGER NOT NULL DEFAULT 0,
    end_type          INTEGER,
    end_why           INTEGER,
    end_seq           INTEGER,
    ended_at          REAL,
    audio_frames      INTEGER NOT NULL DEFAULT 0,
    audio_samples     INTEGER NOT NULL DEFAULT 0,
    audio_rate        INTEGER,
    battery           INTEGER,
    battery_seq       INTEGER,
    acked_by          TEXT,
    acked_at          REAL,
    closed_by         TEXT,
    closed_at         REAL,
    outcome           TEXT,
    purged_at         REAL,
    UNIQUE (key_id, sid)
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, last_received_at);
CREATE TABLE IF NOT EXISTS frames (
    frame_id    INTEGER PRIMARY KEY,
    device_id   BLOB NOT NULL,
    key_id      INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    type        INTEGER NOT NULL,
    sid         INTEGER,
    alert_id    INTEGER,
    time        INTEGER NOT NULL,
    up_ms       INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    link        BLOB NOT NULL,
    prev        BLOB,
    received_at REAL NOT NULL,
    via         TEXT NOT NULL,
    peer        TEXT,
    size        INTEGER NOT NULL,
    lat_e7      INTEGER,
    lon_e7      INTEGER,
    acc_m       INTEGER,
    age_s       INTEGER,
    src         INTEGER,
    battery     INTEGER,
    audio_off   INTEGER,
    audio_ns    INTEGER,
    audio_rate  INTEGER,
    wire        BLOB,
    purged_at   REAL
);
CREATE INDEX IF NOT EXISTS frames_device_seq ON frames(device_id, seq);
CREATE INDEX IF NOT EXISTS frames_alert_link ON frames(alert_id, link) WHERE alert_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS frames_alert_prev ON frames(alert_id, prev) WHERE prev IS NOT NULL;
CREATE TABLE IF NOT EXISTS device_state (
    device_id     BLOB PRIMARY KEY,
    last_seen_at  REAL NOT NULL,
    last_seq      INTEGER,
    last_type     INTEGER,
    last_via      TEXT,
    frames        INTEGER NOT NULL DEFAULT 0,
    heartbeat_s   INTEGER,
    heartbeat_at  REAL,
    battery       INTEGER,
    battery_at    REAL,
    status        INTEGER,
    status_at     REAL,
    dropped_total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejections (
    rejection_id INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    via         TEXT NOT NULL,
    peer        TEXT,
    device_id   BLOB,
    seq         INTEGER,
    reason      TEXT NOT NULL,
    detail      TEXT,
    size        INTEGER NOT NULL,
    digest      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_at ON rejections(at);
CREATE TABLE IF NOT EXISTS audit (
    audit_id    INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    alert_id    INTEGER,
    device_id   BLOB,
    detail      TEXT
);
CREATE TABLE IF NOT EXISTS centre_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    command_id   INTEGER PRIMARY KEY,
    device_id    BLOB NOT NULL,
    alert_id     INTEGER,
    sid          INTEGER,
    op           TEXT NOT NULL,
    args         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'delivered', 'done', 'refused', 'answered')),
    result       INTEGER,
    operator     TEXT NOT NULL,
    queued_at    REAL NOT NULL,
    delivered_at REAL,
    sent         INTEGER NOT NULL DEFAULT 0,
    replied_at   REAL,
    reply_seq    INTEGER
);
CREATE INDEX IF NOT EXISTS commands_undone ON commands(device_id, command_id)
    WHERE state IN ('queued', 'delivered');
CREATE INDEX IF NOT EXISTS commands_alert ON commands(alert_id, command_id);
CREATE TABLE IF NOT EXISTS alert_holds (
    alert_id    INTEGER PRIMARY KEY,
    reason      TEXT NOT NULL,
    held_by     TEXT NOT NULL,
    held_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_trust (
    device_id       BLOB PRIMARY KEY,
    insecure_tls    INTEGER NOT NULL DEFAULT 0,
    insecure_frames INTEGER NOT NULL DEFAULT 0,
    insecure_at     REAL,
    unauth          INTEGER,
    unauth_at       REAL
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


CENTRE_DDL = """
CREATE TABLE IF NOT EXISTS operators (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'auditor', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     REAL NOT NULL,
    created_by     TEXT NOT NULL,
    password_at    REAL NOT NULL,
    disabled_at    REAL,
    disabled_by    TEXT,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   REAL,
    last_login_at  REAL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash    TEXT PRIMARY KEY,
    operator      TEXT NOT NULL REFERENCES operators(name),
    csrf_token    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_seen_at  REAL NOT NULL,
    ended_at      REAL,
    peer          TEXT
);
CREATE INDEX IF NOT EXISTS console_sessions_operator ON console_sessions(operator);
CREATE TABLE IF NOT EXISTS audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    entries    INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    last_hash  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (kind, subject)
);
"""


# devcfg 1: remote configuration versions of each device and what it last said about its
# health (host_tools.receiver.devcfg).
DEVCFG_DDL = """
CREATE TABLE IF NOT EXISTS device_config (
    device_id   BLOB NOT NULL,
    version     INTEGER NOT NULL,
    settings    TEXT NOT NULL,
    operator    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    command_id  INTEGER,
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'delivered', 'applied', 'refused', 'superseded')),
    err         TEXT,
    done_at     REAL,
    PRIMARY KEY (device_id, version)
);
CREATE TABLE IF NOT EXISTS device_health (
    device_id      BLOB PRIMARY KEY,
    fw             TEXT,
    cfgv           INTEGER,
    rst            INTEGER,
    boots          INTEGER,
    faults         INTEGER,
    qd             INTEGER,
    csq            INTEGER,
    health_at      REAL,
    config_invalid TEXT,
    invalid_at     REAL
);
"""


# devcfg 2: the settings `sotto provision --set` gave each device (its configuration version 0)
# and when: remote versions made before it belong to the device's previous configuration
# (host_tools.receiver.devcfg.expected_heartbeats).
DEVCFG_PROVISIONED_DDL = """
CREATE TABLE IF NOT EXISTS device_provisioned (
    device_id       BLOB PRIMARY KEY,
    settings        TEXT NOT NULL,
    provisioned_at  REAL NOT NULL,
    provisioned_by  TEXT
);
"""


# releases 1: published releases, their files, cohorts, assignments and what each device
# reports running (host_tools.receiver.releases, docs/ota.md).
RELEASES_DDL = """
CREATE TABLE IF NOT EXISTS releases (
    version       TEXT PRIMARY KEY,
    manifest      BLOB NOT NULL,
    release_kid   TEXT NOT NULL,
    files         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    published_at  REAL NOT NULL,
    published_by  TEXT
);
CREATE TABLE IF NOT EXISTS release_files (
    version  TEXT NOT NULL REFERENCES releases(version),
    path     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (version, path)
);
CREATE TABLE IF NOT EXISTS release_cohorts (
    device_id  BLOB PRIMARY KEY,
    cohort     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS release_assignments (
    device_id    BLOB PRIMARY KEY,
    version      TEXT NOT NULL REFERENCES releases(version),
    assigned_at  REAL NOT NULL,
    assigned_by  TEXT
);
CREATE TABLE IF NOT EXISTS device_versions (
    device_id  BLOB PRIMARY KEY,
    fw         TEXT,
    pend       TEXT,
    upd        INTEGER,
    err        TEXT,
    at         REAL NOT NULL
);
"""

# receiver 3: a frame (device, seq, digest) is stored once, whichever node got it.
# alert_flags (host_tools.receiver.flags): time-behind / time-ahead / signed-before-revocation
ALERT_FLAGS_DDL = """
CREATE TABLE IF NOT EXISTS alert_flags (
    alert_id   INTEGER NOT NULL,
    flag       TEXT NOT NULL CHECK (flag IN ('time-behind', 'time-ahead', 'signed-before-revocation')),
    frames     INTEGER NOT NULL,
    first_at   REAL NOT NULL,
    last_at    REAL NOT NULL,
    worst_s    INTEGER,
    PRIMARY KEY (alert_id, flag)
);
"""

FRAMES_UNIQUE = "CREATE UNIQUE INDEX IF NOT EXISTS frames_once ON frames(device_id, seq, digest)"

# PostgreSQL: the triggers above in PL/pgSQL, plus one that keeps frames write-once
# (a purge may empty wire and location and set purged_at, nothing else; no DELETE).
PG_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION sotto_registry_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation';
    RETURN NULL;
END $$""",
    "DROP TRIGGER IF EXISTS devices_generation ON devices",
    "CREATE TRIGGER devices_generation AFTER INSERT OR UPDATE OR DELETE ON devices "
    "FOR EACH ROW EXECUTE FUNCTION sotto_registry_generation()",
    "DROP TRIGGER IF EXISTS keys_generation ON device_keys",
    "CREATE TRIGGER keys_generation AFTER INSERT OR UPDATE OR DELETE ON device_keys "
    "FOR EACH ROW EXECUTE FUNCTION sotto_registry_generation()",
    """CREATE OR REPLACE FUNCTION sotto_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    "DROP TRIGGER IF EXISTS audit_append_only ON audit",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION sotto_audit_append_only()",
    "DROP TRIGGER IF EXISTS audit_no_truncate ON audit",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION sotto_audit_append_only()",
    """CREATE OR REPLACE FUNCTION sotto_frames_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
      IF OLD.purged_at IS NULL AND NEW.purged_at IS NOT NULL
       AND NEW.wire IS NULL AND NEW.lat_e7 IS NULL AND NEW.lon_e7 IS NULL AND NEW.acc_m IS NULL
       AND NEW.age_s IS NULL AND NEW.src IS NULL
       AND (NEW.frame_id, NEW.device_id, NEW.key_id, NEW.seq, NEW.digest, NEW.type, NEW.sid, NEW.alert_id,
            NEW.time, NEW.up_ms, NEW.flags, NEW.link, NEW.prev, NEW.received_at, NEW.via, NEW.peer, NEW.size,
            NEW.battery, NEW.audio_off, NEW.audio_ns, NEW.audio_rate)
           IS NOT DISTINCT FROM
           (OLD.frame_id, OLD.device_id, OLD.key_id, OLD.seq, OLD.digest, OLD.type, OLD.sid, OLD.alert_id,
            OLD.time, OLD.up_ms, OLD.flags, OLD.link, OLD.prev, OLD.received_at, OLD.via, OLD.peer, OLD.size,
            OLD.battery, OLD.audio_off, OLD.audio_ns, OLD.audio_rate) THEN
        RETURN NEW;
      END IF;
    END IF;
    RAISE EXCEPTION 'stored frames are write-once (only a purge may empty one)'
        USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    "DROP TRIGGER IF EXISTS frames_write_once ON frames",
    "CREATE TRIGGER frames_write_once BEFORE UPDATE OR DELETE ON frames "
    "FOR EACH ROW EXECUTE FUNCTION sotto_frames_write_once()",
    "DROP TRIGGER IF EXISTS frames_no_truncate ON frames",
    "CREATE TRIGGER frames_no_truncate BEFORE TRUNCATE ON frames "
    "FOR EACH STATEMENT EXECUTE FUNCTION sotto_frames_write_once()",
)
