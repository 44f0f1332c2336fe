//! Outbound jobs, their attempts, and the events the outbox sends about them (schema
//! V3). Every change of a job is one transaction together with the events it causes,
//! so the ticket system hears of exactly what the store holds, even across a crash.
use super::delivery::Attempt;
use super::sql::DbError;
use super::{StoreHandle, UtcMs, format_duration_ms};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::BTreeMap;

/// A job's status, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Scheduled,
    Dialing,
    Completed,
    Failed,
    Canceled,
    Expired,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Scheduled,
        JobStatus::Dialing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Canceled,
        JobStatus::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Scheduled => "scheduled",
            JobStatus::Dialing => "dialing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::Expired => "expired",
        }
    }

    pub fn from_name(s: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|j| j.name() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Scheduled | JobStatus::Dialing)
    }
}

/// Local calling hours, `HH:MM` in the `timezone` setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// A job as the API created it.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub created_at: UtcMs,
    pub to: String,
    pub flow: String,
    pub vars: BTreeMap<String, String>,
    pub ticket_id: Option<String>,
    pub not_before: Option<UtcMs>,
    pub deadline: Option<UtcMs>,
    pub max_attempts: u32,
    pub retry_after_ms: i64,
    pub ring_timeout_ms: i64,
    pub window: Window,
    pub next_attempt_at: UtcMs,
}

/// One call placed for a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobAttempt {
    pub n: u32,
    pub call_id: String,
    pub started_at: UtcMs,
    pub answered_at: Option<UtcMs>,
    pub ended_at: Option<UtcMs>,
    pub sip_code: Option<u16>,
    /// answered, busy, no-answer, rejected or failed; None while the call goes on.
    pub outcome: Option<String>,
}

/// A job as stored, with its attempts: the body of `GET /outbound/ID`.
#[derive(Clone, Debug, Serialize)]
pub struct OutboundJob {
    pub id: String,
    pub status: JobStatus,
    pub to: String,
    pub flow: String,
    pub vars: BTreeMap<String, String>,
    pub ticket_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: UtcMs,
    pub not_before: Option<UtcMs>,
    pub deadline: Option<UtcMs>,
    pub max_attempts: u32,
    pub retry_after: String,
    pub ring_timeout: String,
    pub window: Window,
    /// When it is dialled next (scheduled jobs only).
    pub next_attempt_at: Option<UtcMs>,
    pub attempts: Vec<JobAttempt>,
    /// What the flow collected, e.g. `{"rating": "1"}`.
    pub result: Option<BTreeMap<String, String>>,
    /// Why the job ended as it did, in words.
    pub reason: Option<String>,
    #[serde(skip)]
    pub cancel_requested: bool,
    #[serde(skip)]
    pub retry_after_ms: i64,
    #[serde(skip)]
    pub ring_timeout_ms: i64,
}

/// How an attempt ended and what becomes of its job, written in one transaction with
/// the events it causes.
#[derive(Clone, Debug)]
pub struct AttemptEnd {
    pub job: String,
    pub n: u32,
    pub ended_at: UtcMs,
    pub sip_code: Option<u16>,
    pub outcome: String,
    /// The job's next status: scheduled again (with `next_attempt_at`) or final.
    pub status: JobStatus,
    pub next_attempt_at: Option<UtcMs>,
    pub result: Option<BTreeMap<String, String>>,
    pub reason: Option<String>,
    /// Event bodies (JSON) to queue for the ticket system.
    pub events: Vec<String>,
}

/// An event due for delivery.
#[derive(Clone, Debug)]
pub struct OutgoingEvent {
    pub id: i64,
    pub idempotency_key: String,
    pub body: String,
    pub created_at: UtcMs,
    pub attempts: u32,
}

const JOB_COLUMNS: &str = "id, status, to_uri, flow, vars, ticket_id, idempotency_key, created_at,
    not_before, deadline, max_attempts, retry_after_ms, ring_timeout_ms, window_start,
    window_end, next_attempt_at, result, reason, cancel_requested";

fn json_err(e: serde_json::Error) -> DbError {
    DbError::Json(e.to_string())
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboundJob, String, Option<String>)> {
    let status: String = r.get(1)?;
    let retry_after_ms: i64 = r.get(11)?;
    let ring_timeout_ms: i64 = r.get(12)?;
    Ok((
        OutboundJob {
            id: r.get(0)?,
            status: JobStatus::from_name(&status).unwrap_or(JobStatus::Failed),
            to: r.get(2)?,
            flow: r.get(3)?,
            vars: BTreeMap::new(),
            ticket_id: r.get(5)?,
            idempotency_key: r.get(6)?,
            created_at: UtcMs(r.get(7)?),
            not_before: r.get::<_, Option<i64>>(8)?.map(UtcMs),
            deadline: r.get::<_, Option<i64>>(9)?.map(UtcMs),
            max_attempts: r.get(10)?,
            retry_after: format_duration_ms(retry_after_ms),
            ring_timeout: format_duration_ms(ring_timeout_ms),
            window: Window {
                start: r.get(13)?,
                end: r.get(14)?,
            },
            next_attempt_at: r.get::<_, Option<i64>>(15)?.map(UtcMs),
            attempts: Vec::new(),
            result: None,
            reason: r.get(17)?,
            cancel_requested: r.get::<_, i64>(18)? != 0,
            retry_after_ms,
            ring_timeout_ms,
        },
        r.get(4)?,
        r.get(16)?,
    ))
}

fn finish_job(
    conn: &Connection,
    (mut job, vars, result): (OutboundJob, String, Option<String>),
) -> Result<OutboundJob, DbError> {
    job.vars = serde_json::from_str(&vars).map_err(json_err)?;
    job.result = match result {
        Some(r) => Some(serde_json::from_str(&r).map_err(json_err)?),
        None => None,
    };
    let mut st = conn.prepare_cached(
        "SELECT n, call_id, started_at, answered_at, ended_at, sip_code, outcome
         FROM outbound_attempts WHERE job_id = ?1 ORDER BY n",
    )?;
    let rows = st.query_map([&job.id], |r| {
        Ok(JobAttempt {
            n: r.get(0)?,
            call_id: r.get(1)?,
            started_at: UtcMs(r.get(2)?),
            answered_at: r.get::<_, Option<i64>>(3)?.map(UtcMs),
            ended_at: r.get::<_, Option<i64>>(4)?.map(UtcMs),
            sip_code: r.get(5)?,
            outcome: r.get(6)?,
        })
    })?;
    job.attempts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(job)
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<OutboundJob>, DbError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM outbound_jobs WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], job_row)
        .optional()?;
    row.map(|r| finish_job(conn, r)).transpose()
}

fn list(
    conn: &Connection,
    status: Option<JobStatus>,
    due_by: Option<UtcMs>,
) -> Result<Vec<OutboundJob>, DbError> {
    let (sql, args): (String, Vec<rusqlite::types::Value>) = match (status, due_by) {
        (_, Some(now)) => (
            format!(
                "SELECT {JOB_COLUMNS} FROM outbound_jobs
                 WHERE status = 'scheduled' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, created_at"
            ),
            vec![now.0.into()],
        ),
        (Some(s), None) => (
            format!(
                "SELECT {JOB_COLUMNS} FROM outbound_jobs WHERE status = ?1 ORDER BY created_at, id"
            ),
            vec![s.name().to_string().into()],
        ),
        (None, None) => (
            format!("SELECT {JOB_COLUMNS} FROM outbound_jobs ORDER BY created_at, id"),
            vec![],
        ),
    };
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args), job_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|r| finish_job(conn, r)).collect()
}

fn insert_event(conn: &Connection, kind: &str, body: &str, now: UtcMs) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO events (idempotency_key, type, body, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![uuid::Uuid::new_v4().to_string(), kind, body, now.0])?;
    Ok(())
}

/// Creates the job, or returns the one with the same idempotency key (false).
fn create(conn: &Connection, j: &NewJob) -> Result<(OutboundJob, bool), DbError> {
    if let Some(key) = &j.idempotency_key {
        let existing: Option<String> = conn
            .prepare_cached("SELECT id FROM outbound_jobs WHERE idempotency_key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if let Some(id) = existing
            && let Some(job) = get(conn, &id)?
        {
            return Ok((job, false));
        }
    }
    conn.prepare_cached(
        "INSERT INTO outbound_jobs (id, idempotency_key, created_at, status, to_uri, flow, vars,
            ticket_id, not_before, deadline, max_attempts, retry_after_ms, ring_timeout_ms,
            window_start, window_end, next_attempt_at)
         VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        j.id,
        j.idempotency_key,
        j.created_at.0,
        j.to,
        j.flow,
        serde_json::to_string(&j.vars).map_err(json_err)?,
        j.ticket_id,
        j.not_before.map(|t| t.0),
        j.deadline.map(|t| t.0),
        j.max_attempts,
        j.retry_after_ms,
        j.ring_timeout_ms,
        j.window.start,
        j.window.end,
        j.next_attempt_at.0,
    ])?;
    let job = get(conn, &j.id)?.ok_or_else(|| DbError::Json("job not read back".into()))?;
    Ok((job, true))
}

/// Claims a scheduled job for a call: it becomes `dialing` and the attempt is written
/// before any INVITE leaves. None if the job was no longer scheduled.
fn start_attempt(
    conn: &Connection,
    id: &str,
    call_id: &str,
    now: UtcMs,
) -> Result<Option<u32>, DbError> {
    let tx = conn.unchecked_transaction()?;
    let n = tx.execute(
        "UPDATE outbound_jobs SET status = 'dialing', next_attempt_at = NULL
         WHERE id = ?1 AND status = 'scheduled' AND cancel_requested = 0",
        [id],
    )?;
    if n != 1 {
        return Ok(None);
    }
    let next: u32 = tx.query_row(
        "SELECT COALESCE(MAX(n), 0) + 1 FROM outbound_attempts WHERE job_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO outbound_attempts (job_id, n, call_id, started_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, next, call_id, now.0],
    )?;
    tx.commit()?;
    Ok(Some(next))
}

fn answered(conn: &Connection, id: &str, n: u32, at: UtcMs) -> Result<(), DbError> {
    conn.execute(
        "UPDATE outbound_attempts SET answered_at = ?3 WHERE job_id = ?1 AND n = ?2",
        params![id, n, at.0],
    )?;
    Ok(())
}

fn end_attempt(conn: &Connection, e: &AttemptEnd) -> Result<(), DbError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE outbound_attempts SET ended_at = ?3, sip_code = ?4, outcome = ?5
         WHERE job_id = ?1 AND n = ?2",
        params![e.job, e.n, e.ended_at.0, e.sip_code, e.outcome],
    )?;
    set_status(
        &tx,
        &e.job,
        e.status,
        e.next_attempt_at,
        e.result.as_ref(),
        e.reason.as_deref(),
    )?;
    for body in &e.events {
        insert_event(&tx, "outbound", body, e.ended_at)?;
    }
    tx.commit()?;
    Ok(())
}

fn set_status(
    conn: &Connection,
    id: &str,
    status: JobStatus,
    next: Option<UtcMs>,
    result: Option<&BTreeMap<String, String>>,
    reason: Option<&str>,
) -> Result<(), DbError> {
    let result = result
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)?;
    conn.execute(
        "UPDATE outbound_jobs SET status = ?2, next_attempt_at = ?3,
            result = COALESCE(?4, result), reason = COALESCE(?5, reason)
         WHERE id = ?1",
        params![id, status.name(), next.map(|t| t.0), result, reason],
    )?;
    Ok(())
}

/// Ends a scheduled job without a call (canceled, expired, failed), with its events;
/// false if it was not scheduled any more.
fn end_job(
    conn: &Connection,
    id: &str,
    status: JobStatus,
    reason: &str,
    events: &[String],
    now: UtcMs,
) -> Result<bool, DbError> {
    let tx = conn.unchecked_transaction()?;
    let n = tx.execute(
        "UPDATE outbound_jobs SET status = ?2, next_attempt_at = NULL, reason = ?3
         WHERE id = ?1 AND status = 'scheduled'",
        params![id, status.name(), reason],
    )?;
    if n == 1 {
        for body in events {
            insert_event(&tx, "outbound", body, now)?;
        }
    }
    tx.commit()?;
    Ok(n == 1)
}

/// Asks a dialing job's call to end; false if the job was not dialing.
fn request_cancel(conn: &Connection, id: &str) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE outbound_jobs SET cancel_requested = 1 WHERE id = ?1 AND status = 'dialing'",
        [id],
    )? == 1)
}

fn due_events(
    conn: &Connection,
    now: UtcMs,
    limit: usize,
    skip: &[i64],
) -> Result<Vec<OutgoingEvent>, DbError> {
    let skip = serde_json::to_string(skip).map_err(json_err)?;
    let mut st = conn.prepare_cached(
        "SELECT id, idempotency_key, body, created_at, attempts FROM events
         WHERE delivery = 'pending' AND next_attempt_at <= ?1
           AND id NOT IN (SELECT value FROM json_each(?2))
         ORDER BY id LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = st.query_map(params![now.0, skip, limit], |r| {
        Ok(OutgoingEvent {
            id: r.get(0)?,
            idempotency_key: r.get(1)?,
            body: r.get(2)?,
            created_at: UtcMs(r.get(3)?),
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl StoreHandle {
    pub async fn create_outbound(
        &self,
        j: NewJob,
    ) -> Result<(OutboundJob, bool), super::StoreError> {
        self.read(move |c| create(c, &j)).await
    }

    pub async fn outbound_job(&self, id: String) -> Result<Option<OutboundJob>, super::StoreError> {
        self.read(move |c| get(c, &id)).await
    }

    pub async fn outbound_jobs(
        &self,
        status: Option<JobStatus>,
    ) -> Result<Vec<OutboundJob>, super::StoreError> {
        self.read(move |c| list(c, status, None)).await
    }

    /// Scheduled jobs whose next attempt is due at `now`, soonest first.
    pub async fn due_outbound(&self, now: UtcMs) -> Result<Vec<OutboundJob>, super::StoreError> {
        self.read(move |c| list(c, None, Some(now))).await
    }

    pub async fn start_outbound_attempt(
        &self,
        id: String,
        call_id: String,
        now: UtcMs,
    ) -> Result<Option<u32>, super::StoreError> {
        self.read(move |c| start_attempt(c, &id, &call_id, now))
            .await
    }

    pub async fn outbound_answered(
        &self,
        id: String,
        n: u32,
        at: UtcMs,
    ) -> Result<(), super::StoreError> {
        self.read(move |c| answered(c, &id, n, at)).await
    }

    pub async fn end_outbound_attempt(&self, e: AttemptEnd) -> Result<(), super::StoreError> {
        self.read(move |c| end_attempt(c, &e)).await
    }

    pub async fn end_outbound_job(
        &self,
        id: String,
        status: JobStatus,
        reason: String,
        events: Vec<String>,
        now: UtcMs,
    ) -> Result<bool, super::StoreError> {
        self.read(move |c| end_job(c, &id, status, &reason, &events, now))
            .await
    }

    /// Moves a scheduled job's next attempt (its window was closed when it fell due).
    pub async fn reschedule_outbound(
        &self,
        id: String,
        next: UtcMs,
    ) -> Result<(), super::StoreError> {
        self.read(move |c| {
            c.execute(
                "UPDATE outbound_jobs SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'scheduled'",
                params![id, next.0],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn request_outbound_cancel(&self, id: String) -> Result<bool, super::StoreError> {
        self.read(move |c| request_cancel(c, &id)).await
    }

    /// Up to `limit` pending events due at `now`, oldest first, leaving out `skip`.
    pub async fn due_events(
        &self,
        now: UtcMs,
        limit: usize,
        skip: Vec<i64>,
    ) -> Result<Vec<OutgoingEvent>, super::StoreError> {
        self.read(move |c| due_events(c, now, limit, &skip)).await
    }

    pub async fn record_event_attempt(
        &self,
        id: i64,
        a: Attempt,
    ) -> Result<bool, super::StoreError> {
        self.read(move |c| super::delivery::record_in(c, "events", id, UtcMs::now(), &a))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Store, schema};
    use super::*;

    fn job(id: &str, key: Option<&str>) -> NewJob {
        NewJob {
            id: id.into(),
            idempotency_key: key.map(str::to_string),
            created_at: UtcMs(1000),
            to: "sip:1@127.0.0.1".into(),
            flow: "callback".into(),
            vars: BTreeMap::from([("ticket".to_string(), "10000001".to_string())]),
            ticket_id: None,
            not_before: None,
            deadline: None,
            max_attempts: 3,
            retry_after_ms: 1000,
            ring_timeout_ms: 30_000,
            window: Window {
                start: "08:00".into(),
                end: "21:00".into(),
            },
            next_attempt_at: UtcMs(1000),
        }
    }

    #[test]
    fn a_v2_store_gains_the_outbound_tables_and_keeps_its_tickets() {
        let dir = tempfile::tempdir().ok().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        {
            let c = Connection::open(&path).ok().unwrap();
            c.execute_batch(schema::V1).ok().unwrap();
            c.execute_batch(
                "INSERT INTO tickets (idempotency_key, call_id, caller, flow, state, category,
                    priority, created_at, fields, recordings)
                 VALUES ('k', 'c', '1', 'f', 's', 'repair', 'low', 5, '[]', '[]');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        // V1 -> V2 -> V3 in one open, as a store in the field would go.
        let st = Store::open(dir.path()).ok().unwrap();
        assert_eq!(st.list_tickets(None).ok().unwrap().len(), 1);
        let v: i64 = st
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::SCHEMA_VERSION);
        let (j, created) = create(&st.conn, &job("a", Some("k1"))).ok().unwrap();
        assert!(created);
        assert_eq!(j.status, JobStatus::Scheduled);
        let (again, created) = create(&st.conn, &job("b", Some("k1"))).ok().unwrap();
        assert!(!created);
        assert_eq!(again.id, "a");
    }

    #[test]
    fn an_attempt_is_claimed_once() {
        let dir = tempfile::tempdir().ok().unwrap();
        let st = Store::open(dir.path()).ok().unwrap();
        create(&st.conn, &job("a", None)).ok().unwrap();
        assert_eq!(
            start_attempt(&st.conn, "a", "c1", UtcMs(2000))
                .ok()
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            start_attempt(&st.conn, "a", "c2", UtcMs(2000))
                .ok()
                .unwrap(),
            None
        );
        let j = get(&st.conn, "a").ok().unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Dialing);
        assert_eq!(j.attempts.len(), 1);
        assert_eq!(j.attempts[0].outcome, None);
        end_attempt(
            &st.conn,
            &AttemptEnd {
                job: "a".into(),
                n: 1,
                ended_at: UtcMs(3000),
                sip_code: Some(486),
                outcome: "busy".into(),
                status: JobStatus::Scheduled,
                next_attempt_at: Some(UtcMs(4000)),
                result: None,
                reason: None,
                events: vec!["{}".into()],
            },
        )
        .ok()
        .unwrap();
        assert_eq!(
            due_events(&st.conn, UtcMs(5000), 10, &[])
                .ok()
                .unwrap()
                .len(),
            1
        );
        assert!(
            list(&st.conn, None, Some(UtcMs(3999)))
                .ok()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            list(&st.conn, None, Some(UtcMs(4000))).ok().unwrap().len(),
            1
        );
        assert_eq!(
            start_attempt(&st.conn, "a", "c3", UtcMs(4000))
                .ok()
                .unwrap(),
            Some(2)
        );
    }
}
