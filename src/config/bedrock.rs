//! `providers.<name>` of kind `bedrock`: AWS Bedrock's Converse API. Validates the region
//! (which gives the default base URL `https://bedrock-runtime.{region}.amazonaws.com`), the
//! optional shared-config profile, and where the AWS credentials come from: the standard
//! chain, read at the first call by the adapter ([`crate::provider::BedrockProvider`]). Keys
//! in the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) are
//! read here, with every other variable, so a config built from given variables sees them;
//! the rest of the chain (profile, web identity, container, instance metadata) is aws-config's.

use std::collections::HashMap;

use super::{
    ConfigError, ProviderConfig, ProviderSettings,
    provider::{Preset, connection, reject_unused},
    raw::{ProviderKind, RawProvider},
};
use crate::secret::Secret;

/// The variables the region is read from when the config gives none, in order.
pub const REGION_ENV: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
/// The variable a profile name is read from when the config gives none.
pub const PROFILE_ENV: &str = "AWS_PROFILE";

/// AWS keys given in the environment; never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticAwsKeys {
    /// `AWS_ACCESS_KEY_ID`: an identifier, not a secret, but kept out of logs all the same.
    pub access_key_id: Secret,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`, for temporary keys.
    pub session_token: Option<Secret>,
}

/// Where Bedrock's AWS credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsCredentials {
    /// Keys from the environment.
    Static(StaticAwsKeys),
    /// The rest of the standard chain: the shared config/credentials files (`profile`), web
    /// identity (IRSA on EKS), the container (ECS, EKS Pod Identity) and instance metadata.
    Chain {
        /// The shared-config profile; the default profile when `None`.
        profile: Option<String>,
    },
}

/// What a `bedrock` provider needs beyond its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BedrockSettings {
    /// The AWS region the requests are signed for.
    pub region: String,
    /// Where the credentials come from.
    pub credentials: AwsCredentials,
}

/// Validates a `bedrock` provider.
pub(super) fn validate(
    name: String,
    mut raw: RawProvider,
    preset: &Preset,
    vars: &HashMap<String, String>,
) -> Result<ProviderConfig, ConfigError> {
    let at = format!("providers.{name}");
    reject_unused(&at, &raw, ProviderKind::Bedrock, &["region", "profile"])?;
    for (field, set) in [
        ("api_key_env", raw.api_key_env.is_some()),
        ("api_key_file", raw.api_key_file.is_some()),
        ("api_key_vault", raw.api_key_vault.is_some()),
    ] {
        if set {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "Bedrock signs requests with AWS credentials, not a key: use the environment, a profile, web identity (IRSA) or the instance role",
            ));
        }
    }
    let var = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let region = match raw.region.take() {
        Some(region) => (format!("{at}.region"), region.trim().to_owned()),
        None => match REGION_ENV.iter().find_map(|v| var(v).map(|r| (*v, r))) {
            Some((variable, region)) => (variable.to_owned(), region.to_owned()),
            None => {
                return Err(ConfigError::new(
                    format!("{at}.region"),
                    "is required for kind bedrock (or set AWS_REGION)",
                ));
            }
        },
    };
    let (field, region) = region;
    if region.is_empty()
        || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ConfigError::new(field, "must be an AWS region such as us-east-1"));
    }
    raw.base_url.get_or_insert_with(|| default_base_url(&region));
    let connection = connection(&at, preset, &raw, vars)?;
    let profile_configured = raw.profile.is_some();
    let profile = raw.profile.take().or_else(|| var(PROFILE_ENV).map(str::to_owned));
    if profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(ConfigError::new(format!("{at}.profile"), "must not be empty"));
    }
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        // A profile named in the config wins over keys in the environment, as for the AWS CLI.
        (Some(id), Some(secret)) if !profile_configured => AwsCredentials::Static(StaticAwsKeys {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
        }),
        (Some(_), None) if profile.is_none() => {
            return Err(ConfigError::new(
                "AWS_SECRET_ACCESS_KEY",
                "is not set, but AWS_ACCESS_KEY_ID is: set both, or neither",
            ));
        }
        _ => AwsCredentials::Chain { profile },
    };
    Ok(ProviderConfig {
        name,
        settings: ProviderSettings::Bedrock {
            connection,
            bedrock: BedrockSettings { region, credentials },
        },
    })
}

/// The Bedrock runtime endpoint of `region`.
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn bedrock_of(
        yaml: &str,
        vars: &[(&str, &str)],
    ) -> Result<(String, BedrockSettings), ConfigError> {
        let yaml = format!(
            "providers: {{b: {yaml}}}\nroutes: [{{name: r, targets: [{{provider: b, model: m}}]}}]"
        );
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = Config::from_yaml(&yaml, vars)?;
        match &config.providers[0].settings {
            ProviderSettings::Bedrock { connection, bedrock } => {
                Ok((connection.base_url.clone(), bedrock.clone()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_region_gives_the_endpoint_and_no_keys_mean_the_chain() {
        let (url, b) = bedrock_of("{kind: bedrock, region: eu-west-3}", &[]).unwrap();
        assert_eq!(url, "https://bedrock-runtime.eu-west-3.amazonaws.com");
        assert_eq!(b.region, "eu-west-3");
        assert_eq!(b.credentials, AwsCredentials::Chain { profile: None });
        let (url, b) =
            bedrock_of("{kind: bedrock}", &[("AWS_DEFAULT_REGION", "us-west-2")]).unwrap();
        assert_eq!(url, "https://bedrock-runtime.us-west-2.amazonaws.com");
        assert_eq!(b.region, "us-west-2");
        let (_, b) =
            bedrock_of("{kind: bedrock, region: us-east-1}", &[("AWS_PROFILE", "prod")]).unwrap();
        assert_eq!(b.credentials, AwsCredentials::Chain { profile: Some("prod".into()) });
    }

    #[test]
    fn keys_in_the_environment_are_secrets_and_a_configured_profile_wins() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-key"),
            ("AWS_SESSION_TOKEN", "session-token"),
        ];
        let (_, b) = bedrock_of("{kind: bedrock, region: us-east-1}", &vars).unwrap();
        let AwsCredentials::Static(keys) = &b.credentials else { panic!("{b:?}") };
        assert_eq!(keys.secret_access_key.expose(), "very-secret-key");
        let shown = format!("{b:?}");
        assert!(!shown.contains("very-secret-key") && !shown.contains("session-token"), "{shown}");
        let (_, b) = bedrock_of("{kind: bedrock, region: us-east-1, profile: dev}", &vars).unwrap();
        assert_eq!(b.credentials, AwsCredentials::Chain { profile: Some("dev".into()) });
    }

    #[test]
    fn mistakes_name_their_field() {
        let err = bedrock_of("{kind: bedrock}", &[]).unwrap_err();
        assert_eq!(err.path, "providers.b.region");
        let err = bedrock_of("{kind: bedrock, region: US East}", &[]).unwrap_err();
        assert_eq!(err.path, "providers.b.region");
        let err = bedrock_of("{kind: bedrock}", &[("AWS_REGION", "no/region")]).unwrap_err();
        assert_eq!(err.path, "AWS_REGION");
        let err =
            bedrock_of("{kind: bedrock, region: us-east-1, api_key_env: X}", &[]).unwrap_err();
        assert_eq!(err.path, "providers.b.api_key_env");
        let err = bedrock_of("{kind: bedrock, region: us-east-1, project: p}", &[]).unwrap_err();
        assert_eq!(err.path, "providers.b.project");
        let err = bedrock_of("{kind: openai, api_key_env: K, region: us-east-1}", &[("K", "k")])
            .unwrap_err();
        assert_eq!(err.path, "providers.b.region");
        let err = bedrock_of("{kind: bedrock, region: us-east-1}", &[("AWS_ACCESS_KEY_ID", "A")])
            .unwrap_err();
        assert_eq!(err.path, "AWS_SECRET_ACCESS_KEY");
    }
}
