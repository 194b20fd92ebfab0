//! Client authentication: who is calling, checked before anything else is done for them.
//!
//! A client sends its key as `authorization: Bearer <key>` or `x-api-key: <key>`. The gateway
//! keeps only SHA-256 hashes of keys (from `auth.keys` and the optional `auth.keys_file`,
//! which is re-read when it changes); it hashes what the caller sent and compares it with
//! every configured hash in constant time, so neither the match nor its position leaks
//! through timing.
//!
//! When keys are configured, every call needs one (health and reflection never do): the call
//! pipeline's identity step ([`crate::call::Pipeline::identify`]) answers UNAUTHENTICATED to a
//! missing or unknown key, and admission then checks the key's routes (PERMISSION_DENIED) and
//! rate limits. Without keys, calls are anonymous.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, ClientKey, security::read_keys_file};

/// The authenticated caller, as a request extension.
#[derive(Clone, Debug)]
pub struct ClientIdentity(pub Arc<ClientKey>);

/// Why a call was not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No key was sent.
    Missing,
    /// A key was sent that no configured hash matches.
    Invalid,
}

impl AuthFailure {
    /// What the caller is told.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "a client key is required, in the authorization header (Bearer) or the x-api-key header"
            }
            AuthFailure::Invalid => "the client key is not valid",
        }
    }
}

/// The client keys in force; swapped whole when the keys file changes.
#[derive(Clone, Debug)]
pub struct ClientKeys {
    config: Arc<AuthConfig>,
    keys: Arc<ArcSwap<Vec<Arc<ClientKey>>>>,
}

impl ClientKeys {
    /// The keys of `config` (its keys file was read and checked when the config loaded).
    pub fn new(config: &AuthConfig) -> ClientKeys {
        let keys = ClientKeys {
            config: Arc::new(config.clone()),
            keys: Arc::new(ArcSwap::from_pointee(
                config.keys.iter().chain(&config.vault_keys).cloned().map(Arc::new).collect(),
            )),
        };
        keys.reload();
        keys
    }

    /// Whether calls need a key.
    pub fn required(&self) -> bool {
        self.config.required()
    }

    /// Re-reads the keys file; on an error the keys in force stay and the error is logged.
    pub fn reload(&self) {
        let Some(path) = &self.config.keys_file else { return };
        match read_keys_file(path) {
            Ok(from_file) => {
                self.replace_extra(from_file);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload client keys; keeping the current ones")
            }
        }
    }

    /// Puts `extra` (the keys of the keys file, or of the Vault secret `auth.keys_vault`) in
    /// force beside the configured keys; true when that changed them.
    pub fn replace_extra(&self, extra: Vec<ClientKey>) -> bool {
        let all: Vec<Arc<ClientKey>> =
            self.config.keys.iter().cloned().chain(extra).map(Arc::new).collect();
        let changed = {
            let now = self.keys.load();
            now.len() != all.len() || now.iter().zip(&all).any(|(a, b)| a != b)
        };
        if changed {
            tracing::info!(keys = all.len(), "client keys reloaded");
            self.keys.store(Arc::new(all));
        }
        changed
    }

    /// The Vault secret the extra keys come from, when they do.
    pub fn vault_source(&self) -> Option<&crate::config::VaultRef> {
        self.config.keys_vault.as_ref()
    }

    /// The key `presented`, if it is a configured one.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<ClientKey>> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let keys = self.keys.load();
        // Look at every key, so the time taken says nothing about which one matched.
        let mut found = None;
        for key in keys.iter() {
            if bool::from(key.sha256.ct_eq(&hash)) {
                found = Some(key.clone());
            }
        }
        found
    }

    /// Authenticates the headers of a call.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<Arc<ClientKey>, AuthFailure> {
        let presented = presented_key(headers).ok_or(AuthFailure::Missing)?;
        self.authenticate(presented).ok_or(AuthFailure::Invalid)
    }
}

/// The key a call presents: `authorization: Bearer …` or `x-api-key: …`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = auth.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    static X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
    headers.get(&X_API_KEY).and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty())
}

/// A new random client key and the SHA-256 hex to configure for it.
pub fn generate_key() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = format!("ais_{}", hex(&bytes));
    let hash = hex(&Sha256::digest(key.as_bytes()));
    Ok((key, hash))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::security::{RawClientKey, validate_keys};

    fn keys(list: &[(&str, &str)]) -> ClientKeys {
        let raw = list
            .iter()
            .map(|(id, key)| RawClientKey {
                id: (*id).into(),
                name: None,
                sha256: hex(&Sha256::digest(key.as_bytes())),
                routes: vec![],
                requests_per_minute: None,
                tokens_per_minute: None,
                budget: None,
            })
            .collect();
        ClientKeys::new(&AuthConfig {
            keys: validate_keys("auth.keys", raw).unwrap(),
            keys_file: None,
            keys_vault: None,
            vault_keys: Vec::new(),
        })
    }

    #[test]
    fn authenticates_by_bearer_or_x_api_key() {
        let k = keys(&[("alice", "ais_alice"), ("bob", "ais_bob")]);
        let mut h = http::HeaderMap::new();
        assert_eq!(k.check(&h).unwrap_err(), AuthFailure::Missing);
        h.insert("authorization", "Bearer ais_bob".parse().unwrap());
        assert_eq!(k.check(&h).unwrap().id, "bob");
        h.insert("authorization", "Basic ais_bob".parse().unwrap());
        assert_eq!(k.check(&h).unwrap_err(), AuthFailure::Missing);
        h.remove("authorization");
        h.insert("x-api-key", "ais_alice".parse().unwrap());
        assert_eq!(k.check(&h).unwrap().id, "alice");
        h.insert("x-api-key", "ais_mallory".parse().unwrap());
        assert_eq!(k.check(&h).unwrap_err(), AuthFailure::Invalid);
    }

    #[test]
    fn generated_keys_match_their_hash() {
        let (key, hash) = generate_key().unwrap();
        assert!(key.starts_with("ais_") && key.len() == 68);
        assert_eq!(hex(&Sha256::digest(key.as_bytes())), hash);
        assert_ne!(generate_key().unwrap().0, key);
    }
}
