//! The audit trail: exactly one JSON-lines record per chat RPC, failures and rejected calls
//! included.
//!
//! Who writes the record: every call's [`crate::call::CallRecord`], begun by the call
//! pipeline ([`crate::call::Pipeline::begin`]) when the call's headers arrive, when it ends, once,
//! whatever way the call ends (answer, error, a refusal before the handler ran, a stream cut,
//! the caller leaving).
//!
//! Health checks and reflection are not audited: they carry no caller data and would drown
//! the trail.
//!
//! Records go through an unbounded channel to one writer task, so submitting never blocks and
//! never drops. The bound is enforced at admission instead: while more than `queue_capacity`
//! records wait to be written, new calls wait before they start ([`AuditSink::admit`]). A
//! slow sink therefore slows callers down rather than losing records, and the queue can never
//! hold more than the capacity plus the calls already in flight. The writer takes what has
//! queued in batches, resting 5 ms after each (so a busy gateway wakes it once a batch, not
//! once a call); written records are flushed within 50 ms; [`AuditSink::close`] drains and
//! flushes the queue on shutdown.
//!
//! A file sink may rotate (`audit.rotate:`, [`rotate`]): the writer closes the active file
//! into a named segment by size and age, when asked ([`AuditSink::rotate`]) and on close, and
//! tells [`AuditSink::segment_closed`] watchers (the backup task) each time.

mod line;
pub mod rotate;

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use serde::Serialize;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt, BufWriter},
    sync::{Notify, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{AuditConfig, AuditSinkConfig},
    metrics::Recorder,
    redact::redact,
};

/// One audited call. Written as its JSON line by [`line::write`] (byte for byte what the
/// derived `Serialize` gives).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditRecord {
    /// When the call ended, RFC 3339 with milliseconds, UTC.
    pub time: String,
    /// The call's `x-request-id`.
    pub request_id: String,
    /// How it came in: `grpc`, `grpc_web`, `openai` or `anthropic`.
    pub front_door: &'static str,
    /// `Chat`, `StreamChat` or `ListModels`.
    pub method: &'static str,
    /// The client key's id, when the call presented a valid one.
    pub client_id: Option<String>,
    /// Audited caller headers (`x-user-id`, `x-tenant-id`, configured extras).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub caller: BTreeMap<String, String>,
    /// The request's `metadata` map.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The model name the caller asked for.
    pub model: Option<String>,
    /// The route it resolved to (`provider/model` for a passthrough).
    pub route: Option<String>,
    /// The provider that answered, or failed last.
    pub provider: Option<String>,
    /// The upstream model that answered.
    pub provider_model: Option<String>,
    /// The endpoint that answered.
    pub endpoint: Option<String>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Messages in the request.
    pub message_count: usize,
    /// Prompt tokens.
    pub input_tokens: Option<u32>,
    /// Generated tokens.
    pub output_tokens: Option<u32>,
    /// Of the prompt tokens, read from the provider's cache; absent when none were reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u32>,
    /// Of the prompt tokens, written to the provider's cache; absent when none were reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u32>,
    /// Of the generated tokens, spent on reasoning; absent when none were reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u32>,
    /// What the call cost in US dollars; absent when the price is unknown (never 0 for
    /// unknown) or the call was not answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// True when the cost was priced from estimated usage (the provider reported none).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
    /// Whether the response cache answered (`true`) or not (`false`); absent when the call
    /// did not consult it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<bool>,
    /// Whole call, in milliseconds.
    pub latency_ms: f64,
    /// Time to the first content event of a stream, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// The gRPC code, e.g. `OK` or `UNAVAILABLE`.
    pub code: &'static str,
    /// The error message the caller got, redacted.
    pub error: Option<String>,
    /// The request's messages, redacted; only with `audit.include_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
}

/// The current time as the record shows it.
pub fn now_rfc3339() -> String {
    let mut time = String::with_capacity(24);
    crate::json_text::push_rfc3339(
        &mut time,
        SystemTime::now(),
        crate::json_text::Fraction::Millis,
    );
    time
}

/// Where records go; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::UnboundedSender<AuditRecord>,
    depth: AtomicUsize,
    capacity: usize,
    /// Room in the queue again: calls waiting in [`AuditSink::admit`] may start.
    space: Notify,
    /// The queue is full: the writer stops resting between batches.
    full: Notify,
    closing: CancellationToken,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// `audit.headers`, parsed once (validated and lower-cased by the config).
    headers: Vec<http::HeaderName>,
    include_content: bool,
    metrics: Recorder,
    /// Requests to close the open segment now, answered when it is closed.
    rotate_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Notified whenever a segment is closed.
    segment_closed: Arc<Notify>,
}

/// Where the writer task puts records.
enum Output {
    /// A stream (stdout, a file without rotation, a test pipe).
    Stream(BufWriter<Box<dyn AsyncWrite + Send + Unpin>>),
    /// A rotating file.
    Rotating(rotate::RotatingFile),
}

impl Output {
    async fn write_line(&mut self, line: &[u8]) -> io::Result<bool> {
        match self {
            Output::Stream(out) => {
                out.write_all(line).await?;
                out.write_all(b"\n").await?;
                Ok(false)
            }
            Output::Rotating(file) => Ok(file.write_line(line).await?.is_some()),
        }
    }

    async fn flush(&mut self) {
        let flushed = match self {
            Output::Stream(out) => out.flush().await,
            Output::Rotating(file) => file.flush().await,
        };
        if let Err(e) = flushed {
            tracing::error!(error = %e, "cannot flush the audit sink");
        }
    }

    /// When the open segment is due to close by age.
    fn due(&self) -> Option<tokio::time::Instant> {
        match self {
            Output::Stream(_) => None,
            Output::Rotating(file) => file.due(),
        }
    }

    /// Closes the open segment; true when one was closed.
    async fn close_segment(&mut self) -> bool {
        match self {
            Output::Stream(_) => false,
            Output::Rotating(file) => match file.close_segment().await {
                Ok(closed) => closed.is_some(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot close the audit segment");
                    false
                }
            },
        }
    }
}

impl AuditSink {
    /// Opens the sink of `config` and starts its writer.
    pub async fn open(config: &AuditConfig, metrics: Recorder) -> io::Result<AuditSink> {
        if let (AuditSinkConfig::File(path), Some(policy)) = (&config.sink, config.rotate) {
            let file = rotate::RotatingFile::open(path.clone(), policy).await.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open audit file {}: {e}", path.display()))
            })?;
            return Ok(AuditSink::start(config, metrics, Output::Rotating(file)));
        }
        let out: Box<dyn AsyncWrite + Send + Unpin> = match &config.sink {
            AuditSinkConfig::Stdout => Box::new(tokio::io::stdout()),
            AuditSinkConfig::File(path) => Box::new(
                tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.map_err(
                    |e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open audit file {}: {e}", path.display()),
                        )
                    },
                )?,
            ),
        };
        Ok(AuditSink::with_writer(config, metrics, out))
    }

    /// A sink writing to `out`.
    pub fn with_writer(
        config: &AuditConfig,
        metrics: Recorder,
        out: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> AuditSink {
        AuditSink::start(config, metrics, Output::Stream(BufWriter::with_capacity(64 * 1024, out)))
    }

    fn start(config: &AuditConfig, metrics: Recorder, out: Output) -> AuditSink {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rotate_tx, rotate_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            tx,
            depth: AtomicUsize::new(0),
            capacity: config.queue_capacity,
            space: Notify::new(),
            full: Notify::new(),
            closing: CancellationToken::new(),
            writer: Mutex::new(None),
            headers: config
                .headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            include_content: config.include_content,
            metrics,
            rotate_tx,
            segment_closed: Arc::new(Notify::new()),
        });
        let task = tokio::spawn(write_records(inner.clone(), rx, rotate_rx, out));
        *inner.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        AuditSink { inner }
    }

    /// The caller headers copied into records.
    pub fn headers(&self) -> &[http::HeaderName] {
        &self.inner.headers
    }

    /// Whether records carry message content.
    pub fn include_content(&self) -> bool {
        self.inner.include_content
    }

    /// Waits until the queue has room; a new call does this before it starts.
    pub async fn admit(&self) {
        loop {
            let notified = self.inner.space.notified();
            if self.inner.depth.load(Ordering::Acquire) < self.inner.capacity {
                return;
            }
            notified.await;
        }
    }

    /// Queues a record; never blocks, never drops (see the module docs).
    pub fn submit(&self, mut record: AuditRecord) {
        if record.time.is_empty() {
            record.time = now_rfc3339();
        }
        let depth = self.inner.depth.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.metrics.audit_queue_depth(depth);
        if depth >= self.inner.capacity {
            // New calls now wait for room: the writer must not rest (see GATHER).
            self.inner.full.notify_one();
        }
        if self.inner.tx.send(record).is_err() {
            // Only after close(): the writer is gone. Say so loudly rather than silently.
            self.inner.depth.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("audit record submitted after the audit sink closed");
        }
    }

    /// Closes the open segment of a rotating file now (records queued before are in it);
    /// returns at once for other sinks or after close.
    pub async fn rotate(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.inner.rotate_tx.send(done_tx).is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Notified each time a segment is closed.
    pub fn segment_closed(&self) -> Arc<Notify> {
        self.inner.segment_closed.clone()
    }

    /// Records waiting to be written.
    pub fn depth(&self) -> usize {
        self.inner.depth.load(Ordering::Acquire)
    }

    /// Writes out every queued record, flushes and stops the writer.
    pub async fn close(&self) {
        self.inner.closing.cancel();
        let task = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Longest a written record waits in the buffer before it is flushed to the sink.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// After a batch of records the writer rests this long before it looks at the queue again:
/// records submitted meanwhile wait in the queue without waking it, and are written as the
/// next batch. Waking the writer for every record cost a task wake-up and a pass through its
/// loop per call.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

async fn write_records(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<AuditRecord>,
    mut rotate_rx: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    mut out: Output,
) {
    // Written records reach the sink within FLUSH_INTERVAL: flushing after every record would
    // cost a blocking-pool hop per call (tokio's file writes run there).
    // The timers live as long as the writer and are reset, not made again for every batch:
    // a new timer each time the queue ran empty cost a registration in the timer wheel per call.
    let flush = tokio::time::sleep(FLUSH_INTERVAL);
    let rotate = tokio::time::sleep(FLUSH_INTERVAL);
    let gather = tokio::time::sleep(GATHER);
    tokio::pin!(flush, rotate, gather);
    let mut flush_due = false;
    let mut rotate_armed: Option<tokio::time::Instant> = None;
    // One serialization buffer for the writer's life: a record costs no allocation of its own
    // unless redaction has something to mask.
    let mut line = String::with_capacity(1024);
    loop {
        let rotate_at = out.due();
        if rotate_at != rotate_armed {
            if let Some(at) = rotate_at {
                rotate.as_mut().reset(at);
            }
            rotate_armed = rotate_at;
        }
        let record = tokio::select! {
            biased;
            record = rx.recv() => record,
            () = &mut flush, if flush_due => {
                out.flush().await;
                flush_due = false;
                continue;
            }
            () = &mut rotate, if rotate_armed.is_some() => {
                if out.close_segment().await {
                    inner.segment_closed.notify_waiters();
                }
                continue;
            }
            Some(done) = rotate_rx.recv() => {
                // Records submitted before the request are written into the closing segment.
                write_queued(&inner, &mut rx, &mut out, &mut line).await;
                if out.close_segment().await {
                    inner.segment_closed.notify_waiters();
                }
                let _ = done.send(());
                continue;
            }
            () = inner.closing.cancelled() => None,
        };
        let Some(record) = record else { break };
        write_one(&inner, &mut out, &record, &mut line).await;
        write_queued(&inner, &mut rx, &mut out, &mut line).await;
        if !flush_due {
            flush.as_mut().reset(tokio::time::Instant::now() + FLUSH_INTERVAL);
            flush_due = true;
        }
        gather.as_mut().reset(tokio::time::Instant::now() + GATHER);
        tokio::select! {
            biased;
            () = inner.closing.cancelled() => {}
            () = inner.full.notified() => {}
            () = &mut gather => {}
        }
    }
    // Closing: whatever is still queued is written before the writer stops.
    write_queued(&inner, &mut rx, &mut out, &mut line).await;
    out.flush().await;
    // A rotating file's last segment is closed, so the backup can take it.
    if out.close_segment().await {
        inner.segment_closed.notify_waiters();
    }
    while let Ok(done) = rotate_rx.try_recv() {
        let _ = done.send(());
    }
}

/// Writes every record in the queue now, then says how deep the queue is.
async fn write_queued(
    inner: &Inner,
    rx: &mut mpsc::UnboundedReceiver<AuditRecord>,
    out: &mut Output,
    line: &mut String,
) {
    while let Ok(record) = rx.try_recv() {
        write_one(inner, out, &record, line).await;
    }
    inner.metrics.audit_queue_depth(inner.depth.load(Ordering::Acquire));
    inner.space.notify_waiters();
}

/// Writes one record; the queue's depth counts it out.
async fn write_one(inner: &Inner, out: &mut Output, record: &AuditRecord, line: &mut String) {
    line.clear();
    line::write(line, record);
    let redacted = redact(line);
    match out.write_line(redacted.as_bytes()).await {
        Ok(true) => inner.segment_closed.notify_waiters(),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot write an audit record"),
    }
    // The queue just dropped below the capacity: calls waiting for room may start.
    if inner.depth.fetch_sub(1, Ordering::AcqRel) == inner.capacity {
        inner.space.notify_waiters();
    }
}

/// The audited caller headers of `metadata` (names parsed once: a look-up by text parses the
/// name on every call).
pub fn caller_headers(
    headers: &[http::HeaderName],
    metadata: &http::HeaderMap,
) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter_map(|h| {
            // `to_str` holds only visible ASCII: 256 characters are 256 bytes.
            let value = metadata.get(h)?.to_str().ok()?;
            Some((h.as_str().to_owned(), value.get(..256).unwrap_or(value).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::security::validate_audit;

    #[test]
    fn caller_headers_are_the_audited_ones_each_cut_to_256_characters() {
        let names =
            [http::HeaderName::from_static("user-agent"), http::HeaderName::from_static("x-team")];
        let mut metadata = http::HeaderMap::new();
        metadata.insert("user-agent", http::HeaderValue::from_str(&"a".repeat(300)).unwrap());
        metadata.insert("x-team", http::HeaderValue::from_static("search"));
        metadata.insert("x-other", http::HeaderValue::from_static("not audited"));
        let kept = caller_headers(&names, &metadata);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept["user-agent"], "a".repeat(256));
        assert_eq!(kept["x-team"], "search");
        // A value that is not visible ASCII is left out, not mangled.
        metadata.insert("x-team", http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert!(!caller_headers(&names, &metadata).contains_key("x-team"));
    }

    fn config(capacity: usize) -> AuditConfig {
        let mut c = validate_audit(Default::default()).unwrap();
        c.queue_capacity = capacity;
        c
    }

    #[tokio::test]
    async fn every_submitted_record_is_written_once_and_redacted() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let sink = AuditSink::with_writer(&config(16), Recorder::default(), Box::new(client));
        for i in 0..100 {
            sink.submit(AuditRecord {
                request_id: format!("r{i}"),
                method: "Chat",
                code: "OK",
                error: Some("Bearer sk-test-leak-abcdefghijklmnop leaked".into()),
                ..AuditRecord::default()
            });
        }
        sink.close().await;
        drop(sink);
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut text).await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert!(!text.contains("sk-test-leak-abcdefghijklmnop"));
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["request_id"], "r0");
        assert_eq!(first["code"], "OK");
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn a_rotating_file_closes_segments_by_age_on_request_and_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("audit.jsonl");
        let mut c = config(16);
        c.sink = AuditSinkConfig::File(active.clone());
        c.rotate = Some(crate::config::RotateConfig {
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(200),
        });
        let sink = AuditSink::open(&c, Recorder::default()).await.unwrap();
        let closed = sink.segment_closed();
        let notified = closed.notified();
        sink.submit(AuditRecord { request_id: "aged".into(), ..AuditRecord::default() });
        tokio::time::timeout(Duration::from_secs(3), notified).await.expect("closed by age");
        assert_eq!(rotate::closed_segments(&active).await.unwrap().len(), 1);

        sink.submit(AuditRecord { request_id: "asked".into(), ..AuditRecord::default() });
        sink.rotate().await;
        sink.submit(AuditRecord { request_id: "last".into(), ..AuditRecord::default() });
        sink.close().await;
        let segments = rotate::closed_segments(&active).await.unwrap();
        let ids: Vec<String> = segments
            .iter()
            .map(|s| {
                let text = std::fs::read_to_string(&s.path).unwrap();
                let record: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
                record["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["aged", "asked", "last"], "one segment each, in order");
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_does_not_rest_while_calls_wait_for_room() {
        // A queue of one: every record fills it, and the next call waits until it is written.
        let sink =
            AuditSink::with_writer(&config(1), Recorder::default(), Box::new(tokio::io::sink()));
        let start = tokio::time::Instant::now();
        for i in 0..20 {
            sink.admit().await;
            sink.submit(AuditRecord { request_id: format!("r{i}"), ..AuditRecord::default() });
        }
        sink.admit().await;
        // The clock is paused: it moves only when every task waits on a timer, as the
        // writer would while resting GATHER between batches.
        assert!(
            start.elapsed() < GATHER,
            "the writer rested while calls waited: {:?}",
            start.elapsed()
        );
        sink.close().await;
    }

    #[tokio::test]
    async fn a_full_queue_makes_new_calls_wait_instead_of_dropping() {
        // A writer that cannot write until we read: the queue fills up.
        let (client, mut server) = tokio::io::duplex(64);
        let sink = AuditSink::with_writer(&config(2), Recorder::default(), Box::new(client));
        for _ in 0..4 {
            sink.submit(AuditRecord { error: Some("x".repeat(200_000)), ..AuditRecord::default() });
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sink.admit()).await.is_err(),
            "admission must wait"
        );
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut server, &mut text).await.unwrap();
            text
        });
        tokio::time::timeout(Duration::from_secs(5), sink.admit())
            .await
            .expect("room again once written");
        sink.close().await;
        drop(sink);
        assert_eq!(reader.await.unwrap().lines().count(), 4, "nothing was dropped");
    }
}
