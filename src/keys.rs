//! Key rotation without a restart.
//!
//! Provider keys read from files (`api_key_file`, a Kubernetes secret volume) and the client
//! keys file are re-read every `server.key_reload_interval` and on SIGHUP; keys from Vault
//! (`api_key_vault`, `auth.keys_vault`) are re-read every `vault.refresh_interval` and on
//! SIGHUP ([`crate::vault::refresh`]). A changed provider key is swapped atomically in the
//! adapter's key handle: a call already sent keeps the key it was sent with, the next call
//! reads the new one. A source that cannot be read, or is empty, leaves the key in force and
//! logs an error (never the key).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{
    auth::ClientKeys,
    config::KeySource,
    secret::Secret,
    vault::{SecretStore, VaultError},
};

/// A provider key that can be read again: from a file or from Vault.
#[derive(Clone, Debug)]
pub struct ProviderKey {
    /// The provider (and endpoint) it belongs to, for the log.
    pub owner: String,
    /// Where it is read from (a file or a Vault secret).
    pub source: KeySource,
    /// The adapter's handle.
    pub key: Arc<ArcSwap<Secret>>,
}

impl ProviderKey {
    /// Re-reads a key file; true when the key changed. Other sources are left alone.
    pub fn reload(&self) -> bool {
        let KeySource::File(path) = &self.source else { return false };
        match std::fs::read_to_string(path) {
            Ok(text) => self.put(Secret::new(text)),
            Err(e) => {
                tracing::error!(provider = %self.owner, path = %path.display(), error = %e, "cannot read key file; keeping the current key");
                false
            }
        }
    }

    /// Puts `fresh` in force; true when it differs from the key in force. An empty key is
    /// refused.
    pub fn put(&self, fresh: Secret) -> bool {
        if fresh.is_empty() {
            tracing::error!(provider = %self.owner, "the new key is empty; keeping the current key");
            return false;
        }
        if **self.key.load() == fresh {
            return false;
        }
        self.key.store(Arc::new(fresh));
        tracing::info!(provider = %self.owner, source = %self.describe(), "provider key rotated");
        true
    }

    fn describe(&self) -> String {
        match &self.source {
            KeySource::Env(var) => format!("${var}"),
            KeySource::File(path) => path.display().to_string(),
            KeySource::Vault(reference) => format!("vault:{reference}"),
        }
    }
}

/// Every key the gateway can reload.
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// Provider keys from files and Vault; replaced when the routes are reloaded.
    pub provider_keys: Arc<ArcSwap<Vec<ProviderKey>>>,
    /// Client keys (their keys file or Vault secret, when there is one).
    pub client_keys: ClientKeys,
    /// The Vault session, when the config reads from Vault.
    pub store: Option<Arc<SecretStore>>,
}

impl KeyRing {
    /// A ring over these keys.
    pub fn new(
        provider_keys: Vec<ProviderKey>,
        client_keys: ClientKeys,
        store: Option<Arc<SecretStore>>,
    ) -> KeyRing {
        KeyRing {
            provider_keys: Arc::new(ArcSwap::from_pointee(provider_keys)),
            client_keys,
            store,
        }
    }

    /// Re-reads every key file; returns how many provider keys changed.
    pub fn reload(&self) -> usize {
        self.client_keys.reload();
        self.provider_keys.load().iter().filter(|k| k.reload()).count()
    }

    /// Re-reads every key held in Vault; returns how many changed (client keys count as one).
    /// On the first failure the keys not yet read stay as they are.
    pub async fn refresh_vault(&self) -> Result<usize, VaultError> {
        let Some(store) = &self.store else { return Ok(0) };
        let mut changed = 0;
        let keys = self.provider_keys.load_full();
        for key in keys.iter() {
            if let KeySource::Vault(reference) = &key.source
                && key.put(store.read(reference).await?)
            {
                changed += 1;
            }
        }
        if let Some(reference) = self.client_keys.vault_source() {
            let fresh = crate::vault::client_keys(store, reference).await?;
            if self.client_keys.replace_extra(fresh) {
                changed += 1;
            }
        }
        Ok(changed)
    }
}
