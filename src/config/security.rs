//! The security-related parts of the configuration: client keys (`auth:`), the audit trail
//! (`audit:`), TLS on the gRPC port (`server.tls:`) and the request limits of `server:`.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{ConfigError, raw::HumanDuration};

/// `auth:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// Client keys, by their SHA-256.
    pub keys: Vec<RawClientKey>,
    /// A YAML file holding more keys in the same form (a mounted secret); re-read when it
    /// changes.
    pub keys_file: Option<String>,
    /// A field of a Vault secret holding the same YAML as a keys file.
    pub keys_vault: Option<super::vault::RawVaultRef>,
}

/// One client key as configured: never the key itself, only its SHA-256.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientKey {
    /// A stable id; it appears in the audit record.
    pub id: String,
    /// Who holds it.
    #[serde(default)]
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the key (`ai-service keygen` prints it).
    pub sha256: String,
    /// Routes this key may call; empty means all.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Calls a minute this key may make.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens a minute this key may spend.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Dollars and tokens this key may spend a day or a month.
    #[serde(default)]
    pub budget: Option<super::pricing::RawBudget>,
}

/// A validated client key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKey {
    /// Its id.
    pub id: String,
    /// Who holds it.
    pub name: Option<String>,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Routes it may call; empty means all.
    pub routes: Vec<String>,
    /// Calls a minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens a minute.
    pub tokens_per_minute: Option<u64>,
    /// Dollars and tokens a day or a month.
    pub budget: Option<super::Budget>,
}

impl ClientKey {
    /// The key's rate limits.
    pub fn limits(&self) -> super::LimitPolicy {
        super::LimitPolicy {
            requests_per_minute: self.requests_per_minute.map(u64::from),
            tokens_per_minute: self.tokens_per_minute,
        }
    }

    /// Whether this key may call `route`.
    pub fn may_call(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route)
    }
}

/// `auth:` validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Keys from the config file.
    pub keys: Vec<ClientKey>,
    /// The keys file, when there is one.
    pub keys_file: Option<PathBuf>,
    /// The Vault secret holding more keys in the keys file's form, when there is one.
    pub keys_vault: Option<super::VaultRef>,
    /// The keys read from `keys_vault` by [`crate::vault::resolve`] (empty before).
    pub vault_keys: Vec<ClientKey>,
}

impl AuthConfig {
    /// Whether `other` configures the same keys and sources; the keys read from Vault are
    /// left out, since they rotate without a restart.
    pub fn same_settings(&self, other: &AuthConfig) -> bool {
        self.keys == other.keys
            && self.keys_file == other.keys_file
            && self.keys_vault == other.keys_vault
    }

    /// Whether calls need a key.
    pub fn required(&self) -> bool {
        !self.keys.is_empty() || self.keys_file.is_some() || self.keys_vault.is_some()
    }
}

/// `audit:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// `stdout` (default) or a file path to append to.
    pub sink: Option<String>,
    /// Put the (redacted) message content in the record.
    pub include_content: Option<bool>,
    /// Records waiting to be written before new calls wait.
    pub queue_capacity: Option<usize>,
    /// Caller headers copied into the record, besides `x-user-id` and `x-tenant-id`.
    pub headers: Vec<String>,
    /// Rotate the audit file by size and age into closed segments (file sinks only).
    pub rotate: Option<super::backup::RawRotate>,
}

/// Where audit records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditSinkConfig {
    /// Standard output, one JSON object a line.
    Stdout,
    /// A file opened for appending.
    File(PathBuf),
}

/// `audit:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where records go.
    pub sink: AuditSinkConfig,
    /// Whether records carry the message content.
    pub include_content: bool,
    /// Queue bound.
    pub queue_capacity: usize,
    /// Caller headers copied into the record (lower case).
    pub headers: Vec<String>,
    /// Rotation of the audit file, when configured.
    pub rotate: Option<super::backup::RotateConfig>,
}

/// Headers always copied into the audit record.
pub const AUDITED_HEADERS: &[&str] = &["x-user-id", "x-tenant-id"];

/// `server.tls:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// How often the files are checked for changes (default 10s).
    #[serde(default)]
    pub reload_interval: Option<HumanDuration>,
}

/// `server.tls:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Client CA bundle for mTLS.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// Request limits of `server:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Most messages in one request.
    pub max_messages: usize,
    /// Most concurrent streams (calls) on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Most chat calls in flight in the whole process; more are shed with RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 4 * 1024 * 1024,
            max_messages: 1024,
            max_concurrent_streams: 256,
            max_in_flight: 4096,
        }
    }
}

/// Parses a SHA-256 written as 64 hex digits.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Validates client keys found at `at` (`auth.keys` or the keys file).
pub fn validate_keys(at: &str, raw: Vec<RawClientKey>) -> Result<Vec<ClientKey>, ConfigError> {
    let mut keys: Vec<ClientKey> = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let at = format!("{at}[{i}]");
        if k.id.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.id"), "must not be empty"));
        }
        if keys.iter().any(|other| other.id == k.id) {
            return Err(ConfigError::new(format!("{at}.id"), format!("{:?} is used twice", k.id)));
        }
        let sha256 = parse_sha256(&k.sha256).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.sha256"),
                "must be 64 hex digits, the SHA-256 of the key (ai-service keygen prints it)",
            )
        })?;
        if k.requests_per_minute == Some(0) {
            return Err(ConfigError::new(
                format!("{at}.requests_per_minute"),
                "must be at least 1",
            ));
        }
        let budget = match &k.budget {
            Some(raw) => Some(super::pricing::validate_budget(&format!("{at}.budget"), raw)?),
            None => None,
        };
        keys.push(ClientKey {
            budget,
            id: k.id,
            name: k.name,
            sha256,
            routes: k.routes,
            requests_per_minute: k.requests_per_minute,
            tokens_per_minute: k.tokens_per_minute,
        });
    }
    Ok(keys)
}

/// Reads and validates a keys file: a YAML list of client keys.
pub fn read_keys_file(path: &std::path::Path) -> Result<Vec<ClientKey>, ConfigError> {
    let at = "auth.keys_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(at, format!("cannot read {}: {e}", path.display())))?;
    parse_keys(at, &format!("{}", path.display()), &text)
}

/// Parses the text of a keys file (or of the Vault secret `auth.keys_vault`), `origin` naming
/// where it came from. Errors never quote the text.
pub fn parse_keys(at: &str, origin: &str, text: &str) -> Result<Vec<ClientKey>, ConfigError> {
    let raw: Vec<RawClientKey> = if text.trim().is_empty() {
        Vec::new()
    } else {
        yaml_serde::from_str(text).map_err(|e| ConfigError::new(at, format!("{origin}: {e}")))?
    };
    validate_keys(origin, raw)
}

/// Validates `auth:`.
pub fn validate_auth(raw: RawAuth) -> Result<AuthConfig, ConfigError> {
    let keys = validate_keys("auth.keys", raw.keys)?;
    let keys_file = raw.keys_file.map(PathBuf::from);
    if let Some(path) = &keys_file {
        read_keys_file(path)?;
    }
    let keys_vault = match &raw.keys_vault {
        Some(_) if keys_file.is_some() => {
            return Err(ConfigError::new(
                "auth.keys_vault",
                "set at most one of keys_file and keys_vault",
            ));
        }
        Some(reference) => Some(super::vault::vault_ref("auth.keys_vault", reference)?),
        None => None,
    };
    Ok(AuthConfig { keys, keys_file, keys_vault, vault_keys: Vec::new() })
}

/// Validates `audit:`.
pub fn validate_audit(raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    let sink = match raw.sink.as_deref().map(str::trim) {
        None | Some("stdout" | "") => AuditSinkConfig::Stdout,
        Some(path) => AuditSinkConfig::File(PathBuf::from(path)),
    };
    let queue_capacity = raw.queue_capacity.unwrap_or(8192);
    if queue_capacity == 0 {
        return Err(ConfigError::new("audit.queue_capacity", "must be at least 1"));
    }
    let mut headers: Vec<String> = AUDITED_HEADERS.iter().map(|h| (*h).to_owned()).collect();
    for (i, h) in raw.headers.into_iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() || h.ends_with("-bin") {
            return Err(ConfigError::new(
                format!("audit.headers[{i}]"),
                format!("{h:?} is not a header name"),
            ));
        }
        if matches!(h.as_str(), "authorization" | "x-api-key" | "cookie") {
            return Err(ConfigError::new(
                format!("audit.headers[{i}]"),
                format!("{h} holds credentials"),
            ));
        }
        if !headers.contains(&h) {
            headers.push(h);
        }
    }
    let rotate = match raw.rotate {
        None => None,
        Some(_) if sink == AuditSinkConfig::Stdout => {
            return Err(ConfigError::new("audit.rotate", "needs audit.sink to be a file"));
        }
        Some(rotate) => Some(super::backup::validate_rotate(rotate)?),
    };
    Ok(AuditConfig {
        sink,
        include_content: raw.include_content.unwrap_or(false),
        queue_capacity,
        headers,
        rotate,
    })
}

/// Validates `server.tls:`.
pub fn validate_tls(raw: Option<RawTls>) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let tls = TlsConfig {
        cert_file: raw.cert_file.into(),
        key_file: raw.key_file.into(),
        client_ca_file: raw.client_ca_file.map(PathBuf::from),
        reload_interval: raw.reload_interval.map_or(Duration::from_secs(10), |d| d.0),
    };
    for (field, path) in [
        ("cert_file", Some(&tls.cert_file)),
        ("key_file", Some(&tls.key_file)),
        ("client_ca_file", tls.client_ca_file.as_ref()),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::metadata(path)
        {
            return Err(ConfigError::new(
                format!("server.tls.{field}"),
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    }
    if tls.reload_interval.is_zero() {
        return Err(ConfigError::new("server.tls.reload_interval", "must be greater than zero"));
    }
    // Parse them now, so a bad certificate stops the service before it binds a port.
    crate::tls::load(&tls).map_err(|e| match e.split_once(": ") {
        Some((path, message)) => ConfigError::new(path, message),
        None => ConfigError::new("server.tls", e.clone()),
    })?;
    Ok(Some(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_parses_only_when_whole() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_sha256(hex).unwrap()[0], 0x9f);
        assert!(parse_sha256(&hex[..63]).is_none());
        assert!(parse_sha256(&hex.replace('9', "g")).is_none());
    }

    #[test]
    fn bad_keys_name_their_field() {
        let key = |id: &str, sha: &str| RawClientKey {
            id: id.into(),
            name: None,
            sha256: sha.into(),
            routes: vec![],
            requests_per_minute: None,
            tokens_per_minute: None,
            budget: None,
        };
        let good = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let err = validate_keys("auth.keys", vec![key("a", good), key("a", good)]).unwrap_err();
        assert_eq!(err.path, "auth.keys[1].id");
        let err = validate_keys("auth.keys", vec![key("a", "nope")]).unwrap_err();
        assert_eq!(err.path, "auth.keys[0].sha256");
    }
}
