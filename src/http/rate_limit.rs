//! At most `num` requests per window, with bursts up to `num` (GCRA, the
//! algorithm behind most API rate limiters): a sink never trips the
//! destination's own limit and never needs a 429 to slow down.
//!
//! Two ways to use it: [`RateLimiter::acquire`] waits for a slot (sinks,
//! whose events can wait), [`RateLimiter::try_acquire`] never waits and says
//! whether a slot was free (budgets where going over is an outcome to
//! report, such as the `llm_suppress` transform's request budget: it fails
//! open instead of holding events until a slot frees).

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

    /// Books a request if one may go out now, without waiting; `false` (and
    /// nothing booked) when the budget is spent.
    pub fn try_acquire(&self) -> bool {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let tat = next.map_or(now, |t| t.max(now));
        if tat.checked_sub(self.tolerance).is_some_and(|at| at > now) {
            return false;
        }
        *next = Some(tat + self.interval);
        true
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

    #[tokio::test(start_paused = true)]
    async fn try_acquire_refuses_over_the_burst_without_waiting_then_refills() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let granted: Vec<bool> = (0..5).map(|_| limiter.try_acquire()).collect();
        assert_eq!(granted, [true, true, true, false, false]);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(limiter.try_acquire(), "one slot refills every 20 s");
        assert!(!limiter.try_acquire());
    }
}
