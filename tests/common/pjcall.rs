//! Runs `tests/callers/pjcall.py` (one headless PJSIP call) and parses its
//! JSON report.
//!
//! ```ignore
//! let out = PjCall::new(format!("sip:ivr@127.0.0.1:{sip}"))
//!     .play(fixture("speech.wav"))
//!     .dtmf("1@12.5,2@20")
//!     .record(&wav)
//!     .max_time(40.0)
//!     .run();
//! let rep = out.assert_ok();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde::Deserialize;

use super::tools::{Finished, python, require_pjsua2, run_with_timeout};

/// pjcall.py's JSON report. Times are unix seconds; `dtmf_sent` and
/// `hold_at`/`unhold_at` are seconds after the call was confirmed.
#[derive(Debug, Clone, Deserialize)]
pub struct CallReport {
    pub confirmed_at: Option<f64>,
    pub disconnected_at: Option<f64>,
    pub last_status: Option<u16>,
    /// The far end sent BYE.
    pub remote_hangup: bool,
    pub dtmf_sent: Vec<(String, f64)>,
    pub error: Option<String>,
    /// When the recorder was hooked to the call (time 0 of `--record`).
    #[serde(default)]
    pub record_started_at: Option<f64>,
    #[serde(default)]
    pub hold_at: Option<f64>,
    #[serde(default)]
    pub unhold_at: Option<f64>,
    /// RTP packets sent and received over the call (summed over re-INVITEs).
    #[serde(default)]
    pub rtp_tx_packets: Option<u64>,
    #[serde(default)]
    pub rtp_rx_packets: Option<u64>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// `--follow-refer`: the Refer-To of a REFER the far end sent.
    #[serde(default)]
    pub refer_to: Option<String>,
    /// The call the REFER started: when it was answered, its last status, when
    /// it ended and whether its far end hung up.
    #[serde(default)]
    pub transfer_confirmed_at: Option<f64>,
    #[serde(default)]
    pub transfer_status: Option<u16>,
    #[serde(default)]
    pub transfer_disconnected_at: Option<f64>,
    #[serde(default)]
    pub transfer_remote_hangup: bool,
}

impl CallReport {
    /// Seconds from confirmation to disconnection.
    pub fn duration(&self) -> Option<f64> {
        Some(self.disconnected_at? - self.confirmed_at?)
    }
}

/// A call to place; builder methods map one to one onto pjcall.py's options.
#[derive(Debug, Clone)]
pub struct PjCall {
    target: String,
    args: Vec<String>,
    max_time: f64,
}

impl PjCall {
    /// `target` like `sip:ivr@127.0.0.1:5060`. Default `--max-time` is 60 s.
    pub fn new(target: impl Into<String>) -> Self {
        PjCall {
            target: target.into(),
            args: Vec::new(),
            max_time: 60.0,
        }
    }

    fn opt(mut self, name: &str, value: impl ToString) -> Self {
        self.args.push(name.to_string());
        self.args.push(value.to_string());
        self
    }

    /// The caller's voice, looped (without it: digital silence, still sent).
    pub fn play(self, wav: impl AsRef<Path>) -> Self {
        self.opt("--play", wav.as_ref().display())
    }

    /// Play `--play` once, then silence.
    pub fn play_once(mut self) -> Self {
        self.args.push("--play-once".into());
        self
    }

    /// Offer `a=recvonly`: the caller sends no RTP at all.
    pub fn no_rtp(mut self) -> Self {
        self.args.push("--no-rtp".into());
        self
    }

    /// RFC 4733 keys at seconds after confirmation: `"1@12.5,2@20"`.
    pub fn dtmf(self, spec: &str) -> Self {
        self.opt("--dtmf", spec)
    }

    pub fn hangup_after(self, secs: f64) -> Self {
        self.opt("--hangup-after", secs)
    }

    /// Hard limit for the call; the process gets 20 s more before it is killed.
    pub fn max_time(mut self, secs: f64) -> Self {
        self.max_time = secs;
        self
    }

    /// Record what the caller heard, 8 kHz mono 16-bit.
    pub fn record(self, wav: impl AsRef<Path>) -> Self {
        self.opt("--record", wav.as_ref().display())
    }

    /// Re-INVITE to hold at `secs`, and back 1 s later.
    pub fn reinvite_hold_at(self, secs: f64) -> Self {
        self.opt("--reinvite-hold-at", secs)
    }

    pub fn local_port(self, port: u16) -> Self {
        self.opt("--local-port", port)
    }

    /// First local RTP port tried (pjcall.py default 4000).
    pub fn rtp_port(self, port: u16) -> Self {
        self.opt("--rtp-port", port)
    }

    /// Any other pjcall.py option.
    /// Accept a REFER and call its Refer-To (a phone's blind transfer).
    pub fn follow_refer(self) -> Self {
        self.arg("--follow-refer")
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Places the call on this thread and waits for it.
    pub fn run(self) -> CallOutcome {
        require_pjsua2();
        let dir = tempfile::tempdir().expect("temp dir");
        let json = dir.path().join("report.json");
        let script = super::repo_path("tests/callers/pjcall.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg("--target")
            .arg(&self.target)
            .arg("--max-time")
            .arg(self.max_time.to_string())
            .arg("--json")
            .arg(&json)
            .args(&self.args);
        let timeout = Duration::from_secs_f64(self.max_time + 20.0);
        let finished = run_with_timeout(&mut cmd, timeout);
        let report = std::fs::read_to_string(&json).ok().map(|text| {
            serde_json::from_str::<CallReport>(&text)
                .unwrap_or_else(|e| panic!("pjcall.py wrote bad JSON ({e}): {text}"))
        });
        CallOutcome {
            call: self,
            finished,
            report,
        }
    }

    /// Places the call on another thread; several calls can run at once.
    pub fn spawn(self) -> thread::JoinHandle<CallOutcome> {
        thread::spawn(move || self.run())
    }
}

/// What a finished pjcall.py left.
#[derive(Debug)]
pub struct CallOutcome {
    pub call: PjCall,
    pub finished: Finished,
    /// `None` if it wrote no report (it crashed or was killed).
    pub report: Option<CallReport>,
}

impl CallOutcome {
    /// The exit code: 0 ran as asked, 1 failed, 2 bad arguments, 3 max-time
    /// reached; `None` if killed at the timeout.
    pub fn exit_code(&self) -> Option<i32> {
        self.finished.status.and_then(|s| s.code())
    }

    /// The report; fails the test, showing pjcall.py's stderr, if there is none.
    pub fn report(&self) -> &CallReport {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("pjcall.py wrote no report\n{}", self.context()))
    }

    /// Fails unless the call was confirmed, ran as asked (exit 0) and
    /// reported no error; returns the report.
    pub fn assert_ok(&self) -> &CallReport {
        let r = self.report();
        assert!(
            self.exit_code() == Some(0) && r.error.is_none() && r.confirmed_at.is_some(),
            "call did not run as asked: exit {:?}, error {:?}, confirmed_at {:?}\n{}",
            self.exit_code(),
            r.error,
            r.confirmed_at,
            self.context()
        );
        r
    }

    /// The command line and what pjcall.py printed, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "--- pjcall.py --target {} {} (exit {:?}, {:.1} s) ---\n{}{}",
            self.call.target,
            self.call.args.join(" "),
            self.finished.status,
            self.finished.elapsed.as_secs_f64(),
            self.finished.stderr,
            self.finished.stdout
        )
    }
}

/// pjcall.py's path, for tests that drive it themselves.
pub fn script() -> PathBuf {
    super::repo_path("tests/callers/pjcall.py")
}
