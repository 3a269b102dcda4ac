//! The request budget: `requests_per_minute` and `max_requests_per_hour`.
//!
//! A question over budget is not queued until the budget frees (its events
//! would wait, and the queue would grow with every new pattern): it is
//! treated like a failed question, so its events are decided by `on_error`
//! (fail open by default) and the pattern is asked again after the error
//! backoff. Both limits are GCRA rate limiters from the delivery core, used
//! without waiting: a burst of up to the limit, then a steady rate.

use std::time::Duration;

use crate::http::RateLimiter;

/// The two limits; `0` turns one off.
pub struct Budget {
    per_minute: Option<RateLimiter>,
    per_hour: Option<RateLimiter>,
}

impl Budget {
    /// A budget of `per_minute` and `per_hour` questions.
    pub fn new(per_minute: u64, per_hour: u64) -> Self {
        let limiter = |num: u64, window: u64| {
            (num > 0).then(|| RateLimiter::new(num, Duration::from_secs(window)))
        };
        Self {
            per_minute: limiter(per_minute, 60),
            per_hour: limiter(per_hour, 3600),
        }
    }

    /// Books one question, or names the limit that refuses it. A question
    /// refused by the hourly limit may still use a per-minute slot, which
    /// does not matter: the hourly limit is the tighter one then.
    pub fn try_take(&self) -> Result<(), &'static str> {
        if self.per_minute.as_ref().is_some_and(|l| !l.try_acquire()) {
            return Err("requests_per_minute");
        }
        if self.per_hour.as_ref().is_some_and(|l| !l.try_acquire()) {
            return Err("max_requests_per_hour");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn names_the_limit_that_refuses() {
        let budget = Budget::new(2, 3);
        assert_eq!(budget.try_take(), Ok(()));
        assert_eq!(budget.try_take(), Ok(()));
        assert_eq!(budget.try_take(), Err("requests_per_minute"));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(budget.try_take(), Ok(()));
        assert_eq!(budget.try_take(), Err("max_requests_per_hour"));
        assert_eq!(Budget::new(0, 0).try_take(), Ok(()), "0 turns limits off");
    }
}
