//! The ops HTTP: axum over hyper, one [`Router`] merged from pieces (`/healthz` here;
//! tickets, reload, metrics and status from their own modules), each piece carrying
//! its own shared state. Handlers stay thin: they call into the piece's state and turn
//! its answer into a response.
//!
//! Limits, so that a slow or hostile client holds neither a task nor memory for long:
//! - connections: at most [`Limits::max_connections`] at once; a new one closes the
//!   oldest idle connection to make room ([`super::conns`]), so idle sockets cannot
//!   keep a real request waiting;
//! - the request head: [`Limits::header_timeout`] to arrive whole (also the idle time
//!   between requests on a kept-alive connection), at most 16 KiB;
//! - a socket that neither reads nor writes for [`Limits::stall_timeout`] is closed,
//!   so a client that stops reading an answer does not hold it;
//! - request bodies: at most [`Limits::max_body`] (413), and the whole request,
//!   body included, within [`Limits::request_timeout`] (408);
//! - requests in flight: at most [`Limits::max_in_flight`], beyond that 503 at once.
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// What `/healthz` reports.
pub trait Health: Send + Sync {
    fn health(&self) -> String;
}

/// Several parts of `/healthz`, one after the other.
pub struct HealthList(pub Vec<Arc<dyn Health>>);

impl Health for HealthList {
    fn health(&self) -> String {
        self.0.iter().map(|h| h.health()).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub stall_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body: usize,
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_body: 1024 * 1024,
            max_in_flight: 64,
        }
    }
}

/// Largest request head hyper buffers (its minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// A JSON answer, pretty-printed for operators who read it with curl.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `{"error": "..."}` with a status.
pub fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    json(status, &serde_json::json!({ "error": msg.to_string() }))
}

/// The ops router: `/healthz`, the pieces, and a 404 that says what there is. The
/// limits go around all of it in [`serve`].
pub fn router(health: Arc<dyn Health>, pieces: Vec<Router>) -> Router {
    let mut app = Router::new().route(
        "/healthz",
        get(move || {
            let h = health.clone();
            async move { h.health() }
        }),
    );
    for p in pieces {
        app = app.merge(p);
    }
    app.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            "not found: try GET /, /status, /metrics, /healthz, /tickets, /outbox, /outages or /reload\n",
        )
    })
}

async fn shed(_: tower::BoxError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        "busy: too many requests in flight, try again\n",
    )
        .into_response()
}

/// Binds `addr` and serves `app` until `cancel`; the bound address comes back at once.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let table = super::conns::Conns::new(limits.max_connections);
    // One stack for the whole server: the in-flight limit counts every route together.
    let service = ServiceBuilder::new()
        // Outermost: turns shed load into an answer (hyper wants one for every request).
        .layer(HandleErrorLayer::new(shed))
        .load_shed()
        .concurrency_limit(limits.max_in_flight.max(1))
        .layer(RequestBodyLimitLayer::new(limits.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .service(app);
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = cancel.cancelled() => return,
            };
            let Ok((sock, _)) = conn else {
                // Out of descriptors: give the closing connections a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // Every connection busy with a request: this one is closed at once.
            let Some(slot) = table.admit() else { continue };
            let _ = sock.set_nodelay(true);
            let mut io = TimeoutStream::new(sock);
            io.set_read_timeout(Some(limits.stall_timeout));
            io.set_write_timeout(Some(limits.stall_timeout));
            let inner = service.clone();
            let busy = slot.busy.clone();
            let counted =
                tower::service_fn(move |req: axum::extract::Request<hyper::body::Incoming>| {
                    let mark = super::conns::Busy::new(busy.clone());
                    let call = tower::ServiceExt::oneshot(inner.clone(), req);
                    async move {
                        let answer = call.await;
                        drop(mark);
                        answer
                    }
                });
            let service = TowerToHyperService::new(counted);
            let header_timeout = limits.header_timeout;
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(TokioIo::new(Box::pin(io)), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    // Closed to make room for a newer connection.
                    _ = slot.close.cancelled() => {}
                    _ = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
    });
    Ok(local)
}
