//! The ops HTTP: `GET /healthz`, and whatever [`Routes`] the server adds (tickets and
//! recordings). Hand-written over tokio and bounded in what it reads: one request a
//! connection, a head of at most 8 KiB, no request bodies.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/healthz` reports.
pub trait Health: Send + Sync {
    fn health(&self) -> String;
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    pub fn json<T: serde::Serialize>(status: u16, v: &T) -> Response {
        let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }
}

pub type RouteFuture<'a> = Pin<Box<dyn Future<Output = Option<Response>> + Send + 'a>>;

/// Routes beyond `/healthz`.
pub trait Routes: Send + Sync {
    /// None: the path is not this router's.
    fn handle<'a>(&'a self, method: &'a str, target: &'a str) -> RouteFuture<'a>;
}

/// Several routers, asked in turn.
pub struct RouteList(pub Vec<Arc<dyn Routes>>);

impl Routes for RouteList {
    fn handle<'a>(&'a self, method: &'a str, target: &'a str) -> RouteFuture<'a> {
        Box::pin(async move {
            for r in &self.0 {
                if let Some(resp) = r.handle(method, target).await {
                    return Some(resp);
                }
            }
            None
        })
    }
}

/// Several parts of `/healthz`, one after the other.
pub struct HealthList(pub Vec<Arc<dyn Health>>);

impl Health for HealthList {
    fn health(&self) -> String {
        self.0.iter().map(|h| h.health()).collect()
    }
}

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn serve(
    addr: SocketAddr,
    health: Arc<dyn Health>,
    routes: Arc<dyn Routes>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = cancel.cancelled() => return,
            };
            let Ok((mut sock, _)) = conn else { continue };
            let health = health.clone();
            let routes = routes.clone();
            tokio::spawn(async move {
                let Ok(Some(line)) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut sock))
                    .await
                    .unwrap_or(Ok(None))
                else {
                    return;
                };
                let mut parts = line.split(' ');
                let method = parts.next().unwrap_or("");
                let target = parts.next().unwrap_or("");
                let resp = if method == "GET" && target == "/healthz" {
                    Response::text(200, health.health())
                } else {
                    routes.handle(method, target).await.unwrap_or_else(|| {
                        Response::text(
                            404,
                            "not found: try GET /healthz, /tickets, /outbox or /reload\n",
                        )
                    })
                };
                let head = format!(
                    "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    resp.status,
                    reason(resp.status),
                    resp.content_type,
                    resp.body.len()
                );
                let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                    sock.write_all(head.as_bytes()).await?;
                    sock.write_all(&resp.body).await
                })
                .await;
            });
        }
    });
    Ok(local)
}

/// The request line, once the whole head is in; None for a head too long or cut off.
async fn read_head(sock: &mut tokio::net::TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
    let head = String::from_utf8_lossy(&buf);
    Ok(head.lines().next().map(str::to_string))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}
