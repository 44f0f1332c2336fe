//! Tool checks and running a command with a timeout.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The message every missing-tool failure carries.
pub const INSTALL_HINT: &str =
    "run `bash tests/callers/INSTALL.sh` (as root) to install the test callers";

/// The Python interpreter that runs `pjcall.py`: `$HOTLINE_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("HOTLINE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    /// `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `cmd` to its end or kills it after `timeout`; stdin is closed, stdout
/// and stderr are captured. Fails the test if it cannot be started.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Finished {
    try_run_with_timeout(cmd, timeout)
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}; {INSTALL_HINT}"))
}

/// Like [`run_with_timeout`], with the spawn error returned instead.
pub fn try_run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Finished> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    })
}

/// Fails the test unless `name` is an executable on `$PATH`.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(name))))
        .unwrap_or(false);
    assert!(found, "`{name}` is not installed: {INSTALL_HINT}");
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails the test unless Python can import pjsua2 (checked once a process).
pub fn require_pjsua2() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let res = CHECK.get_or_init(|| {
        let mut cmd = Command::new(python());
        cmd.args(["-c", "import pjsua2"]);
        match try_run_with_timeout(&mut cmd, Duration::from_secs(30)) {
            Ok(f) if f.success() => Ok(()),
            Ok(f) => Err(format!(
                "`{} -c 'import pjsua2'` failed: {}",
                python(),
                f.stderr.trim()
            )),
            Err(e) => Err(format!("cannot run `{}`: {e}", python())),
        }
    });
    if let Err(e) = res {
        panic!("pjsua2-python is missing ({e}): {INSTALL_HINT}");
    }
}
