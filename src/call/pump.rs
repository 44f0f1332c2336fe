//! The media pump: a few threads send and receive every call's RTP, so that a call's
//! task wakes for what the caller does, not fifty times a second.
//!
//! Each pump thread owns its calls' media legs and RTP sockets. Its 20 ms frame period
//! is cut into [`SLOTS`] slots; a call joins the first slot with fewer than
//! [`SLOT_PACK`] calls (else the one with the fewest) and its send schedule is aligned
//! to that slot, so the thread visits each call once per frame, and visits no slot
//! without calls: it sends the one frame due, reads whatever the caller sent, and tells the
//! call's task only what the flow must hear (voice, keys, a prompt done, its timer
//! due: [`Leg::alarm`]), all of a visit's news at once when its datagrams are done. At 5,000
//! calls that is 250 thread wake-ups a second per pump thread instead of 250,000 task
//! wake-ups, and no timer per call. A new call goes to the first thread with fewer
//! than [`PACK_LEGS`] calls: a thread with no calls sleeps, and a few hundred calls do
//! not pay two threads' wake-ups.
//!
//! The datagrams go through [`rtpio`]: every frame due in a slot is handed to the kernel
//! in one io_uring submission (one `sendto` each where io_uring is not available), and
//! the visit's reads in another.
//!
//! Where a port has two sockets (src/call/ports.rs), the sending one is `connect()`ed to
//! where the call's RTP goes: its sends carry no address (the kernel keeps the route),
//! and the caller's datagrams arrive on it, read in the visit without readiness
//! registration or a wake-up per datagram; a caller gone quiet is not read until the
//! thread's watch says a datagram is there ([`ReadPace`], src/call/quiet.rs). The other socket,
//! watched by epoll (asked in a visit once a poll on the set says something is
//! ready), hears anyone else: a caller behind NAT, whose RTP comes from another address than the SDP says.
//! Latching (symmetric RTP, RFC 4961; src/call/latch.rs) aims the sending socket at
//! where the caller's RTP comes from and stops watching the other, whose arrivals are
//! then a stranger's. A new remote address in a re-INVITE aims anew and watches again.
//! Where a port has one socket, it is watched, sends addressed until latching, and is
//! then connected to the caller.
//!
//! Commands from the call task (play, stop, stream changes, recording) wait at most one
//! slot. Nothing here allocates per frame.
use super::latch::Verdict;
use super::media::{MediaLeg, Stream};
use super::ports::RtpPort;
use super::quiet::QuietWatch;
use super::rtpio::{self, MediaIo, READS_PER_SOCKET, RtpIo, ToRead};
use super::wheel::Wheel;
use crate::flow::Event;
use crate::flow::catalogue::Utterance;
use crate::media::prompt::PromptCache;
use crate::media::voice::VoiceSettings;
use crate::metrics::lateness;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Slots per 20 ms frame period: a command waits at most one slot (4 ms) for its
/// thread. Why 5 and not 10: a media thread's wake-up costs ~60–70 µs of CPU on this VM
/// (timer, switch, the hypervisor's exit from idle), paid per visit whatever the calls;
/// with 4 ms slots, same-time A/B at 2,500 calls: 4.07 → 3.80 and 4.13 → 3.96 µs per
/// packet, send lateness p99 0.5/5.3 → 0.6/5.4 ms (2026-12-03).
pub const SLOTS: usize = 5;
const FRAME: Duration = Duration::from_millis(20);
pub const SLOT: Duration = Duration::from_millis(4);
/// A visit that starts later than this after its time counts as late (the metric and
/// the overload's late share): 2 ms, as when a slot was 2 ms, so that the signal did
/// not loosen with the wider slot.
const LATE_VISIT: Duration = Duration::from_millis(2);
/// How many legs ahead of the one being sent a visit asks the cache for: a leg's own
/// work takes about as long as one fetch from memory.
const PREFETCH_AHEAD: usize = 4;
/// Legs a media thread takes before a new call goes to the next thread (past that, to
/// the one with the fewest). Why pack rather than deal round: each visit's wake-up is a
/// fixed cost (on this VM ~10 % of the media threads' CPU at 1,000 calls), paid by
/// every thread that has a leg: at 1,000 calls one thread used 4.21 and 3.83 µs per
/// packet against 4.51 and 4.91 for two, its lateness no worse (2026-12-03). 2,000: a
/// thread carried 2,500 legs at 5,000 calls with send lateness p99 0.6 ms and under half
/// its time busy; the overload signal judges the thread that takes the next calls
/// (src/server/overload.rs). 2,500 (2026-12-04): at
/// 2,500 calls one thread's wake-ups instead of two's, six same-time pairs against 2,000
/// (one thread with 2,000, the other 500): 0.94 (a build running), 0.99, 0.94, 0.97,
/// 0.92 and 1.06 the CPU per packet; send lateness p99 0.6–0.8 ms, gap p99.9
/// 20.6–21.6 ms either way.
pub const PACK_LEGS: usize = 2_500;
/// A thread that spent more than this share of its last second visiting takes no new
/// calls while another has room, whatever its legs; below [`PACK_REOPEN`] it takes them
/// again. Why: [`PACK_LEGS`] was measured where 2,500 calls kept a thread under half
/// busy; on a machine twice as dear per system call the same thread was busy 0.76, and
/// the lines' redials, placed on it below its pack, were refused by the overload's busy
/// mark (0.75) while the second thread idled (1,729 of 5,327 calls, 2026-12-04).
const PACK_BUSY: f64 = 0.6;
const PACK_REOPEN: f64 = 0.5;
/// Visits a thread's busy share is judged over for [`PACK_BUSY`]: one second.
const PACK_JUDGED_OVER: u32 = (1_000_000_000 / SLOT.as_nanos()) as u32;

/// Legs a slot takes before a new leg goes to the next slot (past that, to the slot with
/// the fewest). Why fill slots rather than deal legs round them: a thread visits only
/// the slots that have legs (and any with an alarm due), and each visit's wake-up is a
/// fixed cost: one call kept a media thread 1.2 % of a core busy (~48 µs a visit, 250
/// visits a second) on this VM, 2026-12-05. A thread's [`PACK_LEGS`] calls still fill
/// all five slots to this, as many a visit as before.
pub const SLOT_PACK: usize = PACK_LEGS / SLOTS;

/// Reads in a row that find nothing before a caller counts as silent: the last of them
/// is made with its socket watched (src/call/quiet.rs), and it is not read again until
/// the watch names it. A caller who pauses between words is read on. Where the thread
/// has no watch, or the kernel refuses one, the paced reads below.
const QUIET_AFTER: u8 = 5;
/// Without a watch: a silent caller's sending socket is read every this many visits
/// (60 ms): a read that finds nothing is a system call's work for nothing (with it, 5,000 silent callers
/// cost what they did on the unconnected socket, same-time A/B 2026-12-03), and a
/// caller who starts to speak or press keys waits at most this long to be heard, then
/// is read every visit.
const QUIET_READ_EVERY: u8 = 3;
/// Empty reads in a row after which a caller counts as long silent (about 2.8 s: five
/// a visit apart, the rest three apart).
const LONG_QUIET_AFTER: u8 = 50;
/// A long-silent caller's sending socket is read every this many visits (100 ms). A
/// phone sends RTP all call long, silence included, and is never here; a caller that
/// sends nothing (no media, DTX, one-way audio, the load bench's silent callers) costs
/// an empty read per read: reading such callers every 15th visit instead of every
/// third cost 3 % and 16 % less CPU per packet in two same-time A/Bs at 2,500 calls,
/// every fifth after this long 3–5 % less (2026-12-03). A key or a word after a long
/// silence waits at most 100 ms to be heard.
const LONG_QUIET_READ_EVERY: u8 = 5;
/// Marks a read key as the sending socket's (leg ids are counted from 1, far below).
const FROM_SENDER: u64 = 1 << 63;

/// Something the flow must hear, with when it happened (a prompt's last frame was
/// sent, a key arrived), so that the flow's timers count from then, not from when the
/// call's task got round to it.
#[derive(Debug)]
pub struct LegEvent {
    heard: SmallEvent,
    pub at: Instant,
}

/// The events a leg produces, in 16 bytes rather than an [`Event`]'s 48: a leg's
/// channel allocates room for 32 of them when the call starts.
#[derive(Debug)]
enum SmallEvent {
    Dtmf(char),
    VoiceStart,
    VoiceEnd,
    TooQuiet,
    Noise,
    PlayDone(u64),
    /// A deadline the call's task set ([`Leg::alarm`]) has come; `at` is the deadline.
    Alarm,
    Other(Box<Event>),
}

impl LegEvent {
    fn new(event: Event, at: Instant) -> LegEvent {
        let heard = match event {
            Event::Dtmf(k) => SmallEvent::Dtmf(k),
            Event::VoiceStart => SmallEvent::VoiceStart,
            Event::VoiceEnd => SmallEvent::VoiceEnd,
            Event::TooQuiet => SmallEvent::TooQuiet,
            Event::Noise => SmallEvent::Noise,
            Event::PlayDone { id } => SmallEvent::PlayDone(id),
            other => SmallEvent::Other(Box::new(other)),
        };
        LegEvent { heard, at }
    }

    /// The deadline of [`Leg::alarm`] has come (`at`), not something heard.
    pub fn is_alarm(&self) -> bool {
        matches!(self.heard, SmallEvent::Alarm)
    }

    /// What the flow hears; none for an alarm, the flow's own timer.
    pub fn event(self) -> Option<Event> {
        Some(match self.heard {
            SmallEvent::Dtmf(k) => Event::Dtmf(k),
            SmallEvent::VoiceStart => Event::VoiceStart,
            SmallEvent::VoiceEnd => Event::VoiceEnd,
            SmallEvent::TooQuiet => Event::TooQuiet,
            SmallEvent::Noise => Event::Noise,
            SmallEvent::PlayDone(id) => Event::PlayDone { id },
            SmallEvent::Other(e) => *e,
            SmallEvent::Alarm => return None,
        })
    }
}

enum Cmd {
    Add(Box<NewLeg>),
    Play {
        leg: u64,
        id: u64,
        prompts: Arc<PromptCache>,
        utterances: Vec<Utterance>,
    },
    Stop(u64),
    Stream(u64, Stream),
    StartRecording(u64),
    StopRecording(u64, oneshot::Sender<Vec<i16>>),
    Alarm(u64, Option<Instant>),
    Remove(u64),
}

struct NewLeg {
    id: u64,
    stream: Stream,
    voice: VoiceSettings,
    port: RtpPort,
    events: mpsc::UnboundedSender<LegEvent>,
}

/// One pump thread's counters, for the metrics and `/healthz`: only that thread writes
/// them (once per visit, not per packet), a scrape reads them. Aligned so that two
/// threads' counters never share a cache line.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    send_errors: AtomicU64,
    /// Visits that began later than a slot after their time: the thread is behind.
    late_visits: AtomicU64,
    /// Frames the pacers dropped from their schedules (more than 100 ms late).
    skipped: AtomicU64,
    /// Visits made, and the CPU time spent in them (the thread's own clock, so that
    /// time the thread waited for a core does not count): how much of a core the
    /// thread needs, the admission's overload signal.
    visits: AtomicU64,
    busy_ns: AtomicU64,
    /// The thread's CPU clock at its last visit's end: all its CPU, its wake-ups too.
    /// The process's CPU less this is hotline's work outside its media (call set-ups,
    /// the store), which the overload judge leaves out of a redial wave's load.
    cpu_ns: AtomicU64,
    legs: AtomicUsize,
    /// Past [`PACK_BUSY`]: new calls go elsewhere while another thread is open.
    closed: AtomicBool,
    lateness: lateness::Shared,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PumpStats {
    pub legs: usize,
    /// Legs handed to the threads since the start: the calls set up.
    #[serde(skip)]
    pub added: u64,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    pub rtp_send_errors: u64,
    pub late_visits: u64,
    pub frames_skipped: u64,
    /// Visits of all threads, and the time they took (ns).
    pub visits: u64,
    pub busy_ns: u64,
    /// The busiest thread's visits and busy time: one thread can fall behind while the
    /// other has room.
    pub busiest_visits: u64,
    pub busiest_busy_ns: u64,
    /// The media threads' CPU, all of it, at their last visits (ns).
    #[serde(skip)]
    pub cpu_ns: u64,
    /// The legs a thread takes before the next one gets new calls: where the overload
    /// judge expects the next calls to go.
    #[serde(skip)]
    pub pack: usize,
}

/// One thread's count of legs handed to it (see [`MediaPump::handed`]); on a line of
/// its own, written by the call tasks.
#[derive(Default)]
#[repr(align(128))]
struct Handed(AtomicUsize);

/// How far thread `n` of `threads` starts its slots after the first: evenly through a
/// slot, so that the threads' visits take turns rather than fall due together. Why: with
/// their slots at the same instants, both threads of a 2-core machine woke together and
/// ran their visits side by side (2.5 ms a visit at 6,500 calls, real-time, every 4 ms),
/// leaving no core for the SIP worker or anything else for that long, and both threads
/// sending into the same peers' queues at once.
fn stagger(n: usize, threads: usize) -> Duration {
    SLOT * (n % threads.max(1)) as u32 / threads.max(1) as u32
}

/// Whether a thread busy `share` of its last second is closed to new calls, given
/// whether it was: past [`PACK_BUSY`] it closes, below [`PACK_REOPEN`] it opens, and in
/// between it stays as it was, so that a thread near the mark does not flap.
fn stays_closed(was: bool, share: f64) -> bool {
    if share > PACK_BUSY {
        true
    } else if share < PACK_REOPEN {
        false
    } else {
        was
    }
}

/// The thread a new leg goes to, given each thread's legs and whether it is closed
/// ([`PACK_BUSY`]): the first open one with fewer than `pack`, else the open one with
/// the fewest, else (all closed) the one with the fewest. The pump places by it, and
/// the overload judge (src/server/overload.rs) foresees where the next calls go by it.
pub fn place(legs: &[usize], closed: &[bool], pack: usize) -> usize {
    let all = 0..legs.len();
    let open = |i: &usize| !closed.get(*i).copied().unwrap_or(false);
    all.clone()
        .filter(open)
        .find(|&i| legs[i] < pack)
        .or_else(|| all.clone().filter(open).min_by_key(|&i| legs[i]))
        .or_else(|| all.min_by_key(|&i| legs[i]))
        .unwrap_or(0)
}

/// The share of its time a thread spent visiting over `visits` visits (one is due every
/// slot) that took `busy_ns` of its CPU; 0 without visits.
pub fn busy_share(busy_ns: u64, visits: u64) -> f64 {
    if visits == 0 {
        0.0
    } else {
        busy_ns as f64 / (visits as f64 * SLOT.as_nanos() as f64)
    }
}

/// One media thread's counters, for the overload judge.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadLoad {
    pub legs: usize,
    /// Busier than [`PACK_BUSY`] over its last second: takes no new calls while
    /// another thread is open.
    pub closed: bool,
    pub visits: u64,
    pub busy_ns: u64,
}

/// The pump threads; cheap to share.
pub struct MediaPump {
    shards: Vec<std_mpsc::Sender<Cmd>>,
    /// Legs handed to each thread and not yet dropped, counted by the handles: what a
    /// new leg's placement reads. The thread's own count lags by up to a slot, and at
    /// a full thread a call that ended and its line's next call (a line redials at
    /// once) met there: the new leg woke a second thread for a few calls, ~0.7 % of
    /// hotline's CPU at 2,500 calls (its wake-ups: 3–4 ms of CPU a second).
    handed: Vec<Arc<Handed>>,
    next_leg: AtomicU64,
    counters: Vec<Arc<Counters>>,
    io: MediaIo,
    /// [`PACK_LEGS`]; smaller in tests.
    pack: usize,
}

impl MediaPump {
    /// Starts `threads` pump threads (at least one). `measure`: time every frame sent
    /// against its schedule, for the send-lateness histogram (the `metrics` setting).
    pub fn start(threads: usize, measure: bool) -> std::io::Result<MediaPump> {
        Self::start_with(threads, measure, MediaIo::Auto, Placement::default())
    }

    /// As [`MediaPump::start`], with the datagram path (`media_io`) and where and how
    /// the threads are scheduled (`media_pin`, `media_realtime`).
    pub fn start_with(
        threads: usize,
        measure: bool,
        io: MediaIo,
        placement: Placement,
    ) -> std::io::Result<MediaPump> {
        let Placement { pin, realtime } = placement;
        let (io, why) = rtpio::resolve(io);
        match why {
            Some(why) => tracing::warn!(path = io.name(), why, "media I/O: io_uring unavailable"),
            None => tracing::info!(path = io.name(), "media I/O"),
        }
        let cpus = allowed_cpus();
        let base = Instant::now();
        let mut shards = Vec::new();
        let mut counters = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = std_mpsc::channel();
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let cpu = (pin && !cpus.is_empty()).then(|| cpus[n % cpus.len()]);
            let epoch = base + stagger(n, threads.max(1));
            // The ring is made on the thread that uses it: a single-issuer ring refuses
            // submissions from any other.
            let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name(format!("media-pump-{n}"))
                .spawn(move || {
                    if let Some(cpu) = cpu
                        && !rtpio::pin_to_cpu(cpu)
                    {
                        tracing::warn!(cpu, "media thread not pinned");
                    }
                    if realtime && let Err(e) = run_realtime() {
                        tracing::warn!(error = %e, "media thread not made real-time: it runs at normal priority and its calls' audio may stutter on a busy machine; give hotline CAP_SYS_NICE or an RLIMIT_RTPRIO of 1 (systemd: LimitRTPRIO=1), or set media_realtime: false to run without");
                    }
                    // A ring the probe's small one did not foretell (RLIMIT_MEMLOCK on
                    // older kernels counts each thread's): this thread uses sendto.
                    let made = RtpIo::new(io).or_else(|e| {
                        if io != MediaIo::IoUring {
                            return Err(e);
                        }
                        tracing::warn!(error = %e, thread = n, "no io_uring for this media thread: sendto");
                        RtpIo::new(MediaIo::Sendto)
                    });
                    match made {
                        Ok(rtp) => {
                            let _ = ready_tx.send(Ok(()));
                            Shard::new(rx, c, measure, rtp, epoch).run()
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            ready_rx
                .recv()
                .map_err(|_| std::io::Error::other("a media thread ended at start"))??;
            shards.push(tx);
        }
        Ok(MediaPump {
            handed: shards.iter().map(|_| Arc::default()).collect(),
            shards,
            next_leg: AtomicU64::new(1),
            counters,
            io,
            pack: PACK_LEGS,
        })
    }

    /// The thread a new leg goes to: the first with fewer than `pack` legs, else the
    /// one with the fewest; legs as handed out and dropped, not as taken.
    fn pick_shard(&self) -> usize {
        let legs: Vec<usize> = self.handed.iter().map(|h| h.0.load(Relaxed)).collect();
        let closed: Vec<bool> = self
            .counters
            .iter()
            .map(|c| c.closed.load(Relaxed))
            .collect();
        place(&legs, &closed, self.pack)
    }

    /// The datagram path in use: `io_uring` or `sendto`.
    pub fn io_path(&self) -> &'static str {
        self.io.name()
    }

    /// Hands a call's RTP port to a pump thread; the leg's events come out of the
    /// handle, and dropping the handle ends the leg and frees the port.
    pub fn add(&self, stream: Stream, voice: &VoiceSettings, port: RtpPort) -> Leg {
        let id = self.next_leg.fetch_add(1, Relaxed);
        let n = self.pick_shard();
        let shard = self.shards[n].clone();
        let handed = self.handed[n].clone();
        handed.0.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = shard.send(Cmd::Add(Box::new(NewLeg {
            id,
            stream,
            voice: voice.clone(),
            port,
            events: tx,
        })));
        Leg {
            id,
            shard,
            handed,
            events: rx,
        }
    }

    /// The threads' counters summed.
    pub fn stats(&self) -> PumpStats {
        let mut s = PumpStats {
            pack: self.pack,
            added: self.next_leg.load(Relaxed).saturating_sub(1),
            ..PumpStats::default()
        };
        for c in &self.counters {
            s.legs += c.legs.load(Relaxed);
            s.rtp_sent += c.sent.load(Relaxed);
            s.rtp_received += c.received.load(Relaxed);
            s.rtp_send_errors += c.send_errors.load(Relaxed);
            s.late_visits += c.late_visits.load(Relaxed);
            s.frames_skipped += c.skipped.load(Relaxed);
            s.cpu_ns += c.cpu_ns.load(Relaxed);
            let (visits, busy) = (c.visits.load(Relaxed), c.busy_ns.load(Relaxed));
            s.visits += visits;
            s.busy_ns += busy;
            if busy >= s.busiest_busy_ns {
                (s.busiest_visits, s.busiest_busy_ns) = (visits, busy);
            }
        }
        s
    }

    /// Each thread's legs, visits and time spent visiting, in thread order.
    pub fn thread_loads(&self) -> Vec<ThreadLoad> {
        self.counters
            .iter()
            .map(|c| ThreadLoad {
                legs: c.legs.load(Relaxed),
                closed: c.closed.load(Relaxed),
                visits: c.visits.load(Relaxed),
                busy_ns: c.busy_ns.load(Relaxed),
            })
            .collect()
    }

    /// The send-lateness histogram, the threads' buckets summed.
    pub fn lateness(&self) -> lateness::Snapshot {
        let mut snap = lateness::Snapshot::default();
        for c in &self.counters {
            c.lateness.add_to(&mut snap);
        }
        snap
    }
}

/// One call's media, as its task sees it.
pub struct Leg {
    id: u64,
    shard: std_mpsc::Sender<Cmd>,
    handed: Arc<Handed>,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

impl Leg {
    /// Plays a flow request, replacing whatever still sounds; `PlayDone` comes back as
    /// an event when its last frame is sent.
    pub fn play(&self, id: u64, prompts: Arc<PromptCache>, utterances: Vec<Utterance>) {
        self.send(Cmd::Play {
            leg: self.id,
            id,
            prompts,
            utterances,
        });
    }

    pub fn stop(&self) {
        self.send(Cmd::Stop(self.id));
    }

    pub fn set_stream(&self, stream: Stream) {
        self.send(Cmd::Stream(self.id, stream));
    }

    pub fn start_recording(&self) {
        self.send(Cmd::StartRecording(self.id));
    }

    /// An [`LegEvent::is_alarm`] event at the first visit of this leg's thread at or
    /// after `at` (within a slot, 4 ms), replacing the alarm set before; `None` clears it.
    /// Why the flow's timers ride the media thread rather than tokio's: a timer of its
    /// own woke the async worker for itself, and the flows' silence timers were half of
    /// its wake-ups at 2,500 calls (~195 a second of ~380, 60–80 µs of CPU each on this
    /// VM); here they go with the visit's other events, one wake-up a visit at most.
    pub fn alarm(&self, at: Option<Instant>) {
        self.send(Cmd::Alarm(self.id, at));
    }

    /// The caller's audio since `start_recording`.
    pub async fn stop_recording(&self) -> Vec<i16> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::StopRecording(self.id, tx));
        rx.await.unwrap_or_default()
    }

    fn send(&self, c: Cmd) {
        // The pump threads live as long as the process; a send can only fail while it
        // exits, when nothing is played any more anyway.
        let _ = self.shard.send(c);
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.send(Cmd::Remove(self.id));
        self.handed.0.fetch_sub(1, Relaxed);
    }
}

/// In this order (`repr(C)`): the fields a visit reads every frame, then the leg (whose
/// own hot fields lead), then what only latching and events need: a visit's reads sit
/// in the first [`Slotted::HOT`] bytes, which the thread fetches a few legs ahead.
#[repr(C)]
struct Slotted {
    /// When the connected sending socket is read, and how much.
    reads: ReadPace,
    latched: bool,
    /// The reader is watched by epoll (with two sockets, until latched).
    watched: bool,
    /// Where the socket RTP goes out of is `connect()`ed to: sends there carry no
    /// address, and with two sockets the caller's datagrams arrive on it, read in the
    /// visits. A sending socket is re-aimed, never let go (src/call/ports.rs).
    peer: Option<SocketAddr>,
    port: RtpPort,
    leg: MediaLeg,
    events: mpsc::UnboundedSender<LegEvent>,
    /// Where the SDP said to send; `leg.stream.remote` is where we do (latched).
    sdp_remote: Option<SocketAddr>,
    /// Until latched: the source on probation (src/call/latch.rs).
    probation: super::latch::Probation,
    /// The reader's receive buffer before latching shrank it (two sockets).
    reader_rcvbuf: Option<usize>,
    /// The task's alarm ([`Leg::alarm`]); its entry in the thread's heap fires it only
    /// if it is still this.
    alarm: Option<Instant>,
}

impl Slotted {
    const HOT: usize = std::mem::offset_of!(Slotted, leg) + MediaLeg::HOT;
}

/// When a leg's connected sending socket is read: every visit while the caller sends
/// (one read, two after a read that found all it asked for: a backlog drains); the
/// [`QUIET_AFTER`]th read in a row made with the socket watched (src/call/quiet.rs),
/// and, if it too finds nothing, none until the watch names the socket. Where the leg
/// cannot be watched: every [`QUIET_READ_EVERY`] visits (every [`LONG_QUIET_READ_EVERY`]
/// after [`LONG_QUIET_AFTER`]).
#[derive(Debug, Default, Clone, Copy)]
struct ReadPace {
    /// Visits to skip before the next read.
    wait: u8,
    /// Reads in a row that found nothing.
    idle: u8,
    /// The last read: datagrams asked for (0: none pending) and found.
    want: u8,
    got: u8,
    /// The socket is watched: nothing is read (but the read made as it was watched)
    /// until the watch names it.
    watched: bool,
    /// The kernel refused to watch it: paced reads for the rest of the call.
    unwatchable: bool,
}

/// What a visit does with a leg's connected sending socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadDue {
    Nothing,
    Read(usize),
    /// The caller is quiet: watch its socket ([`ReadPace::watched`] once it is, else
    /// [`ReadPace::not_watched`]), then read it: a datagram that came before the watch
    /// raises nothing.
    WatchAndRead(usize),
    /// The read made as the socket was watched found a datagram: the caller talks.
    /// Unwatch, and read.
    UnwatchAndRead(usize),
}

impl ReadPace {
    /// What to do this visit. What the last read found is judged here, its datagrams
    /// having been counted by [`ReadPace::found`] since. `can_watch`: the thread has a
    /// watch.
    fn due(&mut self, can_watch: bool) -> ReadDue {
        let mut next = 1;
        if self.want > 0 {
            self.idle = if self.got == 0 {
                self.idle.saturating_add(1)
            } else {
                0
            };
            if self.got >= self.want {
                next = READS_PER_SOCKET as u8;
            }
            self.want = 0;
            self.got = 0;
            if self.watched {
                if self.idle > 0 {
                    return ReadDue::Nothing;
                }
                self.watched = false;
                self.want = next;
                return ReadDue::UnwatchAndRead(usize::from(next));
            }
            if can_watch && !self.unwatchable && self.idle + 1 >= QUIET_AFTER {
                self.want = 1;
                return ReadDue::WatchAndRead(1);
            }
            if self.idle >= LONG_QUIET_AFTER {
                self.wait = LONG_QUIET_READ_EVERY - 1;
            } else if self.idle >= QUIET_AFTER {
                self.wait = QUIET_READ_EVERY - 1;
            }
        }
        if self.watched {
            return ReadDue::Nothing;
        }
        if self.wait > 0 {
            self.wait -= 1;
            return ReadDue::Nothing;
        }
        self.want = next;
        ReadDue::Read(usize::from(next))
    }

    /// A datagram the last read found.
    fn found(&mut self) {
        self.got = self.got.saturating_add(1);
    }

    /// The watch [`ReadDue::WatchAndRead`] asked for is set.
    fn watched(&mut self) {
        self.watched = true;
    }

    /// The kernel refused it: this leg's socket is read every few visits instead.
    fn not_watched(&mut self) {
        self.unwatchable = true;
    }

    /// The watch named the socket: a datagram is there (or the watch gave up on every
    /// socket): read from the next visit on.
    fn woke(&mut self) {
        *self = ReadPace {
            unwatchable: self.unwatchable,
            ..ReadPace::default()
        };
    }
}

/// How the media threads are placed and scheduled.
#[derive(Clone, Copy, Debug, Default)]
pub struct Placement {
    /// Each thread on a CPU of its own (`media_pin`).
    pub pin: bool,
    /// `SCHED_RR` (`media_realtime`), as Asterisk's `-p` and FreeSWITCH's `-rp` do for
    /// theirs: a media thread that wakes for its 4 ms slot preempts SIP work, the store
    /// and anything else on the machine at normal priority, instead of waiting for the
    /// scheduler to get round to it. Safe to ask because a thread never spins: it
    /// sleeps until its next slot, and one that falls far behind skips ahead.
    pub realtime: bool,
}

/// The lowest real-time priority: above every normal thread, below anything a system
/// runs real-time for itself (watchdogs, audio servers).
const REALTIME_PRIORITY: i32 = 1;

/// Makes the calling thread `SCHED_RR` at [`REALTIME_PRIORITY`], as a media thread
/// runs under `media_realtime` (the load bench's floor runs its senders so too).
pub fn run_realtime() -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: REALTIME_PRIORITY,
    };
    // SAFETY: pid 0 is the calling thread on Linux; param is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on, in order: where the media threads are pinned.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The first packet that latches a leg must be RTP of its stream, not anything sent to
/// the port.
/// The SSRC and sequence number of a packet that is this stream's RTP (its payload
/// types); `None` for RTCP and anything else.
fn stream_rtp(pkt: &[u8], stream: &Stream) -> Option<(u32, u16)> {
    if crate::media::rtp::is_rtcp(pkt) {
        return None;
    }
    crate::media::rtp::RtpPacket::parse(pkt)
        .ok()
        .filter(|p| {
            p.payload_type == stream.payload_type || Some(p.payload_type) == stream.telephone_event
        })
        .map(|p| (p.ssrc, p.sequence))
}

/// A visit this late is a gap every caller of the slot hears.
const STALL: Duration = Duration::from_millis(100);
/// At most one stall line a thread in this long.
const STALL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Stalls of a media thread, logged with what the thread did just before: a long
/// command or visit is ours; neither means the thread was not run (the machine).
#[derive(Default)]
struct Stalls {
    last_commands: Duration,
    last_visit: Duration,
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl Stalls {
    fn seen(&mut self, now: Instant, late: Duration, legs: usize) {
        if self
            .logged_at
            .is_some_and(|t| now.duration_since(t) < STALL_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            late_ms = late.as_millis() as u64,
            previous_commands_ms = self.last_commands.as_secs_f64() * 1e3,
            previous_visit_ms = self.last_visit.as_secs_f64() * 1e3,
            legs,
            stalls_not_logged = self.unlogged,
            "a media thread started a visit late: its calls' audio had a gap"
        );
        self.logged_at = Some(now);
        self.unlogged = 0;
    }
}

struct Shard {
    stalls: Stalls,
    rx: std_mpsc::Receiver<Cmd>,
    counters: Arc<Counters>,
    /// Time each frame sent (the `metrics` setting).
    measure: bool,
    lateness: lateness::Local,
    /// By slot, walked in the visits; by id for commands and reads.
    legs: Wheel<Slotted, SLOTS>,
    /// Slot 0 of frame period 0; slot k of period p is due at epoch + p·20 ms + k·4 ms.
    epoch: Instant,
    /// The next visit, counted in slots since the epoch.
    visit: u64,
    io: RtpIo,
    /// The legs with something to read, and their sockets with how many reads each
    /// (reused every visit).
    ready: Vec<u64>,
    socks: Vec<ToRead>,
    /// When each frame sent this visit was due (reused every visit).
    dues: Vec<Instant>,
    /// Legs latched in this visit's reads (reused every visit).
    latched_now: Vec<u64>,
    /// Quiet callers' sockets, watched for their next datagram; `None` where the
    /// thread could not make the watch (their sockets are then read every few visits).
    quiet: Option<QuietWatch>,
    /// Legs whose watched socket had a datagram (reused every visit).
    woken: Vec<u64>,
    /// The legs' alarms by time, earliest first; an entry whose leg has since set
    /// another (or ended) is dropped when it comes up.
    alarms: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Visits and their CPU time since the busy share was last judged ([`PACK_BUSY`]).
    judged_visits: u32,
    judged_busy_ns: u64,
    /// What the visit's legs tell their tasks, sent when the visit's datagrams are
    /// done: a task woken mid-visit ran on the other CPU and the async worker went back
    /// to sleep before the next event of the same visit woke it again.
    told: Vec<(u64, LegEvent)>,
}

impl Shard {
    fn new(
        rx: std_mpsc::Receiver<Cmd>,
        counters: Arc<Counters>,
        measure: bool,
        io: RtpIo,
        epoch: Instant,
    ) -> Shard {
        Shard {
            stalls: Stalls::default(),
            rx,
            counters,
            measure,
            lateness: lateness::Local::default(),
            legs: Wheel::default(),
            epoch,
            visit: 0,
            io,
            ready: Vec::with_capacity(1024),
            socks: Vec::with_capacity(1024),
            dues: Vec::with_capacity(1024),
            latched_now: Vec::new(),
            quiet: QuietWatch::new()
                .map_err(|e| {
                    tracing::warn!(error = %e, "quiet callers' sockets cannot be watched (the kernel or a seccomp filter refused a signalfd): they are read every few visits instead; nothing is lost, the media threads spend a little more CPU; allow signalfd4 to this process to remove the cost")
                })
                .ok(),
            woken: Vec::new(),
            alarms: BinaryHeap::new(),
            judged_visits: 0,
            judged_busy_ns: 0,
            told: Vec::with_capacity(64),
        }
    }

    /// A leg's sockets leave the thread before they are closed: unwatched, and out of
    /// the ring's table (which would hold them, and their port, open).
    fn let_go(&mut self, l: &Slotted) {
        if let (true, Some(q), Some(s)) = (l.reads.watched, self.quiet.as_mut(), l.port.sender()) {
            q.unwatch(s.as_raw_fd());
        }
        self.io.forget(&l.port.socket);
        if let Some(s) = l.port.sender() {
            self.io.forget(s);
        }
    }

    fn slots_since_epoch(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.epoch).as_nanos() / SLOT.as_nanos()) as u64
    }

    fn due(&self, visit: u64) -> Instant {
        // In u64 nanoseconds: `SLOT * (visit as u32)` wrapped after 99 days of uptime,
        // and every media thread then spun at full CPU.
        self.epoch + Duration::from_nanos(visit.saturating_mul(SLOT.as_nanos() as u64))
    }

    fn run(mut self) {
        loop {
            if self.legs.is_empty() {
                // No calls: sleep until one comes rather than wake 250 times a second.
                self.counters.closed.store(false, Relaxed);
                (self.judged_visits, self.judged_busy_ns) = (0, 0);
                let Ok(c) = self.rx.recv() else { return };
                self.visit = self.slots_since_epoch(Instant::now());
                self.apply(c);
            }
            let due = self.due(self.visit);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else if now - due > LATE_VISIT {
                self.counters.late_visits.fetch_add(1, Relaxed);
                if now - due > STALL {
                    self.stalls.seen(now, now - due, self.legs.len());
                }
            }
            let t0 = Instant::now();
            if !self.commands() {
                return;
            }
            let t1 = Instant::now();
            let slot = (self.visit % SLOTS as u64) as usize;
            self.visit_slot(slot);
            self.stalls.last_commands = t1 - t0;
            self.stalls.last_visit = t1.elapsed();
            self.visit += 1;
            // Far behind (the machine stalled): skip ahead rather than race through
            // every missed slot; the legs' pacers skip the frames that are too late.
            let now = Instant::now();
            if now > self.due(self.visit) + FRAME {
                self.visit = self.slots_since_epoch(now);
            }
            self.pass_empty_slots();
        }
    }

    /// Moves the next visit past slots without legs ([`SLOT_PACK`]), up to the one where
    /// an alarm falls due, and at most a frame's slots but one. A slot passed counts as
    /// a visit that found nothing to do (one is due every slot, for the busy and late
    /// shares); commands and strangers' datagrams wait for the next visit, 20 ms at most.
    fn pass_empty_slots(&mut self) {
        let alarm = self.alarms.peek().map(|Reverse((at, _))| *at);
        let mut passed = 0u32;
        while passed + 1 < SLOTS as u32
            && self
                .legs
                .slot_is_empty((self.visit % SLOTS as u64) as usize)
            && alarm.is_none_or(|at| at > self.due(self.visit))
        {
            self.visit += 1;
            passed += 1;
        }
        if passed > 0 {
            self.counters.visits.fetch_add(u64::from(passed), Relaxed);
            self.judged_visits += passed;
        }
    }

    /// Applies the waiting commands; false once every handle and the pump are gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.apply(c),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return !self.legs.is_empty(),
            }
        }
    }

    fn apply(&mut self, c: Cmd) {
        match c {
            Cmd::Add(n) => {
                let slot = self.legs.first_with_room(SLOT_PACK);
                // The first frame goes out at the slot's next visit, and every 20 ms
                // after that: the leg's schedule is the slot's.
                let mut v = self.visit;
                while (v % SLOTS as u64) as usize != slot {
                    v += 1;
                }
                let t0 = self.due(v);
                let watched = match self.io.watch(&n.port.socket, n.id) {
                    Ok(()) => true,
                    Err(e) => {
                        // The call still sends; what a caller behind NAT says is not heard.
                        tracing::error!(port = n.port.port, error = %e, "RTP socket not watched");
                        false
                    }
                };
                if let Some(s) = n.port.sender() {
                    self.io.register_sender(s);
                }
                let sdp_remote = n.stream.remote;
                let mut l = Slotted {
                    leg: MediaLeg::new(n.stream, &n.voice, t0),
                    port: n.port,
                    events: n.events,
                    sdp_remote,
                    latched: false,
                    probation: Default::default(),
                    peer: None,
                    watched,
                    reader_rcvbuf: None,
                    reads: ReadPace::default(),
                    alarm: None,
                };
                aim_sender(&mut l, sdp_remote);
                match self.legs.insert(n.id, slot, l) {
                    None => {
                        self.counters.legs.fetch_add(1, Relaxed);
                    }
                    // Ids are a counter: not seen, but a leg replaced lets its sockets go.
                    Some(old) => self.let_go(&old),
                }
            }
            Cmd::Play {
                leg,
                id,
                prompts,
                utterances,
            } => {
                if let Some(l) = self.legs.get_mut(leg) {
                    l.leg.play(&prompts, id, &utterances);
                }
            }
            Cmd::Stop(leg) => {
                if let Some(l) = self.legs.get_mut(leg) {
                    l.leg.stop();
                }
            }
            Cmd::Stream(leg, mut stream) => {
                if let Some(l) = self.legs.get_mut(leg) {
                    if stream.remote == l.sdp_remote {
                        // Hold, a direction: the latched address stays.
                        stream.remote = l.leg.stream.remote;
                    } else {
                        // The caller moved: hear anyone again and latch anew.
                        l.sdp_remote = stream.remote;
                        l.latched = false;
                        l.probation = Default::default();
                        if l.port.sender().is_some() {
                            aim_sender(l, stream.remote);
                            if !l.watched {
                                restore_reader(&mut self.io, l, leg);
                            }
                        } else if l.peer.is_some() {
                            l.peer = None;
                            if let Err(e) = rtpio::connect(&l.port.socket, None) {
                                tracing::warn!(port = l.port.port, error = %e, "RTP socket not disconnected");
                            }
                        }
                    }
                    l.leg.stream = stream;
                }
            }
            Cmd::StartRecording(leg) => {
                if let Some(l) = self.legs.get_mut(leg) {
                    l.leg.start_recording();
                }
            }
            Cmd::StopRecording(leg, reply) => {
                let samples = self
                    .legs
                    .get_mut(leg)
                    .map(|l| l.leg.stop_recording())
                    .unwrap_or_default();
                let _ = reply.send(samples);
            }
            Cmd::Alarm(leg, at) => {
                if let Some(l) = self.legs.get_mut(leg) {
                    l.alarm = at;
                    if let Some(at) = at {
                        self.alarms.push(Reverse((at, leg)));
                    }
                }
            }
            Cmd::Remove(leg) => {
                if let Some(l) = self.legs.remove(leg) {
                    self.let_go(&l);
                    self.counters.legs.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    fn visit_slot(&mut self, slot: usize) {
        let started = thread_cpu_ns();
        let Shard {
            legs,
            counters,
            measure,
            lateness,
            io,
            ready,
            socks,
            dues,
            latched_now,
            alarms,
            told,
            quiet,
            woken,
            ..
        } = self;
        let (sent0, errors0) = (io.sent, io.send_errors);
        let mut skipped = 0u64;
        socks.clear();
        // One clock read a visit: every leg of the slot is due at the slot's time.
        let now = Instant::now();
        dues.clear();
        let walk = legs.slot_mut(slot);
        for i in 0..walk.len() {
            // The lines a visit reads, and no more: asking for the two other lines it
            // touched besides four named fields cost 2–3 % in two same-time A/Bs (perf
            // put the samples on the prefetches: likely the fill buffers); gathered at the
            // front of the leg, four lines: 2.86 → 2.79, 2.88 → 2.83 µs per packet at
            // 2,500 calls (2026-12-04).
            if let Some((_, ahead)) = walk.get(i + PREFETCH_AHEAD) {
                crate::media::prefetch_bytes((ahead as *const Slotted).cast(), Slotted::HOT);
            }
            // Two legs on, its cursor has arrived: the clip queue it points to can be asked
            // for (same-time A/B at 2,500 calls: 3.81 → 3.57, 3.40 → 3.40, 3.20 → 3.04 µs
            // per packet, 2026-12-04).
            if let Some((_, ahead)) = walk.get(i + PREFETCH_AHEAD / 2) {
                ahead.leg.prefetch_queue();
            }
            let (id, l) = &mut walk[i];
            let id = *id;
            let remote = l.leg.stream.remote;
            let can_send = remote.is_some();
            let to = if remote == l.peer { None } else { remote };
            let fd = l.port.send_fd();
            let ticked = l.leg.tick(now, |header, payload, due| {
                if can_send {
                    // A full socket buffer drops the frame: late audio is worse than none.
                    io.send_rtp(fd, header, payload, to);
                    if *measure {
                        dues.push(due);
                    }
                }
            });
            skipped += ticked.skipped;
            if let Some(event) = ticked.done {
                told.push((id, LegEvent::new(event, now)));
            }
            // The caller's datagrams wait on the connected sending socket: read with
            // this visit's batch, no wake-up per datagram.
            if l.peer.is_some()
                && let Some(s) = l.port.sender()
            {
                let reads = match l.reads.due(quiet.is_some()) {
                    ReadDue::Nothing => 0,
                    ReadDue::Read(reads) => reads,
                    ReadDue::WatchAndRead(reads) => {
                        if quiet.as_mut().is_some_and(|q| q.watch(s.as_raw_fd(), id)) {
                            l.reads.watched();
                        } else {
                            l.reads.not_watched();
                        }
                        reads
                    }
                    ReadDue::UnwatchAndRead(reads) => {
                        if let Some(q) = quiet.as_mut() {
                            q.unwatch(s.as_raw_fd());
                        }
                        reads
                    }
                };
                if reads > 0 {
                    socks.push(ToRead {
                        key: id | FROM_SENDER,
                        fd: s.as_raw_fd(),
                        reads,
                        peer: l.peer,
                    });
                }
            }
        }
        io.flush();
        // Late by when the kernel had the frame: the end of the visit's last submission
        // (for the first legs of a slot, a little later than they went).
        if let Some(&first) = dues.first() {
            let handed = Instant::now();
            // The legs of a slot are due at one instant (their schedules are the slot's):
            // a run of equal due times is one subtraction, not one a frame.
            let (mut due, mut n) = (first, 0u64);
            for &d in dues.iter() {
                if d != due {
                    lateness.observe_n(handed.saturating_duration_since(due), n);
                    (due, n) = (d, 0);
                }
                n += 1;
            }
            lateness.observe_n(handed.saturating_duration_since(due), n);
        }
        // What arrived from anyone else, on any of this thread's legs: one look.
        io.readable(ready);
        socks.extend(ready.iter().filter_map(|k| {
            legs.get(*k).map(|l| ToRead {
                key: *k,
                fd: l.port.socket.as_raw_fd(),
                reads: READS_PER_SOCKET,
                peer: None,
            })
        }));
        latched_now.clear();
        let received = if socks.is_empty() {
            0
        } else {
            io.receive(socks, |key, pkt, from| {
                let id = key & !FROM_SENDER;
                let Some(l) = legs.get_mut(id) else { return };
                if key & FROM_SENDER != 0 {
                    l.reads.found();
                }
                match from {
                    // Read on the reader before it was let go: not the caller's.
                    Some(from) if l.latched && Some(from) != l.leg.stream.remote => return,
                    Some(from) if !l.latched => {
                        let rtp = stream_rtp(pkt, &l.leg.stream);
                        match l.probation.consider(l.sdp_remote, from, rtp) {
                            Verdict::Latch => {
                                latch(l, from);
                                latched_now.push(id);
                            }
                            Verdict::Hear => {}
                            Verdict::Drop => return,
                        }
                    }
                    _ => {}
                }
                let mut heard = super::media::Heard::default();
                l.leg.receive(pkt, &mut heard);
                if !heard.events.is_empty() {
                    let at = Instant::now();
                    for event in heard.events {
                        told.push((id, LegEvent::new(event, at)));
                    }
                }
            })
        };
        // Latched with two sockets: the caller is on the sending socket, and the reader
        // hears only strangers now; it is no longer watched.
        for id in latched_now.iter() {
            if let Some(l) = legs.get_mut(*id)
                && l.watched
                && l.port.sender().is_some()
            {
                let_go_of_reader(io, l);
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((at, id))) = alarms.peek()
            && at <= now
        {
            alarms.pop();
            if let Some(l) = legs.get_mut(id)
                && l.alarm == Some(at)
            {
                l.alarm = None;
                told.push((
                    id,
                    LegEvent {
                        heard: SmallEvent::Alarm,
                        at,
                    },
                ));
            }
        }
        for (id, event) in told.drain(..) {
            if let Some(l) = legs.get(id) {
                let _ = l.events.send(event);
            }
        }
        // Quiet callers whose watch says a datagram is there: read from their next visit.
        if let Some(q) = quiet.as_mut() {
            q.woken(woken);
            for id in woken.iter() {
                if let Some(l) = legs.get_mut(*id) {
                    l.reads.woke();
                }
            }
        }
        let sent = io.sent - sent0;
        let send_errors = io.send_errors - errors0;
        let cpu = thread_cpu_ns();
        let busy = cpu.saturating_sub(started);
        counters.cpu_ns.store(cpu, Relaxed);
        // Once per visit, whatever the number of calls in the slot.
        for (c, n) in [
            (&counters.sent, sent),
            (&counters.received, received),
            (&counters.send_errors, send_errors),
            (&counters.skipped, skipped),
            (&counters.visits, 1),
            (&counters.busy_ns, busy),
        ] {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
        counters.lateness.flush(lateness);
        self.judged_visits += 1;
        self.judged_busy_ns += busy;
        if self.judged_visits >= PACK_JUDGED_OVER {
            let share = busy_share(self.judged_busy_ns, u64::from(self.judged_visits));
            let closed = &self.counters.closed;
            closed.store(stays_closed(closed.load(Relaxed), share), Relaxed);
            (self.judged_visits, self.judged_busy_ns) = (0, 0);
        }
    }
}

/// CPU time this thread has used, in ns.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The leg's RTP goes where its caller's comes from, over a connected socket: the
/// sending socket where the port has one, else the reader.
fn latch(l: &mut Slotted, from: SocketAddr) {
    l.latched = true;
    let was = l.leg.stream.remote;
    if was != Some(from) {
        tracing::debug!(sdp = ?l.sdp_remote, from = %from, "RTP latched to where the caller sends from");
        l.leg.stream.remote = Some(from);
    }
    if l.port.sender().is_some() {
        if l.peer != Some(from) {
            aim_sender(l, Some(from));
        }
        return;
    }
    match rtpio::connect(&l.port.socket, Some(from)) {
        Ok(()) => l.peer = Some(from),
        Err(e) => tracing::warn!(port = l.port.port, error = %e, "RTP socket not connected"),
    }
}

/// Connects a port's sending socket to where its RTP goes, so that its sends carry no
/// address and the caller's datagrams arrive on it. `None`, or an address that names no
/// one (on hold), leaves it aimed where it was: undoing a connect would hand it every
/// arrival. Nothing where the port has one socket. The socket is read with `recv`,
/// which names no source: datagrams the old peer left queued are read as the new one's,
/// a socket buffer's worth at most, and the latch weighs them as such.
fn aim_sender(l: &mut Slotted, to: Option<SocketAddr>) {
    let Some(s) = l.port.sender() else { return };
    let Some(to) = to.filter(|a| !a.ip().is_unspecified() && a.port() != 0) else {
        return;
    };
    // Read at once; a socket still watched stays so (the watch hears the new peer as
    // well).
    l.reads = ReadPace {
        watched: l.reads.watched,
        unwatchable: l.reads.unwatchable,
        ..ReadPace::default()
    };
    match rtpio::connect(s, Some(to)) {
        Ok(()) => l.peer = Some(to),
        // Sends go addressed; the kernel keeps the socket's old peer.
        Err(e) => {
            tracing::warn!(port = l.port.port, to = %to, error = %e, "RTP sending socket not connected")
        }
    }
}

/// Stops watching a latched leg's reader, and shrinks its buffer to the kernel's
/// smallest: what lands there now is a stranger's, never read.
fn let_go_of_reader(io: &mut RtpIo, l: &mut Slotted) {
    io.unwatch(&l.port.socket);
    l.watched = false;
    let r = socket2::SockRef::from(&l.port.socket);
    l.reader_rcvbuf = r.recv_buffer_size().ok();
    let _ = r.set_recv_buffer_size(1);
}

/// Watches a leg's reader again (the caller moved: anyone may be the caller now).
fn restore_reader(io: &mut RtpIo, l: &mut Slotted, id: u64) {
    if let Some(b) = l.reader_rcvbuf.take() {
        // The kernel reports twice what was asked (its bookkeeping share).
        let _ = socket2::SockRef::from(&l.port.socket).set_recv_buffer_size(b / 2);
    }
    match io.watch(&l.port.socket, id) {
        Ok(()) => l.watched = true,
        Err(e) => tracing::error!(port = l.port.port, error = %e, "RTP socket not watched"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::catalogue::Clip as FlowClip;
    use crate::media::Codec;
    use crate::media::prompt::Clip;

    /// `recv`, again when a signal interrupts it (EINTR): the test process gets them.
    fn recv(sock: &std::net::UdpSocket, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match sock.recv(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn stream_to(remote: std::net::SocketAddr) -> Stream {
        Stream {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event: Some(101),
            remote: Some(remote),
            send: true,
        }
    }

    /// Reads per visit of a connected socket, `arrive` datagrams arriving before each;
    /// and the datagrams left unread at the end.
    fn paced(arrive: &[u8]) -> (Vec<usize>, usize) {
        let mut pace = ReadPace::default();
        let mut queued = 0usize;
        let reads = arrive
            .iter()
            .map(|&a| {
                queued += usize::from(a);
                let reads = match pace.due(false) {
                    ReadDue::Read(n) => n,
                    _ => 0,
                };
                for _ in 0..reads.min(queued) {
                    pace.found();
                }
                queued -= reads.min(queued);
                reads
            })
            .collect();
        (reads, queued)
    }

    #[test]
    fn a_sending_caller_is_read_every_visit_a_silent_one_every_third_a_long_silent_one_every_fifth()
    {
        // Steady: one or two reads a visit, never none, nothing left behind.
        let (steady, left) = paced(&[1; 12]);
        assert!(steady.iter().all(|&r| (1..=2).contains(&r)), "{steady:?}");
        assert!(left <= 1);
        // Silent: five empty reads, then one read every third visit.
        let (silent, _) = paced(&[0; 14]);
        assert_eq!(silent, [1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
        // Speaks again from visit 8: found at the next quiet read (10), read every visit
        // from then on, and the backlog of the quiet spell drains.
        let mut arrive = vec![0u8; 8];
        arrive.extend([1; 10]);
        let (woke, left) = paced(&arrive);
        assert_eq!(&woke[..11], [1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1]);
        assert!(woke[10..].iter().all(|&r| r >= 1), "{woke:?}");
        assert!(left <= 1, "backlog left: {left}");
        // Long silent: after 50 empty reads, one read every fifth visit; a word then is
        // found at the next read and read every visit again.
        let mut long = vec![0u8; 400];
        long.extend([1; 10]);
        let (reads, left) = paced(&long);
        let at: Vec<usize> = (0..reads.len()).filter(|&v| reads[v] > 0).collect();
        let gaps: Vec<usize> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let n = |from: usize, to: usize, gap: usize| gaps[from..to].iter().all(|&g| g == gap);
        assert!(n(0, 4, 1) && n(4, 49, 3) && n(49, 60, 5), "{gaps:?}");
        let first = at.iter().position(|&v| v >= 400).unwrap();
        assert!(at[first] < 405, "heard within five visits");
        assert!(
            reads[at[first]..].iter().all(|&r| r >= 1) && left <= 1,
            "{reads:?}"
        );
    }

    /// With a watch, a quiet caller's fifth empty read is made with its socket watched,
    /// and it is read no more until the watch names it, then every visit again; a
    /// datagram found by that read unwatches it; a watch refused, every third visit.
    #[test]
    fn a_quiet_callers_socket_is_watched_and_read_again_when_the_watch_names_it() {
        let mut pace = ReadPace::default();
        let mut dues: Vec<ReadDue> = (0..5).map(|_| pace.due(true)).collect();
        assert_eq!(dues[..4], [ReadDue::Read(1); 4]);
        assert_eq!(dues[4], ReadDue::WatchAndRead(1));
        pace.watched();
        dues = (0..50).map(|_| pace.due(true)).collect();
        assert!(dues.iter().all(|d| *d == ReadDue::Nothing), "{dues:?}");
        pace.woke();
        assert_eq!(pace.due(true), ReadDue::Read(1));
        pace.found();
        assert_eq!(pace.due(true), ReadDue::Read(READS_PER_SOCKET));
        // A datagram came just before the watch: the read made with it finds it.
        let mut pace = ReadPace::default();
        for _ in 0..4 {
            pace.due(true);
        }
        assert_eq!(pace.due(true), ReadDue::WatchAndRead(1));
        pace.watched();
        pace.found();
        assert_eq!(pace.due(true), ReadDue::UnwatchAndRead(READS_PER_SOCKET));
        assert!(!pace.watched);
        assert_eq!(pace.due(true), ReadDue::Read(1));
        // Refused: paced reads, and no other try for this leg.
        let mut pace = ReadPace::default();
        for _ in 0..4 {
            pace.due(true);
        }
        assert_eq!(pace.due(true), ReadDue::WatchAndRead(1));
        pace.not_watched();
        dues = (0..7).map(|_| pace.due(true)).collect();
        assert_eq!(
            dues,
            [
                ReadDue::Nothing,
                ReadDue::Nothing,
                ReadDue::Read(1),
                ReadDue::Nothing,
                ReadDue::Nothing,
                ReadDue::Read(1),
                ReadDue::Nothing,
            ]
        );
    }

    #[test]
    fn the_threads_slots_take_turns_through_a_slot() {
        assert_eq!(stagger(0, 1), Duration::ZERO);
        assert_eq!(
            [stagger(0, 2), stagger(1, 2)],
            [Duration::ZERO, Duration::from_millis(2)]
        );
        let four: Vec<Duration> = (0..4).map(|n| stagger(n, 4)).collect();
        assert_eq!(four, [0, 1, 2, 3].map(Duration::from_millis));
    }

    /// Open threads fill to their pack in order, then the open one with the fewest
    /// takes the next; a closed thread (past PACK_BUSY) takes none while one is open,
    /// however few its legs; all closed, the fewest.
    #[test]
    fn a_new_leg_goes_to_an_open_thread_with_room_then_the_emptiest_open_one() {
        assert_eq!(place(&[10, 0], &[false, false], 100), 0);
        assert_eq!(place(&[100, 0], &[false, false], 100), 1);
        assert_eq!(place(&[100, 120], &[false, false], 100), 0);
        assert_eq!(place(&[10, 0], &[true, false], 100), 1);
        assert_eq!(place(&[10, 150], &[true, false], 100), 1);
        assert_eq!(place(&[10, 150], &[true, true], 100), 0);
        assert_eq!(place(&[10, 150], &[], 100), 0);
        // Closing and opening, with a band between that keeps what was.
        assert!(stays_closed(false, 0.61) && stays_closed(true, 0.55));
        assert!(!stays_closed(false, 0.55) && !stays_closed(true, 0.49));
    }

    /// The legs each thread has taken, once they add up to `n`.
    async fn legs_per_thread(pump: &MediaPump, n: usize) -> Vec<usize> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let v: Vec<usize> = pump.counters.iter().map(|c| c.legs.load(Relaxed)).collect();
            if v.iter().sum::<usize>() == n || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Two media threads that take two legs each before the next, and a hundred ports.
    fn two_threads_of_two(first_port: u16) -> (MediaPump, super::super::ports::PortPool) {
        let mut pump = MediaPump::start(2, false).expect("pump");
        pump.pack = 2;
        let ip = "127.0.0.1".parse().unwrap();
        let pool = super::super::ports::PortPool::new(ip, first_port, first_port + 99, true);
        (pump, pool)
    }

    /// A leg sending to nobody in particular, on the next free port.
    fn add_leg(pump: &MediaPump, pool: &super::super::ports::PortPool, legs: &mut Vec<Leg>) {
        let port = pool.take().expect("port");
        let to = "127.0.0.1:9".parse().unwrap();
        legs.push(pump.add(stream_to(to), &VoiceSettings::default(), port));
    }

    #[tokio::test]
    async fn calls_fill_one_media_thread_before_the_next_then_go_to_the_emptiest() {
        let (pump, pool) = two_threads_of_two(42300);
        let mut legs = Vec::new();
        let add = |legs: &mut Vec<Leg>| add_leg(&pump, &pool, legs);
        add(&mut legs);
        assert_eq!(legs_per_thread(&pump, 1).await, vec![1, 0]);
        add(&mut legs);
        assert_eq!(
            legs_per_thread(&pump, 2).await,
            vec![2, 0],
            "the first fills to pack"
        );
        add(&mut legs);
        add(&mut legs);
        assert_eq!(legs_per_thread(&pump, 4).await, vec![2, 2]);
        add(&mut legs);
        assert_eq!(
            legs_per_thread(&pump, 5).await,
            vec![3, 2],
            "both full: the emptiest"
        );
        // Calls end on the first thread: the next call goes back to it.
        legs.remove(0);
        legs.remove(0);
        assert_eq!(legs_per_thread(&pump, 3).await, vec![1, 2]);
        add(&mut legs);
        assert_eq!(legs_per_thread(&pump, 4).await, vec![2, 2]);
    }

    #[tokio::test]
    async fn a_call_that_ends_makes_room_at_once_for_the_next() {
        let (pump, pool) = two_threads_of_two(42400);
        let mut legs = Vec::new();
        let add = |legs: &mut Vec<Leg>| add_leg(&pump, &pool, legs);
        add(&mut legs);
        add(&mut legs);
        assert_eq!(legs_per_thread(&pump, 2).await, vec![2, 0]);
        // A line's call ends and it calls again straight away, before the media thread's
        // next visit has taken the first leg away: the new leg still goes to the first.
        legs.remove(0);
        add(&mut legs);
        // Both commands are taken in one visit (a slot, 4 ms): after it the counts stand.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            legs_per_thread(&pump, 2).await,
            vec![2, 0],
            "a second thread woken for one call"
        );
    }

    #[tokio::test]
    async fn a_leg_sends_its_prompt_on_the_20_ms_schedule_and_hears_keys() {
        let pump = MediaPump::start(1, true).expect("pump");
        let pool =
            super::super::ports::PortPool::new("127.0.0.1".parse().unwrap(), 42100, 42199, true);
        let port = pool.take().expect("port");
        let hotline_port = port.port;
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        caller
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut leg = pump.add(
            stream_to(caller.local_addr().unwrap()),
            &VoiceSettings::default(),
            port,
        );

        // A 200 ms prompt: ten frames, then PlayDone at the last one.
        let mut cache = PromptCache::new();
        cache.insert("beep", Clip::from_samples(&[8000i16; 1600]));
        let started = Instant::now();
        leg.play(
            7,
            Arc::new(cache),
            vec![Utterance {
                prompt: "beep".into(),
                value: None,
                text: String::new(),
                clips: vec![FlowClip::Audio("beep".into())],
            }],
        );
        let done = tokio::time::timeout(Duration::from_secs(2), leg.events.recv())
            .await
            .expect("PlayDone in time")
            .expect("an event");
        let took = done.at - started;
        let done = done.event();
        assert!(matches!(done, Some(Event::PlayDone { id: 7 })), "{done:?}");
        assert!(
            took >= Duration::from_millis(170) && took <= Duration::from_millis(260),
            "{took:?}"
        );
        // The packets: consecutive sequence numbers, timestamps 160 apart.
        let mut buf = [0u8; 512];
        let mut last: Option<(u16, u32)> = None;
        for _ in 0..8 {
            let n = recv(&caller, &mut buf).expect("RTP");
            assert_eq!(n, 12 + 160);
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if let Some((s, t)) = last {
                assert_eq!(seq, s.wrapping_add(1));
                assert_eq!(ts, t.wrapping_add(160));
            }
            last = Some((seq, ts));
        }

        // An RFC 4733 key from the caller: '5', end bit set.
        let mut key = vec![0x80, 101, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        key.extend_from_slice(&[5, 0x80, 0, 160]);
        caller
            .send_to(&key, ("127.0.0.1", hotline_port))
            .expect("sent");
        let heard = loop {
            let ev = tokio::time::timeout(Duration::from_secs(2), leg.events.recv())
                .await
                .expect("key in time")
                .expect("an event");
            if let Some(ev @ Event::Dtmf(_)) = ev.event() {
                break ev;
            }
        };
        assert!(matches!(heard, Event::Dtmf('5')), "{heard:?}");
        assert_eq!(pump.stats().legs, 1);
        // Every frame sent was timed against its schedule.
        let timed = pump.lateness().count();
        assert!(timed >= 10 && timed <= pump.stats().rtp_sent, "{timed}");
        drop(leg);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pump.stats().legs, 0);
        assert_eq!(pool.available(), 50, "the port is back in the pool");
    }

    /// Symmetric RTP: a caller whose RTP comes from another port than its SDP named
    /// gets hotline's RTP there; on either datagram path.
    /// A thread visits only the slots that have legs, and any slot an alarm falls due
    /// in: an alarm 6 ms past one of the leg's visits fires in the slot after it, not at
    /// the leg's next visit 14 ms later. (It is set three frames ahead: a command waits
    /// for the thread's next visit, as a flow's timers, seconds ahead, always do.) Each
    /// try is timed from a frame's arrival; the best of five is judged, since a busy
    /// machine only makes a try later.
    #[tokio::test]
    async fn an_alarm_between_a_legs_visits_fires_in_its_own_slot() {
        let pump = MediaPump::start(1, true).expect("pump");
        let pool =
            super::super::ports::PortPool::new("127.0.0.1".parse().unwrap(), 42300, 42399, true);
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut leg = pump.add(
            stream_to(caller.local_addr().unwrap()),
            &VoiceSettings::default(),
            pool.take().expect("port"),
        );
        let mut cache = PromptCache::new();
        cache.insert("long", Clip::from_samples(&[8000i16; 8000 * 3]));
        leg.play(
            1,
            Arc::new(cache),
            vec![Utterance {
                prompt: "long".into(),
                value: None,
                text: String::new(),
                clips: vec![FlowClip::Audio("long".into())],
            }],
        );
        let mut buf = [0u8; 512];
        let mut best = Duration::MAX;
        for _ in 0..5 {
            // The next frame to arrive marks the leg's visit.
            caller.set_nonblocking(true).unwrap();
            while recv(&caller, &mut buf).is_ok() {}
            caller.set_nonblocking(false).unwrap();
            caller
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            recv(&caller, &mut buf).expect("a frame");
            let at = Instant::now() + Duration::from_millis(66);
            leg.alarm(Some(at));
            loop {
                let e = tokio::time::timeout(Duration::from_secs(2), leg.events.recv())
                    .await
                    .expect("the alarm in time")
                    .expect("an event");
                if e.is_alarm() {
                    best = best.min(Instant::now().saturating_duration_since(at));
                    break;
                }
            }
        }
        // In its own slot: within a slot (4 ms) of its time; at the leg's next visit it
        // would be 14 ms late.
        assert!(
            best < Duration::from_millis(9),
            "best of five: {best:?} late"
        );
    }

    #[tokio::test]
    async fn a_leg_latches_to_where_the_caller_sends_from() {
        for io in [MediaIo::Sendto, MediaIo::Auto] {
            let pump = MediaPump::start_with(1, false, io, Placement::default()).expect("pump");
            let pool = super::super::ports::PortPool::new(
                "127.0.0.1".parse().unwrap(),
                42200,
                42299,
                true,
            );
            let port = pool.take().expect("port");
            let hotline = std::net::SocketAddr::from(([127, 0, 0, 1], port.port));
            // The SDP names one port; the caller's NAT sends from another.
            let sdp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sdp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let nat = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            nat.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _leg = pump.add(
                stream_to(sdp.local_addr().unwrap()),
                &VoiceSettings::default(),
                port,
            );
            let mut buf = [0u8; 512];
            assert_eq!(
                recv(&sdp, &mut buf).expect("RTP to the SDP's port first"),
                172
            );
            // A PCMU frame of silence from the NAT's port.
            let mut pkt = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
            pkt.extend_from_slice(&[0xFF; 160]);
            // A stranger on another address with one packet takes nothing.
            let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
            stranger
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            stranger.send_to(&pkt, hotline).expect("sent");
            assert!(recv(&stranger, &mut buf).is_err(), "{io:?}");
            assert_eq!(recv(&sdp, &mut buf).expect("still to the SDP's port"), 172);
            nat.send_to(&pkt, hotline).expect("sent");
            let n = recv(&nat, &mut buf);
            assert!(
                matches!(n, Ok(172)),
                "RTP follows the caller ({io:?}): {n:?}"
            );
            // Latched and connected: nothing more goes to the SDP's port.
            std::thread::sleep(Duration::from_millis(60));
            sdp.set_nonblocking(true).unwrap();
            while recv(&sdp, &mut buf).is_ok() {}
            std::thread::sleep(Duration::from_millis(60));
            assert!(recv(&sdp, &mut buf).is_err(), "{io:?}");
            // Read both, heard one: the stranger's was dropped unheard.
            assert_eq!(pump.stats().rtp_received, 2, "{io:?}");
        }
    }

    /// Two sockets a port: the caller's RTP from the SDP's own address arrives on the
    /// connected sending socket and is heard; once latched, a stranger's datagrams are
    /// not even read; a re-INVITE to a new address listens to anyone again.
    #[tokio::test]
    async fn the_callers_rtp_is_read_on_the_sending_socket_and_a_latched_leg_reads_no_stranger() {
        let pump =
            MediaPump::start_with(1, false, MediaIo::Auto, Placement::default()).expect("pump");
        let pool =
            super::super::ports::PortPool::new("127.0.0.1".parse().unwrap(), 42300, 42399, true);
        assert!(pool.send_socket());
        let port = pool.take().expect("port");
        let hotline = std::net::SocketAddr::from(([127, 0, 0, 1], port.port));
        let bind = |ip: &str| {
            let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        };
        let caller = bind("127.0.0.1");
        let mut leg = pump.add(
            stream_to(caller.local_addr().unwrap()),
            &VoiceSettings::default(),
            port,
        );
        // A key (RFC 4733: `seq`, `digit`) from the caller, and the key the leg heard.
        async fn key(
            caller: &std::net::UdpSocket,
            to: std::net::SocketAddr,
            leg: &mut Leg,
            seq: u8,
            digit: u8,
        ) -> Event {
            let mut key = vec![0x80, 101, 0, seq, 0, 0, seq, 160, 0, 0, 0, 9];
            key.extend_from_slice(&[digit, 0x80, 0, 160]);
            caller.send_to(&key, to).expect("sent");
            loop {
                let ev = tokio::time::timeout(Duration::from_secs(2), leg.events.recv())
                    .await
                    .expect("key in time")
                    .expect("an event")
                    .event();
                if let Some(ev @ Event::Dtmf(_)) = ev {
                    return ev;
                }
            }
        }
        let heard = key(&caller, hotline, &mut leg, 1, 5).await;
        assert!(matches!(heard, Event::Dtmf('5')), "{heard:?}");
        // Counted at the end of the visit that heard it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pump.stats().rtp_received, 1);

        // Quiet long enough for its socket to be watched rather than read: the next key
        // is heard all the same (a watched socket is read only once the watch names it).
        tokio::time::sleep(Duration::from_millis(400)).await;
        let heard = key(&caller, hotline, &mut leg, 2, 7).await;
        assert!(matches!(heard, Event::Dtmf('7')), "{heard:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pump.stats().rtp_received, 2);

        // A run that would pass probation on a watched reader: not read at all.
        let rtp = |seq: u8| {
            let mut p = vec![0x80, 0, 0, seq, 0, 0, 0, 160, 0, 0, 0, 7];
            p.extend_from_slice(&[0xFF; 160]);
            p
        };
        let stranger = bind("127.0.0.2");
        for seq in 1..=6 {
            stranger.send_to(&rtp(seq), hotline).expect("sent");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            pump.stats().rtp_received,
            2,
            "a stranger's datagrams were read"
        );
        let mut buf = [0u8; 512];
        assert!(
            recv(&stranger, &mut buf).is_err(),
            "RTP went to the stranger"
        );

        // Moved: RTP to the new address, and a source elsewhere (NAT) is found again.
        let moved = bind("127.0.0.1");
        leg.set_stream(stream_to(moved.local_addr().unwrap()));
        assert_eq!(recv(&moved, &mut buf).expect("RTP to the new address"), 172);
        for seq in 10..=15 {
            stranger.send_to(&rtp(seq), hotline).expect("sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            recv(&stranger, &mut buf).expect("RTP follows a run from elsewhere"),
            172
        );
    }
}
