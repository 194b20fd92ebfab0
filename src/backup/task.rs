//! The backup task the gateway owns ([`BackupTask`]) and one backup pass ([`run_once`]).
//!
//! The task sleeps until a segment is closed, the full backup is due (`backup.interval`) or
//! a retry is due. A pass uploads the closed segments oldest first and stops at the first
//! failure, so the store never holds a later segment without the earlier ones; the failed
//! pass is retried with doubling back-off up to `backup.retry_max`. Meanwhile the segments
//! wait on local disk, their count and size exported as metrics and bounded by
//! `backup.max_backlog_bytes`. Calls never wait for any of this.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{BackupError, ObjectKind, ObjectName, Store, restore, upload};
use crate::{
    audit::{AuditSink, rotate},
    config::BackupConfig,
    metrics::Recorder,
};

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Audit segments uploaded.
    pub segments: usize,
    /// Snapshots (config, keys) uploaded.
    pub snapshots: usize,
    /// Old objects removed by retention.
    pub removed: usize,
}

/// Uploads every closed audit segment of `config`'s audit file, oldest first, and removes
/// each from local disk once it is verified in the store. Stops at the first failure.
pub async fn upload_segments(store: &Store, config: &BackupConfig) -> Result<usize, BackupError> {
    let mut uploaded = 0;
    for segment in rotate::closed_segments(&config.audit_file).await? {
        let name = ObjectName {
            replica: config.replica.clone(),
            kind: ObjectKind::Audit,
            file: format!("{}.gz", segment.name),
        };
        let temp = segment.path.with_file_name(format!(".{}.gz.upload", segment.name));
        let sent = async {
            let (sha256, size) = upload::gzip_file(&segment.path, &temp).await?;
            upload::put_file(store, &store.key(&name), &temp, &sha256, size).await
        }
        .await;
        let _ = tokio::fs::remove_file(&temp).await;
        sent?;
        tokio::fs::remove_file(&segment.path).await?;
        uploaded += 1;
    }
    Ok(uploaded)
}

/// Uploads the redacted config snapshot and the keys file, named by `now`.
pub async fn upload_snapshots(
    store: &Store,
    config: &BackupConfig,
    now: SystemTime,
) -> Result<usize, BackupError> {
    let file = format!("{}.yaml", rotate::stamp(now));
    let name = |kind| ObjectName { replica: config.replica.clone(), kind, file: file.clone() };
    let mut sent = 0;
    // Empty only for a config built without its YAML (Config::validate on raw structs).
    if !config.config_snapshot.is_empty() {
        let bytes = config.config_snapshot.clone().into_bytes();
        upload::put_bytes(store, &store.key(&name(ObjectKind::Config)), bytes).await?;
        sent += 1;
    }
    if let Some(keys_file) = &config.keys_file {
        let bytes = tokio::fs::read(keys_file).await?;
        upload::put_bytes(store, &store.key(&name(ObjectKind::Keys)), bytes).await?;
        sent += 1;
    }
    Ok(sent)
}

/// One full backup at `now`: the snapshots, the closed segments, then retention. This is
/// `ai-service backup run`; it leaves the open audit segment to the running gateway.
pub async fn run_once(
    store: &Store,
    config: &BackupConfig,
    now: SystemTime,
) -> Result<PassReport, BackupError> {
    let snapshots = upload_snapshots(store, config, now).await?;
    let segments = upload_segments(store, config).await?;
    let removed = restore::apply_retention(store, &config.replica, config.retention, now).await?;
    Ok(PassReport { segments, snapshots, removed })
}

/// Measures the local backlog and, beyond `backup.max_backlog_bytes`, removes the oldest
/// segments (they cannot reach the store in time; losing them is logged as an error).
async fn measure_backlog(config: &BackupConfig, metrics: &Recorder) {
    let Ok(mut segments) = rotate::closed_segments(&config.audit_file).await else { return };
    let mut bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    while bytes > config.max_backlog_bytes && segments.len() > 1 {
        let oldest = segments.remove(0);
        tracing::error!(segment = %oldest.path.display(), bytes = oldest.bytes,
            "backup backlog over backup.max_backlog_bytes: removing the oldest audit segment without a backup");
        if tokio::fs::remove_file(&oldest.path).await.is_ok() {
            bytes -= oldest.bytes;
            metrics.backup_segment_dropped();
        }
    }
    metrics.backup_backlog(segments.len(), bytes);
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// First wait after a failed pass; doubles up to `backup.retry_max`.
const RETRY_FIRST: Duration = Duration::from_millis(250);

/// The background backup of a serving gateway; [`BackupTask::finish`] stops it.
#[derive(Debug)]
pub struct BackupTask {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl BackupTask {
    /// Starts backing up the closed segments of `audit` (a rotating file sink).
    pub fn start(
        config: BackupConfig,
        audit: AuditSink,
        metrics: Recorder,
    ) -> Result<BackupTask, BackupError> {
        let store = Store::new(&config)?;
        Ok(BackupTask::with_store(store, config, audit, metrics))
    }

    /// Like [`BackupTask::start`] with a store of the caller's.
    pub fn with_store(
        store: Store,
        config: BackupConfig,
        audit: AuditSink,
        metrics: Recorder,
    ) -> BackupTask {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(run(store, Arc::new(config), audit, metrics, stop.clone()));
        BackupTask { stop, handle }
    }

    /// Uploads what is left (close the audit sink first, so its last segment is closed) and
    /// stops; gives up after `within`, leaving the rest on disk for the next start.
    pub async fn finish(mut self, within: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(within, &mut self.handle).await.is_err() {
            tracing::warn!(
                ?within,
                "backup: the shutdown grace ended before every segment was uploaded; they stay on disk"
            );
            self.handle.abort();
        }
    }
}

async fn run(
    store: Store,
    config: Arc<BackupConfig>,
    audit: AuditSink,
    metrics: Recorder,
    stop: CancellationToken,
) {
    let closed = audit.segment_closed();
    let mut full_at = tokio::time::Instant::now();
    let mut snapshots_due = false;
    let mut retry: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        let notified = closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if tokio::time::Instant::now() >= full_at {
            full_at += config.interval;
            audit.rotate().await;
            snapshots_due = true;
        }
        let pass = async {
            let now = SystemTime::now();
            let mut report = PassReport::default();
            if snapshots_due {
                report = run_once(&store, &config, now).await?;
            } else {
                report.segments = upload_segments(&store, &config).await?;
            }
            Ok::<_, BackupError>(report)
        }
        .await;
        match pass {
            Ok(report) => {
                snapshots_due = false;
                retry = None;
                metrics.backup_succeeded(unix_seconds(SystemTime::now()));
                if report != PassReport::default() {
                    tracing::info!(
                        segments = report.segments,
                        snapshots = report.snapshots,
                        removed = report.removed,
                        "backup: uploaded"
                    );
                }
            }
            Err(error) => {
                metrics.backup_failed();
                let wait = retry.map_or(RETRY_FIRST, |(_, w)| (w * 2).min(config.retry_max));
                tracing::warn!(%error, retry_in = ?wait, "backup: pass failed; segments wait on local disk");
                retry = Some((tokio::time::Instant::now() + wait, wait));
            }
        }
        measure_backlog(&config, &metrics).await;
        let retry_at = retry.map(|(at, _)| at);
        tokio::select! {
            () = stop.cancelled() => break,
            () = &mut notified => {}
            () = tokio::time::sleep_until(full_at) => {}
            () = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    // Shutting down: the audit sink has closed its last segment. Upload until done; the
    // caller bounds this by the shutdown grace.
    let mut wait = RETRY_FIRST;
    loop {
        match upload_segments(&store, &config).await {
            Ok(segments) => {
                metrics.backup_succeeded(unix_seconds(SystemTime::now()));
                tracing::info!(segments, "backup: last segments uploaded");
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "backup: final upload failed; retrying within the shutdown grace");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(config.retry_max);
            }
        }
    }
    measure_backlog(&config, &metrics).await;
}
