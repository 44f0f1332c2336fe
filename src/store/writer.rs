//! The one thread that writes, and the handle the call tasks use to reach it.
use super::sql::{self, DbError, PendingTicket};
use super::{CallRecord, Delivery, NewTicket, StoreError, StoreOptions, Ticket, TicketId, UtcMs};
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
type ReadFn = Box<dyn FnOnce(&Connection, &Path) + Send>;

enum Msg {
    Call(Box<CallRecord>),
    Ticket(Box<PendingTicket>, Reply<TicketId>),
    Flush(Reply<()>),
    Read(ReadFn),
    Shutdown(Reply<()>),
}

/// A write not yet committed. A ticket's reply is taken when it is first answered, so
/// a ticket retried after a failure answers nobody: its caller already heard P-FAULT.
enum Item {
    Call(Box<CallRecord>),
    Ticket(Box<PendingTicket>, Option<Reply<TicketId>>),
}

#[derive(Default)]
struct Counters {
    /// Set by a send that someone waits on (a ticket, a flush, a read): the writer ends
    /// its commit window early.
    hurry: std::sync::atomic::AtomicBool,
    queued: AtomicU64,
    pending_tickets: AtomicU64,
    ticket_failures: AtomicU64,
    write_failures: AtomicU64,
    dropped: AtomicU64,
    commits: AtomicU64,
    calls_written: AtomicU64,
    tickets_written: AtomicU64,
}

/// What the writer has done; counts since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Writes accepted and not yet committed (queued or held after a failure).
    pub queued: u64,
    /// Tickets whose `file_ticket` returned an error and that are held in memory until
    /// a retry writes them.
    pub pending_tickets: u64,
    /// `file_ticket` calls that returned an error.
    pub ticket_failures: u64,
    /// Transactions that failed (each is retried).
    pub write_failures: u64,
    /// Records that the database refused as such (not for want of disk or lock),
    /// logged in full and given up on.
    pub dropped: u64,
    /// Transactions committed: with WAL and synchronous=FULL, one WAL fsync each.
    pub commits: u64,
    pub calls_written: u64,
    pub tickets_written: u64,
}

/// A cheap, cloneable way to the writer thread, for any task or thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    path: Arc<PathBuf>,
    /// The writer, unparked when a send is urgent.
    writer: std::thread::Thread,
}

pub(super) fn start(
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
) -> Result<StoreHandle, StoreError> {
    // Unbounded: a call task must never wait for the disk (P-RECORD is fire and
    // forget); memory is the buffer when the writer falls behind.
    let (tx, rx) = mpsc::channel();
    let counters = Arc::new(Counters::default());
    let writer = Writer {
        conn,
        path: path.clone(),
        backoff: options.retry_interval,
        options,
        counters: counters.clone(),
        pending: Vec::new(),
        next_retry: None,
        last_error: None,
        failing_since: None,
    };
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(StoreHandle {
        tx,
        counters,
        path: Arc::new(path),
        writer: thread.thread().clone(),
    })
}

impl StoreHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a call record; never blocks. [`StoreHandle::flush`] says when it is on disk.
    pub fn record_call(&self, rec: CallRecord) {
        self.counters.queued.fetch_add(1, Relaxed);
        if let Err(mpsc::SendError(Msg::Call(rec))) = self.tx.send(Msg::Call(Box::new(rec))) {
            self.counters.queued.fetch_sub(1, Relaxed);
            // The log is the last place a record can go (P-RECORD).
            tracing::error!(
                record = %serde_json::to_string(&rec).unwrap_or_default(),
                "store writer has stopped; call record not stored"
            );
        }
    }

    /// Files a ticket; resolves once it is committed to disk, with its id. On an error
    /// the ticket is still held and retried until written; the caller should hear
    /// P-FAULT, not that the request is filed.
    pub async fn file_ticket(&self, t: NewTicket) -> Result<TicketId, StoreError> {
        let p = PendingTicket {
            idempotency_key: super::identity::idempotency_key(
                &t.call_id,
                &t.from_tag,
                &t.invite_branch,
                &t.state,
                t.ordinal,
            ),
            ticket: t,
            created_at: UtcMs::now(),
        };
        let (reply, rx) = oneshot::channel();
        self.counters.queued.fetch_add(1, Relaxed);
        if let Err(mpsc::SendError(Msg::Ticket(p, _))) =
            self.send_urgent(Msg::Ticket(Box::new(p), reply))
        {
            self.counters.queued.fetch_sub(1, Relaxed);
            self.counters.ticket_failures.fetch_add(1, Relaxed);
            tracing::error!(
                ticket = ?p.ticket,
                key = %p.idempotency_key,
                "store writer has stopped; ticket not stored"
            );
            return Err(StoreError::Closed);
        }
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Resolves when every write queued before it is committed, or with the error that
    /// stopped that (the writes are then held and retried).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send_urgent(Msg::Flush(reply))
            .map_err(|_| StoreError::Closed)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Commits what is queued and stops the writer; later writes through any clone fail
    /// (and are logged). Call it once the call tasks have stopped.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send_urgent(Msg::Shutdown(reply))
            .map_err(|_| StoreError::Closed)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Sends what someone waits on: a writer inside its commit window is woken for it.
    fn send_urgent(&self, m: Msg) -> Result<(), mpsc::SendError<Msg>> {
        self.tx.send(m)?;
        self.counters.hurry.store(true, Ordering::Release);
        self.writer.unpark();
        Ok(())
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            queued: c.queued.load(Relaxed),
            pending_tickets: c.pending_tickets.load(Relaxed),
            ticket_failures: c.ticket_failures.load(Relaxed),
            write_failures: c.write_failures.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            commits: c.commits.load(Relaxed),
            calls_written: c.calls_written.load(Relaxed),
            tickets_written: c.tickets_written.load(Relaxed),
        }
    }

    /// Tickets in id order, optionally in one delivery state; sees every write queued
    /// before it that could be committed.
    pub async fn list_tickets(&self, state: Option<Delivery>) -> Result<Vec<Ticket>, StoreError> {
        self.read(move |c| sql::list_tickets(c, state, None)).await
    }

    pub async fn get_ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.read(move |c| sql::get_ticket(c, id)).await
    }

    // Reads go through the writer's connection, after its pending commit, so a task
    // reads its own writes without a second connection to manage.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job: ReadFn = Box::new(move |conn, path| {
            let _ = reply.send(f(conn).map_err(|e| e.at(path)));
        });
        self.send_urgent(Msg::Read(job))
            .map_err(|_| StoreError::Closed)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    counters: Arc<Counters>,
    /// Accepted, not yet committed, in arrival order.
    pending: Vec<Item>,
    /// Set while writes fail: when to try again.
    next_retry: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
    failing_since: Option<Instant>,
}

/// How many times a stopping writer tries to save what it still holds.
const FINAL_ATTEMPTS: u32 = 5;

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let first = match self.next_retry {
                None => rx.recv().ok(),
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.close();
                        return;
                    }
                },
            };
            if first.is_none() && self.next_retry.is_none() {
                // Every handle is gone.
                self.close();
                return;
            }
            let window = self.options.commit_window;
            if matches!(first, Some(Msg::Call(_))) && self.next_retry.is_none() {
                self.hold_window(window);
            }
            let mut waiting = Waiting::default();
            let mut taken = 0;
            let mut next = first;
            while let Some(m) = next {
                taken += 1;
                waiting.take(m, &mut self.pending);
                if taken >= self.options.max_batch || waiting.shutdown.is_some() {
                    break;
                }
                next = rx.try_recv().ok();
            }
            // While writes fail, plain call records wait for the retry timer; a ticket,
            // flush or read has someone waiting and tries at once.
            let due = self.next_retry.is_none_or(|at| Instant::now() >= at);
            if due || waiting.urgent {
                self.commit_pending();
            }
            if let Some(reply) = waiting.shutdown.take() {
                // Other handles may have sent more before they could know; those
                // writes count too. A send after the drop fails and is logged by the
                // sender; only one racing the few instructions between the last
                // try_recv and the drop is lost, so stop the call tasks first.
                while let Ok(m) = rx.try_recv() {
                    waiting.take(m, &mut self.pending);
                }
                drop(rx);
                self.close();
                self.answer(waiting);
                let _ = reply.send(self.state());
                return;
            }
            self.answer(waiting);
        }
    }

    /// Waits out the commit window, or less if an urgent send comes. Parked, not in
    /// recv_timeout: a plain record's send to a parked receiver wakes nobody, so the
    /// window costs one wake-up however many records come in it.
    fn hold_window(&self, window: Duration) {
        // A flag left from an urgent send already taken only ends this window early.
        let until = Instant::now() + window;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.counters.hurry.swap(false, Ordering::AcqRel) {
                return;
            }
            std::thread::park_timeout(left);
        }
    }

    /// Ok if nothing accepted is still waiting to be written.
    fn state(&self) -> Result<(), StoreError> {
        match &self.last_error {
            Some(e) if !self.pending.is_empty() => {
                Err(StoreError::Unavailable { detail: e.clone() })
            }
            _ => Ok(()),
        }
    }

    fn answer(&self, waiting: Waiting) {
        for f in waiting.flushes {
            let _ = f.send(self.state());
        }
        for r in waiting.reads {
            r(&self.conn, &self.path);
        }
        // A second shutdown, from the late drain: the store is closed by now.
        if let Some(s) = waiting.shutdown {
            let _ = s.send(self.state());
        }
    }

    fn commit_pending(&mut self) {
        if self.pending.is_empty() {
            self.recovered();
            return;
        }
        let result = match write_all(&mut self.conn, &self.pending) {
            Err(e) if e.is_item_specific() => self.write_isolating(),
            r => r,
        };
        match result {
            Ok(done) => {
                let (mut calls, mut tickets, mut retried, mut refused) = (0, 0, 0, 0);
                let n = self.pending.len() as u64;
                for (item, done) in self.pending.drain(..).zip(done) {
                    match (item, done) {
                        (Item::Call(_), Done::Written(_)) => calls += 1,
                        (Item::Ticket(p, reply), Done::Written(id)) => {
                            tickets += 1;
                            let id = id.unwrap_or(TicketId(0));
                            match reply {
                                Some(r) => {
                                    let _ = r.send(Ok(id));
                                }
                                None => {
                                    retried += 1;
                                    tracing::warn!(
                                        "ticket {id} (key {}, call {}) filed after failed writes",
                                        p.idempotency_key,
                                        p.ticket.call_id
                                    );
                                }
                            }
                        }
                        // Logged and counted where refused.
                        (Item::Call(_), Done::Refused) => {}
                        (Item::Ticket(_, reply), Done::Refused) => match reply {
                            Some(r) => {
                                refused += 1;
                                let _ = r.send(Err(StoreError::Unavailable {
                                    detail: "the database refused this ticket".into(),
                                }));
                            }
                            None => retried += 1,
                        },
                    }
                }
                let c = &self.counters;
                c.commits.fetch_add(1, Relaxed);
                c.calls_written.fetch_add(calls, Relaxed);
                c.tickets_written.fetch_add(tickets, Relaxed);
                c.pending_tickets.fetch_sub(retried, Relaxed);
                c.ticket_failures.fetch_add(refused, Relaxed);
                c.queued.fetch_sub(n, Relaxed);
                self.recovered();
            }
            Err(e) => self.failed(&e),
        }
    }

    /// One savepoint a record, so that a record the database refuses is set aside and
    /// the rest are still written.
    fn write_isolating(&mut self) -> Result<Vec<Done>, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(self.pending.len());
        for item in &self.pending {
            tx.execute_batch("SAVEPOINT one")?;
            match write_item(&tx, item) {
                Ok(id) => {
                    tx.execute_batch("RELEASE one")?;
                    ids.push(Done::Written(id));
                }
                Err(e) if e.is_item_specific() => {
                    tx.execute_batch("ROLLBACK TO one; RELEASE one")?;
                    self.counters.dropped.fetch_add(1, Relaxed);
                    tracing::error!(
                        record = %describe_item(item),
                        "store refused a record ({}); it is not stored",
                        e.describe()
                    );
                    ids.push(Done::Refused);
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    fn failed(&mut self, e: &DbError) {
        let detail = e.describe();
        let c = &self.counters;
        c.write_failures.fetch_add(1, Relaxed);
        let mut answered = 0;
        for item in &mut self.pending {
            if let Item::Ticket(_, reply @ Some(_)) = item
                && let Some(r) = reply.take()
            {
                answered += 1;
                let _ = r.send(Err(StoreError::Unavailable {
                    detail: detail.clone(),
                }));
            }
        }
        c.ticket_failures.fetch_add(answered, Relaxed);
        c.pending_tickets.fetch_add(answered, Relaxed);
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        tracing::error!(
            "{}: WRITE FAILED: {detail}; holding {} record(s) in memory ({} ticket(s) the \
             caller was told could not be filed), failing for {:.0?}, next try in {:.1?}",
            self.path.display(),
            self.pending.len(),
            c.pending_tickets.load(Relaxed),
            since.elapsed(),
            self.backoff
        );
        self.last_error = Some(detail);
        self.next_retry = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.options.max_retry_interval);
    }

    fn recovered(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::warn!(
                "{}: writes work again after {:.1?}",
                self.path.display(),
                since.elapsed()
            );
        }
        self.next_retry = None;
        self.last_error = None;
        self.backoff = self.options.retry_interval;
    }

    /// Saves what it can; whatever the disk still refuses goes to the log in full.
    fn close(&mut self) {
        let mut tries = 0;
        while !self.pending.is_empty() && tries < FINAL_ATTEMPTS {
            if tries > 0 {
                std::thread::sleep(self.backoff.min(Duration::from_secs(1)));
            }
            self.commit_pending();
            tries += 1;
        }
        for item in &self.pending {
            tracing::error!(
                record = %describe_item(item),
                "store is closing and cannot write this record"
            );
        }
    }
}

#[derive(Default)]
struct Waiting {
    flushes: Vec<Reply<()>>,
    reads: Vec<ReadFn>,
    shutdown: Option<Reply<()>>,
    urgent: bool,
}

impl Waiting {
    fn take(&mut self, m: Msg, pending: &mut Vec<Item>) {
        match m {
            Msg::Call(c) => pending.push(Item::Call(c)),
            Msg::Ticket(p, r) => {
                self.urgent = true;
                pending.push(Item::Ticket(p, Some(r)));
            }
            Msg::Flush(r) => {
                self.urgent = true;
                self.flushes.push(r);
            }
            Msg::Read(f) => {
                self.urgent = true;
                self.reads.push(f);
            }
            Msg::Shutdown(r) => {
                self.urgent = true;
                self.shutdown = Some(r);
            }
        }
    }
}

/// Everything in one transaction: one fsync however many records.
fn write_all(conn: &mut Connection, items: &[Item]) -> Result<Vec<Done>, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        ids.push(Done::Written(write_item(&tx, item)?));
    }
    tx.commit()?;
    Ok(ids)
}

fn write_item(conn: &Connection, item: &Item) -> Result<Option<TicketId>, DbError> {
    match item {
        Item::Call(c) => sql::insert_call(conn, c).map(|()| None),
        Item::Ticket(p, _) => sql::insert_ticket(conn, p).map(Some),
    }
}

/// What became of one pending item in a committed transaction.
enum Done {
    /// With the ticket's id, for a ticket.
    Written(Option<TicketId>),
    Refused,
}

fn describe_item(item: &Item) -> String {
    match item {
        Item::Call(c) => serde_json::to_string(c).unwrap_or_else(|_| format!("{c:?}")),
        Item::Ticket(p, _) => format!("{p:?}"),
    }
}
