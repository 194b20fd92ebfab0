//! AWS credentials and SigV4 signing for the Bedrock adapter: the last step before a Converse
//! request leaves the gateway.
//!
//! Credentials come from keys in the environment (read with the config) or from aws-config's
//! standard chain: the shared config and credentials files (with a profile), web identity (IRSA
//! on EKS: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged at STS), the container
//! endpoint (ECS, EKS Pod Identity) and the instance metadata service. The chain's own HTTP
//! calls go through aws-smithy-http-client on rustls/ring, like the rest of the gateway.
//!
//! Temporary credentials are cached and fetched again before they expire: at the latest five
//! minutes before, earlier for short-lived ones (halfway through their life), so no call is
//! signed with credentials about to lapse. One refresh runs at a time; while it fails, calls
//! go on with the cached credentials until they actually expire. Credentials without an expiry
//! are read again every 15 minutes (a rotated profile file is picked up).
//!
//! Each request is signed by `aws-sigv4` (service `bedrock`) over its exact body; the signed
//! headers (`authorization`, `x-amz-date`, `x-amz-security-token`) are marked sensitive.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwapOption;
use aws_config::{
    default_provider::credentials::DefaultCredentialsChain, provider_config::ProviderConfig,
};
use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use http::header::{HeaderName, HeaderValue};

use crate::{
    config::{AwsCredentials, BedrockSettings},
    provider::{ProviderError, ProviderErrorKind},
};

/// The service name Bedrock's runtime API is signed for.
const SIGNING_NAME: &str = "bedrock";
/// The longest time before its expiry that temporary credentials are replaced.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// How long credentials without an expiry are used before the chain is asked again.
const UNEXPIRING_FOR: Duration = Duration::from_secs(900);

/// Credentials in use and when to replace them.
struct Current {
    credentials: Credentials,
    refresh_at: SystemTime,
}

/// Signs Bedrock requests for one region with credentials it keeps fresh.
pub(crate) struct AwsSigner {
    provider: String,
    region: String,
    settings: AwsCredentials,
    chain: tokio::sync::OnceCell<SharedCredentialsProvider>,
    current: ArcSwapOption<Current>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials themselves.
        f.debug_struct("AwsSigner").field("region", &self.region).finish_non_exhaustive()
    }
}

impl AwsSigner {
    /// A signer for `settings`; nothing is read until the first call.
    pub(crate) fn new(provider: &str, settings: &BedrockSettings) -> Self {
        AwsSigner {
            provider: provider.to_owned(),
            region: settings.region.clone(),
            settings: settings.credentials.clone(),
            chain: tokio::sync::OnceCell::new(),
            current: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The region requests are signed for.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// The headers that sign a POST of `body` to `url`.
    pub(crate) async fn sign(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProviderError> {
        let credentials = self.credentials().await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_NAME)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.error(format!("cannot sign the request: {e}")))?
            .into();
        let request =
            SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
                .map_err(|e| self.error(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| self.error(format!("cannot sign the request: {e}")))?
            .into_parts();
        let mut signed = Vec::new();
        for (name, value) in instructions.headers() {
            let name = HeaderName::try_from(name)
                .map_err(|_| self.error("the signature is not a valid header"))?;
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| self.error("the signature is not a valid header"))?;
            value.set_sensitive(true);
            signed.push((name, value));
        }
        Ok(signed)
    }

    /// Credentials that are not about to expire, fetched again when they are.
    async fn credentials(&self) -> Result<Credentials, ProviderError> {
        if let Some(current) = self.fresh(SystemTime::now()) {
            return Ok(current);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        let now = SystemTime::now();
        // Another call may have refreshed them while this one waited.
        if let Some(current) = self.fresh(now) {
            return Ok(current);
        }
        match self.fetch().await {
            Ok(credentials) => {
                let refresh_at = refresh_time(now, credentials.expiry());
                self.current.store(Some(Arc::new(Current {
                    credentials: credentials.clone(),
                    refresh_at,
                })));
                Ok(credentials)
            }
            Err(err) => match self.current.load_full() {
                // Still valid: use them, and try again at the next call.
                Some(current) if current.credentials.expiry().is_none_or(|at| at > now) => {
                    tracing::warn!(provider = %self.provider, error = %err.message, "AWS credentials could not be refreshed; using the current ones until they expire");
                    Ok(current.credentials.clone())
                }
                _ => Err(err),
            },
        }
    }

    fn fresh(&self, now: SystemTime) -> Option<Credentials> {
        self.current.load().as_ref().filter(|c| c.refresh_at > now).map(|c| c.credentials.clone())
    }

    async fn fetch(&self) -> Result<Credentials, ProviderError> {
        let chain = match &self.settings {
            AwsCredentials::Static(keys) => {
                return Ok(Credentials::new(
                    keys.access_key_id.expose(),
                    keys.secret_access_key.expose(),
                    keys.session_token.as_ref().map(|t| t.expose().to_owned()),
                    None,
                    "environment",
                ));
            }
            AwsCredentials::Chain { profile } => {
                self.chain.get_or_init(|| self.build_chain(profile.clone())).await
            }
        };
        chain.provide_credentials().await.map_err(|e| {
            // The chain of causes' messages only: their `Debug` forms hold raw replies.
            let mut message = format!("no AWS credentials: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            // Retryable, as for Vertex AI's tokens: STS or the metadata service may be down for
            // a moment, and another target may have other credentials.
            ProviderError::new(&self.provider, ProviderErrorKind::Connect, message)
        })
    }

    async fn build_chain(&self, profile: Option<String>) -> SharedCredentialsProvider {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = ProviderConfig::default()
            .with_http_client(http)
            .with_region(Some(aws_config::Region::new(self.region.clone())));
        let mut builder = DefaultCredentialsChain::builder()
            .region(aws_config::Region::new(self.region.clone()))
            .configure(config);
        if let Some(profile) = &profile {
            builder = builder.profile_name(profile);
        }
        SharedCredentialsProvider::new(builder.build().await)
    }

    fn error(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::new(&self.provider, ProviderErrorKind::Auth, message)
    }
}

/// When credentials fetched at `now` that expire at `expiry` are to be replaced.
fn refresh_time(now: SystemTime, expiry: Option<SystemTime>) -> SystemTime {
    match expiry {
        None => now + UNEXPIRING_FOR,
        Some(expiry) => {
            let life = expiry.duration_since(now).unwrap_or_default();
            expiry - REFRESH_BEFORE.min(life / 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_credentials_are_replaced_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_time(now, Some(now + hour)), now + hour - REFRESH_BEFORE);
        // Short-lived ones halfway through their life.
        let short = Duration::from_secs(60);
        assert_eq!(refresh_time(now, Some(now + short)), now + short / 2);
        // Already expired: at once.
        assert_eq!(refresh_time(now, Some(now - short)), now - short);
        assert_eq!(refresh_time(now, None), now + UNEXPIRING_FOR);
    }
}
