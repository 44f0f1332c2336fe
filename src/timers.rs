//! Deadlines that may come a little late, rounded up onto one grid shared by the whole
//! process, so that tokio fires many of them at one wake-up of the async worker.
//!
//! Why: on the VMs hotline is measured on a wake-up of a sleeping worker costs 60–80 µs
//! of CPU, and per-call deadlines that nobody hears to the millisecond (a SIP
//! transaction lingering to absorb retransmissions, a flow timer's backstop) each woke
//! it at a millisecond of their own.
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// The grid's step: a deadline is kept at most this much later.
pub const GRID: Duration = Duration::from_millis(250);

/// `at`, or the first point of the grid after it.
pub fn coarse(at: Instant) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let Some(since) = at.checked_duration_since(epoch) else {
        return at;
    };
    let step = GRID.as_nanos() as u64;
    let ns = since.as_nanos() as u64;
    let steps = ns.div_ceil(step);
    epoch + Duration::from_nanos(steps.saturating_mul(step))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deadlines close together land on one point, never before themselves and never
    /// more than a step after.
    #[test]
    fn deadlines_close_together_share_a_point_of_the_grid() {
        // A deadline before the grid's start (the process's first) is kept as it is.
        let first = Instant::now();
        coarse(first);
        let base = coarse(Instant::now() + GRID);
        let points: Vec<Instant> = (1..=9)
            .map(|ms| {
                let at = base + Duration::from_millis(ms * 20);
                let c = coarse(at);
                assert!(c >= at && c - at < GRID, "{ms}: {:?}", c - at);
                c
            })
            .collect();
        assert!(points.iter().all(|p| *p == points[0]), "{points:?}");
        assert_eq!(coarse(base), base);
        assert_eq!(coarse(base + GRID), base + GRID);
        assert_eq!(coarse(base + Duration::from_millis(1)), base + GRID);
    }
}
