//! Backup and disaster recovery to S3-compatible storage (`backup:`), never on the call path.
//!
//! What is kept, per replica under `<prefix>/<replica>/` (so replicas never overwrite each
//! other):
//! - `audit/<segment>.gz`: each closed audit segment ([`crate::audit::rotate`]), gzipped; the
//!   name is the segment's, so a retried upload overwrites the same object (no duplicate) and
//!   the names order the trail (a gap shows);
//! - `config/<time>.yaml`: the effective configuration, secrets masked
//!   ([`crate::config::backup::redacted_snapshot`]);
//! - `keys/<time>.yaml`: the client-keys file as it is (ids and SHA-256 hashes only).
//!
//! Every object carries the SHA-256 of its bytes as the `sha256` user metadata; an upload is
//! read back and checked before the local segment is removed, and `ai-service backup verify`
//! checks them all ([`restore::verify`]).
//!
//! The flow: the audit writer closes segments and notifies; [`task::BackupTask`], owned by
//! [`crate::Gateway::serve`], uploads them (multipart above [`MULTIPART_THRESHOLD`]) with
//! back-off while the store is down, keeps the local backlog bounded, runs the full backup
//! (snapshots and [`restore::apply_retention`]) every `backup.interval`, and on shutdown
//! uploads the last segment within the shutdown grace. The commands (`backup run`, `list`,
//! `restore`, `verify`) call [`task::run_once`] and [`restore`].

pub mod restore;
pub mod task;
mod upload;

use std::{sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig, aws::AmazonS3Builder, path::Path,
};

use crate::config::BackupConfig;

/// Segments larger than this (compressed) go up in parts.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// The metadata key holding an object's SHA-256 (hex).
pub const CHECKSUM_KEY: &str = "sha256";

/// What can go wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store refused or could not be reached; worth retrying.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Local disk.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An object's bytes do not match its recorded checksum.
    #[error("{object}: checksum mismatch (recorded {recorded}, computed {computed})")]
    Corrupted {
        /// The object's key.
        object: String,
        /// What its metadata says.
        recorded: String,
        /// What its bytes hash to.
        computed: String,
    },
    /// Bad input to a command.
    #[error("{0}")]
    Invalid(String),
}

/// The kinds of object a backup holds, by their folder under the replica's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A gzipped audit segment.
    Audit,
    /// A redacted config snapshot.
    Config,
    /// A keys-file snapshot.
    Keys,
}

impl ObjectKind {
    /// The folder name.
    pub fn folder(self) -> &'static str {
        match self {
            ObjectKind::Audit => "audit",
            ObjectKind::Config => "config",
            ObjectKind::Keys => "keys",
        }
    }
}

/// One object of a backup, as its key describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    /// The replica that wrote it.
    pub replica: String,
    /// What it holds.
    pub kind: ObjectKind,
    /// Its file name (an audit segment's name keeps its `.gz`).
    pub file: String,
}

impl ObjectName {
    /// The time the object stands for: the close of an audit segment, the moment of a
    /// snapshot.
    pub fn time(&self) -> Option<std::time::SystemTime> {
        match self.kind {
            ObjectKind::Audit => {
                // `<stem>-<opened>-<closed><ext>.gz`: the closed stamp follows the last '-'.
                let (_, closed) = self.file.rsplit_once('-')?;
                crate::audit::rotate::parse_stamp(closed.get(..20)?)
            }
            ObjectKind::Config | ObjectKind::Keys => {
                crate::audit::rotate::parse_stamp(self.file.strip_suffix(".yaml")?)
            }
        }
    }
}

/// The store and where this deployment's objects live in it.
#[derive(Clone, Debug)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Store {
    /// The S3-compatible store of `config`; credentials come from the standard AWS variables
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or `AWS_WEB_IDENTITY_TOKEN_FILE` and
    /// `AWS_ROLE_ARN` under IRSA).
    pub fn new(config: &BackupConfig) -> Result<Store, BackupError> {
        // object_store's HTTPS client runs on the gateway's rustls with ring.
        crate::provider::http::install_crypto();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            // The task retries with its own back-off; the client only rides out a blip.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder =
                builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        Ok(Store { store: Arc::new(builder.build()?), prefix: config.prefix.clone() })
    }

    /// A store over any `object_store` backend (tests, other clouds).
    pub fn with_backend(store: Arc<dyn ObjectStore>, prefix: &str) -> Store {
        Store { store, prefix: prefix.trim_matches('/').to_owned() }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key of `name`.
    pub fn key(&self, name: &ObjectName) -> Path {
        let mut parts: Vec<&str> = Vec::with_capacity(4);
        if !self.prefix.is_empty() {
            parts.push(&self.prefix);
        }
        parts.extend([name.replica.as_str(), name.kind.folder(), name.file.as_str()]);
        Path::from(parts.join("/"))
    }

    /// The prefix of one replica's objects, or of all of them.
    pub fn replica_prefix(&self, replica: Option<&str>) -> Option<Path> {
        let joined = match (self.prefix.as_str(), replica) {
            ("", None) => return None,
            (p, None) => p.to_owned(),
            ("", Some(r)) => r.to_owned(),
            (p, Some(r)) => format!("{p}/{r}"),
        };
        Some(Path::from(joined))
    }

    /// Reads an object key back into its parts; `None` for keys this backup did not write.
    pub fn parse_key(&self, key: &Path) -> Option<ObjectName> {
        let text = key.as_ref();
        let rest = if self.prefix.is_empty() {
            text
        } else {
            text.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        let mut parts = rest.splitn(3, '/');
        let (replica, folder, file) = (parts.next()?, parts.next()?, parts.next()?);
        let kind = match folder {
            "audit" => ObjectKind::Audit,
            "config" => ObjectKind::Config,
            "keys" => ObjectKind::Keys,
            _ => return None,
        };
        if file.contains('/') {
            return None;
        }
        Some(ObjectName { replica: replica.to_owned(), kind, file: file.to_owned() })
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> Store {
        Store::with_backend(Arc::new(object_store::memory::InMemory::new()), prefix)
    }

    #[test]
    fn keys_are_deterministic_and_read_back() {
        let store = store("/prod/eu/");
        let name = ObjectName {
            replica: "ai-service-0".into(),
            kind: ObjectKind::Audit,
            file: "audit-20261130T030000.000Z-20261130T040000.000Z.jsonl.gz".into(),
        };
        let key = store.key(&name);
        assert_eq!(
            key.as_ref(),
            "prod/eu/ai-service-0/audit/audit-20261130T030000.000Z-20261130T040000.000Z.jsonl.gz"
        );
        assert_eq!(store.key(&name), key, "a retry writes the same key");
        assert_eq!(store.parse_key(&key), Some(name.clone()));
        assert_eq!(
            name.time(),
            Some(humantime::parse_rfc3339("2026-11-30T04:00:00Z").unwrap()),
            "an audit object stands for its close"
        );
        assert_eq!(store.parse_key(&Path::from("prod/eu/x/other/f")), None);
        assert_eq!(store.parse_key(&Path::from("elsewhere/x/audit/f")), None);
        assert_eq!(store.replica_prefix(Some("r1")).unwrap().as_ref(), "prod/eu/r1");
    }

    #[test]
    fn snapshot_names_carry_their_time() {
        let name = ObjectName {
            replica: "r".into(),
            kind: ObjectKind::Config,
            file: "20261130T030000.000Z.yaml".into(),
        };
        assert_eq!(name.time(), Some(humantime::parse_rfc3339("2026-11-30T03:00:00Z").unwrap()));
        assert_eq!(store("").key(&name).as_ref(), "r/config/20261130T030000.000Z.yaml");
    }
}
