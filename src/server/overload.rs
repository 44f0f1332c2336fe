//! Knowing when to stop admitting: the media threads say how much of their time they
//! spend visiting calls and how often a visit starts late; when that says they cannot
//! pace more calls, new calls get 503 with Retry-After, and the calls already up keep
//! their 20 ms. `max_calls` is a count set in advance; this is what the machine does
//! now, with whatever else runs on it.
//!
//! The endpoint's gate (`src/server/farm.rs`) asks [`Overload::refuse`] for every new
//! INVITE and answers a refusal statelessly, before any dialog, task or record exists;
//! the pump's counters are sampled at most every [`INTERVAL`], so asking costs a lock
//! and a clock read.
//!
//! The decision ([`Detector`]) is pure: a sample of counters and the time in, refuse or
//! admit out. Busy is the CPU time the threads spent visiting (their own CPU clock:
//! time spent waiting for a core while another program compiles does not count) over
//! the time their visits cover. It trips when, over the last interval, the media threads
//! were busy more than [`BUSY_HIGH`] of their time, or started more than [`LATE_HIGH`] of their visits
//! late while doing real work (late visits alone happen on any busy machine with three
//! calls up; with few calls the busy share stays near zero). It clears only after
//! [`CLEAR_AFTER`] of samples below [`BUSY_LOW`] without that late share, so that it
//! does not flap between admitting a burst and refusing.
use crate::call::pump::{MediaPump, PumpStats};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often the pump's counters are sampled.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// One visit is due every 2 ms: the share of that time spent visiting.
const SLOT_NS: f64 = 2_000_000.0;
/// Busier than this and a thread has no room for more calls' sends: a few more calls,
/// or the client's share of the core, and visits start late.
pub const BUSY_HIGH: f64 = 0.75;
pub const BUSY_LOW: f64 = 0.6;
/// Late visits (a slot started more than 2 ms after its time) over visits.
pub const LATE_HIGH: f64 = 0.05;
/// A late-visit share counts only when the threads do real work: below this busy share
/// they are late because the machine is busy with something else, not because of calls.
pub const LATE_NEEDS_BUSY: f64 = 0.4;
/// Calm this long before admitting again.
pub const CLEAR_AFTER: Duration = Duration::from_secs(2);

/// What the detector reads of the pump: monotonic counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub visits: u64,
    pub busy_ns: u64,
    pub late_visits: u64,
}

impl From<PumpStats> for Sample {
    fn from(s: PumpStats) -> Sample {
        Sample {
            visits: s.visits,
            busy_ns: s.busy_ns,
            late_visits: s.late_visits,
        }
    }
}

/// What one interval looked like.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub busy: f64,
    pub late: f64,
}

#[derive(Debug)]
pub struct Detector {
    /// Busier than this trips ([`BUSY_HIGH`] unless `overload_busy` says otherwise);
    /// calm is below [`BUSY_LOW`] scaled alike.
    busy_high: f64,
    last: Option<(Instant, Sample)>,
    /// Refusing since; and since when it has been calm.
    tripped: Option<Instant>,
    calm_since: Option<Instant>,
    pub load: Load,
    /// Times it tripped, for `/healthz`.
    pub trips: u64,
}

impl Default for Detector {
    fn default() -> Detector {
        Detector::new(BUSY_HIGH)
    }
}

impl Detector {
    pub fn new(busy_high: f64) -> Detector {
        Detector {
            busy_high,
            last: None,
            tripped: None,
            calm_since: None,
            load: Load::default(),
            trips: 0,
        }
    }

    /// Takes a sample if the last is [`INTERVAL`] old; true: refuse new calls now.
    pub fn observe(&mut self, now: Instant, s: Sample) -> bool {
        let Some((at, prev)) = self.last else {
            self.last = Some((now, s));
            return false;
        };
        if now.duration_since(at) < INTERVAL {
            return self.tripped.is_some();
        }
        self.last = Some((now, s));
        let visits = s.visits.saturating_sub(prev.visits);
        if visits == 0 {
            // No calls: the threads sleep. Nothing to pace, nothing to refuse for.
            self.load = Load::default();
            self.tripped = None;
            self.calm_since = None;
            return false;
        }
        let load = Load {
            busy: s.busy_ns.saturating_sub(prev.busy_ns) as f64 / (visits as f64 * SLOT_NS),
            late: s.late_visits.saturating_sub(prev.late_visits) as f64 / visits as f64,
        };
        self.load = load;
        let busy_low = self.busy_high * (BUSY_LOW / BUSY_HIGH);
        let late_needs = LATE_NEEDS_BUSY.min(self.busy_high);
        let high = load.busy > self.busy_high || (load.late > LATE_HIGH && load.busy > late_needs);
        // Late visits while the threads are nearly idle are the machine's doing: they
        // neither trip nor hold the refusal.
        let calm = load.busy < busy_low && (load.late <= LATE_HIGH || load.busy < late_needs);
        match self.tripped {
            None if high => {
                self.tripped = Some(now);
                self.calm_since = None;
                self.trips += 1;
            }
            None => {}
            Some(_) if !calm => self.calm_since = None,
            Some(_) => {
                let since = *self.calm_since.get_or_insert(at);
                if now.duration_since(since) >= CLEAR_AFTER {
                    self.tripped = None;
                    self.calm_since = None;
                }
            }
        }
        self.tripped.is_some()
    }
}

/// The admission's view: on or off (`overload_refuse`), and the detector.
pub struct Overload {
    enabled: bool,
    detector: Mutex<Detector>,
}

impl Overload {
    pub fn new(enabled: bool) -> Overload {
        Overload::with_busy_high(enabled, BUSY_HIGH)
    }

    /// `overload_busy`: the busy share that trips the refusal.
    pub fn with_busy_high(enabled: bool, busy_high: f64) -> Overload {
        Overload {
            enabled,
            detector: Mutex::new(Detector::new(busy_high)),
        }
    }

    /// Why a new call should be refused now, if it should.
    pub fn refuse(&self, pump: &MediaPump) -> Option<&'static str> {
        if !self.enabled {
            return None;
        }
        let mut d = self.detector.lock().ok()?;
        d.observe(Instant::now(), pump.stats().into())
            .then_some("the media threads cannot pace more calls")
    }

    /// `/healthz` lines: the last interval's load and how often it refused.
    pub fn health(&self) -> String {
        let Ok(d) = self.detector.lock() else {
            return String::new();
        };
        format!(
            "media_overloaded {}\nmedia_overload_trips {}\nmedia_busy {:.3}\nmedia_late_share {:.3}\n",
            u8::from(d.tripped.is_some()),
            d.trips,
            d.load.busy,
            d.load.late
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread visiting 500 times a second, each visit taking `busy` of its 2 ms, `late`
    /// of them late, for `for_` (advances the paused clock).
    async fn run(d: &mut Detector, s: &mut Sample, busy: f64, late: f64, for_: Duration) -> bool {
        let mut refused = false;
        let steps = (for_.as_millis() / 50) as u64;
        for _ in 0..steps {
            tokio::time::advance(Duration::from_millis(50)).await;
            let visits = 25;
            s.visits += visits;
            s.busy_ns += (visits as f64 * SLOT_NS * busy) as u64;
            s.late_visits += (visits as f64 * late).round() as u64;
            refused = d.observe(Instant::now(), *s);
        }
        refused
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_while_the_threads_are_too_busy_and_admits_after_calm() {
        let mut d = Detector::default();
        let mut s = Sample::default();
        assert!(
            !d.observe(Instant::now(), s),
            "the first sample only sets the base"
        );
        assert!(!run(&mut d, &mut s, 0.5, 0.0, Duration::from_secs(2)).await);
        assert!(run(&mut d, &mut s, 0.9, 0.0, Duration::from_millis(300)).await);
        assert_eq!(d.trips, 1);
        assert!(d.load.busy > 0.85, "{:?}", d.load);
        // Below the high mark but above the low one: still refusing.
        assert!(run(&mut d, &mut s, 0.7, 0.0, Duration::from_secs(5)).await);
        // Calm, but not for long enough yet.
        assert!(run(&mut d, &mut s, 0.4, 0.0, Duration::from_millis(1500)).await);
        assert!(!run(&mut d, &mut s, 0.4, 0.0, Duration::from_millis(1000)).await);
        assert_eq!(d.trips, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn late_visits_count_only_when_the_threads_work() {
        let mut d = Detector::default();
        let mut s = Sample::default();
        d.observe(Instant::now(), s);
        // Three calls on a machine busy with something else: late, but not our load.
        assert!(!run(&mut d, &mut s, 0.01, 0.2, Duration::from_secs(2)).await);
        // Real work and late: the threads are losing the race for the cores.
        assert!(run(&mut d, &mut s, 0.5, 0.1, Duration::from_millis(300)).await);
        // Working and still late keeps it refusing, below the busy mark too.
        assert!(run(&mut d, &mut s, 0.3, 0.0, Duration::from_millis(1500)).await);
        assert!(run(&mut d, &mut s, 0.5, 0.1, Duration::from_millis(500)).await);
        assert!(run(&mut d, &mut s, 0.3, 0.0, Duration::from_millis(1500)).await);
        assert!(!run(&mut d, &mut s, 0.3, 0.0, Duration::from_millis(1000)).await);
        // Tripped again; nearly idle but late (a build took the cores): that is calm.
        assert!(run(&mut d, &mut s, 0.9, 0.0, Duration::from_millis(300)).await);
        assert!(!run(&mut d, &mut s, 0.05, 0.3, Duration::from_millis(2600)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn samples_closer_than_the_interval_change_nothing() {
        let mut d = Detector::default();
        let mut s = Sample::default();
        d.observe(Instant::now(), s);
        tokio::time::advance(Duration::from_millis(100)).await;
        s.visits += 50;
        s.busy_ns += 50 * 2_000_000;
        assert!(!d.observe(Instant::now(), s), "100 ms: not sampled yet");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(d.observe(Instant::now(), s), "300 ms of full visits");
        // The threads stop (no calls): nothing to refuse for.
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(!d.observe(Instant::now(), s));
    }
}
