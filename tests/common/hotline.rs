//! `hotline serve` under test: its own ports on 127.0.0.1, its own data dir, the
//! repository's flows, prompts and lookups unless a test gives others, and the ways a
//! test reads back what it did (the CLI's records and tickets, the ops HTTP).
use super::ports::{free_tcp_port, free_udp_port, free_udp_range};
use super::repo_path;
use super::server::{Ready, Server, ServerCmd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to start one; [`HotlineCmd::start`] gives the running server.
pub struct HotlineCmd {
    flows: PathBuf,
    config: String,
    max_calls: Option<usize>,
    dir: Option<PathBuf>,
    rtp_ports: u16,
    lookups: PathBuf,
    env: Vec<(String, String)>,
    extra: Vec<String>,
    ip: String,
    sip_port: Option<u16>,
    http_port: Option<u16>,
}

impl Default for HotlineCmd {
    fn default() -> Self {
        HotlineCmd {
            flows: repo_path("flows"),
            config: String::new(),
            max_calls: None,
            dir: None,
            rtp_ports: 64,
            lookups: repo_path("data"),
            env: Vec::new(),
            extra: Vec::new(),
            ip: "127.0.0.1".into(),
            sip_port: None,
            http_port: None,
        }
    }
}

impl HotlineCmd {
    /// More lines for the config file (YAML, after flows/prompts/lookups).
    pub fn config(mut self, yaml: &str) -> Self {
        self.config.push_str(yaml);
        self
    }

    pub fn flows(mut self, dir: impl Into<PathBuf>) -> Self {
        self.flows = dir.into();
        self
    }

    /// The data directory (lookup sources, holidays) instead of the repository's.
    pub fn lookups(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lookups = dir.into();
        self
    }

    /// An environment variable of the server process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// How many RTP ports hotline gets (64 unless said): a call takes two.
    pub fn rtp_ports(mut self, n: u16) -> Self {
        self.rtp_ports = n;
        self
    }

    /// One more command-line argument for `hotline`.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }

    /// SIP and RTP on this loopback address (a farm's instances: 127.0.0.2, .3, ...);
    /// the ops HTTP stays on 127.0.0.1.
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.to_string();
        self
    }

    /// These ports rather than free ones: a restarted instance comes back where its
    /// proxy expects it.
    pub fn ports(mut self, sip: u16, http: u16) -> Self {
        self.sip_port = Some(sip);
        self.http_port = Some(http);
        self
    }

    pub fn max_calls(mut self, n: usize) -> Self {
        self.max_calls = Some(n);
        self
    }

    /// Config and data in this directory, which outlives the server (a restart test
    /// starts a second server on the first one's data); otherwise a temporary one.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn start(self) -> Hotline {
        let temp = match self.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temp dir")),
        };
        let dir = self
            .dir
            .unwrap_or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()).unwrap());
        let sip = self.sip_port.unwrap_or_else(free_udp_port);
        let http = self.http_port.unwrap_or_else(free_tcp_port);
        let (lo, hi) = free_udp_range(self.rtp_ports);
        let config = dir.join("hotline.yaml");
        std::fs::write(
            &config,
            format!(
                "flows: {}\nprompts: {}\nlookups: {}\n{}",
                self.flows.display(),
                repo_path("prompts").display(),
                self.lookups.display(),
                self.config
            ),
        )
        .expect("config written");
        let mut args = vec![
            "serve".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--sip".into(),
            format!("{}:{sip}", self.ip),
            "--http".into(),
            format!("127.0.0.1:{http}"),
            "--rtp-ports".into(),
            format!("{lo}-{hi}"),
            "--data".into(),
            dir.join("var").display().to_string(),
        ];
        args.extend(self.extra);
        if let Some(n) = self.max_calls {
            args.push("--max-calls".into());
            args.push(n.to_string());
        }
        let mut cmd = ServerCmd::new(env!("CARGO_BIN_EXE_hotline"));
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        let server = cmd
            .args(args)
            .ready(Ready::StderrContains("answering SIP".into()))
            .timeout(Duration::from_secs(20))
            .start();
        Hotline {
            server,
            sip,
            http,
            ip: self.ip,
            dir,
            _temp: temp,
        }
    }
}

pub struct Hotline {
    pub server: Server,
    pub sip: u16,
    pub http: u16,
    /// Where SIP and RTP listen.
    pub ip: String,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Hotline {
    pub fn cmd() -> HotlineCmd {
        HotlineCmd::default()
    }

    /// Config and data dir; a test may keep its own files here too.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn target(&self, user: &str) -> String {
        format!("sip:{user}@{}:{}", self.ip, self.sip)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("var")
    }

    /// `hotline ARGS --data DIR`, its JSON lines.
    pub fn cli(&self, args: &[&str]) -> Vec<Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(args)
            .arg("--data")
            .arg(self.data())
            .output()
            .expect("hotline CLI runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The call records, oldest first, once `n` of them are written (they are written
    /// as calls end).
    pub fn records(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut r = self.cli(&["calls", "list", "--json"]);
            if r.len() >= n {
                r.sort_by_key(|c| c["received_at"].as_i64());
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{} call records, expected {n}\n{}",
                r.len(),
                self.server.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.cli(&["tickets", "list", "--json"])
    }

    /// One request to the ops HTTP: the status and the body.
    pub fn http(&self, method: &str, path: &str) -> (u16, String) {
        super::http_request(self.http, method, path)
    }
}

/// The prompts of a call record, in order.
pub fn prompts(rec: &Value) -> Vec<String> {
    rec["events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .filter(|e| e["kind"] == "prompt")
                .filter_map(|e| e["detail"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
