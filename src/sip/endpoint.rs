//! The SIP user agent server: sockets, request validation, and one task per call.
//!
//! # What rsipstack (=0.7.14) does and does not do here
//!
//! rsipstack is used for the SIP URI grammar (`rsipstack::sip::uri::parse_uri`, to
//! decide 416 and to find where an in-dialog request goes). Its transport,
//! transaction and dialog layers are not used, because they sit behind a parser and
//! a receive loop that cannot give the answers this server owes:
//!
//! * `transport/udp.rs` (the `SipMessage::try_from(packet)` match in the receive
//!   loop, around line 180) logs and `continue`s on any parse error, so a malformed
//!   request can never be answered with 400, nor a `SIP/7.0` one with 505
//!   (RFC 4475 §3.1.2). Nothing above the transport ever sees those datagrams.
//! * `sip/method.rs:5` is a closed `enum Method`; `sip/parser.rs` (`parse_request_line`)
//!   fails on any other method, so an unknown method cannot be answered 501.
//! * `sip/parser.rs` (the header loop near line 47) reads an unparseable
//!   Content-Length as 0 and silently truncates a body shorter than Content-Length
//!   (near line 70), where RFC 3261 §18.3 wants a 400.
//!
//! Feeding pre-validated messages into its transaction layer through a channel
//! transport would have meant re-serialising every message and keeping two views of
//! each transaction; the server side needed here (INVITE: absorb retransmissions,
//! retransmit the final response until ACK; non-INVITE: replay the last response) is
//! small, so `wire.rs` frames messages, `check.rs` applies RFC 3261 §8.2, and
//! `dialog.rs` runs transactions and the dialog per call.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::build::{self, ResponseSpec};
use super::check::{self, ALLOW, SUPPORTED_HEADER};
use super::dialog::{CallTask, Inbound};
use super::gate::{Gate, Refusal, TRY_NEXT_HEADER, TRY_NEXT_VALUE};
use super::guard::{Guard, GuardSettings, Verdict};
use super::wire::{self, Message, StartLine, Unframed};
use super::{IncomingCall, SipCommand, SipEvent};

#[derive(Clone, Debug)]
pub struct SipConfig {
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    /// Host written in Contact and Via; defaults to the bound UDP address's IP.
    pub contact_host: Option<String>,
    pub user_agent: String,
    /// RFC 3261 T1 (500 ms); tests shorten it. T2 is the retransmission cap (4 s).
    pub t1: Duration,
    pub t2: Duration,
    /// New calls waiting for the call layer; when full, INVITEs get 503.
    pub call_queue: usize,
    /// Asked before answering OPTIONS and taking a new INVITE (a farm's drain, its
    /// full instances); none: always in service.
    pub gate: Option<Arc<dyn Gate>>,
    /// Who may ask what (src/sip/guard.rs); default: open, unlimited.
    pub guard: GuardSettings,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            udp: SocketAddr::from(([0, 0, 0, 0], 5060)),
            tcp: None,
            contact_host: None,
            user_agent: concat!("hotline/", env!("CARGO_PKG_VERSION")).to_owned(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            call_queue: 256,
            gate: None,
            guard: GuardSettings::default(),
        }
    }
}

#[derive(Debug)]
pub enum SipError {
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for SipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SipError::Bind(addr, e) => write!(f, "cannot bind SIP socket {addr}: {e}"),
        }
    }
}

impl std::error::Error for SipError {}

/// A call handed to the call layer: its events in, its commands out.
pub struct NewCall {
    pub call: IncomingCall,
    pub events: mpsc::Receiver<SipEvent>,
    pub commands: mpsc::Sender<SipCommand>,
}

/// Methods counted one by one; everything else is `other`.
const COUNTED: &[&str] = &[
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REFER", "NOTIFY", "REGISTER",
];

#[derive(Default)]
pub(crate) struct Counters {
    requests: [AtomicU64; 10],
    responses: Vec<AtomicU64>,
    pub malformed_dropped: AtomicU64,
    pub stray_responses: AtomicU64,
    pub calls_total: AtomicU64,
    pub ack_timeouts: AtomicU64,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            responses: (100..700).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        }
    }

    fn request(&self, method: &str) {
        let i = COUNTED
            .iter()
            .position(|m| *m == method)
            .unwrap_or(COUNTED.len());
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn response(&self, code: u16) {
        if let Some(c) = self.responses.get(usize::from(code).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A snapshot of the endpoint's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SipStats {
    /// Requests received by method (`OTHER` for the rest), only non-zero ones.
    pub requests: Vec<(&'static str, u64)>,
    /// Responses sent by status code, only non-zero ones.
    pub responses: Vec<(u16, u64)>,
    /// Datagrams that were not SIP or could not be answered (no usable Via).
    pub malformed_dropped: u64,
    /// Responses that matched no call.
    pub stray_responses: u64,
    pub calls_total: u64,
    pub calls_active: u64,
    pub ack_timeouts: u64,
}

impl SipStats {
    pub fn responses_with(&self, code: u16) -> u64 {
        self.responses
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }
}

/// How to reach the peer a message came from.
#[derive(Clone, Debug)]
pub(crate) enum Conn {
    Udp,
    Tcp(mpsc::Sender<Vec<u8>>),
}

#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub conn: Conn,
    pub addr: SocketAddr,
}

/// What every call task shares with the receive loops.
pub(crate) struct Shared {
    pub udp: UdpSocket,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    pub cfg: SipConfig,
    pub counters: Counters,
    pub calls: Mutex<HashMap<String, mpsc::Sender<Inbound>>>,
    new_calls: mpsc::Sender<NewCall>,
    guard: Guard,
}

impl Shared {
    /// Sends bytes to `dest` over the peer's connection (UDP: to `dest`).
    pub async fn send(&self, conn: &Conn, dest: SocketAddr, bytes: Vec<u8>) {
        let sent = match conn {
            Conn::Udp => self.udp.send_to(&bytes, dest).await.map(|_| ()),
            Conn::Tcp(tx) => tx
                .send(bytes)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        if let Err(e) = sent {
            tracing::debug!(%dest, error = %e, "SIP send failed");
        }
    }

    /// Answers `req` and counts it; `to_tag` only matters for final responses.
    pub async fn reply(&self, req: &Message, peer: &Peer, spec: &ResponseSpec<'_>) -> Vec<u8> {
        let bytes = build::response(req, peer.addr, spec);
        if let Some(dest) = self.response_dest(req, peer) {
            self.counters.response(spec.code);
            self.send(&peer.conn, dest, bytes.clone()).await;
        }
        bytes
    }

    pub fn response_dest(&self, req: &Message, peer: &Peer) -> Option<SocketAddr> {
        let via = req.top_via()?;
        Some(match peer.conn {
            Conn::Udp => build::response_destination(&via, peer.addr),
            Conn::Tcp(_) => peer.addr,
        })
    }

    pub fn contact_host(&self) -> String {
        self.cfg
            .contact_host
            .clone()
            .unwrap_or_else(|| self.udp_addr.ip().to_string())
    }

    pub fn sent_by(&self, conn: &Conn) -> (String, &'static str) {
        let port = match (conn, self.tcp_addr) {
            (Conn::Tcp(_), Some(a)) => a.port(),
            _ => self.udp_addr.port(),
        };
        let transport = if matches!(conn, Conn::Tcp(_)) {
            "TCP"
        } else {
            "UDP"
        };
        (format!("{}:{port}", self.contact_host()), transport)
    }

    pub fn contact(&self, conn: &Conn) -> String {
        let (sent_by, transport) = self.sent_by(conn);
        if transport == "TCP" {
            format!("<sip:hotline@{sent_by};transport=tcp>")
        } else {
            format!("<sip:hotline@{sent_by}>")
        }
    }

    pub fn forget(&self, call_id: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(call_id);
        }
    }

    fn route_to_call(&self, call_id: &str) -> Option<mpsc::Sender<Inbound>> {
        self.calls.lock().ok()?.get(call_id).cloned()
    }
}

pub struct SipEndpoint {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

/// A burst of INVITEs (a mass call-in after an outage notice) must wait in the kernel,
/// not be dropped there: the default ~200 KiB holds only a few hundred.
const SIP_RECEIVE_BUFFER: usize = 8 << 20;

/// Asks for a bigger receive buffer: forced if hotline may (CAP_NET_ADMIN), else up to
/// the system's `net.core.rmem_max`.
fn grow_receive_buffer(sock: &UdpSocket, bytes: usize) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = sock.as_raw_fd();
        let val = bytes as libc::c_int;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let ptr = (&val as *const libc::c_int).cast::<libc::c_void>();
        // SAFETY: setsockopt on a socket this endpoint owns, with a pointer to a live int.
        let forced =
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, ptr, len) };
        if forced != 0 {
            // SAFETY: as above.
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, ptr, len) };
        }
    }
}

impl SipEndpoint {
    /// Binds the sockets and starts serving; new calls arrive on the receiver.
    pub async fn start(
        cfg: SipConfig,
        cancel: CancellationToken,
    ) -> Result<(SipEndpoint, mpsc::Receiver<NewCall>), SipError> {
        let udp = UdpSocket::bind(cfg.udp)
            .await
            .map_err(|e| SipError::Bind(cfg.udp, e))?;
        let udp_addr = udp.local_addr().map_err(|e| SipError::Bind(cfg.udp, e))?;
        grow_receive_buffer(&udp, SIP_RECEIVE_BUFFER);
        let tcp = match cfg.tcp {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| SipError::Bind(a, e))?,
            ),
            None => None,
        };
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let (new_calls, rx) = mpsc::channel(cfg.call_queue.max(1));
        let guard = Guard::new(cfg.guard.clone());
        tokio::spawn(super::refusals::summarise(
            cfg.guard.limits.log_every,
            cancel.clone(),
        ));
        let shared = Arc::new(Shared {
            udp,
            udp_addr,
            tcp_addr,
            cfg,
            counters: Counters::new(),
            calls: Mutex::new(HashMap::new()),
            new_calls,
            guard,
        });
        tokio::spawn(udp_loop(shared.clone(), cancel.clone()));
        if let Some(listener) = tcp {
            tokio::spawn(tcp_accept_loop(shared.clone(), listener, cancel.clone()));
        }
        Ok((SipEndpoint { shared, cancel }, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.shared.tcp_addr
    }

    /// Places a call (src/sip/uac.rs); responses to it are routed by its Call-ID like
    /// every call's messages.
    pub async fn dial(
        &self,
        req: super::uac::DialRequest,
        cancel: CancellationToken,
    ) -> super::uac::DialOutcome {
        super::uac::dial(self.shared.clone(), req, cancel).await
    }

    pub fn stats(&self) -> SipStats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut requests = Vec::new();
        for (i, counter) in c.requests.iter().enumerate() {
            let n = load(counter);
            if n > 0 {
                requests.push((COUNTED.get(i).copied().unwrap_or("OTHER"), n));
            }
        }
        let responses = (100u16..700)
            .zip(c.responses.iter())
            .map(|(code, n)| (code, load(n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        SipStats {
            requests,
            responses,
            malformed_dropped: load(&c.malformed_dropped),
            stray_responses: load(&c.stray_responses),
            calls_total: load(&c.calls_total),
            calls_active: self.shared.calls.lock().map_or(0, |m| m.len() as u64),
            ack_timeouts: load(&c.ack_timeouts),
        }
    }

    /// Ends every call (BYE for answered ones, 480 for ringing ones), waits a bounded
    /// time for them to finish, then stops the sockets.
    pub async fn shutdown(&self) {
        let calls: Vec<_> = match self.shared.calls.lock() {
            Ok(calls) => calls.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for inbox in calls {
            let _ = inbox.send(Inbound::Shutdown).await;
        }
        // BYEs are answered in milliseconds; a peer that never answers does not hold
        // the stop for the full 64·T1.
        let deadline =
            tokio::time::Instant::now() + (self.shared.cfg.t1 * 64).min(Duration::from_secs(4));
        while tokio::time::Instant::now() < deadline && self.stats().calls_active > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.cancel.cancel();
    }
}

async fn udp_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            r = shared.udp.recv_from(&mut buf) => r,
        };
        let (len, src) = match received {
            Ok(r) => r,
            // ICMP port-unreachable from an earlier send surfaces here on some OSes.
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let peer = Peer {
            conn: Conn::Udp,
            addr: src,
        };
        match wire::parse(buf.get(..len).unwrap_or_default(), false) {
            Ok(Some((msg, _))) => on_message(&shared, msg, peer).await,
            Ok(None) | Err(Unframed::KeepAlive) => {}
            Err(e) => {
                tracing::debug!(%src, error = ?e, "dropped unframeable datagram");
                shared
                    .counters
                    .malformed_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Caps what one TCP peer may buffer before a message is complete.
const MAX_STREAM_BUFFER: usize = 256 * 1024;

async fn tcp_accept_loop(shared: Arc<Shared>, listener: TcpListener, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                tokio::spawn(tcp_connection(shared.clone(), stream, addr, cancel.clone()));
            }
            Err(e) => tracing::debug!(error = %e, "TCP accept failed"),
        }
    }
}

async fn tcp_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    cancel: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let peer = Peer {
        conn: Conn::Tcp(tx),
        addr,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            r = reader.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            match wire::parse(&buf, true) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used.min(buf.len()));
                    on_message(&shared, msg, peer.clone()).await;
                }
                Ok(None) => break,
                Err(Unframed::KeepAlive) => {
                    buf.clear();
                    break;
                }
                Err(_) => {
                    // The stream cannot be resynchronised after a framing error.
                    shared
                        .counters
                        .malformed_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if buf.len() > MAX_STREAM_BUFFER {
            return;
        }
    }
}

async fn on_message(shared: &Arc<Shared>, msg: Message, peer: Peer) {
    let StartLine::Request { method, .. } = &msg.start else {
        on_response(shared, msg, peer);
        return;
    };
    let method = method.clone();
    shared.counters.request(&method);
    if !screened(shared, &msg, &peer, &method).await {
        return;
    }
    if let Err(reject) = check::check_request(&msg) {
        answer_reject(shared, &msg, &peer, &method, reject.code, &reject.extra).await;
        return;
    }
    let call_id = msg.call_id().unwrap_or_default().to_owned();
    if let Some(inbox) = shared.route_to_call(&call_id) {
        // A full inbox drops the message: UDP peers retransmit.
        let _ = inbox.try_send(Inbound::msg(msg, peer));
        return;
    }
    let has_to_tag = msg.to_tag().is_some();
    match method.as_str() {
        "INVITE" if !has_to_tag => new_call(shared, msg, peer).await,
        "ACK" => {}
        "OPTIONS" if let Some(r) = gate(shared).and_then(|g| g.options()) => {
            refuse(shared, &msg, &peer, "OPTIONS", r).await;
        }
        "OPTIONS" => {
            let extra = [
                ("Allow", ALLOW.to_owned()),
                ("Accept", "application/sdp".to_owned()),
                ("Supported", SUPPORTED_HEADER.to_owned()),
            ];
            let spec = stateless(shared, 200, &extra);
            shared.reply(&msg, &peer, &spec).await;
        }
        _ => {
            shared
                .reply(&msg, &peer, &stateless(shared, 481, &[]))
                .await;
        }
    }
}

fn gate(shared: &Shared) -> Option<&dyn Gate> {
    shared.cfg.gate.as_deref()
}

async fn refuse(shared: &Shared, msg: &Message, peer: &Peer, method: &str, r: Refusal) {
    let mut extra = vec![("Reason", format!("SIP;cause={};text=\"{}\"", r.code, r.why))];
    if let Some(s) = r.retry_after {
        let s = if r.spread {
            build::spread_secs(msg, s)
        } else {
            s
        };
        extra.push(("Retry-After", s.to_string()));
    }
    answer_reject(shared, msg, peer, method, r.code, &extra).await;
}

/// The guard's hook: false if the request goes no further (dropped or answered).
async fn screened(shared: &Arc<Shared>, msg: &Message, peer: &Peer, method: &str) -> bool {
    let new_dialog = method == "INVITE"
        && msg.to_tag().is_none()
        && msg
            .call_id()
            .is_none_or(|id| shared.route_to_call(id).is_none());
    let ua = msg.get("User-Agent");
    match shared.guard.screen(peer.addr.ip(), method, ua, new_dialog) {
        Verdict::Pass => true,
        Verdict::Drop => false,
        Verdict::Answer { code, retry_after } => {
            answer_limited(shared, msg, peer, method, code, retry_after).await;
            false
        }
    }
}

/// The guard's answer: `code`, with Retry-After where it gave one.
async fn answer_limited(
    shared: &Shared,
    msg: &Message,
    peer: &Peer,
    method: &str,
    code: u16,
    retry_after: Option<u32>,
) {
    let extra: Vec<_> = retry_after
        .map(|s| ("Retry-After", s.to_string()))
        .into_iter()
        .collect();
    answer_reject(shared, msg, peer, method, code, &extra).await;
}

fn stateless<'a>(
    shared: &'a Shared,
    code: u16,
    extra: &'a [(&'a str, String)],
) -> ResponseSpec<'a> {
    ResponseSpec {
        code,
        to_tag: None,
        extra,
        body: None,
        user_agent: &shared.cfg.user_agent,
    }
}

async fn answer_reject(
    shared: &Shared,
    msg: &Message,
    peer: &Peer,
    method: &str,
    code: u16,
    extra: &[(&str, String)],
) {
    // RFC 3261 §17.1.1.3: an ACK is never answered.
    if method == "ACK" || msg.top_via().is_none() {
        shared
            .counters
            .malformed_dropped
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    // RFC 3261 §8.2.7: a stateless answer gives a retransmitted request the same tag.
    let tag = build::stateless_tag(msg);
    let spec = ResponseSpec {
        code,
        to_tag: Some(&tag),
        extra,
        body: None,
        user_agent: &shared.cfg.user_agent,
    };
    shared.reply(msg, peer, &spec).await;
}

fn on_response(shared: &Shared, msg: Message, peer: Peer) {
    let target = msg.call_id().and_then(|id| shared.route_to_call(id));
    let delivered = target.is_some_and(|inbox| inbox.try_send(Inbound::msg(msg, peer)).is_ok());
    if !delivered {
        shared
            .counters
            .stray_responses
            .fetch_add(1, Ordering::Relaxed);
    }
}

async fn new_call(shared: &Arc<Shared>, msg: Message, peer: Peer) {
    let may_try_next = msg.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case(TRY_NEXT_HEADER)
            && h.value.trim().eq_ignore_ascii_case(TRY_NEXT_VALUE)
    });
    if let Some(r) = gate(shared).and_then(|g| g.invite(may_try_next)) {
        if let Some(reason) = r.tally {
            super::refusals::note(peer.addr.ip(), reason);
        }
        refuse(shared, &msg, &peer, "INVITE", r).await;
        return;
    }
    let held = match shared.guard.open_call(peer.addr.ip()) {
        Ok(held) => held,
        Err(Verdict::Answer { code, retry_after }) => {
            answer_limited(shared, &msg, &peer, "INVITE", code, retry_after).await;
            return;
        }
        Err(_) => return,
    };
    let call_id = msg.call_id().unwrap_or_default().to_owned();
    let call = incoming_call(&msg, peer.addr);
    let (inbox_tx, inbox_rx) = mpsc::channel(32);
    let (events_tx, events_rx) = mpsc::channel(32);
    let (commands_tx, commands_rx) = mpsc::channel(32);
    let handed = shared.new_calls.try_send(NewCall {
        call,
        events: events_rx,
        commands: commands_tx,
    });
    if handed.is_err() {
        super::refusals::note(peer.addr.ip(), super::refusals::Reason::CallLayerBusy);
        let extra = [("Retry-After", "5".to_owned())];
        answer_reject(shared, &msg, &peer, "INVITE", 503, &extra).await;
        return;
    }
    if let Ok(mut calls) = shared.calls.lock() {
        calls.insert(call_id.clone(), inbox_tx);
    }
    shared.counters.calls_total.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("call", call_id = %call_id);
    let task =
        CallTask::new(shared.clone(), msg, peer, events_tx, commands_rx, inbox_rx).holding(held);
    tokio::spawn(task.run().instrument(span));
}

pub(super) fn incoming_call(msg: &Message, source: SocketAddr) -> IncomingCall {
    let from_na = msg.get("From").and_then(|f| wire::NameAddr::parse(f).ok());
    let uri_user = |uri: &str| -> String {
        rsipstack::sip::uri::parse_uri(uri)
            .ok()
            .and_then(|u| u.user().map(str::to_owned))
            .unwrap_or_default()
    };
    let user = match &msg.start {
        StartLine::Request { uri, .. } => uri_user(uri),
        StartLine::Response { .. } => String::new(),
    };
    let from = from_na
        .as_ref()
        .map_or_else(String::new, |n| match &n.display {
            Some(d) => format!("{d} <{}>", n.uri),
            None => n.uri.clone(),
        });
    IncomingCall {
        call_id: msg.call_id().unwrap_or_default().to_owned(),
        user,
        from,
        to: msg.get("To").unwrap_or_default().to_owned(),
        caller: from_na
            .as_ref()
            .map(|n| uri_user(&n.uri))
            .unwrap_or_default(),
        from_tag: from_na
            .as_ref()
            .and_then(|n| n.param("tag"))
            .unwrap_or_default()
            .to_owned(),
        invite_branch: msg
            .list("Via")
            .last()
            .and_then(super::wire::Via::parse)
            .and_then(|v| v.branch().map(str::to_owned))
            .filter(|b| b.starts_with(super::build::BRANCH_MAGIC))
            .unwrap_or_default(),
        offer: msg.body_text(),
        source,
    }
}
