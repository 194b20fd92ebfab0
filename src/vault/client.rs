//! The gateway's session with Vault/OpenBao: a dedicated HTTP client (with the configured CA),
//! the login of the configured method, the token's renewal, and KV reads.
//!
//! The token lives in a [`Secret`] and only ever leaves in the `X-Vault-Token` header. A token
//! is renewed (`renew-self`) once two thirds of its TTL have passed; a token from a login that
//! cannot be renewed any more is replaced by a new login.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{sync::Mutex, time::Instant};

use super::{
    Operation, VaultError,
    api::{
        AppRoleLogin, AuthResponse, Empty, ErrorResponse, FieldValue, Fields, KubernetesLogin,
        KvResponse, KvV1Response, KvV2Response, LookupResponse,
    },
};
use crate::{
    config::{
        VaultConfig, VaultRef,
        vault::{Credential, KvVersion, VaultAuth},
    },
    secret::Secret,
};

/// The token in use and what is known of its lease.
struct Lease {
    token: Secret,
    renewable: bool,
    /// Zero for a token that never expires.
    ttl: Duration,
    /// The TTL it was issued with, to tell a renewal capped by its max TTL.
    first_ttl: Duration,
    since: Instant,
}

impl Lease {
    /// When it should be renewed (two thirds into its TTL); `None` when it never expires.
    fn renew_at(&self) -> Option<Instant> {
        (!self.ttl.is_zero()).then(|| self.since + self.ttl * 2 / 3)
    }

    fn expired(&self, now: Instant) -> bool {
        !self.ttl.is_zero() && now >= self.since + self.ttl
    }
}

/// A session with one Vault server.
pub struct SecretStore {
    config: VaultConfig,
    http: reqwest::Client,
    lease: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore").field("address", &self.config.address).finish_non_exhaustive()
    }
}

impl SecretStore {
    /// A session with the server of `config`; nothing is sent until the first read.
    pub fn new(config: &VaultConfig) -> Result<SecretStore, VaultError> {
        let setup = |message: String| VaultError::new(Operation::Login, None, message);
        crate::provider::http::install_crypto();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .no_proxy();
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| setup(format!("cannot read vault.ca_cert {}: {e}", path.display())))?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                setup(format!("vault.ca_cert {} is not a PEM certificate: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| setup(format!("cannot build the client: {e}")))?;
        Ok(SecretStore { config: config.clone(), http, lease: Mutex::new(None) })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// How long until the token is due for renewal; `None` without a token or for one that
    /// never expires.
    pub async fn renewal_in(&self) -> Option<Duration> {
        let lease = self.lease.lock().await;
        lease.as_ref()?.renew_at().map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// A usable token: logs in the first time, renews it when due, logs in again when a
    /// login token can no longer be renewed.
    pub async fn token(&self) -> Result<Secret, VaultError> {
        let mut lease = self.lease.lock().await;
        let now = Instant::now();
        let current = match lease.take() {
            None => self.obtain().await?,
            Some(held) if held.renew_at().is_some_and(|at| now >= at) => {
                self.refresh_lease(held, now).await?
            }
            Some(held) => held,
        };
        let token = current.token.clone();
        *lease = Some(current);
        Ok(token)
    }

    /// Renews a token that is due; a login token that cannot be renewed is replaced.
    async fn refresh_lease(&self, held: Lease, now: Instant) -> Result<Lease, VaultError> {
        let from_login = !matches!(self.config.auth, VaultAuth::Token(_));
        if held.renewable {
            match self.renew(&held.token).await {
                // A renewal capped by the token's max TTL returns less time each round (in
                // whole seconds, down to 0): a login token then logs in again rather than
                // renewing ever more often.
                Ok(renewed) if !from_login || renewed.ttl * 3 >= held.first_ttl => {
                    return Ok(Lease { first_ttl: held.first_ttl, ..renewed });
                }
                Ok(_) => tracing::debug!("vault token near its max TTL; logging in again"),
                Err(e) if !from_login => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "vault token renewal failed; logging in again")
                }
            }
        } else if !from_login {
            // A static token that cannot be renewed is used until it expires; reads then fail.
            if held.expired(now) {
                return Err(VaultError::new(
                    Operation::Renew,
                    None,
                    "the Vault token expired and cannot be renewed".to_owned(),
                ));
            }
            return Ok(Lease { ttl: Duration::ZERO, ..held });
        }
        self.login().await
    }

    /// The first token: the configured one (looked up for its TTL) or a login.
    async fn obtain(&self) -> Result<Lease, VaultError> {
        match &self.config.auth {
            VaultAuth::Token(credential) => self.configured_token(credential).await,
            _ => self.login().await,
        }
    }

    async fn configured_token(&self, credential: &Credential) -> Result<Lease, VaultError> {
        let token = read_credential(credential, "vault.auth.token_file")
            .map_err(|m| VaultError::new(Operation::Login, None, m))?;
        let path = "auth/token/lookup-self";
        let looked: LookupResponse =
            self.send(Operation::Login, Method::GET, path, Some(&token), None::<&()>).await?;
        Ok(Lease {
            token,
            renewable: looked.data.renewable,
            ttl: Duration::from_secs(looked.data.ttl),
            first_ttl: Duration::from_secs(looked.data.ttl),
            since: Instant::now(),
        })
    }

    /// Logs in with the configured method.
    async fn login(&self) -> Result<Lease, VaultError> {
        let fail = |m: String| VaultError::new(Operation::Login, None, m);
        let response: AuthResponse = match &self.config.auth {
            VaultAuth::Token(credential) => return self.configured_token(credential).await,
            VaultAuth::Kubernetes { role, mount, jwt_file } => {
                let jwt = std::fs::read_to_string(jwt_file).map_err(|e| {
                    fail(format!("cannot read vault.auth.jwt_file {}: {e}", jwt_file.display()))
                })?;
                let body = KubernetesLogin { role, jwt: jwt.trim() };
                let path = format!("auth/{mount}/login");
                self.send(Operation::Login, Method::POST, &path, None, Some(&body)).await?
            }
            VaultAuth::AppRole { role_id, secret_id, mount } => {
                let role_id = read_credential(role_id, "vault.auth.role_id_file").map_err(fail)?;
                let secret_id =
                    read_credential(secret_id, "vault.auth.secret_id_file").map_err(fail)?;
                let body =
                    AppRoleLogin { role_id: role_id.expose(), secret_id: secret_id.expose() };
                let path = format!("auth/{mount}/login");
                self.send(Operation::Login, Method::POST, &path, None, Some(&body)).await?
            }
        };
        tracing::info!(ttl_seconds = response.auth.lease_duration, "logged in to Vault");
        Ok(lease_of(response))
    }

    /// Revokes a token this session logged in for (a configured token is left alone), so a
    /// session used once leaves no live token behind; a failure is only logged.
    pub async fn close(&self) {
        let Some(lease) = self.lease.lock().await.take() else { return };
        if matches!(self.config.auth, VaultAuth::Token(_)) {
            return;
        }
        let path = "auth/token/revoke-self";
        let revoked: Result<Empty, VaultError> =
            self.send(Operation::Renew, Method::POST, path, Some(&lease.token), Some(&())).await;
        if let Err(e) = revoked {
            tracing::debug!(error = %e, "cannot revoke the start-up Vault token; it expires on its own");
        }
    }

    async fn renew(&self, token: &Secret) -> Result<Lease, VaultError> {
        let response: AuthResponse = self
            .send(Operation::Renew, Method::POST, "auth/token/renew-self", Some(token), Some(&()))
            .await?;
        tracing::debug!(ttl_seconds = response.auth.lease_duration, "Vault token renewed");
        Ok(lease_of(response))
    }

    /// The value of `reference`, read now.
    pub async fn read(&self, reference: &VaultRef) -> Result<Secret, VaultError> {
        let fields = self.read_fields(reference).await?;
        let missing = |what: &str| {
            VaultError::new(Operation::Read, Some(reference), format!("the field {what}"))
        };
        match fields.get(&reference.field) {
            Some(FieldValue::Text(text)) => {
                let value = Secret::new(text.as_str());
                if value.is_empty() { Err(missing("is empty")) } else { Ok(value) }
            }
            Some(FieldValue::Other(_)) => Err(missing("is not a string")),
            None => Err(missing("does not exist")),
        }
    }

    async fn read_fields(&self, reference: &VaultRef) -> Result<Fields, VaultError> {
        let read = self.read_fields_with_token(reference).await;
        if let Err(e) = &read
            && e.denied
        {
            // The token expired or was revoked (e.g. Vault lost its state): start over with a
            // login (or a fresh look at the configured token) at the next attempt.
            *self.lease.lock().await = None;
        }
        read
    }

    async fn read_fields_with_token(&self, reference: &VaultRef) -> Result<Fields, VaultError> {
        let token = self.token().await?;
        let op = Operation::Read;
        let fields = match reference.kv {
            KvVersion::V1 => {
                let r: KvV1Response = self.get(reference, &token).await?;
                Some(r.data)
            }
            KvVersion::V2 => {
                let r: KvV2Response = self.get(reference, &token).await?;
                r.data.data
            }
            KvVersion::Detect => match self.get::<KvResponse>(reference, &token).await? {
                KvResponse::V2(r) => r.data.data,
                KvResponse::V1(r) => Some(r.data),
            },
        };
        fields.ok_or_else(|| {
            VaultError::new(op, Some(reference), "the secret's current version is deleted".into())
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        reference: &VaultRef,
        token: &Secret,
    ) -> Result<T, VaultError> {
        self.send(Operation::Read, Method::GET, &reference.path, Some(token), None::<&()>)
            .await
            .map_err(|e| e.about(reference))
    }

    /// One request to `/v1/<path>`. Errors name the operation and the HTTP status, and the
    /// server's error text, never the token or a body.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&B>,
    ) -> Result<T, VaultError> {
        let fail = |m: String| VaultError::new(op, None, m);
        let url = format!("{}/v1/{path}", self.config.address);
        let mut request = self.http.request(method, &url);
        if let Some(token) = token {
            let mut value = http::HeaderValue::from_str(token.expose())
                .map_err(|_| fail("the Vault token is not a valid header value".to_owned()))?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            fail(format!("{} unreachable: {}", self.config.address, e.without_url()))
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| fail(format!("reading the answer: {}", e.without_url())))?;
        if !status.is_success() {
            let errors = serde_json::from_slice::<ErrorResponse>(&bytes)
                .map(|e| e.errors)
                .unwrap_or_default();
            let detail =
                if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) };
            let what = if status == StatusCode::NOT_FOUND { "not found" } else { "refused" };
            let mut error = fail(format!("{what} (HTTP {}){detail}", status.as_u16()));
            error.denied = status == StatusCode::FORBIDDEN;
            return Err(error);
        }
        // 204 No Content (revoke-self) reads as `null`.
        let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"null") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("unexpected answer: {e}")))
    }
}

fn lease_of(response: AuthResponse) -> Lease {
    Lease {
        token: Secret::new(response.auth.client_token),
        renewable: response.auth.renewable,
        ttl: Duration::from_secs(response.auth.lease_duration),
        first_ttl: Duration::from_secs(response.auth.lease_duration),
        since: Instant::now(),
    }
}

/// A credential's value: given, or read from its file now (so a rotated file is followed).
fn read_credential(credential: &Credential, field: &str) -> Result<Secret, String> {
    let value = match credential {
        Credential::Value(value) => value.clone(),
        Credential::File(path) => std::fs::read_to_string(path)
            .map(Secret::new)
            .map_err(|e| format!("cannot read {field} {}: {e}", path.display()))?,
    };
    if value.is_empty() { Err(format!("{field} is empty")) } else { Ok(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl: u64) -> Lease {
        let ttl = Duration::from_secs(ttl);
        Lease {
            token: Secret::new("t"),
            renewable: true,
            ttl,
            first_ttl: ttl,
            since: Instant::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_due_two_thirds_into_its_ttl_and_one_without_ttl_never() {
        let held = lease(30);
        assert_eq!(held.renew_at(), Some(held.since + Duration::from_secs(20)));
        assert!(!held.expired(held.since + Duration::from_secs(29)));
        assert!(held.expired(held.since + Duration::from_secs(30)));
        let root = lease(0);
        assert_eq!(root.renew_at(), None);
        assert!(!root.expired(root.since + Duration::from_secs(1 << 30)));
    }
}
