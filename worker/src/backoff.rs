//! Waits between tries that double up to a ceiling, so a server that is down is not hammered
//! and one that is back is found again soon.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(200);
const CEILING: Duration = Duration::from_secs(5);

pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// How long the next wait is.
    pub fn peek(&self) -> Duration {
        self.next
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(CEILING);
    }

    /// After a success: the next trouble starts with a short wait again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_ceiling_and_start_over_after_a_success() {
        let mut backoff = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..7 {
            waits.push(backoff.peek());
            backoff.wait().await;
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.peek(), FIRST);
    }
}
