//! Rate-limit counters in this process: one replica's view. Fixed one-minute windows, as in
//! the Redis backend; expired windows are swept once the map grows, so idle clients do not
//! accumulate. Times are tokio's, so tests can pause them.

use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use super::{LimitPolicy, RetryAfter, WINDOW};
use crate::fast_map::FastMap;

/// Clients tracked before expired windows are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

#[derive(Debug, Default)]
struct Windows {
    requests: FastMap<String, Window>,
    tokens: FastMap<String, Window>,
}

/// In-memory counters.
#[derive(Debug, Default)]
pub struct MemoryLimits {
    inner: Mutex<Windows>,
}

/// The live window of `client` in `map`, opened now when it has none.
fn window<'a>(map: &'a mut FastMap<String, Window>, client: &str, now: Instant) -> &'a mut Window {
    if map.len() >= SWEEP_AT {
        map.retain(|_, w| w.ends > now);
    }
    let w = map.entry(client.to_owned()).or_insert(Window { count: 0, ends: now + WINDOW });
    if w.ends <= now {
        *w = Window { count: 0, ends: now + WINDOW };
    }
    w
}

impl MemoryLimits {
    /// See [`super::RateLimiter::check_request`].
    pub fn check_request(&self, client: &str, policy: &LimitPolicy) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let mut windows = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limit) = policy.tokens_per_minute {
            let w = window(&mut windows.tokens, client, now);
            if w.count >= limit {
                return Err(RetryAfter { limit: "tokens", after: w.ends - now });
            }
        }
        if let Some(limit) = policy.requests_per_minute {
            let w = window(&mut windows.requests, client, now);
            if w.count >= limit {
                return Err(RetryAfter { limit: "requests", after: w.ends - now });
            }
            w.count += 1;
        }
        Ok(())
    }

    /// See [`super::RateLimiter::add_tokens`].
    pub fn add_tokens(&self, client: &str, tokens: u64) {
        let now = Instant::now();
        let mut windows = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let w = window(&mut windows.tokens, client, now);
        w.count = w.count.saturating_add(tokens);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn n_requests_per_window_then_retry_when_it_ends() {
        let limits = MemoryLimits::default();
        let policy = LimitPolicy { requests_per_minute: Some(3), tokens_per_minute: None };
        for _ in 0..3 {
            limits.check_request("a", &policy).unwrap();
        }
        tokio::time::advance(Duration::from_secs(20)).await;
        let refusal = limits.check_request("a", &policy).unwrap_err();
        assert_eq!(refusal, RetryAfter { limit: "requests", after: Duration::from_secs(40) });
        limits.check_request("b", &policy).unwrap(); // clients are counted apart
        tokio::time::advance(Duration::from_secs(40)).await;
        limits.check_request("a", &policy).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn spent_tokens_refuse_until_the_window_ends() {
        let limits = MemoryLimits::default();
        let policy = LimitPolicy { requests_per_minute: None, tokens_per_minute: Some(100) };
        limits.check_request("a", &policy).unwrap();
        limits.add_tokens("a", 60);
        limits.check_request("a", &policy).unwrap();
        limits.add_tokens("a", 60);
        let refusal = limits.check_request("a", &policy).unwrap_err();
        assert_eq!(refusal.limit, "tokens");
        tokio::time::advance(WINDOW).await;
        limits.check_request("a", &policy).unwrap();
    }
}
