//! The delivery worker: takes due tickets from the store in priority order, POSTs
//! each (a few at once, never one ticket twice at once), and records what came of it.
//!
//! The same worker carries hotline's events (`"type": "outbound"`: an outbound call's
//! attempts and its job's end), stored whole in the `events` table: one outbox, one
//! signature, one back-off, one receiver-down probe for everything the ticket system
//! hears. Tickets go first; events take the room tickets leave.
//!
//! The store is the queue: nothing about a delivery lives only in memory, so after a
//! crash the worker starts over from the store. A ticket whose POST was cut off by the
//! crash is sent again, with the same idempotency key.
use super::payload::{self, Recordings};
use super::webhook::{Answer, Webhook};
use crate::config::WebhookConfig;
use crate::store::{Attempt, OutboxCounts, Outgoing, OutgoingEvent, StoreHandle, TicketId, UtcMs};
use prometheus_client::metrics::histogram::Histogram;
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the outbox has done, for the metrics; counts since the start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    /// A `webhook.url` is configured.
    pub enabled: bool,
    /// Tickets in the store by delivery state (as of the last look, every `poll`).
    pub pending: u64,
    pub failed: u64,
    pub delivered: u64,
    /// Age of the oldest pending ticket.
    pub oldest_pending_age_ms: Option<i64>,
    pub in_flight: u64,
    /// Attempts answered 2xx.
    pub deliveries: u64,
    /// Attempts to be repeated: 408, 429, 5xx, timeouts, garbage, receiver down.
    pub retries: u64,
    /// Tickets parked as failed (another 4xx).
    pub parked: u64,
    /// Tickets whose deadline passed while undelivered (since the start).
    pub overdue: u64,
    /// Pending tickets past their deadline now (as of the last look).
    pub overdue_now: u64,
    /// Attempts by HTTP status, or `unreachable`, `timeout`, `error`.
    pub by_status: BTreeMap<String, u64>,
    /// The last attempt could not connect; deliveries wait and probe one at a time.
    pub receiver_unreachable: bool,
}

struct Shared {
    wake: Notify,
    counts: Mutex<OutboxCounts>,
    by_status: Mutex<BTreeMap<String, u64>>,
    enabled: AtomicBool,
    in_flight: AtomicU64,
    deliveries: AtomicU64,
    retries: AtomicU64,
    parked: AtomicU64,
    overdue: AtomicU64,
    unreachable: AtomicBool,
    /// Attempts by result, in the order of [`RESULTS`].
    results: [AtomicU64; RESULTS.len()],
    /// Filed to delivered, per ticket delivered.
    delivery_seconds: Histogram,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            wake: Notify::new(),
            counts: Mutex::default(),
            by_status: Mutex::default(),
            enabled: AtomicBool::default(),
            in_flight: AtomicU64::default(),
            deliveries: AtomicU64::default(),
            retries: AtomicU64::default(),
            parked: AtomicU64::default(),
            overdue: AtomicU64::default(),
            unreachable: AtomicBool::default(),
            results: Default::default(),
            delivery_seconds: Histogram::new(DELIVERY_BUCKETS),
        }
    }
}

/// What a delivery attempt came to, as the metrics count it: a fixed set.
pub const RESULTS: [&str; 8] = [
    "delivered",
    "http_4xx",
    "http_5xx",
    "timeout",
    "connect_error",
    "too_large",
    "redirect",
    "bad_answer",
];

/// Filed to delivered, in seconds: an emergency is due in 15 minutes.
const DELIVERY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A cheap handle to a running outbox: wake it, read its stats.
#[derive(Clone)]
pub struct OutboxHandle(Arc<Shared>);

impl OutboxHandle {
    /// Look at the store now: a ticket was filed or an operator asked for a retry.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub fn stats(&self) -> OutboxStats {
        let s = &self.0;
        let counts = *s.counts.lock().unwrap_or_else(|e| e.into_inner());
        OutboxStats {
            enabled: s.enabled.load(Relaxed),
            pending: counts.pending,
            failed: counts.failed,
            delivered: counts.delivered,
            oldest_pending_age_ms: counts.oldest_pending.map(|t| UtcMs::now().since(t)),
            in_flight: s.in_flight.load(Relaxed),
            deliveries: s.deliveries.load(Relaxed),
            retries: s.retries.load(Relaxed),
            parked: s.parked.load(Relaxed),
            overdue: s.overdue.load(Relaxed),
            by_status: s
                .by_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            receiver_unreachable: s.unreachable.load(Relaxed),
            overdue_now: counts.overdue,
        }
    }

    /// Attempts by result since the start, every result of [`RESULTS`] included.
    pub fn results(&self) -> [(&'static str, u64); RESULTS.len()] {
        std::array::from_fn(|i| (RESULTS[i], self.0.results[i].load(Relaxed)))
    }

    /// Filed-to-delivered times of the tickets delivered since the start.
    pub fn delivery_seconds(&self) -> Histogram {
        self.0.delivery_seconds.clone()
    }
}

/// The running worker; [`Outbox::stop`] ends it.
pub struct Outbox {
    handle: OutboxHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// How long a stopping outbox lets deliveries in flight finish before it drops them
/// (they stay pending and go out at the next start).
const STOP_GRACE: Duration = Duration::from_secs(2);

impl Outbox {
    /// Starts the worker on the runtime; an error for settings that cannot work.
    /// `recordings` says how recording links are made.
    pub fn start(
        store: StoreHandle,
        cfg: &WebhookConfig,
        recordings: Recordings,
    ) -> Result<Outbox, String> {
        let hook = Webhook::new(cfg)?.map(Arc::new);
        let shared = Arc::new(Shared::default());
        shared.enabled.store(hook.is_some(), Relaxed);
        if hook.is_none() {
            tracing::info!("webhook.url not set: tickets stay in the store for the operator");
        }
        let cancel = CancellationToken::new();
        let worker = Worker {
            store,
            hook,
            recordings: Arc::new(recordings),
            shared: shared.clone(),
            concurrency: cfg.concurrency.max(1),
            retry_initial: cfg.retry_initial,
            retry_max: cfg.retry_max.max(cfg.retry_initial),
            poll: cfg.poll.max(Duration::from_millis(10)),
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(worker.run());
        Ok(Outbox {
            handle: OutboxHandle(shared),
            cancel,
            task,
        })
    }

    pub fn handle(&self) -> OutboxHandle {
        self.handle.clone()
    }

    /// Stops taking tickets and waits (briefly) for those in flight.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

struct Worker {
    store: StoreHandle,
    hook: Option<Arc<Webhook>>,
    recordings: Arc<Recordings>,
    shared: Arc<Shared>,
    concurrency: usize,
    retry_initial: Duration,
    retry_max: Duration,
    poll: Duration,
    cancel: CancellationToken,
}

/// The receiver could not be reached: no ticket goes out before `until`, then one
/// alone, so that when it is back the tickets arrive in priority order and a downed
/// receiver is not hammered by the whole outbox.
struct Down {
    until: Instant,
    backoff: Duration,
}

/// What one delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Item {
    Ticket(TicketId),
    Event(i64),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Ticket(t) => write!(f, "ticket {t}"),
            Item::Event(e) => write!(f, "event {e}"),
        }
    }
}

struct Flights {
    set: JoinSet<Answer>,
    /// Task -> what it carries; the attempt count for its back-off, and when it was
    /// filed.
    tasks: HashMap<tokio::task::Id, (Item, u32, UtcMs)>,
    tickets: HashSet<TicketId>,
    events: HashSet<i64>,
}

impl Worker {
    async fn run(self) {
        let mut flights = Flights {
            set: JoinSet::new(),
            tasks: HashMap::new(),
            tickets: HashSet::new(),
            events: HashSet::new(),
        };
        let mut down: Option<Down> = None;
        // Deadlines up to here have been looked at; from 0 so that a start logs every
        // pending ticket that is already late.
        let mut deadlines_seen = UtcMs(0);
        let mut next_look = Instant::now();
        let mut store_failing = false;
        loop {
            if Instant::now() >= next_look {
                self.look(&mut deadlines_seen).await;
                next_look = Instant::now() + self.poll;
            }
            let room = match &down {
                _ if self.hook.is_none() => 0,
                Some(d) if Instant::now() < d.until => 0,
                Some(_) => usize::from(flights.set.is_empty()),
                None => self.concurrency.saturating_sub(flights.set.len()),
            };
            if room > 0 {
                let skip = flights.tickets.iter().copied().collect();
                match self.store.due_tickets(UtcMs::now(), room, skip).await {
                    Ok(due) => {
                        store_failing = false;
                        let left = room - due.len().min(room);
                        for o in due {
                            self.launch(&mut flights, o);
                        }
                        if left > 0 {
                            let skip = flights.events.iter().copied().collect();
                            if let Ok(due) = self.store.due_events(UtcMs::now(), left, skip).await {
                                for e in due {
                                    self.launch_event(&mut flights, e);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if !store_failing {
                            tracing::error!(error = %e, "outbox: cannot read the store; trying again");
                        }
                        store_failing = true;
                    }
                }
            }
            let mut wake_at = next_look;
            // Only a pause still to run out: once it has, the probe's landing wakes us.
            if let Some(d) = down.as_ref().filter(|d| d.until > Instant::now()) {
                wake_at = wake_at.min(d.until);
            }
            tokio::select! {
                Some(done) = flights.set.join_next_with_id(), if !flights.set.is_empty() => {
                    self.landed(&mut flights, &mut down, done).await;
                }
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = self.cancel.cancelled() => break,
            }
        }
        let _ = tokio::time::timeout(STOP_GRACE, async {
            while let Some(done) = flights.set.join_next_with_id().await {
                self.landed(&mut flights, &mut down, done).await;
            }
        })
        .await;
        if !flights.tickets.is_empty() {
            tracing::warn!(
                tickets = ?flights.tickets,
                "outbox stopped with deliveries in flight; they stay pending and are sent \
                 again (same idempotency key) at the next start"
            );
        }
        flights.set.abort_all();
    }

    fn launch(&self, flights: &mut Flights, o: Outgoing) {
        let Some(hook) = self.hook.clone() else {
            return;
        };
        let (id, attempts, filed) = (o.ticket.id, o.ticket.attempts, o.ticket.created_at);
        let rec = self.recordings.clone();
        let task = flights.set.spawn(async move {
            let body = payload::body(&o, &rec).await;
            hook.post(&o.ticket.idempotency_key, body).await
        });
        flights
            .tasks
            .insert(task.id(), (Item::Ticket(id), attempts, filed));
        flights.tickets.insert(id);
        self.shared.in_flight.fetch_add(1, Relaxed);
    }

    fn launch_event(&self, flights: &mut Flights, e: OutgoingEvent) {
        let Some(hook) = self.hook.clone() else {
            return;
        };
        let (id, attempts, filed) = (e.id, e.attempts, e.created_at);
        let task = flights
            .set
            .spawn(async move { hook.post(&e.idempotency_key, e.body.into_bytes()).await });
        flights
            .tasks
            .insert(task.id(), (Item::Event(id), attempts, filed));
        flights.events.insert(id);
        self.shared.in_flight.fetch_add(1, Relaxed);
    }

    async fn landed(
        &self,
        flights: &mut Flights,
        down: &mut Option<Down>,
        done: Result<(tokio::task::Id, Answer), tokio::task::JoinError>,
    ) {
        let (task, answer) = match done {
            Ok((task, a)) => (task, a),
            Err(e) => (
                e.id(),
                Answer::Retry {
                    status: None,
                    error: format!("delivery task ended: {e}"),
                    after: None,
                },
            ),
        };
        let Some((id, attempts, filed)) = flights.tasks.remove(&task) else {
            return;
        };
        if let Some(i) = RESULTS.iter().position(|r| *r == answer.result()) {
            self.shared.results[i].fetch_add(1, Relaxed);
        }
        match id {
            Item::Ticket(t) => {
                flights.tickets.remove(&t);
            }
            Item::Event(e) => {
                flights.events.remove(&e);
            }
        }
        self.shared.in_flight.fetch_sub(1, Relaxed);
        *self
            .shared
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(answer.label())
            .or_default() += 1;
        let attempt = attempts + 1;
        let reached = !matches!(answer, Answer::Unreachable { .. });
        let now = UtcMs::now();
        let record = match answer {
            Answer::Delivered { status } => {
                self.shared.deliveries.fetch_add(1, Relaxed);
                // The histogram is tickets' (filed to delivered); events are not filed.
                if matches!(id, Item::Ticket(_)) {
                    self.shared
                        .delivery_seconds
                        .observe(now.since(filed).max(0) as f64 / 1000.0);
                }
                tracing::info!(item = %id, status, attempt, "delivered");
                Attempt::Delivered { status }
            }
            Answer::Unreachable { error } => {
                self.shared.retries.fetch_add(1, Relaxed);
                let backoff = match down {
                    Some(d) => (d.backoff * 2).min(self.retry_max),
                    None => self.retry_initial,
                };
                let wait = jitter(backoff);
                tracing::warn!(item = %id, attempt, %error, "webhook unreachable; next try in {wait:.1?}");
                *down = Some(Down {
                    until: Instant::now() + wait,
                    backoff,
                });
                // Not the ticket's fault: it keeps its place (due now) for the probe.
                Attempt::Retry {
                    next_at: now,
                    error,
                    status: None,
                }
            }
            Answer::Retry {
                status,
                error,
                after,
            } => {
                self.shared.retries.fetch_add(1, Relaxed);
                let wait = self.backoff(attempt).max(after.unwrap_or_default());
                tracing::warn!(item = %id, attempt, %error, "delivery failed; next try in {wait:.1?}");
                Attempt::Retry {
                    next_at: now.plus(wait),
                    error,
                    status,
                }
            }
            Answer::Park { status, error } => {
                self.shared.parked.fetch_add(1, Relaxed);
                tracing::error!(
                    item = %id, status, %error,
                    "the ticket system refused {id}; parked as failed: \
                     `hotline tickets retry` once the cause is fixed"
                );
                Attempt::Failed { status, error }
            }
        };
        // Any answer at all means the receiver is up again.
        if reached {
            *down = None;
        }
        self.shared.unreachable.store(down.is_some(), Relaxed);
        let recorded = match id {
            Item::Ticket(t) => self.store.record_attempt(t, record).await,
            Item::Event(e) => self.store.record_event_attempt(e, record).await,
        };
        if let Err(e) = recorded {
            // The ticket stays as it was in the store (pending): it is sent again, with
            // the same key, which the receiver drops if this attempt had reached it.
            tracing::error!(item = %id, error = %e, "cannot record a delivery attempt");
        }
    }

    /// Exponential back-off from `retry_initial`, capped, with jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let d = self
            .retry_initial
            .saturating_mul(1u32 << exp)
            .min(self.retry_max);
        jitter(d)
    }

    /// Every `poll`: the store's counts for the stats, and deadlines that passed.
    async fn look(&self, deadlines_seen: &mut UtcMs) {
        if let Ok(c) = self.store.outbox_counts().await {
            *self.shared.counts.lock().unwrap_or_else(|e| e.into_inner()) = c;
        }
        let now = UtcMs::now();
        let Ok(late) = self.store.overdue_tickets(*deadlines_seen, now).await else {
            return;
        };
        *deadlines_seen = now;
        for t in late {
            self.shared.overdue.fetch_add(1, Relaxed);
            tracing::error!(
                ticket = %t.id,
                priority = %t.priority,
                category = %t.category,
                due_at = %t.due_at.unwrap_or_default(),
                attempts = t.attempts,
                last_error = t.last_error.as_deref().unwrap_or("-"),
                "TICKET {} ({} {}) IS PAST ITS DEADLINE AND NOT DELIVERED; caller {}: \
                 pass it on by hand (hotline tickets show {}) and look at the webhook",
                t.id,
                t.priority,
                t.category,
                t.caller,
                t.id
            );
        }
    }
}

/// Between half and all of `d`: retries of tickets that failed together spread out.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}
