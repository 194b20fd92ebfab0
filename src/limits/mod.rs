//! Per-client rate limits: requests and tokens per minute, counted in this process
//! ([`memory`], one replica) or in the Redis server every replica shares ([`redis`], so a
//! limit of N holds for the fleet, not N per replica).
//!
//! Where it sits in the request flow: after auth has identified the caller's client key, the
//! rate-limit step calls [`RateLimiter::check_request`] with the key's [`LimitPolicy`]; a
//! refusal is [`Error::RateLimited`] (RESOURCE_EXHAUSTED, reason `RATE_LIMITED`, with
//! `RetryInfo`). When the call ends, its tokens are added with [`RateLimiter::add_tokens`]. A
//! token limit refuses calls once the minute's tokens are spent (a call's size is not known
//! before it runs, so the call that crosses the line is let through).
//!
//! Windows are fixed, one minute, aligned to the first request of the window (a counter that
//! expires a minute after it was created): one key per client and limit, updated atomically
//! by one Lua script, and `RetryInfo` is exactly the time left in the window. A sliding window
//! would smooth the burst a fixed window allows at its edge (up to 2N over two adjacent
//! windows' boundary), but costs a sorted set of timestamps per client or an approximation;
//! for cost and abuse control of LLM calls the fixed window's bound is good enough and is what
//! operators expect from "N per minute".
//!
//! Redis down: the limiter fails open — the call goes through, `ai_service_rate_limit_errors_total`
//! counts it and a rate-limited warning is logged. Refusing every call because the limiter's
//! store is away would turn a Redis outage into a full outage of the gateway; the limits are a
//! fairness and cost control, not an authorisation check.

pub mod budget;
pub mod memory;
pub mod redis;

use std::time::Duration;

pub use crate::config::LimitPolicy;
use crate::{
    config::{Backend, Config},
    error::Error,
    metrics::Recorder,
    redis_store::RedisStore,
};

/// The length of a window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A refusal: which limit, and when the window that refused ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    /// `requests` or `tokens`.
    pub limit: &'static str,
    /// Time left in the window.
    pub after: Duration,
}

impl From<RetryAfter> for Error {
    fn from(r: RetryAfter) -> Error {
        Error::RateLimited { limit: r.limit, retry_after: r.after }
    }
}

/// Where the counters live.
#[derive(Debug)]
enum Counters {
    Memory(memory::MemoryLimits),
    Redis(redis::RedisLimits),
}

/// The rate limiter of a gateway; shared by every call.
#[derive(Debug)]
pub struct RateLimiter {
    counters: Counters,
    metrics: Recorder,
}

impl RateLimiter {
    /// Counters in this process.
    pub fn memory(metrics: Recorder) -> RateLimiter {
        RateLimiter { counters: Counters::Memory(memory::MemoryLimits::default()), metrics }
    }

    /// Counters in `redis`, shared by every limiter on the same server and key prefix.
    pub fn redis(redis: RedisStore, metrics: Recorder) -> RateLimiter {
        RateLimiter { counters: Counters::Redis(redis::RedisLimits::new(redis)), metrics }
    }

    /// The limiter `config.limits` describes; Redis when configured and connectable.
    pub fn from_config(
        config: &Config,
        redis: Option<&RedisStore>,
        metrics: Recorder,
    ) -> RateLimiter {
        match (config.limits.backend, redis) {
            (Backend::Redis, Some(redis)) => RateLimiter::redis(redis.clone(), metrics),
            (Backend::Redis, None) => {
                tracing::error!(
                    "limits.backend is redis but no Redis connection could be made; counting in memory"
                );
                RateLimiter::memory(metrics)
            }
            (Backend::Memory, _) => RateLimiter::memory(metrics),
        }
    }

    /// Admits one request of `client` under `policy`, or says when to retry. Counts the
    /// request against the window when admitted.
    pub async fn check_request(
        &self,
        client: &str,
        policy: &LimitPolicy,
    ) -> Result<(), RetryAfter> {
        if policy.is_unlimited() {
            return Ok(());
        }
        let verdict = match &self.counters {
            Counters::Memory(m) => Ok(m.check_request(client, policy)),
            Counters::Redis(r) => r.check_request(client, policy).await,
        };
        match verdict {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refusal)) => {
                self.metrics.rate_limited(refusal.limit);
                Err(refusal)
            }
            Err(e) => {
                self.metrics.rate_limit_error("check");
                if let Counters::Redis(r) = &self.counters {
                    r.store().warn("rate-limit check failed, letting the call through", &e);
                }
                Ok(())
            }
        }
    }

    /// Adds a finished call's `tokens` to `client`'s window, when `policy` limits tokens.
    pub async fn add_tokens(&self, client: &str, tokens: u64, policy: &LimitPolicy) {
        if policy.tokens_per_minute.is_none() || tokens == 0 {
            return;
        }
        let result = match &self.counters {
            Counters::Memory(m) => {
                m.add_tokens(client, tokens);
                Ok(())
            }
            Counters::Redis(r) => r.add_tokens(client, tokens).await,
        };
        if let Err(e) = result {
            self.metrics.rate_limit_error("add_tokens");
            if let Counters::Redis(r) = &self.counters {
                r.store().warn("rate-limit token update failed", &e);
            }
        }
    }
}
