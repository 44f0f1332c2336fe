//! What hotline refused, and from whom: counted for `/metrics` as it happens and
//! written to the log as one summary per interval, a line per source and reason, so
//! that a flood cannot flood the log (a 20 s flood once wrote 123,653 ERROR lines, one
//! per refused call).
//!
//! One process-wide tally: the SIP guard and the call tasks (no free RTP port) both
//! note here, and neither has to carry a handle to the other.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a request or call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The source sent more requests a second than `sip_limits` allows.
    Requests,
    /// The source opened more new dialogs a second than `sip_limits` allows.
    Dialogs,
    /// The source already holds `sip_limits.calls_per_source` calls.
    CallsPerSource,
    /// A known scanner's User-Agent.
    Scanner,
    /// The source is not in `sip_allow`.
    NotAllowed,
    /// An INVITE that got through, but no RTP port was free (503).
    NoRtpPort,
    /// The media threads could not pace another call (503, `overload_refuse`).
    MediaOverload,
    /// The call layer had not taken the new calls handed to it (503, Retry-After 5):
    /// the handoff between the SIP endpoint and the calls was full.
    CallLayerBusy,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Requests,
        Reason::Dialogs,
        Reason::CallsPerSource,
        Reason::Scanner,
        Reason::NotAllowed,
        Reason::NoRtpPort,
        Reason::MediaOverload,
        Reason::CallLayerBusy,
    ];

    /// The label in `/metrics` and the word in the log.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Requests => "requests",
            Reason::Dialogs => "dialogs",
            Reason::CallsPerSource => "calls_per_source",
            Reason::Scanner => "scanner",
            Reason::NotAllowed => "not_allowed",
            Reason::NoRtpPort => "no_rtp_port",
            Reason::MediaOverload => "media_overload",
            Reason::CallLayerBusy => "call_layer_busy",
        }
    }

    /// What an operator can do about it, for the log's summary line.
    pub fn what_to_do(self) -> &'static str {
        match self {
            Reason::Requests | Reason::Dialogs => {
                "over sip_limits; a trunk or proxy carrying many callers belongs in sip_limits.exempt"
            }
            Reason::CallsPerSource => {
                "holds sip_limits.calls_per_source calls already; a trunk, proxy or PBX carrying many callers belongs in sip_limits.exempt, else raise calls_per_source"
            }
            Reason::Scanner => "a known scanner; nothing to do",
            Reason::NotAllowed => "not in sip_allow; add it there if it is yours",
            Reason::NoRtpPort => "every RTP port in use; widen rtp_ports",
            Reason::MediaOverload => {
                "the media threads or the machine cannot pace more calls; add an instance or free the CPU (overload_busy, overload_machine)"
            }
            Reason::CallLayerBusy => {
                "the calls' async worker fell behind the SIP endpoint; give hotline more CPU or async_threads"
            }
        }
    }

    /// Refused by the guard before any call work (`hotline_sip_limited_total`), rather
    /// than a call refused later (`hotline_calls_refused_total`).
    pub fn by_guard(self) -> bool {
        !matches!(
            self,
            Reason::NoRtpPort | Reason::MediaOverload | Reason::CallLayerBusy
        )
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Sources listed in one summary; the rest are summed in one more line.
const LISTED: usize = 20;
/// Distinct (source, reason) pairs kept between summaries; more are only summed.
const KEPT: usize = 4096;

#[derive(Default)]
pub struct Refusals {
    totals: [AtomicU64; Reason::ALL.len()],
    interval: Mutex<Interval>,
}

#[derive(Default)]
struct Interval {
    by_source: HashMap<(IpAddr, Reason), u64>,
    /// Refusals whose pair did not fit in `by_source`.
    unlisted: u64,
}

static TALLY: OnceLock<Refusals> = OnceLock::new();

/// The process's tally.
pub fn tally() -> &'static Refusals {
    TALLY.get_or_init(Refusals::default)
}

/// Notes one refusal of `reason` for `source`.
pub fn note(source: IpAddr, reason: Reason) {
    tally().note(source, reason);
}

impl Refusals {
    pub fn note(&self, source: IpAddr, reason: Reason) {
        if let Some(t) = self.totals.get(reason.index()) {
            t.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut i) = self.interval.lock() {
            let len = i.by_source.len();
            match i.by_source.get_mut(&(source, reason)) {
                Some(n) => *n += 1,
                None if len < KEPT => {
                    i.by_source.insert((source, reason), 1);
                }
                None => i.unlisted += 1,
            }
        }
    }

    /// Refusals since start, every reason.
    pub fn totals(&self) -> [(Reason, u64); Reason::ALL.len()] {
        Reason::ALL.map(|r| {
            let n = self
                .totals
                .get(r.index())
                .map_or(0, |t| t.load(Ordering::Relaxed));
            (r, n)
        })
    }

    /// The interval's lines, most refused first, and starts a new interval.
    pub fn take_summary(&self) -> Vec<(String, &'static str, u64)> {
        let (pairs, unlisted) = match self.interval.lock() {
            Ok(mut i) => (
                std::mem::take(&mut i.by_source),
                std::mem::take(&mut i.unlisted),
            ),
            Err(_) => return Vec::new(),
        };
        let mut pairs: Vec<_> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.0.cmp(&b.0.0)));
        let rest: u64 = pairs.iter().skip(LISTED).map(|(_, n)| n).sum::<u64>() + unlisted;
        let mut lines: Vec<_> = pairs
            .into_iter()
            .take(LISTED)
            .map(|((src, r), n)| (src.to_string(), r.name(), n))
            .collect();
        if rest > 0 {
            lines.push(("other sources".into(), "any", rest));
        }
        lines
    }
}

/// Writes the summary every `every` until cancelled, and once more at the end.
pub async fn summarise(every: Duration, cancel: CancellationToken) {
    let every = every.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = cancel.cancelled() => true,
        };
        for (source, reason, count) in tally().take_summary() {
            // "any" (the sources past the listed ones) has no one remedy.
            let to_do = Reason::ALL
                .into_iter()
                .find(|r| r.name() == reason)
                .map_or("several reasons", Reason::what_to_do);
            tracing::warn!(
                source = %source,
                reason,
                count,
                seconds = every.as_secs_f64(),
                "refused {count} from {source} ({reason}) in the last {every:.0?}: {to_do}"
            );
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_lists_the_busiest_sources_and_sums_the_rest() {
        let r = Refusals::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..1000 {
            r.note(a, Reason::Dialogs);
        }
        for i in 0..30u8 {
            r.note(IpAddr::from([10, 0, 0, i]), Reason::Scanner);
        }
        let s = r.take_summary();
        assert_eq!(s[0], ("127.0.0.2".to_string(), "dialogs", 1000));
        assert_eq!(s.len(), LISTED + 1);
        assert_eq!(s[LISTED], ("other sources".to_string(), "any", 11));
        assert!(
            r.take_summary().is_empty(),
            "a summary starts a new interval"
        );
        assert_eq!(r.totals()[Reason::Dialogs.index()], (Reason::Dialogs, 1000));
    }
}
