//! Helpers for hotline's integration tests: dial a server from a real SIP
//! client (PJSIP through `tests/callers/pjcall.py`) over 127.0.0.1, and check
//! what was heard, when, and what arrived.
//!
//! Use from a test file as `mod common;`. Every external process runs with a
//! timeout; a missing tool fails the test with a message that says to run
//! `tests/callers/INSTALL.sh` (nothing is skipped silently).
//!
//! - [`ports`]: free UDP/TCP ports and UDP port ranges on 127.0.0.1.
//! - [`pjcall`]: run `pjcall.py` and parse its JSON report.
//! - [`wav`]: read/write WAVs, split a recording into talk spurts.
//! - [`audio`]: caller audio: committed fixtures, sox and espeak-ng at test time.
//! - [`server`]: a guard that starts a process, waits until it is ready, and
//!   kills it on drop.
//! - [`hotline`]: `hotline serve` on its own ports and data, and reading it back.
//! - [`sipp`]: SIPp as a UAS, a stand-in server for the harness's own tests.
//! - [`tools`]: tool checks and running a command with a timeout.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod audio;
pub mod hotline;
pub mod pjcall;
pub mod ports;
pub mod server;
pub mod sipp;
pub mod tools;
pub mod torture;
pub mod wav;

use std::path::PathBuf;

/// A path inside the repository (the crate root).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection: the status and the
/// body as sent (chunked bodies are left as they are).
pub fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    let a = http_send(port, method, path, &[], b"");
    (a.status, a.body)
}

/// What [`http_send`] got back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// The head's header lines, as sent.
    pub head: String,
    pub body: String,
}

impl HttpAnswer {
    /// A header's value (the name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request with these extra headers and this body, on a fresh connection.
pub fn http_send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connected");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("request sent");
    // The server may answer (413, 401) before reading a large body, and close.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    HttpAnswer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
