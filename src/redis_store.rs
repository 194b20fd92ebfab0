//! The connection to the Redis server that replicas share (`redis:`), used by the response
//! cache ([`crate::cache`]) and the rate limits ([`crate::limits`]).
//!
//! Redis is an optimisation here, never a dependency of a call: every command runs under
//! `redis.command_timeout`, and a failure (Redis down, slow, or refusing) is returned as
//! [`RedisUnavailable`] for the caller to degrade on, with one warning per
//! [`WARN_INTERVAL`] so an outage does not flood the log. The connection is made lazily (the
//! gateway starts while Redis is down) and the `redis` crate's connection manager reconnects
//! on the first command after an I/O error, so the cache and limits come back with Redis.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{
    Client, IntoConnectionInfo,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::config::RedisConfig;

/// Least time between two warnings about Redis errors.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A failed Redis command; the caller carries on without Redis.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisUnavailable(String);

/// A shared, cheaply cloned handle on the Redis server.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    key_prefix: Arc<str>,
    command_timeout: Duration,
    last_warning: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("key_prefix", &self.key_prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config`, connecting on first use. Must run inside a tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<RedisStore, RedisUnavailable> {
        let info = config.url.as_str().into_connection_info().map_err(unavailable)?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &config.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password.expose());
        }
        let client = Client::open(info.set_redis_settings(settings)).map_err(unavailable)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // One quick retry per reconnect: a down Redis must fail fast, the next command
            // tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let connection =
            ConnectionManager::new_lazy_with_config(client, manager).map_err(unavailable)?;
        Ok(RedisStore {
            connection,
            key_prefix: config.key_prefix.as_str().into(),
            command_timeout: config.command_timeout,
            last_warning: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `key` under the configured prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Runs one command (or script invocation) under the command timeout.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, RedisUnavailable> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.command_timeout, command.query_async(&mut connection)).await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(RedisUnavailable(format!(
                "no answer within {}ms",
                self.command_timeout.as_millis()
            ))),
        }
    }

    /// Runs a Lua script under the command timeout (EVALSHA, loading it when Redis lacks it).
    pub async fn run_script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisUnavailable> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.command_timeout, invocation.invoke_async(&mut connection))
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(RedisUnavailable(format!(
                "no answer within {}ms",
                self.command_timeout.as_millis()
            ))),
        }
    }

    /// Logs `error` as a warning unless one was logged within [`WARN_INTERVAL`].
    pub fn warn(&self, what: &str, error: &RedisUnavailable) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last.saturating_add(WARN_INTERVAL.as_secs())
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "{what}; going on without Redis (further errors within {}s are not logged)", WARN_INTERVAL.as_secs());
        }
    }
}

fn unavailable(e: redis::RedisError) -> RedisUnavailable {
    RedisUnavailable(e.to_string())
}
