//! Opening the file and bringing its schema up to date (`PRAGMA user_version`).
use super::sql::DbError;
use super::{StoreError, StoreOptions};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;

/// Each entry takes the schema from version `index` to `index + 1`. Append only: a
/// released step never changes, since stores in the field have already run it.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

// Paths and events are JSON in the call's row rather than rows of their own: a call is
// written once and read whole, and one INSERT a call is what lets the writer keep up
// with thousands of calls a second.
//
// AUTOINCREMENT, seeded at 10000000, makes ticket ids 8 digits and never reused, even
// after the newest ticket is deleted or its transaction rolls back.
pub(super) const V1: &str = "
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    from_uri TEXT NOT NULL,
    to_uri TEXT NOT NULL,
    caller TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at INTEGER NOT NULL,
    rings INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    path TEXT NOT NULL,
    events TEXT NOT NULL
);
CREATE INDEX calls_by_call_id ON calls(call_id);
CREATE INDEX calls_by_received ON calls(received_at);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    flow TEXT NOT NULL,
    state TEXT NOT NULL,
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    due_at INTEGER,
    department TEXT,
    fields TEXT NOT NULL,
    recordings TEXT NOT NULL,
    delivery TEXT NOT NULL DEFAULT 'pending'
        CHECK (delivery IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at INTEGER
);
CREATE INDEX tickets_by_call_id ON tickets(call_id);
CREATE INDEX tickets_by_delivery ON tickets(delivery, id);
INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 10000000);
";

// Delivery to the webhook. `next_attempt_at` 0 means due now; `access_token` is the
// unguessable part of a ticket's recording URLs, random per ticket so that knowing one
// ticket's links (or its idempotency key, which is logged) gives no other's.
const V2: &str = "
ALTER TABLE tickets ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN last_status INTEGER;
ALTER TABLE tickets ADD COLUMN access_token TEXT;
UPDATE tickets SET access_token = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX tickets_by_access_token ON tickets(access_token);
CREATE INDEX tickets_outbox ON tickets(delivery, next_attempt_at);
";

// Outbound calls (issue 10): jobs, their attempts, and the events that go to the ticket
// system through the same outbox as tickets. An attempt row is written, committed,
// before its INVITE leaves, so that a crash can never hide a call that was placed.
// Job ids are random text, not a sequence: they are shown to the ticket system.
pub(super) const V3: &str = "
CREATE TABLE outbound_jobs (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('scheduled', 'dialing', 'completed', 'failed', 'canceled', 'expired')),
    to_uri TEXT NOT NULL,
    flow TEXT NOT NULL,
    vars TEXT NOT NULL,
    ticket_id TEXT,
    not_before INTEGER,
    deadline INTEGER,
    max_attempts INTEGER NOT NULL,
    retry_after_ms INTEGER NOT NULL,
    ring_timeout_ms INTEGER NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    next_attempt_at INTEGER,
    result TEXT,
    reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbound_due ON outbound_jobs(status, next_attempt_at);

CREATE TABLE outbound_attempts (
    job_id TEXT NOT NULL REFERENCES outbound_jobs(id),
    n INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at INTEGER,
    sip_code INTEGER,
    outcome TEXT,
    PRIMARY KEY (job_id, n)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    delivery TEXT NOT NULL DEFAULT 'pending'
        CHECK (delivery IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_status INTEGER,
    delivered_at INTEGER
);
CREATE INDEX events_outbox ON events(delivery, next_attempt_at);
";

pub fn open_rw(path: &Path, opts: &StoreOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite(path, e))?;
    configure(&conn, opts).map_err(|e| e.at(path))?;
    // WAL lets the CLI read while the server writes; it is a property of the file, so
    // set once here it holds for every later connection.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| sqlite(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable {
            detail: format!("{}: cannot use WAL mode (got '{mode}')", path.display()),
        });
    }
    migrate(&mut conn, path)?;
    Ok(conn)
}

pub fn open_ro(path: &Path, opts: &StoreOptions) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite(path, e))?;
    configure(&conn, opts).map_err(|e| e.at(path))?;
    let version = user_version(&conn).map_err(|e| sqlite(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(too_new(path, version));
    }
    if version < SCHEMA_VERSION {
        // A reader cannot migrate; only an older server's file or one created but
        // never written to gets here.
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

fn configure(conn: &Connection, opts: &StoreOptions) -> Result<(), DbError> {
    conn.busy_timeout(opts.busy_timeout)?;
    // FULL: WAL syncs on every commit, so a ticket the caller was told is filed is on
    // the disk, not in the page cache, when the flow hears it is.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    // IMMEDIATE: two servers started on one directory must not both run a step.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sqlite(path, e))?;
    let version = user_version(&tx).map_err(|e| sqlite(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(too_new(path, version));
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(|e| sqlite(path, e))?;
    }
    if version != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| sqlite(path, e))?;
        tracing::info!(
            "{}: schema version {version} -> {SCHEMA_VERSION}",
            path.display()
        );
    }
    tx.commit().map_err(|e| sqlite(path, e))
}

fn too_new(path: &Path, found: i64) -> StoreError {
    StoreError::TooNew {
        path: path.to_path_buf(),
        found,
        supported: SCHEMA_VERSION,
    }
}

fn sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
    DbError::Sqlite(e).at(path)
}
