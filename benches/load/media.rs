//! The client's RTP: one socket for every call. One thread receives (recvmmsg) and
//! listens to what each call hears; one sends (sendmmsg) each call's frames on its
//! own 20 ms schedule from a wheel of 20 one-millisecond buckets.
//!
//! Every call's SDP offer names the same client port, so packets are told apart by
//! their source: hotline gives each call its own RTP port.
use crate::audio::{FRAME_NS, Fingerprints, frame_hash};
use crate::report::Histo;
use crate::{Kind, Shared, WINDOW_OPEN};
use std::collections::{HashMap, VecDeque};
use std::mem::{size_of, zeroed};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Duration;

/// What the SIP side tells the media threads, and the receiver tells the sender.
pub enum Ctl {
    Start {
        slot: u32,
        kind: Kind,
        remote: SocketAddrV4,
        at_ns: u64,
    },
    End {
        slot: u32,
        at_ns: u64,
        by_hotline: bool,
    },
    /// Press a key (RFC 4733 event code).
    Key { slot: u32, event: u8 },
}

const BATCH: usize = 64;
const NONE: u32 = u32::MAX;
/// Silences inside a prompt (between phrases, between the clips of one prompt) are
/// below 0.5 s; the flow's silences are 5 s.
const PAUSE_NS: u64 = 1_500_000_000;
const FIVE_S: i64 = 5_000_000_000;
const DTMF_PT: u8 = 101;
const SCENARIO_TICK_NS: u64 = 10_000_000;

/// The silent caller hears these three prompts (P-SIL); a call answered after three
/// rings starts with the busy apology instead.
const SILENT_PROMPTS: [&[&str]; 3] = [
    &["greeting", "busy_greeting"],
    &["how_can_i_help"],
    &["no_sound_goodbye"],
];

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

/// A measured P-SIL mark: `which` 0 and 1 are the silences after the greeting and
/// the re-prompt, 2 the farewell to hotline's BYE.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub which: u8,
    /// Measured minus 5 s.
    pub err_ns: i64,
    /// The two events, ns since the bench began.
    pub from_ns: u64,
    pub to_ns: u64,
}

/// One prompt as the caller heard it, with its silent edges added back.
#[derive(Clone, Debug)]
struct Heard {
    start_ns: u64,
    end_ns: u64,
    prompt: Option<u32>,
    end_known: bool,
}

#[derive(Default)]
struct Segmenter {
    sounding: bool,
    first_ns: u64,
    first_hash: u64,
    last_ns: u64,
    last_hash: u64,
    heard: Vec<Heard>,
}

impl Segmenter {
    /// Closes the prompt that is sounding; true when one was closed.
    fn close(&mut self, fp: &Fingerprints, unidentified: &mut u64) -> bool {
        if !self.sounding {
            return false;
        }
        self.sounding = false;
        let start = fp.start(self.first_hash);
        let end = fp.end(self.last_hash);
        // Unknown edges (a lost frame) get espeak's usual two silent frames.
        let lead = fp.edge(start).map_or(2, |e| e.silent_frames);
        let trail = fp.edge(end).map_or(2, |e| e.silent_frames);
        if start.is_none() || end.is_none() {
            *unidentified += 1;
        }
        self.heard.push(Heard {
            start_ns: self.first_ns.saturating_sub(u64::from(lead) * FRAME_NS),
            // The last frame sounds for 20 ms after it arrives.
            end_ns: self.last_ns + u64::from(trail + 1) * FRAME_NS,
            prompt: start,
            end_known: end.is_some(),
        });
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Waits 1 s into the greeting, then presses 4 (suggestion).
    Greeting,
    /// Waits for the suggestion prompt.
    Pressed4 {
        at: u64,
    },
    /// Waits for the prompt to end, then presses # (the recording ends).
    Prompted,
    /// Waits for the thanks that follow the filed ticket.
    PressedHash {
        at: u64,
    },
    /// Heard the thanks; hangs up 1 s later.
    Confirmed {
        at: u64,
    },
    Done,
}

#[derive(Clone, Debug, Default)]
pub struct TicketCall {
    pub slot: u32,
    /// The caller pressed 4 and #: hotline should file a suggestion.
    pub keyed: bool,
    /// The caller heard the thanks: hotline says it filed it.
    pub confirmed: bool,
    pub failure: Option<&'static str>,
}

struct RxCall {
    kind: Kind,
    port: u16,
    answered_ns: u64,
    have_seq: bool,
    next_seq: u16,
    last_ts: u32,
    first_ts: u32,
    min_transit: i64,
    last_transit: i64,
    jitter: f64,
    max_jitter_window: f64,
    last_arrival: u64,
    max_gap_window: u64,
    packets: u64,
    seg: Segmenter,
    step: Step,
    ticket: TicketCall,
}

#[derive(Default)]
pub struct RxReport {
    pub marks: Vec<Mark>,
    /// What silent callers heard, as prompt sequences, and how many heard each.
    pub sequences: HashMap<String, u64>,
    /// Packet lateness against the best transit of its call, in the window.
    pub lateness: Histo,
    /// RFC 3550 interarrival jitter, per call: the largest seen in the window, ns.
    pub jitter_ns: Vec<f64>,
    /// Time between consecutive packets of a call, in the window.
    pub gaps: Histo,
    /// Per call, its longest gap in the window, ns.
    pub max_gap_ns: Vec<f64>,
    pub lost_window: u64,
    pub lost_total: u64,
    pub out_of_order: u64,
    /// Frames hotline's pacer skipped (the timestamp jumps, the sequence does not).
    pub skipped_window: u64,
    pub skipped_total: u64,
    pub unmatched: u64,
    pub unidentified_edges: u64,
    pub packets: u64,
    pub batches: u64,
    pub tickets: Vec<TicketCall>,
    pub receive_errors: u64,
    /// Times the wall clock moved against the bench's monotonic one by more than 1 ms
    /// between two reads of the socket (a host's correction after it paused the VM).
    pub clock_steps: u64,
}

pub struct RxSetup {
    pub sock: Arc<UdpSocket>,
    pub ctl: Receiver<Ctl>,
    pub to_tx: Sender<Ctl>,
    pub hangups: Sender<u32>,
    pub fp: Arc<Fingerprints>,
    pub shared: Arc<Shared>,
}

struct Rx {
    fp: Arc<Fingerprints>,
    to_tx: Sender<Ctl>,
    hangups: Sender<u32>,
    calls: Vec<Option<RxCall>>,
    by_port: Vec<u32>,
    tickets_active: Vec<u32>,
    r: RxReport,
}

pub fn rx_thread(s: RxSetup) -> RxReport {
    let fd = s.sock.as_raw_fd();
    let mut rx = Rx {
        fp: s.fp.clone(),
        to_tx: s.to_tx,
        hangups: s.hangups,
        calls: Vec::new(),
        by_port: vec![NONE; 65_536],
        tickets_active: Vec::new(),
        r: RxReport {
            lateness: Histo::new(100_000, 2_000_000_000),
            gaps: Histo::new(100_000, 10_000_000_000),
            ..RxReport::default()
        },
    };
    enable_timestamps(fd);
    let mut bufs = vec![[0u8; 2048]; BATCH];
    // Room for one SCM_TIMESTAMPNS control message each, 8-byte aligned.
    let mut ctrl = vec![[0u64; 8]; BATCH];
    // SAFETY: plain old data, filled in below and by the kernel.
    let mut addrs: Vec<libc::sockaddr_in> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: as above.
    let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    for i in 0..BATCH {
        hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
        hdrs[i].msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
    }
    let mut last_tick = 0u64;
    let mut last_offset: Option<i128> = None;
    while !s.shared.stop.load(Ordering::Relaxed) {
        for h in hdrs.iter_mut() {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_controllen = size_of::<[u64; 8]>() as _;
        }
        // Kernel receive stamps are wall-clock; this maps them onto the bench's clock.
        // A wall clock stepped since the last read (a host correcting the VM's clock
        // after a pause) would map the stamps taken before the step that far off: one
        // datagram timed a frame early made every later one of its call look a frame
        // late (lateness p50 16.9 ms, max 20.4, at 5,000 calls in one run). That batch
        // is timed on arrival instead, and the step counted.
        let offset = wall_offset(&s.shared);
        let stepped = last_offset.is_some_and(|o| (offset - o).abs() > 1_000_000);
        if stepped {
            rx.r.clock_steps += 1;
        }
        last_offset = Some(offset);
        // Never blocking in the kernel: a receiver asleep on the socket would make
        // every one of hotline's sends pay for waking it (an IPI in this VM), which a
        // peer on another host would not cost it. Packets wait in the socket buffer
        // while this thread sleeps 1 ms; their kernel stamps keep the timing exact.
        // SAFETY: every header points at live buffers owned by this frame.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let now = s.shared.ns();
        // Control before packets: a Start is always sent before the ACK that makes
        // hotline play, so the first prompt frame never beats it here.
        loop {
            match s.ctl.try_recv() {
                Ok(c) => rx.control(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        if n > 0 {
            let window = s.shared.window.load(Ordering::Relaxed) == WINDOW_OPEN;
            rx.r.batches += 1;
            for i in 0..n as usize {
                let len = hdrs[i].msg_len as usize;
                let port = u16::from_be(addrs[i].sin_port);
                let at = match stamp(&hdrs[i].msg_hdr) {
                    Some(t) if !stepped => (t - offset).clamp(0, i128::from(now)) as u64,
                    _ => now,
                };
                rx.packet(&bufs[i][..len.min(2048)], port, at, window);
            }
            s.shared.rx_packets.fetch_add(n as u64, Ordering::Relaxed);
        } else if n < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                rx.r.receive_errors += 1;
            }
        }
        if now >= last_tick + SCENARIO_TICK_NS {
            last_tick = now;
            rx.scenario_tick(now);
        }
        if n < BATCH as i32 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Calls still up when the run stops say what they heard so far.
    let open: Vec<u32> = (0..rx.calls.len() as u32)
        .filter(|&i| rx.calls[i as usize].is_some())
        .collect();
    let now = s.shared.ns();
    for slot in open {
        rx.end(slot, now, false);
    }
    rx.r
}

impl Rx {
    fn control(&mut self, c: Ctl) {
        match c {
            Ctl::Start {
                slot,
                kind,
                remote,
                at_ns,
            } => {
                let i = slot as usize;
                if self.calls.len() <= i {
                    self.calls.resize_with(i + 1, || None);
                }
                self.by_port[usize::from(remote.port())] = slot;
                if kind == Kind::Ticket {
                    self.tickets_active.push(slot);
                }
                self.calls[i] = Some(RxCall {
                    kind,
                    port: remote.port(),
                    answered_ns: at_ns,
                    have_seq: false,
                    next_seq: 0,
                    last_ts: 0,
                    first_ts: 0,
                    min_transit: i64::MAX,
                    last_transit: 0,
                    jitter: 0.0,
                    max_jitter_window: 0.0,
                    last_arrival: 0,
                    max_gap_window: 0,
                    packets: 0,
                    seg: Segmenter::default(),
                    step: Step::Greeting,
                    ticket: TicketCall {
                        slot,
                        ..TicketCall::default()
                    },
                });
            }
            Ctl::End {
                slot,
                at_ns,
                by_hotline,
            } => self.end(slot, at_ns, by_hotline),
            Ctl::Key { .. } => {}
        }
    }

    fn packet(&mut self, p: &[u8], port: u16, now: u64, window: bool) {
        self.r.packets += 1;
        let slot = self.by_port[usize::from(port)];
        let Some(Some(c)) = self.calls.get_mut(slot as usize) else {
            self.r.unmatched += 1;
            return;
        };
        if p.len() < 12 || p[0] >> 6 != 2 {
            return;
        }
        let cc = usize::from(p[0] & 0x0f);
        let pt = p[1] & 0x7f;
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let payload = p.get(12 + 4 * cc..).unwrap_or_default();
        c.packets += 1;

        if !c.have_seq {
            c.have_seq = true;
            c.next_seq = seq.wrapping_add(1);
            c.last_ts = ts;
            c.first_ts = ts;
        } else {
            let ahead = seq.wrapping_sub(c.next_seq) as i16;
            if ahead >= 0 {
                let lost = ahead as u64;
                let frames = u64::from(ts.wrapping_sub(c.last_ts) / 160);
                let skipped = frames.saturating_sub(lost + 1);
                self.r.lost_total += lost;
                self.r.skipped_total += skipped;
                if window {
                    self.r.lost_window += lost;
                    self.r.skipped_window += skipped;
                }
                c.next_seq = seq.wrapping_add(1);
                c.last_ts = ts;
            } else {
                self.r.out_of_order += 1;
            }
        }
        // Transit against the stream's own clock: frame n is due at t0 + n·20 ms, so
        // the best transit seen is the schedule and the rest is lateness.
        let media_ns = i64::from(ts.wrapping_sub(c.first_ts)) * 125_000;
        let transit = now as i64 - media_ns;
        if c.packets > 1 {
            let d = (transit - c.last_transit).unsigned_abs() as f64;
            c.jitter += (d - c.jitter) / 16.0;
        }
        c.last_transit = transit;
        c.min_transit = c.min_transit.min(transit);
        if window {
            self.r.lateness.add((transit - c.min_transit) as u64);
            c.max_jitter_window = c.max_jitter_window.max(c.jitter);
            // Silence on the line: a stalled call task skips frames instead of
            // sending them late, so lateness alone would not show it.
            if c.last_arrival > 0 {
                let gap = now.saturating_sub(c.last_arrival);
                self.r.gaps.add(gap);
                c.max_gap_window = c.max_gap_window.max(gap);
            }
        }
        c.last_arrival = now;

        if pt != 0 {
            return;
        }
        let fp = &self.fp;
        if fp.loud.sounding(payload) {
            let h = frame_hash(payload);
            if c.seg.sounding && now - c.seg.last_ns > PAUSE_NS {
                c.seg.close(fp, &mut self.r.unidentified_edges);
            }
            if !c.seg.sounding {
                c.seg.sounding = true;
                c.seg.first_ns = now;
                c.seg.first_hash = h;
            }
            c.seg.last_ns = now;
            c.seg.last_hash = h;
            if c.kind == Kind::Ticket {
                match c.step {
                    Step::Pressed4 { .. } if fp.opens(h, "suggestion_record") => {
                        c.step = Step::Prompted
                    }
                    Step::PressedHash { .. } if fp.opens(h, "suggestion_thanks") => {
                        c.ticket.confirmed = true;
                        c.step = Step::Confirmed { at: now };
                    }
                    _ => {}
                }
            }
        } else if c.seg.sounding
            && now - c.seg.last_ns > PAUSE_NS
            && c.seg.close(fp, &mut self.r.unidentified_edges)
            && c.step == Step::Prompted
        {
            c.ticket.keyed = true;
            c.step = Step::PressedHash { at: now };
            let _ = self.to_tx.send(Ctl::Key { slot, event: 11 });
        }
    }

    fn scenario_tick(&mut self, now: u64) {
        let mut i = 0;
        while i < self.tickets_active.len() {
            let slot = self.tickets_active[i];
            let Some(Some(c)) = self.calls.get_mut(slot as usize) else {
                self.tickets_active.swap_remove(i);
                continue;
            };
            i += 1;
            let give_up = |c: &mut RxCall, why: &'static str| {
                c.ticket.failure = Some(why);
                c.step = Step::Done;
            };
            match c.step {
                Step::Greeting if now >= c.answered_ns + 1_000_000_000 && c.seg.sounding => {
                    c.step = Step::Pressed4 { at: now };
                    let _ = self.to_tx.send(Ctl::Key { slot, event: 4 });
                }
                Step::Greeting if now >= c.answered_ns + 10_000_000_000 => {
                    give_up(c, "no greeting within 10 s");
                    let _ = self.hangups.send(slot);
                }
                Step::Pressed4 { at } if now >= at + 10_000_000_000 => {
                    give_up(c, "4 pressed, no suggestion prompt within 10 s");
                    let _ = self.hangups.send(slot);
                }
                Step::PressedHash { at } if now >= at + 10_000_000_000 => {
                    give_up(c, "# pressed, no thanks within 10 s");
                    let _ = self.hangups.send(slot);
                }
                Step::Confirmed { at } if now >= at + 1_000_000_000 => {
                    c.step = Step::Done;
                    let _ = self.hangups.send(slot);
                }
                _ => {}
            }
        }
    }

    fn end(&mut self, slot: u32, at_ns: u64, by_hotline: bool) {
        let Some(mut c) = self.calls.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if self.by_port[usize::from(c.port)] == slot {
            self.by_port[usize::from(c.port)] = NONE;
        }
        c.seg.close(&self.fp, &mut self.r.unidentified_edges);
        if c.packets > 1 {
            self.r.jitter_ns.push(c.max_jitter_window);
        }
        if c.max_gap_window > 0 {
            self.r.max_gap_ns.push(c.max_gap_window as f64);
        }
        match c.kind {
            Kind::Ticket => {
                if c.ticket.failure.is_none() && !c.ticket.confirmed {
                    c.ticket.failure = Some(if by_hotline {
                        "hotline hung up first"
                    } else {
                        "the run ended first"
                    });
                }
                self.r.tickets.push(c.ticket);
            }
            Kind::Silent => self.silent_marks(&c.seg.heard, at_ns, by_hotline),
        }
    }

    fn silent_marks(&mut self, heard: &[Heard], bye_ns: u64, by_hotline: bool) {
        let fp = &self.fp;
        let name = |h: &Heard| fp.edge(h.prompt).map_or("?", |e| e.prompt.as_str());
        let mut seq: Vec<&str> = heard.iter().map(name).collect();
        seq.push(if by_hotline {
            "hotline BYE"
        } else {
            "client BYE"
        });
        *self.r.sequences.entry(seq.join(" > ")).or_default() += 1;
        let as_expected = |i: usize| {
            heard
                .get(i)
                .is_some_and(|h| SILENT_PROMPTS[i].contains(&name(h)))
        };
        for k in 0..2 {
            if as_expected(k) && as_expected(k + 1) {
                let (a, b) = (&heard[k], &heard[k + 1]);
                self.r.marks.push(Mark {
                    which: k as u8,
                    err_ns: b.start_ns as i64 - a.end_ns as i64 - FIVE_S,
                    from_ns: a.end_ns,
                    to_ns: b.start_ns,
                });
            }
        }
        if by_hotline && heard.len() == 3 && (0..3).all(as_expected) && heard[2].end_known {
            self.r.marks.push(Mark {
                which: 2,
                err_ns: bye_ns as i64 - heard[2].end_ns as i64 - FIVE_S,
                from_ns: heard[2].end_ns,
                to_ns: bye_ns,
            });
        }
    }
}

fn enable_timestamps(fd: i32) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The wall clock less the bench's, from two wall-clock reads around one of the bench's
/// that are close together: a thread preempted between the reads (by a real-time media
/// thread, for milliseconds) would otherwise see a step that is not there.
fn wall_offset(sh: &Shared) -> i128 {
    let mut best = None;
    for _ in 0..4 {
        let r0 = realtime_ns();
        let m = i128::from(sh.ns());
        let r1 = realtime_ns();
        let spread = r1 - r0;
        if best.is_none_or(|(s, _)| spread < s) {
            best = Some((spread, (r0 + r1) / 2 - m));
        }
        if spread < 50_000 {
            break;
        }
    }
    best.map_or_else(|| realtime_ns() - i128::from(sh.ns()), |(_, o)| o)
}

fn realtime_ns() -> i128 {
    // SAFETY: clock_gettime fills the timespec.
    let mut t: libc::timespec = unsafe { zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// The kernel's receive time of a datagram (SO_TIMESTAMPNS), wall clock, ns.
fn stamp(h: &libc::msghdr) -> Option<i128> {
    // SAFETY: the kernel wrote msg_controllen bytes of well-formed control messages
    // into msg_control; CMSG_* walk exactly those.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

// ---- sender ---------------------------------------------------------------------

struct TxCall {
    active: bool,
    addr: libc::sockaddr_in,
    ssrc: u32,
    seq: u16,
    ts: u32,
    keys: VecDeque<u8>,
    /// The key being sent: event code, its timestamp, packets sent so far.
    dtmf: Option<(u8, u32, u8)>,
    /// Frames of quiet left between two keys.
    gap: u8,
}

#[derive(Default)]
pub struct TxReport {
    pub packets: u64,
    pub send_errors: u64,
    /// How late the client's own 1 ms ticks ran: its health, not hotline's.
    pub lag: Histo,
    pub keys: u64,
    /// Milliseconds of schedule the sender skipped because it fell behind.
    pub skipped_ms: u64,
}

pub struct TxSetup {
    pub sock: Arc<UdpSocket>,
    pub ctl: Receiver<Ctl>,
    pub shared: Arc<Shared>,
    /// Send 20 ms of PCMU silence to every call, not only keys.
    pub rtp: bool,
}

struct Batch {
    bufs: Vec<[u8; 12 + 160]>,
    lens: [usize; BATCH],
    addrs: Vec<libc::sockaddr_in>,
    n: usize,
}

pub fn tx_thread(s: TxSetup) -> TxReport {
    let fd = s.sock.as_raw_fd();
    let mut rep = TxReport {
        lag: Histo::new(100_000, 2_000_000_000),
        ..TxReport::default()
    };
    let mut calls: Vec<Option<TxCall>> = Vec::new();
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); 20];
    let mut batch = Batch {
        bufs: vec![[0u8; 172]; BATCH],
        lens: [0; BATCH],
        // SAFETY: plain old data.
        addrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
        n: 0,
    };
    let mut next_ms = s.shared.ns() / 1_000_000;
    let silence = [0xFFu8; 160];
    while !s.shared.stop.load(Ordering::Relaxed) {
        while let Ok(c) = s.ctl.try_recv() {
            match c {
                Ctl::Start {
                    slot,
                    remote,
                    at_ns,
                    ..
                } => {
                    let i = slot as usize;
                    if calls.len() <= i {
                        calls.resize_with(i + 1, || None);
                    }
                    calls[i] = Some(TxCall {
                        active: true,
                        addr: sockaddr(remote),
                        ssrc: rand::random(),
                        seq: rand::random(),
                        ts: rand::random(),
                        keys: VecDeque::new(),
                        dtmf: None,
                        gap: 0,
                    });
                    buckets[((at_ns / 1_000_000) % 20) as usize].push(slot);
                }
                Ctl::End { slot, .. } => {
                    if let Some(Some(c)) = calls.get_mut(slot as usize) {
                        c.active = false;
                    }
                }
                Ctl::Key { slot, event } => {
                    if let Some(Some(c)) = calls.get_mut(slot as usize) {
                        c.keys.push_back(event);
                        rep.keys += 1;
                    }
                }
            }
        }
        let now = s.shared.ns();
        // More than 100 ms behind, the client skips rather than bursts, as hotline's
        // pacer does: the run is then client-limited, and the report says so.
        let now_ms = now / 1_000_000;
        if now_ms > next_ms + 100 {
            rep.skipped_ms += now_ms - next_ms;
            rep.lag.add(now - next_ms * 1_000_000);
            next_ms = now_ms;
        }
        while next_ms * 1_000_000 <= now {
            rep.lag.add(now - next_ms * 1_000_000);
            let bucket = &mut buckets[(next_ms % 20) as usize];
            let mut i = 0;
            while i < bucket.len() {
                let slot = bucket[i] as usize;
                let Some(c) = calls[slot].as_mut().filter(|c| c.active) else {
                    calls[slot] = None;
                    bucket.swap_remove(i);
                    continue;
                };
                i += 1;
                frame(c, s.rtp, &silence, &mut batch, fd, &mut rep);
            }
            next_ms += 1;
        }
        flush(&mut batch, fd, &mut rep);
        s.shared.tx_packets.store(rep.packets, Ordering::Relaxed);
        let target = next_ms * 1_000_000;
        let now = s.shared.ns();
        if target > now {
            std::thread::sleep(Duration::from_nanos(target - now));
        }
    }
    rep
}

/// This call's next 20 ms: a key's event packet, a silence frame, or nothing.
fn frame(c: &mut TxCall, rtp: bool, silence: &[u8], b: &mut Batch, fd: i32, rep: &mut TxReport) {
    if c.dtmf.is_none() {
        if c.gap > 0 {
            c.gap -= 1;
        } else {
            c.dtmf = c.keys.pop_front().map(|k| (k, c.ts, 0));
        }
    }
    let event_payload: [u8; 4];
    let (pt, marker, ts, body): (u8, bool, u32, &[u8]) = match c.dtmf {
        Some((event, ets, n)) => {
            // RFC 4733: five packets of growing duration (100 ms), then the end
            // packet three times, all with the key's first timestamp.
            let end = n >= 5;
            let duration = (u16::from(n.min(4)) + 1) * 160;
            event_payload = [
                event,
                if end { 0x80 } else { 0 } | 10,
                (duration >> 8) as u8,
                duration as u8,
            ];
            if n >= 7 {
                c.dtmf = None;
                c.gap = 3;
            } else {
                c.dtmf = Some((event, ets, n + 1));
            }
            (DTMF_PT, n == 0, ets, &event_payload)
        }
        None if rtp => (0, false, c.ts, silence),
        None => {
            c.ts = c.ts.wrapping_add(160);
            return;
        }
    };
    let buf = &mut b.bufs[b.n];
    buf[0] = 0x80;
    buf[1] = pt | if marker { 0x80 } else { 0 };
    buf[2..4].copy_from_slice(&c.seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&c.ssrc.to_be_bytes());
    buf[12..12 + body.len()].copy_from_slice(body);
    b.lens[b.n] = 12 + body.len();
    b.addrs[b.n] = c.addr;
    b.n += 1;
    c.seq = c.seq.wrapping_add(1);
    c.ts = c.ts.wrapping_add(160);
    if b.n == BATCH {
        flush(b, fd, rep);
    }
}

fn flush(b: &mut Batch, fd: i32, rep: &mut TxReport) {
    if b.n == 0 {
        return;
    }
    let mut iov: [libc::iovec; BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: plain old data.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for i in 0..b.n {
        iov[i] = libc::iovec {
            iov_base: b.bufs[i].as_mut_ptr().cast(),
            iov_len: b.lens[i],
        };
        hdrs[i].msg_hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_in).cast();
        hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    let mut off = 0;
    while off < b.n {
        // SAFETY: headers point at buffers and addresses that live until we return.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr().add(off),
                (b.n - off) as libc::c_uint,
                0,
            )
        };
        if sent <= 0 {
            // A datagram the kernel refuses (no buffer) is dropped, as on a real line.
            rep.send_errors += 1;
            off += 1;
        } else {
            off += sent as usize;
            rep.packets += sent as u64;
        }
    }
    b.n = 0;
}
