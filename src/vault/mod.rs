//! Secrets from HashiCorp Vault or OpenBao: the fourth source of provider keys, endpoint
//! keys, the client-keys file and OTLP header values, beside variables and files.
//!
//! Where it sits: [`crate::config`] checks each `*_vault` reference offline; [`resolve`] fetches
//! them all before the gateway binds (a failure ends the process with [`EXIT_CODE`]); while
//! serving, [`refresh::run`] renews the token and re-reads every secret each
//! `vault.refresh_interval` (and SIGHUP does at once), swapping rotated keys into the same
//! handles the adapters read ([`crate::keys`]). A store that goes away leaves the last good
//! secrets in force, counted in the `ai_service_secret_store_*` metrics.

mod api;
mod client;
pub mod refresh;

use std::fmt;

pub use client::SecretStore;

use crate::{
    config::{Config, ConfigError, KeySource, VaultRef, security::parse_keys},
    secret::Secret,
};

/// The exit code when a secret cannot be fetched at start (`EX_UNAVAILABLE`), distinct from a
/// bad config's 64.
pub const EXIT_CODE: i32 = 69;

/// What the gateway was doing with the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Logging in, or looking up the configured token.
    Login,
    /// Renewing the token.
    Renew,
    /// Reading a secret.
    Read,
}

impl Operation {
    /// The `operation` label of `ai_service_secret_store_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::Renew => "renew",
            Operation::Read => "read",
        }
    }
}

/// A secret-store failure. It names the reference and the config field, never a value or the
/// token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultError {
    /// What failed.
    pub operation: Operation,
    /// The reference (`path#field`) and its config field, for reads.
    pub reference: Option<(String, String)>,
    /// What went wrong.
    pub message: String,
    /// Vault refused the token (HTTP 403): it expired or was revoked.
    pub denied: bool,
}

impl VaultError {
    fn new(operation: Operation, reference: Option<&VaultRef>, message: String) -> VaultError {
        VaultError {
            operation,
            reference: reference.map(|r| (r.to_string(), r.at.clone())),
            message,
            denied: false,
        }
    }

    /// The same error, about `reference` if it names none yet.
    fn about(mut self, reference: &VaultRef) -> VaultError {
        if self.reference.is_none() && self.operation == Operation::Read {
            self.reference = Some((reference.to_string(), reference.at.clone()));
        }
        self
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.reference, self.operation) {
            (Some((reference, at)), _) => {
                write!(f, "vault: cannot read {reference} (for {at}): {}", self.message)
            }
            (None, Operation::Login) => write!(f, "vault: login failed: {}", self.message),
            (None, Operation::Renew) => write!(f, "vault: token renewal failed: {}", self.message),
            (None, Operation::Read) => write!(f, "vault: read failed: {}", self.message),
        }
    }
}

impl std::error::Error for VaultError {}

/// Every Vault reference of `config`, in config order.
pub fn references(config: &Config) -> Vec<VaultRef> {
    let mut refs = Vec::new();
    let mut note = |source: &Option<KeySource>| {
        if let Some(KeySource::Vault(reference)) = source {
            refs.push(reference.clone());
        }
    };
    for provider in &config.providers {
        if let Some(connection) = provider.connection() {
            note(&connection.api_key_source);
        }
    }
    for route in &config.routes {
        for target in &route.targets {
            for endpoint in &target.endpoints {
                note(&endpoint.api_key_source);
            }
        }
    }
    refs.extend(config.auth.keys_vault.clone());
    if let Some(otlp) = &config.tracing.otlp {
        refs.extend(otlp.vault_headers.iter().map(|(_, r)| r.clone()));
    }
    refs
}

/// Fetches every Vault reference of `config` into it, with a session of its own; does nothing
/// when there are none. Run before the gateway binds, and on every config reload.
pub async fn resolve(config: &mut Config) -> Result<(), VaultError> {
    let Some(vault) = &config.vault else { return Ok(()) };
    if references(config).is_empty() {
        return Ok(());
    }
    let store = SecretStore::new(vault)?;
    let resolved = resolve_with(&store, config).await;
    // The gateway keeps a session of its own; this one's token is not needed any more.
    store.close().await;
    resolved
}

/// Like [`resolve`], through an existing session (the gateway's, on reload).
pub async fn resolve_with(store: &SecretStore, config: &mut Config) -> Result<(), VaultError> {
    for provider in &mut config.providers {
        if let Some(connection) = provider.connection_mut()
            && let Some(KeySource::Vault(reference)) = &connection.api_key_source
        {
            connection.api_key = Some(store.read(reference).await?);
        }
    }
    for route in &mut config.routes {
        for target in &mut route.targets {
            for endpoint in &mut target.endpoints {
                if let Some(KeySource::Vault(reference)) = &endpoint.api_key_source {
                    endpoint.api_key = Some(store.read(reference).await?);
                }
            }
        }
    }
    if let Some(reference) = &config.auth.keys_vault {
        config.auth.vault_keys = client_keys(store, reference).await?;
    }
    if let Some(otlp) = &mut config.tracing.otlp {
        for (name, reference) in std::mem::take(&mut otlp.vault_headers) {
            let value = store.read(&reference).await?;
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Err(VaultError::new(
                    Operation::Read,
                    Some(&reference),
                    "the value is not a valid header value (printable ASCII only)".to_owned(),
                ));
            }
            otlp.headers.push((name, value));
        }
    }
    Ok(())
}

/// The client keys held, as keys-file YAML, in the secret `reference`.
pub async fn client_keys(
    store: &SecretStore,
    reference: &VaultRef,
) -> Result<Vec<crate::config::ClientKey>, VaultError> {
    let text: Secret = store.read(reference).await?;
    parse_keys(&reference.at, &reference.to_string(), text.expose())
        .map_err(|e: ConfigError| VaultError::new(Operation::Read, Some(reference), e.message))
}
