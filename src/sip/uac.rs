//! Calls hotline places: the INVITE client transaction (RFC 3261 §17.1.1) and what the
//! UAC core does around it (§8.1.3, §13.2.2, §9.1, §22.2), on the endpoint's own wire,
//! build and dialog code. Once a 2xx is ACKed the dialog goes to a [`CallTask`], the
//! same one an answered inbound call has, and the call layer drives it like any call.
//!
//! - Timer A retransmits the INVITE over UDP until a response; Timer B (64·T1) gives
//!   up when none came (a 408 of our own).
//! - A response is the transaction's whose branch its top Via carries, with the
//!   request's method in its CSeq (§17.1.3); a CSeq alone matches nothing. Others are
//!   ignored and counted as stray.
//! - 1xx: the far end rings (183 with SDP: early media, which does not start the flow).
//! - A non-2xx final is ACKed inside the transaction, and that ACK is sent again for
//!   every retransmission of the final response while the call's state lingers.
//! - 2xx: ACKed (a new transaction), and that ACK is repeated for each 2xx
//!   retransmission by the dialog. Another branch's 2xx to a forked INVITE (another To
//!   tag) is a dialog of its own: the call task gives it its own ACK and a BYE
//!   ([`end_unwanted_2xx`], as for a 2xx after hotline gave up).
//! - 3xx: its SIP Contacts are tried in turn, highest q first (§8.1.3.4), each after a
//!   4xx/5xx from the one before (a 6xx ends the call everywhere, §21.6); up to
//!   `max_redirects` redirections, five Contacts of each.
//! - 401/407: answered once with the trunk's credentials (digest.rs); a second
//!   challenge ends the attempt as rejected.
//! - At `ring_timeout` (or when the job is cancelled) a CANCEL goes out once the far end
//!   has sent a provisional response (§9.1); a 487 is expected. A 200 that crosses the
//!   CANCEL is ACKed and the call ended with a BYE.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::build::{self, RequestSpec};
use super::check::ALLOW;
use super::dialog::{CallTask, Inbound, UacDialog, branch_of};
use super::digest::Challenge;
use super::endpoint::{Conn, Peer, Shared};
use super::wire::{Message, NameAddr, StartLine};
use super::{SipCommand, SipEvent};

/// A call to place.
#[derive(Clone, Debug)]
pub struct DialRequest {
    /// Chosen by the caller of `dial`, so that it can be recorded before the INVITE.
    pub call_id: String,
    /// The Request-URI: `sip:13800138000@trunk.example` or `sip:user@127.0.0.5:5070`.
    pub target: String,
    /// Our identity (From), a SIP URI.
    pub from: String,
    /// An outbound proxy every request goes through first (a loose `Route`).
    pub proxy: Option<String>,
    /// Digest credentials for a 401/407: user name and password.
    pub credentials: Option<(String, String)>,
    /// Our SDP offer.
    pub sdp: String,
    pub ring_timeout: Duration,
    pub max_redirects: u8,
}

/// Why a call was given up by hotline before an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaveUp {
    /// Nobody answered within the ring timeout.
    RingTimeout,
    /// The job was cancelled or hotline is stopping.
    Cancelled,
}

/// How a dial ended.
pub enum DialOutcome {
    Answered(Answered),
    /// No call: the final status (0 when there was none at all), why in words, and
    /// whether hotline gave up itself.
    Failed {
        code: u16,
        why: String,
        gave_up: Option<GaveUp>,
    },
}

/// An answered call, as the call layer drives it.
pub struct Answered {
    /// The SDP answer in the 2xx.
    pub sdp: String,
    /// The far end as it answered (To header).
    pub to: String,
    /// Our From tag: with the Call-ID, what the call's tickets are keyed by.
    pub local_tag: String,
    pub source: SocketAddr,
    pub events: mpsc::Receiver<SipEvent>,
    pub commands: mpsc::Sender<SipCommand>,
}

/// Where a SIP URI's requests go: its host and port (5060), resolved.
pub async fn resolve(uri: &str) -> Option<SocketAddr> {
    let bare = NameAddr::parse(uri)
        .map(|n| n.uri)
        .unwrap_or_else(|_| uri.to_owned());
    let u = rsipstack::sip::uri::parse_uri(&bare).ok()?;
    let host = u.host().to_string();
    let port = u.host_with_port.port.map_or(5060, |p| p.value().to_owned());
    let host = host.trim_matches(['[', ']']);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port)).await.ok()?.next()
}

fn loose_route(proxy: &str) -> String {
    let uri = NameAddr::parse(proxy)
        .map(|n| n.uri)
        .unwrap_or_else(|_| proxy.to_owned());
    if uri.contains(";lr") {
        format!("<{uri}>")
    } else {
        format!("<{uri};lr>")
    }
}

/// What the UAC reads of a response from a callee or a trunk (the fuzzer's look at it):
/// the challenges, the redirect's targets, the route set.
pub(crate) fn fuzz_response(msg: &Message) {
    for h in ["WWW-Authenticate", "Proxy-Authenticate"] {
        if let Some(ch) = Challenge::best(msg.all(h)) {
            let _ = ch.answer("user", "password", "INVITE", "sip:x@192.0.2.1");
        }
    }
    for uri in redirect_targets(msg) {
        let _ = same_host(&uri, "sip:x@192.0.2.1");
    }
    let _ = contact_uri(msg);
    let _ = build::route_set(msg);
}

/// A redirect's URI without its `?headers` part (§19.1.5: not for the Request-URI).
fn strip_uri_headers(uri: &str) -> String {
    uri.split_once('?').map_or(uri, |(u, _)| u).to_owned()
}

/// Whether two SIP URIs name the same host.
fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        rsipstack::sip::uri::parse_uri(u)
            .ok()
            .map(|u| u.host().to_string().to_ascii_lowercase())
    };
    host(a).is_some_and(|h| Some(h) == host(b))
}

/// Contacts of a redirection tried at most: a 3xx listing a thousand would otherwise
/// hold the call for a thousand INVITEs.
const REDIRECT_CONTACTS: usize = 5;

/// Where a 3xx sends the call (§8.1.3.4): its SIP and SIPS Contacts, highest q first
/// (equal q in the order given), without URI headers, at most [`REDIRECT_CONTACTS`].
fn redirect_targets(msg: &Message) -> Vec<String> {
    let mut v: Vec<(f32, String)> = msg
        .list("Contact")
        .filter_map(|c| NameAddr::parse(c).ok())
        .filter(|n| {
            let scheme = n.uri.split(':').next().unwrap_or_default();
            scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
        })
        .map(|n| {
            let q = n
                .param("q")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            (q, strip_uri_headers(&n.uri))
        })
        .collect();
    // Stable: equal q keep the order they came in.
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    v.into_iter()
        .map(|(_, uri)| uri)
        .take(REDIRECT_CONTACTS)
        .collect()
}

fn contact_uri(msg: &Message) -> Option<String> {
    let first = msg.list("Contact").next()?;
    NameAddr::parse(first).ok().map(|n| n.uri)
}

/// One INVITE transaction's own state.
struct Tx {
    cseq: u32,
    branch: String,
    invite: Vec<u8>,
    dest: SocketAddr,
    next_retx: Instant,
    interval: Duration,
    timer_b: Instant,
    provisional: bool,
    cancel: Option<Retry>,
}

/// A CANCEL, retransmitted like any non-INVITE request (Timer E) until answered.
struct Retry {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    answered: bool,
    give_up: Instant,
}

struct Uac {
    sh: Arc<Shared>,
    req: DialRequest,
    local_tag: String,
    local: String,
    to: String,
    routes: Vec<String>,
    inbox: mpsc::Receiver<Inbound>,
    /// ACKs of earlier transactions' finals (3xx, 401/407), by their INVITE's branch.
    old_acks: Vec<(String, Vec<u8>, SocketAddr)>,
    /// The branch of every INVITE sent: a response belongs to this call's transactions
    /// only with one of them in its top Via (RFC 3261 §17.1.3), not by its CSeq.
    branches: Vec<String>,
    /// The credentials the last INVITE carried: its 2xx's ACK carries them too (§13.2.2.4).
    auth: Option<(&'static str, String)>,
    /// The dialog (and this call's inbox) went to a call task: nothing left to linger for.
    handed_off: bool,
}

/// Places the call. Resolves on the answer (the dialog then runs on its own task) or
/// on the end of every try; `cancel` gives up politely (CANCEL, or BYE if answered).
pub(crate) async fn dial(
    sh: Arc<Shared>,
    req: DialRequest,
    cancel: CancellationToken,
) -> DialOutcome {
    let (inbox_tx, inbox) = mpsc::channel(32);
    if let Ok(mut calls) = sh.calls.lock() {
        calls.insert(req.call_id.clone(), inbox_tx);
    }
    let local_tag = build::unique_token();
    let local = format!("<{}>;tag={local_tag}", req.from);
    let to = format!("<{}>", req.target);
    let routes = req.proxy.as_deref().map(loose_route).into_iter().collect();
    let mut uac = Uac {
        sh: sh.clone(),
        local_tag,
        local,
        to,
        routes,
        inbox,
        old_acks: Vec::new(),
        branches: Vec::new(),
        auth: None,
        handed_off: false,
        req,
    };
    let out = uac.run(cancel).await;
    // A 200 that crossed our CANCEL was handed to a call task to be ACKed and BYEd: a
    // linger would forget the call under it and its BYE would go unretransmitted.
    if !matches!(out, DialOutcome::Answered(_)) && !uac.handed_off {
        // The call's state lingers (Timer D) to ACK retransmitted final responses.
        let linger = (sh.cfg.t1 * 64).min(Duration::from_secs(32));
        tokio::spawn(async move { uac.linger(linger).await });
    }
    out
}

impl Uac {
    fn t1(&self) -> Duration {
        self.sh.cfg.t1
    }

    /// What this call's requests carry of hotline's own.
    fn caller(&self) -> Caller<'_> {
        Caller {
            sh: &self.sh,
            local: &self.local,
            call_id: &self.req.call_id,
        }
    }

    fn failed(code: u16, why: impl Into<String>, gave_up: Option<GaveUp>) -> DialOutcome {
        DialOutcome::Failed {
            code,
            why: why.into(),
            gave_up,
        }
    }

    async fn run(&mut self, cancel: CancellationToken) -> DialOutcome {
        let mut target = self.req.target.clone();
        let mut cseq = 0u32;
        let mut credentials: Option<(&'static str, String)> = None;
        let mut answers = 0u8;
        let mut hops = 0u8;
        let ring_deadline = Instant::now() + self.req.ring_timeout;
        let mut gave_up: Option<GaveUp> = None;
        // The rest of the last redirection's Contacts, best first.
        let mut alternatives: VecDeque<String> = VecDeque::new();
        loop {
            cseq += 1;
            let hop = self
                .routes
                .first()
                .cloned()
                .unwrap_or_else(|| target.clone());
            let Some(dest) = resolve(&hop).await else {
                return Self::failed(0, format!("cannot resolve {hop}"), None);
            };
            let branch = build::new_branch();
            let mut extra = vec![
                ("Allow", ALLOW.to_owned()),
                ("Supported", "replaces".to_owned()),
            ];
            if let Some((name, value)) = &credentials {
                extra.push((name, value.clone()));
            }
            self.auth = credentials.clone();
            let invite = self.caller().request(
                "INVITE",
                &target,
                &branch,
                &self.to.clone(),
                cseq,
                &self.routes.clone(),
                &extra,
                Some(("application/sdp", &self.req.sdp.clone())),
            );
            tracing::debug!(%dest, cseq, target = %target, "sending INVITE");
            self.branches.push(branch.clone());
            self.sh.send(&Conn::Udp, dest, invite.clone()).await;
            let now = Instant::now();
            let mut tx = Tx {
                cseq,
                branch,
                invite,
                dest,
                next_retx: now + self.t1(),
                interval: self.t1(),
                timer_b: now + self.t1() * 64,
                provisional: false,
                cancel: None,
            };
            // Finals of this transaction come back here; the loop restarts for a new one.
            let final_msg = loop {
                if gave_up.is_some() && tx.provisional && tx.cancel.is_none() {
                    self.send_cancel(&mut tx, &target).await;
                }
                let wake = self.next_wake(&tx, gave_up.is_none().then_some(ring_deadline));
                tokio::select! {
                    m = self.inbox.recv() => match m {
                        Some(Inbound::Msg(m)) => {
                            let (msg, peer) = *m;
                            if let Some(f) = self.on_message(&mut tx, msg, peer).await {
                                break f;
                            }
                        }
                        Some(Inbound::Shutdown) | None => gave_up = gave_up.or(Some(GaveUp::Cancelled)),
                    },
                    _ = cancel.cancelled(), if gave_up.is_none() => gave_up = Some(GaveUp::Cancelled),
                    _ = sleep_until(wake) => {
                        let now = Instant::now();
                        if gave_up.is_none() && now >= ring_deadline {
                            tracing::info!("no answer within the ring timeout: CANCEL");
                            gave_up = Some(GaveUp::RingTimeout);
                        }
                        if let Some(out) = self.on_timer(&mut tx, gave_up).await {
                            return out;
                        }
                    }
                }
            };
            let code = match &final_msg.start {
                StartLine::Response { code, .. } => *code,
                StartLine::Request { .. } => 500,
            };
            if (200..300).contains(&code) {
                return self.answered(&tx, final_msg, gave_up).await;
            }
            // A non-2xx final: ACK within the transaction (§17.1.1.3).
            let to = final_msg.get("To").unwrap_or(&self.to).to_owned();
            let ack = self.caller().request(
                "ACK",
                &target,
                &tx.branch,
                &to,
                tx.cseq,
                &self.routes.clone(),
                &[],
                None,
            );
            self.sh.send(&Conn::Udp, tx.dest, ack.clone()).await;
            self.old_acks.push((tx.branch.clone(), ack, tx.dest));
            let reason = match &final_msg.start {
                StartLine::Response { reason, .. } => reason.clone(),
                StartLine::Request { .. } => String::new(),
            };
            if gave_up.is_some() {
                return Self::failed(code, format!("{code} {reason}"), gave_up);
            }
            let failed = match code {
                300..=399 => {
                    let mut next = redirect_targets(&final_msg);
                    if !next.is_empty() && hops < self.req.max_redirects {
                        hops += 1;
                        target = next.remove(0);
                        alternatives = next.into();
                        tracing::info!(to = %target, hops, alternatives = alternatives.len(), "redirected");
                        // Credentials were for the first target's realm: a redirect
                        // must not carry them, nor collect new answers (below).
                        credentials = None;
                        continue;
                    }
                    Self::failed(
                        code,
                        format!("{code} {reason}: too many redirections or no SIP Contact"),
                        None,
                    )
                }
                401 | 407 => {
                    let (ask, answer) = if code == 401 {
                        ("WWW-Authenticate", "Authorization")
                    } else {
                        ("Proxy-Authenticate", "Proxy-Authorization")
                    };
                    let challenge = Challenge::best(final_msg.all(ask));
                    // Only the trunk, or the first target's own host, gets an answer
                    // computed from the trunk's password: a callee that redirects us
                    // elsewhere and challenges there would collect material for an
                    // offline guess at it.
                    let trusted = !self.routes.is_empty() || same_host(&target, &self.req.target);
                    match (&self.req.credentials, challenge) {
                        // Once; again only when the nonce went stale (RFC 7616 §3.3).
                        (Some((user, password)), Some(ch))
                            if trusted && (answers == 0 || (ch.stale && answers < 3)) =>
                        {
                            answers += 1;
                            credentials =
                                Some((answer, ch.answer(user, password, "INVITE", &target)));
                            continue;
                        }
                        (None, _) => {
                            Self::failed(code, format!("{code} {reason}: no credentials set"), None)
                        }
                        _ => Self::failed(
                            code,
                            format!("{code} {reason}: the credentials were refused"),
                            None,
                        ),
                    }
                }
                _ => Self::failed(code, format!("{code} {reason}"), None),
            };
            // §8.1.3.4: a failure from one of a redirection's Contacts sends the call to
            // the next; a 6xx is the callee's answer everywhere (§21.6), no other is tried.
            if code < 600
                && let Some(next) = alternatives.pop_front()
            {
                tracing::info!(to = %next, code, "the redirection's next Contact");
                target = next;
                credentials = None;
                continue;
            }
            return failed;
        }
    }

    fn next_wake(&self, tx: &Tx, ring_deadline: Option<Instant>) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        if !tx.provisional {
            wake = wake.min(tx.next_retx).min(tx.timer_b);
        }
        if let Some(c) = &tx.cancel {
            wake = wake.min(c.give_up);
            if !c.answered {
                wake = wake.min(c.next);
            }
        }
        if let Some(d) = ring_deadline {
            wake = wake.min(d);
        }
        wake
    }

    async fn send_cancel(&mut self, tx: &mut Tx, target: &str) {
        let bytes = self.caller().request(
            "CANCEL",
            target,
            &tx.branch,
            &self.to.clone(),
            tx.cseq,
            &self.routes.clone(),
            &[],
            None,
        );
        self.sh.send(&Conn::Udp, tx.dest, bytes.clone()).await;
        let now = Instant::now();
        tx.cancel = Some(Retry {
            bytes,
            next: now + self.t1(),
            interval: self.t1(),
            answered: false,
            give_up: now + self.t1() * 64,
        });
    }

    /// Timers A, B and the CANCEL's; Some when the attempt is over.
    async fn on_timer(&mut self, tx: &mut Tx, gave_up: Option<GaveUp>) -> Option<DialOutcome> {
        let now = Instant::now();
        let t2 = self.sh.cfg.t2;
        if !tx.provisional {
            if now >= tx.timer_b {
                let why = "no response to the INVITE (Timer B)";
                return Some(Self::failed(408, why, gave_up));
            }
            if now >= tx.next_retx {
                self.sh.send(&Conn::Udp, tx.dest, tx.invite.clone()).await;
                // Timer A doubles without the T2 cap (§17.1.1.2).
                tx.interval *= 2;
                tx.next_retx = now + tx.interval;
            }
        }
        if let Some(c) = &mut tx.cancel {
            if now >= c.give_up {
                // §9.1: no final response 64·T1 after the CANCEL: the transaction ends.
                return Some(Self::failed(487, "no answer to the CANCEL", gave_up));
            }
            if !c.answered && now >= c.next {
                self.sh.send(&Conn::Udp, tx.dest, c.bytes.clone()).await;
                c.interval = (c.interval * 2).min(t2);
                c.next = now + c.interval;
            }
        }
        None
    }

    /// A message for this call while dialing; Some(final response) ends the transaction.
    async fn on_message(&mut self, tx: &mut Tx, msg: Message, peer: Peer) -> Option<Message> {
        let code = match &msg.start {
            StartLine::Response { code, .. } => *code,
            StartLine::Request { method, .. } => {
                // Nothing but responses belongs to a call not yet set up.
                if method != "ACK" {
                    let spec = build::ResponseSpec {
                        code: 481,
                        to_tag: None,
                        extra: &[],
                        body: None,
                        user_agent: &self.sh.cfg.user_agent,
                    };
                    self.sh.reply(&msg, &peer, &spec).await;
                }
                return None;
            }
        };
        let cseq = msg.cseq()?;
        // §17.1.3: a response is the transaction's whose branch its top Via carries (a
        // CANCEL has its INVITE's branch, §9.1) and whose CSeq method is the request's.
        let branch = branch_of(&msg);
        let ours = branch == tx.branch;
        if cseq.method == "CANCEL" {
            if ours && let Some(c) = &mut tx.cancel {
                c.answered = true;
            }
            return None;
        }
        if cseq.method != "INVITE" {
            return None;
        }
        if !ours {
            if code >= 300
                && let Some((ack, dest)) = self.old_ack(&branch)
            {
                self.sh.send(&Conn::Udp, dest, ack).await;
            } else {
                self.stray(code, &branch);
            }
            return None;
        }
        if code < 200 {
            if !tx.provisional {
                tracing::debug!(code, "the far end is ringing");
            }
            tx.provisional = true;
            if code == 183 && !msg.body.is_empty() {
                tracing::debug!("early media offered; the flow waits for the answer");
            }
            return None;
        }
        Some(msg)
    }

    async fn answered(&mut self, tx: &Tx, ok: Message, gave_up: Option<GaveUp>) -> DialOutcome {
        let remote = ok.get("To").unwrap_or(&self.to).to_owned();
        let remote_target = contact_uri(&ok).unwrap_or_else(|| self.req.target.clone());
        // §12.1.2: the route set is the Record-Route list in reverse; without one, the
        // outbound proxy stays the first hop, as for the INVITE.
        let mut routes: Vec<String> = build::route_set(&ok).into_iter().rev().collect();
        if routes.is_empty() {
            routes = self.routes.clone();
        }
        let branch = build::new_branch();
        let creds: Vec<(&str, String)> = self.auth.iter().cloned().collect();
        let ack = self.caller().request(
            "ACK",
            &remote_target,
            &branch,
            &remote,
            tx.cseq,
            &routes,
            &creds,
            None,
        );
        let hop = routes
            .first()
            .cloned()
            .unwrap_or_else(|| remote_target.clone());
        let ack_dest = resolve(&hop).await.unwrap_or(tx.dest);
        self.sh.send(&Conn::Udp, ack_dest, ack.clone()).await;
        let sdp = ok.body_text();
        let (events_tx, events_rx) = mpsc::channel(32);
        let (commands_tx, commands_rx) = mpsc::channel(32);
        let (_, placeholder) = mpsc::channel(1);
        let inbox = std::mem::replace(&mut self.inbox, placeholder);
        self.handed_off = true;
        let task = CallTask::confirmed_uac(
            self.sh.clone(),
            UacDialog {
                call_id: self.req.call_id.clone(),
                peer: Peer {
                    conn: Conn::Udp,
                    addr: ack_dest,
                },
                ok,
                local_tag: self.local_tag.clone(),
                local: self.local.clone(),
                remote: remote.clone(),
                remote_target,
                routes,
                invite_cseq: tx.cseq,
                invite_branch: tx.branch.clone(),
                ack,
                ack_dest,
                auth: self.auth.clone(),
            },
            events_tx,
            commands_rx,
            inbox,
        );
        self.sh
            .counters
            .calls_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let span = tracing::info_span!("call", call_id = %self.req.call_id);
        tokio::spawn(tracing::Instrument::instrument(task.run(), span));
        if let Some(g) = gave_up {
            // The 200 crossed our CANCEL: the call is ended at once (§9.1).
            tracing::info!("answered after hotline gave up: ACK then BYE");
            let _ = commands_tx.send(SipCommand::Hangup).await;
            return Self::failed(
                200,
                "answered after hotline gave up; ended with BYE",
                Some(g),
            );
        }
        DialOutcome::Answered(Answered {
            sdp,
            to: remote,
            local_tag: self.local_tag.clone(),
            source: tx.dest,
            events: events_rx,
            commands: commands_tx,
        })
    }

    /// The ACK of an earlier transaction's non-2xx final, by the branch of a response.
    fn old_ack(&self, branch: &str) -> Option<(Vec<u8>, SocketAddr)> {
        self.old_acks
            .iter()
            .find(|(b, _, _)| b == branch)
            .map(|(_, ack, dest)| (ack.clone(), *dest))
    }

    /// A response to the call's INVITE that none of its transactions sent for: not
    /// acted on, counted with the responses that match no call.
    fn stray(&self, code: u16, branch: &str) {
        tracing::debug!(
            code,
            branch,
            "a response with none of our branches: ignored"
        );
        self.sh
            .counters
            .stray_responses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A 2xx nobody wants (after Timer B or the CANCEL's wait): see [`end_unwanted_2xx`].
    async fn ack_and_bye(&self, ok: &Message, cseq: u32, from: SocketAddr) {
        end_unwanted_2xx(Unwanted {
            sh: &self.sh,
            ok,
            local: &self.local,
            call_id: &self.req.call_id,
            cseq,
            auth: self.auth.as_ref(),
            routes: &self.routes,
            from,
        })
        .await;
    }

    /// After a failed dial: ACK retransmitted finals, then forget the call.
    async fn linger(mut self, how_long: Duration) {
        let until = Instant::now() + how_long;
        loop {
            tokio::select! {
                m = self.inbox.recv() => match m {
                    Some(Inbound::Msg(m)) => {
                        let (msg, peer) = *m;
                        let (StartLine::Response { code, .. }, Some(cseq)) = (&msg.start, msg.cseq()) else {
                            continue;
                        };
                        if cseq.method != "INVITE" {
                            continue;
                        }
                        let branch = branch_of(&msg);
                        let ours = self.branches.contains(&branch);
                        if (200..300).contains(code) && ours {
                            // Answered after Timer B or the CANCEL's wait: the far end
                            // holds a call nobody will use. ACK it, then end it (§13.2.2.4).
                            self.ack_and_bye(&msg, cseq.seq, peer.addr).await;
                        } else if let Some((ack, dest)) = self.old_ack(&branch) {
                            self.sh.send(&Conn::Udp, dest, ack).await;
                        } else {
                            self.stray(*code, &branch);
                        }
                    }
                    Some(Inbound::Shutdown) | None => break,
                },
                _ = sleep_until(until) => break,
            }
        }
        self.sh.forget(&self.req.call_id);
    }
}

/// What every request hotline sends as the caller carries of its own: its Via and
/// Contact, its From (with our tag) and the Call-ID.
struct Caller<'a> {
    sh: &'a Shared,
    local: &'a str,
    call_id: &'a str,
}

impl Caller<'_> {
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &str,
        uri: &str,
        branch: &str,
        to: &str,
        cseq: u32,
        routes: &[String],
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let (sent_by, transport) = self.sh.sent_by(&Conn::Udp);
        build::request(&RequestSpec {
            method,
            request_uri: uri,
            via_sent_by: &sent_by,
            transport,
            branch,
            routes,
            from: self.local,
            to,
            call_id: self.call_id,
            cseq,
            contact: &self.sh.contact(&Conn::Udp),
            extra,
            body,
            user_agent: &self.sh.cfg.user_agent,
        })
    }
}

/// A 2xx that set up a dialog no call will run: a late one (after Timer B or the
/// CANCEL's wait), or another branch's answer to a forked INVITE (RFC 3261 §13.2.2.4).
pub(crate) struct Unwanted<'a> {
    pub sh: &'a Arc<Shared>,
    pub ok: &'a Message,
    /// Our From, with our tag, and the call's Call-ID.
    pub local: &'a str,
    pub call_id: &'a str,
    /// The INVITE's CSeq.
    pub cseq: u32,
    /// The credentials the INVITE carried: its 2xx's ACK carries them too (§13.2.2.4).
    pub auth: Option<&'a (&'static str, String)>,
    /// The route set to use when the 2xx records none.
    pub routes: &'a [String],
    /// Where the 2xx came from: the next hop when its own cannot be resolved.
    pub from: SocketAddr,
}

/// Ends an unwanted 2xx's dialog: its ACK, then a BYE sent twice, T1 apart (best effort
/// for a call that was never ours to run; the BYE's repeat does not hold up the
/// caller). Returns the ACK and where it went, for the 2xx's retransmissions.
pub(crate) async fn end_unwanted_2xx(u: Unwanted<'_>) -> Option<(Vec<u8>, SocketAddr)> {
    let remote = u.ok.get("To")?.to_owned();
    let remote_target = contact_uri(u.ok)?;
    let mut routes: Vec<String> = build::route_set(u.ok).into_iter().rev().collect();
    if routes.is_empty() {
        routes = u.routes.to_vec();
    }
    let hop = routes
        .first()
        .cloned()
        .unwrap_or_else(|| remote_target.clone());
    let dest = resolve(&hop).await.unwrap_or(u.from);
    let creds: Vec<(&str, String)> = u.auth.into_iter().cloned().collect();
    let caller = Caller {
        sh: u.sh,
        local: u.local,
        call_id: u.call_id,
    };
    let request = |method: &str, cseq: u32, extra: &[(&str, String)]| {
        let branch = build::new_branch();
        caller.request(
            method,
            &remote_target,
            &branch,
            &remote,
            cseq,
            &routes,
            extra,
            None,
        )
    };
    let ack = request("ACK", u.cseq, &creds);
    let bye = request("BYE", u.cseq + 1, &[]);
    u.sh.send(&Conn::Udp, dest, ack.clone()).await;
    u.sh.send(&Conn::Udp, dest, bye.clone()).await;
    let (sh, t1) = (u.sh.clone(), u.sh.cfg.t1);
    tokio::spawn(async move {
        tokio::time::sleep(t1).await;
        sh.send(&Conn::Udp, dest, bye).await;
    });
    tracing::info!(%dest, "an unwanted 2xx (late, or a forked branch's): ACKed and ended with BYE");
    Some((ack, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_becomes_a_loose_route() {
        assert_eq!(
            loose_route("sip:trunk.example:5070"),
            "<sip:trunk.example:5070;lr>"
        );
        assert_eq!(loose_route("<sip:10.0.0.1;lr>"), "<sip:10.0.0.1;lr>");
    }

    #[test]
    fn a_redirection_is_tried_highest_q_first_sip_only_five_at_most() {
        let contacts = [
            "<sip:low@192.0.2.1>;q=0.1",
            "<sip:first@192.0.2.2?Subject=x>",
            "<tel:+861012345>;q=1.0",
            "<mailto:a@example.com>",
            "<sip:mid@192.0.2.3>;q=0.5, <SIPS:also-first@192.0.2.4>",
            "<sip:c@192.0.2.5>;q=0.3, <sip:d@192.0.2.6>;q=0.2, <sip:e@192.0.2.7>;q=7",
        ];
        let mut text = String::from(
            "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n",
        );
        for c in contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let (msg, _) = crate::sip::wire::parse(text.as_bytes(), false)
            .ok()
            .flatten()
            .expect("a 302");
        assert_eq!(
            redirect_targets(&msg),
            [
                "sip:first@192.0.2.2",
                "SIPS:also-first@192.0.2.4",
                // q=7 is no q-value: as if none were given.
                "sip:e@192.0.2.7",
                "sip:mid@192.0.2.3",
                "sip:c@192.0.2.5",
            ]
        );
    }

    #[tokio::test]
    async fn ip_literals_resolve_without_dns() {
        assert_eq!(
            resolve("sip:1001@127.0.0.5:5070").await,
            Some(SocketAddr::from(([127, 0, 0, 5], 5070)))
        );
        assert_eq!(
            resolve("sip:127.0.0.1").await,
            Some(SocketAddr::from(([127, 0, 0, 1], 5060)))
        );
        assert_eq!(resolve("not a uri").await, None);
    }
}
