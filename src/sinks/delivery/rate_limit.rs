//! At most `num` requests per window, with bursts up to `num` (GCRA, the
//! algorithm behind most API rate limiters): a sink never trips the
//! destination's own limit and never needs a 429 to slow down.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A shared rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// The theoretical arrival time of the next request.
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `num` requests per `window`.
    pub fn new(num: u64, window: Duration) -> Self {
        let interval = window / num.max(1).min(u32::MAX as u64) as u32;
        Self {
            interval,
            tolerance: window.saturating_sub(interval),
            next: Mutex::new(None),
        }
    }

    /// Waits until a request may go out, and books it.
    pub async fn acquire(&self) {
        let wait_until = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let tat = next.map_or(now, |t| t.max(now));
            *next = Some(tat + self.interval);
            tat.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_paces() {
        let limiter = RateLimiter::new(2, Duration::from_secs(1));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..6 {
            limiter.acquire().await;
            times.push((Instant::now() - start).as_millis());
        }
        assert_eq!(times, vec![0, 0, 500, 1000, 1500, 2000]);
    }
}
