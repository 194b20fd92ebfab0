//! The gateway's spans as a collector sees them, and the few hot-path calls that make them.
//!
//! - The per-RPC `rpc` span ([`crate::call::record`]) is shared with the logs, so it keeps
//!   the field names the logs promise; [`super::export`] maps them to OpenTelemetry's
//!   semantic conventions when it exports the span, as a SERVER span named
//!   `aiservice.v1.ChatService/<method>`. When the call came with a W3C `traceparent`, the
//!   span's parent is the caller's span ([`join_trace`]); otherwise it starts a trace.
//! - Each upstream attempt is a CLIENT span under it ([`attempt_span`]), made only while
//!   export is on and hidden from the logs, so it is written in the conventions' terms
//!   directly: `gen_ai.*`, `http.response.status_code`, `error.type`, and the gateway's own
//!   `ai_service.*` (provider, endpoint, attempt number, what triggered it).
//! - The `traceparent` sent to the provider names the attempt span ([`upstream_traceparent`]),
//!   so the gateway sits between the caller's span and the provider's in the trace.
//!
//! Every hook first asks [`exporting`] (one relaxed atomic load; the router asks it before
//! [`attempt_span`]): without export nothing else runs, no span is made and the caller's trace
//! context is forwarded unchanged. The answer is process-wide; where a subscriber has no
//! export layer (an embedder's, a test's) the hooks find no OpenTelemetry context and fall
//! back to that same behaviour.

use std::{
    pin::Pin,
    str::FromStr,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context as TaskContext, Poll},
};

use futures::{Stream, StreamExt};
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use tracing::{Metadata, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterFn, filter_fn};

use crate::{
    call::{CallContext, TraceParent},
    provider::{ChatStream, ProviderError},
};

/// The name of the per-RPC span.
pub const RPC: &str = "rpc";
/// The name of an upstream attempt's span.
pub const ATTEMPT: &str = "upstream_attempt";

/// Export pipelines alive in this process ([`super::TraceExport`] counts itself in and out).
static EXPORTS: AtomicUsize = AtomicUsize::new(0);

pub(super) fn export_started() {
    EXPORTS.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn export_stopped() {
    EXPORTS.fetch_sub(1, Ordering::Relaxed);
}

/// Whether spans may be exported: an export pipeline is running in this process. When it is
/// false, the hot path does nothing for tracing beyond what the logs need.
#[inline]
pub fn exporting() -> bool {
    EXPORTS.load(Ordering::Relaxed) > 0
}

/// Whether `meta` is one of the gateway's exported spans.
pub(super) fn is_exported(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && meta.target().starts_with("ai_service")
        && (meta.name() == RPC || meta.name() == ATTEMPT)
}

/// A log filter that hides the spans made for export only (the attempt spans).
pub(super) fn not_export_only() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(|meta| !(meta.is_span() && meta.name() == ATTEMPT))
}

/// Puts `span`, the call's `rpc` span, in its trace before it starts: under the caller's span
/// (from its `traceparent` and `tracestate`) when the call brought one; otherwise the span
/// starts a trace, whose id is then logged as the span's `trace_id`, as a caller's would be.
pub fn join_trace(span: &Span, call: &CallContext) {
    if !exporting() {
        return;
    }
    let Some(caller) = call.trace() else {
        let started = span.context();
        let trace_id = started.span().span_context().trace_id();
        // Invalid when this subscriber exports nothing.
        if trace_id != TraceId::INVALID {
            span.record("trace_id", trace_id.to_string().as_str());
        }
        return;
    };
    let state = call.tracestate().and_then(|s| TraceState::from_str(s).ok()).unwrap_or_default();
    let parent = SpanContext::new(
        TraceId::from_bytes(caller.trace_id),
        SpanId::from_bytes(caller.parent_id),
        TraceFlags::new(caller.flags),
        true,
        state,
    );
    // Fails only without an export layer in this subscriber: then there is nothing to parent.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// Notes on the `rpc` span which kind of provider answered (`gen_ai.provider.name`).
pub fn note_provider(span: &Span, system: &'static str) {
    if exporting() {
        span.set_attribute("gen_ai.provider.name", system);
    }
}

/// Why an attempt was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The call's first attempt.
    First,
    /// Another endpoint of the same target, after a failure of this kind (an `ErrorInfo` reason).
    Retry(&'static str),
    /// The next target in the chain, after a failure of this kind.
    Failover(&'static str),
    /// A parallel attempt: the first had no answer within the route's `hedge_delay`.
    Hedge,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::First => "first",
            Trigger::Retry(_) => "retry",
            Trigger::Failover(_) => "failover",
            Trigger::Hedge => "hedge",
        }
    }

    fn after(self) -> Option<&'static str> {
        match self {
            Trigger::Retry(after) | Trigger::Failover(after) => Some(after),
            Trigger::First | Trigger::Hedge => None,
        }
    }
}

/// `gen_ai.operation.name` of a chat call's attempts.
pub const CHAT: &str = "chat";
/// `gen_ai.operation.name` of an embeddings call's attempts.
pub const EMBEDDINGS: &str = "embeddings";

/// What an attempt span names.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The operation, [`CHAT`] or [`EMBEDDINGS`].
    pub operation: &'static str,
    /// The configured provider name.
    pub provider: &'a str,
    /// The provider's `gen_ai.provider.name`.
    pub system: &'static str,
    /// The endpoint of the provider's pool.
    pub endpoint: &'a str,
    /// The upstream model.
    pub model: &'a str,
    /// 1 for the call's first attempt.
    pub number: u32,
    /// Why it was made.
    pub trigger: Trigger,
}

/// The span of one upstream attempt, a child of the current (`rpc`) span. Make it only while
/// [`exporting`]. The attempt runs inside it, so [`upstream_traceparent`] and
/// [`record_http_status`] find it as the current span.
pub fn attempt_span(attempt: &Attempt<'_>) -> AttemptSpan {
    let span = tracing::info_span!(
        target: "ai_service::router",
        ATTEMPT,
        otel.name = %format!("{} {}", attempt.operation, attempt.model),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        gen_ai.operation.name = attempt.operation,
        gen_ai.provider.name = attempt.system,
        gen_ai.request.model = attempt.model,
        ai_service.provider = attempt.provider,
        ai_service.endpoint = attempt.endpoint,
        // Integers as i64: the export layer sends unsigned values as strings.
        ai_service.attempt.number = i64::from(attempt.number),
        ai_service.attempt.trigger = attempt.trigger.name(),
        ai_service.attempt.after_error = attempt.trigger.after(),
        ai_service.attempt.cancelled = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    AttemptSpan { span, ended: false }
}

/// An attempt's span while the attempt runs. Dropped before [`AttemptSpan::end`] (a hedge
/// that lost, the caller's deadline, the caller gone), it records the attempt as cancelled.
#[derive(Debug)]
pub struct AttemptSpan {
    span: Span,
    ended: bool,
}

impl AttemptSpan {
    /// The span, to run the attempt in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The attempt ended, with `error` when it failed.
    pub fn end(mut self, error: Option<&ProviderError>) {
        if let Some(error) = error {
            attempt_failed(&self.span, error);
        }
        self.ended = true;
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        if !self.ended {
            self.span.record("ai_service.attempt.cancelled", true);
        }
    }
}

/// Records a failed attempt on its span: `error.type` (the `ErrorInfo` reason), the HTTP
/// status when there was one, and an error status with the (redacted at export) message.
fn attempt_failed(span: &Span, error: &ProviderError) {
    span.record("error.type", error.kind.reason());
    if let Some(status) = error.status {
        span.record("http.response.status_code", i64::from(status));
    }
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", error.message.as_str());
}

/// Keeps the current attempt span open, and current, while the rest of a committed stream is
/// read, so the span covers the whole upstream stream; a failure mid-stream is recorded on it.
pub fn in_attempt_span(stream: ChatStream) -> ChatStream {
    if !exporting() {
        return stream;
    }
    let span = Span::current();
    Box::pin(async_stream::stream! {
        let mut stream = InSpan::new(span.clone(), stream);
        while let Some(item) = stream.next().await {
            if let Err(error) = &item {
                attempt_failed(&span, error);
            }
            yield item;
        }
    })
}

/// A stream polled inside a span, as `Instrument` does for a future: each poll enters the span
/// held here. (`stream.next().instrument(span.clone())` per item cloned and dropped the span
/// too, each a look-up in the span registry: ~1,500 instructions a streamed chunk.)
pub struct InSpan<S> {
    span: Span,
    stream: S,
}

impl<S> InSpan<S> {
    /// `stream`, polled inside `span`.
    pub fn new(span: Span, stream: S) -> InSpan<S> {
        InSpan { span, stream }
    }
}

impl<S: Stream + Unpin> Stream for InSpan<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.stream).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

/// Records the upstream's HTTP status on the current attempt span, while export is on.
pub fn record_http_status(status: u16) {
    if exporting() {
        Span::current().record("http.response.status_code", i64::from(status));
    }
}

/// The `traceparent` to send upstream while export is on: the current attempt span's, with
/// the call's trace id. `None` when export is off or this subscriber exports nothing; the
/// caller's own `traceparent` is then forwarded unchanged.
pub fn upstream_traceparent() -> Option<TraceParent> {
    if !exporting() {
        return None;
    }
    let context = Span::current().context();
    let span = context.span();
    let ours = span.span_context();
    ours.is_valid().then(|| TraceParent {
        trace_id: ours.trace_id().to_bytes(),
        parent_id: ours.span_id().to_bytes(),
        flags: ours.trace_flags().to_u8(),
    })
}
