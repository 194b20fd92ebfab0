//! Vertex AI access tokens, asked for before every Vertex call (see [`super::VertexAccess`]).
//!
//! The `gcp_auth` crate does the OAuth work: a service-account key is exchanged at the key's
//! own `token_uri` for a token by the JWT-bearer grant (RS256-signed assertion naming the
//! account and the `cloud-platform` scope); without a key, the instance metadata server (GCE,
//! GKE workload identity) hands one out. Both cache the token and fetch a new one 20 seconds
//! before it expires, so most calls cost a read lock. A token is held here only as a
//! [`Secret`], made once per token (not per call) so the redactor learns each token once.

use std::sync::{Arc, Mutex};

use gcp_auth::{CustomServiceAccount, MetadataServiceAccount, TokenProvider};
use tokio::sync::OnceCell;

use crate::{
    config::VertexCredentials,
    provider::{ProviderError, ProviderErrorKind},
    secret::Secret,
};

/// The OAuth scope Vertex AI accepts.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where a provider's tokens come from.
// One per provider, built once: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    ServiceAccount(CustomServiceAccount),
    /// Built on first use: building it already asks the metadata server for a token.
    MetadataServer(OnceCell<MetadataServiceAccount>),
}

/// The last token handed out and its [`Secret`].
struct Current {
    token: Arc<gcp_auth::Token>,
    secret: Secret,
}

/// A provider's Google credentials.
pub struct VertexAuth {
    source: Source,
    current: Mutex<Option<Current>>,
}

impl std::fmt::Debug for VertexAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::ServiceAccount(_) => "service account key",
            Source::MetadataServer(_) => "metadata server",
        };
        f.debug_struct("VertexAuth").field("source", &source).finish_non_exhaustive()
    }
}

impl VertexAuth {
    /// The credentials `credentials` names; a key file is read and its private key parsed now.
    pub fn new(provider: &str, credentials: &VertexCredentials) -> Result<Self, ProviderError> {
        let source = match credentials {
            VertexCredentials::ServiceAccountFile(path) => {
                let account = CustomServiceAccount::from_file(path).map_err(|e| {
                    auth_error(
                        provider,
                        format!("cannot load the service-account key {}: {e}", path.display()),
                    )
                })?;
                Source::ServiceAccount(account)
            }
            VertexCredentials::MetadataServer => Source::MetadataServer(OnceCell::new()),
        };
        Ok(VertexAuth { source, current: Mutex::new(None) })
    }

    /// A valid access token, from the cache or freshly fetched.
    pub async fn token(&self, provider: &str) -> Result<Secret, ProviderError> {
        let fetched = match &self.source {
            Source::ServiceAccount(account) => account.token(&[SCOPE]).await,
            Source::MetadataServer(cell) => {
                match cell.get_or_try_init(MetadataServiceAccount::new).await {
                    Ok(account) => account.token(&[SCOPE]).await,
                    Err(e) => Err(e),
                }
            }
        };
        let token = fetched.map_err(|e| {
            auth_error(provider, format!("cannot get a Vertex AI access token: {e}"))
        })?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = current.as_ref().filter(|c| Arc::ptr_eq(&c.token, &token)) {
            return Ok(c.secret.clone());
        }
        let secret = Secret::new(token.as_str());
        *current = Some(Current { token, secret: secret.clone() });
        Ok(secret)
    }
}

/// A failure to get a token. Retryable: the token endpoint or metadata server may be down for
/// a moment, and another target may have other credentials.
fn auth_error(provider: &str, message: String) -> ProviderError {
    ProviderError::new(provider, ProviderErrorKind::Connect, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ya29.c.unit-test-token-never-printed";

    /// A key file whose `token_uri` is a local endpoint handing out `TOKEN`.
    async fn key_with_token_endpoint(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(|| async {
                axum::Json(serde_json::json!({"access_token": TOKEN, "expires_in": 3600}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vertex/test_key.pem"
        ))
        .unwrap();
        let key = serde_json::json!({
            "type": "service_account",
            "private_key": pem,
            "client_email": "unit@test.iam.gserviceaccount.com",
            "token_uri": format!("http://{addr}/token"),
        });
        let path = dir.path().join("sa.json");
        std::fs::write(&path, key.to_string()).unwrap();
        path
    }

    #[tokio::test]
    async fn the_token_never_prints_and_is_wrapped_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_with_token_endpoint(&dir).await;
        let auth = VertexAuth::new("v", &VertexCredentials::ServiceAccountFile(path)).unwrap();
        let first = auth.token("v").await.unwrap();
        assert_eq!(first.expose(), TOKEN);
        let second = auth.token("v").await.unwrap();
        assert_eq!(second, first);
        for printed in [
            format!("{auth:?}"),
            format!("{first:?}"),
            format!("{first}"),
            crate::redact::redact(&format!("got {TOKEN}")).into_owned(),
        ] {
            assert!(!printed.contains(TOKEN), "{printed}");
        }
        assert!(format!("{auth:?}").contains("service account key"));
    }

    #[test]
    fn a_key_that_does_not_load_is_an_error_naming_the_file() {
        let missing = VertexCredentials::ServiceAccountFile("/nonexistent/sa.json".into());
        let err = VertexAuth::new("v", &missing).unwrap_err();
        assert!(err.message.contains("/nonexistent/sa.json"), "{err}");
        // The metadata server is asked only on the first call, not at build time.
        assert!(VertexAuth::new("v", &VertexCredentials::MetadataServer).is_ok());
    }
}
