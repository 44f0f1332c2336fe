//! The floor: what the kernel charges per datagram on this machine, right now. Plain
//! Rust sends the same count of 172-byte datagrams from the same number of sockets to
//! the same kind of client socket (one socket, drained by a thread with `recvmmsg`) at
//! hotline's pace (its media threads' slots, five of 4 ms a 20 ms frame, every socket
//! once a frame), by each method, from as many threads as hotline carries that many
//! calls on (it fills one media thread to `PACK_LEGS` calls before it opens the next:
//! one thread up to 2,500 calls, two at 5,000; `threads_in_use` in benches/load.rs),
//! each with its share of the sockets; the sending threads' own CPU (`RUSAGE_THREAD`)
//! over the datagrams sent is the figure. Hotline's CPU per packet is compared with the
//! best of them, measured in rounds just before and just after hotline's run at the
//! same size ([`Floor`]).
//!
//! Why as many threads as hotline uses: the load client reads every call's RTP from one
//! socket, and two threads sending into one socket contend for its queue. Measured with
//! a C sender on this 2-core machine, 5,000 sockets into one reader, three pairs: 2.91–3.08
//! µs per datagram from one thread, 3.42–3.61 µs from two. A one-thread floor beside
//! hotline's two threads charged hotline for that contention; a two-thread floor beside
//! hotline's one packed thread (2,500 calls) charged the floor for it (a bare sender in
//! one thread beside the floor in two: 0.97× twice; in two, 1.00× and 1.05×,
//! 2026-12-04). The same work is the same sockets from the same number of threads.
//!
//! Methods: `sendto` on unconnected sockets (hotline's fallback), `send` on connected
//! sockets, and hotline's own batched path (`hotline::call::rtpio`, one io_uring
//! submission a slot) unconnected and connected. One more, not a floor: the batched
//! path on sockets an epoll set also watches (what each send costs a socket that is
//! read the way hotline reads, and what a port's own sending socket saves).
use hotline::call::pump::{SLOT, SLOTS, run_realtime};
use hotline::call::rtpio::{MediaIo, RtpIo};
use serde_json::{Value, json};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Sendto,
    SendConnected,
    Uring,
    UringConnected,
    /// hotline's path with one socket per port: the sockets are also watched by an
    /// epoll set for reading, and each send wakes that watcher (what a port's own
    /// sending socket, `src/call/ports.rs`, avoids). Not a floor: what the watch costs.
    UringWatched,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Sendto,
        Method::SendConnected,
        Method::Uring,
        Method::UringConnected,
        Method::UringWatched,
    ];

    /// A floor (the kernel's cost), not a measure of a cost on top of it.
    pub fn is_floor(self) -> bool {
        self != Method::UringWatched
    }

    /// The method's sockets are `connect()`ed to where they send.
    fn connected(self) -> bool {
        matches!(self, Method::SendConnected | Method::UringConnected)
    }

    fn path(self) -> MediaIo {
        match self {
            Method::Sendto | Method::SendConnected => MediaIo::Sendto,
            Method::Uring | Method::UringConnected | Method::UringWatched => MediaIo::IoUring,
        }
    }

    /// `n` sockets on 127.0.0.1, non-blocking, connected to `to` where the method sends
    /// on connected sockets.
    fn sockets(self, n: usize, to: SocketAddr) -> Result<Vec<UdpSocket>, String> {
        (0..n)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                s.set_nonblocking(true)?;
                if self.connected() {
                    s.connect(to)?;
                }
                Ok(s)
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| format!("floor: {n} sockets: {e}"))
    }

    pub fn by_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Sendto => "sendto",
            Method::SendConnected => "send (connected)",
            Method::Uring => "io_uring batch",
            Method::UringConnected => "io_uring batch (connected)",
            Method::UringWatched => "io_uring batch, epoll-watched",
        }
    }
}

fn thread_cpu() -> (f64, f64) {
    // SAFETY: getrusage fills the struct for the calling thread.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(r.ru_utime), s(r.ru_stime))
}

/// A client socket drained in the background, as the load client drains hotline's RTP.
struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    got: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn new() -> Result<Sink, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        super::set_buffers(&sock, 64 << 20);
        let addr = sock.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicU64::new(0));
        let (st, g) = (stop.clone(), got.clone());
        let thread = std::thread::Builder::new()
            .name("floor-sink".into())
            .spawn(move || count_until_stopped(&sock, &st, &g))
            .map_err(|e| e.to_string())?;
        Ok(Sink {
            addr,
            stop,
            got,
            thread: Some(thread),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The floor's datagram: an RTP header and a 20 ms PCMU frame, 172 bytes as hotline's.
fn packet() -> Vec<u8> {
    let mut p = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    p.extend_from_slice(&[0xFF; 160]);
    p
}

/// One floor thread's sockets sent at hotline's pace: each visit, a slot after the last,
/// sends one datagram from each socket of that slot (every socket once per 20 ms frame),
/// as a media thread sends its calls' frames.
struct Paced {
    io: RtpIo,
    mine: Vec<i32>,
    pkt: Vec<u8>,
    /// `None` where the method's sockets are connected.
    to: Option<SocketAddr>,
    start: Instant,
    visit: u64,
}

impl Paced {
    /// `mine` sent by `m` to `to`, the first visit `phase` from now.
    fn new(
        m: Method,
        realtime: bool,
        mine: Vec<i32>,
        to: SocketAddr,
        phase: Duration,
    ) -> Result<Paced, String> {
        // Scheduled as hotline's media threads are: a real-time thread preempts the
        // others on its CPU at once, and whose account the work then lands in (a softirq
        // runs in whatever thread is current) moves with it. Beside a real-time hotline,
        // over the same seconds, hotline came out at 1.94-2.06× a normal-priority floor
        // and at 1.24-1.35× a real-time one (2026-12-03). Refused where hotline's would
        // be too (the same user): both then run at normal priority.
        if realtime && let Err(e) = run_realtime() {
            eprintln!(
                "load: floor thread not real-time ({e}): normal priority, as hotline's would be"
            );
        }
        Ok(Paced {
            io: RtpIo::new(m.path()).map_err(|e| e.to_string())?,
            mine,
            pkt: packet(),
            to: (!m.connected()).then_some(to),
            start: Instant::now() + phase,
            visit: 0,
        })
    }

    /// Sleeps until the next slot's time and sends its datagrams.
    fn visit(&mut self) {
        let due = self.start + SLOT * self.visit as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let k = (self.visit as usize) % SLOTS;
        for fd in self.mine.iter().skip(k).step_by(SLOTS) {
            self.io.send(*fd, &self.pkt, self.to);
        }
        self.io.flush();
        self.visit += 1;
    }
}

/// Sends for `secs` from `sockets` sockets at hotline's pace by `m`, from `threads`
/// threads; CPU per datagram.
fn one(
    m: Method,
    sockets: usize,
    threads: usize,
    secs: f64,
    realtime: bool,
    to: SocketAddr,
    delivered: &dyn Fn() -> u64,
) -> Result<Value, String> {
    let socks = m.sockets(sockets, to)?;
    let fds: Vec<i32> = socks.iter().map(|s| s.as_raw_fd()).collect();
    // SAFETY: epoll_create1 returns a new descriptor or -1.
    let epoll = (m == Method::UringWatched)
        .then(|| unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
        .filter(|&fd| fd >= 0);
    for fd in epoll
        .iter()
        .flat_map(|&ep| fds.iter().map(move |&s| (ep, s)))
    {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are open; ev is a valid pointer.
        unsafe { libc::epoll_ctl(fd.0, libc::EPOLL_CTL_ADD, fd.1, &mut ev) };
    }
    let threads = threads.max(1);
    let handles = (0..threads)
        .map(|t| {
            // Each thread its own sockets, in its own phase of the slot, as hotline's
            // threads are (each keeps its own epoch).
            let mine: Vec<i32> = fds.iter().skip(t).step_by(threads).copied().collect();
            let phase = SLOT * t as u32 / threads as u32;
            std::thread::Builder::new()
                .name(format!("floor-send-{t}"))
                .spawn(move || -> Result<(u64, u64, f64, f64, f64), String> {
                    let mut p = Paced::new(m, realtime, mine, to, phase)?;
                    let (u0, s0) = thread_cpu();
                    let end = p.start + Duration::from_secs_f64(secs);
                    while Instant::now() < end {
                        p.visit();
                    }
                    let (u1, s1) = thread_cpu();
                    Ok((
                        p.io.sent,
                        p.io.send_errors,
                        u1 - u0,
                        s1 - s0,
                        p.start.elapsed().as_secs_f64(),
                    ))
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let got0 = delivered();
    let (mut sent, mut errors, mut user, mut sys, mut wall) = (0, 0, 0.0, 0.0, 0.0f64);
    for h in handles {
        let (s1, e1, u1, y1, w1) = h
            .join()
            .map_err(|_| "floor sender panicked".to_string())??;
        (sent, errors, user, sys) = (sent + s1, errors + e1, user + u1, sys + y1);
        wall = wall.max(w1);
    }
    // The sink drains what is still queued for it before it is counted.
    std::thread::sleep(Duration::from_millis(100));
    let delivered = delivered().saturating_sub(got0);
    drop(socks);
    if let Some(ep) = epoll {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(ep) };
    }
    let per = |s: f64| s * 1e6 / sent.max(1) as f64;
    // A datagram the client's full socket buffer drops costs its sender less (no copy,
    // no wake-up of the reader): a method's run that lost any is no floor.
    Ok(json!({
        "counted": delivered >= sent,
        "method": m.name(),
        "sockets": sockets,
        "threads": threads,
        "sent": sent,
        "send_errors": errors,
        "delivered": delivered,
        "packets_per_s": sent as f64 / wall,
        "us_per_packet": { "user": per(user), "sys": per(sys), "total": per(user + sys) },
    }))
}

/// The floor's rounds, taken around hotline's run at the same size: half just before
/// it, half just after, so that the floor spans the stretch of the machine that
/// hotline's window does.
///
/// Why a mean and not the best round: hotline's figure is a mean over a 30 s window; on
/// this machine, whose speed swings 2× within a minute, the fastest of several 5 s
/// rounds is the machine's best moment, not the kernel's cost over the same stretch
/// (the 2026-12-03 suite: one round at 1.66 µs, the same method 3.25 a minute later).
/// Each method's figure is its CPU over its datagrams across the rounds; the best
/// method's is the floor. The lowest single round is kept and printed too.
pub struct Floor {
    sink: Sink,
    sockets: usize,
    threads: usize,
    secs: f64,
    /// Its threads real-time, as hotline's media threads are.
    realtime: bool,
    all: Vec<Value>,
    rounds: usize,
}

impl Floor {
    pub fn new(sockets: usize, threads: usize, secs: f64, realtime: bool) -> Result<Floor, String> {
        Ok(Floor {
            sink: Sink::new()?,
            sockets,
            threads,
            secs,
            realtime,
            all: Vec::new(),
            rounds: 0,
        })
    }

    /// Every method once, in turn; `when` names the round in the log ("before", "after").
    pub fn round(&mut self, when: &str) -> Result<(), String> {
        self.rounds += 1;
        for m in Method::ALL {
            let got = || self.sink.got.load(Ordering::Relaxed);
            let mut v = one(
                m,
                self.sockets,
                self.threads,
                self.secs,
                self.realtime,
                self.sink.addr,
                &got,
            )?;
            eprintln!(
                "load: floor round {} ({when}) {:<30} {:.2} µs/packet ({} sent, {} delivered){}",
                self.rounds,
                m.name(),
                v["us_per_packet"]["total"].as_f64().unwrap_or(f64::NAN),
                v["sent"],
                v["delivered"],
                not_counted(&v),
            );
            v["round"] = json!(self.rounds);
            v["when"] = json!(when);
            self.all.push(v);
        }
        Ok(())
    }

    /// Each method over its counted rounds, and the floor: the best method's.
    pub fn summary(&self) -> Value {
        let mut per_method = Vec::new();
        for m in Method::ALL {
            let rounds: Vec<&Value> = self
                .all
                .iter()
                .filter(|v| v["method"].as_str() == Some(m.name()) && v["counted"] == json!(true))
                .collect();
            if rounds.is_empty() {
                continue;
            }
            let sum = |p: &str| {
                rounds
                    .iter()
                    .filter_map(|v| v.pointer(p)?.as_f64())
                    .sum::<f64>()
            };
            let sent = sum("/sent");
            // Back from µs per packet to seconds, so that each round weighs its datagrams.
            let cpu = |k: &str| {
                rounds
                    .iter()
                    .filter_map(|v| {
                        Some(
                            v.pointer(&format!("/us_per_packet/{k}"))?.as_f64()?
                                * v["sent"].as_f64()?,
                        )
                    })
                    .sum::<f64>()
                    / sent.max(1.0)
            };
            let lowest = rounds
                .iter()
                .filter_map(|v| v.pointer("/us_per_packet/total")?.as_f64())
                .fold(f64::MAX, f64::min);
            per_method.push(json!({
                "method": m.name(),
                "floor": m.is_floor(),
                "rounds": rounds.len(),
                "sockets": self.sockets,
                "threads": self.threads,
                "sent": sent,
                "packets_per_s": rounds.iter().filter_map(|v| v["packets_per_s"].as_f64()).sum::<f64>() / rounds.len() as f64,
                "us_per_packet": { "user": cpu("user"), "sys": cpu("sys"), "total": cpu("total") },
                "lowest_round_us_per_packet": lowest,
            }));
        }
        let best = |p: &str| {
            per_method
                .iter()
                .filter(|v| v["floor"] == json!(true))
                .filter_map(|v| v.pointer(p)?.as_f64())
                .fold(f64::MAX, f64::min)
        };
        json!({
            "sockets": self.sockets,
            "threads": self.threads,
            "secs_each": self.secs,
            "rounds": self.rounds,
            "per_method": per_method,
            "all": self.all,
            "floor_us_per_packet": best("/us_per_packet/total"),
            "lowest_round_us_per_packet": best("/lowest_round_us_per_packet"),
            "delivered_to_client": self.sink.got.load(Ordering::Relaxed),
        })
    }
}

/// The machine's speed at one size, right now: hotline's own method (io_uring,
/// connected sockets) from `sockets` sockets in `threads` threads for `secs`, to a
/// reader of its own. The suite takes one just before and one just after hotline's run
/// at each size, so that the linear-cost verdict compares hotline's CPU per packet
/// with what the kernel charged for the same count of sockets over the same stretch of
/// the machine, not absolute figures minutes apart (`suite.rs`).
pub fn probe(sockets: usize, threads: usize, secs: f64, realtime: bool) -> Result<Value, String> {
    let sink = Sink::new()?;
    let delivered = || sink.got.load(Ordering::Relaxed);
    one(
        Method::UringConnected,
        sockets,
        threads,
        secs,
        realtime,
        sink.addr,
        &delivered,
    )
}

/// What the log adds to a method's line when its run does not count.
fn not_counted(v: &Value) -> &'static str {
    if v["counted"] == json!(true) {
        ""
    } else {
        "; the client lost datagrams: not counted"
    }
}

/// Reads datagrams off `sock` in batches (`recvmmsg`), as the load client does, counting
/// them into `got` until `stop`. As the client, it never sleeps on the socket: it polls
/// and sleeps 1 ms when the socket had less than a batch. A reader asleep on the socket
/// is woken by whoever sends (on loopback, an IPI paid in the sender's system call),
/// which a peer on another host would not cost it: until 2026-12-03 (night) this reader
/// blocked while the client's did not, so the floor's senders and SIPp paid for their
/// readers' wake-ups and hotline did not.
pub(crate) fn count_until_stopped(sock: &UdpSocket, stop: &AtomicBool, got: &AtomicU64) {
    const N: usize = 64;
    let mut bufs = vec![[0u8; 512]; N];
    while !stop.load(Ordering::Relaxed) {
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: plain C struct; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: the headers and the buffers they point at live through the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                N as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            got.fetch_add(n as u64, Ordering::Relaxed);
        }
        if n < N as i32 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// How the floor sends beside hotline: from this many sockets and threads, each method
/// this long, its threads real-time or not.
pub struct Senders {
    pub sockets: usize,
    pub threads: usize,
    pub secs: f64,
    pub realtime: bool,
}

/// The floor sent beside hotline, at the same time: while hotline carries its calls,
/// each floor method in turn from as many sockets as hotline has calls, to a reader of
/// its own read as the load client reads hotline's (polled, never woken by a sender),
/// and hotline's CPU per packet over the same seconds (`hotline` reads its process CPU
/// in seconds and the RTP packets it has sent and received). On this machine, whose
/// speed swings 2× within a minute, only figures taken over the same seconds make a
/// ratio of costs rather than of moments. Each side carries half the reference load:
/// the machine carries what it does at the reference. `rounds` times every method
/// (every other round in reverse order), each method's figures pooled over its rounds:
/// one 5 s stretch per method swung the ratio 1.11–1.63× within one run.
///
/// Why a reader of its own, not the load client's socket (as from the evening of
/// 2026-12-03): a reader of its own is the floor's cost alone, read as hotline's
/// datagrams are. (Into one socket the two senders shared a queue; it was not the
/// reason hotline's figure rises in the seconds of the floor's connected `send`,
/// 1.40–1.58× against 1.12–1.25× for the other methods in three runs: into a reader of
/// its own, 1.27–1.87× against 1.07–1.30× in one run.)
pub fn beside(
    senders: Senders,
    rounds: usize,
    measured: &str,
    hotline: impl Fn() -> (f64, u64),
) -> Result<Value, String> {
    let sink = Sink::new()?;
    let to = sink.addr;
    let delivered = || sink.got.load(Ordering::Relaxed);
    let Senders {
        sockets,
        threads,
        secs,
        realtime,
    } = senders;
    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| m.is_floor()).collect();
    // Per method, over its counted rounds: floor CPU s and datagrams, hotline's CPU s
    // and packets over the same seconds.
    let mut sums = vec![(0.0f64, 0u64, 0.0f64, 0u64); methods.len()];
    let mut runs: Vec<Vec<Value>> = vec![Vec::new(); methods.len()];
    for r in 0..rounds.max(1) {
        // Every other round in reverse order: a machine that speeds up or slows down
        // through the rounds favours no method.
        let order: Vec<usize> = if r % 2 == 0 {
            (0..methods.len()).collect()
        } else {
            (0..methods.len()).rev().collect()
        };
        for i in order {
            let m = methods[i];
            let (c0, p0) = hotline();
            let mut v = one(m, sockets, threads, secs, realtime, to, &delivered)?;
            let (c1, p1) = hotline();
            let pkts = p1.saturating_sub(p0);
            let hot = (c1 - c0) * 1e6 / pkts.max(1) as f64;
            let floor = v["us_per_packet"]["total"].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "load: floor beside {measured}, round {} {:<30} {floor:.2} µs/packet, {measured} {hot:.2} over the same {:.1} s ({:.2}×){}",
                r + 1,
                m.name(),
                secs,
                hot / floor,
                not_counted(&v),
            );
            v["hotline_us_per_packet"] = json!(hot);
            v["hotline_packets"] = json!(pkts);
            v["ratio"] = json!(hot / floor);
            if v["counted"] == json!(true) {
                let sent = v["sent"].as_u64().unwrap_or(0);
                let s = &mut sums[i];
                *s = (
                    s.0 + floor * sent as f64 / 1e6,
                    s.1 + sent,
                    s.2 + (c1 - c0),
                    s.3 + pkts,
                );
            }
            runs[i].push(v);
        }
    }
    // Each method's figures pooled over its counted rounds: CPU over datagrams, its and
    // hotline's over the same seconds.
    let per_method: Vec<Value> = methods
        .iter()
        .zip(sums.iter().zip(runs))
        .map(|(m, (&(fc, fs, hc, hp), runs))| {
            let floor = fc * 1e6 / fs as f64;
            let hot = hc * 1e6 / hp as f64;
            json!({
                "method": m.name(),
                "sockets": sockets,
                "counted": fs > 0,
                "rounds_counted": runs.iter().filter(|v| v["counted"] == json!(true)).count(),
                "us_per_packet": { "total": floor },
                "hotline_us_per_packet": hot,
                "hotline_packets": hp,
                "ratio": hot / floor,
                "rounds": runs,
            })
        })
        .collect();
    // The best floor is the cheapest method; the ratio is hotline's over the seconds
    // that method sent.
    let best = per_method
        .iter()
        .filter(|v| v["counted"] == json!(true))
        .min_by(|a, b| {
            let f = |v: &Value| v["us_per_packet"]["total"].as_f64().unwrap_or(f64::MAX);
            f(a).total_cmp(&f(b))
        })
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "sockets": sockets,
        "threads": threads,
        "secs_each": secs,
        "rounds": rounds.max(1),
        "per_method": per_method,
        "best": best,
    }))
}

/// The CPU verdict's rule tried on a bare sender: instead of hotline, `bare` (a method's
/// sends and nothing else: no calls, no reads) carries as many sockets, sending to a
/// reader of its own, while the floor's methods send beside it in turn, and its CPU per
/// datagram is taken over each method's seconds as hotline's is. Its ratio against the
/// cheapest method is what the rule charges for the method alone (and for how that
/// method fares beside the others): the part of the 1.15× that is not hotline's own.
pub fn beside_bare(
    bare: Method,
    bare_threads: usize,
    senders: Senders,
    rounds: usize,
) -> Result<Value, String> {
    let sink = Sink::new()?;
    let to = sink.addr;
    let socks = bare.sockets(senders.sockets, to)?;
    let fds: Vec<i32> = socks.iter().map(|s| s.as_raw_fd()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Its threads' CPU (ns) and datagrams so far, added after every visit.
    let cpu_ns = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let threads = bare_threads.max(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<i32> = fds.iter().skip(t).step_by(threads).copied().collect();
        let (stop, cpu_ns, sent) = (stop.clone(), cpu_ns.clone(), sent.clone());
        // Half a slot off the floor's phases: hotline's threads keep epochs of their own.
        let phase = SLOT * t as u32 / threads as u32 + SLOT / 2;
        let realtime = senders.realtime;
        let handle = std::thread::Builder::new()
            .name(format!("bare-send-{t}"))
            .spawn(move || -> Result<(), String> {
                let mut p = Paced::new(bare, realtime, mine, to, phase)?;
                let (u0, s0) = thread_cpu();
                let (mut ns_told, mut sent_told) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    p.visit();
                    let (u1, s1) = thread_cpu();
                    let ns = ((u1 - u0 + s1 - s0) * 1e9) as u64;
                    cpu_ns.fetch_add(ns.saturating_sub(ns_told), Ordering::Relaxed);
                    sent.fetch_add(p.io.sent - sent_told, Ordering::Relaxed);
                    (ns_told, sent_told) = (ns.max(ns_told), p.io.sent);
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    // Under way before the first round, as hotline's calls are.
    std::thread::sleep(Duration::from_secs(1));
    let measured = beside(senders, rounds, "the bare sender", || {
        (
            cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
            sent.load(Ordering::Relaxed),
        )
    });
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "bare sender panicked".to_string())??;
    }
    drop(socks);
    let mut v = measured?;
    v["bare"] = json!(bare.name());
    v["bare_threads"] = json!(threads);
    Ok(v)
}
