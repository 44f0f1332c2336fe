//! The ops HTTP, kept to what operators need first: `GET /healthz`. Hand-written over
//! tokio, bounded in what it reads; the metrics and tickets issues grow it.
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/healthz` reports.
pub trait Health: Send + Sync {
    fn health(&self) -> String;
}

pub async fn serve(
    addr: SocketAddr,
    health: Arc<dyn Health>,
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
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let read =
                    tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                        .await;
                let Ok(Ok(n)) = read else { return };
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or("");
                let (status, body) = if line.starts_with("GET /healthz ") {
                    ("200 OK", health.health())
                } else {
                    ("404 Not Found", "not found: try GET /healthz\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(local)
}
