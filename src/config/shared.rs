//! The configuration of the state replicas may share: the response cache (`cache:` and
//! `routes[i].cache:`), rate-limit counters (`limits:`) and the Redis server that holds both
//! when they are shared (`redis:`). Validated here, beside the rest of [`super::validate`].

use std::{collections::HashMap, time::Duration};

use super::{
    ConfigError,
    raw::{Backend, RawCache, RawLimitPolicy, RawLimits, RawRedis, RawRouteCache},
};
use crate::secret::Secret;

/// `cache:`
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    /// Whether routes cache answers unless they say otherwise.
    pub enabled: bool,
    /// How long an answer stays.
    pub ttl: Duration,
    /// memory: most entries kept.
    pub max_entries: usize,
    /// memory: most bytes of stored answers kept.
    pub max_bytes: u64,
    /// Where answers are kept.
    pub backend: Backend,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            ttl: Duration::from_secs(300),
            max_entries: 10_000,
            max_bytes: 64 << 20,
            backend: Backend::Memory,
        }
    }
}

/// `routes[i].cache:` with the defaults of `cache:` filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteCache {
    /// Whether the route caches answers.
    pub enabled: bool,
    /// How long its answers stay.
    pub ttl: Duration,
}

/// `redis:`
#[derive(Clone, Debug, PartialEq)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL, without credentials.
    pub url: String,
    /// ACL user name.
    pub username: Option<String>,
    /// The password, read at start.
    pub password: Option<Secret>,
    /// Connect with TLS (the URL is then `rediss://`).
    pub tls: bool,
    /// Prepended to every key.
    pub key_prefix: String,
    /// Limit on opening a connection.
    pub connect_timeout: Duration,
    /// Limit on one command; past it the command counts as a Redis error.
    pub command_timeout: Duration,
}

/// `limits:`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Where the counters live.
    pub backend: Backend,
}

/// A client's rate limits, per minute; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Requests admitted per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per minute; a call is refused once the minute's tokens are
    /// spent, and its own tokens count when it ends.
    pub tokens_per_minute: Option<u64>,
}

impl LimitPolicy {
    /// Whether it limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }

    /// Validates a policy written at `at` (e.g. `auth.keys[2].limits`).
    pub fn validate(at: &str, raw: RawLimitPolicy) -> Result<LimitPolicy, ConfigError> {
        for (name, value) in [
            ("requests_per_minute", raw.requests_per_minute),
            ("tokens_per_minute", raw.tokens_per_minute),
        ] {
            if value == Some(0) {
                return Err(ConfigError::new(
                    format!("{at}.{name}"),
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
        Ok(LimitPolicy {
            requests_per_minute: raw.requests_per_minute,
            tokens_per_minute: raw.tokens_per_minute,
        })
    }
}

fn duration(value: Option<super::raw::HumanDuration>, default: Duration) -> Duration {
    value.map_or(default, |d| d.0)
}

pub(super) fn validate_cache(raw: RawCache) -> Result<CacheConfig, ConfigError> {
    let defaults = CacheConfig::default();
    let cache = CacheConfig {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        ttl: duration(raw.ttl, defaults.ttl),
        max_entries: raw.max_entries.unwrap_or(defaults.max_entries),
        max_bytes: raw.max_bytes.map_or(defaults.max_bytes, |b| b.0),
        backend: raw.backend.unwrap_or_default(),
    };
    if cache.ttl < Duration::from_millis(1) {
        return Err(ConfigError::new("cache.ttl", "must be at least 1ms"));
    }
    if cache.max_entries == 0 {
        return Err(ConfigError::new("cache.max_entries", "must be at least 1"));
    }
    if cache.max_bytes == 0 {
        return Err(ConfigError::new("cache.max_bytes", "must be at least 1 byte"));
    }
    Ok(cache)
}

pub(super) fn validate_route_cache(
    at: &str,
    raw: Option<RawRouteCache>,
    cache: &CacheConfig,
) -> Result<RouteCache, ConfigError> {
    let raw = raw.unwrap_or_default();
    let route = RouteCache {
        enabled: raw.enabled.unwrap_or(cache.enabled),
        ttl: duration(raw.ttl, cache.ttl),
    };
    if route.ttl < Duration::from_millis(1) {
        return Err(ConfigError::new(format!("{at}.cache.ttl"), "must be at least 1ms"));
    }
    Ok(route)
}

pub(super) fn validate_limits(raw: RawLimits) -> LimitsConfig {
    LimitsConfig { backend: raw.backend.unwrap_or_default() }
}

/// `redis:` is required when a backend is `redis`, and its URL must be one Redis accepts.
pub(super) fn validate_redis(
    raw: Option<RawRedis>,
    cache: &CacheConfig,
    limits: &LimitsConfig,
    vars: &HashMap<String, String>,
) -> Result<Option<RedisConfig>, ConfigError> {
    let needed_by = if cache.backend == Backend::Redis {
        Some("cache.backend")
    } else if limits.backend == Backend::Redis {
        Some("limits.backend")
    } else {
        None
    };
    let Some(raw) = raw else {
        return match needed_by {
            Some(field) => {
                Err(ConfigError::new("redis.url", format!("required because {field} is redis")))
            }
            None => Ok(None),
        };
    };
    let Some(url) = raw.url.map(|u| u.trim().to_owned()) else {
        return Err(ConfigError::new("redis.url", "required when redis: is set"));
    };
    let tls_url = url.starts_with("rediss://");
    if !tls_url && !url.starts_with("redis://") {
        return Err(ConfigError::new(
            "redis.url",
            format!("{url:?} is not a redis:// or rediss:// URL"),
        ));
    }
    if url.contains('@') {
        return Err(ConfigError::new(
            "redis.url",
            "must not carry credentials; use redis.username and redis.password_env or redis.password_file",
        ));
    }
    let tls = match raw.tls {
        Some(false) if tls_url => {
            return Err(ConfigError::new("redis.tls", "is false but redis.url is rediss://"));
        }
        Some(tls) => tls || tls_url,
        None => tls_url,
    };
    let url = if tls && !tls_url { url.replacen("redis://", "rediss://", 1) } else { url };
    if let Err(e) = redis::Client::open(url.as_str()) {
        return Err(ConfigError::new("redis.url", format!("{url:?} is not a Redis URL: {e}")));
    }
    let password = match (raw.password_env, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "redis.password_file",
                "set either password_env or password_file, not both",
            ));
        }
        (Some(var), None) => match vars.get(&var).map(Secret::new).filter(|p| !p.is_empty()) {
            Some(password) => Some(password),
            None => {
                return Err(ConfigError::new(
                    "redis.password_env",
                    format!("the variable {var} is not set"),
                ));
            }
        },
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new("redis.password_file", format!("cannot read {path}: {e}"))
            })?;
            Some(Secret::new(text))
        }
        (None, None) => None,
    };
    let config = RedisConfig {
        url,
        username: raw.username.filter(|u| !u.is_empty()),
        password,
        tls,
        key_prefix: raw.key_prefix.unwrap_or_else(|| "ai-service:".to_owned()),
        connect_timeout: duration(raw.connect_timeout, Duration::from_secs(1)),
        command_timeout: duration(raw.command_timeout, Duration::from_millis(250)),
    };
    if config.connect_timeout.is_zero() {
        return Err(ConfigError::new("redis.connect_timeout", "must be greater than zero"));
    }
    if config.command_timeout.is_zero() {
        return Err(ConfigError::new("redis.command_timeout", "must be greater than zero"));
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, raw::ByteSize};

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, std::iter::empty())
    }

    #[test]
    fn the_cache_is_off_and_in_memory_by_default() {
        let config = parse("").unwrap();
        assert!(!config.cache.enabled);
        assert_eq!(config.cache.max_bytes, 64 << 20);
        assert!(config.redis.is_none());
        assert!(!config.routes[0].cache.enabled);
    }

    #[test]
    fn routes_override_the_cache_defaults() {
        let yaml = "cache: {enabled: true, ttl: 1m, max_bytes: 2MiB}\nproviders: {e: {kind: echo}}\nroutes:\n  - {name: a, targets: [{provider: e, model: m}]}\n  - {name: b, cache: {enabled: false}, targets: [{provider: e, model: m}]}\n  - {name: c, cache: {ttl: 5s}, targets: [{provider: e, model: m}]}";
        let config = parse(yaml).unwrap();
        assert_eq!(config.cache.max_bytes, 2 << 20);
        let got: Vec<_> =
            config.routes.iter().map(|r| (r.cache.enabled, r.cache.ttl.as_secs())).collect();
        assert_eq!(got, [(true, 60), (false, 60), (true, 5)]);
    }

    #[test]
    fn cache_and_redis_errors_name_the_field() {
        assert_eq!(
            parse("cache: {enabled: true, ttl: 5m, colour: red}").unwrap_err().path,
            "cache.colour"
        );
        assert_eq!(parse("cache: {backend: memcached}").unwrap_err().path, "cache.backend");
        assert_eq!(parse("cache: {max_bytes: 12 parsecs}").unwrap_err().path, "cache.max_bytes");
        assert_eq!(parse("cache: {max_entries: 0}").unwrap_err().path, "cache.max_entries");
        let err = parse("cache: {backend: redis}").unwrap_err();
        assert_eq!(err.path, "redis.url");
        assert!(err.message.contains("cache.backend"), "{err}");
        assert_eq!(parse("limits: {backend: redis}").unwrap_err().path, "redis.url");
        assert_eq!(parse("redis: {url: http://x}").unwrap_err().path, "redis.url");
        assert_eq!(parse("redis: {url: 'redis://u:p@x'}").unwrap_err().path, "redis.url");
        assert_eq!(parse("redis: {url: 'rediss://x', tls: false}").unwrap_err().path, "redis.tls");
        assert_eq!(
            parse("redis: {url: 'redis://x', password_env: NOPE_NOT_SET}").unwrap_err().path,
            "redis.password_env"
        );
        assert_eq!(parse("redis: {url: 'redis://x', db: 2}").unwrap_err().path, "redis.db");
        let yaml = "providers: {e: {kind: echo}}\nroutes: [{name: a, cache: {ttl: 0s}, targets: [{provider: e, model: m}]}]";
        assert_eq!(parse(yaml).unwrap_err().path, "routes[0].cache.ttl");
    }

    #[test]
    fn redis_tls_upgrades_the_url_and_the_password_stays_secret() {
        let vars = vec![("REDIS_PASSWORD".to_owned(), "hunter2".to_owned())];
        let config = Config::from_yaml(
            "cache: {backend: redis}\nredis: {url: 'redis://cache.internal:6380/1', tls: true, password_env: REDIS_PASSWORD}",
            vars,
        )
        .unwrap();
        let redis = config.redis.unwrap();
        assert_eq!(redis.url, "rediss://cache.internal:6380/1");
        assert_eq!(redis.password.as_ref().unwrap().expose(), "hunter2");
        assert!(!format!("{redis:?}").contains("hunter2"));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("64MiB"), Some(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("500 kB"), Some(ByteSize(500_000)));
        assert_eq!(ByteSize::parse("1024"), Some(ByteSize(1024)));
        assert_eq!(ByteSize::parse("1 TB"), None);
        assert_eq!(ByteSize::parse("MiB"), None);
    }

    #[test]
    fn limit_policies_reject_zero() {
        use super::{LimitPolicy, RawLimitPolicy};
        let raw = RawLimitPolicy { requests_per_minute: Some(0), tokens_per_minute: None };
        assert_eq!(
            LimitPolicy::validate("auth.keys[0].limits", raw).unwrap_err().path,
            "auth.keys[0].limits.requests_per_minute"
        );
    }
}
