//! A guard for a server process under test: starts a binary with arguments,
//! waits until it is ready, collects what it prints, and ends it on drop.
//!
//! ```ignore
//! let server = ServerCmd::new(env!("CARGO_BIN_EXE_hotline"))
//!     .args(["serve", "--sip", &sip, "--rtp-ports", &rtp, "--data", data, "--http", &http])
//!     .ready(Ready::TcpPort(http_port))
//!     .start();
//! ```

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// When a started server counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// A TCP connection to 127.0.0.1:port succeeds.
    TcpPort(u16),
    /// Something is bound to UDP 127.0.0.1:port (binding it fails).
    UdpBound(u16),
    /// A line on stderr contains this text.
    StderrContains(String),
    /// A line on stdout contains this text.
    StdoutContains(String),
    /// Just wait this long.
    After(Duration),
}

/// Which stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Captured {
    lines: Mutex<Vec<(Stream, String)>>,
    /// Readers that reached end of file.
    closed: Mutex<usize>,
    closed_cv: Condvar,
    grew: Condvar,
}

/// How to start a server; [`ServerCmd::start`] gives the guard.
pub struct ServerCmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    ready: Vec<Ready>,
    timeout: Duration,
}

impl ServerCmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        ServerCmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            ready: Vec::new(),
            timeout: Duration::from_secs(20),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = Some(d.into());
        self
    }

    /// A readiness check; several are all waited for, in order.
    pub fn ready(mut self, r: Ready) -> Self {
        self.ready.push(r);
        self
    }

    /// How long to wait for readiness (default 20 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Starts the process (in its own process group, stdin closed) and waits
    /// until it is ready. Fails the test, with what it printed, if it cannot
    /// start, exits early or is not ready in time.
    pub fn start(self) -> Server {
        let name = PathBuf::from(&self.program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into());
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {:?}: {e}; {}",
                self.program,
                super::tools::INSTALL_HINT
            )
        });
        let captured = Arc::new(Captured::default());
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        spawn_reader(out, Stream::Stdout, captured.clone());
        spawn_reader(err, Stream::Stderr, captured.clone());
        let mut server = Server {
            name,
            child,
            captured,
            exit: None,
        };
        let deadline = Instant::now() + self.timeout;
        for r in &self.ready {
            if let Err(why) = server.wait_ready(r, deadline) {
                let out = server.output();
                panic!(
                    "{} ({:?} {:?}) not ready: {why}\n--- its output ---\n{out}",
                    server.name, self.program, self.args
                );
            }
        }
        server
    }
}

fn spawn_reader<R: Read + Send + 'static>(r: R, which: Stream, cap: Arc<Captured>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    *cap.closed.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    cap.closed_cv.notify_all();
                    break;
                }
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    cap.lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((which, line));
                    cap.grew.notify_all();
                }
            }
        }
    });
}

/// A running server; SIGTERM (then SIGKILL after 2 s) to its process group on drop.
pub struct Server {
    name: String,
    child: Child,
    captured: Arc<Captured>,
    exit: Option<ExitStatus>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far, stderr lines prefixed with `! `.
    pub fn output(&self) -> String {
        let lines = self
            .captured
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        for (which, l) in lines.iter() {
            if *which == Stream::Stderr {
                s.push_str("! ");
            }
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The lines printed so far on one stream.
    pub fn lines(&self, which: Stream) -> Vec<String> {
        let lines = self
            .captured
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|(w, _)| *w == which)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits for a line (either stream, printed before or after this call)
    /// containing `needle`; returns it, or `None` after `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_line_on(None, needle, Instant::now() + timeout)
    }

    fn wait_for_line_on(
        &self,
        which: Option<Stream>,
        needle: &str,
        deadline: Instant,
    ) -> Option<String> {
        let mut lines = self
            .captured
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((_, l)) = lines
                .iter()
                .find(|(w, l)| which.is_none_or(|x| x == *w) && l.contains(needle))
            {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            lines = self
                .captured
                .grew
                .wait_timeout(lines, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_ready(&mut self, r: &Ready, deadline: Instant) -> Result<(), String> {
        loop {
            let ok = match r {
                Ready::TcpPort(p) => TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, *p)),
                    Duration::from_millis(200),
                )
                .is_ok(),
                Ready::UdpBound(p) => UdpSocket::bind((Ipv4Addr::LOCALHOST, *p)).is_err(),
                Ready::StderrContains(s) => self
                    .wait_for_line_on(
                        Some(Stream::Stderr),
                        s,
                        (Instant::now() + Duration::from_millis(50)).min(deadline),
                    )
                    .is_some(),
                Ready::StdoutContains(s) => self
                    .wait_for_line_on(
                        Some(Stream::Stdout),
                        s,
                        (Instant::now() + Duration::from_millis(50)).min(deadline),
                    )
                    .is_some(),
                Ready::After(d) => {
                    thread::sleep(*d);
                    true
                }
            };
            if ok {
                return Ok(());
            }
            if let Some(st) = self.try_exit() {
                return Err(format!("exited with {st} while waiting for {r:?}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out waiting for {r:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if it has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                self.join_readers();
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM to the process group and waits up to `grace` for the
    /// exit; SIGKILL after that. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if let Some(st) = self.try_exit() {
            self.signal_group(libc::SIGKILL); // children it may have left
            self.join_readers();
            return st;
        }
        self.signal_group(libc::SIGTERM);
        let st = match self.wait_exit(grace) {
            Some(st) => st,
            None => {
                self.signal_group(libc::SIGKILL);
                let st = self.child.wait().expect("wait for killed server");
                self.exit = Some(st);
                st
            }
        };
        self.signal_group(libc::SIGKILL);
        self.join_readers();
        st
    }

    fn signal_group(&self, sig: i32) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }

    /// After the exit: lets the readers take the last lines (bounded, in case
    /// a process it left behind still holds the pipes).
    fn join_readers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut closed = self
            .captured
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *closed < 2 && Instant::now() < deadline {
            closed = self
                .captured
                .closed_cv
                .wait_timeout(closed, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
        if thread::panicking() {
            eprintln!(
                "--- output of {} (pid {}) ---\n{}",
                self.name,
                self.pid(),
                self.output()
            );
        }
    }
}
