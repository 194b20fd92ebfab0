//! Reading backups back: listing them, checking every checksum, restoring a replica's
//! config, keys and audit trail into a directory a new fleet can start from, and removing
//! backups older than the retention (the clock is a parameter, so a test can move it).

use std::{
    path::{Path as FsPath, PathBuf},
    time::{Duration, SystemTime},
};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::{BackupError, ObjectKind, ObjectName, Store, upload};

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key.
    pub key: object_store::path::Path,
    /// What it is.
    pub name: ObjectName,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote it.
    pub last_modified: SystemTime,
}

impl StoredObject {
    /// The time it stands for (see [`ObjectName::time`]), else when it was written.
    pub fn time(&self) -> SystemTime {
        self.name.time().unwrap_or(self.last_modified)
    }
}

/// The backup objects of `replica` (all replicas when `None`), sorted by key.
pub async fn list(store: &Store, replica: Option<&str>) -> Result<Vec<StoredObject>, BackupError> {
    let prefix = store.replica_prefix(replica);
    let metas: Vec<object_store::ObjectMeta> =
        store.backend().list(prefix.as_ref()).try_collect().await?;
    let mut objects: Vec<StoredObject> = metas
        .into_iter()
        .filter_map(|meta| {
            let name = store.parse_key(&meta.location)?;
            if replica.is_some_and(|r| r != name.replica) {
                return None;
            }
            Some(StoredObject {
                name,
                size: meta.size,
                last_modified: SystemTime::from(meta.last_modified),
                key: meta.location,
            })
        })
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

/// Removes `replica`'s objects older than `retention` at `now`; returns how many.
pub async fn apply_retention(
    store: &Store,
    replica: &str,
    retention: Duration,
    now: SystemTime,
) -> Result<usize, BackupError> {
    let Some(cutoff) = now.checked_sub(retention) else { return Ok(0) };
    let mut removed = 0;
    for object in list(store, Some(replica)).await? {
        if object.time() < cutoff {
            store.backend().delete(&object.key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects checked.
    pub checked: usize,
    /// Objects whose bytes do not match their checksum (or that cannot be read), with why.
    pub corrupted: Vec<String>,
}

/// Reads every object of `replica` (all when `None`) and checks it against its checksum.
pub async fn verify(store: &Store, replica: Option<&str>) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport::default();
    for object in list(store, replica).await? {
        report.checked += 1;
        match upload::check(store, &object.key, None).await {
            Ok(()) => {}
            Err(e @ BackupError::Corrupted { .. }) => report.corrupted.push(e.to_string()),
            Err(e) => report.corrupted.push(format!("{}: {e}", object.key)),
        }
    }
    Ok(report)
}

/// What `restore` wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The config snapshot, as `<dir>/config.yaml`.
    pub config: Option<PathBuf>,
    /// The keys file, as `<dir>/keys.yaml`.
    pub keys: Option<PathBuf>,
    /// The audit segments, under `<dir>/audit/`, by their original names.
    pub segments: Vec<PathBuf>,
}

/// Writes `replica`'s backup as it stood at `at` (the latest when `None`) into `to`: the
/// newest config and keys snapshots taken by then, and every audit segment closed by then,
/// decompressed to the bytes the gateway wrote. Every object is checked first.
pub async fn restore(
    store: &Store,
    replica: &str,
    to: &FsPath,
    at: Option<SystemTime>,
) -> Result<RestoreReport, BackupError> {
    let objects: Vec<StoredObject> = list(store, Some(replica))
        .await?
        .into_iter()
        .filter(|o| at.is_none_or(|at| o.time() <= at))
        .collect();
    if objects.is_empty() {
        return Err(BackupError::Invalid(format!(
            "no backup of replica {replica:?} (at that time) in the store"
        )));
    }
    tokio::fs::create_dir_all(to.join("audit")).await?;
    let mut report = RestoreReport::default();
    for kind in [ObjectKind::Config, ObjectKind::Keys] {
        let newest = objects.iter().filter(|o| o.name.kind == kind).max_by_key(|o| o.time());
        if let Some(object) = newest {
            let bytes = upload::fetch_checked(store, &object.key, None).await?;
            let path = to.join(format!("{}.yaml", kind.folder()));
            tokio::fs::write(&path, bytes).await?;
            match kind {
                ObjectKind::Config => report.config = Some(path),
                _ => report.keys = Some(path),
            }
        }
    }
    for object in objects.iter().filter(|o| o.name.kind == ObjectKind::Audit) {
        let bytes = upload::fetch_checked(store, &object.key, None).await?;
        let plain = upload::gunzip(&bytes)?;
        let file = object.name.file.strip_suffix(".gz").unwrap_or(&object.name.file);
        let path = to.join("audit").join(file);
        tokio::fs::write(&path, plain).await?;
        report.segments.push(path);
    }
    Ok(report)
}
