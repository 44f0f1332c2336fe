//! A ticket system stand-in for the webhook tests: a small HTTP/1.1 server on
//! 127.0.0.1 that records every request and answers as the test says.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Req {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("ticket JSON")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn key(&self) -> String {
        self.header("idempotency-key").to_string()
    }
    pub fn id(&self) -> i64 {
        self.json()["id"].as_i64().expect("id")
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Before the answer.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn after(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// Decides the answer to a request; the second argument counts the requests before it.
pub type Behave = Arc<dyn Fn(&Req, usize) -> Reply + Send + Sync>;

pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    pub async fn start(port: u16, behave: Behave) -> Receiver {
        Self::start_with(port, behave, Arc::new(Mutex::new(Vec::new()))).await
    }

    /// Keeps recording into `got`: a receiver restarted on the same port.
    pub async fn start_with(port: u16, behave: Behave, got: Arc<Mutex<Vec<Req>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let g = got.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let (g, behave) = (g.clone(), behave.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    let n = {
                        let mut g = g.lock().unwrap();
                        g.push(req.clone());
                        g.len() - 1
                    };
                    let reply = behave(&req, n);
                    tokio::time::sleep(reply.delay).await;
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(reply.body.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Receiver { addr, got, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.got.lock().unwrap().clone()
    }

    pub fn shared(&self) -> Arc<Mutex<Vec<Req>>> {
        self.got.clone()
    }

    /// Stops listening (connections being answered still are).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Waits for `n` requests in all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Req> {
        let end = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < end,
                "{} of {n} request(s) within {timeout:?}",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A port nothing listens on now (for a receiver that is down, then started there).
pub fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
