//! Key rotation without a restart.
//!
//! Provider keys read from files (`api_key_file`, a Kubernetes secret volume) and the client
//! keys file are re-read every `server.key_reload_interval` and on SIGHUP. A changed provider
//! key is swapped atomically in the adapter's key handle: a call already sent keeps the key it
//! was sent with, the next call reads the new one. A file that cannot be read, or is empty,
//! leaves the key in force and logs an error (never the key).

use std::{path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;

use crate::{auth::ClientKeys, secret::Secret};

/// A provider key that lives in a file.
#[derive(Clone, Debug)]
pub struct KeyFile {
    /// The provider (and endpoint) it belongs to, for the log.
    pub owner: String,
    /// The file.
    pub path: PathBuf,
    /// The adapter's handle.
    pub key: Arc<ArcSwap<Secret>>,
}

impl KeyFile {
    /// Re-reads the file; true when the key changed.
    pub fn reload(&self) -> bool {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let fresh = Secret::new(text);
                if fresh.is_empty() {
                    tracing::error!(provider = %self.owner, path = %self.path.display(), "key file is empty; keeping the current key");
                    return false;
                }
                if **self.key.load() == fresh {
                    return false;
                }
                self.key.store(Arc::new(fresh));
                tracing::info!(provider = %self.owner, path = %self.path.display(), "provider key rotated");
                true
            }
            Err(e) => {
                tracing::error!(provider = %self.owner, path = %self.path.display(), error = %e, "cannot read key file; keeping the current key");
                false
            }
        }
    }
}

/// Every key the gateway can reload.
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// Provider keys from files; replaced when the routes are reloaded.
    pub provider_keys: Arc<arc_swap::ArcSwap<Vec<KeyFile>>>,
    /// Client keys (their keys file, when there is one).
    pub client_keys: ClientKeys,
}

impl KeyRing {
    /// A ring over these keys.
    pub fn new(provider_keys: Vec<KeyFile>, client_keys: ClientKeys) -> KeyRing {
        KeyRing {
            provider_keys: Arc::new(arc_swap::ArcSwap::from_pointee(provider_keys)),
            client_keys,
        }
    }

    /// Re-reads every key file; returns how many provider keys changed.
    pub fn reload(&self) -> usize {
        self.client_keys.reload();
        self.provider_keys.load().iter().filter(|k| k.reload()).count()
    }
}
