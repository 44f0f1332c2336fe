//! Prometheus metrics (`GET /metrics`, the Prometheus text format), with the
//! `prometheus-client` crate.
//!
//! Two kinds of figures:
//! - events the call layer counts as they happen ([`CallMetrics`]: outcomes, waits,
//!   the protocol's events and hang-ups, prompts, tickets filed), in prometheus-client
//!   counters and histograms;
//! - figures the server's parts already keep (SIP counters, the media threads', the
//!   outbox's, the store's, the reloads), read when Prometheus scrapes
//!   ([`collect::Readings`]), so nothing is counted twice.
//!
//! Every label comes from a fixed set (the flows' names and ticket categories are
//! those of the flows loaded), and every combination is created at 0 so that `rate()`
//! works from the first scrape. No phone number, Call-ID or ticket id is ever a label.
pub mod collect;
pub mod lateness;

use crate::call::{CallRecord, Library};
use crate::flow::Flow;
use crate::flow::model::{EventKind, Priority};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

pub type Label = [(&'static str, &'static str); 1];
type FlowLabel = [(&'static str, String); 1];
type TicketLabel = [(&'static str, String); 2];

/// `hotline_calls_total{outcome}`.
pub const OUTCOMES: [&str; 6] = [
    "caller_hung_up",
    "hotline_hung_up",
    "transferred",
    "failed",
    "rejected",
    "abandoned",
];
/// `hotline_protocol_events_total{event}`.
pub const EVENTS: [&str; 5] = ["no_input", "no_match", "too_quiet", "noise", "voice"];
/// `hotline_protocol_hangups_total{reason}`.
pub const REASONS: [&str; 4] = ["silence", "too_quiet", "noise", "nuisance"];

/// Seconds from the INVITE to the answer: answered at once (P-RING's ideal), within
/// three 5 s rings, or after a wait in the queue.
const WAIT_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
];
/// Seconds from the answer to the end: the silent caller's P-SIL run is ~40 s.
const DURATION_BUCKETS: [f64; 12] = [
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0,
];

/// The protocol's closing lines: when hotline hangs up after one of these prompts,
/// the protocol told it to, for that reason (P-SIL, P-QUIET, P-NOISE, P-HARASS). The
/// ids are the shared catalogue's, which every flow speaks from.
const CLOSING_LINES: [(&str, &str); 4] = [
    ("no_sound_goodbye", "silence"),
    ("too_quiet_goodbye", "too_quiet"),
    ("noise_goodbye", "noise"),
    ("out_of_scope", "nuisance"),
];

/// Why hotline hangs up, if the last prompt it played is one of the protocol's
/// closing lines.
pub fn hangup_reason(last_prompt: &str) -> Option<&'static str> {
    CLOSING_LINES
        .iter()
        .find(|(p, _)| *p == last_prompt)
        .map(|(_, r)| *r)
}

/// What the call layer counts. Cheap to share; counting is an atomic add (the label
/// lookups for flows and categories take a read lock, once per prompt or ticket).
pub struct CallMetrics {
    outcomes: Family<Label, Counter>,
    outcome: [Counter; OUTCOMES.len()],
    duration: Histogram,
    wait: Histogram,
    apologies: Counter,
    events: Family<Label, Counter>,
    event: [Counter; EVENTS.len()],
    hangups: Family<Label, Counter>,
    hangup: [Counter; REASONS.len()],
    prompts: Family<FlowLabel, Counter>,
    tickets: Family<TicketLabel, Counter>,
    /// Ops requests refused for a missing or wrong token (src/server/auth.rs counts).
    pub ops_refused: Counter,
    /// Survey ratings outbound calls collected (P-SURVEY), by flow and rating.
    survey_ratings: Family<TicketLabel, Counter>,
}

/// The ratings counted in `hotline_survey_ratings_total`: a survey's keys 1 to 5.
pub const RATINGS: [&str; 5] = ["1", "2", "3", "4", "5"];

fn fixed<const N: usize>(
    family: &Family<Label, Counter>,
    key: &'static str,
    values: [&'static str; N],
) -> [Counter; N] {
    values.map(|v| family.get_or_create_owned(&[(key, v)]))
}

impl Default for CallMetrics {
    fn default() -> Self {
        let outcomes = Family::default();
        let events = Family::default();
        let hangups = Family::default();
        CallMetrics {
            outcome: fixed(&outcomes, "outcome", OUTCOMES),
            event: fixed(&events, "event", EVENTS),
            hangup: fixed(&hangups, "reason", REASONS),
            outcomes,
            events,
            hangups,
            duration: Histogram::new(DURATION_BUCKETS),
            wait: Histogram::new(WAIT_BUCKETS),
            apologies: Counter::default(),
            prompts: Family::default(),
            tickets: Family::default(),
            ops_refused: Counter::default(),
            survey_ratings: Family::default(),
        }
    }
}

impl CallMetrics {
    /// Creates the labels of these flows at 0 (at start and after each reload).
    pub fn flows_loaded(&self, lib: &Library) {
        for f in lib.flows.values() {
            self.prompts
                .get_or_create_owned(&[("flow", f.name.clone())]);
            for c in &f.categories {
                for p in Priority::ALL {
                    self.tickets.get_or_create_owned(&ticket_label(c, p.name()));
                }
            }
        }
    }

    /// A call has left its record: how it ended, and how long it lasted.
    pub fn call_ended(&self, r: &CallRecord) {
        let outcome = match r.outcome.as_str() {
            _ if r.answered_at.is_none()
                && matches!(r.outcome.as_str(), "cancelled" | "caller-hung-up") =>
            {
                "abandoned"
            }
            "caller-hung-up" => "caller_hung_up",
            "hotline-hung-up" => "hotline_hung_up",
            "transferred" => "transferred",
            "rejected" => "rejected",
            _ => "failed",
        };
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcome[i].inc();
        }
        if let Some(a) = r.answered_at {
            self.duration
                .observe(r.ended_at.since(a).max(0) as f64 / 1000.0);
        }
    }

    /// A call was answered after `waited` and `rings` ring-back periods; past the
    /// flow's `ring_apology_after` it is owed the busy apology (P-RING).
    pub fn answered(&self, flow: &Flow, rings: u32, waited: Duration) {
        self.wait.observe(waited.as_secs_f64());
        if rings >= flow.settings.ring_apology_after {
            self.apologies.inc();
        }
    }

    pub fn prompts_played(&self, flow: &str, n: usize) {
        self.prompts
            .get_or_create(&[("flow", flow.to_string())])
            .inc_by(n as u64);
    }

    /// An event the flow met, if it is one the protocol names.
    pub fn protocol_event(&self, kind: EventKind, n: u64) {
        let name = match kind {
            EventKind::NoInput => "no_input",
            EventKind::NoMatch => "no_match",
            EventKind::TooQuiet => "too_quiet",
            EventKind::Noise => "noise",
            EventKind::Voice => "voice",
            _ => return,
        };
        if let Some(i) = EVENTS.iter().position(|e| *e == name) {
            self.event[i].inc_by(n);
        }
    }

    /// Hotline hung up for one of [`REASONS`].
    pub fn protocol_hangup(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.hangup[i].inc();
        }
    }

    /// Creates the ratings of a flow that outbound jobs run at 0.
    pub fn survey_flow(&self, flow: &str) {
        for r in RATINGS {
            self.survey_ratings
                .get_or_create_owned(&rating_label(flow, r));
        }
    }

    /// An outbound call's flow collected `rating`; other values than [`RATINGS`] are
    /// not labels.
    pub fn survey_rated(&self, flow: &str, rating: &str) {
        if RATINGS.contains(&rating) {
            self.survey_ratings
                .get_or_create(&rating_label(flow, rating))
                .inc();
        }
    }

    pub fn ticket_filed(&self, category: &str, priority: Priority) {
        self.tickets
            .get_or_create(&ticket_label(category, priority.name()))
            .inc();
    }

    fn register(&self, reg: &mut Registry) {
        reg.register(
            "hotline_calls",
            "Calls that ended, by outcome (abandoned: the caller gave up before the answer)",
            self.outcomes.clone(),
        );
        reg.register(
            "hotline_call_duration_seconds",
            "Answered calls, from the answer to the end",
            self.duration.clone(),
        );
        reg.register(
            "hotline_call_wait_seconds",
            "Answered calls, from the INVITE to the answer",
            self.wait.clone(),
        );
        reg.register(
            "hotline_ring_apologies",
            "Calls answered after enough rings that the flow apologises for the wait (P-RING)",
            self.apologies.clone(),
        );
        reg.register(
            "hotline_protocol_events",
            "Events of the protocol the flows met: no input, no match, too quiet, noise, voice",
            self.events.clone(),
        );
        reg.register(
            "hotline_protocol_hangups",
            "Calls hotline hung up because the protocol says so, by reason",
            self.hangups.clone(),
        );
        reg.register(
            "hotline_prompts_played",
            "Prompts played to callers, by flow",
            self.prompts.clone(),
        );
        reg.register(
            "hotline_tickets_created",
            "Tickets filed, by category and priority",
            self.tickets.clone(),
        );
        reg.register(
            "hotline_survey_ratings",
            "Survey ratings collected by outbound calls (P-SURVEY), by flow and rating",
            self.survey_ratings.clone(),
        );
        reg.register(
            "hotline_ops_requests_refused",
            "Ops API requests refused with 401: no token or a wrong one",
            self.ops_refused.clone(),
        );
    }
}

fn rating_label(flow: &str, rating: &str) -> TicketLabel {
    [("flow", flow.to_string()), ("rating", rating.to_string())]
}

fn ticket_label(category: &str, priority: &str) -> TicketLabel {
    [
        ("category", category.to_string()),
        ("priority", priority.to_string()),
    ]
}

/// Everything `/metrics` shows, ready to encode.
pub struct Exporter {
    registry: Registry,
}

/// `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl Exporter {
    pub fn new(calls: &CallMetrics, readings: collect::Readings) -> Exporter {
        let mut registry = Registry::default();
        calls.register(&mut registry);
        registry.register_collector(Box::new(readings));
        Exporter { registry }
    }

    /// The metrics in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "metrics not encoded");
        }
        out
    }
}

/// `GET /metrics`; with metrics off (`metrics: false`), a 404 that says so.
pub fn router(exporter: Option<Exporter>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let exporter = exporter.map(std::sync::Arc::new);
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let exporter = exporter.clone();
            async move {
                match exporter {
                    Some(x) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], x.render()).into_response(),
                    None => (
                        StatusCode::NOT_FOUND,
                        "metrics are off in this hotline (metrics: false)\n",
                    )
                        .into_response(),
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_lines_name_their_reasons() {
        assert_eq!(hangup_reason("no_sound_goodbye"), Some("silence"));
        assert_eq!(hangup_reason("out_of_scope"), Some("nuisance"));
        assert_eq!(hangup_reason("thanks_goodbye"), None);
        for (_, r) in CLOSING_LINES {
            assert!(REASONS.contains(&r));
        }
    }
}
