//! A latency histogram with fixed buckets, safe to record into from many tasks at once, read
//! out in the shape Prometheus expects (cumulative bucket counts, a sum and a count).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from a fast fsync to a slow request.
pub const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// For each bound of [`BOUNDS`]: how many observations were at most that long.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(BOUNDS.len());
        for bucket in &self.buckets[..BOUNDS.len()] {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[BOUNDS.len()].load(Ordering::Relaxed);
        Snapshot {
            cumulative,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.cumulative[0], 1, "≤ 0.5 ms");
        assert_eq!(snapshot.cumulative[2], 1, "≤ 2.5 ms");
        assert_eq!(snapshot.cumulative[3], 2, "≤ 5 ms");
        assert_eq!(
            snapshot.cumulative[BOUNDS.len() - 1],
            2,
            "60 s is above every bound"
        );
        assert!((snapshot.sum_seconds - 60.0033).abs() < 1e-9);
    }
}
