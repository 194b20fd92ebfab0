//! A call as the telemetry sees it: its span, its [`CallContext`], and everything recorded
//! when it ends, whatever the front door and however it ends.
//!
//! [`super::Pipeline::begin`] opens a [`CallRecord`] when a call's headers arrive. The steps
//! of the pipeline tell it what was asked, the client, the route, the cache lookup and the
//! upstream result; a unary call ends with [`CallRecord::finish_ok`] or
//! [`CallRecord::fail`], a stream is wrapped by [`CallRecord::relay`] and ends with its last
//! event. A record dropped before it finished
//! (the caller went away) counts as `CANCELLED`, or as `DEADLINE_EXCEEDED` when the caller's
//! deadline had passed. Finishing emits, at once, the call's metrics
//! ([`Recorder::call_finished`]), its one audit record and its one log event in the span.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Code;
use tracing::{Span, field::Empty};

use super::CallContext;
use crate::{
    audit::{AuditRecord, AuditSink, caller_headers},
    chat::{Bill, ChatRequest, ContentPart, Cost, ReplyEvent, Usage},
    config::ClientKey,
    error::Error,
    metrics::{CallSignals, FrontDoor, Method, Recorder, Tokens, code_name, labels},
    router::{Route, Served},
    telemetry::spans,
};

/// The stream [`CallRecord::relay`] returns: each event passes straight through (a stream
/// written out, not a generator: no slot to hand each event through, on every chunk).
pub struct Relayed<S> {
    stream: spans::InSpan<S>,
    /// The call's record; `None` once the stream ended, and the record with it.
    record: Option<CallRecord>,
}

impl<S> Stream for Relayed<S>
where
    S: Stream<Item = Result<ReplyEvent, Error>> + Unpin,
{
    type Item = Result<ReplyEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(record) = &mut this.record else { return Poll::Ready(None) };
        let item = std::task::ready!(Pin::new(&mut this.stream).poll_next(cx));
        match &item {
            Some(Ok(event)) => record.observe(event),
            // The record ends with the first error; what follows records nothing more.
            Some(Err(error)) => record.fail(error),
            None => {
                record.end(Code::Ok, None);
                this.record = None;
            }
        }
        Poll::Ready(item)
    }
}

/// How close to the caller's deadline a cancellation counts as the deadline: the caller's
/// clock started before ours, and its reset crosses the network.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

/// One call being served; see the module docs.
#[derive(Debug)]
pub struct CallRecord {
    recorder: Recorder,
    front_door: FrontDoor,
    method: Method,
    context: CallContext,
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
    /// The caller's deadline, when it gave one: a call that ends cancelled after it passed
    /// is recorded as `DEADLINE_EXCEEDED`.
    deadline: Option<Instant>,
    /// When a stream began relaying; the rest of a stream's time is the caller's pace and the
    /// upstream's, not the gateway's overhead.
    relaying_since: Option<Instant>,
    first_token: Option<Duration>,
    tokens: Option<Usage>,
    /// Whether the response cache answered; `None` when the call was not cacheable.
    cache_hit: Option<bool>,
    /// The client key's id, when the call presented one.
    client_key: Option<String>,
    /// The answered call's bill.
    bill: Option<Bill>,
    finished: bool,
    /// Where the call's audit record goes, and the record so far.
    audit: Option<(AuditSink, Box<AuditRecord>)>,
    /// The call's place under the in-flight limit, held until it ends.
    permit: Option<OwnedSemaphorePermit>,
}

impl CallRecord {
    /// Begins recording a call of `method` through `front_door` with these request headers,
    /// writing an audit record to `audit` when it ends.
    pub fn begin(
        recorder: &Recorder,
        front_door: FrontDoor,
        method: Method,
        headers: &http::HeaderMap,
        audit: Option<&AuditSink>,
    ) -> CallRecord {
        let context = CallContext::from_headers(headers);
        let span = tracing::info_span!(
            spans::RPC,
            request_id = %context.request_id(),
            front_door = front_door.as_str(),
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
        if let Some(trace) = context.trace() {
            span.record("trace_id", trace.trace_id_hex().as_str());
        }
        spans::join_trace(&span, &context);
        recorder.call_started(method);
        let audit = audit.map(|sink| {
            let record = AuditRecord {
                request_id: context.request_id().to_owned(),
                front_door: front_door.as_str(),
                method: method.as_str(),
                caller: caller_headers(sink.headers(), headers),
                ..AuditRecord::default()
            };
            (sink.clone(), Box::new(record))
        });
        CallRecord {
            recorder: recorder.clone(),
            front_door,
            method,
            context,
            span,
            start: Instant::now(),
            route: None,
            provider: None,
            endpoint: None,
            attempts: 0,
            upstream: None,
            upstream_since: None,
            deadline: None,
            relaying_since: None,
            first_token: None,
            tokens: None,
            cache_hit: None,
            client_key: None,
            bill: None,
            finished: false,
            audit,
            permit: None,
        }
    }

    /// The caller's deadline: a call still unanswered when it passes ends as
    /// `DEADLINE_EXCEEDED` in the record, even when the caller's going away ended it first.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// The call is a `method` after all: the HTTP doors begin every call as `Chat` when its
    /// headers arrive, and learn from the body's `stream` field whether it is a stream.
    pub fn set_method(&mut self, method: Method) {
        if self.method == method || self.finished {
            return;
        }
        self.recorder.call_became(self.method, method);
        self.method = method;
        self.span.record("method", method.as_str());
        if let Some((_, record)) = &mut self.audit {
            record.method = method.as_str();
        }
    }

    /// The client key the call presented.
    pub fn client(&mut self, key: &ClientKey) {
        self.client_key = Some(key.id.clone());
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

    /// Notes an `Embed` request's inputs, when the audit records content.
    pub fn embed_content(&mut self, request: &crate::embed::EmbedRequest) {
        if let Some((sink, record)) = &mut self.audit
            && sink.include_content()
        {
            record.content = Some(serde_json::json!({ "inputs": request.inputs }));
        }
    }

    /// The call's span; everything done for the call runs inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The call's context, as the provider call sees it.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// The caller's model name resolved to `route`.
    pub fn route(&mut self, route: &Route) {
        let label = route.label().into_owned();
        self.span.record("route", label.as_str());
        self.route = Some(label);
    }

    /// The response cache was consulted for this call and answered it (`hit`) or not. Records
    /// the hit or miss counter under the call's route, the span's `cache` field and the audit
    /// record's `cache_hit`. Calls that never consult the cache (cache off, `x-ai-cache:
    /// bypass` or `refresh`) leave it unset.
    pub fn cache_lookup(&mut self, hit: bool) {
        let route = self.route.as_deref().unwrap_or(labels::NONE);
        self.recorder.cache_lookup(route, hit);
        self.span.record("cache", if hit { "hit" } else { "miss" });
        self.cache_hit = Some(hit);
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
        let result = self.context.scope(router_call).await;
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

    /// Notes a complete answer: its usage and the upstream model.
    pub fn answered(&mut self, usage: &Usage, provider_model: &str) {
        self.tokens = Some(*usage);
        self.span.record("upstream_model", provider_model);
        if let Some((_, record)) = &mut self.audit {
            record.provider_model = Some(provider_model.to_owned());
        }
    }

    /// Notes an answered call's bill: its cost and what its key has left.
    pub fn billed(&mut self, bill: &Bill) {
        self.bill = Some(bill.clone());
    }

    /// Ends the call: answered.
    pub fn finish_ok(mut self) {
        self.end(Code::Ok, None);
    }

    /// Ends the call with `error` (what follows records nothing more).
    pub fn fail(&mut self, error: &Error) {
        if let Error::Internal(detail) = error {
            self.span.in_scope(|| tracing::error!(error = %detail, "internal error"));
        }
        self.end(error.code(), Some(&error.public_message()));
    }

    /// Ends the call with a status that is no [`Error`] of ours (a refusal by the transport
    /// before the call was understood, such as a caller that reset it mid-request).
    pub fn end_with(mut self, code: Code, message: &str) {
        self.end(code, (!message.is_empty()).then_some(message));
    }

    /// Relays `stream`, recording its time to first token and usage, and ends the call with
    /// its last event: `OK` after its finish, the error it failed with, or `CANCELLED`
    /// (`DEADLINE_EXCEEDED` past the deadline) when the caller dropped it.
    pub fn relay<S>(mut self, stream: S) -> Relayed<S>
    where
        S: Stream<Item = Result<ReplyEvent, Error>> + Unpin,
    {
        self.relaying_since = Some(Instant::now());
        self.recorder.stream_started();
        Relayed { stream: spans::InSpan::new(self.span.clone(), stream), record: Some(self) }
    }

    fn observe(&mut self, event: &ReplyEvent) {
        match event {
            ReplyEvent::ContentDelta(_)
            | ReplyEvent::ReasoningDelta(_)
            | ReplyEvent::ToolCallDelta(_) => {
                self.first_token.get_or_insert_with(|| self.start.elapsed());
            }
            ReplyEvent::Usage(u) => self.tokens = Some(*u),
            ReplyEvent::Finish(f) => {
                self.billed(&f.bill);
                self.span.record("upstream_model", f.provider_model.as_str());
                if let Some((_, record)) = &mut self.audit {
                    record.provider_model = Some(f.provider_model.clone());
                }
            }
        }
    }

    /// Records everything once.
    fn end(&mut self, code: Code, error: Option<&str>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let now = Instant::now();
        if let Some(since) = self.upstream_since.take() {
            // Ended while waiting on the router (the caller left, or its deadline passed).
            *self.upstream.get_or_insert(Duration::ZERO) += now.saturating_duration_since(since);
        }
        if self.provider.is_none() {
            // Failed, or ended while an attempt was in flight: where it last went.
            let trail = self.context.trail();
            if let Some(provider) = &trail.provider {
                self.span.record("provider", provider.as_str());
            }
            self.provider = trail.provider;
            self.endpoint = trail.endpoint;
            self.attempts = trail.attempts;
        }
        // A caller that gives up at its deadline resets the call at about the moment the
        // pipeline would have answered DEADLINE_EXCEEDED itself; what ended the call was the
        // deadline, not a change of mind.
        let (code, error) = match self.deadline {
            Some(deadline) if code == Code::Cancelled && now + DEADLINE_SLACK >= deadline => (
                Code::DeadlineExceeded,
                Some("the caller's deadline passed before the answer was complete"),
            ),
            _ => (code, error),
        };
        let total = now.saturating_duration_since(self.start);
        let handler = self.relaying_since.unwrap_or(now).saturating_duration_since(self.start);
        let upstream = self.upstream.unwrap_or_default();
        let code_name = code_name(code);
        let route = self.route.as_deref().unwrap_or(labels::NONE);
        let provider = self.provider.as_deref().unwrap_or(labels::NONE);
        self.recorder.call_finished(&CallSignals {
            front_door: self.front_door,
            method: self.method,
            route,
            provider,
            code,
            total,
            upstream: (self.attempts > 0).then_some(upstream),
            overhead: handler.saturating_sub(upstream),
            first_token: self.first_token,
            tokens: self.tokens.map(|u| Tokens {
                input: u.input_tokens,
                output: u.output_tokens,
                cache_read: u.cached_input_tokens,
                cache_write: u.cache_write_input_tokens,
                reasoning: u.reasoning_tokens,
            }),
            streamed: self.relaying_since.is_some(),
        });
        // What follows is the record's last use of them: taken, not copied.
        let cost = self.bill.take().map(|bill| bill.cost);
        if code == Code::Ok
            && self.cache_hit != Some(true)
            && let Some(cost) = &cost
        {
            let model = cost.as_ref().map_or(labels::NONE, |c| &c.priced_as);
            let client = self.client_key.as_deref().unwrap_or(labels::NONE);
            let usd = cost.as_ref().map(Cost::usd);
            self.recorder.call_cost(route, provider, model, client, usd);
        }
        if let Some(Usage { input_tokens: input, output_tokens: output, .. }) = self.tokens {
            // Signed: the trace export layer would send an unsigned value as a string.
            self.span.record("input_tokens", i64::from(input));
            self.span.record("output_tokens", i64::from(output));
        }
        self.span.record("code", code_name);
        if let Some(error) = error {
            self.span.record("error", error);
        }
        let latency_ms = total.as_secs_f64() * 1e3;
        let upstream_ms = upstream.as_secs_f64() * 1e3;
        let ttft_ms = self.first_token.map(|t| t.as_secs_f64() * 1e3);
        if let Some((sink, mut record)) = self.audit.take() {
            record.route = self.route.take();
            record.provider = self.provider.take();
            record.endpoint = self.endpoint.take();
            record.attempts = self.attempts;
            record.input_tokens = self.tokens.map(|t| t.input_tokens);
            record.output_tokens = self.tokens.map(|t| t.output_tokens);
            let part = |n: u32| (n > 0).then_some(n);
            record.cached_input_tokens = self.tokens.and_then(|t| part(t.cached_input_tokens));
            record.cache_write_input_tokens =
                self.tokens.and_then(|t| part(t.cache_write_input_tokens));
            record.reasoning_tokens = self.tokens.and_then(|t| part(t.reasoning_tokens));
            record.cache_hit = self.cache_hit;
            let cost = cost.flatten();
            record.cost_usd = cost.as_ref().map(Cost::usd);
            record.cost_estimated = cost.is_some_and(|c| c.estimated);
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

impl Drop for CallRecord {
    fn drop(&mut self) {
        // The caller went away (or the server ended the call) before an answer was complete.
        self.end(Code::Cancelled, Some("the call ended before its answer was complete"));
    }
}

/// Codes that point at the gateway or its upstreams rather than at the caller.
fn is_server_fault(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Internal | Code::Unknown | Code::DataLoss)
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
                .filter_map(|p| match p {
                    ContentPart::Text(t) => Some(serde_json::Value::String(t.clone())),
                    ContentPart::Image(_) => Some(serde_json::json!({"image": true})),
                    ContentPart::Document(_) => Some(serde_json::json!({"document": true})),
                    ContentPart::Reasoning(r) => {
                        Some(serde_json::json!({"reasoning": r.text.clone()}))
                    }
                    ContentPart::CacheBreakpoint(_) => None,
                })
                .collect();
            serde_json::json!({"role": m.role.as_str(), "content": parts})
        })
        .collect();
    serde_json::Value::Array(messages)
}
