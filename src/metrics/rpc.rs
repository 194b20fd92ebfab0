//! One RPC as the telemetry sees it: its span, its [`CallContext`], and the signals recorded
//! when it ends.
//!
//! The chat handler begins an [`RpcRecord`] when a call arrives, tells it the route and runs
//! the router through [`RpcRecord::upstream`], then hands it the result
//! ([`RpcRecord::finish_unary`], or [`RpcRecord::finish_stream`] which records when the
//! stream ends). A record dropped before it finished (the caller went away) counts as
//! `CANCELLED`. Finishing records, at once: the request counter, the latency, upstream,
//! overhead and time-to-first-token histograms, tokens, the in-flight gauges, and one log
//! event in the call's span.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use tonic::{Code, Response, Status, metadata::MetadataValue};
use tracing::{Instrument, Span, field::Empty};

use super::{Method, Recorder, labels, names, route_label};
use tokio::sync::OwnedSemaphorePermit;
use tonic::metadata::MetadataMap;

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
    provider: Option<String>,
    /// Time spent awaiting the router; `None` when the call never reached it.
    upstream: Option<Duration>,
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
    /// Begins recording a call of `method` with `metadata`.
    pub fn begin_rpc(&self, method: Method, metadata: &tonic::metadata::MetadataMap) -> RpcRecord {
        let call = CallContext::from_metadata(metadata);
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
            upstream: None,
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
    /// metadata says: the client key, the audited caller headers.
    pub fn audit(&mut self, sink: &AuditSink, client: Option<&ClientKey>, metadata: &MetadataMap) {
        let record = AuditRecord {
            request_id: self.call.request_id().to_owned(),
            method: self.method.as_str(),
            client_id: client.map(|c| c.id.clone()),
            caller: caller_headers(sink.headers(), metadata),
            ..AuditRecord::default()
        };
        self.audit = Some((sink.clone(), Box::new(record)));
    }

    /// Holds the call's in-flight permit until the call ends.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.permit = Some(permit);
    }

    /// Notes what the validated request says, for the audit record.
    pub fn request(&mut self, request: &ChatRequest) {
        if let Some((sink, record)) = &mut self.audit {
            record.model = Some(request.model.clone());
            record.message_count = request.messages.len();
            record.metadata = request.metadata.clone();
            if sink.include_content() {
                record.content = Some(audit_content(request));
            }
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
    pub fn route(&mut self, model: &str, route: &Route) {
        let label = route_label(route).into_owned();
        self.span.record("model", model);
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

    /// Runs the router's call in the [`CallContext`] and times it as upstream time.
    pub async fn upstream<T>(
        &mut self,
        router_call: impl Future<Output = Result<Served<T>, Error>>,
    ) -> Result<Served<T>, Error> {
        let started = Instant::now();
        let result = self.call.scope(router_call).await;
        *self.upstream.get_or_insert(Duration::ZERO) += started.elapsed();
        if let Some((_, record)) = &mut self.audit {
            match &result {
                Ok(served) => {
                    record.endpoint = Some(served.endpoint.name.clone());
                    record.attempts = served.attempts;
                }
                Err(Error::Exhausted { attempts, .. }) => {
                    record.attempts = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
                    record.endpoint = attempts.last().map(|a| a.endpoint.clone());
                }
                Err(Error::Provider(_)) => record.attempts = 1,
                Err(_) => {}
            }
        }
        if let Ok(served) = &result {
            spans::note_provider(&self.span, served.endpoint.provider.system());
        }
        let provider = match &result {
            Ok(served) => Some(served.provider.as_str()),
            Err(Error::Provider(err)) => Some(err.provider.as_str()),
            Err(_) => None,
        };
        if let Some(provider) = provider {
            self.span.record("provider", provider);
            self.provider = Some(provider.to_owned());
        }
        result
    }

    /// Ends a unary call with its result, which gets the `x-request-id` metadata.
    pub fn finish_unary(
        mut self,
        result: Result<Response<pb::ChatResponse>, Status>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        match result {
            Ok(mut response) => {
                let reply = response.get_ref();
                if let Some(u) = &reply.usage {
                    self.tokens = Some((u.input_tokens, u.output_tokens));
                }
                self.span.record("upstream_model", reply.provider_model.as_str());
                if let Some((_, record)) = &mut self.audit {
                    record.provider_model = Some(reply.provider_model.clone());
                }
                self.set_request_id(response.metadata_mut());
                self.finish(Code::Ok, None);
                Ok(response)
            }
            Err(mut status) => {
                self.set_request_id(status.metadata_mut());
                self.finish(status.code(), Some(status.message()));
                Err(status)
            }
        }
    }

    /// Ends the handler part of a stream call: an error finishes the record; a stream is
    /// returned wrapped, and the record finishes when it ends.
    pub fn finish_stream(
        mut self,
        result: Result<Response<EventStream>, Status>,
    ) -> Result<Response<EventStream>, Status> {
        let mut response = match result {
            Ok(response) => response,
            Err(mut status) => {
                self.set_request_id(status.metadata_mut());
                self.finish(status.code(), Some(status.message()));
                return Err(status);
            }
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
        if self.upstream.is_some() {
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
