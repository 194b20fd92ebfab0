//! `vault:` and the `*_vault` references: where secrets come from when they live in HashiCorp
//! Vault or OpenBao.
//!
//! Loading stays synchronous and offline: a reference is checked for its shape here and
//! remembered as a [`VaultRef`]; the secret itself is fetched by [`crate::vault::resolve`]
//! before the gateway binds, and re-read by the gateway while it serves.

use std::{collections::HashMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{ConfigError, raw::HumanDuration};
use crate::secret::Secret;

/// A reference as written: `{path: secret/data/ai/openai, field: key}`, optionally `kv: 1|2`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultRef {
    /// The API path after `/v1/`, e.g. `secret/data/ai/openai` (KV v2) or `kv/ai/openai` (KV v1).
    pub path: String,
    /// The field of the secret that holds the value.
    pub field: String,
    /// The KV engine version; detected from the response when unset.
    #[serde(default)]
    pub kv: Option<u8>,
}

/// Which KV engine answers a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvVersion {
    /// Told apart by the response: `data.data` with `data.metadata` is v2, else v1.
    Detect,
    /// KV v1: the fields are in `data`.
    V1,
    /// KV v2: the fields are in `data.data`.
    V2,
}

/// A checked reference to one field of one Vault secret, with the config field it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// The API path after `/v1/`.
    pub path: String,
    /// The field holding the value.
    pub field: String,
    /// The KV engine version.
    pub kv: KvVersion,
    /// The config field that names it (e.g. `providers.openai.api_key_vault`), for errors.
    pub at: String,
}

impl fmt::Display for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.path, self.field)
    }
}

/// Checks a reference written at `at`.
pub fn vault_ref(at: &str, raw: &RawVaultRef) -> Result<VaultRef, ConfigError> {
    let path = raw.path.trim().trim_matches('/');
    if path.is_empty()
        || path.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        || path.contains(['?', '#', ' '])
    {
        return Err(ConfigError::new(
            format!("{at}.path"),
            format!("{:?} is not a Vault path (e.g. secret/data/ai/openai)", raw.path),
        ));
    }
    let field = raw.field.trim();
    if field.is_empty() {
        return Err(ConfigError::new(format!("{at}.field"), "must not be empty"));
    }
    let kv = match raw.kv {
        None => KvVersion::Detect,
        Some(1) => KvVersion::V1,
        Some(2) => KvVersion::V2,
        Some(n) => {
            return Err(ConfigError::new(format!("{at}.kv"), format!("{n} is not 1 or 2")));
        }
    };
    Ok(VaultRef { path: path.to_owned(), field: field.to_owned(), kv, at: at.to_owned() })
}

/// `vault:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVault {
    /// The server's URL; `VAULT_ADDR` when unset.
    pub address: Option<String>,
    /// The namespace (Vault Enterprise, OpenBao); `VAULT_NAMESPACE` when unset.
    pub namespace: Option<String>,
    /// A PEM file of the CA that signed the server's certificate; `VAULT_CACERT` when unset.
    pub ca_cert: Option<String>,
    /// How the gateway logs in.
    pub auth: RawVaultAuth,
    /// How often secrets are re-read (default 5m).
    pub refresh_interval: Option<HumanDuration>,
    /// Limit on one request to the server (default 10s).
    pub timeout: Option<HumanDuration>,
}

/// `vault.auth:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVaultAuth {
    /// `token` (default), `kubernetes` or `approle`.
    pub method: Option<VaultAuthMethod>,
    /// token: a file holding the token, instead of `VAULT_TOKEN`.
    pub token_file: Option<String>,
    /// kubernetes and approle: the role (kubernetes) — approle uses `role_id`.
    pub role: Option<String>,
    /// kubernetes, approle: where the auth method is mounted.
    pub mount: Option<String>,
    /// kubernetes: the service-account token.
    pub jwt_file: Option<String>,
    /// approle: the role id.
    pub role_id: Option<String>,
    /// approle: a file holding the role id.
    pub role_id_file: Option<String>,
    /// approle: a file holding the secret id.
    pub secret_id_file: Option<String>,
    /// approle: the variable holding the secret id.
    pub secret_id_env: Option<String>,
}

/// `vault.auth.method`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuthMethod {
    /// A token from `VAULT_TOKEN` or `token_file`.
    #[default]
    Token,
    /// The pod's service-account JWT and a role.
    Kubernetes,
    /// A role id and a secret id.
    AppRole,
}

/// Where a value read at every login comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Given in the config or the environment, read once.
    Value(Secret),
    /// A file, read at every login (a rotated secret volume is followed).
    File(PathBuf),
}

/// How the gateway logs in to Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultAuth {
    /// A token; static tokens are renewed when renewable, never re-issued.
    Token(Credential),
    /// `POST /v1/auth/<mount>/login` with `{role, jwt}`.
    Kubernetes {
        /// The role.
        role: String,
        /// The auth mount.
        mount: String,
        /// The service-account token file.
        jwt_file: PathBuf,
    },
    /// `POST /v1/auth/<mount>/login` with `{role_id, secret_id}`.
    AppRole {
        /// The role id.
        role_id: Credential,
        /// The secret id.
        secret_id: Credential,
        /// The auth mount.
        mount: String,
    },
}

/// `vault:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// The server's base URL, without a trailing slash.
    pub address: String,
    /// Sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// An extra root CA (PEM file).
    pub ca_cert: Option<PathBuf>,
    /// How to log in.
    pub auth: VaultAuth,
    /// How often secrets are re-read.
    pub refresh_interval: Duration,
    /// Limit on one request.
    pub timeout: Duration,
}

/// The default service-account token of a Kubernetes pod.
pub const DEFAULT_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Default `vault.refresh_interval`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Validates `vault:`; `None` when it is absent and nothing refers to Vault. `referenced` says
/// whether some field refers to Vault (then the section, or `VAULT_ADDR`, is needed).
pub fn validate_vault(
    raw: Option<RawVault>,
    referenced: bool,
    vars: &HashMap<String, String>,
) -> Result<Option<VaultConfig>, ConfigError> {
    if raw.is_none() && !referenced {
        return Ok(None);
    }
    let raw = raw.unwrap_or_default();
    let var = |name: &str| vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let Some(address) = raw.address.or_else(|| var("VAULT_ADDR")) else {
        return Err(ConfigError::new(
            "vault.address",
            "is required to read *_vault references: set it or VAULT_ADDR",
        ));
    };
    let address = address.trim().trim_end_matches('/').to_owned();
    match reqwest::Url::parse(&address) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.password().is_none() => {}
        _ => {
            return Err(ConfigError::new(
                "vault.address",
                format!("{address:?} is not an http(s) URL"),
            ));
        }
    }
    let namespace = raw.namespace.or_else(|| var("VAULT_NAMESPACE")).filter(|n| !n.is_empty());
    let ca_cert = raw.ca_cert.or_else(|| var("VAULT_CACERT")).map(PathBuf::from);
    if let Some(path) = &ca_cert
        && let Err(e) = std::fs::metadata(path)
    {
        return Err(ConfigError::new(
            "vault.ca_cert",
            format!("cannot read {}: {e}", path.display()),
        ));
    }
    let auth = validate_auth(raw.auth, vars)?;
    let refresh_interval = raw.refresh_interval.map_or(DEFAULT_REFRESH, |d| d.0);
    let timeout = raw.timeout.map_or(Duration::from_secs(10), |d| d.0);
    for (field, value) in [("refresh_interval", refresh_interval), ("timeout", timeout)] {
        if value.is_zero() {
            return Err(ConfigError::new(format!("vault.{field}"), "must be greater than zero"));
        }
    }
    Ok(Some(VaultConfig { address, namespace, ca_cert, auth, refresh_interval, timeout }))
}

fn validate_auth(
    raw: RawVaultAuth,
    vars: &HashMap<String, String>,
) -> Result<VaultAuth, ConfigError> {
    let at = "vault.auth";
    let method = raw.method.unwrap_or_default();
    let unused = |field: &str, set: bool| {
        if set {
            Err(ConfigError::new(format!("{at}.{field}"), "is not used by this auth method"))
        } else {
            Ok(())
        }
    };
    let mount = |default: &str| {
        let mount = raw.mount.clone().unwrap_or_else(|| default.to_owned());
        let mount = mount.trim().trim_matches('/').to_owned();
        if mount.is_empty() {
            Err(ConfigError::new(format!("{at}.mount"), "must not be empty"))
        } else {
            Ok(mount)
        }
    };
    match method {
        VaultAuthMethod::Token => {
            for (field, set) in [
                ("role", raw.role.is_some()),
                ("mount", raw.mount.is_some()),
                ("jwt_file", raw.jwt_file.is_some()),
                ("role_id", raw.role_id.is_some() || raw.role_id_file.is_some()),
                ("secret_id_file", raw.secret_id_file.is_some() || raw.secret_id_env.is_some()),
            ] {
                unused(field, set)?;
            }
            let token = match raw.token_file {
                Some(path) => Credential::File(PathBuf::from(path)),
                None => match vars.get("VAULT_TOKEN").map(Secret::new).filter(|t| !t.is_empty()) {
                    Some(token) => Credential::Value(token),
                    None => {
                        return Err(ConfigError::new(
                            format!("{at}.token_file"),
                            "no Vault token: set VAULT_TOKEN or token_file (or another auth method)",
                        ));
                    }
                },
            };
            Ok(VaultAuth::Token(token))
        }
        VaultAuthMethod::Kubernetes => {
            for (field, set) in [
                ("token_file", raw.token_file.is_some()),
                ("role_id", raw.role_id.is_some() || raw.role_id_file.is_some()),
                ("secret_id_file", raw.secret_id_file.is_some() || raw.secret_id_env.is_some()),
            ] {
                unused(field, set)?;
            }
            let role = raw.role.clone().filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                ConfigError::new(format!("{at}.role"), "is required for kubernetes auth")
            })?;
            Ok(VaultAuth::Kubernetes {
                role,
                mount: mount("kubernetes")?,
                jwt_file: PathBuf::from(raw.jwt_file.as_deref().unwrap_or(DEFAULT_JWT_FILE)),
            })
        }
        VaultAuthMethod::AppRole => {
            for (field, set) in [
                ("token_file", raw.token_file.is_some()),
                ("role", raw.role.is_some()),
                ("jwt_file", raw.jwt_file.is_some()),
            ] {
                unused(field, set)?;
            }
            let role_id = match (&raw.role_id, &raw.role_id_file) {
                (Some(id), None) => Credential::Value(Secret::new(id.as_str())),
                (None, Some(path)) => Credential::File(PathBuf::from(path)),
                _ => {
                    return Err(ConfigError::new(
                        format!("{at}.role_id"),
                        "set exactly one of role_id and role_id_file",
                    ));
                }
            };
            let secret_id = match (&raw.secret_id_file, &raw.secret_id_env) {
                (Some(path), None) => Credential::File(PathBuf::from(path)),
                (None, Some(var)) => match vars.get(var).map(Secret::new).filter(|s| !s.is_empty())
                {
                    Some(secret) => Credential::Value(secret),
                    None => {
                        return Err(ConfigError::new(
                            format!("{at}.secret_id_env"),
                            format!("the variable {var} is not set"),
                        ));
                    }
                },
                _ => {
                    return Err(ConfigError::new(
                        format!("{at}.secret_id_file"),
                        "set exactly one of secret_id_file and secret_id_env",
                    ));
                }
            };
            Ok(VaultAuth::AppRole { role_id, secret_id, mount: mount("approle")? })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const ROUTE: &str = "routes: [{name: r, targets: [{provider: openai, model: m}]}]";

    #[test]
    fn a_vault_key_needs_no_key_at_load_and_remembers_its_reference() {
        let yaml = format!(
            "providers: {{openai: {{api_key_vault: {{path: /secret/data/ai/openai/, field: key}}}}}}\n{ROUTE}"
        );
        let config =
            parse(&yaml, &[("VAULT_ADDR", "http://127.0.0.1:8200"), ("VAULT_TOKEN", "t")]).unwrap();
        let vault = config.vault.as_ref().unwrap();
        assert_eq!(vault.address, "http://127.0.0.1:8200");
        assert_eq!(vault.refresh_interval, super::DEFAULT_REFRESH);
        let refs = crate::vault::references(&config);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].to_string(), "secret/data/ai/openai#key");
        assert_eq!(refs[0].at, "providers.openai.api_key_vault");
        // The token is a secret even in the config's Debug output.
        assert!(!format!("{config:?}").contains("Value(t)"));
    }

    #[test]
    fn bad_references_and_settings_name_the_field() {
        let env = [("VAULT_ADDR", "http://v:8200"), ("VAULT_TOKEN", "t"), ("K", "k")];
        let cases = [
            ("{api_key_vault: {path: '', field: key}}", "providers.openai.api_key_vault.path"),
            ("{api_key_vault: {path: 'a/../b', field: k}}", "providers.openai.api_key_vault.path"),
            ("{api_key_vault: {path: a/b, field: ' '}}", "providers.openai.api_key_vault.field"),
            ("{api_key_vault: {path: a/b, field: k, kv: 3}}", "providers.openai.api_key_vault.kv"),
            ("{api_key_vault: {path: a/b}}", "providers.openai.api_key_vault"),
            (
                "{api_key_env: K, api_key_vault: {path: a/b, field: k}}",
                "providers.openai.api_key_vault",
            ),
        ];
        for (provider, path) in cases {
            let yaml = format!("providers: {{openai: {provider}}}\n{ROUTE}");
            let err = parse(&yaml, &env).unwrap_err();
            assert_eq!(err.path, path, "{provider}: {err}");
        }
        let key = "providers: {openai: {api_key_vault: {path: a/b, field: k}}}";
        let yaml = format!("{key}\n{ROUTE}");
        assert_eq!(parse(&yaml, &[]).unwrap_err().path, "vault.address");
        assert_eq!(
            parse(&yaml, &[("VAULT_ADDR", "http://v")]).unwrap_err().path,
            "vault.auth.token_file"
        );
        let settings = [
            ("vault: {address: 'ftp://v'}", "vault.address"),
            ("vault: {refresh_interval: 0s}", "vault.refresh_interval"),
            ("vault: {auth: {method: kubernetes}}", "vault.auth.role"),
            ("vault: {auth: {method: approle, role_id: r}}", "vault.auth.secret_id_file"),
            ("vault: {auth: {method: approle, secret_id_file: f}}", "vault.auth.role_id"),
            ("vault: {auth: {method: token, role: r}}", "vault.auth.role"),
            (
                "vault: {auth: {method: approle, role_id: r, secret_id_env: NOPE}}",
                "vault.auth.secret_id_env",
            ),
        ];
        for (vault, path) in settings {
            let yaml = format!("{vault}\n{key}\n{ROUTE}");
            let err = parse(&yaml, &env).unwrap_err();
            assert_eq!(err.path, path, "{vault}: {err}");
        }
    }

    #[test]
    fn every_kind_of_secret_can_refer_to_vault() {
        let yaml = "vault: {address: 'http://v', auth: {method: approle, role_id: r, secret_id_env: SID}}\n\
            auth: {keys_vault: {path: kv/ai/clients, field: keys, kv: 1}}\n\
            tracing: {otlp: {endpoint: 'http://c', headers: {x-token: {value_vault: {path: secret/data/otel, field: token}}}}}\n\
            providers: {openai: {api_key_vault: {path: secret/data/ai/openai, field: key}}}\n\
            routes: [{name: r, targets: [{provider: openai, model: m, endpoints: [{name: e, api_key_vault: {path: secret/data/ai/e, field: key}}]}]}]";
        let config = parse(yaml, &[("SID", "s")]).unwrap();
        let mut fields: Vec<String> =
            crate::vault::references(&config).into_iter().map(|r| r.at).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "auth.keys_vault",
                "providers.openai.api_key_vault",
                "routes[0].targets[0].endpoints[0].api_key_vault",
                "tracing.otlp.headers.x-token.value_vault",
            ]
        );
        assert!(config.auth.required(), "a keys_vault makes client keys required");
    }
}
