//! Distributions: a fixed-bin histogram for the millions of packets, sorted samples
//! for the thousands of marks.
use serde_json::{Value, json};

/// Counts of values in `step`-wide bins up to `max`; larger values are counted and
/// remembered as the maximum.
#[derive(Clone, Debug, Default)]
pub struct Histo {
    step: u64,
    bins: Vec<u64>,
    over: u64,
    count: u64,
    max: u64,
    sum: u128,
}

impl Histo {
    pub fn new(step: u64, max: u64) -> Histo {
        Histo {
            step,
            bins: vec![0; (max / step) as usize + 1],
            ..Histo::default()
        }
    }

    pub fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
        match self.bins.get_mut((v / self.step.max(1)) as usize) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The upper edge of the bin holding the q-quantile.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, b) in self.bins.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return ((i as u64 + 1) * self.step).min(self.max);
            }
        }
        self.max
    }

    /// Share of values above `v`.
    pub fn above(&self, v: u64) -> u64 {
        let from = (v / self.step.max(1)) as usize + 1;
        self.bins.iter().skip(from).sum::<u64>() + self.over
    }

    pub fn json_ms(&self) -> Value {
        let ms = |ns: u64| ns as f64 / 1e6;
        json!({
            "count": self.count,
            "mean_ms": self.mean() / 1e6,
            "p50_ms": ms(self.quantile(0.5)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max),
            "over_20ms": self.above(20_000_000),
        })
    }
}

/// Quantile of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Median, p99, extremes and how many fall outside ±`tol` (all in ms).
pub fn summary_ms(values_ms: &mut [f64], tol: f64) -> Value {
    values_ms.sort_by(f64::total_cmp);
    let n = values_ms.len();
    if n == 0 {
        return json!({ "count": 0 });
    }
    let outside = values_ms.iter().filter(|v| v.abs() > tol).count();
    json!({
        "count": n,
        "min_ms": values_ms[0],
        "p1_ms": quantile(values_ms, 0.01),
        "median_ms": quantile(values_ms, 0.5),
        "p99_ms": quantile(values_ms, 0.99),
        "max_ms": values_ms[n - 1],
        "outside_tolerance": outside,
        "tolerance_ms": tol,
    })
}

pub fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}
