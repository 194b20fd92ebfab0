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
    /// Providers by name.
    pub providers: BTreeMap<String, RawProvider>,
    /// Public routes.
    pub routes: Vec<RawRoute>,
}

/// `server:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address of the gRPC port.
    pub listen: Option<String>,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub shutdown_grace: Option<HumanDuration>,
    /// How long to keep serving after turning NOT_SERVING, so load balancers notice.
    pub shutdown_delay: Option<HumanDuration>,
    /// Deadline for calls that bring none.
    pub request_timeout: Option<HumanDuration>,
}

/// `log:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A level or an `EnvFilter` directive; `RUST_LOG` wins over it.
    pub level: Option<String>,
    /// `text` or `json`.
    pub format: Option<LogFormat>,
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
    /// azure_openai: the `api-version` query parameter.
    #[serde(default)]
    pub api_version: Option<String>,
    /// anthropic: the `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// anthropic: `max_tokens` when the caller sets none (the API requires one).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
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
