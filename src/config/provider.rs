//! `providers.<name>`: validation of one provider's settings, the presets of each kind
//! (default base URL and key variable), and the detection of providers from the conventional
//! key variables when the file configures none.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use super::{
    ConfigError, ProviderConfig, ProviderSettings, duration, list,
    raw::{ProviderKind, RawProvider},
    vault::{RawVaultRef, VaultRef, vault_ref},
};
use crate::secret::Secret;

/// The defaults of one provider kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The kind.
    pub kind: ProviderKind,
    /// Its name in the config file.
    pub name: &'static str,
    /// Default base URL; `None` when the operator must give one.
    pub base_url: Option<&'static str>,
    /// The conventional key variable; `None` for keyless servers.
    pub key_env: Option<&'static str>,
    /// Whether the API needs a key at all.
    pub key_required: bool,
}

const fn preset(
    kind: ProviderKind,
    name: &'static str,
    base_url: Option<&'static str>,
    key_env: Option<&'static str>,
    key_required: bool,
) -> Preset {
    Preset { kind, name, base_url, key_env, key_required }
}

/// Every HTTP provider kind, in the order they are detected.
pub const PRESETS: &[Preset] = &[
    preset(
        ProviderKind::OpenAi,
        "openai",
        Some("https://api.openai.com/v1"),
        Some("OPENAI_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::Anthropic,
        "anthropic",
        Some("https://api.anthropic.com"),
        Some("ANTHROPIC_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::Gemini,
        "gemini",
        Some("https://generativelanguage.googleapis.com/v1beta"),
        Some("GEMINI_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::Cohere,
        "cohere",
        Some("https://api.cohere.com"),
        Some("CO_API_KEY"),
        true,
    ),
    preset(ProviderKind::AzureOpenAi, "azure_openai", None, Some("AZURE_OPENAI_API_KEY"), true),
    preset(
        ProviderKind::Groq,
        "groq",
        Some("https://api.groq.com/openai/v1"),
        Some("GROQ_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::DeepSeek,
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        Some("DEEPSEEK_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::Mistral,
        "mistral",
        Some("https://api.mistral.ai/v1"),
        Some("MISTRAL_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::Together,
        "together",
        Some("https://api.together.xyz/v1"),
        Some("TOGETHER_API_KEY"),
        true,
    ),
    preset(
        ProviderKind::OpenRouter,
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        Some("OPENROUTER_API_KEY"),
        true,
    ),
    preset(ProviderKind::XAi, "xai", Some("https://api.x.ai/v1"), Some("XAI_API_KEY"), true),
    preset(ProviderKind::Ollama, "ollama", Some("http://localhost:11434/v1"), None, false),
    preset(ProviderKind::VLlm, "vllm", Some("http://localhost:8000/v1"), None, false),
    preset(ProviderKind::OpenAiCompatible, "openai_compatible", None, None, false),
    // The base URL follows `location`; the credentials are Google's, not a key.
    preset(ProviderKind::Vertex, "vertex", None, None, false),
    // The base URL follows `region`; requests are signed with AWS credentials, not a key.
    preset(ProviderKind::Bedrock, "bedrock", None, None, false),
];

/// The variable that holds the Azure OpenAI endpoint when `base_url` is not set.
pub const AZURE_ENDPOINT_ENV: &str = "AZURE_OPENAI_ENDPOINT";
/// The default Azure `api-version`.
pub const AZURE_API_VERSION: &str = "2024-10-21";
/// The default `anthropic-version` header.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The default Anthropic `max_tokens`.
pub const ANTHROPIC_MAX_TOKENS: u32 = 4096;

impl Preset {
    /// The preset of `kind`; `None` for echo.
    pub fn of(kind: ProviderKind) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.kind == kind)
    }

    fn by_name(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }
}

/// Where a provider key comes from; kept so that a later rotation can read it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
    /// A field of a Vault secret; the key is fetched by [`crate::vault::resolve`].
    Vault(VaultRef),
}

/// How to reach one HTTP provider.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    /// The API's base URL, without a trailing slash.
    pub base_url: String,
    /// The key, when the API takes one.
    pub api_key: Option<Secret>,
    /// Where the key was read from.
    pub api_key_source: Option<KeySource>,
    /// An explicit proxy URL.
    pub proxy: Option<String>,
    /// Ignore the system proxy variables.
    pub disable_proxy: bool,
    /// Idle connections kept per host.
    pub pool_size: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Limit on opening a connection.
    pub connect_timeout: Duration,
    /// Limit on a unary call, and on the silence between two chunks of a stream.
    pub request_timeout: Duration,
    /// Most bytes read from one reply: a longer body or stream fails, rather than growing
    /// memory or running forever.
    pub max_output_bytes: usize,
}

/// Default `max_output_bytes`: far above any model's answer, far below the machine's memory.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

#[cfg(test)]
impl ConnectionSettings {
    /// Settings for an adapter under test that never connects anywhere real.
    pub fn for_tests(base_url: &str) -> ConnectionSettings {
        let second = Duration::from_secs(1);
        ConnectionSettings {
            base_url: base_url.to_owned(),
            api_key: None,
            api_key_source: None,
            proxy: None,
            disable_proxy: true,
            pool_size: 1,
            idle_timeout: second,
            connect_timeout: second,
            request_timeout: second,
            max_output_bytes: 1 << 20,
        }
    }
}

/// Default idle connections kept per upstream host. Over HTTP/1.1 every concurrent call needs
/// its own connection, and a call that finishes while the pool is full closes its connection:
/// with more concurrent calls per host than this, connections are opened and closed all the
/// time (at 64 concurrent calls and a pool of 32, connect/shutdown/close were the largest
/// share of the gateway's system time in `bench/`). Idle connections close after
/// `idle_timeout`, so a large cap costs nothing while load is low.
pub const DEFAULT_POOL_SIZE: usize = 256;

/// Validates `providers.<name>`.
pub fn validate(
    name: String,
    raw: RawProvider,
    vars: &HashMap<String, String>,
) -> Result<ProviderConfig, ConfigError> {
    let at = format!("providers.{name}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ConfigError::new(
            at,
            "a provider name may hold only letters, digits, '-' and '_'",
        ));
    }
    let kind = match raw.kind {
        Some(kind) => kind,
        None if name == super::ECHO => ProviderKind::Echo,
        None => match Preset::by_name(&name) {
            Some(preset) => preset.kind,
            None => {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                return Err(ConfigError::new(
                    format!("{at}.kind"),
                    format!(
                        "is required (one of echo, {}) unless the provider is named after its kind",
                        list(&names)
                    ),
                ));
            }
        },
    };

    let Some(preset) = Preset::of(kind) else {
        reject_unused(&at, &raw, kind, &[])?;
        return Ok(ProviderConfig {
            name,
            settings: ProviderSettings::Echo {
                chunk_delay: duration(raw.chunk_delay, Duration::ZERO),
            },
        });
    };
    if kind == ProviderKind::Vertex {
        return super::vertex::validate(name, raw, preset, vars);
    }
    if kind == ProviderKind::Bedrock {
        return super::bedrock::validate(name, raw, preset, vars);
    }
    let connection = connection(&at, preset, &raw, vars)?;
    let settings = match kind {
        ProviderKind::AzureOpenAi => {
            reject_unused(&at, &raw, kind, &["api_version"])?;
            let api_version =
                raw.api_version.clone().unwrap_or_else(|| AZURE_API_VERSION.to_owned());
            if api_version.trim().is_empty() {
                return Err(ConfigError::new(format!("{at}.api_version"), "must not be empty"));
            }
            ProviderSettings::AzureOpenAi { connection, api_version }
        }
        ProviderKind::Anthropic => {
            reject_unused(&at, &raw, kind, &["anthropic_version", "default_max_tokens"])?;
            let default_max_tokens = raw.default_max_tokens.unwrap_or(ANTHROPIC_MAX_TOKENS);
            if default_max_tokens == 0 {
                return Err(ConfigError::new(
                    format!("{at}.default_max_tokens"),
                    "must be greater than zero",
                ));
            }
            ProviderSettings::Anthropic {
                connection,
                version: raw
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| ANTHROPIC_VERSION.to_owned()),
                default_max_tokens,
            }
        }
        ProviderKind::Gemini => {
            reject_unused(&at, &raw, kind, &[])?;
            ProviderSettings::Gemini { connection }
        }
        ProviderKind::Cohere => {
            reject_unused(&at, &raw, kind, &[])?;
            ProviderSettings::Cohere { connection }
        }
        _ => {
            reject_unused(&at, &raw, kind, &[])?;
            ProviderSettings::OpenAi { kind, connection }
        }
    };
    Ok(ProviderConfig { name, settings })
}

/// Fields that only some kinds use must not appear on the others, so a misplaced field is an
/// error instead of a setting that silently does nothing.
pub(super) fn reject_unused(
    at: &str,
    raw: &RawProvider,
    kind: ProviderKind,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    let is_echo = kind == ProviderKind::Echo;
    let present = [
        ("chunk_delay", raw.chunk_delay.is_some() && !is_echo),
        ("api_version", raw.api_version.is_some()),
        ("anthropic_version", raw.anthropic_version.is_some()),
        ("default_max_tokens", raw.default_max_tokens.is_some()),
        ("base_url", is_echo && raw.base_url.is_some()),
        ("api_key_env", is_echo && raw.api_key_env.is_some()),
        ("api_key_file", is_echo && raw.api_key_file.is_some()),
        ("api_key_vault", is_echo && raw.api_key_vault.is_some()),
        ("proxy", is_echo && raw.proxy.is_some()),
        ("disable_proxy", is_echo && raw.disable_proxy.is_some()),
        ("pool_size", is_echo && raw.pool_size.is_some()),
        ("idle_timeout", is_echo && raw.idle_timeout.is_some()),
        ("connect_timeout", is_echo && raw.connect_timeout.is_some()),
        ("request_timeout", is_echo && raw.request_timeout.is_some()),
        ("max_output_bytes", is_echo && raw.max_output_bytes.is_some()),
        ("project", raw.project.is_some()),
        ("location", raw.location.is_some()),
        ("credentials_file", raw.credentials_file.is_some()),
        ("region", raw.region.is_some()),
        ("profile", raw.profile.is_some()),
    ];
    for (field, set) in present {
        if set && !allowed.contains(&field) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "is not used by this provider kind",
            ));
        }
    }
    Ok(())
}

pub(super) fn connection(
    at: &str,
    preset: &Preset,
    raw: &RawProvider,
    vars: &HashMap<String, String>,
) -> Result<ConnectionSettings, ConfigError> {
    let base_url = match (&raw.base_url, preset.kind) {
        (Some(url), _) => url.clone(),
        (None, ProviderKind::AzureOpenAi) => vars
            .get(AZURE_ENDPOINT_ENV)
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.base_url"),
                    format!(
                        "is required (the resource endpoint, e.g. https://NAME.openai.azure.com), or set {AZURE_ENDPOINT_ENV}"
                    ),
                )
            })?,
        (None, _) => preset.base_url.map(str::to_owned).ok_or_else(|| {
            ConfigError::new(format!("{at}.base_url"), "is required for this kind")
        })?,
    };
    let base_url = base_url.trim().trim_end_matches('/').to_owned();
    check_url(&format!("{at}.base_url"), &base_url)?;
    if let Some(proxy) = &raw.proxy {
        check_url(&format!("{at}.proxy"), proxy)?;
        if raw.disable_proxy == Some(true) {
            return Err(ConfigError::new(
                format!("{at}.proxy"),
                "cannot be set together with disable_proxy: true",
            ));
        }
    }

    let (api_key, api_key_source) =
        match explicit_key(at, &raw.api_key_env, &raw.api_key_file, &raw.api_key_vault, vars)? {
            Some((key, source)) => (key, Some(source)),
            None => {
                let found = preset
                    .key_env
                    .and_then(|var| vars.get(var).map(|v| (var, Secret::new(v.as_str()))))
                    .filter(|(_, k)| !k.is_empty());
                match (found, preset.key_required) {
                    (Some((var, key)), _) => (Some(key), Some(KeySource::Env(var.to_owned()))),
                    (None, false) => (None, None),
                    (None, true) => {
                        return Err(ConfigError::new(
                            format!("{at}.api_key_env"),
                            format!(
                                "no key: set {} or give api_key_env, api_key_file or api_key_vault",
                                preset.key_env.unwrap_or("the key variable")
                            ),
                        ));
                    }
                }
            }
        };

    let pool_size = raw.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
    let connect_timeout = duration(raw.connect_timeout, Duration::from_secs(10));
    let request_timeout = duration(raw.request_timeout, Duration::from_secs(300));
    for (field, value) in
        [("connect_timeout", connect_timeout), ("request_timeout", request_timeout)]
    {
        if value.is_zero() {
            return Err(ConfigError::new(format!("{at}.{field}"), "must be greater than zero"));
        }
    }
    let max_output_bytes = raw.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES);
    if max_output_bytes == 0 {
        return Err(ConfigError::new(
            format!("{at}.max_output_bytes"),
            "must be greater than zero",
        ));
    }
    Ok(ConnectionSettings {
        base_url,
        api_key,
        api_key_source,
        proxy: raw.proxy.clone(),
        disable_proxy: raw.disable_proxy.unwrap_or(false),
        pool_size,
        idle_timeout: duration(raw.idle_timeout, Duration::from_secs(90)),
        connect_timeout,
        request_timeout,
        max_output_bytes,
    })
}

fn check_url(field: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https" | "socks5" | "socks5h") => {
            if parsed.password().is_some() && !field.ends_with(".proxy") {
                return Err(ConfigError::new(
                    field,
                    "must not carry credentials; use api_key_env or api_key_file",
                ));
            }
            if parsed.query().is_some() {
                return Err(ConfigError::new(field, "must not have a query string"));
            }
            Ok(())
        }
        Ok(parsed) => Err(ConfigError::new(
            field,
            format!("unsupported scheme {:?}; use http or https", parsed.scheme()),
        )),
        Err(e) => Err(ConfigError::new(field, format!("{url:?} is not a URL: {e}"))),
    }
}

/// The providers that the conventional key variables in `vars` configure, for a gateway run
/// without a config file. Each is named after its kind and reached as `name/model`.
pub fn detect(
    vars: &HashMap<String, String>,
    defaults: &super::raw::RawProviderDefaults,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut providers = Vec::new();
    for preset in PRESETS {
        let Some(var) = preset.key_env else { continue };
        if vars.get(var).is_none_or(|v| v.trim().is_empty()) {
            continue;
        }
        if preset.kind == ProviderKind::AzureOpenAi && !vars.contains_key(AZURE_ENDPOINT_ENV) {
            tracing::warn!(
                "{var} is set but {AZURE_ENDPOINT_ENV} is not; Azure OpenAI is not configured"
            );
            continue;
        }
        let mut raw = RawProvider { kind: Some(preset.kind), ..RawProvider::default() };
        defaults.apply(&mut raw);
        providers.push(validate(preset.name.to_owned(), raw, vars).map_err(|e| {
            ConfigError::new(var, format!("detected provider {}: {}", preset.name, e.message))
        })?);
    }
    Ok(providers)
}

/// A key named explicitly by `api_key_env`, `api_key_file` or `api_key_vault` (at most one of
/// them), read now; a Vault key is `None` until [`crate::vault::resolve`] fetches it.
pub(crate) fn explicit_key(
    at: &str,
    api_key_env: &Option<String>,
    api_key_file: &Option<String>,
    api_key_vault: &Option<RawVaultRef>,
    vars: &HashMap<String, String>,
) -> Result<Option<(Option<Secret>, KeySource)>, ConfigError> {
    if let Some(reference) = api_key_vault {
        if api_key_env.is_some() || api_key_file.is_some() {
            return Err(ConfigError::new(
                format!("{at}.api_key_vault"),
                "set exactly one of api_key_env, api_key_file and api_key_vault",
            ));
        }
        let reference = vault_ref(&format!("{at}.api_key_vault"), reference)?;
        return Ok(Some((None, KeySource::Vault(reference))));
    }
    match (api_key_env, api_key_file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{at}.api_key_file"),
            "set exactly one of api_key_env, api_key_file and api_key_vault",
        )),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(format!("{at}.api_key_file"), format!("cannot read {path}: {e}"))
            })?;
            let key = Secret::new(text);
            if key.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.api_key_file"),
                    format!("{path} is empty"),
                ));
            }
            Ok(Some((Some(key), KeySource::File(PathBuf::from(path)))))
        }
        (Some(var), None) => match vars.get(var).map(Secret::new).filter(|k| !k.is_empty()) {
            Some(key) => Ok(Some((Some(key), KeySource::Env(var.clone())))),
            None => Err(ConfigError::new(
                format!("{at}.api_key_env"),
                format!("the variable {var} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn connection_of(config: &Config, name: &str) -> ConnectionSettings {
        let p = config.providers.iter().find(|p| p.name == name).unwrap();
        p.connection().expect("an HTTP provider").clone()
    }

    const ROUTE: &str = "routes: [{name: r, targets: [{provider: p, model: m}]}]";

    #[test]
    fn provider_defaults_fill_what_a_provider_leaves_unset() {
        let yaml = format!(
            "provider_defaults: {{pool_size: 16, request_timeout: 30s}}\nproviders: {{p: {{kind: groq, pool_size: 4}}, e: {{kind: echo}}}}\n{ROUTE}"
        );
        let config = Config::from_yaml(&yaml, vars(&[("GROQ_API_KEY", "gsk-1")])).unwrap();
        let c = connection_of(&config, "p");
        assert_eq!((c.pool_size, c.request_timeout), (4, Duration::from_secs(30)));

        // Providers found from key variables take them too.
        let config = Config::from_yaml(
            "provider_defaults: {pool_size: 16}",
            vars(&[("GROQ_API_KEY", "gsk-1")]),
        )
        .unwrap();
        assert_eq!(connection_of(&config, "groq").pool_size, 16);
    }

    #[test]
    fn keys_come_from_the_conventional_variable_by_default() {
        let yaml = format!("providers: {{p: {{kind: groq}}}}\n{ROUTE}");
        let config = Config::from_yaml(&yaml, vars(&[("GROQ_API_KEY", "gsk-1")])).unwrap();
        let c = connection_of(&config, "p");
        assert_eq!(c.api_key.unwrap().expose(), "gsk-1");
        assert_eq!(c.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(c.api_key_source, Some(KeySource::Env("GROQ_API_KEY".into())));

        let err = Config::from_yaml(&yaml, vars(&[])).unwrap_err();
        assert_eq!(err.path, "providers.p.api_key_env");
        assert!(err.message.contains("GROQ_API_KEY"), "{err}");
    }

    #[test]
    fn keys_come_from_a_named_variable_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "sk-file\n").unwrap();
        let yaml = format!(
            "providers: {{p: {{kind: openai, api_key_file: {}}}}}\n{ROUTE}",
            file.display()
        );
        let config = Config::from_yaml(&yaml, vars(&[])).unwrap();
        assert_eq!(connection_of(&config, "p").api_key.unwrap().expose(), "sk-file");

        let yaml = format!("providers: {{p: {{kind: openai, api_key_env: MY_KEY}}}}\n{ROUTE}");
        let err = Config::from_yaml(&yaml, vars(&[("OPENAI_API_KEY", "x")])).unwrap_err();
        assert_eq!(err.path, "providers.p.api_key_env");
        assert!(!err.to_string().contains('x') || !err.to_string().contains("\"x\""));
    }

    #[test]
    fn keyless_servers_need_no_key_and_the_kind_follows_the_name() {
        let yaml =
            "providers: {ollama: {}}\nroutes: [{name: r, targets: [{provider: ollama, model: m}]}]";
        let config = Config::from_yaml(yaml, vars(&[])).unwrap();
        let c = connection_of(&config, "ollama");
        assert!(c.api_key.is_none());
        assert_eq!(c.base_url, "http://localhost:11434/v1");
    }

    #[test]
    fn bad_connection_settings_name_the_field() {
        let cases = [
            ("{kind: openai_compatible}", "providers.p.base_url"),
            ("{kind: ollama, base_url: 'ftp://x'}", "providers.p.base_url"),
            ("{kind: ollama, proxy: 'not a url'}", "providers.p.proxy"),
            ("{kind: ollama, api_version: v1}", "providers.p.api_version"),
            ("{kind: ollama, chunk_delay: 1s}", "providers.p.chunk_delay"),
            ("{kind: echo, base_url: 'http://x'}", "providers.p.base_url"),
            ("{kind: ollama, connect_timeout: 0s}", "providers.p.connect_timeout"),
            ("{kind: azure_openai, api_key_env: K}", "providers.p.base_url"),
            (
                "{kind: anthropic, api_key_env: K, default_max_tokens: 0}",
                "providers.p.default_max_tokens",
            ),
            ("{}", "providers.p.kind"),
        ];
        for (provider, path) in cases {
            let yaml = format!("providers: {{p: {provider}}}\n{ROUTE}");
            let err = Config::from_yaml(&yaml, vars(&[("K", "k")])).unwrap_err();
            assert_eq!(err.path, path, "{provider}: {err}");
        }
    }

    #[test]
    fn key_variables_configure_providers_when_the_file_has_none() {
        let config = Config::from_yaml(
            "",
            vars(&[
                ("OPENAI_API_KEY", "sk-1"),
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("MISTRAL_API_KEY", ""),
            ]),
        )
        .unwrap();
        assert!(!config.echo_fallback);
        let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "anthropic", "azure_openai"]);
        assert!(config.routes.is_empty());

        // A file that configures providers turns detection off.
        let yaml = "providers: {echo: {kind: echo}}\nroutes: [{name: e, targets: [{provider: echo, model: m}]}]";
        let config = Config::from_yaml(yaml, vars(&[("OPENAI_API_KEY", "sk-1")])).unwrap();
        assert_eq!(config.providers.len(), 1);

        // No key at all: echo.
        assert!(Config::from_yaml("", vars(&[("PATH", "/bin")])).unwrap().echo_fallback);
    }
}
