//! SIP message framing and the header grammar the endpoint needs, written here rather
//! than taken from rsipstack because its parser cannot represent what a server must
//! answer (see the top of `endpoint.rs`). Parsing is deliberately two-level: framing
//! failures (`Unframed`) leave nothing to answer, while grammar faults in an otherwise
//! framed message are collected as `defects` so the endpoint can still route a 400.
use std::borrow::Cow;

/// Header names the endpoint writes or reads, with their compact forms (RFC 3261 §7.3.3,
/// RFC 3515 for `r`, RFC 3265 for `o`).
const KNOWN: &[(&str, Option<&str>)] = &[
    ("Via", Some("v")),
    ("From", Some("f")),
    ("To", Some("t")),
    ("Call-ID", Some("i")),
    ("CSeq", None),
    ("Contact", Some("m")),
    ("Content-Length", Some("l")),
    ("Content-Type", Some("c")),
    ("Content-Encoding", Some("e")),
    ("Supported", Some("k")),
    ("Subject", Some("s")),
    ("Refer-To", Some("r")),
    ("Event", Some("o")),
    ("Max-Forwards", None),
    ("Require", None),
    ("Proxy-Require", None),
    ("Record-Route", None),
    ("Route", None),
    ("Accept", None),
    ("Date", None),
    ("Expires", None),
    ("Subscription-State", None),
    ("Allow", None),
    ("Retry-After", None),
];

/// Maps a header name as received to its canonical spelling, so lookups are exact.
pub fn canonical_name(raw: &str) -> Cow<'static, str> {
    for (long, short) in KNOWN {
        if raw.eq_ignore_ascii_case(long) || short.is_some_and(|s| raw.eq_ignore_ascii_case(s)) {
            return Cow::Borrowed(long);
        }
    }
    Cow::Owned(raw.to_owned())
}

#[derive(Clone, Debug)]
pub struct Header {
    pub name: Cow<'static, str>,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: String,
        uri: String,
        version: String,
    },
    Response {
        code: u16,
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// Grammar faults found while framing; a request with any is answered 400.
    pub defects: Vec<&'static str>,
}

/// Nothing can be answered: not a SIP message at all, or unreadable start line.
#[derive(Debug, PartialEq, Eq)]
pub enum Unframed {
    /// A keep-alive (RFC 5626 CRLF) or an empty datagram: not an error.
    KeepAlive,
    NoHeaderEnd,
    NotText,
    BadStartLine,
}

const TOKEN_EXTRA: &[u8] = b"-.!%*_+`'~";

pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || TOKEN_EXTRA.contains(&b))
}

/// Frames one message from a UDP datagram (`stream == false`) or from the front of a
/// TCP buffer (`stream == true`; then the returned length says how much was used and
/// `None` means "need more bytes").
pub fn parse(buf: &[u8], stream: bool) -> Result<Option<(Message, usize)>, Unframed> {
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = buf.get(lead..).unwrap_or_default();
    if rest.is_empty() {
        return Err(Unframed::KeepAlive);
    }
    let Some(head_len) = find(rest, b"\r\n\r\n") else {
        return if stream {
            Ok(None)
        } else {
            Err(Unframed::NoHeaderEnd)
        };
    };
    let head = std::str::from_utf8(&rest[..head_len]).map_err(|_| Unframed::NotText)?;
    let body_at = head_len + 4;
    let mut lines = head.split("\r\n");
    let start = parse_start(lines.next().unwrap_or_default())?;
    let mut defects = Vec::new();
    let headers = unfold(lines, &mut defects);
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
        defects,
    };
    let available = rest.len() - body_at;
    let len = match body_length(&msg, available, stream) {
        Ok(n) => n,
        Err(d) => {
            msg.defects.push(d);
            if stream {
                // A stream without a usable length cannot be resynchronised.
                return Err(Unframed::BadStartLine);
            }
            available
        }
    };
    if stream && available < len {
        return Ok(None);
    }
    msg.body = rest[body_at..body_at + len.min(available)].to_vec();
    Ok(Some((msg, lead + body_at + len.min(available))))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn body_length(msg: &Message, available: usize, stream: bool) -> Result<usize, &'static str> {
    let mut values = msg.all("Content-Length");
    let Some(first) = values.next() else {
        return if stream {
            Err("Content-Length required on a stream")
        } else {
            Ok(available)
        };
    };
    if values.next().is_some() {
        return Err("more than one Content-Length");
    }
    let n: usize = first
        .trim()
        .parse()
        .map_err(|_| "Content-Length not a number")?;
    if !stream && n > available {
        return Err("body shorter than Content-Length");
    }
    Ok(n)
}

fn parse_start(line: &str) -> Result<StartLine, Unframed> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return Err(Unframed::BadStartLine);
        }
        let code: u16 = code.parse().map_err(|_| Unframed::BadStartLine)?;
        if !(100..700).contains(&code) {
            return Err(Unframed::BadStartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    // RFC 3261 §25.1: single SP separators, no trailing space; anything else is a 400,
    // so keep the parts and let `defects` decide rather than refusing to frame.
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default();
    if !is_token(method) {
        return Err(Unframed::BadStartLine);
    }
    let uri = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    let extra = parts.next().is_some();
    Ok(StartLine::Request {
        method: method.to_owned(),
        uri: if extra { String::new() } else { uri.to_owned() },
        version: version.to_owned(),
    })
}

fn unfold<'a>(
    lines: impl Iterator<Item = &'a str>,
    defects: &mut Vec<&'static str>,
) -> Vec<Header> {
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(h) => {
                    h.value.push(' ');
                    h.value.push_str(line.trim());
                }
                None => defects.push("continuation before any header"),
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            defects.push("header line without a colon");
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            defects.push("header name is not a token");
            continue;
        }
        headers.push(Header {
            name: canonical_name(name),
            value: value.trim().to_owned(),
        });
    }
    headers
}

impl Message {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            // §7.3.1: names are case-insensitive; those outside KNOWN keep the sender's
            // spelling (`Www-Authenticate`).
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element of every header with this name, in order.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name).flat_map(split_commas)
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID")
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.get("CSeq").and_then(CSeq::parse)
    }

    pub fn top_via(&self) -> Option<Via> {
        self.list("Via").next().and_then(Via::parse)
    }

    #[cfg(test)]
    pub fn tag_of_from(&self) -> Option<String> {
        self.get("From")
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.param("tag").map(str::to_owned))
    }

    pub fn to_tag(&self) -> Option<String> {
        self.get("To")
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.param("tag").map(str::to_owned))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The media type without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.get("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Splits a header value at commas that are outside quotes and angle brackets.
pub fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped, mut start) = (false, false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.into_iter()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    pub fn parse(v: &str) -> Option<CSeq> {
        let mut it = v.split_whitespace();
        let seq: u32 = it.next()?.parse().ok()?;
        let method = it.next()?;
        // RFC 3261 §8.1.1.5: less than 2**31.
        if seq >= 1 << 31 || !is_token(method) || it.next().is_some() {
            return None;
        }
        Some(CSeq {
            seq,
            method: method.to_owned(),
        })
    }
}

/// One `name[=value]` parameter list, as `;`-separated after a URI or Via.
pub type Params = Vec<(String, Option<String>)>;

/// Parses `;a=b;c` allowing LWS around `;` and `=`; `None` when a name is empty or
/// not a token (RFC 4475 §3.1.2.1: `;;,;,,` is malformed).
pub fn parse_params(s: &str) -> Option<Params> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Vec::new());
    }
    let s = s.strip_prefix(';')?;
    let mut out = Vec::new();
    for part in s.split(';') {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (part.trim(), None),
        };
        if !is_token(name) {
            return None;
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    Some(out)
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// Params that were not well-formed; the Via still routes a 400.
    pub bad_params: bool,
}

impl Via {
    /// Parses one via-parm: `SIP / 2.0 / UDP host[:port] *(;param)`, LWS allowed
    /// around the slashes (RFC 3261 §25.1 SLASH). Any SIP version is taken so that a
    /// 505 can still be routed.
    pub fn parse(v: &str) -> Option<Via> {
        let mut parts = v.splitn(3, '/');
        let proto = parts.next()?.trim();
        let _version = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        if !proto.eq_ignore_ascii_case("SIP") {
            return None;
        }
        let t_end = rest.find(|c: char| c.is_whitespace())?;
        let transport = &rest[..t_end];
        let rest = rest[t_end..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        let (host, port) = split_host_port(sent_by)?;
        let (params, bad_params) = match parse_params(params) {
            Some(p) => (p, false),
            None => (Vec::new(), true),
        };
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
            bad_params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }
}

/// Splits `host[:port]`, IPv6 references in brackets; `None` when malformed.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
            None => (s.to_owned(), None),
        }
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    valid.then_some((host, port))
}

/// A From/To/Contact/Refer-To value: `[display] <uri> *(;param)` or `uri *(;param)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(v: &str) -> Result<NameAddr, &'static str> {
        let v = v.trim();
        let (display, rest) = split_display(v)?;
        let (uri, after) = if let Some(inner) = rest.strip_prefix('<') {
            let (uri, after) = inner.split_once('>').ok_or("unclosed <")?;
            if uri.is_empty() || uri.contains(|c: char| c.is_whitespace()) {
                return Err("whitespace inside <>");
            }
            (uri, after)
        } else {
            if display.is_some() {
                return Err("display name without <uri>");
            }
            // addr-spec form: `;` starts header params, and a `?` or `,` would be
            // ambiguous (RFC 3261 §20.10), so both are malformed here.
            let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
            let uri = &rest[..end];
            if uri.contains(['?', ',']) {
                return Err("URI with headers or comma needs <>");
            }
            (uri, &rest[end..])
        };
        if !uri.contains(':') {
            return Err("URI without scheme");
        }
        let params = parse_params(after).ok_or("malformed parameters")?;
        Ok(NameAddr {
            display,
            uri: uri.to_owned(),
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }
}

fn split_display(v: &str) -> Result<(Option<String>, &str), &'static str> {
    if let Some(q) = v.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in q.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    let rest = q[i + 1..].trim_start();
                    if !rest.starts_with('<') {
                        return Err("quoted display name without <uri>");
                    }
                    return Ok((Some(q[..i].to_owned()), rest));
                }
                _ => {}
            }
        }
        return Err("unterminated quoted string");
    }
    match v.find('<') {
        Some(0) | None => Ok((None, v)),
        Some(i) => {
            let display = v[..i].trim();
            if !display.split_whitespace().all(is_token) {
                return Err("display name is not tokens or a quoted string");
            }
            Ok((Some(display.to_owned()), &v[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Message {
        match parse(raw.as_bytes(), false) {
            Ok(Some((m, _))) => m,
            other => panic!("not framed: {other:?}"),
        }
    }

    #[test]
    fn compact_and_mixed_case_names_become_canonical() {
        let m = one(
            "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: x\r\nCSEQ: 1 OPTIONS\r\nf: <sip:a@b>;tag=1\r\nt: sip:c@d\r\nl: 0\r\n\r\n",
        );
        assert_eq!(m.call_id(), Some("x"));
        assert_eq!(m.cseq().map(|c| c.seq), Some(1));
        assert_eq!(m.tag_of_from().as_deref(), Some("1"));
        assert_eq!(m.top_via().map(|v| v.host), Some("h".to_owned()));
        assert!(m.defects.is_empty());
    }

    #[test]
    fn folded_via_with_spaces_around_slashes_parses() {
        let v = Via::parse("SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw").expect("via");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").expect("routable");
        assert!(v.bad_params);
    }

    #[test]
    fn name_addr_grammar() {
        let n = NameAddr::parse("\"J \\\"\" <sip:j@x;ob> ; tag = 9").expect("ok");
        assert_eq!(n.uri, "sip:j@x;ob");
        assert_eq!(n.param("tag"), Some("9"));
        let n = NameAddr::parse("sip:x@y ;  tag  = 1").expect("ok");
        assert_eq!((n.uri.as_str(), n.param("tag")), ("sip:x@y", Some("1")));
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse("\"W\" < sip:t@x >").is_err());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j@x>").is_err());
        assert!(NameAddr::parse("sip:u@x?Route=%3Csip:y%3E").is_err());
        assert!(NameAddr::parse("caller<sip:c@x>;tag=3").is_ok());
    }

    #[test]
    fn short_body_is_a_defect_and_long_body_is_cut() {
        let m = one("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc");
        assert!(!m.defects.is_empty());
        let m = one("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nabc");
        assert_eq!(m.body, b"ab");
    }

    #[test]
    fn stream_framing_waits_for_the_body() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nab";
        assert!(matches!(parse(raw, true), Ok(None)));
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcNEXT";
        let (m, used) = parse(raw, true).expect("ok").expect("framed");
        assert_eq!((m.body.as_slice(), used), (&b"abc"[..], raw.len() - 4));
    }

    #[test]
    fn garbage_is_unframed_not_a_panic() {
        for raw in [
            &b"\x00\xff\xfe"[..],
            b"hello",
            b"\r\n\r\n",
            b"SIP/2.0 4294967301 x\r\n\r\n",
        ] {
            assert!(parse(raw, false).is_err());
        }
    }
}
