//! The outbox on the ops HTTP: `GET /tickets[?state=S]`, `GET /tickets/ID`,
//! `POST /tickets/ID/retry`, `GET /outbox` (the stats), and the recordings the ticket
//! system fetches, `GET /recordings/TOKEN/N`.
use super::outbox::OutboxHandle;
use super::payload;
use crate::server::http::{error, json};
use crate::store::{Delivery, StoreHandle, TicketId};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// A recording bigger than this is not served (the calls' recordings are far smaller).
const MAX_RECORDING: u64 = 100 * 1024 * 1024;

pub struct TicketRoutes {
    pub store: StoreHandle,
    pub outbox: OutboxHandle,
}

type Shared = State<Arc<TicketRoutes>>;

impl TicketRoutes {
    /// The operators' routes, and apart from them the recordings, which the ticket
    /// system fetches with the unguessable link tokens alone.
    pub fn routers(self) -> (Router, Router) {
        let shared = Arc::new(self);
        let ops = Router::new()
            .route("/tickets", get(list))
            .route("/tickets/{id}", get(show))
            .route("/tickets/{id}/retry", post(retry))
            .route("/outbox", get(outbox))
            .with_state(shared.clone());
        let recordings = Router::new()
            .route("/recordings/{token}/{n}", get(recording))
            .with_state(shared);
        (ops, recordings)
    }
}

async fn list(State(t): Shared, RawQuery(query): RawQuery) -> Response {
    let mut state = None;
    for kv in query.as_deref().unwrap_or("").split('&') {
        if kv.is_empty() {
            continue;
        }
        match kv.split_once('=') {
            Some(("state", v)) => match Delivery::from_name(v) {
                Some(d) => state = Some(d),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("state '{v}': pending, delivered or failed"),
                    );
                }
            },
            _ => return error(StatusCode::BAD_REQUEST, format!("unknown parameter '{kv}'")),
        }
    }
    match t.store.list_tickets(state).await {
        Ok(list) => json(StatusCode::OK, &list),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

fn ticket_id(id: &str) -> Option<TicketId> {
    id.parse::<i64>().ok().map(TicketId)
}

fn no_ticket(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no ticket '{id}'"))
}

async fn show(State(t): Shared, Path(id): Path<String>) -> Response {
    let Some(id) = ticket_id(&id) else {
        return no_ticket(&id);
    };
    match t.store.get_ticket(id).await {
        Ok(Some(found)) => json(StatusCode::OK, &found),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no ticket {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn retry(State(t): Shared, Path(id): Path<String>) -> Response {
    let Some(id) = ticket_id(&id) else {
        return no_ticket(&id);
    };
    match t.store.retry_ticket(id).await {
        Ok(Some(found)) if found.delivery == Delivery::Delivered => error(
            StatusCode::CONFLICT,
            format!("ticket {id} is already delivered"),
        ),
        Ok(Some(found)) => {
            t.outbox.wake();
            json(StatusCode::OK, &found)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no ticket {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn outbox(State(t): Shared) -> Response {
    json(StatusCode::OK, &t.outbox.stats())
}

async fn recording(State(t): Shared, Path((token, n)): Path<(String, String)>) -> Response {
    // Everything that is not a well-formed, known token and index is the same 404,
    // so the answers tell a guesser nothing.
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let Ok(n) = n.parse::<usize>() else {
        return not_found();
    };
    let found = match t.store.ticket_by_token(token.to_ascii_lowercase()).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let Some(path) = found.recordings.get(n) else {
        return not_found();
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(ticket = %found.id, %path, error = %e, "recording asked for is missing");
            return not_found();
        }
    };
    let len = match file.metadata().await {
        Ok(m) if m.len() > MAX_RECORDING => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "recording too large");
        }
        Ok(m) => m.len(),
        Err(e) => {
            tracing::warn!(ticket = %found.id, %path, error = %e, "cannot read a recording");
            return not_found();
        }
    };
    // Streamed: a slow reader holds a 64 KiB buffer, not the whole file.
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    (
        [
            (
                header::CONTENT_TYPE,
                payload::content_type(path).to_string(),
            ),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}
