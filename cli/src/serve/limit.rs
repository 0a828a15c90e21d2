//! Per-token rate limiting: a token bucket per API token, refilled continuously. A request
//! over the limit is answered 429 with how long to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests a token may make in a burst, and how many it gets back per second.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            burst: 200.0,
            per_second: 50.0,
        }
    }
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
}
