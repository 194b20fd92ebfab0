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
    /// Address of the admin HTTP port (`/metrics`, `/livez`, `/readyz`).
    pub admin_listen: Option<String>,
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

/// `providers.<name>:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Which adapter.
    pub kind: ProviderKind,
    /// echo: the pause between streamed deltas.
    #[serde(default)]
    pub chunk_delay: Option<HumanDuration>,
}

/// The provider adapters this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The built-in deterministic echo provider.
    Echo,
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
