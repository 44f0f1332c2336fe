//! A ticket system that misbehaves, for the fault tests: raw TCP on 127.0.0.1, so that
//! it can send what an HTTP server library never would (silence, garbage, answers
//! that never end).
#![allow(dead_code)]

use super::receiver::{Req, read_request};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How an answer's body is delimited.
#[derive(Clone, Copy, Debug)]
pub enum Framing {
    ContentLength,
    Chunked,
    /// Neither: the body runs until the connection closes.
    UntilClose,
}

/// What the rogue does with a request, once it has read it.
#[derive(Clone, Debug)]
pub enum Act {
    /// A well-formed answer with an empty body.
    Status(u16),
    /// Nothing at all; the connection stays open.
    Silent,
    /// These bytes, then it closes.
    Raw(Vec<u8>),
    /// A head and `len` bytes of body, then it holds the connection open without
    /// ending the message: a client that read it all would wait for more until its
    /// timeout, so an attempt that ends early is one that stopped reading.
    Long {
        status: u16,
        len: usize,
        framing: Framing,
    },
    /// A 200 head for a 1000-byte body, then one byte every `every`.
    Drip { every: Duration },
    /// A status line, then header lines without end.
    EndlessHead,
}

/// Decides what to do with a request; the second argument counts the requests before it.
pub type Plan = Arc<dyn Fn(&Req, usize) -> Act + Send + Sync>;

pub struct Rogue {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Req>>>,
    cancel: CancellationToken,
    listening: Option<tokio::task::JoinHandle<()>>,
}

impl Rogue {
    /// Listens on `port` (0: any free one).
    pub async fn start(port: u16, plan: Plan) -> Rogue {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let (g, c) = (got.clone(), cancel.clone());
        let listening = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = c.cancelled() => return,
                };
                let Ok((sock, _)) = accepted else {
                    continue;
                };
                let (g, plan, c) = (g.clone(), plan.clone(), c.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(sock, g, plan) => {}
                        _ = c.cancelled() => {}
                    }
                });
            }
        });
        Rogue {
            addr,
            got,
            cancel,
            listening: Some(listening),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.got.lock().unwrap().clone()
    }

    /// The requests for the ticket of this caller.
    pub fn requests_of(&self, caller: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|j| j["caller"] == caller)
            })
            .collect()
    }

    /// Stops listening and drops every connection, held ones included; once it has
    /// returned the port is free for another receiver.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(l) = self.listening.take() {
            let _ = l.await;
        }
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(mut sock: TcpStream, got: Arc<Mutex<Vec<Req>>>, plan: Plan) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let n = {
        let mut g = got.lock().unwrap();
        g.push(req.clone());
        g.len() - 1
    };
    // Write errors end the answer: the client has hung up, which is what it should
    // do to most of these.
    match plan(&req, n) {
        Act::Status(status) => {
            let head =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
        Act::Silent => std::future::pending().await,
        Act::Raw(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Act::Long {
            status,
            len,
            framing,
        } => {
            let framing_header = match framing {
                Framing::ContentLength => format!("Content-Length: {len}\r\n"),
                Framing::Chunked => "Transfer-Encoding: chunked\r\n".into(),
                Framing::UntilClose => String::new(),
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n{framing_header}Connection: close\r\n\r\n"
            );
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece = vec![b'x'; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(piece.len());
                let sent = match framing {
                    Framing::Chunked => {
                        let mut c = format!("{n:x}\r\n").into_bytes();
                        c.extend_from_slice(&piece[..n]);
                        c.extend_from_slice(b"\r\n");
                        sock.write_all(&c).await
                    }
                    _ => sock.write_all(&piece[..n]).await,
                };
                if sent.is_err() {
                    return;
                }
                left -= n;
            }
            std::future::pending().await
        }
        Act::Drip { every } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..1000 {
                tokio::time::sleep(every).await;
                if sock.write_all(b"x").await.is_err() {
                    return;
                }
            }
        }
        Act::EndlessHead => {
            let line = format!("X-Filler: {}\r\n", "y".repeat(1000));
            let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
            while sock.write_all(&out).await.is_ok() {
                out = line.repeat(64).into_bytes();
            }
        }
    }
}
