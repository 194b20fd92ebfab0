//! Configuration: one YAML file plus environment overrides, read in two stages.
//!
//! 1. [`raw`]: the file (or an empty document) with the `AI_SERVICE__…` overrides of [`env`](mod@env)
//!    applied, parsed strictly into serde structs; an unknown key is an error naming its path.
//! 2. [`validate`]: cross-field checks (addresses, durations, references between routes and
//!    providers) that produce the typed [`Config`] the rest of the crate uses.
//!
//! Every error is a [`ConfigError`] naming the field, printed on one line; the binary exits
//! with [`ConfigError::EXIT_CODE`] before it binds any port.

pub mod backup;
mod bedrock;
pub mod env;
pub mod grpc_web;
pub mod raw;

pub mod pricing;
mod provider;
pub mod security;
mod shared;
pub mod trace;
pub mod vault;
mod vertex;

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    net::SocketAddr,
    path::Path,
    time::Duration,
};

pub use backup::{BackupConfig, RotateConfig};
pub use bedrock::{AwsCredentials, BedrockSettings, StaticAwsKeys};
pub use grpc_web::GrpcWebConfig;
pub use pricing::{Budget, BudgetWindow, Price, PriceEntry, PricingConfig};
pub use provider::{ConnectionSettings, KeySource, Preset};
pub use raw::{Backend, LogFormat, ProviderKind, RawLimitPolicy, Strategy};
use raw::{RawConfig, RawEndpoint, RawRouting};
pub use security::{AuditConfig, AuditSinkConfig, AuthConfig, ClientKey, Limits, TlsConfig};
pub use shared::{CacheConfig, LimitPolicy, LimitsConfig, RedisConfig, RouteCache};
pub use trace::{OtlpConfig, OtlpProtocol, TracingConfig};
pub use vault::{VaultConfig, VaultRef};
pub use vertex::{VertexCredentials, VertexSettings};

use crate::secret::Secret;

/// The default gRPC address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// The default admin HTTP address.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9090";
/// The name of the built-in echo provider and of its route.
pub const ECHO: &str = "echo";

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The gRPC server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Span export (off unless `tracing.otlp` is set).
    pub tracing: TracingConfig,
    /// Providers, sorted by name.
    pub providers: Vec<ProviderConfig>,
    /// Client keys.
    pub auth: AuthConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Retry, back-off and endpoint-health policy.
    pub routing: RoutingConfig,
    /// Public routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// True when nothing was configured and the built-in echo provider stands in.
    pub echo_fallback: bool,
    /// The response cache.
    pub cache: CacheConfig,
    /// Rate-limit counters.
    pub limits: LimitsConfig,
    /// The Redis server shared by the replicas, when one is configured.
    pub redis: Option<RedisConfig>,
    /// Token prices configured over the shipped ones.
    pub pricing: PricingConfig,
    /// Backup to S3-compatible storage; `None` when off.
    pub backup: Option<BackupConfig>,
    /// The Vault or OpenBao server that `*_vault` references read from.
    pub vault: Option<VaultConfig>,
    /// The effective configuration tree with secrets and client-key digests masked, as YAML
    /// ([`backup::console_snapshot`]), for the console; filled by [`Config::from_yaml`]
    /// (empty for a config built by [`validate`] alone).
    pub redacted: String,
}

/// `server:`
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Address of the gRPC port.
    pub listen: SocketAddr,
    /// Address of the admin HTTP port.
    pub admin_listen: SocketAddr,
    /// Whether the admin port serves the operator console (`/`, `/api/*`).
    pub console: bool,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How long to keep serving after turning NOT_SERVING.
    pub shutdown_delay: Duration,
    /// Deadline for calls that bring none.
    pub request_timeout: Duration,
    /// TLS on the gRPC port.
    pub tls: Option<TlsConfig>,
    /// Request size and concurrency limits.
    pub limits: Limits,
    /// How often key files are checked for changes.
    pub key_reload_interval: Duration,
    /// How long a new connection may take over its TLS handshake, or (without TLS) to send
    /// the HTTP/2 client preface.
    pub handshake_timeout: Duration,
    /// How often each client connection is sent an HTTP/2 PING; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// How long a client has to answer a PING before its connection is closed.
    pub keepalive_timeout: Duration,
    /// The OpenAI- and Anthropic-compatible HTTP APIs.
    pub http: HttpConfig,
    /// gRPC-Web on the gRPC port, and the origins allowed to call it.
    pub grpc_web: GrpcWebConfig,
}

/// `server.http:` the HTTP front doors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Whether they are served.
    pub enabled: bool,
    /// Their own listener; `None` serves them on the gRPC port, told apart by path and
    /// content type.
    pub listen: Option<SocketAddr>,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

/// `log:`
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Filter directive, e.g. `info` or `ai_service=debug,info`.
    pub level: String,
    /// Text or JSON.
    pub format: LogFormat,
    /// Longest an `info` line waits on its way to stderr, to be written with the lines after
    /// it; warnings and errors never wait. Zero: each line at once.
    pub flush_interval: Duration,
}

impl LogConfig {
    /// `log.flush_interval` when the config sets none.
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
}

/// One provider.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    /// Its name, used by routes, errors, metrics and the audit record.
    pub name: String,
    /// Adapter and settings.
    pub settings: ProviderSettings,
}

impl ProviderConfig {
    /// The connection settings of an HTTP provider (`None` for echo).
    pub fn connection(&self) -> Option<&ConnectionSettings> {
        match &self.settings {
            ProviderSettings::Echo { .. } => None,
            ProviderSettings::OpenAi { connection, .. }
            | ProviderSettings::AzureOpenAi { connection, .. }
            | ProviderSettings::Anthropic { connection, .. }
            | ProviderSettings::Gemini { connection }
            | ProviderSettings::Vertex { connection, .. }
            | ProviderSettings::Bedrock { connection, .. }
            | ProviderSettings::Cohere { connection } => Some(connection),
        }
    }

    /// The same, to change.
    pub fn connection_mut(&mut self) -> Option<&mut ConnectionSettings> {
        match &mut self.settings {
            ProviderSettings::Echo { .. } => None,
            ProviderSettings::OpenAi { connection, .. }
            | ProviderSettings::AzureOpenAi { connection, .. }
            | ProviderSettings::Anthropic { connection, .. }
            | ProviderSettings::Gemini { connection }
            | ProviderSettings::Vertex { connection, .. }
            | ProviderSettings::Bedrock { connection, .. }
            | ProviderSettings::Cohere { connection } => Some(connection),
        }
    }

    /// This provider bound to one endpoint of a pool: its URL and key, where it has them.
    pub fn for_endpoint(&self, endpoint: &EndpointConfig) -> ProviderConfig {
        let mut bound = self.clone();
        if let Some(connection) = bound.connection_mut() {
            if let Some(url) = &endpoint.url {
                connection.base_url.clone_from(url);
            }
            if endpoint.api_key.is_some() || endpoint.api_key_source.is_some() {
                connection.api_key.clone_from(&endpoint.api_key);
                connection.api_key_source.clone_from(&endpoint.api_key_source);
            }
        }
        bound
    }
}

/// Adapter-specific settings.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderSettings {
    /// The built-in echo provider.
    Echo {
        /// Pause between streamed deltas.
        chunk_delay: Duration,
    },
    /// OpenAI Chat Completions or an OpenAI-compatible API.
    OpenAi {
        /// Which preset (decides the wire dialect's small differences).
        kind: ProviderKind,
        /// Where and how to connect.
        connection: ConnectionSettings,
    },
    /// Azure OpenAI.
    AzureOpenAi {
        /// Where and how to connect; `base_url` is the resource endpoint.
        connection: ConnectionSettings,
        /// The `api-version` query parameter.
        api_version: String,
    },
    /// Anthropic Messages.
    Anthropic {
        /// Where and how to connect.
        connection: ConnectionSettings,
        /// The `anthropic-version` header.
        version: String,
        /// `max_tokens` when the caller sets none.
        default_max_tokens: u32,
    },
    /// Google Gemini.
    Gemini {
        /// Where and how to connect.
        connection: ConnectionSettings,
    },
    /// Google Vertex AI (Gemini and Claude models).
    Vertex {
        /// Where and how to connect; `base_url` is the regional or global endpoint.
        connection: ConnectionSettings,
        /// Project, location and credentials.
        vertex: VertexSettings,
    },
    /// AWS Bedrock (Converse API).
    Bedrock {
        /// Where and how to connect; `base_url` is the regional runtime endpoint.
        connection: ConnectionSettings,
        /// Region and credentials.
        bedrock: BedrockSettings,
    },
    /// Cohere (API v2).
    Cohere {
        /// Where and how to connect.
        connection: ConnectionSettings,
    },
}

/// `routing:` — how calls retry and how endpoint health is judged.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingConfig {
    /// Attempts after the first, across endpoints and targets.
    pub max_retries: u32,
    /// First back-off step; doubles each retry, with full jitter.
    pub backoff_base: Duration,
    /// Longest back-off step.
    pub backoff_max: Duration,
    /// When an endpoint is taken out of rotation and for how long.
    pub health: HealthPolicy,
}

/// Passive health and circuit breaking of endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthPolicy {
    /// Consecutive failures that eject an endpoint (open its breaker).
    pub eject_after: u32,
    /// First cool-down; doubles with each ejection that follows a failed half-open probe.
    pub eject_cooldown: Duration,
    /// Longest cool-down.
    pub eject_cooldown_max: Duration,
    /// Failure ratio over the recent window that opens the breaker.
    pub breaker_failure_ratio: f64,
    /// Calls in the window before the ratio counts.
    pub breaker_min_calls: u32,
    /// Recent calls the ratio is taken over.
    pub breaker_window: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            eject_after: 5,
            eject_cooldown: Duration::from_secs(5),
            eject_cooldown_max: Duration::from_secs(120),
            breaker_failure_ratio: 0.5,
            breaker_min_calls: 20,
            breaker_window: 50,
        }
    }
}

/// A route: a public model name and its failover chain.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteConfig {
    /// The name callers use.
    pub name: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Attempts after the first.
    pub max_retries: u32,
    /// Hedging delay, when hedging is on.
    pub hedge_delay: Option<Duration>,
    /// Whether and how long the route caches answers.
    pub cache: RouteCache,
    /// Targets, in failover order; never empty.
    pub targets: Vec<TargetConfig>,
}

/// A provider model in a route's chain, with its pool of endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetConfig {
    /// A configured provider's name.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// How the pool picks an endpoint.
    pub strategy: Strategy,
    /// The pool; empty means the provider's own address and key.
    pub endpoints: Vec<EndpointConfig>,
    /// Active health checks of the pool's endpoints, when configured.
    pub health_check: Option<HealthCheck>,
}

/// Active health checks: a probe per endpoint every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between probes.
    pub interval: Duration,
    /// Limit on one probe.
    pub timeout: Duration,
    /// Passing probes in a row that bring an endpoint back.
    pub healthy_threshold: u32,
    /// Failing probes in a row that take it out.
    pub unhealthy_threshold: u32,
}

/// One endpoint of a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    /// Unique within the pool.
    pub name: String,
    /// Base URL overriding the provider's.
    pub url: Option<String>,
    /// Relative share of the traffic.
    pub weight: u32,
    /// This endpoint's own key, overriding the provider's, read at load time.
    pub api_key: Option<Secret>,
    /// Where that key came from.
    pub api_key_source: Option<KeySource>,
}

/// A configuration problem, naming the field (or environment variable) it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the field, e.g. `routes[0].targets[1].provider`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// The exit code of a bad configuration (`EX_USAGE`).
    pub const EXIT_CODE: i32 = 64;

    /// A problem with `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the parser said.
        let message = self.message.replace('\n', " ");
        if self.path.is_empty() {
            write!(f, "invalid config: {message}")
        } else {
            write!(f, "invalid config: {}: {message}", self.path)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads `path` (or nothing, when `None`), applies the `AI_SERVICE__…` variables of `vars`,
    /// parses and validates.
    pub fn load<I>(path: Option<&Path>, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("", format!("cannot read {}: {e}", path.display()))
            })?,
            None => String::new(),
        };
        Config::from_yaml(&text, vars)
    }

    /// Parses and validates YAML text with the overrides in `vars`.
    pub fn from_yaml<I>(text: &str, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let mut tree: yaml_serde::Value = if text.trim().is_empty() {
            yaml_serde::Value::Null
        } else {
            yaml_serde::from_str(text).map_err(|e| ConfigError::new("", e.to_string()))?
        };
        env::apply(&mut tree, vars.iter().map(|(k, v)| (k.clone(), v.clone())))?;
        if tree.is_null() {
            tree = yaml_serde::Value::Mapping(yaml_serde::Mapping::new());
        }
        // The backup keeps the effective configuration, secrets masked; the console shows it
        // with the client keys' digests masked too.
        let snapshot = tree.get("backup").is_some().then(|| backup::redacted_snapshot(&tree));
        let console = backup::console_snapshot(&tree);
        let raw: RawConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::new(path, e.into_inner().to_string())
        })?;
        let mut config = validate(raw, &vars)?;
        if let (Some(backup), Some(snapshot)) = (config.backup.as_mut(), snapshot) {
            backup.config_snapshot = snapshot;
        }
        config.redacted = console;
        Ok(config)
    }
}

fn duration(value: Option<raw::HumanDuration>, default: Duration) -> Duration {
    value.map_or(default, |d| d.0)
}

/// Checks what the types cannot and builds the [`Config`]. `vars` is the environment: provider
/// keys are read from it, and when the file configures no provider, the conventional key
/// variables in it configure providers of their own.
pub fn validate(mut raw: RawConfig, vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|e| {
        ConfigError::new(
            "server.listen",
            format!("{listen_text:?} is not a host:port address: {e}"),
        )
    })?;
    let admin_text = raw.server.admin_listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let admin_listen: SocketAddr = admin_text.parse().map_err(|e| {
        ConfigError::new(
            "server.admin_listen",
            format!("{admin_text:?} is not a host:port address: {e}"),
        )
    })?;
    if admin_listen == listen && listen.port() != 0 {
        return Err(ConfigError::new("server.admin_listen", "must differ from server.listen"));
    }
    let server = ServerConfig {
        listen,
        admin_listen,
        console: raw.server.console.unwrap_or(true),
        shutdown_grace: duration(raw.server.shutdown_grace, Duration::from_secs(30)),
        shutdown_delay: duration(raw.server.shutdown_delay, Duration::ZERO),
        request_timeout: duration(raw.server.request_timeout, Duration::from_secs(30)),
        tls: security::validate_tls(raw.server.tls)?,
        limits: {
            let d = Limits::default();
            Limits {
                max_request_bytes: raw.server.max_request_bytes.unwrap_or(d.max_request_bytes),
                max_messages: raw.server.max_messages.unwrap_or(d.max_messages),
                max_concurrent_streams: raw
                    .server
                    .max_concurrent_streams
                    .unwrap_or(d.max_concurrent_streams),
                max_in_flight: raw.server.max_in_flight.unwrap_or(d.max_in_flight),
            }
        },
        key_reload_interval: duration(raw.server.key_reload_interval, Duration::from_secs(10)),
        handshake_timeout: duration(raw.server.handshake_timeout, Duration::from_secs(10)),
        keepalive_interval: Some(duration(raw.server.keepalive_interval, Duration::from_secs(60)))
            .filter(|d| !d.is_zero()),
        keepalive_timeout: duration(raw.server.keepalive_timeout, Duration::from_secs(20)),
        http: HttpConfig {
            enabled: raw.server.http.enabled.unwrap_or(true),
            listen: match raw.server.http.listen.as_deref() {
                None => None,
                Some(text) => Some(text.parse().map_err(|e| {
                    ConfigError::new(
                        "server.http.listen",
                        format!("{text:?} is not a host:port address: {e}"),
                    )
                })?),
            },
            body_timeout: duration(raw.server.http.body_timeout, Duration::from_secs(30)),
        },
        grpc_web: grpc_web::validate(std::mem::take(&mut raw.server.grpc_web))?,
    };
    if let Some(http) = server.http.listen
        && http.port() != 0
        && (http == server.listen || http == server.admin_listen)
    {
        return Err(ConfigError::new(
            "server.http.listen",
            "must differ from server.listen and server.admin_listen (leave it out to share the gRPC port)",
        ));
    }
    for (field, value) in [
        ("max_request_bytes", server.limits.max_request_bytes),
        ("max_messages", server.limits.max_messages),
        ("max_concurrent_streams", server.limits.max_concurrent_streams as usize),
        ("max_in_flight", server.limits.max_in_flight),
    ] {
        if value == 0 {
            return Err(ConfigError::new(format!("server.{field}"), "must be at least 1"));
        }
    }
    for (field, value) in [
        ("key_reload_interval", server.key_reload_interval),
        ("handshake_timeout", server.handshake_timeout),
        ("keepalive_timeout", server.keepalive_timeout),
    ] {
        if value.is_zero() {
            return Err(ConfigError::new(format!("server.{field}"), "must be greater than zero"));
        }
    }
    crate::redact::add_patterns(&raw.log.redact_patterns).map_err(|e| {
        ConfigError::new("log.redact_patterns", format!("not a regular expression: {e}"))
    })?;
    let raw_vault = raw.vault.take();
    let auth = security::validate_auth(raw.auth)?;
    let audit = security::validate_audit(raw.audit)?;
    let backup = backup::validate_backup(raw.backup, &audit, auth.keys_file.as_deref(), vars)?;
    if server.request_timeout.is_zero() {
        return Err(ConfigError::new("server.request_timeout", "must be greater than zero"));
    }

    let level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        return Err(ConfigError::new("log.level", format!("{level:?} is not a log filter: {e}")));
    }
    let log = LogConfig {
        level,
        format: raw.log.format.unwrap_or_default(),
        flush_interval: duration(raw.log.flush_interval, LogConfig::DEFAULT_FLUSH_INTERVAL),
    };
    let tracing = trace::validate_tracing(raw.tracing, vars)?;

    let configured = !raw.providers.is_empty() || !raw.routes.is_empty();
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, mut provider) in raw.providers {
        if provider.kind.is_some() || name != ECHO {
            raw.provider_defaults.apply(&mut provider);
        }
        providers.push(provider::validate(name, provider, vars)?);
    }
    if !configured {
        providers = provider::detect(vars, &raw.provider_defaults)?;
    }

    let routing = validate_routing(raw.routing)?;
    let cache = shared::validate_cache(raw.cache)?;
    let limits = shared::validate_limits(raw.limits);
    let redis = shared::validate_redis(raw.redis, &cache, &limits, vars)?;
    let pricing_entries = pricing::validate_pricing(&raw.pricing, |scope| {
        providers.iter().any(|p| p.name == scope) || ProviderKind::from_name(scope).is_some()
    })?;
    let mut target_prices = Vec::new();
    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut names = BTreeSet::new();
    for (i, route) in raw.routes.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        if route.name.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        for (j, name) in std::iter::once(&route.name).chain(&route.aliases).enumerate() {
            if !names.insert(name.clone()) {
                let field =
                    if j == 0 { format!("{at}.name") } else { format!("{at}.aliases[{}]", j - 1) };
                return Err(ConfigError::new(
                    field,
                    format!("{name:?} is already the name of another route"),
                ));
            }
        }
        if route.targets.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.targets"),
                "a route needs at least one target",
            ));
        }
        let mut targets = Vec::with_capacity(route.targets.len());
        for (j, target) in route.targets.into_iter().enumerate() {
            if !providers.iter().any(|p| p.name == target.provider) {
                let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
                return Err(ConfigError::new(
                    format!("{at}.targets[{j}].provider"),
                    format!(
                        "unknown provider {:?} (configured: {})",
                        target.provider,
                        list(&known)
                    ),
                ));
            }
            if target.model.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.targets[{j}].model"),
                    "must not be empty",
                ));
            }
            let at = format!("{at}.targets[{j}]");
            if let Some(price) = &target.price {
                target_prices.push(PriceEntry {
                    scope: target.provider.clone(),
                    model: target.model.clone(),
                    price: pricing::validate_price(&format!("{at}.price"), price)?,
                });
            }
            let endpoints = validate_endpoints(&at, target.endpoints, vars)?;
            let health_check = match target.health_check {
                None => None,
                Some(raw) => {
                    let check = HealthCheck {
                        interval: duration(raw.interval, Duration::from_secs(10)),
                        timeout: duration(raw.timeout, Duration::from_secs(2)),
                        healthy_threshold: raw.healthy_threshold.unwrap_or(2),
                        unhealthy_threshold: raw.unhealthy_threshold.unwrap_or(3),
                    };
                    if check.interval.is_zero() || check.timeout.is_zero() {
                        return Err(ConfigError::new(
                            format!("{at}.health_check"),
                            "interval and timeout must be above zero",
                        ));
                    }
                    if check.healthy_threshold == 0 || check.unhealthy_threshold == 0 {
                        return Err(ConfigError::new(
                            format!("{at}.health_check"),
                            "thresholds must be at least 1",
                        ));
                    }
                    Some(check)
                }
            };
            targets.push(TargetConfig {
                provider: target.provider,
                model: target.model,
                strategy: target.strategy.unwrap_or_default(),
                endpoints,
                health_check,
            });
        }
        let hedge_delay = route.hedge_delay.map(|d| d.0);
        if hedge_delay.is_some() && targets.len() < 2 {
            return Err(ConfigError::new(
                format!("{at}.hedge_delay"),
                "hedging needs at least two targets",
            ));
        }
        let route_cache = shared::validate_route_cache(&at, route.cache, &cache)?;
        routes.push(RouteConfig {
            name: route.name,
            aliases: route.aliases,
            max_retries: route.max_retries.unwrap_or(routing.max_retries),
            hedge_delay,
            cache: route_cache,
            targets,
        });
    }

    let echo_fallback = providers.is_empty() && routes.is_empty();
    // Detected providers need no route: callers reach them as `provider/model`.
    if echo_fallback {
        providers.push(ProviderConfig {
            name: ECHO.to_owned(),
            settings: ProviderSettings::Echo { chunk_delay: Duration::ZERO },
        });
        routes.push(RouteConfig {
            name: ECHO.to_owned(),
            aliases: Vec::new(),
            max_retries: routing.max_retries,
            hedge_delay: None,
            cache: RouteCache { enabled: cache.enabled, ttl: cache.ttl },
            targets: vec![TargetConfig {
                provider: ECHO.to_owned(),
                model: ECHO.to_owned(),
                strategy: Strategy::default(),
                endpoints: Vec::new(),
                health_check: None,
            }],
        });
    }

    let mut config = Config {
        server,
        log,
        tracing,
        providers,
        auth,
        audit,
        routing,
        routes,
        echo_fallback,
        cache,
        limits,
        redis,
        pricing: PricingConfig { entries: pricing_entries, targets: target_prices },
        backup,
        vault: None,
        redacted: String::new(),
    };
    let referenced = !crate::vault::references(&config).is_empty();
    config.vault = vault::validate_vault(raw_vault, referenced, vars)?;
    Ok(config)
}

fn validate_routing(raw: RawRouting) -> Result<RoutingConfig, ConfigError> {
    let defaults = HealthPolicy::default();
    let health = HealthPolicy {
        eject_after: raw.eject_after.unwrap_or(defaults.eject_after),
        eject_cooldown: duration(raw.eject_cooldown, defaults.eject_cooldown),
        eject_cooldown_max: duration(raw.eject_cooldown_max, defaults.eject_cooldown_max),
        breaker_failure_ratio: raw.breaker_failure_ratio.unwrap_or(defaults.breaker_failure_ratio),
        breaker_min_calls: raw.breaker_min_calls.unwrap_or(defaults.breaker_min_calls),
        breaker_window: raw.breaker_window.unwrap_or(defaults.breaker_window),
    };
    if health.eject_after == 0 {
        return Err(ConfigError::new("routing.eject_after", "must be at least 1"));
    }
    if !(health.breaker_failure_ratio > 0.0 && health.breaker_failure_ratio <= 1.0) {
        return Err(ConfigError::new(
            "routing.breaker_failure_ratio",
            "must be above 0 and at most 1",
        ));
    }
    if health.breaker_window == 0 || health.breaker_min_calls > health.breaker_window {
        return Err(ConfigError::new(
            "routing.breaker_min_calls",
            "must be at most routing.breaker_window, which must be at least 1",
        ));
    }
    if health.eject_cooldown > health.eject_cooldown_max {
        return Err(ConfigError::new(
            "routing.eject_cooldown",
            "is longer than routing.eject_cooldown_max",
        ));
    }
    let routing = RoutingConfig {
        max_retries: raw.max_retries.unwrap_or(3),
        backoff_base: duration(raw.backoff_base, Duration::from_millis(50)),
        backoff_max: duration(raw.backoff_max, Duration::from_secs(2)),
        health,
    };
    if routing.backoff_base > routing.backoff_max {
        return Err(ConfigError::new("routing.backoff_base", "is longer than routing.backoff_max"));
    }
    Ok(routing)
}

fn validate_endpoints(
    at: &str,
    raw: Vec<RawEndpoint>,
    vars: &HashMap<String, String>,
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut endpoints = Vec::with_capacity(raw.len());
    for (k, e) in raw.into_iter().enumerate() {
        let at = format!("{at}.endpoints[{k}]");
        if e.name.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        if !names.insert(e.name.clone()) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{:?} is used twice in this pool", e.name),
            ));
        }
        if let Some(url) = &e.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new(
                format!("{at}.url"),
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        let (api_key, api_key_source) =
            provider::explicit_key(&at, &e.api_key_env, &e.api_key_file, &e.api_key_vault, vars)?
                .unzip();
        let api_key = api_key.flatten();
        let url = e.url.map(|u| u.trim().trim_end_matches('/').to_owned());
        endpoints.push(EndpointConfig {
            name: e.name,
            url,
            weight: e.weight.unwrap_or(1),
            api_key,
            api_key_source,
        });
    }
    if !endpoints.is_empty() && endpoints.iter().all(|e| e.weight == 0) {
        return Err(ConfigError::new(
            format!("{at}.endpoints"),
            "at least one endpoint needs a weight above 0",
        ));
    }
    Ok(endpoints)
}

pub(crate) fn list(items: &[&str]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, std::iter::empty())
    }

    #[test]
    fn an_empty_document_serves_echo() {
        let config = parse("").unwrap();
        assert!(config.echo_fallback);
        assert_eq!(config.routes[0].name, ECHO);
        assert_eq!(config.server.listen.port(), 8080);
    }

    #[test]
    fn unknown_keys_are_errors_naming_their_path() {
        let err = parse("server:\n  listen: 127.0.0.1:1\n  lisen: x\n").unwrap_err();
        assert_eq!(err.path, "server.lisen");
        assert!(err.message.contains("unknown field `lisen`"), "{err}");
        let err = parse("providers:\n  e:\n    kind: echo\n    chunk_dalay: 1s\n").unwrap_err();
        assert_eq!(err.path, "providers.e.chunk_dalay");
    }

    #[test]
    fn the_console_is_on_by_default_and_shows_a_redacted_config() {
        let config = parse("").unwrap();
        assert!(config.server.console);
        let digest = "ab".repeat(32);
        let yaml = format!(
            "server: {{console: false}}\nauth: {{keys: [{{id: a, sha256: {digest}}}]}}\n\
             tracing: {{otlp: {{endpoint: \"http://127.0.0.1:4317\"}}}}\n"
        );
        let config = Config::from_yaml(
            &yaml,
            [(
                "AI_SERVICE__TRACING__OTLP__HEADERS__X_TOKEN__VALUE".to_owned(),
                "tok-from-env".to_owned(),
            )],
        )
        .unwrap();
        assert!(!config.server.console);
        assert!(config.redacted.contains("console: false"), "{}", config.redacted);
        for secret in [digest.as_str(), "tok-from-env"] {
            assert!(!config.redacted.contains(secret), "{}", config.redacted);
        }
        let err = parse("server: {console: maybe}").unwrap_err();
        assert_eq!(err.path, "server.console");
    }

    #[test]
    fn log_lines_wait_50ms_unless_told_otherwise() {
        assert_eq!(parse("").unwrap().log.flush_interval, Duration::from_millis(50));
        let config = parse("log: {flush_interval: 0s}").unwrap();
        assert_eq!(config.log.flush_interval, Duration::ZERO, "each line at once");
        let config = parse("log: {flush_interval: 1s}").unwrap();
        assert_eq!(config.log.flush_interval, Duration::from_secs(1));
        let err = parse("log: {flush_interval: often}").unwrap_err();
        assert_eq!(err.path, "log.flush_interval");
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = parse("server: {shutdown_grace: soon}").unwrap_err();
        assert_eq!(err.path, "server.shutdown_grace");
        let err = parse("server: {listen: nowhere}").unwrap_err();
        assert_eq!(err.path, "server.listen");
        let err = parse("server: {admin_listen: nowhere}").unwrap_err();
        assert_eq!(err.path, "server.admin_listen");
        let err =
            parse("server: {listen: 127.0.0.1:7000, admin_listen: 127.0.0.1:7000}").unwrap_err();
        assert_eq!(err.path, "server.admin_listen");
        let err = parse("providers: {e: {kind: nope}}").unwrap_err();
        assert_eq!(err.path, "providers.e.kind");
        let yaml =
            "providers: {e: {kind: echo}}\nroutes: [{name: a, targets: [{provider: x, model: m}]}]";
        let err = parse(yaml).unwrap_err();
        assert_eq!(err.path, "routes[0].targets[0].provider");
        assert!(
            err.to_string().starts_with(
                "invalid config: routes[0].targets[0].provider: unknown provider \"x\""
            )
        );
    }

    #[test]
    fn connection_timeouts_default_and_must_not_be_zero() {
        let server = parse("").unwrap().server;
        assert_eq!(server.handshake_timeout, Duration::from_secs(10));
        assert_eq!(server.keepalive_interval, Some(Duration::from_secs(60)));
        assert_eq!(server.keepalive_timeout, Duration::from_secs(20));
        // `0s` turns the PINGs off; the timeouts cannot be.
        assert_eq!(
            parse("server: {keepalive_interval: 0s}").unwrap().server.keepalive_interval,
            None
        );
        for field in ["handshake_timeout", "keepalive_timeout", "key_reload_interval"] {
            let err = parse(&format!("server: {{{field}: 0s}}")).unwrap_err();
            assert_eq!(err.path, format!("server.{field}"));
            assert!(err.message.contains("greater than zero"), "{err}");
        }
    }

    #[test]
    fn duplicate_route_names_and_aliases_are_rejected() {
        let yaml = "providers: {e: {kind: echo}}\nroutes:\n  - {name: a, targets: [{provider: e, model: m}]}\n  - {name: b, aliases: [a], targets: [{provider: e, model: m}]}";
        assert_eq!(parse(yaml).unwrap_err().path, "routes[1].aliases[0]");
    }

    #[test]
    fn environment_overrides_the_file() {
        let vars = vec![("AI_SERVICE__SERVER__LISTEN".to_owned(), "127.0.0.1:9999".to_owned())];
        let config = Config::from_yaml("server: {listen: 127.0.0.1:1}", vars).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        let vars = vec![("AI_SERVICE__SERVR__LISTEN".to_owned(), "x".to_owned())];
        assert!(Config::from_yaml("", vars).unwrap_err().message.contains("unknown field `servr`"));
    }

    /// `serde_yaml` 0.9 is deprecated and unmaintained; the config is read with its maintained
    /// fork `yaml_serde`, and no dependency may bring the old crate (and its `unsafe-libyaml`)
    /// back.
    #[test]
    fn the_yaml_parser_is_the_maintained_fork() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"yaml_serde\""));
        assert!(!lock.contains("name = \"serde_yaml\""), "serde_yaml is in Cargo.lock");
        assert!(!lock.contains("name = \"unsafe-libyaml\""), "unsafe-libyaml is in Cargo.lock");
    }
}
