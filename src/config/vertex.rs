//! `providers.<name>` of kind `vertex`: Google Vertex AI. Validates the project, the location
//! (which gives the default base URL: `https://{location}-aiplatform.googleapis.com`, or
//! `https://aiplatform.googleapis.com` for `global`) and where the Google credentials come
//! from: `credentials_file`, else `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server
//! (GKE workload identity). The adapter ([`crate::provider::VertexProvider`]) builds on this.

use std::{collections::HashMap, path::PathBuf};

use serde::Deserialize;

use super::{
    ConfigError, ProviderConfig, ProviderSettings,
    provider::{ANTHROPIC_MAX_TOKENS, Preset, connection, reject_unused},
    raw::{ProviderKind, RawProvider},
};

/// The variable Google's libraries read a service-account key path from.
pub const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The `anthropic_version` Claude on Vertex takes in the body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Where Vertex access tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VertexCredentials {
    /// A service-account JSON key, exchanged for tokens at its `token_uri`.
    ServiceAccountFile(PathBuf),
    /// The instance metadata server (GCE, or GKE workload identity).
    MetadataServer,
}

/// What a `vertex` provider needs beyond its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VertexSettings {
    /// The Google Cloud project id.
    pub project: String,
    /// The region, or `global`.
    pub location: String,
    /// Where access tokens come from.
    pub credentials: VertexCredentials,
    /// Claude: the body's `anthropic_version`.
    pub anthropic_version: String,
    /// Claude: `max_tokens` when the caller sets none.
    pub default_max_tokens: u32,
}

/// The fields of a service-account key checked at start, so a wrong file fails the config
/// rather than the first call. The key itself is read by the auth crate, not kept here.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    client_email: String,
}

/// Validates a `vertex` provider.
pub(super) fn validate(
    name: String,
    mut raw: RawProvider,
    preset: &Preset,
    vars: &HashMap<String, String>,
) -> Result<ProviderConfig, ConfigError> {
    let at = format!("providers.{name}");
    reject_unused(
        &at,
        &raw,
        ProviderKind::Vertex,
        &["project", "location", "credentials_file", "anthropic_version", "default_max_tokens"],
    )?;
    for (field, set) in [
        ("api_key_env", raw.api_key_env.is_some()),
        ("api_key_file", raw.api_key_file.is_some()),
        ("api_key_vault", raw.api_key_vault.is_some()),
    ] {
        if set {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "Vertex AI takes Google credentials, not a key: use credentials_file, GOOGLE_APPLICATION_CREDENTIALS or workload identity",
            ));
        }
    }
    let project = required(&at, "project", raw.project.take())?;
    if !project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '.') {
        return Err(ConfigError::new(format!("{at}.project"), "is not a project id"));
    }
    let location = required(&at, "location", raw.location.take())?;
    if !location.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(ConfigError::new(
            format!("{at}.location"),
            "must be a region such as us-central1, or global",
        ));
    }
    raw.base_url.get_or_insert_with(|| default_base_url(&location));
    let connection = connection(&at, preset, &raw, vars)?;
    let credentials = credentials(&at, raw.credentials_file.take(), vars)?;
    let default_max_tokens = raw.default_max_tokens.unwrap_or(ANTHROPIC_MAX_TOKENS);
    if default_max_tokens == 0 {
        return Err(ConfigError::new(
            format!("{at}.default_max_tokens"),
            "must be greater than zero",
        ));
    }
    let anthropic_version =
        raw.anthropic_version.take().unwrap_or_else(|| VERTEX_ANTHROPIC_VERSION.to_owned());
    Ok(ProviderConfig {
        name,
        settings: ProviderSettings::Vertex {
            connection,
            vertex: VertexSettings {
                project,
                location,
                credentials,
                anthropic_version,
                default_max_tokens,
            },
        },
    })
}

/// The endpoint of `location`.
pub fn default_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

fn required(at: &str, field: &str, value: Option<String>) -> Result<String, ConfigError> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::new(format!("{at}.{field}"), "is required for kind vertex")),
    }
}

fn credentials(
    at: &str,
    file: Option<String>,
    vars: &HashMap<String, String>,
) -> Result<VertexCredentials, ConfigError> {
    let (field, path) = match (file, vars.get(CREDENTIALS_ENV).filter(|v| !v.trim().is_empty())) {
        (Some(path), _) => (format!("{at}.credentials_file"), path),
        (None, Some(path)) => (CREDENTIALS_ENV.to_owned(), path.clone()),
        (None, None) => return Ok(VertexCredentials::MetadataServer),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new(&field, format!("cannot read {path}: {e}")))?;
    // The message names the file and the field only: never the key's contents.
    let key: KeyFile = serde_json::from_str(&text).map_err(|e| {
        ConfigError::new(
            &field,
            format!("{path} is not a service-account JSON key (line {})", e.line()),
        )
    })?;
    if key.kind != "service_account" || key.client_email.is_empty() {
        return Err(ConfigError::new(
            &field,
            format!(
                "{path} is a {:?} credential; Vertex AI here takes a service-account key (type service_account)",
                key.kind
            ),
        ));
    }
    Ok(VertexCredentials::ServiceAccountFile(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn vertex_of(
        yaml: &str,
        vars: &[(&str, &str)],
    ) -> Result<(String, VertexSettings), ConfigError> {
        let yaml = format!(
            "providers: {{v: {yaml}}}\nroutes: [{{name: r, targets: [{{provider: v, model: m}}]}}]"
        );
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = Config::from_yaml(&yaml, vars)?;
        match &config.providers[0].settings {
            ProviderSettings::Vertex { connection, vertex } => {
                Ok((connection.base_url.clone(), vertex.clone()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_location_gives_the_endpoint_and_no_key_means_the_metadata_server() {
        let (url, v) =
            vertex_of("{kind: vertex, project: p-1, location: europe-west4}", &[]).unwrap();
        assert_eq!(url, "https://europe-west4-aiplatform.googleapis.com");
        assert_eq!(v.credentials, VertexCredentials::MetadataServer);
        assert_eq!(v.anthropic_version, VERTEX_ANTHROPIC_VERSION);
        let (url, _) = vertex_of("{kind: vertex, project: p, location: global}", &[]).unwrap();
        assert_eq!(url, "https://aiplatform.googleapis.com");
    }

    #[test]
    fn a_service_account_key_comes_from_the_file_or_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sa.json");
        std::fs::write(&key, r#"{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"SECRET"}"#).unwrap();
        let path = key.display().to_string();
        let (_, v) = vertex_of(
            &format!("{{kind: vertex, project: p, location: global, credentials_file: {path}}}"),
            &[],
        )
        .unwrap();
        assert_eq!(v.credentials, VertexCredentials::ServiceAccountFile(key.clone()));
        let (_, v) =
            vertex_of("{kind: vertex, project: p, location: global}", &[(CREDENTIALS_ENV, &path)])
                .unwrap();
        assert_eq!(v.credentials, VertexCredentials::ServiceAccountFile(key));

        let user = dir.path().join("user.json");
        std::fs::write(&user, r#"{"type":"authorized_user","refresh_token":"SECRET"}"#).unwrap();
        let err = vertex_of(
            "{kind: vertex, project: p, location: global}",
            &[(CREDENTIALS_ENV, &user.display().to_string())],
        )
        .unwrap_err();
        assert_eq!(err.path, CREDENTIALS_ENV);
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn bad_vertex_settings_name_the_field() {
        let cases = [
            ("{kind: vertex, location: global}", "providers.v.project"),
            ("{kind: vertex, project: p}", "providers.v.location"),
            ("{kind: vertex, project: p, location: 'us central'}", "providers.v.location"),
            (
                "{kind: vertex, project: p, location: global, api_key_env: K}",
                "providers.v.api_key_env",
            ),
            (
                "{kind: vertex, project: p, location: global, credentials_file: /nope}",
                "providers.v.credentials_file",
            ),
            (
                "{kind: vertex, project: p, location: global, api_version: x}",
                "providers.v.api_version",
            ),
            ("{kind: gemini, api_key_env: K, project: p}", "providers.v.project"),
        ];
        for (yaml, path) in cases {
            let err = vertex_of(yaml, &[("K", "k")]).unwrap_err();
            assert_eq!(err.path, path, "{yaml}: {err}");
        }
    }
}
