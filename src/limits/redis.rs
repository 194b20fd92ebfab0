//! Rate-limit counters in Redis, shared by every replica. Each update is one Lua script, so
//! the check and the increment happen atomically on the server: two replicas admitting at the
//! same moment cannot both take the last slot.
//!
//! Keys: `<prefix>limit:{<client hash>}:requests` and `…:tokens`. The client key is hashed
//! (SHA-256, first 16 bytes) so no client identifier or secret is written to Redis; the
//! braces keep one client's keys in one Redis Cluster slot, as the script needs.

use sha2::{Digest, Sha256};

use super::{LimitPolicy, RetryAfter, WINDOW};
use crate::redis_store::{RedisStore, RedisUnavailable};

/// KEYS[1] requests counter, KEYS[2] tokens counter; ARGV[1] window in ms, ARGV[2] request
/// limit, ARGV[3] token limit (0 = none). Returns {refused (0 none, 1 requests, 2 tokens),
/// milliseconds left in the refusing window}. An admitted request is counted.
const CHECK: &str = r"
local window = tonumber(ARGV[1])
local request_limit = tonumber(ARGV[2])
local token_limit = tonumber(ARGV[3])
if token_limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= token_limit then
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl < 0 then ttl = window end
    return {2, ttl}
  end
end
if request_limit > 0 then
  local count = tonumber(redis.call('GET', KEYS[1]) or '0')
  if count >= request_limit then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[1], window)
      ttl = window
    end
    return {1, ttl}
  end
  count = redis.call('INCR', KEYS[1])
  if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
end
return {0, 0}
";

/// KEYS[1] tokens counter; ARGV[1] tokens, ARGV[2] window in ms. Returns {total, ms left}.
const ADD_TOKENS: &str = r"
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {total, ttl}
";

/// Counters in Redis.
#[derive(Debug)]
pub struct RedisLimits {
    redis: RedisStore,
    check: redis::Script,
    add_tokens: redis::Script,
}

fn window_ms() -> u64 {
    u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX)
}

impl RedisLimits {
    /// Counters on `redis`.
    pub fn new(redis: RedisStore) -> Self {
        RedisLimits {
            redis,
            check: redis::Script::new(CHECK),
            add_tokens: redis::Script::new(ADD_TOKENS),
        }
    }

    /// The connection, for its rate-limited warnings.
    pub fn store(&self) -> &RedisStore {
        &self.redis
    }

    fn key(&self, client: &str, limit: &str) -> String {
        let digest = Sha256::digest(client.as_bytes());
        let mut hex = String::with_capacity(32);
        for b in &digest[..16] {
            hex.push_str(&format!("{b:02x}"));
        }
        self.redis.key(&format!("limit:{{{hex}}}:{limit}"))
    }

    /// See [`super::RateLimiter::check_request`]; `Err` when Redis could not answer.
    pub async fn check_request(
        &self,
        client: &str,
        policy: &LimitPolicy,
    ) -> Result<Result<(), RetryAfter>, RedisUnavailable> {
        let mut invocation = self.check.prepare_invoke();
        invocation
            .key(self.key(client, "requests"))
            .key(self.key(client, "tokens"))
            .arg(window_ms())
            .arg(policy.requests_per_minute.unwrap_or(0))
            .arg(policy.tokens_per_minute.unwrap_or(0));
        let (refused, ttl_ms): (u8, u64) = self.redis.run_script(&invocation).await?;
        let after = std::time::Duration::from_millis(ttl_ms);
        Ok(match refused {
            0 => Ok(()),
            1 => Err(RetryAfter { limit: "requests", after }),
            _ => Err(RetryAfter { limit: "tokens", after }),
        })
    }

    /// See [`super::RateLimiter::add_tokens`].
    pub async fn add_tokens(&self, client: &str, tokens: u64) -> Result<(), RedisUnavailable> {
        let mut invocation = self.add_tokens.prepare_invoke();
        invocation.key(self.key(client, "tokens")).arg(tokens).arg(window_ms());
        let _: (u64, i64) = self.redis.run_script(&invocation).await?;
        Ok(())
    }
}
