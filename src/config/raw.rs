//! The configuration file as written: plain serde structs that reject unknown keys. Nothing
//! here is checked beyond its type; [`super::validate`] turns it into a [`super::Config`].

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::{Deserialize, Deserializer, de};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// The gRPC server.
    pub server: RawServer,
    /// Logging.
    pub log: RawLog,
    /// Span export to an OpenTelemetry collector.
    pub tracing: super::trace::RawTracing,
    /// Providers by name.
    pub providers: BTreeMap<String, RawProvider>,
    /// Client keys.
    pub auth: super::security::RawAuth,
    /// The audit trail.
    pub audit: super::security::RawAudit,
    /// Connection settings every HTTP provider takes unless it sets its own.
    pub provider_defaults: RawProviderDefaults,
    /// Retry, back-off and endpoint-health policy shared by every route.
    pub routing: RawRouting,
    /// Public routes.
    pub routes: Vec<RawRoute>,
    /// The response cache.
    pub cache: RawCache,
    /// The Redis server shared by the replicas (cache and rate limits).
    pub redis: Option<RawRedis>,
    /// Rate-limit counters.
    pub limits: RawLimits,
    /// Token prices by provider name or kind, then model, over the shipped ones.
    pub pricing: super::pricing::RawPricing,
    /// Backup of the audit trail, config and keys to S3-compatible storage.
    pub backup: super::backup::RawBackup,
    /// The Vault or OpenBao server that `*_vault` references read from.
    pub vault: Option<super::vault::RawVault>,
}

/// `provider_defaults:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProviderDefaults {
    /// Idle connections kept per upstream host.
    pub pool_size: Option<usize>,
    /// How long an idle connection is kept.
    pub idle_timeout: Option<HumanDuration>,
    /// Limit on opening a connection.
    pub connect_timeout: Option<HumanDuration>,
    /// Limit on a unary upstream call, and on the silence between two chunks of a stream.
    pub request_timeout: Option<HumanDuration>,
    /// Most bytes read from one upstream reply (a whole body, or a stream in total).
    pub max_output_bytes: Option<usize>,
}

impl RawProviderDefaults {
    /// Fills what `provider` leaves unset (echo takes no connection settings).
    pub fn apply(&self, provider: &mut RawProvider) {
        if provider.kind == Some(ProviderKind::Echo) {
            return;
        }
        provider.pool_size = provider.pool_size.or(self.pool_size);
        provider.idle_timeout = provider.idle_timeout.or(self.idle_timeout);
        provider.connect_timeout = provider.connect_timeout.or(self.connect_timeout);
        provider.request_timeout = provider.request_timeout.or(self.request_timeout);
        provider.max_output_bytes = provider.max_output_bytes.or(self.max_output_bytes);
    }
}

/// `routing:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRouting {
    /// Attempts after the first, across endpoints and targets (default 3).
    pub max_retries: Option<u32>,
    /// First back-off step; doubles each retry, with full jitter.
    pub backoff_base: Option<HumanDuration>,
    /// Longest back-off step.
    pub backoff_max: Option<HumanDuration>,
    /// Consecutive failures that eject an endpoint.
    pub eject_after: Option<u32>,
    /// First ejection's cool-down; doubles with each repeated ejection.
    pub eject_cooldown: Option<HumanDuration>,
    /// Longest ejection cool-down.
    pub eject_cooldown_max: Option<HumanDuration>,
    /// Failure ratio over the recent window that opens an endpoint's breaker, 0 to 1.
    pub breaker_failure_ratio: Option<f64>,
    /// Calls in the window before the ratio counts.
    pub breaker_min_calls: Option<u32>,
    /// Recent calls the ratio is taken over.
    pub breaker_window: Option<u32>,
}

/// How a target's pool picks an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In turn.
    RoundRobin,
    /// At random, in proportion to the weights.
    Weighted,
    /// Only endpoints with no recent failure (all available ones when none is), by weight.
    #[default]
    Health,
    /// Power of two random choices over a latency moving average.
    LeastLatency,
}

/// `server:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address of the gRPC port.
    pub listen: Option<String>,
    /// Address of the admin HTTP port (`/metrics`, `/livez`, `/readyz`, the console).
    pub admin_listen: Option<String>,
    /// Whether the admin port serves the operator console at `/` (default true).
    pub console: Option<bool>,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub shutdown_grace: Option<HumanDuration>,
    /// How long to keep serving after turning NOT_SERVING, so load balancers notice.
    pub shutdown_delay: Option<HumanDuration>,
    /// Deadline for calls that bring none.
    pub request_timeout: Option<HumanDuration>,
    /// TLS (and mTLS) on the gRPC port.
    pub tls: Option<super::security::RawTls>,
    /// Largest request message, in bytes (default 4 MiB).
    pub max_request_bytes: Option<usize>,
    /// Most messages in one request (default 1024).
    pub max_messages: Option<usize>,
    /// Most concurrent calls on one HTTP/2 connection (default 256).
    pub max_concurrent_streams: Option<u32>,
    /// Most chat calls in flight; more are shed with RESOURCE_EXHAUSTED (default 4096).
    pub max_in_flight: Option<usize>,
    /// How often key files (provider keys, client keys) are checked for changes (default 10s);
    /// SIGHUP re-reads them at once.
    pub key_reload_interval: Option<HumanDuration>,
    /// How long a new connection has to finish its TLS handshake, or without TLS to send the
    /// HTTP/2 client preface, before it is closed (default 10s).
    pub handshake_timeout: Option<HumanDuration>,
    /// How often an HTTP/2 PING is sent on each client connection (default 60s); `0s` sends
    /// none.
    pub keepalive_interval: Option<HumanDuration>,
    /// How long a client has to answer that PING before its connection is closed (default 20s).
    pub keepalive_timeout: Option<HumanDuration>,
    /// The OpenAI- and Anthropic-compatible HTTP APIs.
    pub http: RawHttp,
    /// gRPC-Web on the gRPC port.
    pub grpc_web: super::grpc_web::RawGrpcWeb,
}

/// `server.http:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Whether the HTTP APIs are served (default true).
    pub enabled: Option<bool>,
    /// Their own address; without one they share the gRPC port.
    pub listen: Option<String>,
    /// How long a request body may take to arrive (default 30s).
    pub body_timeout: Option<HumanDuration>,
}

/// `log:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A level or an `EnvFilter` directive; `RUST_LOG` wins over it.
    pub level: Option<String>,
    /// `text` or `json`.
    pub format: Option<LogFormat>,
    /// Extra regular expressions whose matches are masked in logs, audit records and errors.
    pub redact_patterns: Vec<String>,
    /// Longest an `info` line waits to be written with the lines after it (default 50ms;
    /// `0s`: each line at once).
    pub flush_interval: Option<HumanDuration>,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `providers.<name>:`. Flat, whatever the kind; validation rejects the fields a kind does
/// not use, naming them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Which adapter (or OpenAI-compatible preset).
    pub kind: Option<ProviderKind>,
    /// echo: the pause between streamed deltas.
    #[serde(default)]
    pub chunk_delay: Option<HumanDuration>,
    /// The API's base URL; each kind has a default except `openai_compatible`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The variable that holds the key; defaults to the kind's conventional one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A file that holds the key (e.g. a Kubernetes secret volume).
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// A field of a Vault secret that holds the key.
    #[serde(default)]
    pub api_key_vault: Option<super::vault::RawVaultRef>,
    /// An explicit proxy URL for this provider.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Ignore the system proxy variables (`HTTPS_PROXY`, …) for this provider.
    #[serde(default)]
    pub disable_proxy: Option<bool>,
    /// Idle connections kept per upstream host.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// How long an idle connection is kept.
    #[serde(default)]
    pub idle_timeout: Option<HumanDuration>,
    /// Limit on opening a connection (TCP and TLS).
    #[serde(default)]
    pub connect_timeout: Option<HumanDuration>,
    /// Limit on a unary call; for a stream, on the silence between two chunks.
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    /// Most bytes read from one reply (a whole body, or a stream in total).
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
    /// azure_openai: the `api-version` query parameter.
    #[serde(default)]
    pub api_version: Option<String>,
    /// anthropic: the `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// anthropic: `max_tokens` when the caller sets none (the API requires one).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    /// vertex: the Google Cloud project.
    #[serde(default)]
    pub project: Option<String>,
    /// vertex: the region (`us-central1`, …) or `global`.
    #[serde(default)]
    pub location: Option<String>,
    /// vertex: a service-account JSON key; without one, `GOOGLE_APPLICATION_CREDENTIALS`,
    /// then the metadata server (GKE workload identity).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// bedrock: the AWS region; without one, `AWS_REGION` or `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// bedrock: the shared-config profile the credentials come from; without one,
    /// `AWS_PROFILE`, else the default chain.
    #[serde(default)]
    pub profile: Option<String>,
}

/// The provider adapters this build knows, and the OpenAI-compatible presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The built-in deterministic echo provider.
    Echo,
    /// OpenAI Chat Completions.
    #[serde(rename = "openai")]
    OpenAi,
    /// Any OpenAI-compatible API at `base_url`.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
    /// Azure OpenAI (deployment-based URLs, `api-key` header).
    #[serde(rename = "azure_openai")]
    AzureOpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (Generative Language API).
    Gemini,
    /// Cohere (API v2: chat and embed).
    Cohere,
    /// Groq (OpenAI-compatible).
    Groq,
    /// DeepSeek (OpenAI-compatible).
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// Mistral (OpenAI-compatible).
    Mistral,
    /// Together AI (OpenAI-compatible).
    Together,
    /// OpenRouter (OpenAI-compatible).
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// xAI (OpenAI-compatible).
    #[serde(rename = "xai")]
    XAi,
    /// Ollama's OpenAI-compatible API; no key.
    Ollama,
    /// vLLM's OpenAI-compatible server; no key unless it was started with one.
    #[serde(rename = "vllm")]
    VLlm,
    /// Google Vertex AI: Gemini and Claude models with Google Cloud credentials.
    Vertex,
    /// AWS Bedrock (Converse API): Claude, Llama, Mistral, Nova … with AWS credentials.
    Bedrock,
}

impl ProviderKind {
    /// Every kind.
    pub const ALL: [ProviderKind; 17] = {
        use ProviderKind as K;
        [
            K::Echo,
            K::OpenAi,
            K::OpenAiCompatible,
            K::AzureOpenAi,
            K::Anthropic,
            K::Gemini,
            K::Cohere,
            K::Groq,
            K::DeepSeek,
            K::Mistral,
            K::Together,
            K::OpenRouter,
            K::XAi,
            K::Ollama,
            K::VLlm,
            K::Vertex,
            K::Bedrock,
        ]
    };

    /// The kind's name as the config file writes it (`kind: openai`).
    pub fn name(self) -> &'static str {
        use ProviderKind as K;
        match self {
            K::Echo => "echo",
            K::OpenAi => "openai",
            K::OpenAiCompatible => "openai_compatible",
            K::AzureOpenAi => "azure_openai",
            K::Anthropic => "anthropic",
            K::Gemini => "gemini",
            K::Cohere => "cohere",
            K::Groq => "groq",
            K::DeepSeek => "deepseek",
            K::Mistral => "mistral",
            K::Together => "together",
            K::OpenRouter => "openrouter",
            K::XAi => "xai",
            K::Ollama => "ollama",
            K::VLlm => "vllm",
            K::Vertex => "vertex",
            K::Bedrock => "bedrock",
        }
    }

    /// The kind the config file calls `name`.
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind as OpenTelemetry's GenAI conventions name it (`gen_ai.provider.name`): the
    /// well-known value where there is one, else the kind's name in this file.
    pub fn gen_ai_provider(self) -> &'static str {
        use ProviderKind as K;
        match self {
            K::Echo => "echo",
            K::OpenAi => "openai",
            K::OpenAiCompatible => "openai_compatible",
            K::AzureOpenAi => "azure.ai.openai",
            K::Anthropic => "anthropic",
            K::Gemini => "gcp.gemini",
            K::Cohere => "cohere",
            K::Groq => "groq",
            K::DeepSeek => "deepseek",
            K::Mistral => "mistral_ai",
            K::Together => "together",
            K::OpenRouter => "openrouter",
            K::XAi => "x_ai",
            K::Ollama => "ollama",
            K::VLlm => "vllm",
            K::Vertex => "gcp.vertex_ai",
            K::Bedrock => "aws.bedrock",
        }
    }
}

/// `routes[i]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The public model name.
    pub name: String,
    /// Other names for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Overrides `routing.max_retries` for this route.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Opt-in hedging: when the first attempt has no first token after this long, the next
    /// target is tried in parallel and the first to answer wins.
    #[serde(default)]
    pub hedge_delay: Option<HumanDuration>,
    /// Overrides `cache.enabled` and `cache.ttl` for this route.
    #[serde(default)]
    pub cache: Option<RawRouteCache>,
    /// The failover chain.
    pub targets: Vec<RawTarget>,
}

/// `routes[i].targets[j]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// A key of `providers`.
    pub provider: String,
    /// The upstream model name.
    pub model: String,
    /// How the pool picks an endpoint.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// The pool; empty means one endpoint at the provider's own address and key.
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
    /// Optional active health checks of the pool's endpoints.
    #[serde(default)]
    pub health_check: Option<RawHealthCheck>,
    /// This target's token prices, over any other.
    #[serde(default)]
    pub price: Option<super::pricing::RawPrice>,
}

/// `routes[i].targets[j].health_check:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Time between probes (default 10s).
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    /// Limit on one probe (default 2s).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Passing probes in a row that bring an endpoint back (default 2).
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    /// Failing probes in a row that take it out (default 3).
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
}

/// `routes[i].targets[j].endpoints[k]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// A name for logs, metrics and errors; unique within the pool.
    pub name: String,
    /// Base URL; the provider's when unset.
    #[serde(default)]
    pub url: Option<String>,
    /// Share of the traffic relative to the other endpoints (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Environment variable holding this endpoint's own key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding this endpoint's own key.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// A field of a Vault secret holding this endpoint's own key.
    #[serde(default)]
    pub api_key_vault: Option<super::vault::RawVaultRef>,
}

/// A duration written the human way: `250ms`, `30s`, `1m 30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\" or \"30s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// `cache:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Whether routes cache answers unless they say otherwise (default false).
    pub enabled: Option<bool>,
    /// How long an answer stays (default 5m).
    pub ttl: Option<HumanDuration>,
    /// memory: most entries kept (default 10000).
    pub max_entries: Option<usize>,
    /// memory: most bytes of stored answers kept (default 64MiB).
    pub max_bytes: Option<ByteSize>,
    /// Where answers are kept.
    pub backend: Option<Backend>,
}

/// `routes[i].cache:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRouteCache {
    /// Whether this route caches answers.
    pub enabled: Option<bool>,
    /// This route's TTL.
    pub ttl: Option<HumanDuration>,
}

/// Where shared state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process: one replica.
    #[default]
    Memory,
    /// In the Redis server of `redis:`, shared by every replica.
    Redis,
}

/// `redis:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    /// `redis://host:port/db` or `rediss://…` for TLS.
    pub url: Option<String>,
    /// ACL user name.
    pub username: Option<String>,
    /// The variable that holds the password.
    pub password_env: Option<String>,
    /// A file that holds the password.
    pub password_file: Option<String>,
    /// Connect with TLS (same as a `rediss://` URL).
    pub tls: Option<bool>,
    /// Prepended to every key (default `ai-service:`).
    pub key_prefix: Option<String>,
    /// Limit on opening a connection (default 1s).
    pub connect_timeout: Option<HumanDuration>,
    /// Limit on one command (default 250ms).
    pub command_timeout: Option<HumanDuration>,
}

/// `limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Where the counters live.
    pub backend: Option<Backend>,
}

/// A per-client rate-limit policy as written (for example under a client key).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimitPolicy {
    /// Requests admitted per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per minute.
    pub tokens_per_minute: Option<u64>,
}

/// A size in bytes: a number, or a string such as `64MiB`, `500kB`, `1GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `64MiB`, `500 kB`, `1024`.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(scale).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 67108864 or \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ByteSize::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "invalid size {v:?}: use bytes or B, kB, KiB, MB, MiB, GB, GiB"
                    ))
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
