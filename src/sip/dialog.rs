//! One task per call: the INVITE server transaction, the dialog it creates, the
//! in-dialog server transactions (replayed on retransmission) and the few client
//! transactions we start (BYE, REFER). Owning all of a call's state in one task
//! avoids locks on the per-message path and gives each call its tracing span.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::build::{self, RequestSpec, ResponseSpec};
use super::check::{ALLOW, SUPPORTED_HEADER};
use super::endpoint::{Conn, Peer, Shared};
use super::guard::OpenCall;
use super::wire::{Message, NameAddr, StartLine};
use super::{SipCommand, SipEvent};

pub(crate) enum Inbound {
    /// Boxed: a call's inbox is a tokio channel, which allocates room for 32 messages
    /// of this type when the call starts; unboxed, that was 6 KiB of every call.
    Msg(Box<(Message, Peer)>),
    Shutdown,
}

impl Inbound {
    pub(crate) fn msg(msg: Message, peer: Peer) -> Inbound {
        Inbound::Msg(Box::new((msg, peer)))
    }
}

/// A 100 Trying goes only to an INVITE that has heard nothing else by then: a call
/// answered at once gets its 200 alone (RFC 3261 §17.2.1 asks for the 100 when no
/// provisional response will come within 200 ms). Sent with every answer, it was one
/// of the three sends that made answering the INVITE 17 % of the SIP worker's CPU at
/// 2,500 lines, and one more message each caller's client had to take in.
const TRYING_AFTER: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// INVITE received, no final response yet.
    Early,
    /// 200 sent, waiting for ACK.
    Answered,
    Confirmed,
    /// Non-2xx final sent; the dialog never existed.
    Rejected,
    /// We sent BYE and wait for its answer.
    Ending,
    Done,
}

/// A message retransmitted over UDP until something stops it (RFC 3261 timers G/E,
/// and 13.3.1.4 for 2xx): interval doubling up to T2, giving up at 64·T1.
struct Retx {
    bytes: Vec<u8>,
    conn: Conn,
    dest: SocketAddr,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AckFor {
    InitialOk,
    InitialError,
    Reinvite,
}

struct ClientTx {
    method: &'static str,
    cseq: u32,
    /// Its Via's branch: a response is this transaction's only with it (RFC 3261
    /// §17.1.3), whatever CSeq it copies.
    branch: String,
    retx: Retx,
}

/// Non-INVITE responses kept for replay; a handful covers UDP retransmission windows.
const REPLAY_SLOTS: usize = 4;

pub(crate) struct CallTask {
    sh: Arc<Shared>,
    call_id: String,
    invite: Message,
    peer: Peer,
    invite_branch: String,
    offer_in_invite: bool,
    local_tag: String,
    /// Our side as the To header value, with our tag; used as From in our requests.
    local: String,
    /// The caller's From header value, with their tag; used as To in our requests.
    remote: String,
    remote_target: String,
    routes: Vec<String>,
    local_cseq: u32,
    remote_cseq: u32,
    phase: Phase,
    last_invite_response: Option<Vec<u8>>,
    /// When the INVITE gets a 100 Trying if no other response has gone by then.
    trying_due: Option<Instant>,
    ack_wait: Option<(AckFor, Retx)>,
    /// The call hung up before the caller's ACK: the BYE waits for it (RFC 3261 §15).
    bye_after_ack: bool,
    reinvite: Option<(Message, Peer)>,
    reinvite_answer: Option<(String, Vec<u8>)>,
    replay: VecDeque<(String, Vec<u8>, Peer)>,
    client: Vec<ClientTx>,
    refer_pending: bool,
    events: mpsc::Sender<SipEvent>,
    commands: Option<mpsc::Receiver<SipCommand>>,
    inbox: mpsc::Receiver<Inbound>,
    linger_until: Option<Instant>,
    /// What a call hotline placed (src/sip/uac.rs) keeps of its INVITE.
    uac: Option<UacSide>,
    /// The caller's source counts this call against `calls_per_source` until it ends.
    held: OpenCall,
}

/// A placed call's INVITE, for the 2xx that keep coming after the call began.
struct UacSide {
    /// The INVITE's CSeq, and the ACK sent for its 2xx, sent again for every
    /// retransmission of that 2xx (RFC 3261 §13.2.2.4).
    cseq: u32,
    ack: Vec<u8>,
    ack_dest: SocketAddr,
    /// The credentials the INVITE carried (for the ACK of another branch's 2xx).
    auth: Option<(&'static str, String)>,
    /// Other branches' 2xx to that INVITE (a forking proxy's): their To tag, and the
    /// ACK each got, sent again for their retransmissions.
    forks: Vec<(String, Vec<u8>, SocketAddr)>,
}

/// What a dialog that hotline started as the caller needs to go on as a call.
pub(crate) struct UacDialog {
    pub call_id: String,
    /// The 2xx that set the dialog up (stands in for the INVITE a UAS task keeps).
    pub ok: Message,
    pub peer: Peer,
    pub local_tag: String,
    /// Our From, with our tag; the far end's To, with theirs.
    pub local: String,
    pub remote: String,
    pub remote_target: String,
    pub routes: Vec<String>,
    pub invite_cseq: u32,
    pub invite_branch: String,
    pub ack: Vec<u8>,
    pub ack_dest: SocketAddr,
    /// The credentials the INVITE carried.
    pub auth: Option<(&'static str, String)>,
}

/// The branch of a message's top Via; empty without one.
pub(super) fn branch_of(msg: &Message) -> String {
    msg.top_via()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default()
}

fn contact_uri(msg: &Message) -> Option<String> {
    let first = msg.list("Contact").next()?;
    NameAddr::parse(first).ok().map(|n| n.uri)
}

impl CallTask {
    pub(crate) fn new(
        sh: Arc<Shared>,
        invite: Message,
        peer: Peer,
        events: mpsc::Sender<SipEvent>,
        commands: mpsc::Receiver<SipCommand>,
        inbox: mpsc::Receiver<Inbound>,
    ) -> CallTask {
        let local_tag = build::unique_token();
        let to = invite.get("To").unwrap_or_default();
        let remote_target = contact_uri(&invite).unwrap_or_else(|| match &invite.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => String::new(),
        });
        CallTask {
            call_id: invite.call_id().unwrap_or_default().to_owned(),
            invite_branch: branch_of(&invite),
            offer_in_invite: !invite.body.is_empty(),
            local: format!("{to};tag={local_tag}"),
            remote: invite.get("From").unwrap_or_default().to_owned(),
            remote_cseq: invite.cseq().map_or(0, |c| c.seq),
            routes: build::route_set(&invite),
            remote_target,
            local_tag,
            local_cseq: 0,
            phase: Phase::Early,
            last_invite_response: None,
            trying_due: None,
            ack_wait: None,
            bye_after_ack: false,
            reinvite: None,
            reinvite_answer: None,
            replay: VecDeque::with_capacity(REPLAY_SLOTS),
            client: Vec::new(),
            refer_pending: false,
            events,
            commands: Some(commands),
            inbox,
            linger_until: None,
            uac: None,
            held: OpenCall::uncounted(),
            sh,
            invite,
            peer,
        }
    }

    /// Counts the call against its source (`calls_per_source`) until it ends.
    pub(super) fn holding(mut self, held: OpenCall) -> CallTask {
        self.held = held;
        self
    }

    /// The dialog of a call hotline placed, confirmed by the ACK already sent: from
    /// here on it is handled exactly like an answered inbound call.
    pub(crate) fn confirmed_uac(
        sh: Arc<Shared>,
        d: UacDialog,
        events: mpsc::Sender<SipEvent>,
        commands: mpsc::Receiver<SipCommand>,
        inbox: mpsc::Receiver<Inbound>,
    ) -> CallTask {
        CallTask {
            call_id: d.call_id,
            invite_branch: d.invite_branch,
            offer_in_invite: true,
            local: d.local,
            remote: d.remote,
            remote_cseq: 0,
            routes: d.routes,
            remote_target: d.remote_target,
            local_tag: d.local_tag,
            local_cseq: d.invite_cseq,
            phase: Phase::Confirmed,
            last_invite_response: None,
            trying_due: None,
            ack_wait: None,
            bye_after_ack: false,
            reinvite: None,
            reinvite_answer: None,
            replay: VecDeque::with_capacity(REPLAY_SLOTS),
            client: Vec::new(),
            refer_pending: false,
            events,
            commands: Some(commands),
            inbox,
            linger_until: None,
            uac: Some(UacSide {
                cseq: d.invite_cseq,
                ack: d.ack,
                ack_dest: d.ack_dest,
                auth: d.auth,
                forks: Vec::new(),
            }),
            held: OpenCall::uncounted(),
            sh,
            invite: d.ok,
            peer: d.peer,
        }
    }

    /// The handlers' futures are boxed: they live for one message, while the call's
    /// task lives for the call, and inline they made up most of every call's task.
    pub(crate) async fn run(mut self) {
        tracing::debug!("new call");
        if self.phase == Phase::Early {
            self.trying_due = Some(Instant::now() + TRYING_AFTER);
        }
        loop {
            let now = Instant::now();
            if self.linger_until.is_some_and(|t| now >= t) {
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                m = self.inbox.recv() => match m {
                    Some(Inbound::Msg(m)) => {
                        let (msg, peer) = *m;
                        Box::pin(self.on_message(msg, peer)).await;
                    }
                    Some(Inbound::Shutdown) => Box::pin(self.on_command(SipCommand::Hangup)).await,
                    None => break,
                },
                c = recv_or_pending(&mut self.commands) => match c {
                    Some(cmd) => Box::pin(self.on_command(cmd)).await,
                    None => {
                        // The call layer let go of the call: end it as if it hung up.
                        self.commands = None;
                        Box::pin(self.on_command(SipCommand::Hangup)).await;
                    }
                },
                _ = sleep_until(wake) => Box::pin(self.on_timer()).await,
            }
        }
        self.sh.forget(&self.call_id);
        tracing::debug!("call state freed");
    }

    fn t1(&self) -> Duration {
        self.sh.cfg.t1
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(3600);
        let mut consider = |t: Instant| wake = wake.min(t);
        if let Some((_, r)) = &self.ack_wait {
            consider(r.next.min(r.give_up));
        }
        for tx in &self.client {
            consider(tx.retx.next.min(tx.retx.give_up));
        }
        if let Some(t) = self.linger_until {
            consider(t);
        }
        if let Some(t) = self.trying_due {
            consider(t);
        }
        wake
    }

    fn retx(&self, bytes: Vec<u8>, conn: Conn, dest: SocketAddr) -> Retx {
        let now = Instant::now();
        let give_up = now + self.t1() * 64;
        // Reliable transports are not retransmitted to, only timed out.
        let next = match conn {
            Conn::Udp => now + self.t1(),
            Conn::Tcp(_) => give_up,
        };
        Retx {
            bytes,
            conn,
            dest,
            interval: self.t1(),
            next,
            give_up,
        }
    }

    async fn emit(&self, event: SipEvent) {
        // A call layer that dropped its receiver has nothing left to learn.
        let _ = self.events.send(event).await;
    }

    /// Ends the call's life after a grace period that absorbs retransmissions.
    fn finish(&mut self, grace: Duration) {
        self.phase = Phase::Done;
        self.ack_wait = None;
        // Lingering is not holding a line: the source may call again.
        self.held = OpenCall::uncounted();
        let until = Instant::now() + grace;
        // A lingering call absorbs retransmissions; a little longer costs nothing, and
        // calls that end near each other then free their state at one wake-up.
        self.linger_until = Some(if grace.is_zero() {
            until
        } else {
            crate::timers::coarse(until)
        });
    }

    // ---- responses we send -------------------------------------------------

    async fn respond(
        &self,
        req: &Message,
        peer: &Peer,
        code: u16,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let spec = ResponseSpec {
            code,
            to_tag: Some(&self.local_tag),
            extra,
            body,
            user_agent: &self.sh.cfg.user_agent,
        };
        self.sh.reply(req, peer, &spec).await
    }

    async fn answer_invite(&mut self, code: u16, extra: &[(&str, String)], sdp: Option<&str>) {
        self.trying_due = None;
        let invite = self.invite.clone();
        let peer = self.peer.clone();
        let mut headers: Vec<(&str, String)> = extra.to_vec();
        if (101..300).contains(&code) {
            headers.push(("Contact", self.sh.contact(&peer.conn)));
        }
        let body = sdp.map(|s| ("application/sdp", s));
        let bytes = self.respond(&invite, &peer, code, &headers, body).await;
        if code >= 200
            && let Some(dest) = self.sh.response_dest(&invite, &peer)
        {
            let kind = if code < 300 {
                AckFor::InitialOk
            } else {
                AckFor::InitialError
            };
            self.ack_wait = Some((kind, self.retx(bytes.clone(), peer.conn.clone(), dest)));
        }
        self.last_invite_response = Some(bytes);
    }

    async fn replay_or_remember(&mut self, req: &Message, peer: &Peer, bytes: Vec<u8>) {
        let key = format!("{} {}", branch_of(req), req.method().unwrap_or_default());
        if self.replay.len() == REPLAY_SLOTS {
            self.replay.pop_front();
        }
        self.replay.push_back((key, bytes, peer.clone()));
    }

    async fn replayed(&self, req: &Message) -> bool {
        let key = format!("{} {}", branch_of(req), req.method().unwrap_or_default());
        let Some((_, bytes, peer)) = self.replay.iter().find(|(k, _, _)| *k == key) else {
            return false;
        };
        if let Some(dest) = self.sh.response_dest(req, peer) {
            self.sh.send(&peer.conn, dest, bytes.clone()).await;
        }
        true
    }

    // ---- requests we send --------------------------------------------------

    /// Where in-dialog requests go: the first route when there is a route set, else
    /// the remote target (the caller's Contact), IP literals only; otherwise back to
    /// where the INVITE came from.
    fn next_hop(&self) -> SocketAddr {
        let uri = self
            .routes
            .first()
            .and_then(|r| NameAddr::parse(r).ok().map(|n| n.uri))
            .unwrap_or_else(|| self.remote_target.clone());
        rsipstack::sip::uri::parse_uri(&uri)
            .ok()
            .and_then(|u| {
                let ip: std::net::IpAddr =
                    u.host().to_string().trim_matches(['[', ']']).parse().ok()?;
                let port = u.host_with_port.port.map_or(5060, |p| p.value().to_owned());
                Some(SocketAddr::new(ip, port))
            })
            .unwrap_or(self.peer.addr)
    }

    async fn send_request(
        &mut self,
        method: &'static str,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) {
        self.local_cseq += 1;
        let conn = self.peer.conn.clone();
        let (sent_by, transport) = self.sh.sent_by(&conn);
        let contact = self.sh.contact(&conn);
        let branch = build::new_branch();
        let bytes = build::request(&RequestSpec {
            method,
            request_uri: &self.remote_target,
            via_sent_by: &sent_by,
            transport,
            branch: &branch,
            routes: &self.routes,
            from: &self.local,
            to: &self.remote,
            call_id: &self.call_id,
            cseq: self.local_cseq,
            contact: &contact,
            extra,
            body,
            user_agent: &self.sh.cfg.user_agent,
        });
        let dest = self.next_hop();
        tracing::debug!(method, %dest, "sending in-dialog request");
        self.sh.send(&conn, dest, bytes.clone()).await;
        let retx = self.retx(bytes, conn, dest);
        self.client.push(ClientTx {
            method,
            cseq: self.local_cseq,
            branch,
            retx,
        });
    }

    async fn send_bye(&mut self) {
        self.ack_wait = None;
        self.phase = Phase::Ending;
        self.send_request("BYE", &[], None).await;
    }

    // ---- commands from the call layer -------------------------------------

    async fn on_command(&mut self, cmd: SipCommand) {
        tracing::debug!(?cmd, phase = ?self.phase, "command");
        match cmd {
            SipCommand::Ringing if self.phase == Phase::Early => {
                self.answer_invite(180, &[], None).await;
            }
            SipCommand::Answer { sdp } if self.phase == Phase::Early => {
                let extra = [
                    ("Allow", ALLOW.to_owned()),
                    ("Supported", SUPPORTED_HEADER.to_owned()),
                ];
                self.answer_invite(200, &extra, Some(&sdp)).await;
                self.phase = Phase::Answered;
            }
            SipCommand::Reject { code, retry_after } if self.phase == Phase::Early => {
                let code = if (300..700).contains(&code) {
                    code
                } else {
                    500
                };
                let extra: Vec<(&str, String)> = retry_after
                    .map(|s| ("Retry-After", s.to_string()))
                    .into_iter()
                    .collect();
                self.answer_invite(code, &extra, None).await;
                self.phase = Phase::Rejected;
            }
            SipCommand::Reoffer { result } => self.answer_reinvite(result).await,
            SipCommand::Refer { target } => self.refer(&target).await,
            SipCommand::Hangup => self.hang_up().await,
            other => tracing::debug!(?other, "command ignored in this phase"),
        }
    }

    async fn hang_up(&mut self) {
        match self.phase {
            Phase::Early => {
                self.answer_invite(480, &[], None).await;
                self.phase = Phase::Rejected;
            }
            // RFC 3261 §15: no BYE before the ACK of our 200 or the end of its
            // retransmissions; the 200 goes on being retransmitted meanwhile.
            Phase::Answered => self.bye_after_ack = true,
            Phase::Confirmed => self.send_bye().await,
            Phase::Rejected | Phase::Ending | Phase::Done => {}
        }
    }

    async fn answer_reinvite(&mut self, result: Result<String, u16>) {
        let Some((req, peer)) = self.reinvite.take() else {
            return;
        };
        let bytes = match &result {
            Ok(sdp) => {
                let extra = [
                    ("Contact", self.sh.contact(&peer.conn)),
                    ("Allow", ALLOW.to_owned()),
                ];
                self.respond(&req, &peer, 200, &extra, Some(("application/sdp", sdp)))
                    .await
            }
            Err(code) => {
                let code = if (300..700).contains(code) {
                    *code
                } else {
                    488
                };
                self.respond(&req, &peer, code, &[], None).await
            }
        };
        if let Some(dest) = self.sh.response_dest(&req, &peer) {
            let retx = self.retx(bytes.clone(), peer.conn.clone(), dest);
            if self.ack_wait.is_none() {
                self.ack_wait = Some((AckFor::Reinvite, retx));
            }
        }
        self.reinvite_answer = Some((branch_of(&req), bytes));
    }

    async fn refer(&mut self, target: &str) {
        if self.phase != Phase::Confirmed || self.refer_pending {
            self.emit(SipEvent::TransferDone { ok: false }).await;
            return;
        }
        let refer_to = if target.starts_with('<') {
            target.to_owned()
        } else {
            format!("<{target}>")
        };
        let referred_by = self.sh.contact(&self.peer.conn);
        self.refer_pending = true;
        let extra = [("Refer-To", refer_to), ("Referred-By", referred_by)];
        self.send_request("REFER", &extra, None).await;
    }

    // ---- timers -------------------------------------------------------------

    async fn on_timer(&mut self) {
        let now = Instant::now();
        let t2 = self.sh.cfg.t2;
        if self.trying_due.is_some_and(|t| now >= t) {
            self.trying_due = None;
            if self.phase == Phase::Early && self.last_invite_response.is_none() {
                self.answer_invite(100, &[], None).await;
            }
        }
        if let Some((kind, r)) = &mut self.ack_wait {
            if now >= r.give_up {
                let kind = *kind;
                self.ack_wait = None;
                self.on_ack_timeout(kind).await;
            } else if now >= r.next {
                self.sh.send(&r.conn, r.dest, r.bytes.clone()).await;
                r.interval = (r.interval * 2).min(t2);
                r.next = now + r.interval;
            }
        }
        let mut expired = Vec::new();
        for tx in &mut self.client {
            if now >= tx.retx.give_up {
                expired.push((tx.method, tx.cseq));
            } else if now >= tx.retx.next {
                self.sh
                    .send(&tx.retx.conn, tx.retx.dest, tx.retx.bytes.clone())
                    .await;
                tx.retx.interval = (tx.retx.interval * 2).min(t2);
                tx.retx.next = now + tx.retx.interval;
            }
        }
        for (method, cseq) in expired {
            self.client.retain(|t| t.cseq != cseq);
            self.on_client_final(method, 408).await;
        }
    }

    async fn on_ack_timeout(&mut self, kind: AckFor) {
        match kind {
            AckFor::InitialOk | AckFor::Reinvite => {
                tracing::info!("no ACK for the 200 within 64*T1; ending the call");
                self.sh
                    .counters
                    .ack_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                self.emit(SipEvent::AckTimeout).await;
                self.send_bye().await;
            }
            AckFor::InitialError => self.finish(Duration::ZERO),
        }
    }

    // ---- messages from the network -------------------------------------------

    async fn on_message(&mut self, msg: Message, peer: Peer) {
        match msg.start.clone() {
            StartLine::Response { code, .. } => self.on_response(&msg, code, peer.addr).await,
            StartLine::Request { method, .. } => self.on_request(&method, msg, peer).await,
        }
    }

    async fn on_response(&mut self, msg: &Message, code: u16, from: SocketAddr) {
        let Some(cseq) = msg.cseq() else { return };
        let branch = branch_of(msg);
        // hotline's own INVITE (a call it placed): its 2xx retransmitted, or another
        // branch's 2xx. By the INVITE's Via branch, as every response below (§17.1.3).
        if let Some(uac) = &self.uac
            && cseq.method == "INVITE"
            && cseq.seq == uac.cseq
            && branch == self.invite_branch
        {
            if (200..300).contains(&code) {
                let tag = msg.to_tag();
                if tag.is_some() && tag != self.invite.to_tag() {
                    self.end_fork(msg, cseq.seq, from).await;
                } else {
                    self.sh
                        .send(&Conn::Udp, uac.ack_dest, uac.ack.clone())
                        .await;
                }
            }
            return;
        }
        // An answer to the BYE that ended another branch's dialog (end_fork) has its To
        // tag; its CSeq may be one of this dialog's own. Expected, and nothing to do: not
        // a stray.
        let tag = msg.to_tag();
        if self
            .uac
            .as_ref()
            .is_some_and(|u| u.forks.iter().any(|f| tag.as_deref() == Some(f.0.as_str())))
        {
            return;
        }
        let Some(pos) = self
            .client
            .iter()
            .position(|t| t.branch == branch && t.cseq == cseq.seq && t.method == cseq.method)
        else {
            self.sh
                .counters
                .stray_responses
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if code < 200 {
            return;
        }
        let tx = self.client.remove(pos);
        self.on_client_final(tx.method, code).await;
    }

    /// Another branch's 2xx to the INVITE hotline sent (a forking proxy's, RFC 3261
    /// §13.2.2.4): a dialog of its own that this call does not take. Without its own
    /// ACK, that phone would resend its 200 for 32 s, answered and silent; it gets the
    /// ACK, then a BYE. Its retransmissions get the same ACK again.
    async fn end_fork(&mut self, ok: &Message, cseq: u32, from: SocketAddr) {
        let (Some(tag), Some(uac)) = (ok.to_tag(), &self.uac) else {
            return;
        };
        if let Some((_, ack, dest)) = uac.forks.iter().find(|f| f.0 == tag) {
            self.sh.send(&Conn::Udp, *dest, ack.clone()).await;
            return;
        }
        let ended = super::uac::end_unwanted_2xx(super::uac::Unwanted {
            sh: &self.sh,
            ok,
            local: &self.local,
            call_id: &self.call_id,
            cseq,
            auth: uac.auth.as_ref(),
            routes: &self.routes,
            from,
        })
        .await;
        if let (Some(fork), Some(uac)) = (ended, self.uac.as_mut()) {
            uac.forks.push((tag, fork.0, fork.1));
        }
    }

    async fn on_client_final(&mut self, method: &str, code: u16) {
        match method {
            "BYE" => self.finish(self.t1() * 4),
            "REFER" if code >= 300 => {
                self.refer_pending = false;
                self.emit(SipEvent::TransferDone { ok: false }).await;
            }
            _ => {}
        }
    }

    async fn on_request(&mut self, method: &str, msg: Message, peer: Peer) {
        match method {
            "INVITE" => self.on_invite(msg, peer).await,
            "ACK" => self.on_ack(&msg).await,
            "CANCEL" => self.on_cancel(&msg, &peer).await,
            _ => self.on_in_dialog(method, msg, peer).await,
        }
    }

    fn in_this_dialog(&self, msg: &Message) -> bool {
        msg.to_tag().as_deref() == Some(self.local_tag.as_str())
    }

    async fn on_invite(&mut self, msg: Message, peer: Peer) {
        let branch = branch_of(&msg);
        if branch == self.invite_branch && msg.to_tag().is_none() {
            if let Some(bytes) = &self.last_invite_response
                && let Some(dest) = self.sh.response_dest(&msg, &peer)
            {
                self.sh.send(&peer.conn, dest, bytes.clone()).await;
            } else if self.phase == Phase::Early && self.last_invite_response.is_none() {
                // The caller retransmits before we answered: it needs to hear something.
                self.answer_invite(100, &[], None).await;
            }
            return;
        }
        if !self.in_this_dialog(&msg) {
            // RFC 3261 §8.2.2.2: same Call-ID, no matching transaction or dialog.
            let code = if msg.to_tag().is_none() { 482 } else { 481 };
            self.respond(&msg, &peer, code, &[], None).await;
            return;
        }
        if let Some((b, bytes)) = &self.reinvite_answer
            && *b == branch
        {
            if let Some(dest) = self.sh.response_dest(&msg, &peer) {
                self.sh.send(&peer.conn, dest, bytes.clone()).await;
            }
            return;
        }
        self.on_reinvite(msg, peer).await;
    }

    async fn on_reinvite(&mut self, msg: Message, peer: Peer) {
        let seq = msg.cseq().map_or(0, |c| c.seq);
        if self.phase == Phase::Answered {
            // RFC 3261 §14.2: our own offer/answer is still open.
            self.respond(&msg, &peer, 491, &[], None).await;
            return;
        }
        if self.phase != Phase::Confirmed || self.reinvite.is_some() || seq <= self.remote_cseq {
            let extra = [("Retry-After", "1".to_owned())];
            self.respond(&msg, &peer, 500, &extra, None).await;
            return;
        }
        self.remote_cseq = seq;
        if let Some(target) = contact_uri(&msg) {
            self.remote_target = target;
        }
        self.respond(&msg, &peer, 100, &[], None).await;
        let offer = msg.body_text();
        self.reinvite = Some((msg, peer));
        self.emit(SipEvent::Reinvite { offer }).await;
    }

    async fn on_ack(&mut self, msg: &Message) {
        let Some((kind, _)) = &self.ack_wait else {
            return;
        };
        let kind = *kind;
        match kind {
            AckFor::InitialOk if self.in_this_dialog(msg) => {
                self.ack_wait = None;
                self.phase = Phase::Confirmed;
                if self.bye_after_ack {
                    self.send_bye().await;
                    return;
                }
                let sdp = (!self.offer_in_invite && !msg.body.is_empty()).then(|| msg.body_text());
                self.emit(SipEvent::Acked { sdp }).await;
            }
            AckFor::InitialError if branch_of(msg) == self.invite_branch => {
                self.finish(self.t1() * 4);
            }
            AckFor::Reinvite if self.in_this_dialog(msg) => self.ack_wait = None,
            _ => {}
        }
    }

    async fn on_cancel(&mut self, msg: &Message, peer: &Peer) {
        if branch_of(msg) != self.invite_branch {
            self.respond(msg, peer, 481, &[], None).await;
            return;
        }
        self.respond(msg, peer, 200, &[], None).await;
        if self.phase == Phase::Early {
            self.answer_invite(487, &[], None).await;
            self.phase = Phase::Rejected;
            self.emit(SipEvent::Hangup { cancelled: true }).await;
        }
    }

    async fn on_in_dialog(&mut self, method: &str, msg: Message, peer: Peer) {
        if self.replayed(&msg).await {
            return;
        }
        if method == "OPTIONS" {
            let extra = [
                ("Allow", ALLOW.to_owned()),
                ("Accept", "application/sdp".to_owned()),
            ];
            let bytes = self.respond(&msg, &peer, 200, &extra, None).await;
            self.replay_or_remember(&msg, &peer, bytes).await;
            return;
        }
        if !self.in_this_dialog(&msg) || matches!(self.phase, Phase::Rejected | Phase::Done) {
            let bytes = self.respond(&msg, &peer, 481, &[], None).await;
            self.replay_or_remember(&msg, &peer, bytes).await;
            return;
        }
        let (code, extra) = match method {
            "BYE" => (200, Vec::new()),
            "INFO" => info_verdict(&msg),
            "NOTIFY" => (200, Vec::new()),
            _ => (405, vec![("Allow", ALLOW.to_owned())]),
        };
        let bytes = self.respond(&msg, &peer, code, &extra, None).await;
        self.replay_or_remember(&msg, &peer, bytes).await;
        match method {
            "BYE" => self.on_bye().await,
            "INFO" => {
                if let Some(key) = dtmf_key(&msg) {
                    self.emit(SipEvent::Dtmf(key)).await;
                }
            }
            "NOTIFY" => self.on_notify(&msg).await,
            _ => {}
        }
    }

    async fn on_bye(&mut self) {
        if self.phase == Phase::Early {
            self.answer_invite(487, &[], None).await;
        }
        if self.phase != Phase::Ending {
            self.emit(SipEvent::Hangup { cancelled: false }).await;
        }
        self.finish(self.t1() * 64);
    }

    async fn on_notify(&mut self, msg: &Message) {
        if !self.refer_pending {
            return;
        }
        let Some(code) = sipfrag_code(&msg.body_text()) else {
            return;
        };
        let terminated = msg.get("Subscription-State").is_some_and(|s| {
            s.trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
        });
        if code >= 200 || terminated {
            self.refer_pending = false;
            self.emit(SipEvent::TransferDone {
                ok: (200..300).contains(&code),
            })
            .await;
        }
    }
}

async fn recv_or_pending(rx: &mut Option<mpsc::Receiver<SipCommand>>) -> Option<SipCommand> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn info_verdict(msg: &Message) -> (u16, Vec<(&'static str, String)>) {
    let accept = "application/dtmf-relay, application/dtmf";
    match msg.content_type().as_deref() {
        None if msg.body.is_empty() => (200, Vec::new()),
        Some("application/dtmf-relay" | "application/dtmf") if dtmf_key(msg).is_some() => {
            (200, Vec::new())
        }
        Some("application/dtmf-relay" | "application/dtmf") => (400, Vec::new()),
        _ => (415, vec![("Accept", accept.to_owned())]),
    }
}

/// The key of a SIP INFO DTMF body: `Signal=5` lines (dtmf-relay) or a bare key.
pub(crate) fn dtmf_key(msg: &Message) -> Option<char> {
    let body = msg.body_text();
    let raw = match msg.content_type().as_deref() {
        Some("application/dtmf-relay") => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_owned())
        })?,
        Some("application/dtmf") => body.trim().to_owned(),
        _ => return None,
    };
    match raw.as_str() {
        "10" => Some('*'),
        "11" => Some('#'),
        s if s.len() == 1 => s
            .chars()
            .next()
            .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
            .map(|c| c.to_ascii_uppercase()),
        _ => None,
    }
}

fn sipfrag_code(body: &str) -> Option<u16> {
    let line = body.lines().next()?;
    let rest = line.trim().strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::wire::parse;

    /// A call's SIP task lives as long as its dialog: 4.7 KiB while it held its
    /// handlers' futures inline (issue 11).
    #[test]
    fn a_calls_sip_task_stays_small() {
        fn future_size<A, F: std::future::Future>(_: impl FnOnce(A) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = future_size(CallTask::run);
        assert!(size <= 3 * 1024, "{size} bytes");
    }

    fn info(ctype: &str, body: &str) -> Message {
        let raw = format!(
            "INFO sip:a@b SIP/2.0\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        parse(raw.as_bytes(), false)
            .expect("framed")
            .expect("whole")
            .0
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            dtmf_key(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            dtmf_key(&info("application/dtmf-relay", "Signal= #\r\n")),
            Some('#')
        );
        assert_eq!(dtmf_key(&info("application/dtmf", "11")), Some('#'));
        assert_eq!(dtmf_key(&info("application/dtmf", "x")), None);
        assert_eq!(dtmf_key(&info("text/plain", "5")), None);
    }

    #[test]
    fn sipfrag_status() {
        assert_eq!(sipfrag_code("SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_code("SIP/2.0 503 Service Unavailable"), Some(503));
        assert_eq!(sipfrag_code("garbage"), None);
    }
}
