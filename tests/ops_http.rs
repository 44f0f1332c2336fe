//! The ops HTTP's limits, against the real server (`server::http`) on 127.0.0.1 with
//! short timeouts: a client that stalls is cut off, an oversized body is refused, and
//! too many requests at once are shed rather than queued.
use axum::Router;
use axum::routing::{get, post};
use hotline::server::http::{self, Health, Limits};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Up;
impl Health for Up {
    fn health(&self) -> String {
        "ok\n".into()
    }
}

fn limits() -> Limits {
    Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(500),
        stall_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        max_body: 1024,
        max_in_flight: 2,
    }
}

/// A server with two routes of its own: one that reads the body, one that waits.
async fn start() -> (SocketAddr, CancellationToken) {
    let l = limits();
    let pieces = Router::new()
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slept\n"
            }),
        );
    let app = http::router(Arc::new(Up), vec![pieces]);
    let cancel = CancellationToken::new();
    let addr = http::serve(([127, 0, 0, 1], 0).into(), app, l, cancel.clone())
        .await
        .expect("bound");
    (addr, cancel)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connected");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes; the status of the first answer (0: none).
fn read_all(mut s: TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Waits (bounded) for the server to close `s`; true if it did.
fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_greedy_client_holds_nothing_for_long() {
    let (addr, cancel) = start().await;

    let checks = tokio::task::spawn_blocking(move || {
        // Half a request head, then nothing: cut off at the header timeout.
        let mut s = connect(addr);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(closed_by_server(s), "a stalled head must be cut off");

        // A kept-alive connection left idle is closed too.
        let mut s = connect(addr);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        assert!(closed_by_server(s), "an idle connection must be closed");

        // A body over the limit is refused before it is read.
        let mut s = connect(addr);
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let (status, text) = read_all(s);
        assert_eq!(status, 413, "{text}");

        // The same for a chunked body that only turns out too long as it comes.
        let mut s = connect(addr);
        let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..4 {
            req.extend_from_slice(b"200\r\n");
            req.extend_from_slice(&[b'a'; 0x200]);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&req).unwrap();
        let (status, text) = read_all(s);
        assert_eq!(status, 413, "{text}");

        // A body announced but never sent: the request times out (408).
        let mut s = connect(addr);
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc",
        )
        .unwrap();
        let (status, text) = read_all(s);
        assert_eq!(status, 408, "{text}");

        // A head too long for the buffer is refused, not buffered.
        let mut s = connect(addr);
        let mut req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: ".to_vec();
        req.extend(std::iter::repeat_n(b'j', 64 * 1024));
        let _ = s.write_all(&req);
        let (status, _) = read_all(s);
        assert!(status == 431 || status == 0, "status {status}");

        // Garbage instead of HTTP: 400 and closed.
        let mut s = connect(addr);
        s.write_all(b"\x16\x03\x01 hello, this is not HTTP\r\n\r\n")
            .unwrap();
        let (status, text) = read_all(s);
        assert_eq!(status, 400, "{text}");

        // More requests at once than allowed in flight: the extra ones are shed (503).
        let slow: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = connect(addr);
                    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .unwrap();
                    read_all(s).0
                })
            })
            .collect();
        let mut codes: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
        codes.sort();
        assert!(codes.contains(&200) && codes.contains(&503), "{codes:?}");

        // And the server still answers.
        let mut s = connect(addr);
        s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (status, text) = read_all(s);
        assert_eq!(status, 404, "{text}");
        assert!(text.contains("/healthz"), "{text}");
    });
    tokio::time::timeout(Duration::from_secs(60), checks)
        .await
        .expect("checks finish")
        .expect("checks pass");
    cancel.cancel();
}
