//! SDP (RFC 4566) parsing and writing, and the RFC 3264 offer/answer rules hotline
//! needs: one G.711 audio stream at 8 kHz plus RFC 4733 telephone-event.
//!
//! Pure: no sockets, no clock. The SIP layer hands in the peer's SDP text and our
//! RTP address, and gets back the answer text and what the media layer must know
//! (codec, payload types, where to send RTP, whether the call is on hold).
//!
//! The parser is lenient where real clients differ from the RFC (LF line ends,
//! trailing blanks, attributes we have never heard of) and strict where a guess
//! would send audio to the wrong place (a `c=` or `m=` line we cannot read).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The packetisation time we ask for: 20 ms is what every G.711 client sends by
/// default, and what the media layer frames prompts in.
pub const PTIME_MS: u32 = 20;

/// The telephone-event payload type in offers we originate; 101 is the de-facto
/// number most clients and gateways use, which makes captures easy to read.
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;

/// DTMF digits 0-9, `*`, `#`, A-D and flash (RFC 4733 §3.2 events 0-16).
const TELEPHONE_EVENTS: &str = "0-16";

const SESSION_NAME: &str = "hotline";
const ORIGIN_USER: &str = "hotline";

/// Dynamic payload types stop at 127: the RTP header has seven bits for it.
const MAX_PAYLOAD_TYPE: u8 = 127;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// A whole session description: what [`parse`] reads and what we write out.
///
/// Lines we do not model (`i=`, `b=`, `k=`, ...) are dropped; attributes we do not
/// model are kept in order in `attributes`, so writing a parsed description back
/// out keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    /// `s=`; `-` when the offer has none.
    pub session_name: String,
    /// Session-level `c=`; a media-level `c=` overrides it.
    pub connection: Option<Connection>,
    pub timing: Timing,
    /// Session-level direction attribute; a media-level one overrides it.
    pub direction: Option<Direction>,
    /// Session-level attributes other than the direction.
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The connection that applies to `media`: its own `c=`, else the session's.
    pub fn connection_for(&self, media: &MediaDescription) -> Option<Connection> {
        media.connection.or(self.connection)
    }

    /// The direction that applies to `media` (RFC 3264 §5.1: sendrecv by default).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// RFC 3264 §5 bounds both numbers to 64 bits, which lets us do arithmetic on
    /// our own version without keeping strings around.
    pub session_id: u64,
    pub session_version: u64,
    pub addr_type: AddrType,
    /// Kept as text: it only identifies the session and may be a host name.
    pub address: String,
}

/// `IP4` or `IP6` in `o=` and `c=` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    pub fn of(addr: IpAddr) -> AddrType {
        match addr {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }

    fn parse(token: &str) -> Option<AddrType> {
        if token.eq_ignore_ascii_case("IP4") {
            Some(AddrType::Ip4)
        } else if token.eq_ignore_ascii_case("IP6") {
            Some(AddrType::Ip6)
        } else {
            None
        }
    }
}

/// A `c=` line. Only IP literals are accepted: hostnames would need DNS, which a
/// pure module cannot do, and no SIP client we know of puts one here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub address: IpAddr,
}

impl Connection {
    /// `0.0.0.0` (or `::`): RFC 2543-style hold, or "address not known yet"
    /// (RFC 3264 §8.4). Either way no RTP may be sent there.
    pub fn is_null(&self) -> bool {
        self.address.is_unspecified()
    }
}

/// The `t=` line. Calls are unbounded, so ours is always `0 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
}

/// Stream direction (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction seen from the other end: what an answer must say to mirror an
    /// offer, and what we do when a peer's answer states its own direction.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }
}

/// An attribute we keep but do not interpret: `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl RtpMap {
    /// RFC 4733 events at the clock rate of the audio they travel with.
    pub fn is_telephone_event(&self, clock_rate: u32) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event") && self.clock_rate == clock_rate
    }
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `image`, `application`, ...
    pub media: String,
    /// 0 means the stream is rejected or disabled (RFC 3264 §5.1, §6).
    pub port: u16,
    /// The `/<count>` of `m=<media> <port>/<count>`, used only for layered multicast.
    pub port_count: Option<u16>,
    pub proto: String,
    /// The format list as written; for RTP protocols these are payload types
    /// (checked by [`parse`]), see [`MediaDescription::payload_types`].
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    pub ptime: Option<u32>,
    pub direction: Option<Direction>,
    /// Media-level attributes other than rtpmap, fmtp, ptime and the direction.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// The formats that are RTP payload types, in the offerer's order of preference.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_payload_type(f))
    }

    /// What `pt` means in this section: its `a=rtpmap`, or for a static payload type
    /// without one the RFC 3551 assignment (SIPp and old phones send `0` bare).
    pub fn rtpmap_for(&self, pt: u8) -> Option<RtpMap> {
        if let Some(map) = self.rtpmaps.iter().find(|m| m.payload_type == pt) {
            return Some(map.clone());
        }
        let (encoding, clock_rate, channels) = static_payload_type(pt)?;
        Some(RtpMap {
            payload_type: pt,
            encoding: encoding.to_string(),
            clock_rate,
            channels,
        })
    }

    pub fn fmtp_for(&self, pt: u8) -> Option<&Fmtp> {
        self.fmtps.iter().find(|f| f.payload_type == pt)
    }

    fn add_attribute(&mut self, name: &str, value: Option<&str>) {
        let typed = match value {
            None => Direction::from_attribute(name).map(|d| self.direction = Some(d)),
            Some(v) if name.eq_ignore_ascii_case("rtpmap") => {
                parse_rtpmap(v).map(|m| self.rtpmaps.push(m))
            }
            Some(v) if name.eq_ignore_ascii_case("fmtp") => {
                parse_fmtp(v).map(|f| self.fmtps.push(f))
            }
            Some(v) if name.eq_ignore_ascii_case("ptime") => {
                v.trim().parse().ok().map(|p| self.ptime = Some(p))
            }
            Some(_) => None,
        };
        // An attribute we could not read is kept as it was rather than refused: a
        // broken rtpmap only makes its payload type unusable, which is safe.
        if typed.is_none() {
            self.attributes.push(Attribute {
                name: name.to_string(),
                value: value.map(str::to_string),
            });
        }
    }
}

/// RFC 3551 Table 4: the audio payload types that need no rtpmap.
fn static_payload_type(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    Some(match pt {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        _ => return None,
    })
}

fn parse_payload_type(token: &str) -> Option<u8> {
    token
        .parse::<u8>()
        .ok()
        .filter(|pt| *pt <= MAX_PAYLOAD_TYPE)
}

// ---------------------------------------------------------------------------
// Parse errors
// ---------------------------------------------------------------------------

/// What was wrong with an SDP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpErrorKind {
    /// No lines at all.
    Empty,
    /// The first line is not `v=`.
    MissingVersion,
    /// `v=` gives a version other than 0.
    UnsupportedVersion,
    /// A line that is not `<letter>=<value>`, or a second `v=` line.
    Syntax,
    /// No `o=` line: without it a re-offer cannot be told from a new session.
    MissingOrigin,
    MalformedOrigin,
    MalformedConnection,
    MalformedMedia,
}

impl fmt::Display for SdpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdpErrorKind::Empty => "empty session description",
            SdpErrorKind::MissingVersion => "first line is not v=",
            SdpErrorKind::UnsupportedVersion => "unsupported SDP version",
            SdpErrorKind::Syntax => "syntax error",
            SdpErrorKind::MissingOrigin => "no o= line",
            SdpErrorKind::MalformedOrigin => "malformed o= line",
            SdpErrorKind::MalformedConnection => "malformed c= line",
            SdpErrorKind::MalformedMedia => "malformed m= line",
        })
    }
}

/// A refused SDP body: what, on which line (1-based, counting blank lines), and
/// the detail a log reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpError {
    pub line: Option<usize>,
    pub kind: SdpErrorKind,
    pub detail: String,
}

impl SdpError {
    fn at(line: usize, kind: SdpErrorKind, detail: impl Into<String>) -> SdpError {
        SdpError {
            line: Some(line),
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "SDP line {line}: {}", self.kind)?,
            None => write!(f, "SDP: {}", self.kind)?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for SdpError {}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Parses an SDP body. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    // Some Windows stacks prefix a byte-order mark; it is never meaningful here.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // `split('\n')` plus `trim_end` takes CRLF, LF and trailing blanks alike; blank
    // lines (a body padded with an extra CRLF) are skipped but still counted so
    // that line numbers match what the peer sent.
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end()))
        .filter(|(_, line)| !line.is_empty());

    let Some((first_no, first)) = lines.next() else {
        return Err(SdpError {
            line: None,
            kind: SdpErrorKind::Empty,
            detail: String::new(),
        });
    };
    match split_line(first) {
        Some(('v', version)) if version.trim() == "0" => {}
        Some(('v', version)) => {
            return Err(SdpError::at(
                first_no,
                SdpErrorKind::UnsupportedVersion,
                format!("v={}", excerpt(version)),
            ));
        }
        _ => {
            return Err(SdpError::at(
                first_no,
                SdpErrorKind::MissingVersion,
                format!("found `{}`", excerpt(first)),
            ));
        }
    }

    let mut origin = None;
    let mut session_name = None;
    let mut connection = None;
    let mut timing = None;
    let mut direction = None;
    let mut attributes = Vec::new();
    let mut media: Vec<MediaDescription> = Vec::new();

    for (no, line) in lines {
        let Some((kind, value)) = split_line(line) else {
            return Err(SdpError::at(
                no,
                SdpErrorKind::Syntax,
                format!("expected `<type>=<value>`, found `{}`", excerpt(line)),
            ));
        };
        match kind {
            'v' => {
                // Two descriptions glued into one body: answering either would be a guess.
                return Err(SdpError::at(no, SdpErrorKind::Syntax, "a second v= line"));
            }
            'o' => {
                let o = parse_origin(value)
                    .map_err(|d| SdpError::at(no, SdpErrorKind::MalformedOrigin, d))?;
                origin.get_or_insert(o);
            }
            's' => {
                session_name.get_or_insert_with(|| value.to_string());
            }
            't' => {
                // Timing does not matter for a call; a bad t= is not worth a 400.
                timing = timing.or_else(|| parse_timing(value));
            }
            'c' => {
                let c = parse_connection(value)
                    .map_err(|d| SdpError::at(no, SdpErrorKind::MalformedConnection, d))?;
                match media.last_mut() {
                    Some(m) => {
                        m.connection.get_or_insert(c);
                    }
                    None => {
                        connection.get_or_insert(c);
                    }
                }
            }
            'm' => media.push(
                parse_media(value)
                    .map_err(|d| SdpError::at(no, SdpErrorKind::MalformedMedia, d))?,
            ),
            'a' => {
                let (name, attr_value) = match value.split_once(':') {
                    Some((name, v)) => (name, Some(v)),
                    None => (value, None),
                };
                match media.last_mut() {
                    Some(m) => m.add_attribute(name, attr_value),
                    None => match (attr_value, Direction::from_attribute(name)) {
                        (None, Some(d)) => direction = Some(d),
                        _ => attributes.push(Attribute {
                            name: name.to_string(),
                            value: attr_value.map(str::to_string),
                        }),
                    },
                }
            }
            // i=, u=, e=, p=, b=, z=, k=, r= and anything newer: nothing we act on.
            _ => {}
        }
    }

    let Some(origin) = origin else {
        return Err(SdpError {
            line: None,
            kind: SdpErrorKind::MissingOrigin,
            detail: String::new(),
        });
    };
    Ok(SessionDescription {
        origin,
        session_name: session_name.unwrap_or_else(|| "-".to_string()),
        connection,
        timing: timing.unwrap_or_default(),
        direction,
        attributes,
        media,
    })
}

/// `x=value` with `x` a letter; anything else is not an SDP line.
fn split_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next().filter(char::is_ascii_alphabetic)?;
    let value = chars.as_str().strip_prefix('=')?;
    Some((kind, value))
}

/// A short, safe-to-log piece of an offending line.
fn excerpt(text: &str) -> String {
    const MAX: usize = 60;
    // Escaped because the text is the peer's and ends up in logs and terminals.
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

fn parse_origin(value: &str) -> Result<Origin, String> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [username, id, version, net_type, addr_type, address] = fields[..] else {
        return Err(format!(
            "expected `<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`, found {} fields",
            fields.len()
        ));
    };
    let number = |what: &str, token: &str| {
        token
            .parse::<u64>()
            .map_err(|_| format!("{what} `{}` is not a 64-bit number", excerpt(token)))
    };
    if !net_type.eq_ignore_ascii_case("IN") {
        return Err(format!("network type `{}` is not IN", excerpt(net_type)));
    }
    Ok(Origin {
        username: username.to_string(),
        session_id: number("session id", id)?,
        session_version: number("session version", version)?,
        addr_type: AddrType::parse(addr_type)
            .ok_or_else(|| format!("address type `{}` is not IP4 or IP6", excerpt(addr_type)))?,
        address: address.to_string(),
    })
}

fn parse_connection(value: &str) -> Result<Connection, String> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [net_type, addr_type, address] = fields[..] else {
        return Err(format!(
            "expected `IN <IP4|IP6> <address>`, found {} fields",
            fields.len()
        ));
    };
    if !net_type.eq_ignore_ascii_case("IN") {
        return Err(format!("network type `{}` is not IN", excerpt(net_type)));
    }
    let addr_type = AddrType::parse(addr_type)
        .ok_or_else(|| format!("address type `{}` is not IP4 or IP6", excerpt(addr_type)))?;
    // Multicast addresses carry `/ttl[/count]`; the address is what matters to us.
    let literal = address.split('/').next().unwrap_or(address);
    let address: IpAddr = literal.parse().map_err(|_| {
        format!(
            "address `{}` is not an IP literal (host names are not resolved)",
            excerpt(literal)
        )
    })?;
    if AddrType::of(address) != addr_type {
        return Err(format!(
            "address `{address}` does not match address type {}",
            addr_type
        ));
    }
    Ok(Connection { address })
}

fn parse_timing(value: &str) -> Option<Timing> {
    let mut fields = value.split_whitespace();
    let start = fields.next()?.parse().ok()?;
    let stop = fields.next()?.parse().ok()?;
    fields.next().is_none().then_some(Timing { start, stop })
}

fn parse_media(value: &str) -> Result<MediaDescription, String> {
    let mut fields = value.split_whitespace();
    let (Some(media), Some(port_field), Some(proto)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "expected `<media> <port> <proto> <fmt> ...`, found `{}`",
            excerpt(value)
        ));
    };
    let port_number = |token: &str| {
        token
            .parse::<u16>()
            .map_err(|_| format!("port `{}` is not a number from 0 to 65535", excerpt(token)))
    };
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port_number(port)?, Some(port_number(count)?)),
        None => (port_number(port_field)?, None),
    };
    let formats: Vec<String> = fields.map(str::to_string).collect();
    // A rejected stream with no format is wrong but harmless (some WebRTC stacks
    // write it); an active one would leave nothing to negotiate.
    if formats.is_empty() && port != 0 {
        return Err(format!("`{}` lists no format", excerpt(value)));
    }
    if proto.to_ascii_uppercase().contains("RTP/")
        && let Some(bad) = formats.iter().find(|f| parse_payload_type(f).is_none())
    {
        return Err(format!(
            "payload type `{}` is not a number from 0 to {MAX_PAYLOAD_TYPE}",
            excerpt(bad)
        ));
    }
    Ok(MediaDescription {
        media: media.to_string(),
        port,
        port_count,
        proto: proto.to_string(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        attributes: Vec::new(),
    })
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type: parse_payload_type(pt)?,
        encoding: encoding.to_string(),
        clock_rate,
        channels,
    })
}

fn parse_fmtp(value: &str) -> Option<Fmtp> {
    let value = value.trim();
    let (pt, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    Some(Fmtp {
        payload_type: parse_payload_type(pt)?,
        params: params.trim().to_string(),
    })
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        })
    }
}

/// The value of an `o=` line.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} IN {} {}",
            self.username, self.session_id, self.session_version, self.addr_type, self.address
        )
    }
}

/// The value of a `c=` line.
impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", AddrType::of(self.address), self.address)
    }
}

/// The value of a `t=` line.
impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.start, self.stop)
    }
}

/// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What follows `a=`.
impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(value) = &self.value {
            write!(f, ":{value}")?;
        }
        Ok(())
    }
}

/// What follows `a=rtpmap:`.
impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(channels) = self.channels {
            write!(f, "/{channels}")?;
        }
        Ok(())
    }
}

/// What follows `a=fmtp:`.
impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.payload_type)?;
        if !self.params.is_empty() {
            write!(f, " {}", self.params)?;
        }
        Ok(())
    }
}

/// The `m=` line and the section's lines, each ended by CRLF.
impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for map in &self.rtpmaps {
            write!(f, "a=rtpmap:{map}\r\n")?;
        }
        for fmtp in &self.fmtps {
            write!(f, "a=fmtp:{fmtp}\r\n")?;
        }
        if let Some(ptime) = self.ptime {
            write!(f, "a=ptime:{ptime}\r\n")?;
        }
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        if let Some(direction) = self.direction {
            write!(f, "a={direction}\r\n")?;
        }
        Ok(())
    }
}

/// The whole body as sent on the wire: RFC 4566 line order, CRLF line ends.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write!(f, "t={}\r\n", self.timing)?;
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        if let Some(direction) = self.direction {
            write!(f, "a={direction}\r\n")?;
        }
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Offer/answer
// ---------------------------------------------------------------------------

/// The codecs the media layer can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// The codec an rtpmap (explicit or static) stands for, if we can do it. A
    /// dynamic payload type mapped to PCMU/8000 is as good as 0.
    pub fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| {
            map.encoding.eq_ignore_ascii_case(c.encoding_name())
                && map.clock_rate == c.clock_rate()
                && map.channels.unwrap_or(1) == 1
        })
    }

    fn rtpmap(self, payload_type: u8) -> RtpMap {
        RtpMap {
            payload_type,
            encoding: self.encoding_name().to_string(),
            clock_rate: self.clock_rate(),
            channels: None,
        }
    }
}

/// `PCMU/8000`.
impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.encoding_name(), self.clock_rate())
    }
}

/// What we are willing to do, and who we are in `o=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// The codecs we accept. In answers the offerer's order decides among them
    /// (RFC 3264 §6.1 lets it); in our own offers this order is the preference.
    pub codecs: Vec<Codec>,
    /// Whether to negotiate RFC 4733 telephone-event for DTMF.
    pub telephone_event: bool,
    /// Our `o=` session id; RFC 3264 §5 wants it unique and kept for the dialog.
    pub session_id: u64,
    /// Our `o=` version for the first SDP of the dialog.
    pub session_version: u64,
}

impl Prefs {
    /// PCMU then PCMA, with telephone-event.
    pub fn new(session_id: u64, session_version: u64) -> Prefs {
        Prefs {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: true,
            session_id,
            session_version,
        }
    }
}

/// What the media layer needs from a finished offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Which `m=` section of the offer carries the call's audio.
    pub media_index: usize,
    pub codec: Codec,
    /// The payload type of `codec` in this session (0 or 8 unless the offerer
    /// mapped G.711 to a dynamic number).
    pub payload_type: u8,
    /// The telephone-event payload type, as the offerer numbered it (pjsip uses
    /// 120, most others 101); `None` when DTMF must be detected in-band.
    pub telephone_event: Option<u8>,
    /// Where to send RTP; `None` when the peer's address is `0.0.0.0` or `::`.
    pub remote_rtp: Option<SocketAddr>,
    /// Our direction for the stream.
    pub direction: Direction,
    /// The peer has put us on hold: it wants nothing from us (its SDP says sendonly
    /// or inactive, or uses the RFC 2543 `c=0.0.0.0` form).
    pub hold: bool,
    /// The packetisation the peer asked for (`a=ptime`), to use when sending to it.
    pub remote_ptime: Option<u32>,
}

impl Negotiated {
    /// Whether RTP should go out now: there is an address and nobody is on hold.
    pub fn should_send(&self) -> bool {
        self.remote_rtp.is_some() && self.direction.sends()
    }
}

/// The result of answering an offer: the negotiated media and our answer SDP
/// (its `Display` is the body to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub media: Negotiated,
    pub sdp: SessionDescription,
}

/// The answer body, CRLF-terminated lines.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sdp.fmt(f)
    }
}

/// Why an offer (or an answer to our offer) cannot give us a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// No active `m=audio` section at all.
    NoAudioStream,
    /// Audio offered, but only over a transport we do not speak (e.g. SRTP).
    UnsupportedTransport { proto: String },
    /// Audio over RTP/AVP, but no PCMU or PCMA at 8 kHz.
    NoCommonCodec,
    /// The chosen audio section has no `c=`, neither its own nor the session's.
    MissingConnection { media_index: usize },
    /// An answer whose `m=` lines do not pair up with our offer's (RFC 3264 §6).
    MediaCountMismatch { offered: usize, answered: usize },
}

impl NegotiationError {
    /// The status to refuse an offer with: 488 Not Acceptable Here (RFC 3261
    /// §13.3.1.1). An unusable answer to our own offer has no response to carry
    /// a status; the SIP layer ends that call with BYE instead.
    pub fn sip_status(&self) -> u16 {
        488
    }
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::NoAudioStream => f.write_str("no active audio stream offered"),
            NegotiationError::UnsupportedTransport { proto } => {
                write!(f, "audio offered only over unsupported transport {proto}")
            }
            NegotiationError::NoCommonCodec => {
                f.write_str("no common codec (we need PCMU or PCMA at 8000 Hz)")
            }
            NegotiationError::MissingConnection { media_index } => {
                write!(f, "audio stream {media_index} has no c= address")
            }
            NegotiationError::MediaCountMismatch { offered, answered } => {
                write!(f, "answer has {answered} m= lines, the offer had {offered}")
            }
        }
    }
}

impl std::error::Error for NegotiationError {}

/// Plain RTP profiles only: we do no SRTP or DTLS. AVPF is AVP plus optional
/// feedback, so an AVPF offer (linphone sends them) is answered in AVPF without
/// any feedback attribute.
fn is_supported_proto(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

struct Selection {
    codec: Codec,
    payload_type: u8,
    telephone_event: Option<u8>,
}

/// The first codec of the offer's list we can do, and the offer's own
/// telephone-event number at 8 kHz (RFC 3264 §6.1: answer with the offer's numbers).
fn select(media: &MediaDescription, prefs: &Prefs) -> Option<Selection> {
    let (codec, payload_type) = media.payload_types().find_map(|pt| {
        let codec = Codec::from_rtpmap(&media.rtpmap_for(pt)?)?;
        prefs.codecs.contains(&codec).then_some((codec, pt))
    })?;
    let telephone_event = if prefs.telephone_event {
        media.payload_types().find(|&pt| {
            media
                .rtpmap_for(pt)
                .is_some_and(|m| m.is_telephone_event(codec.clock_rate()))
        })
    } else {
        None
    };
    Some(Selection {
        codec,
        payload_type,
        telephone_event,
    })
}

/// Answers `offer` per RFC 3264 §6: the first audio stream with a usable codec gets
/// our address and port, every other stream is rejected with port 0 in place.
///
/// `prefs.session_id` and `prefs.session_version` go into our `o=` line.
pub fn negotiate(
    offer: &SessionDescription,
    our_addr: IpAddr,
    our_port: u16,
    prefs: &Prefs,
) -> Result<Answer, NegotiationError> {
    answer_with_origin(
        offer,
        our_addr,
        our_port,
        prefs,
        prefs.session_id,
        prefs.session_version,
    )
}

/// Answers a re-offer (re-INVITE or UPDATE) inside an established session.
///
/// `previous_local` is the last SDP we sent in this dialog (answer or offer); our
/// `o=` session id comes from it, not from `prefs`. RFC 3264 §8 allows two
/// outcomes and we take the one peers handle best: if the new answer differs
/// from `previous_local` (hold, codec change, new local address) its version is
/// one more; if it is the same body (a session-timer refresh, a re-offer that
/// only moved the peer's address, `c=0.0.0.0` hold with the direction left
/// sendrecv) the version stays, so the peer sees nothing changed on our side.
pub fn renegotiate(
    previous_local: &SessionDescription,
    re_offer: &SessionDescription,
    our_addr: IpAddr,
    our_port: u16,
    prefs: &Prefs,
) -> Result<Answer, NegotiationError> {
    let version = previous_local.origin.session_version;
    let mut answer = answer_with_origin(
        re_offer,
        our_addr,
        our_port,
        prefs,
        previous_local.origin.session_id,
        version,
    )?;
    if answer.sdp != *previous_local {
        // Saturating: a version that wraps to 0 would read as going backwards.
        answer.sdp.origin.session_version = version.saturating_add(1);
    }
    Ok(answer)
}

fn answer_with_origin(
    offer: &SessionDescription,
    our_addr: IpAddr,
    our_port: u16,
    prefs: &Prefs,
    session_id: u64,
    session_version: u64,
) -> Result<Answer, NegotiationError> {
    // Which error to report when nothing fits: a codec mismatch on plain RTP says
    // more than the SRTP-only stream that came before or after it.
    let mut unsupported_proto = None;
    let mut saw_plain_rtp_audio = false;
    let mut chosen = None;
    for (index, media) in offer.media.iter().enumerate() {
        if !media.is_audio() || media.is_rejected() {
            continue;
        }
        if !is_supported_proto(&media.proto) {
            unsupported_proto.get_or_insert_with(|| media.proto.clone());
            continue;
        }
        saw_plain_rtp_audio = true;
        if let Some(selection) = select(media, prefs) {
            chosen = Some((index, selection));
            break;
        }
    }
    let Some((media_index, selection)) = chosen else {
        return Err(match (saw_plain_rtp_audio, unsupported_proto) {
            (true, _) => NegotiationError::NoCommonCodec,
            (false, Some(proto)) => NegotiationError::UnsupportedTransport { proto },
            (false, None) => NegotiationError::NoAudioStream,
        });
    };

    let offered = &offer.media[media_index];
    let connection = offer
        .connection_for(offered)
        .ok_or(NegotiationError::MissingConnection { media_index })?;
    let remote_rtp =
        (!connection.is_null()).then(|| SocketAddr::new(connection.address, offered.port));
    let direction = offer.direction_for(offered).reversed();

    let mut formats = vec![selection.payload_type.to_string()];
    let mut rtpmaps = vec![selection.codec.rtpmap(selection.payload_type)];
    let mut fmtps = Vec::new();
    if let Some(te) = selection.telephone_event {
        formats.push(te.to_string());
        rtpmaps.push(telephone_event_rtpmap(te));
        fmtps.push(telephone_event_fmtp(te));
    }
    let audio = MediaDescription {
        media: offered.media.clone(),
        port: our_port,
        port_count: None,
        proto: offered.proto.clone(),
        formats,
        connection: None,
        rtpmaps,
        fmtps,
        ptime: Some(PTIME_MS),
        direction: Some(direction),
        attributes: Vec::new(),
    };
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(index, m)| {
            if index == media_index {
                audio.clone()
            } else {
                rejected(m)
            }
        })
        .collect();

    Ok(Answer {
        media: Negotiated {
            media_index,
            codec: selection.codec,
            payload_type: selection.payload_type,
            telephone_event: selection.telephone_event,
            remote_rtp,
            direction,
            hold: remote_rtp.is_none() || !direction.sends(),
            remote_ptime: offered.ptime,
        },
        sdp: local_description(our_addr, session_id, session_version, media),
    })
}

/// RFC 3264 §6: a rejected stream keeps its place, media type and transport, with
/// port 0; its formats are ignored but SDP requires at least one.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    let formats = if offered.formats.is_empty() {
        vec!["0".to_string()]
    } else {
        offered.formats.clone()
    };
    MediaDescription {
        media: offered.media.clone(),
        port: 0,
        port_count: None,
        proto: offered.proto.clone(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        attributes: Vec::new(),
    }
}

fn telephone_event_rtpmap(payload_type: u8) -> RtpMap {
    RtpMap {
        payload_type,
        encoding: "telephone-event".to_string(),
        clock_rate: 8000,
        channels: None,
    }
}

fn telephone_event_fmtp(payload_type: u8) -> Fmtp {
    Fmtp {
        payload_type,
        params: TELEPHONE_EVENTS.to_string(),
    }
}

fn local_description(
    our_addr: IpAddr,
    session_id: u64,
    session_version: u64,
    media: Vec<MediaDescription>,
) -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: ORIGIN_USER.to_string(),
            session_id,
            session_version,
            addr_type: AddrType::of(our_addr),
            address: our_addr.to_string(),
        },
        session_name: SESSION_NAME.to_string(),
        connection: Some(Connection { address: our_addr }),
        timing: Timing::default(),
        direction: None,
        attributes: Vec::new(),
        media,
    }
}

/// Our offer for a call we place: one sendrecv audio stream with `prefs.codecs` in
/// order at their static payload types, telephone-event 101, ptime 20.
/// `prefs.codecs` must not be empty: an `m=` line needs at least one format.
pub fn offer(our_addr: IpAddr, our_port: u16, prefs: &Prefs) -> SessionDescription {
    let mut formats = Vec::new();
    let mut rtpmaps = Vec::new();
    let mut fmtps = Vec::new();
    for codec in &prefs.codecs {
        let pt = codec.static_payload_type();
        if !formats.contains(&pt.to_string()) {
            formats.push(pt.to_string());
            rtpmaps.push(codec.rtpmap(pt));
        }
    }
    if prefs.telephone_event {
        formats.push(OFFER_TELEPHONE_EVENT_PT.to_string());
        rtpmaps.push(telephone_event_rtpmap(OFFER_TELEPHONE_EVENT_PT));
        fmtps.push(telephone_event_fmtp(OFFER_TELEPHONE_EVENT_PT));
    }
    let audio = MediaDescription {
        media: "audio".to_string(),
        port: our_port,
        port_count: None,
        proto: "RTP/AVP".to_string(),
        formats,
        connection: None,
        rtpmaps,
        fmtps,
        ptime: Some(PTIME_MS),
        direction: Some(Direction::SendRecv),
        attributes: Vec::new(),
    };
    local_description(
        our_addr,
        prefs.session_id,
        prefs.session_version,
        vec![audio],
    )
}

/// Reads the peer's answer to an offer we made with [`offer`]: which codec and
/// telephone-event number to send with (the answerer's numbers, RFC 3264 §6.1),
/// where to, and in which direction.
pub fn accept_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if our_offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: our_offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let pairs = our_offer.media.iter().zip(&answer.media).enumerate();
    let mut saw_audio = false;
    for (media_index, (ours, theirs)) in pairs {
        if !ours.is_audio() || ours.is_rejected() || !theirs.is_audio() || theirs.is_rejected() {
            continue;
        }
        saw_audio = true;
        let we_offered = |codec: Codec| {
            ours.payload_types()
                .any(|pt| ours.rtpmap_for(pt).and_then(|m| Codec::from_rtpmap(&m)) == Some(codec))
        };
        let Some((codec, payload_type)) = theirs.payload_types().find_map(|pt| {
            let codec = Codec::from_rtpmap(&theirs.rtpmap_for(pt)?)?;
            we_offered(codec).then_some((codec, pt))
        }) else {
            continue;
        };
        let we_offered_events = ours.payload_types().any(|pt| {
            ours.rtpmap_for(pt)
                .is_some_and(|m| m.is_telephone_event(8000))
        });
        let telephone_event = theirs
            .payload_types()
            .find(|&pt| {
                theirs
                    .rtpmap_for(pt)
                    .is_some_and(|m| m.is_telephone_event(8000))
            })
            .filter(|_| we_offered_events);
        let connection = answer
            .connection_for(theirs)
            .ok_or(NegotiationError::MissingConnection { media_index })?;
        let remote_rtp =
            (!connection.is_null()).then(|| SocketAddr::new(connection.address, theirs.port));
        let direction = answer.direction_for(theirs).reversed();
        return Ok(Negotiated {
            media_index,
            codec,
            payload_type,
            telephone_event,
            remote_rtp,
            direction,
            hold: remote_rtp.is_none() || !direction.sends(),
            remote_ptime: theirs.ptime,
        });
    }
    Err(if saw_audio {
        NegotiationError::NoCommonCodec
    } else {
        NegotiationError::NoAudioStream
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/sdp/", $name))
        };
    }

    const PJSIP_NARROWBAND: &str = fixture!("pjsip_narrowband.sdp");
    const PJSIP_WIDEBAND: &str = fixture!("pjsip_wideband.sdp");
    const BARESIP: &str = fixture!("baresip.sdp");
    const LINPHONE: &str = fixture!("linphone.sdp");
    const LINPHONE_AVPF: &str = fixture!("linphone_avpf.sdp");
    const SIPP_MINIMAL: &str = fixture!("sipp_minimal.sdp");
    const SIPP_DTMF: &str = fixture!("sipp_dtmf.sdp");
    const RECVONLY: &str = fixture!("recvonly.sdp");
    const G729_OPUS: &str = fixture!("g729_opus.sdp");
    const VIDEO_AUDIO: &str = fixture!("video_audio.sdp");
    const IPV6: &str = fixture!("ipv6.sdp");

    const ALL_FIXTURES: [&str; 11] = [
        PJSIP_NARROWBAND,
        PJSIP_WIDEBAND,
        BARESIP,
        LINPHONE,
        LINPHONE_AVPF,
        SIPP_MINIMAL,
        SIPP_DTMF,
        RECVONLY,
        G729_OPUS,
        VIDEO_AUDIO,
        IPV6,
    ];

    const OUR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    const OUR_PORT: u16 = 40000;

    fn prefs() -> Prefs {
        Prefs::new(1000, 1)
    }

    fn answer(text: &str) -> Answer {
        let offer = parse(text).expect("fixture parses");
        negotiate(&offer, OUR_IP, OUR_PORT, &prefs()).expect("fixture negotiates")
    }

    fn sock(ip: [u8; 4], port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from((ip, port)))
    }

    // -- the real clients ------------------------------------------------------

    #[test]
    fn pjsip_offer_gets_pcma_and_its_own_telephone_event_120() {
        let a = answer(PJSIP_NARROWBAND);
        assert_eq!(a.media.codec, Codec::Pcma, "offerer listed 8 first");
        assert_eq!(a.media.payload_type, 8);
        assert_eq!(a.media.telephone_event, Some(120));
        assert_eq!(a.media.remote_rtp, sock([192, 168, 1, 23], 4000));
        assert_eq!(a.media.direction, Direction::SendRecv);
        assert!(!a.media.hold);
        assert!(a.media.should_send());
        assert_eq!(
            a.to_string(),
            "v=0\r\n\
             o=hotline 1000 1 IN IP4 192.0.2.10\r\n\
             s=hotline\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 8 120\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:120 telephone-event/8000\r\n\
             a=fmtp:120 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn pjsip_rtcp_and_ssrc_lines_are_kept_but_not_answered() {
        let offer = parse(PJSIP_NARROWBAND).unwrap();
        let audio = &offer.media[0];
        let names: Vec<&str> = audio.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["rtcp", "ssrc"]);
        assert_eq!(
            audio.attributes[0].value.as_deref(),
            Some("4001 IN IP4 192.168.1.23")
        );
        assert_eq!(offer.attributes[0].name, "X-nat");
        let text = answer(PJSIP_NARROWBAND).to_string();
        assert!(!text.contains("rtcp") && !text.contains("ssrc"));
    }

    #[test]
    fn pjsip_wideband_offer_picks_the_8khz_telephone_event() {
        let a = answer(PJSIP_WIDEBAND);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, Some(121), "120 is at 16 kHz");
        assert!(a.to_string().contains("m=audio 40000 RTP/AVP 0 121\r\n"));
    }

    #[test]
    fn baresip_offer_with_lf_line_ends_and_rtcp_mux() {
        assert!(!BARESIP.contains('\r'), "fixture keeps LF line ends");
        let offer = parse(BARESIP).unwrap();
        assert_eq!(offer.origin.session_id, 1696452356);
        assert_eq!(offer.media[0].ptime, Some(20));
        assert_eq!(
            offer.media[0].fmtp_for(101).map(|f| f.params.as_str()),
            Some("0-15")
        );
        let a = answer(BARESIP);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, Some(101));
        assert_eq!(a.media.remote_rtp, sock([10, 0, 0, 5], 10028));
        assert_eq!(a.media.remote_ptime, Some(20));
        let text = a.to_string();
        // We do not multiplex RTCP, so the answer must not accept rtcp-mux (RFC 5761).
        assert!(!text.contains("rtcp-mux"));
        assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"));
        assert!(text.contains("a=fmtp:101 0-16\r\n"));
    }

    #[test]
    fn linphone_offer_with_many_codecs_and_rtcp_fb() {
        let offer = parse(LINPHONE).unwrap();
        let audio = &offer.media[0];
        assert_eq!(audio.rtpmaps.len(), 4);
        assert_eq!(audio.rtpmap_for(96).unwrap().channels, Some(2));
        assert_eq!(
            audio.rtpmap_for(8).unwrap().encoding,
            "PCMA",
            "static, no rtpmap"
        );
        assert_eq!(
            audio
                .attributes
                .iter()
                .filter(|a| a.name == "rtcp-fb")
                .count(),
            2
        );
        let a = answer(LINPHONE);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, Some(101));
        assert_eq!(a.media.remote_rtp, sock([192, 168, 1, 40], 7078));
        let text = a.to_string();
        assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"));
        assert!(!text.contains("rtcp-fb") && !text.contains("opus"));
    }

    #[test]
    fn linphone_avpf_offer_is_answered_in_avpf_with_the_8khz_event() {
        let a = answer(LINPHONE_AVPF);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, Some(100));
        assert!(a.to_string().contains("m=audio 40000 RTP/AVPF 0 100\r\n"));
    }

    #[test]
    fn sipp_minimal_offer_static_pcmu_without_rtpmap() {
        let offer = parse(SIPP_MINIMAL).unwrap();
        assert!(offer.media[0].rtpmaps.is_empty());
        let a = answer(SIPP_MINIMAL);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, None);
        assert_eq!(a.media.remote_rtp, sock([127, 0, 0, 1], 6000));
        assert_eq!(
            a.to_string(),
            "v=0\r\n\
             o=hotline 1000 1 IN IP4 192.0.2.10\r\n\
             s=hotline\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn sipp_offer_with_telephone_event_101() {
        let a = answer(SIPP_DTMF);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 0));
        assert_eq!(a.media.telephone_event, Some(101));
        assert!(a.to_string().contains("m=audio 40000 RTP/AVP 0 101\r\n"));
    }

    #[test]
    fn recvonly_offer_is_answered_sendonly_and_is_not_hold() {
        let offer = parse(RECVONLY).unwrap();
        assert_eq!(offer.direction_for(&offer.media[0]), Direction::RecvOnly);
        let a = answer(RECVONLY);
        assert_eq!(a.media.direction, Direction::SendOnly);
        assert!(!a.media.hold);
        assert!(a.media.should_send());
        assert!(a.to_string().ends_with("a=sendonly\r\n"));
    }

    #[test]
    fn sendonly_and_inactive_offers_are_mirrored() {
        for (offered, answered) in [
            ("sendonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendRecv),
        ] {
            let text =
                SIPP_MINIMAL.replace("RTP/AVP 0\r\n", &format!("RTP/AVP 0\r\na={offered}\r\n"));
            let a = answer(&text);
            assert_eq!(a.media.direction, answered, "{offered}");
            assert_eq!(a.media.hold, !answered.sends(), "{offered}");
            assert!(a.to_string().ends_with(&format!("a={answered}\r\n")));
        }
    }

    #[test]
    fn media_level_direction_overrides_session_level() {
        let text = SIPP_MINIMAL
            .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")
            .replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=recvonly\r\n");
        let offer = parse(&text).unwrap();
        assert_eq!(offer.direction, Some(Direction::SendOnly));
        assert_eq!(offer.direction_for(&offer.media[0]), Direction::RecvOnly);
        let session_only =
            parse(&SIPP_MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")).unwrap();
        assert_eq!(
            negotiate(&session_only, OUR_IP, OUR_PORT, &prefs())
                .unwrap()
                .media
                .direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn g729_and_opus_only_is_no_common_codec() {
        let offer = parse(G729_OPUS).unwrap();
        let err = negotiate(&offer, OUR_IP, OUR_PORT, &prefs()).unwrap_err();
        assert_eq!(err, NegotiationError::NoCommonCodec);
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn video_and_extra_audio_are_rejected_in_place() {
        let a = answer(VIDEO_AUDIO);
        assert_eq!(a.media.media_index, 1);
        // The media-level c= of the audio section wins over the session's.
        assert_eq!(a.media.remote_rtp, sock([198, 51, 100, 8], 7078));
        let kinds: Vec<(&str, u16)> = a
            .sdp
            .media
            .iter()
            .map(|m| (m.media.as_str(), m.port))
            .collect();
        assert_eq!(kinds, [("video", 0), ("audio", OUR_PORT), ("audio", 0)]);
        let text = a.to_string();
        assert!(text.contains("\r\nm=video 0 RTP/AVP 96 97\r\nm=audio 40000 RTP/AVP 0 101\r\n"));
        assert!(text.ends_with("a=sendrecv\r\nm=audio 0 RTP/AVP 8\r\n"));
        assert_eq!(parse(&text).unwrap(), a.sdp, "the answer reads back");
    }

    #[test]
    fn first_audio_stream_without_a_usable_codec_is_skipped() {
        let text = SIPP_MINIMAL.replace(
            "m=audio 6000 RTP/AVP 0\r\n",
            "m=audio 6000 RTP/AVP 18\r\nm=audio 6002 RTP/SAVP 0\r\nm=audio 6004 RTP/AVP 8\r\n",
        );
        let a = answer(&text);
        assert_eq!(a.media.media_index, 2);
        assert_eq!(a.media.codec, Codec::Pcma);
        assert_eq!(a.media.remote_rtp, sock([127, 0, 0, 1], 6004));
        let ports: Vec<u16> = a.sdp.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 0, OUR_PORT]);
    }

    #[test]
    fn ipv6_offer() {
        let offer = parse(IPV6).unwrap();
        assert_eq!(offer.origin.addr_type, AddrType::Ip6);
        let ours = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let a = negotiate(&offer, ours, OUR_PORT, &prefs()).unwrap();
        assert_eq!(
            a.media.remote_rtp,
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5000))
        );
        let text = a.to_string();
        assert!(text.contains("o=hotline 1000 1 IN IP6 ::1\r\n"));
        assert!(text.contains("c=IN IP6 ::1\r\n"));
        let v6 =
            parse("v=0\no=- 1 1 IN IP6 2001:db8::1\nc=IN IP6 2001:db8::2\nm=audio 1 RTP/AVP 0\n")
                .unwrap();
        assert_eq!(
            v6.connection.unwrap().address,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
    }

    // -- re-INVITE ---------------------------------------------------------------

    fn reoffer(base: &str, from: &str, to: &str) -> SessionDescription {
        assert!(base.contains(from), "{from:?} not in the base offer");
        let text = base
            .replace(from, to)
            .replace("1696452356 1696452356", "1696452356 1696452357");
        parse(&text).unwrap()
    }

    #[test]
    fn hold_with_sendonly_increments_our_version() {
        let first = answer(BARESIP);
        let held = reoffer(BARESIP, "a=sendrecv", "a=sendonly");
        let a = renegotiate(&first.sdp, &held, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert_eq!(a.media.direction, Direction::RecvOnly);
        assert!(a.media.hold);
        assert!(!a.media.should_send());
        assert_eq!(a.sdp.origin.session_id, 1000);
        assert_eq!(a.sdp.origin.session_version, 2);
        assert!(
            a.to_string()
                .contains("o=hotline 1000 2 IN IP4 192.0.2.10\r\n")
        );
        assert!(a.to_string().ends_with("a=recvonly\r\n"));

        // Taking the call off hold changes our answer again.
        let resumed = reoffer(BARESIP, "a=label:1", "a=label:2");
        let b = renegotiate(&a.sdp, &resumed, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert_eq!(b.media.direction, Direction::SendRecv);
        assert!(!b.media.hold);
        assert_eq!(b.sdp.origin.session_version, 3);
    }

    #[test]
    fn hold_with_null_connection_address() {
        let first = answer(BARESIP);
        let held = reoffer(BARESIP, "c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0");
        let a = renegotiate(&first.sdp, &held, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert_eq!(a.media.remote_rtp, None);
        assert!(a.media.hold);
        assert!(!a.media.should_send());
        // Our side of the session did not change, so neither does our version
        // (RFC 3264 §8: an unchanged version means an identical body).
        assert_eq!(a.sdp, first.sdp);
    }

    #[test]
    fn remote_address_change_moves_rtp_and_keeps_our_sdp() {
        let first = answer(BARESIP);
        let moved = reoffer(BARESIP, "c=IN IP4 10.0.0.5", "c=IN IP4 10.0.0.99");
        let a = renegotiate(&first.sdp, &moved, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert_eq!(a.media.remote_rtp, sock([10, 0, 0, 99], 10028));
        assert_eq!(a.sdp.origin.session_version, 1);
    }

    #[test]
    fn our_address_change_increments_version() {
        let first = answer(BARESIP);
        let offer = parse(BARESIP).unwrap();
        let a = renegotiate(&first.sdp, &offer, OUR_IP, OUR_PORT + 2, &prefs()).unwrap();
        assert_eq!(a.sdp.origin.session_version, 2);
        assert!(a.to_string().contains("m=audio 40002 "));
    }

    #[test]
    fn reoffer_after_our_own_offer_keeps_our_session_id() {
        let ours = offer(OUR_IP, OUR_PORT, &Prefs::new(77, 5));
        let re = parse(BARESIP).unwrap();
        let a = renegotiate(&ours, &re, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert_eq!(
            (a.sdp.origin.session_id, a.sdp.origin.session_version),
            (77, 6)
        );
    }

    // -- preferences and edge cases of negotiation ----------------------------------

    #[test]
    fn our_codec_list_filters_but_the_offer_orders() {
        let only_pcma = Prefs {
            codecs: vec![Codec::Pcma],
            ..prefs()
        };
        let offer = parse(BARESIP).unwrap();
        let a = negotiate(&offer, OUR_IP, OUR_PORT, &only_pcma).unwrap();
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcma, 8));
        let pcma_first = Prefs {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            ..prefs()
        };
        let a = negotiate(&offer, OUR_IP, OUR_PORT, &pcma_first).unwrap();
        assert_eq!(a.media.codec, Codec::Pcmu, "offer lists 0 before 8");
    }

    #[test]
    fn telephone_event_can_be_declined() {
        let no_dtmf = Prefs {
            telephone_event: false,
            ..prefs()
        };
        let offer = parse(BARESIP).unwrap();
        let a = negotiate(&offer, OUR_IP, OUR_PORT, &no_dtmf).unwrap();
        assert_eq!(a.media.telephone_event, None);
        assert!(!a.to_string().contains("telephone-event"));
    }

    #[test]
    fn dynamic_payload_type_for_pcmu_is_answered_with_that_number() {
        let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 5000 RTP/AVP 96 97\r\na=rtpmap:96 pcmu/8000/1\r\n\
                    a=rtpmap:97 TELEPHONE-EVENT/8000\r\n";
        let a = answer(text);
        assert_eq!((a.media.codec, a.media.payload_type), (Codec::Pcmu, 96));
        assert_eq!(a.media.telephone_event, Some(97));
        assert!(a.to_string().contains("a=rtpmap:96 PCMU/8000\r\n"));
    }

    #[test]
    fn stereo_or_wideband_g711_is_not_ours() {
        let text = SIPP_MINIMAL.replace(
            "RTP/AVP 0\r\n",
            "RTP/AVP 96 97\r\na=rtpmap:96 PCMU/8000/2\r\na=rtpmap:97 PCMA/16000\r\n",
        );
        let offer = parse(&text).unwrap();
        assert_eq!(
            negotiate(&offer, OUR_IP, OUR_PORT, &prefs()),
            Err(NegotiationError::NoCommonCodec)
        );
    }

    #[test]
    fn offers_without_usable_audio() {
        let video_only = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n",
        )
        .unwrap();
        let rejected_audio = parse(&SIPP_MINIMAL.replace("audio 6000", "audio 0")).unwrap();
        let no_media = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n").unwrap();
        let srtp = parse(&SIPP_MINIMAL.replace("RTP/AVP", "RTP/SAVP")).unwrap();
        let no_c = parse(&SIPP_MINIMAL.replace("c=IN IP4 127.0.0.1\r\n", "")).unwrap();
        let negotiate = |o: &SessionDescription| negotiate(o, OUR_IP, OUR_PORT, &prefs());
        assert_eq!(negotiate(&video_only), Err(NegotiationError::NoAudioStream));
        assert_eq!(
            negotiate(&rejected_audio),
            Err(NegotiationError::NoAudioStream)
        );
        assert_eq!(negotiate(&no_media), Err(NegotiationError::NoAudioStream));
        assert_eq!(
            negotiate(&srtp),
            Err(NegotiationError::UnsupportedTransport {
                proto: "RTP/SAVP".into()
            })
        );
        assert_eq!(
            negotiate(&no_c),
            Err(NegotiationError::MissingConnection { media_index: 0 })
        );
        for streams in [
            "m=audio 6000 RTP/SAVP 0\r\nm=audio 6002 RTP/AVP 18\r\n",
            "m=audio 6000 RTP/AVP 18\r\nm=audio 6002 RTP/SAVP 0\r\n",
        ] {
            let mixed =
                parse(&SIPP_MINIMAL.replace("m=audio 6000 RTP/AVP 0\r\n", streams)).unwrap();
            assert_eq!(negotiate(&mixed), Err(NegotiationError::NoCommonCodec));
        }
    }

    // -- our own offers ------------------------------------------------------------

    #[test]
    fn outbound_offer() {
        let sdp = offer(OUR_IP, OUR_PORT, &Prefs::new(42, 42));
        assert_eq!(
            sdp.to_string(),
            "v=0\r\n\
             o=hotline 42 42 IN IP4 192.0.2.10\r\n\
             s=hotline\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        assert_eq!(parse(&sdp.to_string()).unwrap(), sdp);
    }

    #[test]
    fn answers_to_our_offer() {
        let ours = offer(OUR_IP, OUR_PORT, &prefs());
        let theirs = parse(
            "v=0\r\no=- 9 9 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\n\
             m=audio 9000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\n",
        )
        .unwrap();
        let n = accept_answer(&ours, &theirs).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
        assert_eq!(n.telephone_event, Some(96));
        assert_eq!(n.remote_rtp, sock([10, 0, 0, 7], 9000));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.remote_ptime, Some(30));

        let recvonly = parse(&theirs.to_string().replace("a=ptime:30", "a=recvonly")).unwrap();
        assert_eq!(
            accept_answer(&ours, &recvonly).unwrap().direction,
            Direction::SendOnly
        );
        let rejected = parse(&theirs.to_string().replace("m=audio 9000", "m=audio 0")).unwrap();
        assert_eq!(
            accept_answer(&ours, &rejected),
            Err(NegotiationError::NoAudioStream)
        );
        let g729 = parse(&theirs.to_string().replace("RTP/AVP 8 96", "RTP/AVP 18")).unwrap();
        assert_eq!(
            accept_answer(&ours, &g729),
            Err(NegotiationError::NoCommonCodec)
        );
        let extra = parse(&format!("{theirs}m=video 0 RTP/AVP 96\r\n")).unwrap();
        assert_eq!(
            accept_answer(&ours, &extra),
            Err(NegotiationError::MediaCountMismatch {
                offered: 1,
                answered: 2
            })
        );
    }

    // -- parser tolerance -------------------------------------------------------------

    #[test]
    fn crlf_and_lf_parse_alike() {
        for text in ALL_FIXTURES {
            let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
            let lf = text.replace("\r\n", "\n");
            assert_eq!(parse(&crlf).unwrap(), parse(&lf).unwrap());
        }
    }

    #[test]
    fn tolerates_blanks_unknown_lines_and_attributes() {
        let text = "\u{feff}v=0  \r\n\r\no=- 5 6 IN IP4 10.0.0.1\t\r\ns=\r\ni=session info\r\n\
                    c=IN IP4 224.2.1.1/127/3 \r\nt=0 0\r\nb=AS:64\r\nz=2882844526 -1h\r\n\
                    q=unknown-type\r\na=tool:foo\r\nm=audio 5000/2 RTP/AVP 0   \r\n\
                    k=prompt\r\na=weird\r\na=rtpmap:junk\r\na=ptime:abc\r\na=maxptime:40\r\n\r\n\r\n";
        let sdp = parse(text).unwrap();
        assert_eq!(sdp.origin.session_version, 6);
        assert_eq!(sdp.session_name, "");
        assert_eq!(
            sdp.connection.unwrap().address,
            IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))
        );
        let m = &sdp.media[0];
        assert_eq!((m.port, m.port_count), (5000, Some(2)));
        assert_eq!(m.formats, ["0"]);
        assert_eq!(m.ptime, None);
        let names: Vec<&str> = m.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["weird", "rtpmap", "ptime", "maxptime"]);
        assert_eq!(sdp.attributes[0].value.as_deref(), Some("foo"));
    }

    #[test]
    fn missing_session_name_and_timing_get_defaults() {
        let sdp = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\nc=IN IP4 10.0.0.1\nm=audio 1 RTP/AVP 0\n")
            .unwrap();
        assert_eq!(sdp.session_name, "-");
        assert_eq!(sdp.timing, Timing { start: 0, stop: 0 });
    }

    #[test]
    fn rejected_stream_without_formats_is_tolerated() {
        let sdp = parse(&format!("{SIPP_MINIMAL}m=video 0 UDP/TLS/RTP/SAVPF\r\n")).unwrap();
        assert!(sdp.media[1].formats.is_empty());
        let a = negotiate(&sdp, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert!(a.to_string().ends_with("m=video 0 UDP/TLS/RTP/SAVPF 0\r\n"));
    }

    #[test]
    fn non_rtp_formats_are_kept_as_text() {
        let sdp = parse(&format!("{SIPP_MINIMAL}m=image 6002 udptl t38\r\n")).unwrap();
        assert_eq!(sdp.media[1].formats, ["t38"]);
        assert_eq!(sdp.media[1].payload_types().count(), 0);
        let a = negotiate(&sdp, OUR_IP, OUR_PORT, &prefs()).unwrap();
        assert!(a.to_string().ends_with("m=image 0 udptl t38\r\n"));
    }

    #[test]
    fn fixtures_round_trip_through_display() {
        for text in ALL_FIXTURES {
            let sdp = parse(text).unwrap();
            assert_eq!(parse(&sdp.to_string()).unwrap(), sdp);
        }
    }

    // -- parser refusals ---------------------------------------------------------------

    fn refused(text: &str) -> SdpError {
        parse(text).expect_err("should be refused")
    }

    #[test]
    fn refuses_what_is_really_broken() {
        let o = "o=- 1 1 IN IP4 10.0.0.1";
        let cases: Vec<(String, SdpErrorKind, Option<usize>)> = vec![
            (String::new(), SdpErrorKind::Empty, None),
            ("\r\n \r\n".into(), SdpErrorKind::Empty, None),
            ("hello world".into(), SdpErrorKind::MissingVersion, Some(1)),
            (
                format!("{o}\r\nv=0\r\n"),
                SdpErrorKind::MissingVersion,
                Some(1),
            ),
            (
                "\r\nv=1\r\n".into(),
                SdpErrorKind::UnsupportedVersion,
                Some(2),
            ),
            ("v=0\r\ns=-\r\n".into(), SdpErrorKind::MissingOrigin, None),
            (
                format!("v=0\r\n{o}\r\nv=0\r\n"),
                SdpErrorKind::Syntax,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nthis is not sdp\r\n"),
                SdpErrorKind::Syntax,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\n=x\r\n"),
                SdpErrorKind::Syntax,
                Some(3),
            ),
            (
                "v=0\r\no=- 1 IN IP4 10.0.0.1\r\n".into(),
                SdpErrorKind::MalformedOrigin,
                Some(2),
            ),
            (
                "v=0\r\no=- x 1 IN IP4 h\r\n".into(),
                SdpErrorKind::MalformedOrigin,
                Some(2),
            ),
            (
                "v=0\r\no=- 99999999999999999999 1 IN IP4 h\r\n".into(),
                SdpErrorKind::MalformedOrigin,
                Some(2),
            ),
            (
                "v=0\r\no=- 1 1 ATM NSAP h\r\n".into(),
                SdpErrorKind::MalformedOrigin,
                Some(2),
            ),
            (
                format!("v=0\r\n{o}\r\nc=IN IP4\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nc=IN IP4 pbx.example.com\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nc=IN IP4 ::1\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nc=IN IP6 10.0.0.1\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nc=IN IP4 300.0.0.1\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nc=XX IP4 10.0.0.1\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 5000 RTP/AVP\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 70000 RTP/AVP 0\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio -1 RTP/AVP 0\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 5000 RTP/AVP 0 128\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 5000 RTP/AVP PCMU\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 5000/x RTP/AVP 0\r\n"),
                SdpErrorKind::MalformedMedia,
                Some(3),
            ),
            (
                format!("v=0\r\n{o}\r\nm=audio 5000 RTP/AVP 0\r\n\r\nc=IN IP4 10.0.0\r\n"),
                SdpErrorKind::MalformedConnection,
                Some(5),
            ),
        ];
        for (text, kind, line) in cases {
            let err = refused(&text);
            assert_eq!((err.kind, err.line), (kind, line), "{text:?}: {err}");
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = refused("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 pbx.example.com\r\n");
        assert_eq!(
            err.to_string(),
            "SDP line 3: malformed c= line: address `pbx.example.com` is not an IP literal \
             (host names are not resolved)"
        );
        let long = format!("v=0\r\n{}", "y".repeat(500));
        let msg = refused(&long).to_string();
        assert!(msg.starts_with("SDP line 2: syntax error:"), "{msg}");
        assert!(msg.len() < 200, "offending text is cut short: {msg}");
        assert_eq!(refused("").to_string(), "SDP: empty session description");
        assert_eq!(
            refused("\u{1b}[2J").to_string(),
            "SDP line 1: first line is not v=: found `\\u{1b}[2J`"
        );
    }

    #[test]
    fn every_truncation_of_every_fixture_is_safe() {
        for text in ALL_FIXTURES {
            for (cut, _) in text.char_indices() {
                if let Ok(sdp) = parse(&text[..cut]) {
                    let _ = negotiate(&sdp, OUR_IP, OUR_PORT, &prefs());
                    assert_eq!(parse(&sdp.to_string()).as_ref(), Ok(&sdp));
                }
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        for garbage in [
            "\0\0\0\0",
            "INVITE sip:ivr@example.com SIP/2.0\r\n",
            "<html><body>sdp</body></html>",
            "v=",
            "v",
            "=0",
            "\u{1F4DE}=0",
            "v=0",
            "v=0\r\no=",
            "v=0\r\n\u{0}=x\r\n",
        ] {
            assert!(parse(garbage).is_err(), "{garbage:?}");
        }
    }

    // -- random input ------------------------------------------------------------------

    /// Lines that look like SDP, so that random sequences of them get past the
    /// first checks and exercise the deeper paths.
    fn sdp_like_line() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(vec![
            "o=- 1 2 IN IP4 10.0.0.1",
            "o=- 1 2 IN IP6 ::1",
            "s=-",
            "t=0 0",
            "c=IN IP4 10.0.0.2",
            "c=IN IP4 0.0.0.0",
            "c=IN IP6 ::1",
            "m=audio 4000 RTP/AVP 0 8 101",
            "m=audio 0 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 96 120",
            "m=audio 4004 RTP/SAVP 0",
            "m=video 4006 RTP/AVP 96",
            "m=image 4008 udptl t38",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:120 telephone-event/8000",
            "a=rtpmap:96 PCMA/8000",
            "a=rtpmap:0 PCMU/8000/1",
            "a=fmtp:101 0-16",
            "a=fmtp:101",
            "a=ptime:20",
            "a=sendonly",
            "a=recvonly",
            "a=inactive",
            "a=sendrecv",
            "a=rtcp-mux",
            "",
        ])
        .prop_map(str::to_string);
        let random = ("[a-z]", "=?", "[ -~]{0,24}").prop_map(|(k, eq, v)| format!("{k}{eq}{v}"));
        prop_oneof![19 => fixed, 1 => random]
    }

    fn sdp_like_text() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(sdp_like_line(), 0..24),
            prop::sample::select(vec!["\r\n", "\n"]),
        )
            .prop_map(|(lines, eol)| {
                // Most bodies start right so that the rest of the lines get read.
                let mut text = String::from("v=0");
                if !lines.iter().any(|l| l.starts_with("o=")) {
                    text.push_str(eol);
                    text.push_str("o=- 7 7 IN IP4 10.0.0.9");
                }
                for line in lines {
                    text.push_str(eol);
                    text.push_str(&line);
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parse_never_panics_on_any_string(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn sdp_like_input_parses_negotiates_and_round_trips(text in sdp_like_text()) {
            if let Ok(sdp) = parse(&text) {
                prop_assert_eq!(parse(&sdp.to_string()), Ok(sdp.clone()));
                if let Ok(a) = negotiate(&sdp, OUR_IP, OUR_PORT, &prefs()) {
                    // RFC 3264 §6: one answer m= line per offered one, in order.
                    prop_assert_eq!(a.sdp.media.len(), sdp.media.len());
                    for (ours, theirs) in a.sdp.media.iter().zip(&sdp.media) {
                        prop_assert_eq!(&ours.media, &theirs.media);
                    }
                    prop_assert_eq!(parse(&a.to_string()), Ok(a.sdp.clone()));
                    let _ = accept_answer(&offer(OUR_IP, OUR_PORT, &prefs()), &sdp);
                }
            }
        }

        #[test]
        fn mutated_fixtures_never_panic(
            index in 0..ALL_FIXTURES.len(),
            at in any::<prop::sample::Index>(),
            junk in "[ -~\r\n]{0,8}",
        ) {
            let text = ALL_FIXTURES[index];
            let cut = text.char_indices().map(|(i, _)| i).nth(at.index(text.len())).unwrap_or(0);
            let mutated = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
            if let Ok(sdp) = parse(&mutated) {
                let _ = negotiate(&sdp, OUR_IP, OUR_PORT, &prefs());
                prop_assert_eq!(parse(&sdp.to_string()), Ok(sdp));
            }
        }
    }
}
