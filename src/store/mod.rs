//! The data store: call records (P-RECORD) and tickets, in one SQLite file.
//!
//! `<data dir>/hotline.db` in WAL mode with `synchronous=FULL`: a committed
//! transaction survives a power cut, and readers (the `hotline calls` CLI) never block
//! the server's writer nor are blocked by it.
//!
//! All writes go through one writer thread ([`StoreHandle`]): SQLite allows one writer
//! at a time anyway, and a single thread can commit everything queued in one
//! transaction (group commit), so thousands of call records a second cost a handful of
//! fsyncs instead of one each. A write that fails (disk full, database locked) is kept
//! in memory and retried: nothing a call produced is dropped (P-RECORD, P-FAULT).
mod delivery;
pub mod identity;
mod outbound;
mod schema;
mod sql;
mod time;
mod writer;

pub use delivery::{Attempt, OutboxCounts, Outgoing};
pub use outbound::{AttemptEnd, JobAttempt, JobStatus, NewJob, OutboundJob, OutgoingEvent, Window};
pub use time::{UtcMs, format_duration_ms};
pub use writer::{StoreHandle, StoreStats};

use crate::flow::engine::{Outcome, TicketRequest};
use crate::flow::model::Priority;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE: &str = "hotline.db";

/// One call, answered or not, as it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The SIP Call-ID.
    pub call_id: String,
    pub flow: String,
    /// The SIP From and To as received.
    pub from: String,
    pub to: String,
    /// The caller's number, as the flow knows it (`caller` variable).
    pub caller: String,
    /// When the INVITE arrived.
    pub received_at: UtcMs,
    /// None: the call ended before it was answered.
    pub answered_at: Option<UtcMs>,
    pub ended_at: UtcMs,
    /// Ring-back periods before the answer (P-RING).
    pub rings: u32,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    /// Why it failed or was rejected, or where it was transferred.
    pub reason: Option<String>,
    /// States entered, in order.
    pub path: Vec<String>,
    pub events: Vec<CallEvent>,
}

/// The values `CallRecord::outcome` takes.
pub const OUTCOMES: [&str; 6] = [
    "caller-hung-up",
    "hotline-hung-up",
    "transferred",
    "failed",
    "rejected",
    "cancelled",
];

/// Something that happened during a call, for its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Milliseconds from the answer (negative: before it).
    pub offset_ms: i64,
    /// prompt, key, voice, too_quiet, noise, recording, ticket, transfer, hangup
    pub kind: String,
    pub detail: String,
}

impl CallRecord {
    /// The `outcome` and `reason` fields for how the flow ended.
    pub fn outcome_fields(o: &Outcome) -> (String, Option<String>) {
        let reason = match o {
            Outcome::Transferred(to) => Some(to.clone()),
            Outcome::Failed(why) => Some(why.clone()),
            Outcome::CallerHungUp | Outcome::HotlineHungUp => None,
        };
        (o.name().to_string(), reason)
    }

    /// Milliseconds from the INVITE to the end.
    pub fn duration_ms(&self) -> i64 {
        self.ended_at.since(self.received_at)
    }
}

/// A ticket's number: 8 digits from 10000001 up, so that it can be read out digit by
/// digit (P-NOTE) and never starts with 0. Ids only grow; a failed write takes none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub i64);

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The first id handed out.
pub const FIRST_TICKET_ID: i64 = 10_000_001;

/// A ticket as the flow files it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTicket {
    pub call_id: String,
    pub caller: String,
    pub flow: String,
    /// The state that filed it.
    pub state: String,
    pub category: String,
    pub priority: Priority,
    /// Deadline from filing (P-EMERG: 15 min; P-CMPL-SLA: 2 h or 24 h).
    pub due_in: Option<Duration>,
    /// Another department's desk (P-DEPT).
    pub department: Option<String>,
    pub fields: Vec<(String, String)>,
    /// Recording file paths (the caller's own words, P-CMPL).
    pub recordings: Vec<String>,
    /// From's tag of the call and the branch of the caller's INVITE (empty when it had
    /// no RFC 3261 branch): with the Call-ID, the state and the ordinal, what the
    /// idempotency key is derived from ([`identity`]).
    pub from_tag: String,
    pub invite_branch: String,
    /// The n-th ticket (from 1) that `state` filed in this call.
    pub ordinal: u32,
}

impl NewTicket {
    pub fn from_request(call_id: &str, caller: &str, r: TicketRequest) -> NewTicket {
        NewTicket {
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            flow: r.flow,
            state: r.state,
            category: r.category,
            priority: r.priority,
            due_in: r.due_in,
            department: r.department,
            fields: r.fields,
            recordings: r.recordings,
            from_tag: String::new(),
            invite_branch: String::new(),
            ordinal: 1,
        }
    }
}

/// Where a ticket's delivery to the ticket system stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Pending,
    Delivered,
    Failed,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [Delivery::Pending, Delivery::Delivered, Delivery::Failed];
    pub fn name(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
        }
    }
    pub fn from_name(s: &str) -> Option<Delivery> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// A ticket as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    /// Sent with every delivery attempt so the ticket system can drop repeats.
    pub idempotency_key: String,
    pub call_id: String,
    pub caller: String,
    pub flow: String,
    pub state: String,
    pub category: String,
    /// emergency, high, normal or low
    pub priority: String,
    /// When the caller filed it, even if the write was retried later.
    pub created_at: UtcMs,
    pub due_at: Option<UtcMs>,
    pub department: Option<String>,
    /// In JSON an object in the order collected, as in the webhook's payload.
    #[serde(with = "fields_object")]
    pub fields: Vec<(String, String)>,
    pub recordings: Vec<String>,
    pub delivery: Delivery,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<UtcMs>,
    /// While pending: not tried again before this (back-off); None: due now.
    pub next_attempt_at: Option<UtcMs>,
    /// The webhook's HTTP status on the last attempt that got an answer.
    pub last_status: Option<u16>,
}

/// A ticket's fields as one JSON object, in the order the flow collected them: the
/// shape the webhook's payload has, so that every JSON form of a ticket agrees.
mod fields_object {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(f.len()))?;
        for (k, v) in f {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of field names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(out)
            }
        }
        d.deserialize_map(InOrder)
    }
}

#[derive(Debug)]
pub enum StoreError {
    /// The data directory or file could not be created or opened.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a SQLite database, or is damaged.
    NotADatabase { path: PathBuf, detail: String },
    /// Written by a newer hotline; this one would misread it.
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Read-only open of a store that does not exist yet.
    Missing { path: PathBuf },
    /// A write failed (disk full, database locked past the busy timeout, ...). What was
    /// being written is kept in memory and retried until it is written.
    Unavailable { detail: String },
    /// The writer thread has stopped.
    Closed,
    /// A write through a read-only store.
    ReadOnly { path: PathBuf },
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A stored JSON column that does not parse.
    Corrupt { path: PathBuf, detail: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::NotADatabase { path, detail } => write!(
                f,
                "{p}: not a hotline database, or damaged ({detail}). Stop the server, move \
                 the file aside (mv {p} {p}.bad, with any {p}-wal and {p}-shm beside it) \
                 and start again: a new empty store is created; keep the old file for \
                 recovery with the sqlite3 tool's .recover",
                p = path.display()
            ),
            StoreError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "{}: schema version {found} is newer than this hotline knows ({supported}); \
                 run a newer hotline",
                path.display()
            ),
            StoreError::Missing { path } => write!(
                f,
                "{}: no store here (no call has been recorded yet, or use --data DIR)",
                path.display()
            ),
            StoreError::Unavailable { detail } => write!(
                f,
                "store write failed ({detail}); kept in memory and retried"
            ),
            StoreError::Closed => write!(f, "the store's writer has stopped"),
            StoreError::ReadOnly { path } => write!(f, "{}: opened read-only", path.display()),
            StoreError::Sqlite { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Corrupt { path, detail } => {
                write!(f, "{}: damaged record: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Tuning; the defaults suit the server.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long a write waits for a lock held by another connection before it fails.
    pub busy_timeout: Duration,
    /// First wait before a failed write is retried; it doubles up to `max_retry_interval`.
    pub retry_interval: Duration,
    pub max_retry_interval: Duration,
    /// Most queued writes committed in one transaction.
    pub max_batch: usize,
    /// How long a plain call record waits for others before the commit. Why: each
    /// commit is an fsync and a wake-up of the writer; at 2,000 call set-ups a second
    /// the writer committed about once a record (~10 % of hotline's CPU), and at 2,500
    /// calls up (~150 ending a second) a 20 ms window still left it ~4 % of hotline's
    /// samples. A ticket, a flush or a read is never held: it ends the window. What a
    /// crash (not a stop) can lose grows by the call records of this long.
    pub commit_window: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_millis(500),
            max_retry_interval: Duration::from_secs(30),
            max_batch: 10_000,
            commit_window: Duration::from_millis(100),
        }
    }
}

/// Which calls to list.
#[derive(Clone, Debug, Default)]
pub struct CallQuery {
    /// Only the most recent this many (still listed oldest first).
    pub last: Option<usize>,
    pub call_id: Option<String>,
}

/// An open database: the writer's before [`Store::start_writer`], or a reader's.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    options: StoreOptions,
}

impl Store {
    /// Opens (creating the directory and file if needed) and brings the schema up to date.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, StoreOptions::default())
    }

    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = schema::open_rw(&path, &options)?;
        Ok(Store {
            conn,
            path,
            read_only: false,
            options,
        })
    }

    /// Opens for reading only, e.g. for the CLI while the server writes.
    pub fn open_read_only(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        let options = StoreOptions::default();
        let conn = schema::open_ro(&path, &options)?;
        Ok(Store {
            conn,
            path,
            read_only: true,
            options,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands the connection to a new writer thread and returns the handle to it.
    pub fn start_writer(self) -> Result<StoreHandle, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly { path: self.path });
        }
        writer::start(self.conn, self.path, self.options)
    }

    pub fn list_calls(&self, q: &CallQuery) -> Result<Vec<CallRecord>, StoreError> {
        sql::list_calls(&self.conn, q).map_err(|e| e.at(&self.path))
    }

    /// Every record with this Call-ID (normally one).
    pub fn get_call(&self, call_id: &str) -> Result<Vec<CallRecord>, StoreError> {
        self.list_calls(&CallQuery {
            last: None,
            call_id: Some(call_id.to_string()),
        })
    }

    /// Tickets in id order, optionally only those in one delivery state.
    pub fn list_tickets(&self, state: Option<Delivery>) -> Result<Vec<Ticket>, StoreError> {
        sql::list_tickets(&self.conn, state, None).map_err(|e| e.at(&self.path))
    }

    pub fn get_ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        sql::get_ticket(&self.conn, id).map_err(|e| e.at(&self.path))
    }

    pub fn tickets_for_call(&self, call_id: &str) -> Result<Vec<Ticket>, StoreError> {
        sql::list_tickets(&self.conn, None, Some(call_id)).map_err(|e| e.at(&self.path))
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn a_tickets_fields_are_one_object_in_the_order_collected() {
        let t = Ticket {
            id: TicketId(7),
            idempotency_key: "k".into(),
            call_id: "c".into(),
            caller: "1".into(),
            flow: "water".into(),
            state: "s".into(),
            category: "repair".into(),
            priority: "high".into(),
            created_at: UtcMs(0),
            due_at: None,
            department: None,
            fields: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
            recordings: vec![],
            delivery: Delivery::Pending,
            attempts: 0,
            last_error: None,
            delivered_at: None,
            next_attempt_at: None,
            last_status: None,
        };
        let text = serde_json::to_string(&t).unwrap();
        assert!(text.contains(r#""fields":{"z":"1","a":"2"}"#), "{text}");
        let back: Ticket = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
    }
}
