//! What a request must satisfy before any dialog logic sees it (RFC 3261 §8.2.1–8.2.3),
//! in the order the RFC gives: malformed (400), version (505), method (405/501), URI
//! scheme (416), Require (420), body (415), Accept (406).
use super::wire::{CSeq, Message, NameAddr, StartLine};

/// Methods this endpoint implements; written into `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY";
/// Known SIP methods that this endpoint does not serve: 405, not 501.
const NOT_ALLOWED: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "PUBLISH",
    "MESSAGE",
    "UPDATE",
    "PRACK",
    // We send REFER; we do not take transfers from callers.
    "REFER",
];
/// Option tags we understand in `Require` (none needed so far besides the basics).
const SUPPORTED: &[&str] = &["replaces", "norefersub"];
pub const SUPPORTED_HEADER: &str = "replaces, norefersub";

/// A rejection: status code plus the extra header lines the RFC asks for with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub extra: Vec<(&'static str, String)>,
}

impl Reject {
    fn new(code: u16) -> Reject {
        Reject {
            code,
            extra: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reject {
        self.extra.push((name, value.into()));
        self
    }
}

/// Returns the rejection for a request that must not reach dialog logic, if any.
pub fn check_request(msg: &Message) -> Result<(), Reject> {
    let StartLine::Request {
        method,
        uri,
        version,
    } = &msg.start
    else {
        return Ok(());
    };
    if !malformed(msg, method, uri).is_empty() {
        return Err(Reject::new(400));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Reject::new(505));
    }
    if NOT_ALLOWED.iter().any(|m| m == method) {
        return Err(Reject::new(405).with("Allow", ALLOW));
    }
    if !ALLOW.split(", ").any(|m| m == method) {
        return Err(Reject::new(501).with("Allow", ALLOW));
    }
    if !uri_scheme_ok(uri) {
        return Err(Reject::new(416));
    }
    // rsipstack's URI grammar decides whether the rest is a usable SIP URI.
    if rsipstack::sip::uri::parse_uri(uri).is_err() {
        return Err(Reject::new(400));
    }
    if method == "ACK" || method == "CANCEL" {
        // RFC 3261 §8.2.2.3: Require is not processed for these.
        return Ok(());
    }
    check_require(msg)?;
    check_body(msg, method)?;
    check_accept(msg, method)
}

/// Returns the grammar faults in a request (empty when it is well-formed enough).
pub fn malformed(msg: &Message, method: &str, uri: &str) -> Vec<&'static str> {
    let mut faults = msg.defects.clone();
    // A `?` may appear in the user part; after the host it starts URI headers, which
    // a Request-URI must not carry (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11).
    let host_part = uri.rsplit('@').next().unwrap_or_default();
    if uri.is_empty() || uri.starts_with('<') || host_part.contains('?') || !uri.contains(':') {
        faults.push("Request-URI");
    }
    if !version_syntax(msg) {
        faults.push("SIP-Version");
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        match msg.all(name).count() {
            0 => faults.push("missing mandatory header"),
            1 => {}
            _ => faults.push("single-valued header repeated"),
        }
    }
    if msg.all("Max-Forwards").count() > 1 || msg.all("Content-Type").count() > 1 {
        faults.push("single-valued header repeated");
    }
    match msg.top_via() {
        Some(v) if !v.bad_params => {}
        _ => faults.push("Via"),
    }
    match msg.get("CSeq").map(CSeq::parse) {
        Some(Some(c)) if c.method == method => {}
        Some(_) => faults.push("CSeq"),
        None => {}
    }
    for name in ["From", "To"] {
        if msg.get(name).is_some_and(|v| NameAddr::parse(v).is_err()) {
            faults.push("From/To");
        }
    }
    if msg
        .list("Contact")
        .any(|c| c != "*" && NameAddr::parse(c).is_err())
    {
        faults.push("Contact");
    }
    if msg
        .get("Max-Forwards")
        .is_some_and(|v| v.parse::<u8>().is_err())
    {
        faults.push("Max-Forwards");
    }
    if msg
        .get("Expires")
        .is_some_and(|v| v.parse::<u32>().is_err())
    {
        faults.push("Expires");
    }
    // RFC 3261 §20.17: the only zone is GMT.
    if msg.get("Date").is_some_and(|d| !d.ends_with(" GMT")) {
        faults.push("Date");
    }
    faults
}

fn version_syntax(msg: &Message) -> bool {
    let StartLine::Request { version, .. } = &msg.start else {
        return true;
    };
    let Some(v) = version
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(version.get(4..))
    else {
        return false;
    };
    match v.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

fn uri_scheme_ok(uri: &str) -> bool {
    let scheme = uri.split(':').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

fn check_require(msg: &Message) -> Result<(), Reject> {
    let unknown: Vec<&str> = msg
        .list("Require")
        .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Reject::new(420).with("Unsupported", unknown.join(", ")))
    }
}

fn check_body(msg: &Message, method: &str) -> Result<(), Reject> {
    let encoding_ok = msg
        .list("Content-Encoding")
        .all(|e| e.is_empty() || e.eq_ignore_ascii_case("identity"));
    if !encoding_ok {
        return Err(Reject::new(415).with("Accept-Encoding", "identity"));
    }
    if method != "INVITE" || msg.body.is_empty() {
        return Ok(());
    }
    match msg.content_type().as_deref() {
        Some("application/sdp") => Ok(()),
        _ => Err(Reject::new(415).with("Accept", "application/sdp")),
    }
}

/// RFC 3261 §8.2.3: a UAS that would answer with a body the caller cannot take says 406.
fn check_accept(msg: &Message, method: &str) -> Result<(), Reject> {
    if method != "INVITE" || msg.get("Accept").is_none() {
        return Ok(());
    }
    let takes_sdp = msg.list("Accept").any(|a| {
        let t = a.split(';').next().unwrap_or_default().trim();
        ["application/sdp", "application/*", "*/*"]
            .iter()
            .any(|ok| ok.eq_ignore_ascii_case(t))
    });
    if takes_sdp {
        Ok(())
    } else {
        Err(Reject::new(406).with("Accept", "application/sdp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::wire::parse;

    fn verdict(head: &str) -> Result<(), Reject> {
        let raw = format!(
            "{head}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let (m, _) = parse(raw.as_bytes(), false)
            .expect("framed")
            .expect("whole");
        check_request(&m)
    }

    #[test]
    fn the_rfc_order_of_rejections() {
        let code = |r: Result<(), Reject>| r.err().map(|r| r.code);
        assert_eq!(
            code(verdict("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS")),
            None
        );
        assert_eq!(
            code(verdict("OPTIONS sip:a@b SIP/7.0\r\nCSeq: 1 OPTIONS")),
            Some(505)
        );
        assert_eq!(
            code(verdict("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 INVITE")),
            Some(400)
        );
        assert_eq!(
            code(verdict("FOO sip:a@b SIP/2.0\r\nCSeq: 1 FOO")),
            Some(501)
        );
        assert_eq!(
            code(verdict("REGISTER sip:b SIP/2.0\r\nCSeq: 1 REGISTER")),
            Some(405)
        );
        assert_eq!(
            code(verdict("OPTIONS x:y SIP/2.0\r\nCSeq: 1 OPTIONS")),
            Some(416)
        );
        assert_eq!(
            code(verdict(
                "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nRequire: foo"
            )),
            Some(420)
        );
        assert_eq!(
            code(verdict("OPTIONS sip:a@b SIP/2.0 \r\nCSeq: 1 OPTIONS")),
            Some(400)
        );
    }
}
