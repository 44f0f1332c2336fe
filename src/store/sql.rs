//! Rows in and out.
use super::{CallEvent, CallQuery, CallRecord, Delivery, StoreError, Ticket, TicketId, UtcMs};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use std::path::Path;

pub enum DbError {
    Sqlite(rusqlite::Error),
    /// A JSON column that does not hold what we wrote.
    Json(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl DbError {
    pub fn at(self, path: &Path) -> StoreError {
        let path = path.to_path_buf();
        match self {
            DbError::Sqlite(e) => match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                    StoreError::NotADatabase {
                        path,
                        detail: e.to_string(),
                    }
                }
                _ => StoreError::Sqlite { path, source: e },
            },
            DbError::Json(detail) => StoreError::Corrupt { path, detail },
        }
    }

    /// Whether the failure belongs to one record rather than to the disk or the lock,
    /// so that retrying it can never succeed.
    pub fn is_item_specific(&self) -> bool {
        match self {
            DbError::Json(_) => true,
            DbError::Sqlite(e) => {
                matches!(
                    e.sqlite_error_code(),
                    Some(
                        ErrorCode::ConstraintViolation
                            | ErrorCode::TooBig
                            | ErrorCode::TypeMismatch
                    )
                ) || matches!(e, rusqlite::Error::ToSqlConversionFailure(_))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DbError::Sqlite(e) => e.to_string(),
            DbError::Json(s) => s.clone(),
        }
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, DbError> {
    serde_json::to_string(v).map_err(|e| DbError::Json(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

/// A ticket accepted by `file_ticket`: its key and time are fixed then, so a retried
/// write files the same ticket, due when it was due.
#[derive(Clone, Debug)]
pub struct PendingTicket {
    pub ticket: super::NewTicket,
    pub idempotency_key: String,
    pub created_at: UtcMs,
}

pub fn insert_call(conn: &Connection, c: &CallRecord) -> Result<(), DbError> {
    let path = to_json(&c.path)?;
    let events = to_json(&c.events)?;
    conn.prepare_cached(
        "INSERT INTO calls (call_id, flow, from_uri, to_uri, caller, received_at, answered_at,
            ended_at, rings, outcome, reason, path, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        c.call_id,
        c.flow,
        c.from,
        c.to,
        c.caller,
        c.received_at.0,
        c.answered_at.map(|t| t.0),
        c.ended_at.0,
        c.rings,
        c.outcome,
        c.reason,
        path,
        events
    ])?;
    Ok(())
}

pub fn insert_ticket(conn: &Connection, p: &PendingTicket) -> Result<TicketId, DbError> {
    let t = &p.ticket;
    let fields = to_json(&t.fields)?;
    let recordings = to_json(&t.recordings)?;
    // A write retried after a failure that in fact reached the disk must not file the
    // ticket twice: the key says it is already there.
    conn.prepare_cached(
        "INSERT INTO tickets (idempotency_key, call_id, caller, flow, state, category,
            priority, created_at, due_at, department, fields, recordings, access_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, lower(hex(randomblob(16))))
         ON CONFLICT (idempotency_key) DO NOTHING",
    )?
    .execute(params![
        p.idempotency_key,
        t.call_id,
        t.caller,
        t.flow,
        t.state,
        t.category,
        t.priority.name(),
        p.created_at.0,
        t.due_in.map(|d| p.created_at.plus(d).0),
        t.department,
        fields,
        recordings
    ])?;
    let id = conn
        .prepare_cached("SELECT id FROM tickets WHERE idempotency_key = ?1")?
        .query_row([&p.idempotency_key], |r| r.get(0))?;
    Ok(TicketId(id))
}

const CALL_COLUMNS: &str = "call_id, flow, from_uri, to_uri, caller, received_at, answered_at,
    ended_at, rings, outcome, reason, path, events";

fn call_row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let path: String = r.get(11)?;
    let events: String = r.get(12)?;
    Ok(CallRecord {
        call_id: r.get(0)?,
        flow: r.get(1)?,
        from: r.get(2)?,
        to: r.get(3)?,
        caller: r.get(4)?,
        received_at: UtcMs(r.get(5)?),
        answered_at: r.get::<_, Option<i64>>(6)?.map(UtcMs),
        ended_at: UtcMs(r.get(7)?),
        rings: r.get(8)?,
        outcome: r.get(9)?,
        reason: r.get(10)?,
        path: from_json(&path, "path")?,
        events: from_json::<Vec<CallEvent>>(&events, "events")?,
    })
}

pub fn list_calls(conn: &Connection, q: &CallQuery) -> Result<Vec<CallRecord>, DbError> {
    let limit = q.last.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
    // The newest `limit` calls, then put back in time order: a listing reads like a log.
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM (
            SELECT id, {CALL_COLUMNS} FROM calls
            WHERE ?1 IS NULL OR call_id = ?1
            ORDER BY received_at DESC, id DESC LIMIT ?2)
         ORDER BY received_at, id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![q.call_id, limit], call_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) const TICKET_COLUMNS: &str = "id, idempotency_key, call_id, caller, flow, state,
    category, priority, created_at, due_at, department, fields, recordings, delivery,
    attempts, last_error, delivered_at, next_attempt_at, last_status";

pub(super) fn ticket_row(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    let fields: String = r.get(11)?;
    let recordings: String = r.get(12)?;
    let delivery: String = r.get(13)?;
    Ok(Ticket {
        id: TicketId(r.get(0)?),
        idempotency_key: r.get(1)?,
        call_id: r.get(2)?,
        caller: r.get(3)?,
        flow: r.get(4)?,
        state: r.get(5)?,
        category: r.get(6)?,
        priority: r.get(7)?,
        created_at: UtcMs(r.get(8)?),
        due_at: r.get::<_, Option<i64>>(9)?.map(UtcMs),
        department: r.get(10)?,
        fields: from_json(&fields, "fields")?,
        recordings: from_json(&recordings, "recordings")?,
        // The CHECK constraint admits only these three.
        delivery: Delivery::from_name(&delivery).unwrap_or(Delivery::Pending),
        attempts: r.get(14)?,
        last_error: r.get(15)?,
        delivered_at: r.get::<_, Option<i64>>(16)?.map(UtcMs),
        next_attempt_at: match r.get::<_, i64>(17)? {
            0 => None,
            t => Some(UtcMs(t)),
        },
        last_status: r.get(18)?,
    })
}

pub fn list_tickets(
    conn: &Connection,
    state: Option<Delivery>,
    call_id: Option<&str>,
) -> Result<Vec<Ticket>, DbError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets
         WHERE (?1 IS NULL OR delivery = ?1) AND (?2 IS NULL OR call_id = ?2)
         ORDER BY id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![state.map(Delivery::name), call_id], ticket_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get_ticket(conn: &Connection, id: TicketId) -> Result<Option<Ticket>, DbError> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.0], ticket_row)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::Priority;

    #[test]
    fn a_retried_ticket_is_filed_once() {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            super::super::schema::open_rw(&dir.path().join("t.db"), &Default::default()).unwrap();
        let p = PendingTicket {
            ticket: super::super::NewTicket {
                call_id: "c".into(),
                caller: "1".into(),
                flow: "f".into(),
                state: "s".into(),
                category: "repair".into(),
                priority: Priority::Normal,
                due_in: None,
                department: Some("water".into()),
                fields: vec![],
                recordings: vec![],
                from_tag: String::new(),
                invite_branch: String::new(),
                ordinal: 1,
            },
            idempotency_key: "k".into(),
            created_at: UtcMs(5),
        };
        let a = insert_ticket(&conn, &p).ok().unwrap();
        let b = insert_ticket(&conn, &p).ok().unwrap();
        assert_eq!((a, b), (TicketId(10_000_001), TicketId(10_000_001)));
        assert_eq!(list_tickets(&conn, None, None).ok().unwrap().len(), 1);
    }
}
