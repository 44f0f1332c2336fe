//! The live status for an operator without Grafana: `GET /status` (JSON) and `GET /`,
//! one HTML page embedded in the binary that reads `/status` every 1.5 s. Nothing on
//! the page is fetched from elsewhere: operators' networks are closed.
use super::admission::Admission;
use super::http::json;
use super::reload::Reloader;
use crate::call::CallServices;
use crate::call::live::{CallView, WaitingView};
use crate::store::UtcMs;
use crate::tickets::OutboxHandle;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

const PAGE: &str = include_str!("status.html");
/// The lookup source whose records are the outages in force (W-OUTAGE).
const OUTAGES: &str = "outages";

/// What `/status` reads.
pub struct StatusSources {
    pub svc: Arc<CallServices>,
    pub admission: Arc<Admission>,
    pub max_calls: usize,
    pub outbox: OutboxHandle,
    pub reloader: Arc<Reloader>,
    pub farm: Arc<super::farm::Farm>,
}

#[derive(Serialize)]
pub struct Status {
    /// The server's clock: how long a call has lasted is `now - since`.
    pub now: UtcMs,
    pub version: &'static str,
    pub calls: Vec<CallView>,
    pub waiting: Vec<WaitingView>,
    pub lines: Lines,
    pub outbox: OutboxView,
    pub webhook: WebhookView,
    pub outages: Vec<Outage>,
    pub flows: FlowsView,
    /// Draining (a farm's rolling upgrade) and INVITEs refused to the farm's proxy.
    pub farm: super::farm::FarmView,
}

#[derive(Serialize)]
pub struct Lines {
    pub in_flows: usize,
    pub max_calls: usize,
}

#[derive(Serialize)]
pub struct OutboxView {
    pub pending: u64,
    pub oldest_pending_age_s: Option<i64>,
    pub overdue: u64,
    pub failed: u64,
}

#[derive(Serialize)]
pub struct WebhookView {
    /// `off` (no webhook.url), `ok`, `unreachable`, or `failing` (the last attempts
    /// were answered with errors).
    pub state: &'static str,
    pub in_flight: u64,
    pub deliveries: u64,
    pub retries: u64,
    pub parked: u64,
}

#[derive(Serialize)]
pub struct Outage {
    /// The record's key: the area code callers key in.
    pub key: String,
    /// Its fields; a value that names a prompt is shown with the prompt's text.
    pub fields: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct FlowsView {
    pub in_service: Vec<String>,
    pub generation: u64,
    pub loaded_at: UtcMs,
    /// `applied` or `refused`: what came of the last reload (`applied` for the start).
    pub last_reload: &'static str,
    pub reloads_refused: u64,
    pub errors: Vec<String>,
}

impl StatusSources {
    pub fn status(&self) -> Status {
        let lib = self.svc.library();
        let ob = self.outbox.stats();
        let rl = self.reloader.status();
        let outages = lib
            .data
            .records(OUTAGES)
            .into_iter()
            .map(|(key, fields)| Outage {
                key,
                fields: fields
                    .into_iter()
                    .map(|(k, v)| {
                        let shown = match lib.catalogue.prompts.get(&v) {
                            Some(p) => format!("{} ({v})", p.text),
                            None => v,
                        };
                        (k, shown)
                    })
                    .collect(),
            })
            .collect();
        let webhook = match () {
            _ if !ob.enabled => "off",
            _ if ob.receiver_unreachable => "unreachable",
            _ if ob.retries > ob.deliveries && ob.pending > 0 => "failing",
            _ => "ok",
        };
        Status {
            now: UtcMs::now(),
            version: env!("CARGO_PKG_VERSION"),
            calls: self.svc.live.calls(),
            waiting: self.svc.live.waiting_callers(),
            lines: Lines {
                in_flows: self.admission.in_flows(self.max_calls),
                max_calls: self.max_calls,
            },
            outbox: OutboxView {
                pending: ob.pending,
                oldest_pending_age_s: ob.oldest_pending_age_ms.map(|ms| ms / 1000),
                overdue: ob.overdue_now,
                failed: ob.failed,
            },
            webhook: WebhookView {
                state: webhook,
                in_flight: ob.in_flight,
                deliveries: ob.deliveries,
                retries: ob.retries,
                parked: ob.parked,
            },
            outages,
            flows: FlowsView {
                in_service: rl.flows,
                generation: rl.generation,
                loaded_at: UtcMs(rl.loaded_at_ms),
                last_reload: if rl.errors.is_empty() {
                    "applied"
                } else {
                    "refused"
                },
                reloads_refused: rl.refused,
                errors: rl.errors,
            },
            farm: self.farm.view(),
        }
    }

    /// `GET /status`, which carries residents' data (behind the ops token), and
    /// `GET /`, the page, which carries none: it asks for the token itself when
    /// `/status` answers 401, so that an operator's browser needs no proxy.
    pub fn routers(self) -> (Router, Router) {
        let data = Router::new()
            .route(
                "/status",
                get(|State(s): State<Arc<StatusSources>>| async move {
                    json(StatusCode::OK, &s.status())
                }),
            )
            .with_state(Arc::new(self));
        (data, Router::new().route("/", get(page)))
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}
