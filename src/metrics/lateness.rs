//! The send-lateness histogram of the media threads: how late each RTP frame went out
//! against its 20 ms schedule. Filled per packet, so it takes no lock and allocates
//! nothing: each pump thread counts into plain local buckets while it visits a slot,
//! and adds them once per visit to atomics that only it writes; a scrape sums the
//! threads' atomics.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (and the same in nanoseconds below): a
/// frame is normally within a slot (4 ms) of its time; the pacer skips frames later
/// than 100 ms.
pub const BOUNDS_S: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
const BOUNDS_NS: [u64; 10] = [
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
];
/// The buckets and one more for anything later (`+Inf`).
pub const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// One thread's counts during a visit: plain integers on its own stack.
#[derive(Default)]
pub struct Local {
    buckets: [u64; BUCKETS],
    sum_ns: u64,
}

impl Local {
    #[inline]
    pub fn observe(&mut self, late: Duration) {
        self.observe_n(late, 1);
    }

    /// `n` frames that were each `late`: the frames of one slot share their due time.
    #[inline]
    pub fn observe_n(&mut self, late: Duration, n: u64) {
        let ns = late.as_nanos().min(u64::MAX as u128) as u64;
        let i = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        self.buckets[i] += n;
        self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(n));
    }
}

/// One thread's running totals, read by the scrape.
#[derive(Default)]
pub struct Shared {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Shared {
    /// Adds a visit's counts and clears them.
    pub fn flush(&self, local: &mut Local) {
        let mut any = false;
        for (a, n) in self.buckets.iter().zip(local.buckets.iter_mut()) {
            if *n > 0 {
                a.fetch_add(*n, Relaxed);
                *n = 0;
                any = true;
            }
        }
        if any {
            self.sum_ns.fetch_add(local.sum_ns, Relaxed);
            local.sum_ns = 0;
        }
    }

    pub fn add_to(&self, snap: &mut Snapshot) {
        for (s, a) in snap.buckets.iter_mut().zip(self.buckets.iter()) {
            *s += a.load(Relaxed);
        }
        snap.sum_ns += self.sum_ns.load(Relaxed);
    }
}

/// The threads' totals at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per bucket, not cumulative; the last is `+Inf`.
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_land_in_their_buckets_and_flush_once() {
        let mut l = Local::default();
        l.observe(Duration::ZERO);
        l.observe(Duration::from_micros(1500));
        l.observe(Duration::from_millis(120));
        l.observe(Duration::from_secs(3));
        let s = Shared::default();
        s.flush(&mut l);
        s.flush(&mut l);
        let mut snap = Snapshot::default();
        s.add_to(&mut snap);
        assert_eq!(snap.buckets, [1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(snap.count(), 4);
        assert_eq!(snap.sum_ns, 3_121_500_000);
    }

    #[test]
    fn a_slots_frames_counted_at_once_are_as_many_frames() {
        let (mut one, mut many) = (Local::default(), Local::default());
        for _ in 0..3 {
            one.observe(Duration::from_micros(1500));
        }
        many.observe_n(Duration::from_micros(1500), 3);
        many.observe_n(Duration::from_millis(7), 0);
        assert_eq!(one.buckets, many.buckets);
        assert_eq!(one.sum_ns, many.sum_ns);
    }
}
