//! RFC 4475 torture messages (tests/fixtures/rfc4475, MIT-licensed copies, see the
//! licence file there): what the RFC expects of each, and how to move their addresses
//! onto loopback so that nothing a server answers can leave the machine.
use regex::bytes::Regex;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This final status (provisional responses before it are fine).
    Final(u16),
    /// No answer at all: a response we never asked for, or nowhere to route one.
    Dropped,
}
use Expect::{Dropped, Final};

/// The user the harness answers; every other INVITE is turned down with 486.
pub const SURVIVOR: &str = "survivor";

pub const TABLE: &[(&str, Expect)] = &[
    // §3.1.1 valid messages: answered, never with 400.
    ("wsinv", Final(481)),   // 3.1.1.1: valid, but To has a tag: no such dialog
    ("intmeth", Final(501)), // 3.1.1.2: unknown (valid) method
    ("esc01", Final(486)),   // 3.1.1.3: a new call; the harness is busy
    ("escnull", Final(405)), // 3.1.1.4: REGISTER; we are no registrar
    ("esc02", Final(501)),   // 3.1.1.5: RE%47IST%45R is not REGISTER
    ("lwsdisp", Final(200)), // 3.1.1.6
    ("longreq", Final(486)), // 3.1.1.7
    ("dblreq", Final(405)),  // 3.1.1.8: the REGISTER; the trailing INVITE is ignored
    ("semiuri", Final(200)), // 3.1.1.9
    ("transports", Final(200)), // 3.1.1.10
    ("mpart01", Final(405)), // 3.1.1.11: MESSAGE
    ("unreason", Dropped),   // 3.1.1.12: a response to nothing of ours
    ("noreason", Dropped),   // 3.1.1.13: a response to nothing of ours
    // §3.1.2 invalid messages: 400 where a response can be routed.
    ("badinv01", Final(400)),   // 3.1.2.1
    ("clerr", Final(400)),      // 3.1.2.2: Content-Length larger than the message
    ("ncl", Final(400)),        // 3.1.2.3: negative Content-Length
    ("scalar02", Final(400)),   // 3.1.2.4
    ("scalarlg", Dropped),      // 3.1.2.5: a response
    ("quotbal", Final(400)),    // 3.1.2.6
    ("ltgtruri", Final(400)),   // 3.1.2.7
    ("lwsruri", Final(400)),    // 3.1.2.8
    ("lwsstart", Final(400)),   // 3.1.2.9
    ("trws", Final(400)),       // 3.1.2.10
    ("escruri", Final(400)),    // 3.1.2.11
    ("baddate", Final(400)),    // 3.1.2.12
    ("regbadct", Final(400)),   // 3.1.2.13
    ("badaspec", Final(400)),   // 3.1.2.14
    ("baddn", Final(400)),      // 3.1.2.15
    ("badvers", Final(505)),    // 3.1.2.16
    ("mismatch01", Final(400)), // 3.1.2.17
    ("mismatch02", Final(400)), // 3.1.2.18
    ("bigcode", Dropped),       // 3.1.2.19: a response with a 10-digit code
    // §3.2 transaction layer.
    ("badbranch", Final(200)), // 3.2.1: accepted (the RFC allows 400 or accepting)
    // §3.3 application layer.
    ("insuf", Final(400)),    // 3.3.1: missing Call-ID/From/To
    ("unkscm", Final(416)),   // 3.3.2
    ("novelsc", Final(416)),  // 3.3.3
    ("unksm2", Final(405)),   // 3.3.4: REGISTER
    ("bext01", Final(420)),   // 3.3.5
    ("invut", Final(415)),    // 3.3.6
    ("regaut01", Final(405)), // 3.3.7: REGISTER
    ("multi01", Final(400)),  // 3.3.8
    ("mcl01", Final(400)),    // 3.3.9
    ("bcast", Dropped),       // 3.3.10: a response
    ("zeromf", Final(200)),   // 3.3.11: Max-Forwards 0 is for proxies; we are the UAS
    ("cparam01", Final(405)), // 3.3.12: REGISTER
    ("cparam02", Final(405)), // 3.3.13: REGISTER
    ("regescrt", Final(405)), // 3.3.14: REGISTER
    ("sdp01", Final(406)),    // 3.3.15
    // §3.4 backward compatibility.
    ("inv2543", Final(486)), // 3.4.1: RFC 2543 INVITE, no branch, no Max-Forwards
    // Not from RFC 4475 (an extra message of the fixture set): no Via, no version.
    ("test", Dropped),
];

/// Moves every address onto loopback. Hosts and IPs in the header section become
/// `127.0.0.1:port` (so responses come back to the test); IPs in a body become
/// `127.0.0.1`, and Content-Length follows, unless the message's point is a wrong
/// Content-Length (then the body is left alone and the mismatch survives).
pub fn loopback(raw: &[u8], port: u16) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let (head, body) = raw.split_at(split);
    // `examle.com` is the RFC's own typo in trws's Via.
    let host = Regex::new(
        r"(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?|(?:[A-Za-z0-9-]+\.)*examp?le\.(?:com|net|org|edu)(?::\d+)?",
    )
    .expect("regex");
    let to = format!("127.0.0.1:{port}");
    let head = host.replace_all(head, to.as_bytes()).into_owned();
    let head = String::from_utf8_lossy(&head).into_owned();
    let is_length = |line: &str| {
        line.split_once(':').is_some_and(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l")
        })
    };
    let lengths: Vec<&str> = head.split("\r\n").filter(|l| is_length(l)).collect();
    let declared = match lengths.as_slice() {
        [one] => one
            .split_once(':')
            .and_then(|(_, v)| v.trim().parse::<usize>().ok()),
        _ => None,
    };
    if declared != Some(body.len()) {
        return [head.as_bytes(), body].concat();
    }
    let ip = Regex::new(r"(?:\d{1,3}\.){3}\d{1,3}").expect("regex");
    let body = ip.replace_all(body, &b"127.0.0.1"[..]).into_owned();
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| match l.split_once(':') {
            Some((name, _)) if is_length(l) => format!("{name}: {}", body.len()),
            _ => l.to_owned(),
        })
        .collect();
    let head = head.join("\r\n").into_bytes();
    [head, body].concat()
}

/// Sends one fixture from its own socket and returns the first final response's code.
pub fn final_code_blocking(server: SocketAddr, name: &str) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let port = sock.local_addr().ok()?.port();
    let raw = std::fs::read(super::repo_path(&format!(
        "tests/fixtures/rfc4475/{name}.dat"
    )))
    .ok()?;
    sock.send_to(&loopback(&raw, port), server).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .ok()?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..10 {
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        let code = std::str::from_utf8(buf.get(8..11.min(n))?)
            .ok()?
            .parse::<u16>()
            .ok()?;
        if code >= 200 {
            return Some(code);
        }
    }
    None
}
