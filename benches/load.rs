//! Load benchmark: does `hotline serve` meet its figures? 5,000 concurrent calls on a
//! 2-core machine, at most 2 µs of CPU per RTP packet, the protocol's 5 s marks within
//! 50 ms at full load, zero tickets lost.
//!
//! ```sh
//! cargo bench --bench load                  # the whole suite (issue 11), 8–12 min on a quiet machine:
//!                                           # floor, SIPp reference, hotline at 1k/2k/5k/8k (machine probes around each), setup rate, verdicts
//! cargo bench --bench load -- --calls 1000 --hold 10   # one size, with its floor and SIPp reference
//! cargo bench --bench load -- --calls 5000 --ramp 500 --hold 45 --no-floor --no-sipp [--rtp] [--tickets 5] [--json out.json]
//! cargo bench --bench load -- --metrics both ...   # once with metrics: false, once on
//! cargo bench --bench load -- --beside-bare "io_uring batch (connected)"   # the CPU rule on a bare sender
//! ```
//!
//! It starts the real server binary on 127.0.0.1 with a temporary data directory and
//! the repository's flows and prompts, and calls it from this one process: one SIP
//! socket and one RTP socket for every call (see `load/sip.rs`, `load/media.rs`), so
//! the client's own CPU stays small next to the server's on a shared 2-core machine.
//!
//! Each line calls `sip:property@`, the silent caller of P-SIL: greeting, 5 s,
//! re-prompt, 5 s, farewell, 5 s, hotline's BYE. `--tickets PCT` of the lines press
//! 4 (suggestion) during the greeting and # after the prompt, hear the thanks that
//! follow the filed ticket, and hang up; every ticket a caller was thanked for must
//! be in the store. Lines call again as soon as a call ends, for `--hold` seconds
//! after every line's first call is up: that is the measuring window.
//!
//! Reading the report:
//!
//! * CPU per RTP packet is all of hotline's CPU in the window over the packets it
//!   sent and received. On loopback a send also pays for delivering the datagram into
//!   the receiving socket, which a NIC would not charge to hotline: a bare `sendto`
//!   costs ~5 µs of CPU on the 2-core VM this was written on, ~1.5 µs of it delivery.
//! * A mark is measured − 5 s, as heard: from the end of a prompt's playout (its last
//!   frame's arrival + 20 ms) to the next prompt's first frame, or to hotline's BYE.
//!   On an idle server the silences come out at 0 ms (or −20 ms, when the flow's
//!   timer loses the race with that tick's frame), and farewell → BYE at −20 ms,
//!   because hotline's 5 s count from the moment it sends the last frame.
//! * "CONTAMINATED": other processes took more than 0.1 core during the window.
//!   "STALLED": the host paused this VM in the window (CPU stolen, or the bench's own
//!   1 s tick late by half a second): every call hears the same gap at once.
//!   "CLIENT-LIMITED": the client's sender fell behind its 20 ms schedule (with
//!   `--rtp`, from ~2,000 calls on 2 cores): what hotline did then is not its own
//!   limit.
use clap::Parser;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "load/audio.rs"]
mod audio;
#[path = "load/floor.rs"]
mod floor;
#[path = "load/media.rs"]
mod media;
#[path = "load/procfs.rs"]
mod procfs;
#[path = "load/report.rs"]
mod report;
#[path = "load/sip.rs"]
mod sip;
#[path = "load/sipp.rs"]
mod sipp;
#[path = "load/suite.rs"]
mod suite;

use hotline::call::pump::PACK_LEGS;
use procfs::Cpu;
use report::{f, summary_ms};

#[derive(Parser, Debug, Clone)]
#[command(about = "Load benchmark for hotline serve (see benches/load.rs)")]
pub struct Args {
    /// Concurrent calls (lines): one size. Without it, every size of `--sizes`.
    #[arg(long)]
    calls: Option<usize>,
    /// The sizes run when `--calls` is not given.
    #[arg(long, default_value = "1000,2000,5000,8000", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// The size whose clean-audio figures are judged (the issue's 5,000), and the
    /// size whose admitted calls must stay clean while the excess is refused.
    #[arg(long, default_value_t = 5000)]
    goal_calls: usize,
    #[arg(long, default_value_t = 8000)]
    overload_calls: usize,
    /// Skip the floor step (plain Rust sending the same datagrams by each method).
    #[arg(long)]
    no_floor: bool,
    /// During hotline's window, send the floor's methods in turn beside it, from as many
    /// sockets as calls, and measure hotline's CPU per packet over the same seconds (the
    /// suite does this at half the reference size).
    #[arg(long)]
    floor_beside: bool,
    /// Seconds each floor method sends, and rounds of all methods (half before hotline's
    /// run at the reference size, half after; each method's figure is its mean).
    #[arg(long, default_value_t = 5.0)]
    floor_secs: f64,
    #[arg(long, default_value_t = 2)]
    floor_rounds: usize,
    /// Rounds of every method beside hotline (`--floor-beside`), and seconds each method
    /// sends per round; each method pooled over its rounds. Short and many, so that
    /// every method samples every phase of the calls' lives (the bench's callers are
    /// hung up on and redial in waves, and a wave costs hotline more per packet).
    #[arg(long, default_value_t = 6)]
    beside_rounds: usize,
    #[arg(long, default_value_t = 2.0)]
    beside_secs: f64,
    /// Instead of hotline, a bare sender by this floor method (`"io_uring batch
    /// (connected)"`, hotline's) carries `--calls` sockets (default half the reference)
    /// while the floor's methods send beside it, judged by the CPU verdict's rule: what
    /// the rule charges for the method alone. Nothing else runs. With `--json`, the
    /// figures as the suite's `floor_beside` has them, `hotline_*` being the bare sender's.
    #[arg(long)]
    beside_bare: Option<String>,
    /// The bare sender's threads (`--beside-bare`); default as many as the floor's,
    /// hotline's media threads. One is what hotline's packing uses up to 2,500 calls.
    #[arg(long)]
    bare_threads: Option<usize>,
    /// Skip the SIPp UAS reference.
    #[arg(long)]
    no_sipp: bool,
    /// Skip benches/setup-rate.sh (run only in the whole suite).
    #[arg(long)]
    no_setup_rate: bool,
    /// New calls per second while ramping up (and BYEs per second at the end).
    #[arg(long, default_value_t = 500.0)]
    ramp: f64,
    /// Seconds the lines stay busy once every line's first call is up: the
    /// measuring window. A silent call lasts ~39 s.
    #[arg(long, default_value_t = 45.0)]
    hold: f64,
    /// The client sends 20 ms PCMU silence to every call (loads hotline's receive path).
    #[arg(long)]
    rtp: bool,
    /// Percent of the lines that file a ticket (a suggestion) instead of staying silent.
    #[arg(long, default_value_t = 5.0)]
    tickets: f64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// hotline's RTP port range.
    #[arg(long, default_value = "20000-39999")]
    rtp_ports: String,
    /// hotline's --max-calls (default: calls + 10%, so a line's next call does not
    /// queue behind its previous call's teardown).
    #[arg(long)]
    max_calls: Option<usize>,
    /// Keep the data directory (call records, tickets, hotline's log) and say where.
    #[arg(long)]
    keep: bool,
    /// Count hotline's syscalls and context switches over the window with `perf stat`.
    #[arg(long)]
    perf_stat: bool,
    /// Record a CPU profile of hotline over the window (`perf record -g`) to this file.
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// Start hotline with this soft open-file limit (its hard limit stays), e.g. 1024 as
    /// a service manager would give it: checks that `serve` raises its own limit.
    #[arg(long)]
    server_nofile: Option<u64>,
    /// hotline's RUST_LOG.
    #[arg(long, default_value = "warn")]
    log: String,
    /// hotline's `metrics` setting (GET /metrics and the RTP send-lateness timing):
    /// `both` runs the whole bench twice, off then on, and compares CPU per packet.
    #[arg(long, value_enum, default_value_t = MetricsMode::On)]
    metrics: MetricsMode,
    /// hotline's `media_io` setting: auto, io_uring or sendto.
    #[arg(long, default_value = "auto")]
    media_io: String,
    /// A settings line added to hotline's (`--setting "media_realtime: true"`); repeatable.
    #[arg(long = "setting")]
    settings: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// How many media threads hotline runs: its `media_threads` setting if a `--setting`
/// gives one, else one per CPU, as `hotline serve` does.
pub fn media_threads(a: &Args) -> usize {
    a.settings
        .iter()
        .filter_map(|l| l.trim().strip_prefix("media_threads:"))
        .filter_map(|v| v.trim().parse::<usize>().ok())
        .rfind(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many of its media threads hotline carries `calls` on: it packs a thread to
/// [`PACK_LEGS`] calls before it opens the next (src/call/pump.rs). The floor sends from
/// as many: one thread into the reader's one socket does not meet a second thread's
/// sends there, and a floor from more threads than hotline uses would charge the floor
/// that contention and not hotline (a bare sender of 2,500 sockets in one thread beside
/// the floor in two: 0.97× and 0.97×; in two threads, 1.00× and 1.05×, 2026-12-04).
pub fn threads_in_use(a: &Args, calls: usize) -> usize {
    calls.div_ceil(PACK_LEGS).clamp(1, media_threads(a).max(1))
}

/// Whether hotline's media threads are real-time: its `media_realtime` setting if a
/// `--setting` gives one, else its default (yes).
pub fn media_realtime(a: &Args) -> bool {
    a.settings
        .iter()
        .filter_map(|l| l.trim().strip_prefix("media_realtime:"))
        .filter_map(|v| v.trim().parse::<bool>().ok())
        .next_back()
        .unwrap_or(true)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MetricsMode {
    On,
    Off,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Silent,
    Ticket,
}

pub const WINDOW_OPEN: u8 = 1;
const WINDOW_CLOSED: u8 = 2;

/// What the client's threads share: the clock, the phase of the run, counters.
pub struct Shared {
    pub epoch: Instant,
    pub window: AtomicU8,
    /// Stop calling again; hang up what is up.
    pub drain: AtomicBool,
    pub stop: AtomicBool,
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    pub calls_up: AtomicI64,
    pub max_up: AtomicI64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    /// Lines whose first call was answered or refused.
    pub first_resolved: AtomicU64,
}

impl Shared {
    pub fn ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// The server to measure: `HOTLINE_BIN` (another build, for an A/B of two commits on
/// the same bench), else the one built with this bench.
fn hotline_bin() -> std::ffi::OsString {
    std::env::var_os("HOTLINE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hotline").into())
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A port free on 127.0.0.1 for both UDP and TCP (hotline binds SIP on both).
fn free_port() -> u16 {
    for _ in 0..100 {
        let u = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP");
        let port = u.local_addr().expect("addr").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

fn set_buffers(sock: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: setsockopt reads one c_int from the pointer given.
        unsafe {
            let p = (&bytes as *const libc::c_int).cast();
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // FORCE needs CAP_NET_ADMIN; without it the plain option is capped at rmem_max.
            if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
            }
        }
    }
}

struct Server {
    child: Child,
    pid: u32,
    log: PathBuf,
    data: PathBuf,
    sip: SocketAddrV4,
    http: u16,
}

impl Server {
    fn start(a: &Args, dir: &Path) -> Result<Server, String> {
        let sip_port = free_port();
        let http = free_port();
        let data = dir.join("var");
        let config = dir.join("hotline.yaml");
        std::fs::write(
            &config,
            format!(
                // One process calls from 127.0.0.1 at thousands of calls a second: a
                // trunk, exempt from the per-source limits.
                "flows: {}\nprompts: {}\nlookups: {}\nmetrics: {}\nsip_limits: {{exempt: [127.0.0.0/8]}}\nmedia_io: {}\n",
                repo("flows").display(),
                repo("prompts").display(),
                repo("data").display(),
                a.metrics != MetricsMode::Off,
                a.media_io,
            ) + &a.settings.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.join("hotline.log");
        let err = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let calls = a.calls.unwrap_or(a.goal_calls);
        let max_calls = a.max_calls.unwrap_or(calls + calls / 10 + 10);
        let mut cmd = Command::new(hotline_bin());
        let nofile = a.server_nofile;
        // SAFETY: prctl, getrlimit and setrlimit are async-signal-safe. PDEATHSIG: an
        // interrupted bench leaves no server holding thousands of ports.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if let Some(n) = nofile {
                    let mut r: libc::rlimit = std::mem::zeroed();
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
                    r.rlim_cur = n.min(r.rlim_max);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &r);
                }
                Ok(())
            });
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--sip", &format!("127.0.0.1:{sip_port}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--rtp-ports", &a.rtp_ports])
            .arg("--data")
            .arg(&data)
            .args(["--max-calls", &max_calls.to_string()])
            .env("RUST_LOG", &a.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start hotline: {e}"))?;
        let pid = child.id();
        let mut s = Server {
            child,
            pid,
            log,
            data,
            sip: SocketAddrV4::new(Ipv4Addr::LOCALHOST, sip_port),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::fs::read_to_string(&s.log).is_ok_and(|t| t.contains("answering SIP")) {
                return Ok(s);
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(format!("hotline exited ({st}):\n{}", s.log_tail(30)));
            }
            if Instant::now() > deadline {
                s.kill();
                return Err(format!("hotline not ready in 30 s:\n{}", s.log_tail(30)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// hotline's log lines of the overload refusal tripping and clearing (with the
    /// figures that tripped it), at most `max`.
    fn overload_log(&self, max: usize) -> Vec<String> {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        t.lines()
            .filter(|l| l.contains("cannot pace more calls") || l.contains("have room again"))
            .take(max)
            .map(str::to_owned)
            .collect()
    }

    fn log_lines(&self) -> usize {
        std::fs::File::open(&self.log)
            .map(|f| std::io::BufReader::new(f).lines().count())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM: hotline ends its calls and flushes its records; then wait.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill sends a signal to our own child.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn health(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.http)) else {
            return out;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let _ = write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
        for l in body.lines() {
            if let Some((k, v)) = l.split_once(' ') {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
        out
    }
}

/// Everything sampled at the window's edges.
struct Snap {
    ns: u64,
    cpu: Cpu,
    threads: HashMap<String, (Cpu, usize)>,
    ctx: (u64, u64),
    client: Cpu,
    client_threads: HashMap<String, (Cpu, usize)>,
    rx: u64,
    tx: u64,
    server_drops: u64,
    sip_drops: u64,
    client_drops: u64,
    others: (f64, f64),
    stolen: f64,
}

/// The host paused this VM during the window: more than a twentieth of a core stolen,
/// or the bench's own 1 s progress tick more than 1.5 s late (a pause shows as both).
fn stalled(stolen_cores: f64, longest_tick_s: f64) -> bool {
    stolen_cores > 0.05 || longest_tick_s > 1.5
}

/// Ports the drop counters tell apart: hotline's RTP range and SIP port, the client's.
struct Ports {
    rtp: (u16, u16),
    sip: u16,
    client: [u16; 2],
}

fn snap(sh: &Shared, pid: u32, p: &Ports, perf: Option<u32>) -> Snap {
    let not_rtp = [p.sip, p.client[0], p.client[1]];
    let udp = procfs::udp_table();
    Snap {
        ns: sh.ns(),
        cpu: procfs::cpu(pid).unwrap_or_default(),
        threads: procfs::threads(pid),
        ctx: procfs::ctx_switches(pid),
        client: procfs::self_cpu(),
        client_threads: procfs::threads(std::process::id()),
        rx: sh.rx_packets.load(Ordering::Relaxed),
        tx: sh.tx_packets.load(Ordering::Relaxed),
        server_drops: procfs::udp_drops_in(&udp, p.rtp.0, p.rtp.1, &not_rtp).0,
        sip_drops: procfs::udp_drops_in(&udp, p.sip, p.sip, &[]).0,
        client_drops: procfs::udp_drops_in(&udp, p.client[0], p.client[0], &[]).0
            + procfs::udp_drops_in(&udp, p.client[1], p.client[1], &[]).0,
        others: procfs::others(&[pid, std::process::id(), perf.unwrap_or(0)]),
        stolen: procfs::stolen(),
    }
}

fn thread_cpu(a: &Snap, b: &Snap, server: bool) -> Vec<Value> {
    let (ta, tb) = if server {
        (&a.threads, &b.threads)
    } else {
        (&a.client_threads, &b.client_threads)
    };
    let secs = (b.ns - a.ns) as f64 / 1e9;
    let mut v: Vec<(String, Cpu, usize)> = tb
        .iter()
        .map(|(name, (c, n))| {
            let before = ta.get(name).map(|x| x.0).unwrap_or_default();
            (name.clone(), c.minus(&before), *n)
        })
        .filter(|(_, c, _)| c.total() > 0.0)
        .collect();
    v.sort_by(|x, y| y.1.total().total_cmp(&x.1.total()));
    v.into_iter()
        .map(|(name, c, n)| {
            json!({ "thread": name, "count": n, "user_cores": c.user / secs, "sys_cores": c.sys / secs })
        })
        .collect()
}

/// `perf` attached to hotline for the window.
struct Perf {
    child: Child,
    out: PathBuf,
    stat: bool,
}

const PERF_EVENTS: &[&str] = &[
    "task-clock",
    "context-switches",
    "cpu-migrations",
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_sendto",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_futex",
    "syscalls:sys_enter_write",
    "syscalls:sys_enter_read",
    "syscalls:sys_enter_sched_yield",
];

impl Perf {
    fn stat(pid: u32, dir: &Path) -> Option<Perf> {
        let out = dir.join("perf-stat.csv");
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-o"])
            .arg(&out)
            .args(["-e", &PERF_EVENTS.join(",")])
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Perf {
            child,
            out,
            stat: true,
        })
    }

    fn record(pid: u32, out: &Path) -> Option<Perf> {
        let child = Command::new("perf")
            .args(["record", "-g", "-F", "499", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Perf {
            child,
            out: out.to_owned(),
            stat: false,
        })
    }

    /// SIGINT ends the count; the CSV says event counts.
    fn finish(mut self) -> BTreeMap<String, f64> {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        let mut m = BTreeMap::new();
        if self.stat {
            for l in std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
            {
                let c: Vec<&str> = l.split(',').collect();
                if c.len() > 2
                    && let Ok(v) = c[0].parse::<f64>()
                {
                    m.insert(c[2].to_owned(), v);
                }
            }
        }
        m
    }
}

fn main() {
    let a = Args::parse();
    let result = if let Some(bare) = &a.beside_bare {
        bare_beside_floor(&a, bare)
    } else if a.metrics == MetricsMode::Both {
        compare_metrics(&a)
    } else {
        suite::run(&a)
    };
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

/// `--beside-bare`: the CPU verdict's rule tried on a bare sender (`floor::beside_bare`).
fn bare_beside_floor(a: &Args, bare: &str) -> Result<(), String> {
    let method = floor::Method::by_name(bare).ok_or_else(|| {
        let names: Vec<&str> = floor::Method::ALL.iter().map(|m| m.name()).collect();
        format!("--beside-bare {bare:?}: one of {names:?}")
    })?;
    let sockets = a.calls.unwrap_or(a.goal_calls / 2);
    let senders = floor::Senders {
        sockets,
        threads: threads_in_use(a, sockets),
        secs: a.beside_secs,
        realtime: media_realtime(a),
    };
    let bare_threads = a.bare_threads.unwrap_or(senders.threads);
    eprintln!(
        "load: a bare {bare} sender from {} sockets in {bare_threads} thread(s), the floor's methods beside it from {} thread(s), {} round(s) of {} s",
        senders.sockets, senders.threads, a.beside_rounds, a.beside_secs
    );
    let v = floor::beside_bare(method, bare_threads, senders, a.beside_rounds)?;
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    for m in v["per_method"].as_array().into_iter().flatten() {
        println!(
            "beside     {:<30} floor {:6.2} µs/packet, bare {bare} {:6.2} over the same seconds ({:.2}×), {} of {} round(s) counted",
            m["method"].as_str().unwrap_or("?"),
            n(m, "/us_per_packet/total"),
            n(m, "/hotline_us_per_packet"),
            n(m, "/ratio"),
            m["rounds_counted"],
            v["rounds"],
        );
    }
    println!(
        "rule       the bare {bare} sender over the seconds of the cheapest method ({}): {:.2}× (hotline's verdict: ≤ {}×)",
        v.pointer("/best/method")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        n(&v, "/best/ratio"),
        suite::FLOOR_RATIO,
    );
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// The same bench with metrics off, then on: what collecting them costs per packet.
fn compare_metrics(a: &Args) -> Result<(), String> {
    let mut reports = Vec::new();
    for mode in [MetricsMode::Off, MetricsMode::On] {
        eprintln!("load: run with metrics {mode:?}");
        let one = Args {
            metrics: mode,
            json: None,
            ..a.clone()
        };
        reports.push(run(&one)?);
    }
    let us = |r: &Value, k: &str| {
        r.pointer(&format!("/hotline/us_per_packet/{k}"))
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    println!("\nCPU per RTP packet, metrics off → on (same bench, one after the other):");
    for k in ["user", "sys", "total"] {
        let (off, on) = (us(&reports[0], k), us(&reports[1], k));
        println!(
            "  {k:<5}  {off:.3} µs → {on:.3} µs  ({:+.1} %)",
            (on - off) / off * 100.0
        );
    }
    if let Some(p) = &a.json {
        let both = json!({ "metrics_off": reports[0], "metrics_on": reports[1] });
        std::fs::write(p, serde_json::to_string_pretty(&both).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("load: both reports written to {}", p.display());
    }
    Ok(())
}

fn run(a: &Args) -> Result<Value, String> {
    let (nofile, nofile_max) = procfs::raise_nofile();
    let (lo, hi) = a
        .rtp_ports
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
        .ok_or("--rtp-ports LO-HI")?;
    let fp = Arc::new(audio::Fingerprints::load(&repo("prompts"))?);
    if fp.longest_inner_pause as u64 * audio::FRAME_NS >= 1_500_000_000 {
        return Err("a prompt has a pause of 1.5 s or more: the marks would be misread".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("hotline-load-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = tmp.path().to_path_buf();
    let mut server = Server::start(a, &dir)?;
    eprintln!(
        "load: hotline pid {} on {} (RTP {lo}-{hi}), data {}, nofile {nofile}/{nofile_max}",
        server.pid,
        server.sip,
        server.data.display()
    );

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window: AtomicU8::new(0),
        drain: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        rx_packets: AtomicU64::new(0),
        tx_packets: AtomicU64::new(0),
        calls_up: AtomicI64::new(0),
        max_up: AtomicI64::new(0),
        answered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_resolved: AtomicU64::new(0),
    });
    let sip_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    set_buffers(&sip_sock, 4 << 20);
    let sip_port = sip_sock.local_addr().map_err(|e| e.to_string())?.port();
    let rtp_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    // 5,000 calls send 250,000 packets/s here: a few hundred ms of them.
    set_buffers(&rtp_sock, 64 << 20);
    let rtp_addr = match rtp_sock.local_addr().map_err(|e| e.to_string())? {
        std::net::SocketAddr::V4(v) => v,
        _ => return Err("RTP socket not IPv4".into()),
    };
    let rtp_sock = Arc::new(rtp_sock);
    let ports = Ports {
        rtp: (lo, hi),
        sip: server.sip.port(),
        client: [sip_port, rtp_addr.port()],
    };

    let run_start = snap(&shared, server.pid, &ports, None);
    let lines = a.calls.unwrap_or(a.goal_calls);
    let pct = a.tickets.clamp(0.0, 100.0) / 100.0;
    // Ticket lines spread evenly among the others.
    let ticket_line: Vec<bool> = (0..lines)
        .map(|i| ((i + 1) as f64 * pct).floor() > (i as f64 * pct).floor())
        .collect();
    let ticket_lines = ticket_line.iter().filter(|t| **t).count();
    let run_id: u32 = rand::random();
    let (to_rx, rx_ctl) = mpsc::channel();
    let (to_tx, tx_ctl) = mpsc::channel();
    let (hang_tx, hang_rx) = mpsc::channel();

    let rx = {
        let setup = media::RxSetup {
            sock: rtp_sock.clone(),
            ctl: rx_ctl,
            to_tx: to_tx.clone(),
            hangups: hang_tx,
            fp: fp.clone(),
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("load-rtp-rx".into())
            .spawn(move || media::rx_thread(setup))
            .map_err(|e| e.to_string())?
    };
    let tx = {
        let setup = media::TxSetup {
            sock: rtp_sock.clone(),
            ctl: tx_ctl,
            shared: shared.clone(),
            rtp: a.rtp,
        };
        std::thread::Builder::new()
            .name("load-rtp-tx".into())
            .spawn(move || media::tx_thread(setup))
            .map_err(|e| e.to_string())?
    };
    let sip = {
        let setup = sip::SipSetup {
            sock: sip_sock,
            plan: sip::SipPlan {
                lines,
                ramp: a.ramp,
                ticket_line,
                server: server.sip,
                rtp: rtp_addr,
                run: run_id,
                t1: Duration::from_millis(500),
                user: "property".into(),
            },
            shared: shared.clone(),
            to_rx,
            to_tx,
            hangups: hang_rx,
        };
        std::thread::Builder::new()
            .name("load-sip".into())
            .spawn(move || sip::sip_thread(setup))
            .map_err(|e| e.to_string())?
    };

    eprintln!(
        "load: {lines} lines ({ticket_lines} filing tickets), ramp {}/s, hold {} s, client RTP {}",
        a.ramp,
        a.hold,
        if a.rtp { "on" } else { "off (keys only)" }
    );
    let ramp_s = lines as f64 / a.ramp.max(0.001);
    let mut snaps: Vec<Snap> = Vec::new();
    let mut open_at: Option<u64> = None;
    let mut perf: Option<Perf> = None;
    let mut health = HashMap::new();
    let mut rss_kb = 0;
    let mut hwm_kb = 0;
    let mut fds = 0;
    let mut server_nofile = None;
    let mut up_min = i64::MAX;
    let mut up_max = 0;
    let mut died = None;
    let mut last_print = 0u64;
    // The longest stretch between two of the progress lines inside the window.
    let mut longest_tick = 0u64;
    let mut last_rx = 0u64;
    let mut last_cpu = Cpu::default();
    let mut not_all_up = false;
    let mut beside: Option<std::thread::JoinHandle<Result<Value, String>>> = None;
    while !sip.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let now = shared.ns();
        if !server.alive() {
            died = Some(server.log_tail(40));
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        let w = shared.window.load(Ordering::Relaxed);
        let up = shared.calls_up.load(Ordering::Relaxed);
        if w == 0 && open_at.is_none() {
            let all = shared.first_resolved.load(Ordering::Relaxed) >= lines as u64;
            let late = now as f64 / 1e9 > ramp_s + 60.0;
            if all || late {
                not_all_up = !all;
                // A second for the last calls' greetings to start.
                open_at = Some(now + 1_000_000_000);
            }
        }
        if w == 0 && open_at.is_some_and(|t| now >= t) {
            snaps.push(snap(
                &shared,
                server.pid,
                &ports,
                perf.as_ref().map(|p| p.child.id()),
            ));
            shared.window.store(WINDOW_OPEN, Ordering::Relaxed);
            if a.perf_stat {
                perf = Perf::stat(server.pid, &dir);
            } else if let Some(out) = &a.perf_record {
                perf = Perf::record(server.pid, out);
            }
            eprintln!("load: window open, {up} calls up");
        }
        if w == WINDOW_OPEN && a.floor_beside && beside.is_none() {
            let (pid, sh) = (server.pid, shared.clone());
            let (sockets, threads, secs, rounds) = (
                lines,
                threads_in_use(a, lines),
                a.beside_secs,
                a.beside_rounds,
            );
            let realtime = media_realtime(a);
            eprintln!(
                "load: floor beside hotline: {sockets} sockets from {threads} threads to a reader of its own, {secs} s per method, {rounds} round(s)"
            );
            beside = Some(std::thread::spawn(move || {
                let senders = floor::Senders {
                    sockets,
                    threads,
                    secs,
                    realtime,
                };
                floor::beside(senders, rounds, "hotline", || {
                    let cpu = procfs::cpu(pid).map_or(f64::NAN, |c| c.total());
                    let pkts = sh.rx_packets.load(Ordering::Relaxed)
                        + sh.tx_packets.load(Ordering::Relaxed);
                    (cpu, pkts)
                })
            }));
        }
        if w == WINDOW_OPEN {
            up_min = up_min.min(up);
            up_max = up_max.max(up);
            // The floor beside hotline keeps the window open until it has sent.
            let floor_done = beside.as_ref().is_none_or(|h| h.is_finished());
            if now >= snaps[0].ns + (a.hold * 1e9) as u64 && floor_done {
                rss_kb = procfs::status_kb(server.pid, "VmRSS").unwrap_or(0);
                fds = procfs::fd_count(server.pid);
                server_nofile = procfs::nofile(server.pid);
                health = server.health();
                snaps.push(snap(
                    &shared,
                    server.pid,
                    &ports,
                    perf.as_ref().map(|p| p.child.id()),
                ));
                shared.window.store(WINDOW_CLOSED, Ordering::Relaxed);
                shared.drain.store(true, Ordering::Relaxed);
                eprintln!("load: window closed, {up} calls up; hanging up");
            }
        }
        if now >= last_print + 1_000_000_000 {
            if w == WINDOW_OPEN && last_print > 0 {
                longest_tick = longest_tick.max(now - last_print);
            }
            let rxp = shared.rx_packets.load(Ordering::Relaxed);
            let cpu = procfs::cpu(server.pid).unwrap_or_default();
            let dt = (now - last_print) as f64 / 1e9;
            if last_print > 0 {
                eprintln!(
                    "  t={:5.1}s up={up:5} answered={:6} failed={:4} rx={:7.0}/s hotline cpu user {:.2} sys {:.2} cores",
                    now as f64 / 1e9,
                    shared.answered.load(Ordering::Relaxed),
                    shared.failed.load(Ordering::Relaxed),
                    (rxp - last_rx) as f64 / dt,
                    (cpu.user - last_cpu.user) / dt,
                    (cpu.sys - last_cpu.sys) / dt,
                );
            }
            last_rx = rxp;
            last_cpu = cpu;
            last_print = now;
        }
    }
    hwm_kb = hwm_kb.max(procfs::status_kb(server.pid, "VmHWM").unwrap_or(0));
    let perf_counts = perf.map(Perf::finish).unwrap_or_default();
    let beside = match beside.map(|h| h.join()) {
        None => Value::Null,
        Some(Ok(Ok(v))) => v,
        Some(Ok(Err(e))) => json!({ "error": e }),
        Some(Err(_)) => json!({ "error": "the floor beside hotline panicked" }),
    };
    let sipr = sip.join().map_err(|_| "SIP thread panicked")?;
    let run_end = snap(&shared, server.pid, &ports, None);
    // In-flight media of the last calls.
    std::thread::sleep(Duration::from_millis(200));
    shared.stop.store(true, Ordering::Relaxed);
    let rxr = rx.join().map_err(|_| "RTP receiver panicked")?;
    let txr = tx.join().map_err(|_| "RTP sender panicked")?;
    if let Some(tail) = died {
        return Err(format!("hotline died during the run:\n{tail}"));
    }

    // ---- the store: every ticket the caller was thanked for, every call's record ----
    let store = hotline::store::Store::open_read_only(&server.data).map_err(|e| e.to_string())?;
    let answered_slots = sipr.slots.iter().filter(|s| s.1).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let r = store
            .list_calls(&hotline::store::CallQuery {
                last: None,
                call_id: None,
            })
            .map_err(|e| e.to_string())?;
        if r.len() as u64 >= sipr.attempted || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let tickets = store.list_tickets(None).map_err(|e| e.to_string())?;
    let mut by_call: HashMap<&str, usize> = HashMap::new();
    for t in &tickets {
        *by_call.entry(t.call_id.as_str()).or_default() += 1;
    }
    let record_ids: std::collections::HashSet<&str> =
        records.iter().map(|r| r.call_id.as_str()).collect();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        *outcomes.entry(r.outcome.clone()).or_default() += 1;
    }
    let missing_records = (0..sipr.slots.len() as u32)
        .filter(|&s| !record_ids.contains(sip::call_id(run_id, s).as_str()))
        .count();
    let mut confirmed = 0;
    let mut lost = Vec::new();
    let mut keyed_unconfirmed = 0;
    let mut keyed_unconfirmed_filed = 0;
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &rxr.tickets {
        let cid = sip::call_id(run_id, t.slot);
        let n = by_call.get(cid.as_str()).copied().unwrap_or(0);
        if t.confirmed {
            confirmed += 1;
            if n == 0 {
                lost.push(cid);
            }
        } else if t.keyed {
            keyed_unconfirmed += 1;
            keyed_unconfirmed_filed += usize::from(n > 0);
        }
        if let Some(why) = t.failure {
            *failures.entry(why).or_default() += 1;
        }
    }
    let silent_with_tickets = sipr
        .slots
        .iter()
        .enumerate()
        .filter(|(s, k)| {
            k.0 == Kind::Silent && by_call.contains_key(sip::call_id(run_id, *s as u32).as_str())
        })
        .count();
    let log_lines = server.log_lines();
    let overload_log = server.overload_log(8);
    let exit = server.stop();

    // ---- the report ----
    let (a0, b0) = match (snaps.first(), snaps.get(1)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err("the measuring window never opened and closed".into()),
    };
    let secs = (b0.ns - a0.ns) as f64 / 1e9;
    let cpu = b0.cpu.minus(&a0.cpu);
    let client = b0.client.minus(&a0.client);
    let others = b0.others.0 - a0.others.0;
    let softirqd = b0.others.1 - a0.others.1;
    let stolen = b0.stolen - a0.stolen;
    let rx_pkts = b0.rx - a0.rx;
    let tx_pkts = b0.tx - a0.tx;
    let pkts = (rx_pkts + tx_pkts).max(1) as f64;
    let us = |s: f64| s * 1e6 / pkts;
    let ctx = (b0.ctx.0 - a0.ctx.0, b0.ctx.1 - a0.ctx.1);
    let in_window = |m: &media::Mark| m.from_ns >= a0.ns && m.to_ns <= b0.ns;
    let mark_names = [
        "greeting → re-prompt",
        "re-prompt → farewell",
        "farewell → BYE",
    ];
    let mut marks_json = Vec::new();
    let mut all_window: Vec<f64> = Vec::new();
    for (k, name) in mark_names.iter().enumerate() {
        let mut w: Vec<f64> = rxr
            .marks
            .iter()
            .filter(|m| m.which as usize == k && in_window(m))
            .map(|m| m.err_ns as f64 / 1e6)
            .collect();
        let mut all: Vec<f64> = rxr
            .marks
            .iter()
            .filter(|m| m.which as usize == k)
            .map(|m| m.err_ns as f64 / 1e6)
            .collect();
        all_window.extend(&w);
        marks_json.push(json!({
            "mark": name,
            "in_window": summary_ms(&mut w, 50.0),
            "all": summary_ms(&mut all, 50.0),
        }));
    }
    let marks_total = summary_ms(&mut all_window, 50.0);
    let mut jitter: Vec<f64> = rxr.jitter_ns.iter().map(|j| j / 1e6).collect();
    jitter.sort_by(f64::total_cmp);
    let mut max_gaps: Vec<f64> = rxr.max_gap_ns.iter().map(|j| j / 1e6).collect();
    let max_gap_json = summary_ms(&mut max_gaps, 100.0);
    let mut setup = sipr.setup_ms.clone();
    let setup_json = summary_ms(&mut setup, 1e9);
    let mut sequences: Vec<(&String, &u64)> = rxr.sequences.iter().collect();
    sequences.sort_by(|x, y| y.1.cmp(x.1));

    let perf_json: Value = if perf_counts.is_empty() {
        Value::Null
    } else {
        let per = |k: &str| perf_counts.get(k).map(|v| v / pkts);
        json!({
            "counts": perf_counts,
            "per_packet": {
                "syscalls": per("raw_syscalls:sys_enter"),
                "sendto": per("syscalls:sys_enter_sendto"),
                "recvfrom": per("syscalls:sys_enter_recvfrom"),
                "epoll_wait": per("syscalls:sys_enter_epoll_wait"),
                "futex": per("syscalls:sys_enter_futex"),
                "context_switches": per("context-switches"),
            }
        })
    };
    let verdict = json!({
        // Lines call again at once, but a call's set-up takes a moment: a few per cent
        // of the lines are between calls at any time.
        "concurrent_calls": sipr.max_up >= lines as i64 && up_min >= (lines as i64 * 95 / 100),
        "cpu_per_packet_2us": us(cpu.total()) <= 2.0,
        "marks_within_50ms": marks_total["outside_tolerance"].as_u64() == Some(0) && marks_total["count"].as_u64().unwrap_or(0) > 0,
        "zero_tickets_lost": lost.is_empty() && confirmed > 0,
    });
    let out = json!({
        "args": {
            "calls": lines, "ramp": a.ramp, "hold": a.hold, "rtp": a.rtp, "tickets_pct": a.tickets,
            "rtp_ports": a.rtp_ports, "nofile": nofile,
        },
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "calls": {
            "attempted": sipr.attempted,
            "answered": sipr.answered,
            "failed": sipr.failed.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "retry_after_s": sipr.retry_after_s.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "max_concurrent": sipr.max_up,
            "concurrent_in_window": { "min": up_min, "max": up_max },
            "not_every_line_up": not_all_up,
            "ended_by_hotline": sipr.ended_by_hotline,
            "ended_by_client": sipr.ended_by_client,
            "bye_timeouts": sipr.bye_timeouts,
            "bye_refused": sipr.bye_refused.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "invite_retransmits": sipr.invite_retransmits,
            "ok_repeats": sipr.ok_repeats,
            "unfinished": sipr.unfinished,
            "stray_sip": sipr.stray,
            "setup": setup_json,
            "hotline_healthz": health,
        },
        "window_s": secs,
        "floor_beside": beside,
        "hotline": {
            "cpu_cores": { "user": cpu.user / secs, "sys": cpu.sys / secs, "total": cpu.total() / secs },
            "rtp_packets": { "sent_by_hotline": rx_pkts, "received_by_hotline": tx_pkts, "per_s": pkts / secs },
            "us_per_packet": { "user": us(cpu.user), "sys": us(cpu.sys), "total": us(cpu.total()) },
            "threads": thread_cpu(a0, b0, true),
            "context_switches": { "voluntary": ctx.0, "involuntary": ctx.1, "per_packet": (ctx.0 + ctx.1) as f64 / pkts },
            "rtp_socket_drops": b0.server_drops - a0.server_drops,
            "sip_socket_drops": b0.sip_drops - a0.sip_drops,
            "whole_run": {
                "rtp_socket_drops": run_end.server_drops - run_start.server_drops,
                "sip_socket_drops": run_end.sip_drops - run_start.sip_drops,
                "cpu_s": run_end.cpu.minus(&run_start.cpu).total(),
                "s": (run_end.ns - run_start.ns) as f64 / 1e9,
            },
            "vm_rss_mb": rss_kb as f64 / 1024.0,
            "vm_hwm_mb": hwm_kb as f64 / 1024.0,
            "fds": fds,
            "nofile": server_nofile,
            "log_lines": log_lines,
            "overload_log": overload_log,
            "exit": exit.map(|e| e.to_string()),
            "perf": perf_json,
        },
        // Anything else that ran (another build, tests): above ~0.1 core the run is
        // contaminated and its figures are not the server's.
        "other_processes_cpu_cores": others / secs,
        "ksoftirqd_cpu_cores": softirqd / secs,
        // The host paused this VM (one 3 s pause once left every call a 300 ms gap
        // and the client 914,651 datagrams behind): the figures are the host's.
        "stolen_cpu_cores": stolen / secs,
        "longest_tick_s": longest_tick as f64 / 1e9,
        "client": {
            "cpu_cores": { "user": client.user / secs, "sys": client.sys / secs },
            "threads": thread_cpu(a0, b0, false),
            "socket_drops": b0.client_drops - a0.client_drops,
            "tick_lag": txr.lag.json_ms(),
            "skipped_ms": txr.skipped_ms,
            // The client's sender fell behind its 20 ms schedule: what hotline received
            // was not a steady 50 packets/s per call.
            "limited": txr.lag.quantile(0.99) > 5_000_000 || txr.skipped_ms > 0,
            "send_errors": txr.send_errors,
            "receive_errors": rxr.receive_errors,
            "packets_per_batch": rxr.packets as f64 / rxr.batches.max(1) as f64,
        },
        "marks": marks_json,
        "marks_in_window": marks_total,
        "heard": sequences.iter().take(8).map(|(s, n)| json!({ "sequence": s, "calls": n })).collect::<Vec<_>>(),
        "unidentified_prompt_edges": rxr.unidentified_edges,
        "rtp_from_hotline": {
            "lateness": rxr.lateness.json_ms(),
            "jitter_ms": { "calls": jitter.len(), "p50": report::quantile(&jitter, 0.5), "p99": report::quantile(&jitter, 0.99), "max": jitter.last().copied() },
            "gaps": rxr.gaps.json_ms(),
            "longest_gap_per_call": max_gap_json,
            "lost_in_window": rxr.lost_window,
            "lost_total": rxr.lost_total,
            "skipped_by_pacer_in_window": rxr.skipped_window,
            "skipped_share_in_window": rxr.skipped_window as f64 / (rx_pkts + rxr.skipped_window).max(1) as f64,
            "skipped_by_pacer_total": rxr.skipped_total,
            "out_of_order": rxr.out_of_order,
            "wall_clock_steps": rxr.clock_steps,
            "unmatched": rxr.unmatched,
        },
        "tickets": {
            "calls": rxr.tickets.len(),
            "confirmed": confirmed,
            "lost": lost.len(),
            "lost_call_ids": lost.iter().take(20).collect::<Vec<_>>(),
            "keyed_not_confirmed": keyed_unconfirmed,
            "keyed_not_confirmed_but_filed": keyed_unconfirmed_filed,
            "in_store": tickets.len(),
            "from_silent_calls": silent_with_tickets,
            "failures": failures,
            "keys_sent": txr.keys,
        },
        "records": {
            "calls": sipr.slots.len(),
            "answered": answered_slots,
            "in_store": records.len(),
            "missing": missing_records,
            "outcomes": outcomes,
        },
        "verdict": verdict,
    });
    print_report(&out);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&out).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("load: report written to {}", p.display());
    }
    if a.keep {
        let kept = tmp.keep();
        eprintln!("load: data kept in {}", kept.display());
    }
    Ok(out)
}

fn print_report(r: &Value) {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let n = |p: &str| g(p).as_f64().unwrap_or(f64::NAN);
    let ok = |p: &str| {
        if g(p).as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        }
    };
    println!();
    println!(
        "hotline load: {} calls, ramp {}/s, hold {} s, client RTP {}, {}% ticket lines, {} CPUs",
        g("/args/calls"),
        g("/args/ramp"),
        g("/args/hold"),
        if g("/args/rtp").as_bool() == Some(true) {
            "on"
        } else {
            "off"
        },
        g("/args/tickets_pct"),
        g("/machine/cpus"),
    );
    println!(
        "calls      attempted {}  answered {}  failed {} (redialled after {} s)  max concurrent {}  in window {}..{}  (hotline: {} in flows)",
        g("/calls/attempted"),
        g("/calls/answered"),
        g("/calls/failed"),
        g("/calls/retry_after_s"),
        g("/calls/max_concurrent"),
        g("/calls/concurrent_in_window/min"),
        g("/calls/concurrent_in_window/max"),
        g("/calls/hotline_healthz/calls_in_flows"),
    );
    println!(
        "           setup (INVITE→200) median {:.1} ms  p99 {:.1} ms  max {:.1} ms; INVITE retransmits {}, 200 repeats {}, BYE timeouts {}",
        n("/calls/setup/median_ms"),
        n("/calls/setup/p99_ms"),
        n("/calls/setup/max_ms"),
        g("/calls/invite_retransmits"),
        g("/calls/ok_repeats"),
        g("/calls/bye_timeouts"),
    );
    println!(
        "window     {:.1} s; RTP {:.0} packets/s ({} sent by hotline, {} received)",
        n("/window_s"),
        n("/hotline/rtp_packets/per_s"),
        g("/hotline/rtp_packets/sent_by_hotline"),
        g("/hotline/rtp_packets/received_by_hotline"),
    );
    println!(
        "hotline    CPU {:.2} cores (user {:.2}, sys {:.2});  per RTP packet {:.2} µs (user {:.2}, sys {:.2})",
        n("/hotline/cpu_cores/total"),
        n("/hotline/cpu_cores/user"),
        n("/hotline/cpu_cores/sys"),
        n("/hotline/us_per_packet/total"),
        n("/hotline/us_per_packet/user"),
        n("/hotline/us_per_packet/sys"),
    );
    if let Some(ts) = g("/hotline/threads").as_array() {
        let parts: Vec<String> = ts
            .iter()
            .take(5)
            .map(|t| {
                format!(
                    "{}×{} {:.2}+{:.2}",
                    t["thread"].as_str().unwrap_or("?"),
                    t["count"],
                    f(t, "user_cores"),
                    f(t, "sys_cores")
                )
            })
            .collect();
        println!("           threads (user+sys cores): {}", parts.join(", "));
    }
    println!(
        "           context switches/packet {:.3}; socket drops RTP {} SIP {} (whole run {} and {}); RSS {:.0} MB (peak {:.0}); fds {} of {}; log lines {}",
        n("/hotline/context_switches/per_packet"),
        g("/hotline/rtp_socket_drops"),
        g("/hotline/sip_socket_drops"),
        g("/hotline/whole_run/rtp_socket_drops"),
        g("/hotline/whole_run/sip_socket_drops"),
        n("/hotline/vm_rss_mb"),
        n("/hotline/vm_hwm_mb"),
        g("/hotline/fds"),
        g("/hotline/nofile"),
        g("/hotline/log_lines"),
    );
    for line in g("/hotline/overload_log").as_array().into_iter().flatten() {
        println!("           overload: {}", line.as_str().unwrap_or_default());
    }
    if let Some(p) = g("/hotline/perf/per_packet").as_object() {
        let parts: Vec<String> = p
            .iter()
            .map(|(k, v)| format!("{k} {:.3}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        println!("           perf per packet: {}", parts.join(", "));
    }
    println!(
        "client     CPU user {:.2} sys {:.2} cores; tick lag p99 {:.2} ms max {:.2} ms, skipped {} ms{}; socket drops {}; {:.1} packets/recvmmsg",
        n("/client/cpu_cores/user"),
        n("/client/cpu_cores/sys"),
        n("/client/tick_lag/p99_ms"),
        n("/client/tick_lag/max_ms"),
        g("/client/skipped_ms"),
        if g("/client/limited").as_bool() == Some(true) {
            "  ** CLIENT-LIMITED **"
        } else {
            ""
        },
        g("/client/socket_drops"),
        n("/client/packets_per_batch"),
    );
    let others = n("/other_processes_cpu_cores");
    let stolen = n("/stolen_cpu_cores");
    let tick = n("/longest_tick_s");
    println!(
        "machine    other processes {:.2} cores, ksoftirqd {:.2} cores, stolen by the host {:.2} cores; the bench's 1 s tick at most {:.1} s apart{}{}",
        others,
        n("/ksoftirqd_cpu_cores"),
        stolen,
        tick,
        if others > 0.1 {
            "  ** CONTAMINATED: something else ran; run again **"
        } else {
            ""
        },
        if stalled(stolen, tick) {
            "  ** STALLED: the host paused this machine; run again **"
        } else {
            ""
        }
    );
    println!("P-SIL marks as heard, measured − 5 s (in the window; all in parentheses):");
    if let Some(ms) = g("/marks").as_array() {
        for m in ms {
            let w = &m["in_window"];
            let all = &m["all"];
            println!(
                "  {:24} n {:5}  median {:+7.1} ms  p99 {:+7.1}  max {:+7.1}  min {:+7.1}  outside ±50 ms {:4}   (n {}, outside {})",
                m["mark"].as_str().unwrap_or(""),
                w["count"],
                f(w, "median_ms"),
                f(w, "p99_ms"),
                f(w, "max_ms"),
                f(w, "min_ms"),
                w["outside_tolerance"],
                all["count"],
                all["outside_tolerance"],
            );
        }
    }
    if let Some(h) = g("/heard").as_array() {
        for s in h.iter().take(4) {
            println!(
                "  heard by {:5}: {}",
                s["calls"],
                s["sequence"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "RTP        lateness p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms; jitter p99 {:.2} ms; lost {} (window) {} (all); pacer skipped {} ({:.1}% of frames in the window)",
        n("/rtp_from_hotline/lateness/p50_ms"),
        n("/rtp_from_hotline/lateness/p99_ms"),
        n("/rtp_from_hotline/lateness/p999_ms"),
        n("/rtp_from_hotline/lateness/max_ms"),
        n("/rtp_from_hotline/jitter_ms/p99"),
        g("/rtp_from_hotline/lost_in_window"),
        g("/rtp_from_hotline/lost_total"),
        g("/rtp_from_hotline/skipped_by_pacer_total"),
        n("/rtp_from_hotline/skipped_share_in_window") * 100.0,
    );
    if n("/rtp_from_hotline/wall_clock_steps") > 0.0 {
        println!(
            "           the wall clock stepped {} time(s) against the monotonic one (a host correcting the VM's clock): those reads' datagrams were timed on arrival",
            g("/rtp_from_hotline/wall_clock_steps"),
        );
    }
    println!(
        "           gaps between a call's packets p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms; longest gap per call median {:.1} ms p99 {:.1} ms, {} calls over 100 ms",
        n("/rtp_from_hotline/gaps/p99_ms"),
        n("/rtp_from_hotline/gaps/p999_ms"),
        n("/rtp_from_hotline/gaps/max_ms"),
        n("/rtp_from_hotline/longest_gap_per_call/median_ms"),
        n("/rtp_from_hotline/longest_gap_per_call/p99_ms"),
        g("/rtp_from_hotline/longest_gap_per_call/outside_tolerance"),
    );
    println!(
        "tickets    {} ticket calls: {} confirmed, {} LOST; {} keyed but not thanked ({} of them filed); {} in store; failures {}",
        g("/tickets/calls"),
        g("/tickets/confirmed"),
        g("/tickets/lost"),
        g("/tickets/keyed_not_confirmed"),
        g("/tickets/keyed_not_confirmed_but_filed"),
        g("/tickets/in_store"),
        g("/tickets/failures"),
    );
    println!(
        "records    {} calls, {} records, {} missing; outcomes {}",
        g("/records/calls"),
        g("/records/in_store"),
        g("/records/missing"),
        g("/records/outcomes"),
    );
    println!(
        "verdict    {} concurrent: {}   ≤2 µs/packet: {}   marks ±50 ms: {}   zero tickets lost: {}",
        g("/args/calls"),
        ok("/verdict/concurrent_calls"),
        ok("/verdict/cpu_per_packet_2us"),
        ok("/verdict/marks_within_50ms"),
        ok("/verdict/zero_tickets_lost"),
    );
}
