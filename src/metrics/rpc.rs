//! One RPC as the telemetry sees it: its span, its [`CallContext`], and the signals recorded
//! when it ends.
//!
//! The RPC layer ([`crate::layers::rpc`]) begins an [`RpcRecord`] when a call's headers arrive
//! and hands it to the handler through the request's extensions ([`OpenRpc`]). The handler
//! tells it what was asked and the route, runs the router through [`RpcRecord::upstream`],
//! then hands it the result ([`RpcRecord::finish_unary`], or [`RpcRecord::finish_stream`]
//! which records when the stream ends). A call refused before the handler took its record
//! (no client key, a request too large or undecodable) is finished by the layer
//! ([`RpcRecord::refuse`]). A record dropped before it finished (the caller went away) counts
//! as `CANCELLED`, or as `DEADLINE_EXCEEDED` when the caller's deadline had passed. Finishing
//! records, at once: the request counter, the latency, upstream, overhead and
//! time-to-first-token histograms, tokens, the in-flight gauges, the audit record, and one log
//! event in the call's span.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use tonic::{Code, Response, Status, metadata::MetadataValue};
use tracing::{Instrument, Span, field::Empty};

use super::{Method, Recorder, labels, names, route_label};
use tokio::sync::OwnedSemaphorePermit;

use crate::{
    audit::{AuditRecord, AuditSink, caller_headers},
    call::{CallContext, REQUEST_ID},
    chat::{ChatRequest, ContentPart},
    config::ClientKey,
    error::Error,
    proto::v1 as pb,
    router::{Route, Served},
    telemetry::spans,
};

/// A stream of `StreamChat` responses.
type EventStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<pb::StreamChatResponse, Status>> + Send>>;

/// One RPC being served; see the module docs.
#[derive(Debug)]
pub struct RpcRecord {
    recorder: Recorder,
    method: Method,
    call: CallContext,
    span: Span,
    start: Instant,
    route: Option<String>,
    /// The provider that answered, failed last, or refused the request as unsupported.
    provider: Option<String>,
    /// The endpoint that answered or failed last.
    endpoint: Option<String>,
    /// Attempts sent upstream.
    attempts: u32,
    /// Time spent awaiting the router; `None` when the call never reached it.
    upstream: Option<Duration>,
    /// When the router call in progress began, while one is.
    upstream_since: Option<Instant>,
    /// The caller's deadline, when it sent one: a call that ends cancelled after it passed
    /// is recorded as `DEADLINE_EXCEEDED`.
    deadline: Option<Instant>,
    /// When the handler returned a stream; the rest of a stream's time is the caller's pace
    /// and the upstream's, not the gateway's overhead.
    handler_done: Option<Instant>,
    first_token: Option<Duration>,
    tokens: Option<(u32, u32)>,
    /// Whether the response cache answered; `None` when the call was not cacheable.
    cache_hit: Option<bool>,
    streaming: bool,
    finished: bool,
    /// Where the call's audit record goes, and the record so far.
    audit: Option<(AuditSink, Box<AuditRecord>)>,
    /// The call's place under the in-flight limit, held until it ends.
    permit: Option<OwnedSemaphorePermit>,
}

impl Recorder {
    /// Begins recording a call of `method` with these request headers.
    pub fn begin_rpc(&self, method: Method, headers: &http::HeaderMap) -> RpcRecord {
        let call = CallContext::from_headers(headers);
        let span = tracing::info_span!(
            spans::RPC,
            request_id = %call.request_id(),
            method = method.as_str(),
            trace_id = Empty,
            model = Empty,
            route = Empty,
            provider = Empty,
            upstream_model = Empty,
            code = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
            error = Empty,
            cache = Empty,
        );
        if let Some(trace) = call.trace() {
            span.record("trace_id", trace.trace_id_hex().as_str());
        }
        spans::join_trace(&span, &call);
        self.sink().gauge_add(names::REQUESTS_IN_FLIGHT, &[(labels::METHOD, method.as_str())], 1.0);
        RpcRecord {
            recorder: self.clone(),
            method,
            call,
            span,
            start: Instant::now(),
            route: None,
            provider: None,
            endpoint: None,
            attempts: 0,
            upstream: None,
            upstream_since: None,
            deadline: None,
            handler_done: None,
            first_token: None,
            tokens: None,
            cache_hit: None,
            streaming: false,
            finished: false,
            audit: None,
            permit: None,
        }
    }
}

impl RpcRecord {
    /// Makes the call write an audit record to `sink` when it ends, starting from what its
    /// headers say: the audited caller headers.
    pub fn audit(&mut self, sink: &AuditSink, headers: &http::HeaderMap) {
        let record = AuditRecord {
            request_id: self.call.request_id().to_owned(),
            method: self.method.as_str(),
            caller: caller_headers(sink.headers(), headers),
            ..AuditRecord::default()
        };
        self.audit = Some((sink.clone(), Box::new(record)));
    }

    /// The caller's deadline: a call still unanswered when it passes ends as
    /// `DEADLINE_EXCEEDED` in the record, even when the caller's going away ended it first.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// The client key the call presented.
    pub fn client(&mut self, key: &ClientKey) {
        if let Some((_, record)) = &mut self.audit {
            record.client_id = Some(key.id.clone());
        }
    }

    /// Holds the call's in-flight permit until the call ends.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.permit = Some(permit);
    }

    /// Notes what the caller asked for, before it is validated, so that the record of an
    /// invalid request still says which model and how many messages.
    pub fn asked(&mut self, model: &str, messages: usize, metadata: &HashMap<String, String>) {
        self.span.record("model", model);
        if let Some((_, record)) = &mut self.audit {
            record.model = Some(model.to_owned());
            record.message_count = messages;
            record.metadata = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
    }

    /// Notes the validated request's content, when the audit records content.
    pub fn content(&mut self, request: &ChatRequest) {
        if let Some((sink, record)) = &mut self.audit
            && sink.include_content()
        {
            record.content = Some(audit_content(request));
        }
    }

    /// The call's span; the handler runs inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The call's context, as the provider call sees it.
    pub fn call(&self) -> &CallContext {
        &self.call
    }

    /// The caller's model name resolved to `route`.
    pub fn route(&mut self, route: &Route) {
        let label = route_label(route).into_owned();
        self.span.record("route", label.as_str());
        self.route = Some(label);
    }

    /// The response cache was consulted for this call and answered it (`hit`) or not. Records
    /// the hit or miss counter under the call's route and the span's `cache` field; the audit
    /// record reads it back with [`RpcRecord::cache_hit`]. Calls that never consult the cache
    /// (cache off, `x-ai-cache: bypass` or `refresh`) leave it unset.
    pub fn cache_lookup(&mut self, hit: bool) {
        let route = self.route.as_deref().unwrap_or(labels::NONE);
        self.recorder.cache_lookup(route, hit);
        self.span.record("cache", if hit { "hit" } else { "miss" });
        self.cache_hit = Some(hit);
    }

    /// Whether the response cache answered this call: `Some(true)` for a hit, `Some(false)`
    /// for a miss, `None` when the cache was not consulted.
    pub fn cache_hit(&self) -> Option<bool> {
        self.cache_hit
    }

    /// Runs the router's call in the [`CallContext`] and times it as upstream time. An answer
    /// names its provider and endpoint; a failure's are read from the call's trail when the
    /// call ends ([`CallContext::trail`]).
    pub async fn upstream<T>(
        &mut self,
        router_call: impl Future<Output = Result<Served<T>, Error>>,
    ) -> Result<Served<T>, Error> {
        let started = Instant::now();
        self.upstream_since = Some(started);
        let result = self.call.scope(router_call).await;
        self.upstream_since = None;
        *self.upstream.get_or_insert(Duration::ZERO) += started.elapsed();
        if let Ok(served) = &result {
            spans::note_provider(&self.span, served.endpoint.provider.system());
            self.span.record("provider", served.provider.as_str());
            self.provider = Some(served.provider.clone());
            self.endpoint = Some(served.endpoint.name.clone());
            self.attempts = served.attempts;
        }
        result
    }

    /// Notes a unary chat answer: its usage and the upstream model.
    pub fn answered(&mut self, usage: Option<&pb::Usage>, provider_model: &str) {
        if let Some(u) = usage {
            self.tokens = Some((u.input_tokens, u.output_tokens));
        }
        self.span.record("upstream_model", provider_model);
        if let Some((_, record)) = &mut self.audit {
            record.provider_model = Some(provider_model.to_owned());
        }
    }

    /// Ends a unary call with its result, which gets the `x-request-id` metadata.
    pub fn finish_unary<T>(
        mut self,
        result: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        match result {
            Ok(mut response) => {
                self.set_request_id(response.metadata_mut());
                self.finish(Code::Ok, None);
                Ok(response)
            }
            Err(status) => Err(self.refuse(status)),
        }
    }

    /// Ends the call with `status`, which gets the `x-request-id` metadata: a call refused
    /// before or by its handler.
    pub fn refuse(mut self, mut status: Status) -> Status {
        self.set_request_id(status.metadata_mut());
        self.finish(status.code(), Some(status.message()));
        status
    }

    /// Ends the handler part of a stream call: an error finishes the record; a stream is
    /// returned wrapped, and the record finishes when it ends.
    pub fn finish_stream(
        mut self,
        result: Result<Response<EventStream>, Status>,
    ) -> Result<Response<EventStream>, Status> {
        let mut response = match result {
            Ok(response) => response,
            Err(status) => return Err(self.refuse(status)),
        };
        self.set_request_id(response.metadata_mut());
        self.handler_done = Some(Instant::now());
        self.streaming = true;
        self.recorder.sink().gauge_add(names::STREAMS_IN_FLIGHT, &[], 1.0);
        let span = self.span.clone();
        let mut rpc = self;
        Ok(response.map(|mut inner| -> EventStream {
            Box::pin(async_stream::stream! {
                while let Some(item) = inner.next().instrument(span.clone()).await {
                    match &item {
                        Ok(event) => rpc.observe(event),
                        Err(status) => rpc.finish(status.code(), Some(status.message())),
                    }
                    yield item;
                }
                rpc.finish(Code::Ok, None);
            })
        }))
    }

    fn observe(&mut self, event: &pb::StreamChatResponse) {
        use pb::stream_chat_response::Event;
        match &event.event {
            Some(Event::ContentDelta(_) | Event::ToolCallDelta(_)) => {
                self.first_token.get_or_insert_with(|| self.start.elapsed());
            }
            Some(Event::Usage(u)) => self.tokens = Some((u.input_tokens, u.output_tokens)),
            Some(Event::Finish(f)) => {
                self.span.record("upstream_model", f.provider_model.as_str());
                if let Some((_, record)) = &mut self.audit {
                    record.provider_model = Some(f.provider_model.clone());
                }
            }
            None => {}
        }
    }

    fn set_request_id(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Ok(value) = MetadataValue::try_from(self.call.request_id()) {
            metadata.insert(REQUEST_ID, value);
        }
    }

    /// Records everything once.
    fn finish(&mut self, code: Code, error: Option<&str>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let now = Instant::now();
        // A caller that gives up at its deadline resets the call at about the moment the
        // handler would have answered DEADLINE_EXCEEDED itself; what ended the call was the
        // deadline, not a change of mind.
        if let Some(since) = self.upstream_since.take() {
            // Ended while waiting on the router (the caller left, or its deadline passed).
            *self.upstream.get_or_insert(Duration::ZERO) += now.saturating_duration_since(since);
        }
        if self.provider.is_none() {
            // Failed, or ended while an attempt was in flight: where it last went.
            let trail = self.call.trail();
            if let Some(provider) = &trail.provider {
                self.span.record("provider", provider.as_str());
            }
            self.provider = trail.provider;
            self.endpoint = trail.endpoint;
            self.attempts = trail.attempts;
        }
        let (code, error) = match self.deadline {
            Some(deadline) if code == Code::Cancelled && now + DEADLINE_SLACK >= deadline => (
                Code::DeadlineExceeded,
                Some("the caller's deadline passed before the answer was complete"),
            ),
            _ => (code, error),
        };
        let total = now.saturating_duration_since(self.start);
        let handler = self.handler_done.unwrap_or(now).saturating_duration_since(self.start);
        let upstream = self.upstream.unwrap_or_default();
        let overhead = handler.saturating_sub(upstream);
        let method = self.method.as_str();
        let route = self.route.as_deref().unwrap_or(labels::NONE);
        let provider = self.provider.as_deref().unwrap_or(labels::NONE);
        let code_name = code_name(code);

        let m = self.recorder.sink();
        let call = [(labels::METHOD, method), (labels::ROUTE, route), (labels::PROVIDER, provider)];
        let with_code = [call[0], call[1], call[2], (labels::CODE, code_name)];
        m.counter(names::REQUESTS_TOTAL, &with_code, 1);
        m.timing(names::REQUEST_DURATION_SECONDS, &call, total);
        if self.attempts > 0 {
            let labels = [(labels::METHOD, method), (labels::PROVIDER, provider)];
            m.timing(names::UPSTREAM_DURATION_SECONDS, &labels, upstream);
        }
        m.timing(names::OVERHEAD_SECONDS, &[(labels::METHOD, method)], overhead);
        let by_target = [(labels::ROUTE, route), (labels::PROVIDER, provider)];
        if let Some(ttft) = self.first_token {
            m.timing(names::TIME_TO_FIRST_TOKEN_SECONDS, &by_target, ttft);
        }
        if let Some((input, output)) = self.tokens {
            let [r, p] = by_target;
            m.counter(names::TOKENS_TOTAL, &[r, p, (labels::TYPE, "input")], input.into());
            m.counter(names::TOKENS_TOTAL, &[r, p, (labels::TYPE, "output")], output.into());
            // Signed: the trace export layer would send an unsigned value as a string.
            self.span.record("input_tokens", i64::from(input));
            self.span.record("output_tokens", i64::from(output));
        }
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[(labels::METHOD, method)], -1.0);
        if self.streaming {
            m.gauge_add(names::STREAMS_IN_FLIGHT, &[], -1.0);
        }

        self.span.record("code", code_name);
        if let Some(error) = error {
            self.span.record("error", error);
        }
        let latency_ms = total.as_secs_f64() * 1e3;
        let upstream_ms = upstream.as_secs_f64() * 1e3;
        let ttft_ms = self.first_token.map(|t| t.as_secs_f64() * 1e3);
        if let Some((sink, mut record)) = self.audit.take() {
            record.route = self.route.clone();
            record.provider = self.provider.clone();
            record.endpoint = self.endpoint.clone();
            record.attempts = self.attempts;
            record.input_tokens = self.tokens.map(|t| t.0);
            record.output_tokens = self.tokens.map(|t| t.1);
            record.cache_hit = self.cache_hit;
            record.latency_ms = latency_ms;
            record.ttft_ms = ttft_ms;
            record.code = code_name;
            record.error = error.map(str::to_owned);
            sink.submit(*record);
        }
        self.permit = None;
        self.span.in_scope(|| {
            if is_server_fault(code) {
                tracing::warn!(latency_ms, upstream_ms, ttft_ms, "rpc failed");
            } else {
                tracing::info!(latency_ms, upstream_ms, ttft_ms, "rpc finished");
            }
        });
    }
}

/// How close to the caller's deadline a cancellation counts as the deadline: the caller's
/// clock started before ours, and its reset crosses the network.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

/// An [`RpcRecord`] begun by the RPC layer and waiting for the handler, as a request extension.
/// Whoever takes it finishes it; the layer finishes one the handler never took.
#[derive(Clone, Debug)]
pub struct OpenRpc(Arc<Mutex<Option<RpcRecord>>>);

impl OpenRpc {
    /// Holds `rpc` for the handler.
    pub fn new(rpc: RpcRecord) -> Self {
        OpenRpc(Arc::new(Mutex::new(Some(rpc))))
    }

    /// The record, if nobody took it yet.
    pub fn take(&self) -> Option<RpcRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for RpcRecord {
    fn drop(&mut self) {
        // The caller went away (or the server ended the call) before an answer was complete.
        self.finish(Code::Cancelled, Some("the call ended before its answer was complete"));
    }
}

/// Codes that point at the gateway or its upstreams rather than at the caller.
fn is_server_fault(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Internal | Code::Unknown | Code::DataLoss)
}

/// The canonical name of a gRPC code, as the `code` label shows it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The messages of a request as the audit record shows them (redacted when written); images
/// are noted, not copied.
fn audit_content(request: &ChatRequest) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = request
        .messages
        .iter()
        .map(|m| {
            let parts: Vec<serde_json::Value> = m
                .content
                .iter()
                .map(|p| match p {
                    ContentPart::Text(t) => serde_json::Value::String(t.clone()),
                    ContentPart::Image(_) => serde_json::json!({"image": true}),
                })
                .collect();
            serde_json::json!({"role": m.role.as_str(), "content": parts})
        })
        .collect();
    serde_json::Value::Array(messages)
}
