//! `hotline serve` settings: embedded defaults that work on one machine, a YAML file
//! (`--config`, every key documented in hotline.example.yaml) and flags over both.
use crate::flow::expr::parse_duration;
use crate::media::voice::VoiceSettings;
use serde::{Deserialize, Deserializer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SIP listen address, UDP and TCP.
    pub sip: SocketAddr,
    /// RTP port range, `LO-HI`.
    pub rtp_ports: PortRange,
    /// The address put in SDP `c=` lines; default: the SIP address.
    pub media_ip: Option<IpAddr>,
    pub flows: PathBuf,
    pub prompts: PathBuf,
    /// Lookup sources (`<source>.yaml`, `<source>.http.yaml`) and `holidays.yaml`.
    pub lookups: PathBuf,
    /// Where the call records, tickets and recordings go.
    pub data: PathBuf,
    /// The flow for Request-URI users that name no flow.
    pub default_flow: String,
    /// Calls in flows at once.
    pub max_calls: usize,
    /// Calls waiting (ringing) for a free line, beyond which INVITEs get 486.
    pub queue_max: usize,
    /// Longest a call waits ringing for a line.
    #[serde(deserialize_with = "duration")]
    pub queue_max_wait: Duration,
    /// Ops HTTP (`/healthz`).
    pub http: SocketAddr,
    /// Voice classifier thresholds (dBov) and timings (ms).
    pub voice: VoiceSettings,
    /// RFC 3261 T1 (500 ms); tests shorten it.
    #[serde(deserialize_with = "duration")]
    pub sip_t1: Duration,
    /// Ticket delivery; no `url`: tickets stay in the store.
    pub webhook: WebhookConfig,
    /// How often the flows, prompts and lookup data are looked at for changes; zero:
    /// only SIGHUP and `POST /reload` reload.
    #[serde(deserialize_with = "duration")]
    pub reload_poll: Duration,
    /// Threads that send and receive RTP; 0: one per core.
    pub media_threads: usize,
    /// Threads that run the calls' tasks, SIP, the store's callers and the ops HTTP
    /// (the async runtime's workers); 0: one per four CPUs, at least one
    /// ([`Config::async_workers`]).
    pub async_threads: usize,
    /// How the media threads hand datagrams to the kernel: `auto` (io_uring where it
    /// works, else `sendto`), `io_uring`, `sendto`.
    pub media_io: crate::call::rtpio::MediaIo,
    /// Pin each media thread to a CPU of its own.
    pub media_pin: bool,
    /// Run the media threads `SCHED_RR` (needs CAP_SYS_NICE or an RLIMIT_RTPRIO; else a
    /// warning and normal priority): their 4 ms slots preempt everything else.
    pub media_realtime: bool,
    /// Each call's RTP port gets a second socket, connected to the caller, that sends
    /// and reads the caller's RTP unwatched (no epoll wake-up per datagram either way),
    /// while the first hears anyone else (`src/call/ports.rs`); off, or where a start-up
    /// probe finds the kernel does not steer arrivals so: one socket.
    pub rtp_send_socket: bool,
    /// Refuse new calls (503) while the media threads cannot pace the ones they have
    /// (`src/server/overload.rs`).
    pub overload_refuse: bool,
    /// The share of its time the media thread that would take the next calls may spend
    /// visiting calls before new calls are refused (0.75; lower on a machine whose cores
    /// other work needs).
    pub overload_busy: Share,
    /// The share of the whole machine's CPU time (every CPU, every program) above which
    /// new calls are refused while the media threads carry real work (0.85): room for
    /// the SIP work and the programs around hotline, which real-time media threads
    /// starve first. 1 turns it off: a machine hotline has to itself, or a measurement
    /// whose own programs are not load hotline should shed calls for.
    pub overload_machine: Share,
    /// `GET /metrics`, and timing every RTP frame sent for its lateness histogram;
    /// false turns both off (to measure what they cost).
    pub metrics: bool,
    /// A file holding the ops API's bearer token (`HOTLINE_OPS_TOKEN` wins over it).
    pub ops_token_file: Option<PathBuf>,
    /// The local time zone of outages' `until` and outbound calling windows (IANA name).
    pub timezone: String,
    /// Once drained (`POST /drain`, SIGUSR1) and the last call has ended, stop and exit
    /// 0: a rolling upgrade's cue to start the new version.
    pub exit_when_drained: bool,
    /// Sources SIP is served to, as CIDRs (the trunk's, the proxy's); empty: all.
    #[serde(deserialize_with = "crate::sip::guard::cidrs")]
    pub sip_allow: Vec<crate::sip::guard::IpNet>,
    /// What other sources get: `drop` (no answer) or `403`.
    pub sip_allow_refuse: crate::sip::guard::Refuse,
    /// Per-source limits on requests and new dialogs (src/sip/guard.rs).
    pub sip_limits: crate::sip::guard::SipLimits,
    /// User-Agent fragments of scanners, dropped unanswered; default: the known ones.
    pub sip_scanners: Vec<String>,
    /// Calls hotline places (src/outbound).
    pub outbound: crate::outbound::OutboundConfig,
}

/// Where and how tickets are POSTed (src/tickets).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The ticket system's endpoint; none: tickets are kept for the operator.
    pub url: Option<String>,
    /// HMAC-SHA256 key of `X-Hotline-Signature`; required with `url`.
    pub secret: String,
    /// Longest one POST may take, answer included.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest answer read; a longer one is a failed attempt.
    pub max_body: usize,
    /// Recordings as base64 in the JSON rather than links to the ops HTTP.
    pub inline_recordings: bool,
    /// How the ticket system reaches the ops HTTP, for recording links; default
    /// `http://` and the `http` address.
    pub recordings_base_url: Option<String>,
    /// First wait before a retry; doubles (with jitter) up to `retry_max`.
    #[serde(deserialize_with = "duration")]
    pub retry_initial: Duration,
    #[serde(deserialize_with = "duration")]
    pub retry_max: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How often the store is looked at for work (retries by the CLI, deadlines).
    #[serde(deserialize_with = "duration")]
    pub poll: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            secret: String::new(),
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            inline_recordings: false,
            recordings_base_url: None,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            concurrency: 4,
            poll: Duration::from_secs(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SocketAddr::from(([127, 0, 0, 1], 5060)),
            rtp_ports: PortRange {
                lo: 20000,
                hi: 39999,
            },
            media_ip: None,
            flows: "flows".into(),
            prompts: "prompts".into(),
            lookups: "data".into(),
            data: "var".into(),
            default_flow: "property".into(),
            max_calls: 5000,
            queue_max: 200,
            queue_max_wait: Duration::from_secs(60),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            voice: VoiceSettings::default(),
            sip_t1: Duration::from_millis(500),
            webhook: WebhookConfig::default(),
            reload_poll: Duration::from_millis(500),
            media_threads: 0,
            async_threads: 0,
            media_io: crate::call::rtpio::MediaIo::Auto,
            media_pin: false,
            media_realtime: true,
            rtp_send_socket: true,
            overload_refuse: true,
            overload_busy: Share(crate::server::overload::BUSY_HIGH),
            overload_machine: Share(crate::server::overload::MACHINE_HIGH),
            metrics: true,
            ops_token_file: None,
            timezone: crate::flow::clock::DEFAULT_TIME_ZONE.into(),
            exit_when_drained: false,
            sip_allow: Vec::new(),
            sip_allow_refuse: crate::sip::guard::Refuse::Drop,
            sip_limits: crate::sip::guard::SipLimits::default(),
            sip_scanners: crate::sip::guard::default_scanners(),
            outbound: crate::outbound::OutboundConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a port range LO-HI, e.g. 20000-39999");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let lo: u16 = a.trim().parse().map_err(|_| bad())?;
        let hi: u16 = b.trim().parse().map_err(|_| bad())?;
        if lo >= hi || lo < 1024 {
            return Err(format!("port range {lo}-{hi}: need 1024 <= LO < HI"));
        }
        Ok(PortRange { lo, hi })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A setting's duration as designers write it (`500ms`, `30s`, `2h`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// A share between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Share, D::Error> {
        let x = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&x) {
            Ok(Share(x))
        } else {
            Err(serde::de::Error::custom(format!(
                "{x}: a share of the time, from 0 to 1"
            )))
        }
    }
}

impl Config {
    /// The async runtime's worker threads: `async_threads`, or one per four CPUs (at
    /// least one). Why so few: the media threads carry the packets on every CPU, and
    /// what is left for the workers (SIP, a call's flow between events) is a few hundred
    /// µs a call; a second worker on two CPUs was mostly woken to find nothing, and
    /// every wake-up costs tens of µs on a VM. `benches/setup-rate.sh 2500 10`,
    /// alternating: one worker 0.53 and 0.54 cores, two 0.57 and 0.57; 3,000 calls a
    /// second clean with one (2026-12-04).
    pub fn async_workers(&self) -> usize {
        match self.async_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 4).max(1)),
            n => n,
        }
    }

    /// Reads a config file; an error names the file, line and column.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text =
            crate::flow::read_limited(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_saphyr::from_str::<Config>(&text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            let msg = e.without_snippet().to_string();
            let msg = msg.lines().next().unwrap_or_default().to_string();
            format!("{}{loc}: {msg}", path.display())
        })
    }

    pub fn media_ip(&self) -> IpAddr {
        self.media_ip.unwrap_or(self.sip.ip())
    }

    /// What the SIP guard is told.
    pub fn guard(&self) -> crate::sip::guard::GuardSettings {
        crate::sip::guard::GuardSettings {
            allow: self.sip_allow.clone(),
            refuse: self.sip_allow_refuse,
            limits: self.sip_limits.clone(),
            scanners: self
                .sip_scanners
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_the_defaults() {
        let c = Config::load(Path::new("hotline.example.yaml")).unwrap();
        let d = Config::default();
        assert_eq!(c.sip, d.sip);
        assert_eq!(c.rtp_ports, d.rtp_ports);
        assert_eq!(c.max_calls, d.max_calls);
        assert_eq!(c.queue_max_wait, d.queue_max_wait);
        assert_eq!(c.voice, d.voice);
        assert_eq!(c.default_flow, d.default_flow);
        assert_eq!(c.webhook, d.webhook);
        assert_eq!(c.metrics, d.metrics);
        assert_eq!(c.guard(), d.guard());
    }

    #[test]
    fn bad_config_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "sip: 127.0.0.1:5060\nmax_cals: 3\n").unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.contains("max_cals") && e.contains(":2:"), "{e}");
        assert!("20000-1".parse::<PortRange>().is_err());
    }
}
