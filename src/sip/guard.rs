//! What a source may ask of the SIP endpoint, decided before any per-call work: the
//! source allow-list (`sip_allow`), known scanners' User-Agents, per-source token
//! buckets for requests and for new dialogs (issue 13; Kamailio's `pike` and
//! `secfilter` are the models), and how many calls a source may hold open at once
//! (`calls_per_source`, Asterisk's `call-limit`): a rate bounds how fast a source takes
//! lines, not how many it keeps; a source whose calls last (it answers the prompts, or
//! sends RTP and never hangs up) would otherwise take every line at the allowed rate.
//!
//! A source over a limit is told once, with `503` and Retry-After, then hears nothing
//! while it stays over: answering every request of a flood would make hotline the
//! flood's amplifier. A source at its `calls_per_source` is answered each new call
//! (the dialog rate already bounds how often): it is a caller, not a flood. What is refused is counted here (`hotline_sip_limited_total`)
//! and logged as a summary per interval ([`super::refusals`]), never a line per
//! request.
//!
//! Own code rather than `governor`: one lock and one map entry per source hold both
//! buckets and the "told once" flag together, and the map's size is bounded here
//! (sources whose buckets have refilled are forgotten; past the bound, new sources
//! share one bucket), where a keyed `governor` limiter would need a second map for the
//! flag and grows until swept.
use super::refusals::{self, Reason};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use ipnet::IpNet;

/// Per-source limits (`sip_limits:` in the settings). A rate of 0 turns that limit off.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipLimits {
    /// Requests of any method a source may send a second, sustained.
    pub requests_per_s: f64,
    /// ... and at once, after a quiet spell.
    pub requests_burst: u32,
    /// New dialogs (INVITEs that start a call) a source may open a second.
    pub dialogs_per_s: f64,
    pub dialogs_burst: u32,
    /// Calls a source may hold open at once (0: no cap). A source at it is answered
    /// 503 with Retry-After for each new call until one of its calls ends.
    pub calls_per_source: u32,
    /// The Retry-After of the one 503 a source over its limit is sent.
    #[serde(deserialize_with = "crate::config::duration")]
    pub retry_after: Duration,
    /// Sources never limited (the trunk, the proxy), as CIDRs or addresses.
    #[serde(deserialize_with = "cidrs")]
    pub exempt: Vec<IpNet>,
    /// How often refusals are summed up in the log.
    #[serde(deserialize_with = "crate::config::duration")]
    pub log_every: Duration,
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits {
            requests_per_s: 500.0,
            requests_burst: 1000,
            dialogs_per_s: 50.0,
            dialogs_burst: 200,
            // Off unless set: a trunk carries every caller from one address, and a cap
            // on it (where it is not in `exempt`) would refuse callers at a modest
            // height of calls that no rate limit ever reached.
            calls_per_source: 0,
            retry_after: Duration::from_secs(30),
            exempt: Vec::new(),
            log_every: Duration::from_secs(10),
        }
    }
}

impl SipLimits {
    /// No limit at all (what an endpoint started without settings gets).
    pub fn off() -> SipLimits {
        SipLimits {
            requests_per_s: 0.0,
            dialogs_per_s: 0.0,
            ..SipLimits::default()
        }
    }
}

/// What a source outside `sip_allow` gets (`sip_allow_refuse`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refuse {
    /// Nothing: the port looks closed to it.
    #[default]
    Drop,
    /// `403 Forbidden`.
    Forbidden,
}

impl<'de> Deserialize<'de> for Refuse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim() {
            "drop" => Ok(Refuse::Drop),
            "403" => Ok(Refuse::Forbidden),
            other => Err(serde::de::Error::custom(format!(
                "'{other}': sip_allow_refuse is drop or 403"
            ))),
        }
    }
}

/// User-Agent fragments of the SIP scanners seen on the internet (lower case; a
/// User-Agent containing one is a scanner).
pub const SCANNERS: [&str; 10] = [
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
    "sipsak-scan",
];

/// Everything the guard is told at start.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardSettings {
    /// Sources served; empty: every source.
    pub allow: Vec<IpNet>,
    pub refuse: Refuse,
    pub limits: SipLimits,
    /// User-Agent fragments, compared in lower case.
    pub scanners: Vec<String>,
}

impl Default for GuardSettings {
    /// Open and unlimited, scanners still dropped: what an endpoint gets without
    /// settings (the library's tests); `hotline serve` passes its settings.
    fn default() -> Self {
        GuardSettings {
            allow: Vec::new(),
            refuse: Refuse::Drop,
            limits: SipLimits::off(),
            scanners: default_scanners(),
        }
    }
}

pub fn default_scanners() -> Vec<String> {
    SCANNERS.iter().map(|s| s.to_string()).collect()
}

/// The guard's word on one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// No answer at all.
    Drop,
    /// Answer with this code (403, or 503 with Retry-After) and go no further.
    Answer {
        code: u16,
        retry_after: Option<u32>,
    },
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    fn take(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        let cap = f64::from(burst.max(1));
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Would it be full by `now` (so forgetting it changes nothing)?
    fn refilled(&self, rate: f64, burst: u32, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        rate <= 0.0 || self.tokens + dt * rate >= f64::from(burst.max(1))
    }
}

struct Source {
    requests: Bucket,
    dialogs: Bucket,
    /// The source was sent its 503 and has not been under its limits since.
    told: bool,
}

/// Sources tracked at once; beyond this, new sources share one entry.
const MAX_SOURCES: usize = 16_384;

pub struct Guard {
    settings: GuardSettings,
    sources: Mutex<Sources>,
    open: Arc<OpenCalls>,
}

/// Calls open per source (`calls_per_source`); a source is listed while it holds one.
#[derive(Default)]
struct OpenCalls(Mutex<HashMap<IpAddr, u32>>);

/// One call held open by a source, counted against its `calls_per_source` until this
/// is dropped (with the call's task, however the call ends).
#[must_use]
pub struct OpenCall(Option<(Arc<OpenCalls>, IpAddr)>);

impl OpenCall {
    /// A call not counted against any source (placed by hotline, or cap off).
    pub fn uncounted() -> OpenCall {
        OpenCall(None)
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        let Some((open, src)) = self.0.take() else {
            return;
        };
        let Ok(mut m) = open.0.lock() else { return };
        if let Some(n) = m.get_mut(&src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&src);
            }
        }
    }
}

struct Sources {
    map: HashMap<IpAddr, Source>,
    /// The entry sources share when the map is full.
    overflow: Option<Source>,
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Guard {
        Guard {
            settings,
            sources: Mutex::new(Sources {
                map: HashMap::new(),
                overflow: None,
            }),
            open: Arc::default(),
        }
    }

    /// A new call from `src`: counted against its `calls_per_source`, or refused with
    /// the 503 and Retry-After it is answered (counted and summed up in the log) while
    /// the source holds that many calls. Exempt sources are not counted.
    pub fn open_call(&self, src: IpAddr) -> Result<OpenCall, Verdict> {
        let l = &self.settings.limits;
        if l.calls_per_source == 0 || l.exempt.iter().any(|n| n.contains(&src)) {
            return Ok(OpenCall::uncounted());
        }
        let Ok(mut m) = self.open.0.lock() else {
            return Ok(OpenCall::uncounted());
        };
        let n = m.entry(src).or_insert(0);
        if *n >= l.calls_per_source {
            drop(m);
            refusals::note(src, Reason::CallsPerSource);
            return Err(Verdict::Answer {
                code: 503,
                retry_after: Some(u32::try_from(l.retry_after.as_secs()).unwrap_or(u32::MAX)),
            });
        }
        *n += 1;
        Ok(OpenCall(Some((self.open.clone(), src))))
    }

    /// Calls `src` holds open, as counted for `calls_per_source`.
    pub fn open_calls(&self, src: IpAddr) -> u32 {
        self.open
            .0
            .lock()
            .map_or(0, |m| m.get(&src).copied().unwrap_or(0))
    }

    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    /// Screens one request from `src`. `new_dialog`: an INVITE that would start a call
    /// (no To tag, no call with its Call-ID). `user_agent`: its User-Agent header.
    pub fn screen(
        &self,
        src: IpAddr,
        method: &str,
        user_agent: Option<&str>,
        new_dialog: bool,
    ) -> Verdict {
        let s = &self.settings;
        if !s.allow.is_empty() && !s.allow.iter().any(|n| n.contains(&src)) {
            refusals::note(src, Reason::NotAllowed);
            return match s.refuse {
                Refuse::Forbidden if method != "ACK" => Verdict::Answer {
                    code: 403,
                    retry_after: None,
                },
                _ => Verdict::Drop,
            };
        }
        if let Some(ua) = user_agent
            && is_scanner(ua, &s.scanners)
        {
            refusals::note(src, Reason::Scanner);
            return Verdict::Drop;
        }
        let l = &s.limits;
        let limited_requests = l.requests_per_s > 0.0;
        let limited_dialogs = l.dialogs_per_s > 0.0 && new_dialog;
        if !(limited_requests || limited_dialogs) || l.exempt.iter().any(|n| n.contains(&src)) {
            return Verdict::Pass;
        }
        let (reason, answer) = {
            let now = Instant::now();
            let Ok(mut sources) = self.sources.lock() else {
                return Verdict::Pass;
            };
            let entry = sources.entry(src, l, now);
            let reason = if limited_requests
                && !entry.requests.take(l.requests_per_s, l.requests_burst, now)
            {
                Reason::Requests
            } else if limited_dialogs && !entry.dialogs.take(l.dialogs_per_s, l.dialogs_burst, now)
            {
                Reason::Dialogs
            } else {
                entry.told = false;
                return Verdict::Pass;
            };
            // An ACK is never answered (RFC 3261 17.1.1.3): the one 503 waits for a
            // request that can carry it.
            let answer = !entry.told && method != "ACK";
            entry.told |= answer;
            (reason, answer)
        };
        refusals::note(src, reason);
        if answer {
            Verdict::Answer {
                code: 503,
                retry_after: Some(u32::try_from(l.retry_after.as_secs()).unwrap_or(u32::MAX)),
            }
        } else {
            Verdict::Drop
        }
    }

    /// Sources tracked now (for tests and `/healthz`).
    pub fn tracked(&self) -> usize {
        self.sources.lock().map_or(0, |s| s.map.len())
    }
}

impl Sources {
    fn entry(&mut self, src: IpAddr, l: &SipLimits, now: Instant) -> &mut Source {
        let fresh = || Source {
            requests: Bucket::full(l.requests_burst, now),
            dialogs: Bucket::full(l.dialogs_burst, now),
            told: false,
        };
        if !self.map.contains_key(&src) && self.map.len() >= MAX_SOURCES {
            self.map.retain(|_, s| {
                !(s.requests.refilled(l.requests_per_s, l.requests_burst, now)
                    && s.dialogs.refilled(l.dialogs_per_s, l.dialogs_burst, now))
            });
            if self.map.len() >= MAX_SOURCES {
                return self.overflow.get_or_insert_with(fresh);
            }
        }
        self.map.entry(src).or_insert_with(fresh)
    }
}

fn is_scanner(user_agent: &str, scanners: &[String]) -> bool {
    if scanners.is_empty() {
        return false;
    }
    let ua = user_agent.to_ascii_lowercase();
    scanners
        .iter()
        .any(|s| !s.is_empty() && ua.contains(s.as_str()))
}

/// `10.0.0.0/8`, `192.0.2.7` (one address), `2001:db8::/32`.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    t.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{s}' is not a CIDR (10.0.0.0/8) or an address (192.0.2.7)"))
}

pub fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| parse_cidr(s))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limited(rps: f64, burst: u32, dps: f64, dburst: u32) -> Guard {
        Guard::new(GuardSettings {
            limits: SipLimits {
                requests_per_s: rps,
                requests_burst: burst,
                dialogs_per_s: dps,
                dialogs_burst: dburst,
                ..SipLimits::default()
            },
            ..GuardSettings::default()
        })
    }

    fn capped(calls: u32, exempt: &[&str]) -> Guard {
        Guard::new(GuardSettings {
            limits: SipLimits {
                calls_per_source: calls,
                exempt: exempt.iter().map(|e| parse_cidr(e).unwrap()).collect(),
                ..SipLimits::off()
            },
            ..GuardSettings::default()
        })
    }

    #[test]
    fn a_source_holds_at_most_its_calls_and_one_ending_frees_a_line() {
        let g = capped(2, &[]);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = g.open_call(a).unwrap();
        let _second = g.open_call(a).unwrap();
        let refused = g.open_call(a).err();
        assert_eq!(
            refused,
            Some(Verdict::Answer {
                code: 503,
                retry_after: Some(30)
            })
        );
        // Another source is not touched.
        let _other = g.open_call(b).unwrap();
        assert_eq!((g.open_calls(a), g.open_calls(b)), (2, 1));
        drop(first);
        assert_eq!(g.open_calls(a), 1);
        let _third = g.open_call(a).unwrap();
        assert!(g.open_call(a).is_err());
    }

    #[test]
    fn exempt_sources_and_no_cap_count_nothing() {
        let g = capped(1, &["203.0.113.0/28"]);
        let trunk = ip("203.0.113.5");
        let held: Vec<_> = (0..10).map(|_| g.open_call(trunk).unwrap()).collect();
        assert_eq!((held.len(), g.open_calls(trunk)), (10, 0));
        let g = capped(0, &[]);
        let held: Vec<_> = (0..10)
            .map(|_| g.open_call(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!((held.len(), g.open_calls(ip("192.0.2.1"))), (10, 0));
    }

    #[test]
    fn a_source_whose_calls_all_ended_is_forgotten() {
        let g = capped(3, &[]);
        let held: Vec<_> = (0..3)
            .map(|i| g.open_call(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(g.open.0.lock().unwrap().len(), 3);
        drop(held);
        assert!(g.open.0.lock().unwrap().is_empty());
    }

    #[test]
    fn over_the_burst_one_503_then_silence_and_others_untouched() {
        let g = limited(0.001, 100, 0.001, 3);
        let a = ip("127.0.0.2");
        for _ in 0..3 {
            assert_eq!(g.screen(a, "INVITE", None, true), Verdict::Pass);
        }
        assert!(matches!(
            g.screen(a, "INVITE", None, true),
            Verdict::Answer {
                code: 503,
                retry_after: Some(30)
            }
        ));
        for _ in 0..10 {
            assert_eq!(g.screen(a, "INVITE", None, true), Verdict::Drop);
        }
        // In-dialog requests of the same source still pass: the dialog limit is on
        // new dialogs only.
        assert_eq!(g.screen(a, "BYE", None, false), Verdict::Pass);
        assert_eq!(
            g.screen(ip("127.0.0.3"), "INVITE", None, true),
            Verdict::Pass
        );
    }

    #[test]
    fn a_source_back_under_its_limit_is_told_again_next_time() {
        let g = limited(1000.0, 2, 0.0, 1);
        let a = ip("192.0.2.1");
        assert_eq!(g.screen(a, "OPTIONS", None, false), Verdict::Pass);
        assert_eq!(g.screen(a, "OPTIONS", None, false), Verdict::Pass);
        assert!(matches!(
            g.screen(a, "OPTIONS", None, false),
            Verdict::Answer { code: 503, .. }
        ));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(g.screen(a, "OPTIONS", None, false), Verdict::Pass);
    }

    #[test]
    fn an_ack_over_the_limit_is_never_answered() {
        let g = limited(0.001, 1, 0.0, 1);
        let a = ip("192.0.2.1");
        assert_eq!(g.screen(a, "ACK", None, false), Verdict::Pass);
        assert_eq!(g.screen(a, "ACK", None, false), Verdict::Drop);
        assert!(matches!(
            g.screen(a, "INVITE", None, false),
            Verdict::Answer { code: 503, .. }
        ));
    }

    #[test]
    fn scanners_and_strangers() {
        let g = Guard::new(GuardSettings {
            allow: vec![
                parse_cidr("10.0.0.0/8").unwrap(),
                parse_cidr("192.0.2.7").unwrap(),
            ],
            refuse: Refuse::Forbidden,
            ..GuardSettings::default()
        });
        assert_eq!(
            g.screen(ip("10.1.2.3"), "INVITE", Some("Zoiper"), true),
            Verdict::Pass
        );
        assert_eq!(
            g.screen(ip("192.0.2.7"), "INVITE", None, true),
            Verdict::Pass
        );
        assert!(matches!(
            g.screen(ip("192.0.2.8"), "INVITE", None, true),
            Verdict::Answer { code: 403, .. }
        ));
        assert_eq!(g.screen(ip("192.0.2.8"), "ACK", None, false), Verdict::Drop);
        assert_eq!(
            g.screen(
                ip("10.0.0.9"),
                "OPTIONS",
                Some("Friendly-Scanner 1.0"),
                false
            ),
            Verdict::Drop
        );
        assert_eq!(
            g.screen(ip("10.0.0.9"), "OPTIONS", Some("sipvicious"), false),
            Verdict::Drop
        );
    }

    #[test]
    fn exempt_sources_are_not_limited() {
        let s = GuardSettings {
            limits: SipLimits {
                requests_per_s: 0.001,
                requests_burst: 1,
                exempt: vec![parse_cidr("127.0.0.1").unwrap()],
                ..SipLimits::default()
            },
            ..GuardSettings::default()
        };
        let g = Guard::new(s);
        for _ in 0..10 {
            assert_eq!(
                g.screen(ip("127.0.0.1"), "INVITE", None, true),
                Verdict::Pass
            );
        }
    }

    #[test]
    fn the_source_table_is_bounded() {
        let g = limited(0.001, 1, 0.0, 1);
        for i in 0..(MAX_SOURCES as u32 + 100) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.screen(a, "OPTIONS", None, false);
        }
        assert!(g.tracked() <= MAX_SOURCES);
    }

    #[test]
    fn cidrs_parse_or_say_why() {
        assert!(parse_cidr("10.0.0.0/8").unwrap().contains(&ip("10.9.9.9")));
        assert!(parse_cidr("10.1.2.3/8").unwrap().contains(&ip("10.9.9.9")));
        assert!(parse_cidr("::1").unwrap().contains(&ip("::1")));
        let e = parse_cidr("10.0.0/8").unwrap_err();
        assert!(e.contains("10.0.0/8"), "{e}");
    }
}
