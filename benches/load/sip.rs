//! The client's SIP: one UDP socket for every call, demultiplexed by Call-ID (which
//! carries the call's slot). INVITE with a PCMU + telephone-event offer, ACK, BYE
//! either way, INVITE and BYE retransmitted on T1 as RFC 3261 §17.1 says.
//!
//! "Lines" are the concurrent calls: line i places its first call at i / ramp s and,
//! until the run drains, a new call as soon as the previous one ends.
use crate::media::Ctl;
use crate::{Kind, Shared};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

pub struct SipPlan {
    pub lines: usize,
    /// New calls per second while ramping up; also the BYE rate when draining.
    pub ramp: f64,
    pub ticket_line: Vec<bool>,
    pub server: SocketAddrV4,
    pub rtp: SocketAddrV4,
    pub run: u32,
    pub t1: Duration,
    pub user: String,
}

pub struct SipSetup {
    pub sock: UdpSocket,
    pub plan: SipPlan,
    pub shared: Arc<Shared>,
    pub to_rx: Sender<Ctl>,
    pub to_tx: Sender<Ctl>,
    pub hangups: Receiver<u32>,
}

#[derive(Default, Debug)]
pub struct SipReport {
    pub attempted: u64,
    pub answered: u64,
    /// Final failure codes; 408 is the client's own timeout (no final answer).
    pub failed: BTreeMap<u16, u64>,
    /// Refused lines by the seconds they waited before calling again (Retry-After).
    pub retry_after_s: BTreeMap<u64, u64>,
    pub ended_by_hotline: u64,
    pub ended_by_client: u64,
    pub bye_timeouts: u64,
    pub bye_refused: BTreeMap<u16, u64>,
    pub invite_retransmits: u64,
    pub bye_retransmits: u64,
    /// 200s hotline repeated because an ACK was late or lost.
    pub ok_repeats: u64,
    /// INVITE sent → 200 received, ms.
    pub setup_ms: Vec<f64>,
    pub max_up: i64,
    pub unparsable: u64,
    pub stray: u64,
    /// Calls not finished when the run gave up waiting.
    pub unfinished: u64,
    /// Per slot: its kind and whether it was answered (slots are Call-IDs).
    pub slots: Vec<(Kind, bool)>,
}

pub fn call_id(run: u32, slot: u32) -> String {
    format!("ld{run:08x}-{slot}@127.0.0.1")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Calling,
    Proceeding,
    Up,
    Byeing,
    Done,
}

struct Call {
    line: u32,
    kind: Kind,
    first: bool,
    answered: bool,
    st: St,
    invite: Vec<u8>,
    ack: Vec<u8>,
    bye: Vec<u8>,
    retx_ns: u64,
    sent_ns: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Timer {
    InviteRetx,
    InviteTimeout,
    ProceedingTimeout,
    ByeRetx,
    ByeTimeout,
    /// `slot` is the line.
    Redial,
}

struct Uac {
    s: SipSetup,
    me: SocketAddr,
    calls: Vec<Call>,
    timers: BinaryHeap<Reverse<(u64, u32, Timer)>>,
    live: usize,
    draining: bool,
    bye_queue: VecDeque<u32>,
    r: SipReport,
}

struct Parsed<'a> {
    method: Option<&'a str>,
    code: u16,
    heads: Vec<(&'a str, &'a str)>,
    body: &'a str,
}

impl<'a> Parsed<'a> {
    fn parse(b: &'a [u8]) -> Option<Parsed<'a>> {
        let text = std::str::from_utf8(b).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let (method, code) = match first.strip_prefix("SIP/2.0 ") {
            Some(rest) => (None, rest.get(..3)?.parse().ok()?),
            None => (Some(first.split(' ').next()?), 0),
        };
        let heads = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        Some(Parsed {
            method,
            code,
            heads,
            body,
        })
    }

    fn all(&self, long: &str, short: &str) -> impl Iterator<Item = &'a str> {
        let long = long.to_owned();
        let short = short.to_owned();
        self.heads
            .clone()
            .into_iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&long) || n.eq_ignore_ascii_case(&short))
            .map(|(_, v)| v)
    }

    fn get(&self, long: &str, short: &str) -> Option<&'a str> {
        self.all(long, short).next()
    }

    fn cseq_method(&self) -> Option<&'a str> {
        self.get("CSeq", "CSeq")?.split_whitespace().nth(1)
    }
}

/// The RTP address in an SDP answer.
fn sdp_remote(body: &str) -> Option<SocketAddrV4> {
    let mut ip = None;
    let mut port = None;
    for l in body.lines() {
        if let Some(a) = l.strip_prefix("c=IN IP4 ") {
            ip = a.trim().parse().ok();
        } else if let Some(m) = l.strip_prefix("m=audio ") {
            port = m.split_whitespace().next().and_then(|p| p.parse().ok());
        }
    }
    Some(SocketAddrV4::new(ip?, port?))
}

fn uri_of(name_addr: &str) -> &str {
    match (name_addr.find('<'), name_addr.find('>')) {
        (Some(a), Some(b)) if a < b => &name_addr[a + 1..b],
        _ => name_addr.split(';').next().unwrap_or(name_addr).trim(),
    }
}

pub fn sip_thread(s: SipSetup) -> SipReport {
    s.sock
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("SIP socket timeout");
    let me = s.sock.local_addr().expect("SIP socket address");
    let mut uac = Uac {
        s,
        me,
        calls: Vec::new(),
        timers: BinaryHeap::new(),
        live: 0,
        draining: false,
        bye_queue: VecDeque::new(),
        r: SipReport::default(),
    };
    uac.run();
    uac.r.slots = uac.calls.iter().map(|c| (c.kind, c.answered)).collect();
    uac.r
}

impl Uac {
    fn run(&mut self) {
        let t0 = self.s.shared.ns();
        let lines = self.s.plan.lines;
        let ramp = self.s.plan.ramp.max(0.001);
        let mut next_line = 0usize;
        let mut drain_at = 0u64;
        let mut byes_sent = 0u64;
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = self.s.shared.ns();
            if self.s.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            while next_line < lines && now >= t0 + (next_line as f64 / ramp * 1e9) as u64 {
                self.dial(next_line as u32, true, now);
                next_line += 1;
            }
            if !self.draining && self.s.shared.drain.load(Ordering::Relaxed) {
                self.draining = true;
                drain_at = now;
                next_line = lines;
                let up: Vec<u32> = (0..self.calls.len() as u32)
                    .filter(|&i| self.calls[i as usize].st == St::Up)
                    .collect();
                self.bye_queue.extend(up);
            }
            if self.draining {
                // BYEs at the ramp rate: 5,000 at once would be a storm no real
                // hotline sees, and would measure the wrong thing.
                let allowed = ((now - drain_at) as f64 / 1e9 * ramp) as u64 + 1;
                while byes_sent < allowed {
                    let Some(slot) = self.bye_queue.pop_front() else {
                        break;
                    };
                    if self.calls[slot as usize].st == St::Up {
                        self.hang_up(slot, now);
                        byes_sent += 1;
                    }
                }
                if self.live == 0 || now > drain_at + 60_000_000_000 {
                    self.r.unfinished = self.live as u64;
                    break;
                }
            }
            while let Ok(slot) = self.s.hangups.try_recv() {
                if self
                    .calls
                    .get(slot as usize)
                    .is_some_and(|c| c.st == St::Up)
                {
                    self.hang_up(slot, now);
                }
            }
            while let Some(&Reverse((due, slot, t))) = self.timers.peek() {
                if due > now {
                    break;
                }
                self.timers.pop();
                self.timer(slot, t, now);
            }
            match self.s.sock.recv_from(&mut buf) {
                Ok((n, src)) => {
                    let now = self.s.shared.ns();
                    let msg = buf[..n].to_vec();
                    self.message(&msg, src, now);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {}
            }
        }
        self.s.shared.max_up.store(self.r.max_up, Ordering::Relaxed);
    }

    fn send(&self, bytes: &[u8]) {
        let _ = self
            .s
            .sock
            .send_to(bytes, SocketAddr::V4(self.s.plan.server));
    }

    fn dial(&mut self, line: u32, first: bool, now: u64) {
        let slot = self.calls.len() as u32;
        let p = &self.s.plan;
        let kind = if p.ticket_line[line as usize] {
            Kind::Ticket
        } else {
            Kind::Silent
        };
        let body = format!(
            "v=0\r\no=load {slot} 1 IN IP4 127.0.0.1\r\ns=load\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
            p.rtp.port()
        );
        let invite = format!(
            "INVITE sip:{user}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{run:x}.{slot};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:139{num:08}@127.0.0.1>;tag=f{slot}\r\nTo: <sip:{user}@{srv}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:load@{me}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            user = p.user,
            srv = p.server,
            me = self.me,
            run = p.run,
            num = slot % 100_000_000,
            cid = call_id(p.run, slot),
            len = body.len(),
        );
        self.send(invite.as_bytes());
        let t1 = p.t1.as_nanos() as u64;
        self.calls.push(Call {
            line,
            kind,
            first,
            answered: false,
            st: St::Calling,
            invite: invite.into_bytes(),
            ack: Vec::new(),
            bye: Vec::new(),
            retx_ns: t1,
            sent_ns: now,
        });
        self.live += 1;
        self.r.attempted += 1;
        self.timers
            .push(Reverse((now + t1, slot, Timer::InviteRetx)));
        self.timers
            .push(Reverse((now + 64 * t1, slot, Timer::InviteTimeout)));
        self.timers.push(Reverse((
            now + 90_000_000_000,
            slot,
            Timer::ProceedingTimeout,
        )));
    }

    fn timer(&mut self, slot: u32, t: Timer, now: u64) {
        if t == Timer::Redial {
            if !self.draining {
                self.dial(slot, false, now);
            }
            return;
        }
        let t2 = 4_000_000_000u64;
        let st = self.calls[slot as usize].st;
        match (t, st) {
            (Timer::InviteRetx, St::Calling) => {
                let c = &mut self.calls[slot as usize];
                c.retx_ns *= 2;
                let due = now + c.retx_ns;
                let bytes = c.invite.clone();
                self.send(&bytes);
                self.r.invite_retransmits += 1;
                self.timers.push(Reverse((due, slot, Timer::InviteRetx)));
            }
            (Timer::InviteTimeout, St::Calling) | (Timer::ProceedingTimeout, St::Proceeding) => {
                self.fail(slot, 408, now, 1);
            }
            (Timer::ByeRetx, St::Byeing) => {
                let c = &mut self.calls[slot as usize];
                c.retx_ns = (c.retx_ns * 2).min(t2);
                let due = now + c.retx_ns;
                let bytes = c.bye.clone();
                self.send(&bytes);
                self.r.bye_retransmits += 1;
                self.timers.push(Reverse((due, slot, Timer::ByeRetx)));
            }
            (Timer::ByeTimeout, St::Byeing) => {
                self.r.bye_timeouts += 1;
                self.done(slot, now, 0);
            }
            _ => {}
        }
    }

    /// The call is over for the client; the line places its next call after `delay_ns`.
    fn done(&mut self, slot: u32, now: u64, delay_ns: u64) {
        let c = &mut self.calls[slot as usize];
        if c.st == St::Done {
            return;
        }
        c.st = St::Done;
        self.live -= 1;
        if !self.draining {
            let line = c.line;
            self.timers
                .push(Reverse((now + delay_ns, line, Timer::Redial)));
        }
    }

    fn fail(&mut self, slot: u32, code: u16, now: u64, retry_s: u64) {
        *self.r.failed.entry(code).or_default() += 1;
        if self.calls[slot as usize].first {
            self.s.shared.first_resolved.fetch_add(1, Ordering::Relaxed);
        }
        self.s.shared.failed.fetch_add(1, Ordering::Relaxed);
        // A refused line waits what the refusal asked (a second without Retry-After).
        *self.r.retry_after_s.entry(retry_s).or_default() += 1;
        self.done(slot, now, retry_s * 1_000_000_000);
    }

    fn ended(&mut self, slot: u32, now: u64, by_hotline: bool) {
        for tx in [&self.s.to_rx, &self.s.to_tx] {
            let _ = tx.send(Ctl::End {
                slot,
                at_ns: now,
                by_hotline,
            });
        }
        self.s.shared.calls_up.fetch_sub(1, Ordering::Relaxed);
    }

    fn hang_up(&mut self, slot: u32, now: u64) {
        let p = &self.s.plan;
        let c = &mut self.calls[slot as usize];
        let ack = String::from_utf8_lossy(&c.ack).into_owned();
        // The BYE reuses the ACK's dialog headers: same From, To (with hotline's tag),
        // Call-ID and remote target.
        let request_uri = ack
            .split("\r\n")
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_owned();
        let to = ack
            .split("\r\n")
            .find(|l| l.starts_with("To: "))
            .unwrap_or("To: <sip:x@127.0.0.1>")
            .to_owned();
        let bye = format!(
            "BYE {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{run:x}.{slot}.bye;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:139{num:08}@127.0.0.1>;tag=f{slot}\r\n{to}\r\nCall-ID: {cid}\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            me = self.me,
            run = p.run,
            num = slot % 100_000_000,
            cid = call_id(p.run, slot),
        );
        c.st = St::Byeing;
        c.retx_ns = p.t1.as_nanos() as u64;
        let t1 = c.retx_ns;
        c.bye = bye.into_bytes();
        let bytes = c.bye.clone();
        self.send(&bytes);
        self.timers.push(Reverse((now + t1, slot, Timer::ByeRetx)));
        self.timers
            .push(Reverse((now + 64 * t1, slot, Timer::ByeTimeout)));
        self.ended(slot, now, false);
        self.r.ended_by_client += 1;
    }

    fn slot_of(&self, cid: &str) -> Option<u32> {
        let prefix = format!("ld{:08x}-", self.s.plan.run);
        let rest = cid.strip_prefix(&prefix)?;
        let slot: u32 = rest.split('@').next()?.parse().ok()?;
        ((slot as usize) < self.calls.len()).then_some(slot)
    }

    fn message(&mut self, b: &[u8], src: SocketAddr, now: u64) {
        let Some(m) = Parsed::parse(b) else {
            self.r.unparsable += 1;
            return;
        };
        let Some(slot) = m.get("Call-ID", "i").and_then(|c| self.slot_of(c)) else {
            self.r.stray += 1;
            return;
        };
        match m.method {
            Some(method) => self.request(method, &m, slot, src, now),
            None => self.response(&m, slot, now),
        }
    }

    fn request(&mut self, method: &str, m: &Parsed<'_>, slot: u32, src: SocketAddr, now: u64) {
        if method == "ACK" {
            return;
        }
        let mut resp = format!(
            "SIP/2.0 {}\r\n",
            if matches!(method, "BYE" | "OPTIONS" | "INFO" | "NOTIFY") {
                "200 OK"
            } else {
                "501 Not Implemented"
            }
        );
        for v in m.all("Via", "v") {
            resp.push_str(&format!("Via: {v}\r\n"));
        }
        for (long, short) in [
            ("From", "f"),
            ("To", "t"),
            ("Call-ID", "i"),
            ("CSeq", "CSeq"),
        ] {
            if let Some(v) = m.get(long, short) {
                resp.push_str(&format!("{long}: {v}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        let _ = self.s.sock.send_to(resp.as_bytes(), src);
        if method == "BYE" {
            match self.calls[slot as usize].st {
                St::Up => {
                    self.ended(slot, now, true);
                    self.r.ended_by_hotline += 1;
                    self.done(slot, now, 0);
                }
                // Both hung up at once: ours is answered or times out.
                St::Byeing => {}
                _ => {}
            }
        }
    }

    fn response(&mut self, m: &Parsed<'_>, slot: u32, now: u64) {
        let code = m.code;
        let st = self.calls[slot as usize].st;
        match m.cseq_method() {
            Some("INVITE") => {}
            Some("BYE") => {
                if st == St::Byeing && code >= 200 {
                    if code >= 300 {
                        *self.r.bye_refused.entry(code).or_default() += 1;
                    }
                    self.done(slot, now, 0);
                }
                return;
            }
            _ => return,
        }
        match code {
            100..=199 => {
                if st == St::Calling {
                    self.calls[slot as usize].st = St::Proceeding;
                }
            }
            200..=299 => {
                if !matches!(st, St::Calling | St::Proceeding) {
                    // A repeated 200: our ACK was lost or late; ACK again.
                    self.r.ok_repeats += 1;
                    let ack = self.calls[slot as usize].ack.clone();
                    self.send(&ack);
                    return;
                }
                let Some(remote) = sdp_remote(m.body) else {
                    self.r.unparsable += 1;
                    return;
                };
                let p = &self.s.plan;
                let to = m.get("To", "t").unwrap_or_default();
                let target = m
                    .get("Contact", "m")
                    .map(uri_of)
                    .unwrap_or("sip:hotline@127.0.0.1")
                    .to_owned();
                let ack = format!(
                    "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{run:x}.{slot}.ack;rport\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:139{num:08}@127.0.0.1>;tag=f{slot}\r\nTo: {to}\r\n\
                     Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                    me = self.me,
                    run = p.run,
                    num = slot % 100_000_000,
                    cid = call_id(p.run, slot),
                );
                let c = &mut self.calls[slot as usize];
                let kind = c.kind;
                self.r.setup_ms.push((now - c.sent_ns) as f64 / 1e6);
                c.st = St::Up;
                c.answered = true;
                c.ack = ack.into_bytes();
                let first = c.first;
                // Media first: hotline plays only once the ACK is in.
                for tx in [&self.s.to_rx, &self.s.to_tx] {
                    let _ = tx.send(Ctl::Start {
                        slot,
                        kind,
                        remote,
                        at_ns: now,
                    });
                }
                let ack = self.calls[slot as usize].ack.clone();
                self.send(&ack);
                self.r.answered += 1;
                self.s.shared.answered.fetch_add(1, Ordering::Relaxed);
                let up = self.s.shared.calls_up.fetch_add(1, Ordering::Relaxed) + 1;
                self.r.max_up = self.r.max_up.max(up);
                if first {
                    self.s.shared.first_resolved.fetch_add(1, Ordering::Relaxed);
                }
                if self.draining {
                    self.bye_queue.push_back(slot);
                }
            }
            _ => {
                // RFC 3261 §17.1.1.3: a non-2xx final is ACKed in the INVITE's transaction.
                let c = &self.calls[slot as usize];
                let invite = String::from_utf8_lossy(&c.invite).into_owned();
                let mut ack = String::new();
                for l in invite.split("\r\n") {
                    if l.is_empty() {
                        break;
                    }
                    if let Some(rest) = l.strip_prefix("INVITE ") {
                        ack.push_str(&format!("ACK {rest}\r\n"));
                    } else if l.starts_with("To: ") {
                        ack.push_str(&format!("To: {}\r\n", m.get("To", "t").unwrap_or_default()));
                    } else if l.starts_with("CSeq: ") {
                        ack.push_str("CSeq: 1 ACK\r\n");
                    } else if l.starts_with("Via: ")
                        || l.starts_with("From: ")
                        || l.starts_with("Call-ID: ")
                        || l.starts_with("Max-Forwards: ")
                    {
                        ack.push_str(l);
                        ack.push_str("\r\n");
                    }
                }
                ack.push_str("Content-Length: 0\r\n\r\n");
                self.send(ack.as_bytes());
                if matches!(st, St::Calling | St::Proceeding) {
                    // RFC 3261 §21.5.4: a 503's Retry-After says when to call again; a
                    // caller (or a proxy) that honours it does not make a refusal storm.
                    let retry_s = m
                        .get("Retry-After", "Retry-After")
                        .and_then(|v| v.split([' ', ';', '(']).next()?.parse::<u64>().ok())
                        .map_or(1, |s| s.clamp(1, 120));
                    self.fail(slot, code, now, retry_s);
                }
            }
        }
    }
}
