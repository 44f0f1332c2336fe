//! Writing SIP text: responses built from the request they answer (RFC 3261 §8.2.6)
//! and in-dialog requests (§12.2.1.1). Header names are always the canonical long
//! forms, whatever the peer used.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::wire::{Message, Via, split_commas};

/// The start of every RFC 3261 branch (§8.1.1.7): a branch without it comes from an
/// RFC 2543 element and is not known to be unique.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// A new branch for a request hotline sends: the magic cookie and a unique token.
pub fn new_branch() -> String {
    format!("{BRANCH_MAGIC}{}", unique_token())
}

pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirection",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

/// Where a UDP response goes (RFC 3261 §18.2.2 with RFC 3581 §4): the source address
/// when `rport` was asked for, else the source IP with the Via port.
pub fn response_destination(via: &Via, src: SocketAddr) -> SocketAddr {
    if via.param("rport").is_some() {
        src
    } else {
        SocketAddr::new(src.ip(), via.port.unwrap_or(5060))
    }
}

/// The top Via as sent back: `received` always (cheap, and RFC 3581 requires it with
/// `rport`), `rport` filled with the source port when the client asked for it.
fn stamped_via(via: &Via, src: SocketAddr) -> String {
    let mut out = format!("SIP/2.0/{} {}", via.transport, via.host);
    if let Some(p) = via.port {
        let _ = write!(out, ":{p}");
    }
    for (name, value) in &via.params {
        match (name.as_str(), value) {
            ("received", _) => continue,
            ("rport", _) => {
                let _ = write!(out, ";rport={}", src.port());
            }
            (n, Some(v)) => {
                let _ = write!(out, ";{n}={v}");
            }
            (n, None) => {
                let _ = write!(out, ";{n}");
            }
        }
    }
    let _ = write!(out, ";received={}", src.ip());
    out
}

/// A response to `req`. `to_tag` is added to To when To has none (never on 100).
pub struct ResponseSpec<'a> {
    pub code: u16,
    pub to_tag: Option<&'a str>,
    pub extra: &'a [(&'a str, String)],
    pub body: Option<(&'a str, &'a str)>,
    pub user_agent: &'a str,
}

pub fn response(req: &Message, src: SocketAddr, spec: &ResponseSpec<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {} {}\r\n", spec.code, reason(spec.code));
    let mut first = true;
    for via in req.list("Via") {
        match Via::parse(via).filter(|_| first) {
            Some(top) => {
                let _ = write!(out, "Via: {}\r\n", stamped_via(&top, src));
            }
            None => {
                let _ = write!(out, "Via: {via}\r\n");
            }
        }
        first = false;
    }
    if let Some(from) = req.get("From") {
        let _ = write!(out, "From: {from}\r\n");
    }
    if let Some(to) = req.get("To") {
        let _ = write!(out, "To: {to}");
        if let Some(tag) = spec
            .to_tag
            .filter(|_| spec.code > 100 && req.to_tag().is_none())
        {
            let _ = write!(out, ";tag={tag}");
        }
        out.push_str("\r\n");
    }
    if let Some(id) = req.call_id() {
        let _ = write!(out, "Call-ID: {id}\r\n");
    }
    if let Some(cseq) = req.get("CSeq") {
        let _ = write!(out, "CSeq: {cseq}\r\n");
    }
    finish(out, spec.extra, spec.body, spec.user_agent, "Server")
}

fn finish(
    mut out: String,
    extra: &[(&str, String)],
    body: Option<(&str, &str)>,
    agent: &str,
    agent_header: &str,
) -> Vec<u8> {
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if !agent.is_empty() {
        let _ = write!(out, "{agent_header}: {agent}\r\n");
    }
    match body {
        Some((ctype, text)) => {
            let _ = write!(
                out,
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out.into_bytes()
}

/// What an in-dialog request needs from the dialog.
pub struct RequestSpec<'a> {
    pub method: &'a str,
    pub request_uri: &'a str,
    pub via_sent_by: &'a str,
    pub transport: &'a str,
    pub branch: &'a str,
    pub routes: &'a [String],
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub contact: &'a str,
    pub extra: &'a [(&'a str, String)],
    pub body: Option<(&'a str, &'a str)>,
    pub user_agent: &'a str,
}

pub fn request(spec: &RequestSpec<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{m} {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {sb};branch={b};rport\r\nMax-Forwards: 70\r\n",
        m = spec.method,
        uri = spec.request_uri,
        t = spec.transport,
        sb = spec.via_sent_by,
        b = spec.branch
    );
    for route in spec.routes {
        let _ = write!(out, "Route: {route}\r\n");
    }
    let _ = write!(
        out,
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContact: {}\r\n",
        spec.from, spec.to, spec.call_id, spec.cseq, spec.method, spec.contact
    );
    finish(out, spec.extra, spec.body, spec.user_agent, "User-Agent")
}

/// Splits a Record-Route header list into the route set, in received order.
pub fn route_set(req: &Message) -> Vec<String> {
    req.all("Record-Route")
        .flat_map(split_commas)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A unique-enough token for tags and branches: a per-process seed mixed with a
/// counter, so no two dialogs or transactions of this process collide.
pub fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(unique_token_seed);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", splitmix(seed.wrapping_add(n)))
}

/// The To tag of a response sent without keeping state: the same for every
/// retransmission of one request (RFC 3261 §8.2.7), unguessable across processes.
pub fn stateless_tag(req: &Message) -> String {
    use std::hash::{Hash, Hasher};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| splitmix(unique_token_seed()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    for name in ["Call-ID", "From", "Via", "CSeq"] {
        req.get(name).hash(&mut h);
    }
    format!("{:016x}", splitmix(h.finish()))
}

/// `secs` spread over [2/3·secs, 4/3·secs] by the same hash as [`stateless_tag`]: a
/// retransmission is told the same, and callers refused together come back apart.
pub fn spread_secs(req: &Message, secs: u32) -> u32 {
    let h = u64::from_str_radix(&stateless_tag(req), 16).unwrap_or(0);
    let lo = secs - secs / 3;
    let width = u64::from(secs / 3) * 2 + 1;
    lo + (h % width) as u32
}

fn unique_token_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::wire::parse;

    fn invite(call_id: &str) -> Message {
        let raw = format!(
            "INVITE sip:property@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{call_id}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:property@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        parse(raw.as_bytes(), false)
            .ok()
            .flatten()
            .map(|(m, _)| m)
            .expect("a valid INVITE")
    }

    #[test]
    fn a_spread_retry_after_stays_in_its_band_differs_by_call_and_repeats_for_one() {
        let waits: Vec<u32> = (0..200)
            .map(|i| spread_secs(&invite(&format!("c{i}")), 30))
            .collect();
        assert!(waits.iter().all(|w| (20..=40).contains(w)), "{waits:?}");
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 10, "spread: {distinct:?}");
        let m = invite("same");
        assert_eq!(spread_secs(&m, 30), spread_secs(&invite("same"), 30));
        assert_eq!(spread_secs(&m, 1), 1);
    }
}
