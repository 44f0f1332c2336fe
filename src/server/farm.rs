//! hotline as one instance of a farm behind a SIP proxy (Kamailio's dispatcher,
//! `deploy/kamailio/`): draining for rolling upgrades, and stepping out of rotation
//! while every line is busy. The endpoint asks this module ([`Gate`]) when it answers
//! OPTIONS and takes a new INVITE; admission itself is untouched.
//!
//! - **Draining** (`POST /drain`, SIGUSR1): OPTIONS are answered 503, so the proxy's
//!   probe takes the instance out of rotation within a probe interval; an INVITE that
//!   still arrives is answered 503 and the proxy fails it over. Calls in progress and
//!   calls already ringing in the queue finish. With `exit_when_drained` the server
//!   stops (exit 0) once the last of them has ended.
//! - **Full**: an INVITE that the proxy marks as having other instances to try
//!   ([`TRY_NEXT_HEADER`]) is refused 486 when every line is busy, so it goes to an
//!   instance with a free line at once; an INVITE without the mark (the proxy's last
//!   try, or no proxy at all) queues ringing as on one machine (P-RING). README,
//!   "Beyond one machine", says why this rather than OPTIONS replies or the
//!   dispatcher's call-load algorithm.
use super::admission::Admission;
use super::http::json;
use crate::sip::gate::{Gate, Refusal};
use crate::sip::refusals::Reason;
use crate::store::UtcMs;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// A draining instance asks the proxy not to come back for this long (Retry-After);
/// the probe finds it again sooner if it is restarted.
const DRAIN_RETRY_AFTER_S: u32 = 60;
/// An overloaded instance asks callers (and a proxy) to keep away this long: the
/// refusal holds for at least 2 s of calm, and a P-SIL call lasts ~16 s.
const OVERLOAD_RETRY_AFTER_S: u32 = 30;

pub struct Farm {
    admission: Arc<Admission>,
    max_calls: usize,
    draining: watch::Sender<Option<Drain>>,
    refused_draining: AtomicU64,
    refused_full: AtomicU64,
}

/// When and how the drain began.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Drain {
    pub since: UtcMs,
    /// `POST /drain` or `SIGUSR1`.
    pub by: &'static str,
}

/// What `/status` and `POST /drain` show.
#[derive(Clone, Debug, Serialize)]
pub struct FarmView {
    pub draining: bool,
    pub draining_since: Option<UtcMs>,
    pub draining_by: Option<&'static str>,
    /// Calls in flows and ringing in the queue: the drain ends when both are 0.
    pub calls_left: usize,
    pub refused_draining: u64,
    pub refused_full: u64,
}

impl std::fmt::Debug for Farm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Farm")
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Farm {
    pub fn new(admission: Arc<Admission>, max_calls: usize) -> Arc<Farm> {
        Arc::new(Farm {
            admission,
            max_calls,
            draining: watch::Sender::new(None),
            refused_draining: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
        })
    }

    /// Starts the drain; a second request changes nothing and says when it began.
    pub fn drain(&self, by: &'static str) -> Drain {
        let mut started = None;
        self.draining.send_if_modified(|d| match d {
            Some(_) => false,
            None => {
                *d = Some(Drain {
                    since: UtcMs::now(),
                    by,
                });
                started = *d;
                true
            }
        });
        if let Some(d) = started {
            tracing::warn!(
                by,
                calls_left = self.calls_left(),
                "draining: OPTIONS and new INVITEs are answered 503; calls in progress finish"
            );
            return d;
        }
        self.draining.borrow().unwrap_or(Drain {
            since: UtcMs::now(),
            by,
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.borrow().is_some()
    }

    /// Wakes when the drain starts.
    pub fn watch(&self) -> watch::Receiver<Option<Drain>> {
        self.draining.subscribe()
    }

    pub fn calls_left(&self) -> usize {
        self.admission.in_flows(self.max_calls) + self.admission.waiting()
    }

    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_draining.load(Ordering::Relaxed),
            self.refused_full.load(Ordering::Relaxed),
        )
    }

    pub fn view(&self) -> FarmView {
        let d = *self.draining.borrow();
        let (refused_draining, refused_full) = self.refused();
        FarmView {
            draining: d.is_some(),
            draining_since: d.map(|d| d.since),
            draining_by: d.map(|d| d.by),
            calls_left: self.calls_left(),
            refused_draining,
            refused_full,
        }
    }

    /// `POST /drain` (behind the ops token) starts the drain; `GET /drain` reads it.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/drain",
                axum::routing::get(|State(f): State<Arc<Farm>>| async move {
                    json(StatusCode::OK, &f.view())
                })
                .post(|State(f): State<Arc<Farm>>| async move {
                    f.drain("POST /drain");
                    json(StatusCode::ACCEPTED, &f.view())
                }),
            )
            .with_state(self.clone())
    }

    /// Drains on SIGUSR1, for operators and init systems without the ops token.
    pub async fn drain_on_sigusr1(self: Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut s) = signal(SignalKind::user_defined1()) else {
                tracing::warn!("cannot listen for SIGUSR1: drain with POST /drain");
                return;
            };
            while s.recv().await.is_some() {
                self.drain("SIGUSR1");
            }
        }
    }
}

impl Gate for Farm {
    fn options(&self) -> Option<Refusal> {
        self.is_draining().then_some(Refusal {
            code: 503,
            retry_after: Some(DRAIN_RETRY_AFTER_S),
            spread: false,
            why: "draining",
            tally: None,
        })
    }

    fn invite(&self, may_try_next: bool) -> Option<Refusal> {
        if self.is_draining() {
            self.refused_draining.fetch_add(1, Ordering::Relaxed);
            return Some(Refusal {
                code: 503,
                retry_after: Some(DRAIN_RETRY_AFTER_S),
                spread: false,
                why: "draining",
                tally: None,
            });
        }
        // Refused before any dialog, task or record exists: under overload the
        // refusals must cost next to nothing, or answering them takes the cores the
        // admitted calls' audio needs (an 8,000-call run once wrote 147,470 records
        // of refused calls). They are counted and summarised in the log instead.
        if let Some(why) = self.admission.overload.refuse() {
            return Some(Refusal {
                code: 503,
                retry_after: Some(OVERLOAD_RETRY_AFTER_S),
                spread: true,
                why,
                tally: Some(Reason::MediaOverload),
            });
        }
        // Every line busy and another instance to try: this caller should not queue
        // here. A line freed a moment later only means the call goes elsewhere.
        if may_try_next && self.admission.in_flows(self.max_calls) >= self.max_calls {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            return Some(Refusal {
                code: 486,
                retry_after: None,
                spread: false,
                why: "every line is busy",
                tally: None,
            });
        }
        None
    }
}
