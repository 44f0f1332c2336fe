//! The outbox on the ops HTTP: `GET /tickets[?state=S]`, `GET /tickets/ID`,
//! `POST /tickets/ID/retry`, `GET /outbox` (the stats), and the recordings the ticket
//! system fetches, `GET /recordings/TOKEN/N`.
use super::outbox::OutboxHandle;
use super::payload;
use crate::server::http::{Response, RouteFuture, Routes};
use crate::store::{Delivery, StoreHandle, TicketId};

/// A recording bigger than this is not served (the calls' recordings are far smaller).
const MAX_RECORDING: u64 = 100 * 1024 * 1024;

pub struct TicketRoutes {
    pub store: StoreHandle,
    pub outbox: OutboxHandle,
}

impl Routes for TicketRoutes {
    fn handle<'a>(&'a self, method: &'a str, target: &'a str) -> RouteFuture<'a> {
        Box::pin(self.route(method, target))
    }
}

fn error(status: u16, msg: impl std::fmt::Display) -> Response {
    Response::json(status, &serde_json::json!({ "error": msg.to_string() }))
}

impl TicketRoutes {
    async fn route(&self, method: &str, target: &str) -> Option<Response> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match (method, segs.as_slice()) {
            ("GET", ["tickets"]) => self.list(query).await,
            ("GET", ["tickets", id]) => self.show(id).await,
            ("POST", ["tickets", id, "retry"]) => self.retry(id).await,
            ("GET", ["outbox"]) => Response::json(200, &self.outbox.stats()),
            ("GET", ["recordings", token, n]) => self.recording(token, n).await,
            (_, ["tickets", ..] | ["outbox"] | ["recordings", ..]) => {
                error(405, format!("{method} {path}: not allowed"))
            }
            _ => return None,
        })
    }

    async fn list(&self, query: &str) -> Response {
        let mut state = None;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("state", v)) => match Delivery::from_name(v) {
                    Some(d) => state = Some(d),
                    None => {
                        return error(400, format!("state '{v}': pending, delivered or failed"));
                    }
                },
                _ => return error(400, format!("unknown parameter '{kv}'")),
            }
        }
        match self.store.list_tickets(state).await {
            Ok(t) => Response::json(200, &t),
            Err(e) => error(503, e),
        }
    }

    async fn show(&self, id: &str) -> Response {
        let Ok(id) = id.parse::<i64>() else {
            return error(404, format!("no ticket '{id}'"));
        };
        match self.store.get_ticket(TicketId(id)).await {
            Ok(Some(t)) => Response::json(200, &t),
            Ok(None) => error(404, format!("no ticket {id}")),
            Err(e) => error(503, e),
        }
    }

    async fn retry(&self, id: &str) -> Response {
        let Ok(id) = id.parse::<i64>() else {
            return error(404, format!("no ticket '{id}'"));
        };
        match self.store.retry_ticket(TicketId(id)).await {
            Ok(Some(t)) if t.delivery == Delivery::Delivered => {
                error(409, format!("ticket {id} is already delivered"))
            }
            Ok(Some(t)) => {
                self.outbox.wake();
                Response::json(200, &t)
            }
            Ok(None) => error(404, format!("no ticket {id}")),
            Err(e) => error(503, e),
        }
    }

    async fn recording(&self, token: &str, n: &str) -> Response {
        // Everything that is not a well-formed, known token and index is the same 404,
        // so the answers tell a guesser nothing.
        let not_found = || Response::text(404, "not found\n");
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return not_found();
        }
        let Ok(n) = n.parse::<usize>() else {
            return not_found();
        };
        let t = match self.store.ticket_by_token(token.to_ascii_lowercase()).await {
            Ok(Some(t)) => t,
            Ok(None) => return not_found(),
            Err(e) => return error(503, e),
        };
        let Some(path) = t.recordings.get(n) else {
            return not_found();
        };
        match tokio::fs::metadata(path).await {
            Ok(m) if m.len() > MAX_RECORDING => return error(413, "recording too large"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(ticket = %t.id, %path, error = %e, "recording asked for is missing");
                return not_found();
            }
        }
        match tokio::fs::read(path).await {
            Ok(body) => Response {
                status: 200,
                content_type: payload::content_type(path),
                body,
            },
            Err(e) => {
                tracing::warn!(ticket = %t.id, %path, error = %e, "cannot read a recording");
                not_found()
            }
        }
    }
}
