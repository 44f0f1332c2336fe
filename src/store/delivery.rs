//! Tickets' delivery to the webhook: what the outbox worker claims and records, and
//! the operator's retry. Only the state columns change here; a ticket's content is
//! written once, when it is filed.
use super::sql::{DbError, TICKET_COLUMNS, ticket_row};
use super::{Delivery, Store, StoreError, StoreHandle, Ticket, TicketId, UtcMs};
use rusqlite::{Connection, OptionalExtension, params};

/// A ticket due for delivery, with the token its recording links are made from.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub ticket: Ticket,
    pub access_token: String,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Still pending, not tried again before `next_at` (now: due at once).
    Retry {
        next_at: UtcMs,
        error: String,
        status: Option<u16>,
    },
    /// Parked for the operator: the webhook refused it in a way a retry cannot mend.
    Failed {
        status: u16,
        error: String,
    },
}

/// The outbox as the store sees it, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    /// When the oldest pending ticket was filed.
    pub oldest_pending: Option<UtcMs>,
    /// The earliest `next_attempt_at` of a pending ticket (0 = now).
    pub next_due: Option<UtcMs>,
    /// Pending tickets whose deadline has passed.
    pub overdue: u64,
}

// Emergencies first (P-EMERG), then by age; the id breaks ties within a millisecond.
const ORDER: &str = "CASE priority WHEN 'emergency' THEN 0 WHEN 'high' THEN 1
    WHEN 'normal' THEN 2 ELSE 3 END, created_at, id";

fn due(
    conn: &Connection,
    now: UtcMs,
    limit: usize,
    skip: &[TicketId],
) -> Result<Vec<Outgoing>, DbError> {
    let skip = serde_json::to_string(&skip.iter().map(|t| t.0).collect::<Vec<_>>())
        .map_err(|e| DbError::Json(e.to_string()))?;
    let sql = format!(
        "SELECT {TICKET_COLUMNS}, access_token FROM tickets
         WHERE delivery = 'pending' AND next_attempt_at <= ?1
           AND id NOT IN (SELECT value FROM json_each(?2))
         ORDER BY {ORDER} LIMIT ?3"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = st.query_map(params![now.0, skip, limit], |r| {
        Ok(Outgoing {
            ticket: ticket_row(r)?,
            access_token: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn record(conn: &Connection, id: TicketId, now: UtcMs, a: &Attempt) -> Result<bool, DbError> {
    record_in(conn, "tickets", id.0, now, a)
}

/// One delivery attempt's end, for a row of either table the outbox delivers (`tickets`,
/// or the outbound calls' `events`): the same columns, the same state machine.
pub(super) fn record_in(
    conn: &Connection,
    table: &'static str,
    id: i64,
    now: UtcMs,
    a: &Attempt,
) -> Result<bool, DbError> {
    // `delivery = 'pending'`: an attempt never overrides what an operator did meanwhile.
    let n = match a {
        Attempt::Delivered { status } => conn.execute(
            &format!(
                "UPDATE {table} SET delivery = 'delivered', delivered_at = ?2,
                    attempts = attempts + 1, last_error = NULL, last_status = ?3,
                    next_attempt_at = 0
                 WHERE id = ?1 AND delivery = 'pending'"
            ),
            params![id, now.0, status],
        )?,
        Attempt::Retry {
            next_at,
            error,
            status,
        } => conn.execute(
            &format!(
                "UPDATE {table} SET attempts = attempts + 1, last_error = ?2, last_status = ?3,
                    next_attempt_at = ?4
                 WHERE id = ?1 AND delivery = 'pending'"
            ),
            params![id, error, status, next_at.0],
        )?,
        Attempt::Failed { status, error } => conn.execute(
            &format!(
                "UPDATE {table} SET delivery = 'failed', attempts = attempts + 1,
                    last_error = ?2, last_status = ?3, next_attempt_at = 0
                 WHERE id = ?1 AND delivery = 'pending'"
            ),
            params![id, error, status],
        )?,
    };
    Ok(n == 1)
}

fn get(conn: &Connection, id: TicketId) -> Result<Option<Ticket>, DbError> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.0], ticket_row)
        .optional()?)
}

/// A failed ticket goes back to pending; a pending one in back-off is made due now.
/// Returns the ticket as it then is (a delivered one is left alone).
fn retry(conn: &Connection, id: TicketId) -> Result<Option<Ticket>, DbError> {
    conn.execute(
        "UPDATE tickets SET delivery = 'pending', next_attempt_at = 0
         WHERE id = ?1 AND delivery IN ('pending', 'failed')",
        [id.0],
    )?;
    get(conn, id)
}

fn retry_all_failed(conn: &Connection) -> Result<usize, DbError> {
    Ok(conn.execute(
        "UPDATE tickets SET delivery = 'pending', next_attempt_at = 0 WHERE delivery = 'failed'",
        [],
    )?)
}

fn counts(conn: &Connection) -> Result<OutboxCounts, DbError> {
    let mut c = OutboxCounts::default();
    let mut st = conn.prepare_cached(
        "SELECT delivery, COUNT(*), MIN(created_at), MIN(next_attempt_at)
         FROM tickets GROUP BY delivery",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let n = u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
        match Delivery::from_name(&r.get::<_, String>(0)?) {
            Some(Delivery::Pending) => {
                c.pending = n;
                c.oldest_pending = r.get::<_, Option<i64>>(2)?.map(UtcMs);
                c.next_due = r.get::<_, Option<i64>>(3)?.map(UtcMs);
            }
            Some(Delivery::Delivered) => c.delivered = n,
            Some(Delivery::Failed) => c.failed = n,
            None => {}
        }
    }
    c.overdue = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM tickets WHERE delivery = 'pending' AND due_at IS NOT NULL AND due_at <= ?1",
        )?
        .query_row([UtcMs::now().0], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))?;
    Ok(c)
}

/// Pending tickets whose deadline fell in `(after, until]`.
fn overdue(conn: &Connection, after: UtcMs, until: UtcMs) -> Result<Vec<Ticket>, DbError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets
         WHERE delivery = 'pending' AND due_at > ?1 AND due_at <= ?2 ORDER BY due_at"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![after.0, until.0], ticket_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn by_token(conn: &Connection, token: &str) -> Result<Option<Ticket>, DbError> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE access_token = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([token], ticket_row)
        .optional()?)
}

// The server's worker and ops HTTP go through the writer thread, like every write of
// the server: one connection, no lock contention with the call records.
impl StoreHandle {
    /// Up to `limit` pending tickets due at `now`, emergencies first then oldest,
    /// leaving out `skip` (those already in flight).
    pub async fn due_tickets(
        &self,
        now: UtcMs,
        limit: usize,
        skip: Vec<TicketId>,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.read(move |c| due(c, now, limit, &skip)).await
    }

    /// Records an attempt; false if the ticket was no longer pending.
    pub async fn record_attempt(&self, id: TicketId, a: Attempt) -> Result<bool, StoreError> {
        self.read(move |c| record(c, id, UtcMs::now(), &a)).await
    }

    pub async fn retry_ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.read(move |c| retry(c, id)).await
    }

    pub async fn retry_all_failed(&self) -> Result<usize, StoreError> {
        self.read(retry_all_failed).await
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(counts).await
    }

    pub async fn overdue_tickets(
        &self,
        after: UtcMs,
        until: UtcMs,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.read(move |c| overdue(c, after, until)).await
    }

    /// The ticket whose recording links carry this token.
    pub async fn ticket_by_token(&self, token: String) -> Result<Option<Ticket>, StoreError> {
        self.read(move |c| by_token(c, &token)).await
    }
}

// The CLI's retry: a second connection while the server runs, which SQLite's locking
// (WAL, busy timeout) makes safe; the server's worker sees it on its next look.
impl Store {
    pub fn retry_ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.writable()?;
        retry(&self.conn, id).map_err(|e| e.at(&self.path))
    }

    pub fn retry_all_failed(&self) -> Result<usize, StoreError> {
        self.writable()?;
        retry_all_failed(&self.conn).map_err(|e| e.at(&self.path))
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        counts(&self.conn).map_err(|e| e.at(&self.path))
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_store_gains_delivery_columns_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(super::super::schema::V1).unwrap();
            c.execute_batch(
                "INSERT INTO tickets (idempotency_key, call_id, caller, flow, state, category,
                    priority, created_at, fields, recordings)
                 VALUES ('k', 'c', '1', 'f', 's', 'repair', 'low', 5, '[]', '[]');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let st = Store::open(dir.path()).unwrap();
        let due = due(&st.conn, UtcMs(10), 10, &[]).ok().unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].access_token.len(), 32);
        assert_eq!(due[0].ticket.next_attempt_at, None);
        assert!(
            by_token(&st.conn, &due[0].access_token)
                .ok()
                .unwrap()
                .is_some()
        );
    }
}
