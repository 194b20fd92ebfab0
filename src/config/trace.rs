//! `tracing:` — the optional export of the gateway's spans to an OpenTelemetry collector over
//! OTLP ([`crate::telemetry::export`] builds the pipeline). Off unless `tracing.otlp.endpoint`
//! is set: with no such key nothing about OTLP is built.
//!
//! Header values (collector credentials) are [`Secret`]s from the moment they are read: no
//! `Debug`, log line or [`ConfigError`] shows one.

use std::{collections::BTreeMap, collections::HashMap, fmt, time::Duration};

use serde::Deserialize;

use super::{ConfigError, raw::HumanDuration};
use crate::secret::Secret;

/// The service name spans carry when `tracing.service_name` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "ai-service";

/// `tracing:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTracing {
    /// `service.name` of the exported spans (default `ai-service`).
    pub service_name: Option<String>,
    /// Share of new traces recorded, 0 to 1 (default 1); a caller's sampling decision wins.
    pub sample_ratio: Option<f64>,
    /// Where spans go; export is off without it.
    pub otlp: Option<RawOtlp>,
}

/// `tracing.otlp:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOtlp {
    /// The collector's base URL, e.g. `http://otel-collector:4317`.
    pub endpoint: Option<String>,
    /// `grpc` (default) or `http/protobuf`.
    pub protocol: Option<OtlpProtocol>,
    /// Limit on one export request (default 10s); also bounds the flush at shutdown.
    pub timeout: Option<HumanDuration>,
    /// Headers sent with every export (collector credentials), by name.
    pub headers: BTreeMap<String, RawOtlpHeader>,
}

/// `tracing.otlp.headers.<name>:` — exactly one of the three.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOtlpHeader {
    /// The value itself.
    pub value: Option<String>,
    /// The variable that holds the value.
    pub value_env: Option<String>,
    /// A file that holds the value (e.g. a Kubernetes secret volume).
    pub value_file: Option<String>,
    /// A field of a Vault secret that holds the value (read once, at start).
    pub value_vault: Option<super::vault::RawVaultRef>,
}

impl fmt::Debug for RawOtlpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawOtlpHeader")
            .field("value", &self.value.as_ref().map(|_| crate::redact::MASK))
            .field("value_env", &self.value_env)
            .field("value_file", &self.value_file)
            .field("value_vault", &self.value_vault)
            .finish()
    }
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, usually on port 4317.
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually on port 4318; spans go to `<endpoint>/v1/traces`.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// `tracing:` validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces recorded, 0 to 1.
    pub sample_ratio: f64,
    /// The collector, when export is on.
    pub otlp: Option<OtlpConfig>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            sample_ratio: 1.0,
            otlp: None,
        }
    }
}

/// `tracing.otlp:` validated.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The collector's base URL, without a trailing slash.
    pub endpoint: String,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// Limit on one export request and on the flush at shutdown.
    pub timeout: Duration,
    /// Headers sent with every export, names in lower case.
    pub headers: Vec<(String, Secret)>,
    /// Headers whose values are still in Vault; [`crate::vault::resolve`] moves them to
    /// `headers`.
    pub vault_headers: Vec<(String, super::VaultRef)>,
}

impl OtlpConfig {
    /// Where spans are sent: the endpoint itself for gRPC; for `http/protobuf`, the
    /// endpoint's `/v1/traces` (unless it already ends so).
    pub fn traces_url(&self) -> String {
        match self.protocol {
            OtlpProtocol::Grpc => self.endpoint.clone(),
            OtlpProtocol::HttpProtobuf if self.endpoint.ends_with("/v1/traces") => {
                self.endpoint.clone()
            }
            OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", self.endpoint),
        }
    }
}

/// Validates `tracing:`; `vars` is the environment header values may come from.
pub fn validate_tracing(
    raw: RawTracing,
    vars: &HashMap<String, String>,
) -> Result<TracingConfig, ConfigError> {
    let service_name =
        raw.service_name.map_or_else(|| DEFAULT_SERVICE_NAME.to_owned(), |s| s.trim().to_owned());
    if service_name.is_empty() {
        return Err(ConfigError::new("tracing.service_name", "must not be empty"));
    }
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(ConfigError::new(
            "tracing.sample_ratio",
            format!("{sample_ratio} is not between 0 and 1"),
        ));
    }
    let otlp = raw.otlp.map(|otlp| validate_otlp(otlp, vars)).transpose()?;
    Ok(TracingConfig { service_name, sample_ratio, otlp })
}

fn validate_otlp(raw: RawOtlp, vars: &HashMap<String, String>) -> Result<OtlpConfig, ConfigError> {
    let at = "tracing.otlp";
    let Some(endpoint) = raw.endpoint.map(|e| e.trim().trim_end_matches('/').to_owned()) else {
        return Err(ConfigError::new(
            format!("{at}.endpoint"),
            "required when tracing.otlp is set (e.g. http://otel-collector:4317)",
        ));
    };
    let uri: Option<http::Uri> = endpoint.parse().ok();
    let usable = uri.as_ref().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some_and(|h| !h.is_empty())
            && u.query().is_none()
    });
    if !usable || endpoint.contains('@') {
        // An endpoint carries no credentials (they belong in headers), so it may be shown.
        return Err(ConfigError::new(
            format!("{at}.endpoint"),
            format!(
                "{endpoint:?} is not an http:// or https:// URL of a collector \
                 (e.g. http://otel-collector:4317), without credentials"
            ),
        ));
    }
    let timeout = raw.timeout.map_or(Duration::from_secs(10), |d| d.0);
    if timeout.is_zero() {
        return Err(ConfigError::new(format!("{at}.timeout"), "must be greater than zero"));
    }
    let mut headers = Vec::with_capacity(raw.headers.len());
    let mut vault_headers = Vec::new();
    for (name, header) in raw.headers {
        let lower = name.trim().to_ascii_lowercase();
        let field = format!("{at}.headers.{name}");
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() || lower.ends_with("-bin") {
            return Err(ConfigError::new(field, format!("{name:?} is not a header name")));
        }
        if headers.iter().any(|(n, _): &(String, Secret)| *n == lower)
            || vault_headers.iter().any(|(n, _): &(String, super::VaultRef)| *n == lower)
        {
            return Err(ConfigError::new(field, "is set twice (header names ignore case)"));
        }
        if let Some(reference) = &header.value_vault {
            if header.value.is_some() || header.value_env.is_some() || header.value_file.is_some() {
                return Err(ConfigError::new(
                    field,
                    "set exactly one of value, value_env, value_file and value_vault",
                ));
            }
            let at = format!("{field}.value_vault");
            vault_headers.push((lower, super::vault::vault_ref(&at, reference)?));
            continue;
        }
        let value = header_value(&field, header, vars)?;
        headers.push((lower, value));
    }
    Ok(OtlpConfig {
        endpoint,
        protocol: raw.protocol.unwrap_or_default(),
        timeout,
        headers,
        vault_headers,
    })
}

/// Reads a header value. No error quotes the value: it is a credential.
fn header_value(
    at: &str,
    raw: RawOtlpHeader,
    vars: &HashMap<String, String>,
) -> Result<Secret, ConfigError> {
    let value = match (raw.value, raw.value_env, raw.value_file) {
        (Some(value), None, None) => Secret::new(value),
        (None, Some(var), None) => match vars.get(&var) {
            Some(value) => Secret::new(value.as_str()),
            None => {
                return Err(ConfigError::new(
                    format!("{at}.value_env"),
                    format!("the variable {var} is not set"),
                ));
            }
        },
        (None, None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(format!("{at}.value_file"), format!("cannot read {path}: {e}"))
            })?;
            Secret::new(text)
        }
        _ => {
            return Err(ConfigError::new(
                at,
                "set exactly one of value, value_env, value_file and value_vault",
            ));
        }
    };
    if value.is_empty() {
        return Err(ConfigError::new(at, "the value is empty"));
    }
    if http::HeaderValue::from_str(value.expose()).is_err() {
        return Err(ConfigError::new(
            at,
            "the value is not a valid header value (printable ASCII only)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, trace::OtlpProtocol};

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, std::iter::empty())
    }

    #[test]
    fn export_is_off_by_default() {
        let config = parse("").unwrap();
        assert_eq!(config.tracing.otlp, None);
        assert_eq!(config.tracing.service_name, "ai-service");
        assert!((config.tracing.sample_ratio - 1.0).abs() < f64::EPSILON);
        // A tracing block without otlp exports nothing either.
        assert_eq!(parse("tracing: {service_name: gw}").unwrap().tracing.otlp, None);
    }

    #[test]
    fn a_collector_is_configured_with_defaults() {
        let config = parse("tracing: {otlp: {endpoint: 'http://collector:4317/'}}").unwrap();
        let otlp = config.tracing.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://collector:4317");
        assert_eq!(otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(otlp.timeout.as_secs(), 10);
        assert_eq!(otlp.traces_url(), "http://collector:4317");
        let config = parse(
            "tracing: {sample_ratio: 0.25, otlp: {endpoint: 'https://c:4318', protocol: http/protobuf, timeout: 2s}}",
        )
        .unwrap();
        let otlp = config.tracing.otlp.unwrap();
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(otlp.traces_url(), "https://c:4318/v1/traces");
        assert!((config.tracing.sample_ratio - 0.25).abs() < f64::EPSILON);
    }

    #[test]
    fn bad_values_name_the_field() {
        for (yaml, path) in [
            ("tracing: {otlp: {endpoint: 'collector:4317'}}", "tracing.otlp.endpoint"),
            ("tracing: {otlp: {endpoint: 'ftp://c:21'}}", "tracing.otlp.endpoint"),
            ("tracing: {otlp: {endpoint: 'http://u:p@c:4317'}}", "tracing.otlp.endpoint"),
            ("tracing: {otlp: {}}", "tracing.otlp.endpoint"),
            (
                "tracing: {otlp: {endpoint: 'http://c', protocol: http/json}}",
                "tracing.otlp.protocol",
            ),
            ("tracing: {otlp: {endpoint: 'http://c', timeout: 0s}}", "tracing.otlp.timeout"),
            ("tracing: {otlp: {endpoint: 'http://c', timout: 1s}}", "tracing.otlp.timout"),
            ("tracing: {sample_ratio: 1.5}", "tracing.sample_ratio"),
            ("tracing: {sample_ratio: -0.1}", "tracing.sample_ratio"),
            ("tracing: {sample_ratio: .nan}", "tracing.sample_ratio"),
            ("tracing: {service_name: ' '}", "tracing.service_name"),
            (
                "tracing: {otlp: {endpoint: 'http://c', headers: {'bad header': {value: x}}}}",
                "tracing.otlp.headers.bad header",
            ),
            (
                "tracing: {otlp: {endpoint: 'http://c', headers: {x-token: {}}}}",
                "tracing.otlp.headers.x-token",
            ),
            (
                "tracing: {otlp: {endpoint: 'http://c', headers: {x-token: {value_env: NOPE_NOT_SET}}}}",
                "tracing.otlp.headers.x-token.value_env",
            ),
            (
                "tracing: {otlp: {endpoint: 'http://c', headers: {x-token: {value_file: /nonexistent/x}}}}",
                "tracing.otlp.headers.x-token.value_file",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert_eq!(err.path, path, "{yaml}: {err}");
        }
    }

    #[test]
    fn header_values_are_secrets_everywhere() {
        const TOKEN: &str = "otlp-token-0123456789abcdef";
        let vars = vec![("OTLP_TOKEN".to_owned(), TOKEN.to_owned())];
        let config = Config::from_yaml(
            "tracing: {otlp: {endpoint: 'http://c:4317', headers: {Authorization: {value_env: OTLP_TOKEN}, x-tenant: {value: tenant-1}}}}",
            vars,
        )
        .unwrap();
        let otlp = config.tracing.otlp.as_ref().unwrap();
        assert_eq!(otlp.headers[0].0, "authorization");
        assert_eq!(otlp.headers[0].1.expose(), TOKEN);
        assert!(!format!("{config:?}").contains(TOKEN));
        // The raw form does not print a literal value either.
        let raw: crate::config::raw::RawConfig = yaml_serde::from_str(&format!(
            "tracing: {{otlp: {{headers: {{a: {{value: {TOKEN}}}}}}}}}"
        ))
        .unwrap();
        assert!(!format!("{raw:?}").contains(TOKEN));
        // A value that cannot be sent is refused without being quoted.
        let bad = format!("{TOKEN}\u{7}");
        let vars = vec![("OTLP_TOKEN".to_owned(), bad)];
        let err = Config::from_yaml(
            "tracing: {otlp: {endpoint: 'http://c', headers: {a: {value_env: OTLP_TOKEN}}}}",
            vars,
        )
        .unwrap_err();
        assert_eq!(err.path, "tracing.otlp.headers.a");
        assert!(!err.to_string().contains(TOKEN), "{err}");
    }
}
