//! Retry delays: exponential backoff with jitter. The jitter comes from a hash of the
//! attempt's identity, not a random number, so replaying a run computes the same delay.

use std::time::Duration;

/// The longest a retry ever waits.
const CEILING: Duration = Duration::from_secs(60 * 60);

/// `base × 2^(attempt−1)`, at most an hour, plus up to a quarter more picked by `seed`.
pub fn backoff(base: Duration, attempt: u32, seed: &str) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    let exponential = base.saturating_mul(1 << doublings).min(CEILING);
    let jitter = f64::from(fnv1a(seed) % 1000) / 4000.0;
    exponential + exponential.mul_f64(jitter)
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_bounded_deterministic_jitter() {
        let base = Duration::from_secs(10);
        for attempt in 1..=4 {
            let delay = backoff(base, attempt, "run/agent/1");
            let floor = base * 2u32.pow(attempt - 1);
            assert!(
                delay >= floor && delay <= floor + floor / 4,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert_eq!(
            backoff(base, 2, "a"),
            backoff(base, 2, "a"),
            "the same attempt waits the same"
        );
        assert_ne!(
            backoff(base, 2, "a"),
            backoff(base, 2, "b"),
            "different attempts spread out"
        );
        assert!(backoff(base, 40, "a") <= CEILING + CEILING / 4);
        assert_eq!(backoff(Duration::ZERO, 3, "a"), Duration::ZERO);
    }
}
