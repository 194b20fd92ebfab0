//! The rotating audit file (`audit.rotate:`): the writer task of [`super::AuditSink`] appends
//! records to the active file and closes it into a segment once it holds `max_bytes` or is
//! `max_age` old, on request ([`super::AuditSink::rotate`]) and when the sink closes.
//!
//! A closed segment of `audit.jsonl` is named `audit-<opened>-<closed>.jsonl`, both times UTC
//! in a fixed-width form (`20261130T033700.123Z`), so sorting the names orders the segments
//! and each name says which stretch of time it holds. A record never spans two segments.
//! Closed segments are what the backup uploads ([`crate::backup`]); without backup they
//! stay beside the active file for the operator to ship or prune.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio::{
    fs::File,
    io::{AsyncWriteExt, BufWriter},
};

use crate::config::RotateConfig;

/// The fixed-width UTC form used in segment and object names: `20261130T033700.123Z`.
pub fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string().replace(['-', ':'], "")
}

/// Reads back a [`stamp`].
pub fn parse_stamp(text: &str) -> Option<SystemTime> {
    // 20261130T033700.123Z → 2026-11-30T03:37:00.123Z
    let b = text.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}",
        text.get(0..4)?,
        text.get(4..6)?,
        text.get(6..8)?,
        text.get(9..11)?,
        text.get(11..13)?,
        text.get(13..)?
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// A closed segment on local disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name, which the backup keeps as the object's name.
    pub name: String,
    /// When its first record could have been written.
    pub opened: SystemTime,
    /// When it was closed.
    pub closed: SystemTime,
    /// Its size.
    pub bytes: u64,
}

/// The parts of the active file's name a segment name is built from.
fn name_parts(active: &Path) -> (String, String) {
    let stem = active.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = active.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (stem, ext)
}

/// The name of the segment of `active` that covers `opened` to `closed`.
pub fn segment_name(active: &Path, opened: SystemTime, closed: SystemTime) -> String {
    let (stem, ext) = name_parts(active);
    format!("{stem}-{}-{}{ext}", stamp(opened), stamp(closed))
}

/// Reads the times back from a segment name of `active`; `None` for any other file.
pub fn parse_segment_name(active: &Path, name: &str) -> Option<(SystemTime, SystemTime)> {
    let (stem, ext) = name_parts(active);
    let middle = name.strip_prefix(&format!("{stem}-"))?.strip_suffix(ext.as_str())?;
    let (opened, closed) = middle.split_once('-')?;
    Some((parse_stamp(opened)?, parse_stamp(closed)?))
}

/// The closed segments of `active`, oldest first.
pub async fn closed_segments(active: &Path) -> io::Result<Vec<Segment>> {
    let dir = active.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut segments = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((opened, closed)) = parse_segment_name(active, &name) {
            // A segment removed meanwhile (uploaded, or dropped from a full backlog) is gone.
            let bytes = match entry.metadata().await {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            segments.push(Segment { path: entry.path(), name, opened, closed, bytes });
        }
    }
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(segments)
}

/// The active audit file and its rotation policy.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    policy: RotateConfig,
    out: Option<BufWriter<File>>,
    bytes: u64,
    opened: SystemTime,
    opened_at: tokio::time::Instant,
}

impl RotatingFile {
    /// Opens `path` for appending. A non-empty file left by an earlier run is closed into a
    /// segment first, so its records are backed up too.
    pub async fn open(path: PathBuf, policy: RotateConfig) -> io::Result<RotatingFile> {
        let mut file = RotatingFile {
            path,
            policy,
            out: None,
            bytes: 0,
            opened: SystemTime::now(),
            opened_at: tokio::time::Instant::now(),
        };
        if let Ok(meta) = tokio::fs::metadata(&file.path).await
            && meta.len() > 0
        {
            file.bytes = meta.len();
            file.opened = meta.created().or_else(|_| meta.modified()).unwrap_or(file.opened);
            file.close_segment().await?;
        }
        file.reopen().await?;
        Ok(file)
    }

    async fn reopen(&mut self) -> io::Result<()> {
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await?;
        self.out = Some(BufWriter::with_capacity(64 * 1024, file));
        self.opened = SystemTime::now();
        self.opened_at = tokio::time::Instant::now();
        Ok(())
    }

    /// Appends one record's line; closes the segment when it reached `max_bytes`.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<Option<Segment>> {
        if self.out.is_none() {
            self.reopen().await?;
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(line).await?;
            out.write_all(b"\n").await?;
        }
        self.bytes += line.len() as u64 + 1;
        if self.bytes >= self.policy.max_bytes {
            return self.close_segment().await;
        }
        Ok(None)
    }

    /// Flushes written records to the file.
    pub async fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush().await,
            None => Ok(()),
        }
    }

    /// When the open segment reaches `max_age`; `None` while it is empty.
    pub fn due(&self) -> Option<tokio::time::Instant> {
        (self.bytes > 0).then(|| self.opened_at + self.policy.max_age)
    }

    /// Closes the open segment (when it holds any record) and renames it to its segment
    /// name; the next record opens a new active file.
    pub async fn close_segment(&mut self) -> io::Result<Option<Segment>> {
        if let Some(mut out) = self.out.take() {
            out.flush().await?;
            out.get_mut().sync_all().await?;
        }
        if self.bytes == 0 {
            return Ok(None);
        }
        let mut closed = SystemTime::now().max(self.opened);
        let mut target = self.path.with_file_name(segment_name(&self.path, self.opened, closed));
        // Two closes within one millisecond: the later one takes the next free name.
        while tokio::fs::try_exists(&target).await? {
            closed += Duration::from_millis(1);
            target = self.path.with_file_name(segment_name(&self.path, self.opened, closed));
        }
        tokio::fs::rename(&self.path, &target).await?;
        let segment = Segment {
            name: target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            path: target,
            opened: self.opened,
            closed,
            bytes: self.bytes,
        };
        self.bytes = 0;
        Ok(Some(segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_bytes: u64) -> RotateConfig {
        RotateConfig { max_bytes, max_age: Duration::from_secs(3600) }
    }

    #[test]
    fn stamps_are_fixed_width_and_read_back() {
        let t = humantime::parse_rfc3339("2026-11-30T03:37:00.123Z").unwrap();
        assert_eq!(stamp(t), "20261130T033700.123Z");
        assert_eq!(parse_stamp("20261130T033700.123Z"), Some(t));
        assert_eq!(parse_stamp("2026-11-30T03:37:00Z"), None);
    }

    #[test]
    fn segment_names_sort_by_time_and_read_back() {
        let active = Path::new("/var/log/audit.jsonl");
        let t = |s: &str| humantime::parse_rfc3339(s).unwrap();
        let a = segment_name(active, t("2026-11-30T03:00:00Z"), t("2026-11-30T04:00:00Z"));
        let b = segment_name(active, t("2026-11-30T04:00:00Z"), t("2026-11-30T10:00:00Z"));
        assert_eq!(a, "audit-20261130T030000.000Z-20261130T040000.000Z.jsonl");
        assert!(a < b);
        assert_eq!(
            parse_segment_name(active, &b),
            Some((t("2026-11-30T04:00:00Z"), t("2026-11-30T10:00:00Z")))
        );
        assert_eq!(parse_segment_name(active, "audit.jsonl"), None);
        assert_eq!(parse_segment_name(active, "other-x-y.jsonl"), None);
    }

    #[tokio::test]
    async fn rotates_by_size_keeping_records_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("audit.jsonl");
        let mut file = RotatingFile::open(active.clone(), policy(100)).await.unwrap();
        let mut closed = Vec::new();
        for i in 0..30 {
            let line = format!("{{\"n\":{i:03},\"pad\":\"{}\"}}", "x".repeat(20));
            closed.extend(file.write_line(line.as_bytes()).await.unwrap());
        }
        closed.extend(file.close_segment().await.unwrap());
        let on_disk = closed_segments(&active).await.unwrap();
        let names =
            |segments: &[Segment]| segments.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&on_disk), names(&closed), "every closed segment, in order");
        assert!(on_disk.len() >= 9, "{} segments", on_disk.len());
        let mut all = String::new();
        for s in &on_disk {
            let text = std::fs::read_to_string(&s.path).unwrap();
            assert!(text.ends_with('\n'));
            all.push_str(&text);
        }
        let numbers: Vec<usize> = all.lines().map(|l| l[5..8].parse().unwrap()).collect();
        assert_eq!(numbers, (0..30).collect::<Vec<_>>());
        assert!(!active.exists() || std::fs::metadata(&active).unwrap().len() == 0);
    }

    #[tokio::test]
    async fn an_empty_segment_is_never_closed_and_a_leftover_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("audit.jsonl");
        std::fs::write(&active, "{\"left\":1}\n").unwrap();
        let mut file = RotatingFile::open(active.clone(), policy(1 << 20)).await.unwrap();
        assert_eq!(closed_segments(&active).await.unwrap().len(), 1, "the leftover is a segment");
        assert_eq!(file.due(), None);
        assert_eq!(file.close_segment().await.unwrap(), None);
        file.write_line(b"{}").await.unwrap();
        assert!(file.due().is_some());
    }
}
