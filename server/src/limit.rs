//! Per-token rate limiting: a token bucket per API token, refilled continuously. A request
//! over the limit is answered 429 with how long to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limit when `server.rate_limit` is not set.
pub const DEFAULT_PER_SECOND: u32 = 50;
pub const DEFAULT_BURST: u32 = 200;

/// Requests a token may make in a burst, and how many it gets back per second; a
/// `per_second` of 0 turns limiting off (`server.rate_limit` in `.murmur/murmur.yaml`).
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Default for Rate {
    fn default() -> Self {
        Self::new(DEFAULT_PER_SECOND, DEFAULT_BURST)
    }
}

impl Rate {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
        }
    }
}

/// What a 429 puts in `Retry-After`: whole seconds, rounded up, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `who`'s bucket at `now`; `Err(wait)` when it is empty.
    pub fn take(&self, who: &str, now: Instant) -> Result<(), Duration> {
        if self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = buckets
            .entry(who.to_owned())
            .or_insert((self.rate.burst, now));
        let refilled = now.saturating_duration_since(*last).as_secs_f64() * self.rate.per_second;
        *tokens = (*tokens + refilled).min(self.rate.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) / self.rate.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate_per_token() {
        let limiter = Limiter::new(Rate {
            burst: 3.0,
            per_second: 2.0,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("a", start).is_ok());
        }
        let wait = limiter.take("a", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            limiter.take("b", start).is_ok(),
            "tokens have their own buckets"
        );
        assert!(
            limiter
                .take("a", start + Duration::from_millis(500))
                .is_ok(),
            "refilled at 2 per second"
        );
    }

    #[test]
    fn zero_per_second_is_no_limit_and_retry_after_rounds_up() {
        let off = Limiter::new(Rate::new(0, 0));
        let now = Instant::now();
        assert!((0..10_000).all(|_| off.take("a", now).is_ok()));
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
    }
}
