//! `backup:` and `audit.rotate:` — what the backup task ([`crate::backup`]) and the rotating
//! audit file ([`crate::audit`]) need, parsed strictly and validated here like every other
//! section; an error names its field. Also the redacted snapshot of the effective
//! configuration that the backup uploads: the YAML tree after the environment overrides, with
//! every secret value written as `***`.

use std::{collections::HashMap, time::Duration};

use serde::Deserialize;

use super::{ConfigError, raw::HumanDuration, security::AuditSinkConfig};

/// `audit.rotate:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRotate {
    /// Close the segment once it holds this many bytes (default 64 MiB).
    pub max_bytes: Option<u64>,
    /// Close the segment once it is this old, even when small (default 1h).
    pub max_age: Option<HumanDuration>,
}

/// `audit.rotate:` validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotateConfig {
    /// Size at which a segment is closed.
    pub max_bytes: u64,
    /// Age at which a segment is closed.
    pub max_age: Duration,
}

/// Validates `audit.rotate:`.
pub fn validate_rotate(raw: RawRotate) -> Result<RotateConfig, ConfigError> {
    let config = RotateConfig {
        max_bytes: raw.max_bytes.unwrap_or(64 * 1024 * 1024),
        max_age: raw.max_age.map_or(Duration::from_secs(3600), |d| d.0),
    };
    if config.max_bytes == 0 {
        return Err(ConfigError::new("audit.rotate.max_bytes", "must be at least 1"));
    }
    if config.max_age.is_zero() {
        return Err(ConfigError::new("audit.rotate.max_age", "must be greater than zero"));
    }
    Ok(config)
}

/// `backup:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBackup {
    /// Off unless true.
    pub enabled: Option<bool>,
    /// How often a full backup runs: the open audit segment is closed, the config and keys
    /// snapshots are taken, and retention runs (default 24h).
    pub interval: Option<HumanDuration>,
    /// Backups older than this many days are removed (default 30).
    pub retention_days: Option<u32>,
    /// `s3://bucket/prefix`.
    pub storage: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph, a test server); AWS when unset.
    pub endpoint: Option<String>,
    /// The bucket's region (default `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// This replica's name; its objects live under `<prefix>/<replica>/` (default
    /// `POD_NAME`, else the host name).
    pub replica: Option<String>,
    /// Closed audit segments kept on local disk while the store is unreachable; beyond it
    /// the oldest are removed, loudly (default 1 GiB).
    pub max_backlog_bytes: Option<u64>,
    /// Longest wait between two upload attempts while the store is down (default 60s).
    pub retry_max: Option<HumanDuration>,
}

/// `backup:` validated; `None` in [`super::Config`] when backup is off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupConfig {
    /// How often a full backup runs.
    pub interval: Duration,
    /// How long a backup is kept.
    pub retention: Duration,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket, without slashes at either end (may be empty).
    pub prefix: String,
    /// A custom S3-compatible endpoint.
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// This replica's name.
    pub replica: String,
    /// Local backlog bound.
    pub max_backlog_bytes: u64,
    /// Longest retry back-off.
    pub retry_max: Duration,
    /// The effective configuration with secrets masked, as YAML (see [`redacted_snapshot`]).
    pub config_snapshot: String,
    /// The client-keys file, when `auth.keys_file` is set.
    pub keys_file: Option<std::path::PathBuf>,
    /// The directory that holds the audit file and its closed segments.
    pub audit_file: std::path::PathBuf,
}

/// Validates `backup:`; needs the validated audit section (the segments come from its file).
pub fn validate_backup(
    raw: RawBackup,
    audit: &super::AuditConfig,
    keys_file: Option<&std::path::Path>,
    vars: &HashMap<String, String>,
) -> Result<Option<BackupConfig>, ConfigError> {
    if !raw.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let storage = raw.storage.ok_or_else(|| {
        ConfigError::new("backup.storage", "is required, e.g. s3://bucket/prefix")
    })?;
    let (bucket, prefix) = parse_storage(&storage).ok_or_else(|| {
        ConfigError::new("backup.storage", format!("{storage:?} is not s3://bucket[/prefix]"))
    })?;
    let interval = raw.interval.map_or(Duration::from_secs(24 * 3600), |d| d.0);
    if interval.is_zero() {
        return Err(ConfigError::new("backup.interval", "must be greater than zero"));
    }
    let days = raw.retention_days.unwrap_or(30);
    if days == 0 {
        return Err(ConfigError::new("backup.retention_days", "must be at least 1"));
    }
    if let Some(endpoint) = &raw.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(ConfigError::new(
            "backup.endpoint",
            format!("{endpoint:?} is not an http(s) URL"),
        ));
    }
    let region = raw
        .region
        .or_else(|| vars.get("AWS_REGION").cloned())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let replica = raw
        .replica
        .or_else(|| vars.get("POD_NAME").cloned())
        .or_else(host_name)
        .unwrap_or_default();
    if replica.is_empty()
        || !replica.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new(
            "backup.replica",
            format!(
                "{replica:?} must be letters, digits, '-', '_' or '.' (it names the replica's prefix)"
            ),
        ));
    }
    let AuditSinkConfig::File(audit_file) = &audit.sink else {
        return Err(ConfigError::new("audit.sink", "backup needs the audit trail in a file"));
    };
    if audit.rotate.is_none() {
        return Err(ConfigError::new("audit.rotate", "backup needs the audit file to rotate"));
    }
    let max_backlog_bytes = raw.max_backlog_bytes.unwrap_or(1 << 30);
    if max_backlog_bytes == 0 {
        return Err(ConfigError::new("backup.max_backlog_bytes", "must be at least 1"));
    }
    let retry_max = raw.retry_max.map_or(Duration::from_secs(60), |d| d.0);
    if retry_max.is_zero() {
        return Err(ConfigError::new("backup.retry_max", "must be greater than zero"));
    }
    Ok(Some(BackupConfig {
        interval,
        retention: Duration::from_secs(u64::from(days) * 24 * 3600),
        bucket,
        prefix,
        endpoint: raw.endpoint,
        region,
        replica,
        max_backlog_bytes,
        retry_max,
        config_snapshot: String::new(),
        keys_file: keys_file.map(std::path::Path::to_path_buf),
        audit_file: audit_file.clone(),
    }))
}

/// `s3://bucket/some/prefix` → (`bucket`, `some/prefix`).
fn parse_storage(url: &str) -> Option<(String, String)> {
    let rest = url.trim().strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.');
    if bucket.len() < 3 || !bucket.chars().all(valid) {
        return None;
    }
    Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Keys whose values are secrets wherever they appear in the file.
fn is_secret_key(key: &str) -> bool {
    matches!(key, "key" | "value" | "token" | "password" | "secret" | "secret_id")
        || key.ends_with("_key")
        || key.ends_with("_token")
        || key.ends_with("_password")
}

/// The effective configuration tree as YAML, secrets masked: values under secret-looking keys
/// become `***`, passwords in URLs are masked, and every other string passes the log
/// redactor. It carries no secret, so it can be stored and read back to start a new fleet
/// (with the secrets supplied again from their variables, files or Vault).
pub fn redacted_snapshot(tree: &yaml_serde::Value) -> String {
    let mut tree = tree.clone();
    mask(&mut tree);
    yaml_serde::to_string(&tree).unwrap_or_default()
}

/// What the operator console shows ([`crate::console`]): [`redacted_snapshot`] with the
/// client keys' SHA-256 digests masked too. The backup keeps them (a restored fleet needs
/// them), but the admin port has no authentication, and a digest lets a weak key be guessed
/// offline.
pub fn console_snapshot(tree: &yaml_serde::Value) -> String {
    fn mask_digests(value: &mut yaml_serde::Value) {
        use yaml_serde::Value;
        match value {
            Value::Mapping(map) => {
                for (key, value) in map.iter_mut() {
                    if key.as_str() == Some("sha256") {
                        mask_all(value);
                    } else {
                        mask_digests(value);
                    }
                }
            }
            Value::Sequence(items) => items.iter_mut().for_each(mask_digests),
            Value::Tagged(tagged) => mask_digests(&mut tagged.value),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }
    let mut tree = tree.clone();
    mask_digests(&mut tree);
    redacted_snapshot(&tree)
}

fn mask(value: &mut yaml_serde::Value) {
    use yaml_serde::Value;
    match value {
        Value::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                if key.as_str().is_some_and(is_secret_key) {
                    mask_all(value);
                } else {
                    mask(value);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(mask),
        Value::String(text) => {
            let masked = mask_url_password(&crate::redact::redact(text));
            *text = masked;
        }
        Value::Tagged(tagged) => mask(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn mask_all(value: &mut yaml_serde::Value) {
    use yaml_serde::Value;
    match value {
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| mask_all(v)),
        Value::Sequence(items) => items.iter_mut().for_each(mask_all),
        Value::Null => {}
        other => *other = Value::String("***".to_owned()),
    }
}

/// `redis://user:pw@host` → `redis://user:***@host`.
fn mask_url_password(text: &str) -> String {
    if let Some((scheme, rest)) = text.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
        && !userinfo.contains('/')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_storage("s3://ai-service-backups/prod/eu"),
            Some(("ai-service-backups".into(), "prod/eu".into()))
        );
        assert_eq!(parse_storage("s3://bucket"), Some(("bucket".into(), String::new())));
        assert_eq!(parse_storage("gs://bucket/x"), None);
        assert_eq!(parse_storage("s3://B_ad/x"), None);
    }

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<crate::Config, ConfigError> {
        crate::Config::from_yaml(yaml, vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    const ON: &str = "audit: {sink: /tmp/a/audit.jsonl, rotate: {max_bytes: 1000}}\n\
                      backup: {enabled: true, storage: 's3://ai-service-backups/prod'";

    #[test]
    fn backup_is_off_by_default_and_takes_the_design_values() {
        assert_eq!(load("", &[]).unwrap().backup, None);
        let config =
            load(&format!("{ON}, interval: 24h, retention_days: 30}}"), &[("POD_NAME", "ai-0")])
                .unwrap();
        let backup = config.backup.unwrap();
        assert_eq!(
            (backup.bucket.as_str(), backup.prefix.as_str()),
            ("ai-service-backups", "prod")
        );
        assert_eq!(backup.replica, "ai-0", "the pod's name by default");
        assert_eq!(backup.interval, Duration::from_secs(24 * 3600));
        assert_eq!(backup.retention, Duration::from_secs(30 * 24 * 3600));
        assert!(backup.config_snapshot.contains("ai-service-backups"));
    }

    #[test]
    fn bad_backup_values_name_their_field() {
        let cases = [
            (ON.replace("s3://ai-service-backups/prod", "gs://x/y") + "}", "backup.storage"),
            (ON.replace("s3://ai-service-backups/prod", "s3://UPPER") + "}", "backup.storage"),
            (format!("{ON}, retention_days: 0}}"), "backup.retention_days"),
            (format!("{ON}, interval: 0s}}"), "backup.interval"),
            (format!("{ON}, endpoint: 'minio:9000'}}"), "backup.endpoint"),
            (format!("{ON}, replica: 'a/b'}}"), "backup.replica"),
            (format!("{ON}, max_backlog_bytes: 0}}"), "backup.max_backlog_bytes"),
            (format!("{ON}, typo: 1}}"), "backup"),
            (
                "audit: {sink: /tmp/a.jsonl}\nbackup: {enabled: true, storage: 's3://bkt'}"
                    .to_owned(),
                "audit.rotate",
            ),
            ("backup: {enabled: true, storage: 's3://bkt'}".to_owned(), "audit.sink"),
            ("audit: {rotate: {max_bytes: 10}}".to_owned(), "audit.rotate"),
            (
                "audit: {sink: /tmp/a.jsonl, rotate: {max_age: 0s}}".to_owned(),
                "audit.rotate.max_age",
            ),
        ];
        for (yaml, field) in cases {
            let err = load(&yaml, &[]).unwrap_err();
            assert!(err.path.starts_with(field), "{yaml}: {err}");
        }
    }

    #[test]
    fn the_snapshot_masks_secrets_and_keeps_the_rest() {
        let tree: yaml_serde::Value = yaml_serde::from_str(
            "providers:\n  openai: {kind: openai, api_key: sk-live-abcdefghijklmnopqrstu, api_key_env: OPENAI_API_KEY}\n\
             redis: {url: 'redis://app:hunter2@redis:6379'}\n\
             tracing: {otlp: {headers: {authorization: {value: Bearer abc}, x-team: {value_env: TEAM}}}}\n\
             audit: {headers: [x-team]}\n",
        )
        .unwrap();
        let text = redacted_snapshot(&tree);
        assert!(!text.contains("sk-live"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("Bearer abc"), "{text}");
        assert!(text.contains("OPENAI_API_KEY") && text.contains("TEAM"), "{text}");
        assert!(text.contains("- x-team"), "header names are not secrets: {text}");
        assert!(text.contains("redis://app:***@redis:6379"), "{text}");
    }
}
