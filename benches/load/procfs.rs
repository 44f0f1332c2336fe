//! What /proc says about a process: CPU (user and system, per thread), memory, file
//! descriptors, context switches, and UDP sockets' drop counters.
use std::collections::HashMap;
use std::fs;

/// Clock ticks per second of /proc/*/stat times.
pub fn ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The fields after `comm`: field 3 (state) is index 0.
fn stat_fields(path: &str) -> Option<(String, Vec<u64>)> {
    let s = fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_owned();
    let rest: Vec<u64> = s[close + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((comm, rest))
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// Seconds.
    pub user: f64,
    pub sys: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.user + self.sys
    }

    pub fn minus(&self, o: &Cpu) -> Cpu {
        Cpu {
            user: self.user - o.user,
            sys: self.sys - o.sys,
        }
    }
}

/// utime and stime of a process (all its threads, including ended ones).
pub fn cpu(pid: u32) -> Option<Cpu> {
    let (_, f) = stat_fields(&format!("/proc/{pid}/stat"))?;
    let hz = ticks_per_s();
    Some(Cpu {
        user: *f.get(11)? as f64 / hz,
        sys: *f.get(12)? as f64 / hz,
    })
}

/// Per thread: name → summed CPU of the threads of that name.
pub fn threads(pid: u32) -> HashMap<String, (Cpu, usize)> {
    let mut out: HashMap<String, (Cpu, usize)> = HashMap::new();
    let hz = ticks_per_s();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let tid = e.file_name().to_string_lossy().into_owned();
        if let Some((comm, f)) = stat_fields(&format!("/proc/{pid}/task/{tid}/stat")) {
            let c = Cpu {
                user: f.get(11).copied().unwrap_or(0) as f64 / hz,
                sys: f.get(12).copied().unwrap_or(0) as f64 / hz,
            };
            let slot = out.entry(comm).or_default();
            slot.0.user += c.user;
            slot.0.sys += c.sys;
            slot.1 += 1;
        }
    }
    out
}

/// Voluntary and involuntary context switches over all threads.
pub fn ctx_switches(pid: u32) -> (u64, u64) {
    let mut v = 0;
    let mut nv = 0;
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for e in dir.flatten() {
        let tid = e.file_name().to_string_lossy().into_owned();
        let Ok(s) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else {
            continue;
        };
        for l in s.lines() {
            let num = || {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if l.starts_with("voluntary_ctxt_switches") {
                v += num();
            } else if l.starts_with("nonvoluntary_ctxt_switches") {
                nv += num();
            }
        }
    }
    (v, nv)
}

/// A `/proc/PID/status` value in kB (VmRSS, VmHWM, ...).
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `/proc/net/udp` once: with 15,000 sockets open the kernel's walk to print it costs
/// ~0.21 s of CPU (four reads 0.85 s, measured 2026-12-05), a burst that the overload
/// judge of the hotline under test sees as a busy machine: a snapshot read it four
/// times as the window opened and closed, and the judge tripped just then on the
/// machine 0.90–0.95 busy, hotline's set-ups 0.02–0.03.
pub fn udp_table() -> String {
    fs::read_to_string("/proc/net/udp").unwrap_or_default()
}

/// Datagrams the kernel dropped on 127.0.0.1 UDP sockets bound in `lo..=hi` but not
/// to `except` (full receive buffers), and how many such sockets there are, from
/// [`udp_table`].
pub fn udp_drops_in(s: &str, lo: u16, hi: u16, except: &[u16]) -> (u64, usize) {
    let mut drops = 0;
    let mut n = 0;
    for l in s.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(port) = f
            .get(1)
            .and_then(|a| a.split(':').nth(1))
            .and_then(|p| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        if (lo..=hi).contains(&port) && !except.contains(&port) {
            n += 1;
            drops += f.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    (drops, n)
}

/// This process's own CPU.
pub fn self_cpu() -> Cpu {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cpu {
        user: s(ru.ru_utime),
        sys: s(ru.ru_stime),
    }
}

/// Raises this process's open-file soft limit to its hard limit; children inherit it.
pub fn raise_nofile() -> (u64, u64) {
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return (0, 0);
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        (r.rlim_cur, r.rlim_max)
    }
}

/// CPU of every other process (utime+stime, plus reaped children's, so a build's
/// finished compiler runs count), and of the kernel's softirq threads (network
/// receive work deferred there is neither hotline's nor the client's).
pub fn others(except: &[u32]) -> (f64, f64) {
    let hz = ticks_per_s();
    let mut other = 0u64;
    let mut softirqd = 0u64;
    let Ok(dir) = fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if except.contains(&pid) {
            continue;
        }
        let Some((comm, f)) = stat_fields(&format!("/proc/{pid}/stat")) else {
            continue;
        };
        let t: u64 = (11..=14).map(|i| f.get(i).copied().unwrap_or(0)).sum();
        if comm.starts_with("ksoftirqd") {
            softirqd += t;
        } else {
            other += t;
        }
    }
    (other as f64 / hz, softirqd as f64 / hz)
}

/// CPU time the host took from this VM (`/proc/stat`'s steal, all CPUs), in seconds:
/// a VM paused by its host stalls every program at once, and a window that holds
/// such a pause measures the host, not hotline.
pub fn stolen() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let steal = stat
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(8))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    steal as f64 / ticks_per_s()
}

/// A process's soft open-file limit.
pub fn nofile(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}
