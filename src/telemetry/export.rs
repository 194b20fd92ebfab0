//! OTLP export of the gateway's spans ([`super::spans`]), built only when `tracing.otlp` is
//! configured.
//!
//! The pipeline: the `tracing` spans pass the export layer's own filter ([`ExportedSpans`]:
//! the `rpc` and attempt spans, nothing else), become OpenTelemetry spans
//! (`tracing-opentelemetry`) sampled parent-first at `tracing.sample_ratio`, and go into a
//! bounded queue. A batch processor, a task on the gateway's tokio runtime, drains the queue
//! every few seconds or every 512 spans and hands each batch to [`Conventions`], which maps
//! the `rpc` span to the semantic conventions and redacts every string, then to the OTLP
//! exporter (gRPC through tonic, or HTTP/protobuf through reqwest).
//!
//! Export never blocks or fails a call: a span that finds the queue full (collector down or
//! slow) is dropped, an export is bounded by `tracing.otlp.timeout`, and a failed export is
//! logged (at most once a minute), never retried past that. [`TraceExport::shutdown`] flushes
//! what is queued, within the same bound, after the server has drained.

use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry::{
    InstrumentationScope, KeyValue, Value,
    trace::{SpanKind, Status, TracerProvider},
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    runtime,
    trace::{
        BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
        span_processor_with_async_runtime::BatchSpanProcessor,
    },
};
use tracing::{Metadata, Subscriber, subscriber::Interest};
use tracing_subscriber::{
    Layer,
    filter::{Filtered, LevelFilter},
    layer::{Context, Filter},
    registry::LookupSpan,
};

use super::spans;
use crate::{
    config::{OtlpConfig, OtlpProtocol, TracingConfig},
    metrics::code_name,
    redact::redact,
};

/// The gRPC service whose methods the `rpc` span records.
pub const RPC_SERVICE: &str = "aiservice.v1.ChatService";
/// The `rpc.service` of an `Embed` call.
pub const EMBED_RPC_SERVICE: &str = "aiservice.v1.EmbedService";
/// Spans waiting for export; more are dropped.
const MAX_QUEUE: usize = 2048;
/// Least time between two warnings about failed exports.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why the export pipeline could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start trace export: {0}")]
pub struct ExportError(String);

impl ExportError {
    fn new(message: impl fmt::Display) -> Self {
        // Header values are registered secrets: a message that quoted one is masked.
        ExportError(redact(&message.to_string()).into_owned())
    }
}

/// A running export pipeline: the layer that feeds it and the handle that flushes it.
pub struct TraceExport {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Where spans go (no credentials: those are in headers).
    url: String,
    protocol: OtlpProtocol,
    sample_ratio: f64,
    /// Bound on a flush (the export timeout, and a little to hand the spans over).
    flush_timeout: Duration,
    stopped: AtomicBool,
}

impl fmt::Debug for TraceExport {
    // The exporter holds the collector's credentials: only the shape is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceExport")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("sample_ratio", &self.sample_ratio)
            .finish_non_exhaustive()
    }
}

impl TraceExport {
    /// Builds the pipeline of `config.otlp`, or nothing when export is off. Must run inside
    /// a tokio runtime: the batch processor and the gRPC channel are tasks on it.
    pub fn start(config: &TracingConfig) -> Result<Option<TraceExport>, ExportError> {
        let Some(otlp) = &config.otlp else { return Ok(None) };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ExportError::new("it needs a tokio runtime"));
        }
        let exporter = Conventions::new(otlp_exporter(otlp)?);
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUE)
            .with_max_export_timeout(otlp.timeout)
            .build();
        let processor =
            BatchSpanProcessor::builder(exporter, runtime::Tokio).with_batch_config(batch).build();
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("ai-service")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        spans::export_started();
        Ok(Some(TraceExport {
            provider,
            tracer,
            url: otlp.traces_url(),
            protocol: otlp.protocol,
            sample_ratio: config.sample_ratio,
            flush_timeout: otlp.timeout + Duration::from_secs(1),
            stopped: AtomicBool::new(false),
        }))
    }

    /// Says where spans go (once the subscriber that feeds them is installed).
    pub fn log_start(&self) {
        tracing::info!(
            endpoint = %self.url,
            protocol = ?self.protocol,
            sample_ratio = self.sample_ratio,
            "exporting traces over OTLP"
        );
    }

    /// The layer that turns the exported spans into OpenTelemetry spans, with its filter.
    pub fn layer<S>(&self) -> Filtered<OtelLayer<S>, ExportedSpans, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            // Only what the spans carry: no code locations, threads, targets or timings.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            // Parents come from the tracing span tree, not from an ambient OpenTelemetry
            // context, so entering a span costs nothing extra.
            .with_context_activation(false)
            .with_filter(ExportedSpans)
    }

    /// Exports what is queued now; waits at most the export timeout.
    pub async fn flush(&self) -> Result<(), ExportError> {
        let provider = self.provider.clone();
        // The processor's flush blocks its caller until the batch task answers: off the runtime.
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush());
        match tokio::time::timeout(self.flush_timeout, flushed).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(ExportError::new(e)),
            Ok(Err(e)) => Err(ExportError::new(e)),
            Err(_) => Err(ExportError::new("the flush timed out")),
        }
    }

    /// Flushes the spans still queued and stops the pipeline, within the export timeout;
    /// after the server has drained, so the last calls' spans are in the queue.
    pub async fn shutdown(self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        spans::export_stopped();
        let provider = self.provider.clone();
        let timeout = self.flush_timeout;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout, stopped).await {
            Ok(Ok(Ok(()))) => tracing::info!("trace export flushed and stopped"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %redact(&e.to_string()), "trace export stopped with spans unsent");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "trace export did not stop cleanly"),
            Err(_) => tracing::warn!(?timeout, "trace export: the final flush timed out"),
        }
    }
}

impl Drop for TraceExport {
    fn drop(&mut self) {
        // Not shut down (an embedder's early return, a failed test): stop without blocking this
        // thread, which may be the runtime's own and the one the batch task needs.
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        spans::export_stopped();
        let provider = self.provider.clone();
        let timeout = self.flush_timeout;
        // On a thread of its own, left to finish alone. Not the runtime's blocking pool: a
        // runtime dropped right after (a test's, at its end) waits for its blocking tasks, and
        // this one can wait for an answer from the batch task that runtime no longer runs, which
        // hung that runtime's drop for good.
        let stopping = std::thread::Builder::new()
            .name("trace-export-stop".into())
            .spawn(move || drop(provider.shutdown_with_timeout(timeout)));
        if let Err(e) = stopping {
            tracing::warn!(error = %e, "trace export dropped without a final flush");
        }
    }
}

/// The export layer's type.
pub type OtelLayer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>;

/// The export layer's filter: the gateway's `rpc` and attempt spans at any log level, no
/// events, no other span (a dependency's spans never reach the collector).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportedSpans;

impl<S> Filter<S> for ExportedSpans {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        spans::is_exported(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if spans::is_exported(meta) { Interest::always() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

/// The OTLP exporter of `otlp`: tonic for gRPC, reqwest for HTTP/protobuf.
fn otlp_exporter(otlp: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    let built = match otlp.protocol {
        OtlpProtocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::with_capacity(otlp.headers.len());
            for (name, value) in &otlp.headers {
                let key = tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes())
                    .map_err(|_| ExportError::new(format_args!("{name:?} is not a header name")))?;
                let mut value = tonic::metadata::AsciiMetadataValue::try_from(value.expose())
                    .map_err(|_| ExportError::new(format_args!("header {name}: invalid value")))?;
                value.set_sensitive(true);
                metadata.insert(key, value);
            }
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(otlp.traces_url())
                .with_timeout(otlp.timeout)
                .with_metadata(metadata);
            if otlp.endpoint.starts_with("https://") {
                builder = builder
                    .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
            }
            builder.build()
        }
        OtlpProtocol::HttpProtobuf => {
            crate::provider::http::install_crypto();
            let client = reqwest::Client::builder()
                .timeout(otlp.timeout)
                // The collector is reached directly, as the gRPC transport does.
                .no_proxy()
                .build()
                .map_err(|e| ExportError::new(format_args!("HTTP client: {e}")))?;
            let headers: HashMap<String, String> = otlp
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().to_owned()))
                .collect();
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(otlp.traces_url())
                .with_timeout(otlp.timeout)
                .with_headers(headers)
                .build()
        }
    };
    built.map_err(ExportError::new)
}

/// Wraps the OTLP exporter: each span leaves in OpenTelemetry's terms ([`conventions`]) and
/// with every string redacted; a failed export is logged, at most once a minute.
pub struct Conventions<E> {
    inner: E,
    last_warning: Mutex<Option<Instant>>,
}

impl<E> Conventions<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        Conventions { inner, last_warning: Mutex::new(None) }
    }

    fn warn(&self, error: &OTelSdkError, spans: usize) {
        let now = Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            error = %redact(&error.to_string()),
            spans,
            "trace export failed; spans are dropped until the collector answers (logged at most once a minute)"
        );
    }
}

impl<E> fmt::Debug for Conventions<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Conventions")
    }
}

impl<E: SpanExporter> SpanExporter for Conventions<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        let batch: Vec<SpanData> = batch.into_iter().map(conventions).collect();
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.warn(error, count);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The `rpc` span's log fields and the attributes they become.
const RPC_ATTRIBUTES: &[(&str, &str)] = &[
    ("request_id", "ai_service.request_id"),
    ("model", "gen_ai.request.model"),
    ("upstream_model", "gen_ai.response.model"),
    ("route", "ai_service.route"),
    ("provider", "ai_service.provider"),
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cache", "ai_service.cache"),
    ("error", "ai_service.error"),
];

/// A span as it leaves: the `rpc` span becomes a gRPC SERVER span in the semantic
/// conventions' terms; every string attribute and status message of any span is redacted.
pub fn conventions(mut span: SpanData) -> SpanData {
    if span.name == spans::RPC {
        rpc_server_span(&mut span);
    }
    for attribute in &mut span.attributes {
        if let Value::String(text) = &attribute.value
            && let Cow::Owned(redacted) = redact(text.as_str())
        {
            attribute.value = Value::from(redacted);
        }
    }
    if let Status::Error { description } = &span.status
        && let Cow::Owned(redacted) = redact(description)
    {
        span.status = Status::error(redacted);
    }
    span
}

fn rpc_server_span(span: &mut SpanData) {
    let mut method = None;
    let mut code = None;
    let mut error = None;
    let mut attributes = Vec::with_capacity(span.attributes.len() + 6);
    for attribute in span.attributes.drain(..) {
        match attribute.key.as_str() {
            "method" => method = Some(attribute.value.as_str().into_owned()),
            "code" => code = Some(attribute.value.as_str().into_owned()),
            // The span's own trace id says it.
            "trace_id" => {}
            field => {
                if field == "error" {
                    error = Some(attribute.value.as_str().into_owned());
                }
                let key = RPC_ATTRIBUTES.iter().find(|(from, _)| *from == field).map(|(_, to)| *to);
                match key {
                    Some(key) => attributes.push(KeyValue::new(key, attribute.value)),
                    None => attributes.push(attribute),
                }
            }
        }
    }
    let method = method.unwrap_or_default();
    let (service, operation) = if method == crate::metrics::Method::Embed.as_str() {
        (EMBED_RPC_SERVICE, spans::EMBEDDINGS)
    } else {
        (RPC_SERVICE, spans::CHAT)
    };
    span.name = Cow::Owned(format!("{service}/{method}"));
    span.span_kind = SpanKind::Server;
    attributes.extend([
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service),
        KeyValue::new("rpc.method", method),
        KeyValue::new("gen_ai.operation.name", operation),
    ]);
    // A call still running when the pipeline stopped has no code yet.
    if let Some(number) = code.as_deref().and_then(code_number) {
        attributes.push(KeyValue::new("rpc.grpc.status_code", number));
        if number != 0 {
            attributes.push(KeyValue::new("error.type", code.clone().unwrap_or_default()));
        }
        // The conventions' rule for server spans: only codes that point at the server are
        // errors; a caller's own mistake (INVALID_ARGUMENT, NOT_FOUND, …) is not.
        if is_server_error(number) {
            span.status = Status::error(error.unwrap_or_else(|| code.unwrap_or_default()));
        }
    }
    span.attributes = attributes;
}

/// The number of a gRPC code by its name as the `code` field shows it.
fn code_number(name: &str) -> Option<i64> {
    (0..=16).find(|&n| code_name(tonic::Code::from_i32(n)) == name).map(i64::from)
}

/// The codes the conventions make an error on a gRPC server span.
fn is_server_error(number: i64) -> bool {
    use tonic::Code;
    [Code::Unknown, Code::DeadlineExceeded, Code::Unimplemented, Code::Internal]
        .into_iter()
        .chain([Code::Unavailable, Code::DataLoss])
        .any(|code| code as i64 == number)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::{
        InstrumentationScope,
        trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    fn span(name: &'static str, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([1; 16]),
                SpanId::from_bytes([2; 8]),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn attribute(span: &SpanData, key: &str) -> Option<Value> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
    }

    #[test]
    fn the_rpc_span_leaves_as_a_grpc_server_span() {
        let out = conventions(span(
            "rpc",
            vec![
                KeyValue::new("request_id", "req-1"),
                KeyValue::new("method", "StreamChat"),
                KeyValue::new("trace_id", "0101"),
                KeyValue::new("model", "fast"),
                KeyValue::new("upstream_model", "gpt-4o-mini"),
                KeyValue::new("route", "fast"),
                KeyValue::new("provider", "openai"),
                KeyValue::new("code", "OK"),
                KeyValue::new("input_tokens", 12),
                KeyValue::new("output_tokens", 40),
            ],
        ));
        assert_eq!(out.name, "aiservice.v1.ChatService/StreamChat");
        assert_eq!(out.span_kind, SpanKind::Server);
        assert_eq!(out.status, Status::Unset);
        for (key, value) in [
            ("rpc.system", Value::from("grpc")),
            ("rpc.service", Value::from("aiservice.v1.ChatService")),
            ("rpc.method", Value::from("StreamChat")),
            ("rpc.grpc.status_code", Value::from(0)),
            ("gen_ai.operation.name", Value::from("chat")),
            ("gen_ai.request.model", Value::from("fast")),
            ("gen_ai.response.model", Value::from("gpt-4o-mini")),
            ("gen_ai.usage.input_tokens", Value::from(12)),
            ("gen_ai.usage.output_tokens", Value::from(40)),
            ("ai_service.request_id", Value::from("req-1")),
            ("ai_service.route", Value::from("fast")),
            ("ai_service.provider", Value::from("openai")),
        ] {
            assert_eq!(attribute(&out, key), Some(value), "{key}");
        }
        for gone in ["method", "code", "trace_id", "model", "error.type"] {
            assert_eq!(attribute(&out, gone), None, "{gone}");
        }
    }

    #[test]
    fn server_faults_are_errors_and_caller_mistakes_are_not() {
        let failed = |code: &str| {
            conventions(span(
                "rpc",
                vec![
                    KeyValue::new("method", "Chat"),
                    KeyValue::new("code", code.to_owned()),
                    KeyValue::new("error", "every target failed"),
                ],
            ))
        };
        let out = failed("UNAVAILABLE");
        assert_eq!(out.status, Status::error("every target failed"));
        assert_eq!(attribute(&out, "rpc.grpc.status_code"), Some(Value::from(14)));
        assert_eq!(attribute(&out, "error.type"), Some(Value::from("UNAVAILABLE")));
        let out = failed("NOT_FOUND");
        assert_eq!(out.status, Status::Unset);
        assert_eq!(attribute(&out, "rpc.grpc.status_code"), Some(Value::from(5)));
        assert_eq!(attribute(&out, "error.type"), Some(Value::from("NOT_FOUND")));
        assert_eq!(attribute(&out, "ai_service.error"), Some(Value::from("every target failed")));
        assert_eq!(failed("DEADLINE_EXCEEDED").status, Status::error("every target failed"));
    }

    #[test]
    fn strings_are_redacted_and_other_spans_keep_their_shape() {
        let mut attempt = span(
            "upstream_attempt",
            vec![KeyValue::new("ai_service.provider", "a"), KeyValue::new("n", 3)],
        );
        attempt.span_kind = SpanKind::Client;
        // A made-up key of the `sk-` shape, assembled here so that no key-shaped literal
        // stands in the source.
        attempt.status =
            Status::error(format!("upstream said: bad key sk-{}", "abcdefghijklmnop1234"));
        attempt.attributes.push(KeyValue::new("note", "Bearer abcdefghijkl"));
        let out = conventions(attempt);
        assert_eq!(out.name, "upstream_attempt");
        assert_eq!(out.span_kind, SpanKind::Client);
        assert_eq!(out.status, Status::error("upstream said: bad key ***"));
        assert_eq!(attribute(&out, "note"), Some(Value::from("Bearer ***")));
        assert_eq!(attribute(&out, "n"), Some(Value::from(3)));
    }

    #[test]
    fn code_numbers_follow_the_grpc_table() {
        assert_eq!(code_number("OK"), Some(0));
        assert_eq!(code_number("UNAVAILABLE"), Some(14));
        assert_eq!(code_number("UNAUTHENTICATED"), Some(16));
        assert_eq!(code_number("NOPE"), None);
    }
}
