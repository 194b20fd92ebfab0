//! The call pipeline: everything a call goes through, once, whatever front door it came in
//! by. A front door ([`crate::front`]) only translates: its wire request into a [`Call`] and a
//! domain [`ChatRequest`], and the domain outcome ([`Answer`], a [`ReplyStream`], or an
//! [`Error`]) back into its wire format.
//!
//! The steps, in order, and where each lives:
//! 1. [`Pipeline::begin`]: room in the audit queue, then the call's record ([`record`]): its
//!    request id, span, deadline and audited caller headers; from here on the call leaves
//!    exactly one audit record, one metric sample and one log line however it ends;
//! 2. [`Pipeline::identify`]: the client key (UNAUTHENTICATED);
//! 3. [`Call::asked`] by the front door: what was asked (the record keeps it, valid or not)
//!    and the messages-per-request limit ([`Call::asked_inputs`] for an `Embed` call); then
//!    the front door translates and validates;
//! 4. [`Pipeline::chat`] / [`Pipeline::stream`] / [`Pipeline::embed`]: admission
//!    ([`admission`]: in-flight limit, the key's routes, request rate and budgets), the cache
//!    mode, the route, the response cache ([`crate::cache`]), the router with its retries and
//!    failover ([`crate::router`]), then for a stream the relay ([`relay`]);
//! 5. the bill ([`bill`]): the call's cost, charged with its tokens to the key's token rate
//!    and budgets, on the answer or on the stream's finish (by the relay);
//! 6. the record ends with the answer, the last event of the stream, or the error.
//!
//! A front door runs steps 2 to 6 in the call's span ([`Call::span`]): it instruments its whole
//! handling of the call once (the gRPC layer, the HTTP doors' handlers), so the pipeline does
//! not enter the span again at every poll; a stream's relay enters it whenever it is polled.

pub mod admission;
pub mod bill;
mod context;
pub mod record;
pub mod relay;

use std::{collections::HashMap, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub use admission::Admission;
pub(crate) use context::is_usable_request_id;
pub use context::{
    CallContext, InvalidTraceParent, REQUEST_ID, REQUEST_ID_HEADER, TRACEPARENT, TRACESTATE,
    TraceParent, Trail, new_request_id,
};
pub use record::CallRecord;
pub use relay::ReplyStream;

use crate::{
    audit::AuditSink,
    auth::ClientKeys,
    cache::{CacheMode, CachedAnswer, CachedEmbeddings, CallCache, Lookup, ResponseCache},
    chat::{Answer, Bill, ChatRequest, ReplyEvent},
    config::{ClientKey, Limits},
    cost::Pricing,
    embed::{EmbedRequest, Embedded},
    error::Error,
    metrics::{FrontDoor, Method, Recorder},
    provider::estimate_usage,
    router::{ModelInfo, Route, Router},
};

/// How much earlier than the caller's deadline the pipeline gives up: tonic's own timer for
/// the same `grpc-timeout` ends the call with a bare CANCELLED; ending a hair earlier lets the
/// caller get DEADLINE_EXCEEDED with its details.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// What a [`Pipeline`] is made of.
#[derive(Debug)]
pub struct Parts {
    /// The routes in force; a configuration reload swaps them.
    pub router: Arc<ArcSwap<Router>>,
    /// The deadline of a call whose caller gave none.
    pub default_timeout: Duration,
    /// Cancelled when the shutdown grace period is over: calls still running end with
    /// UNAVAILABLE (`SERVER_STOPPED`).
    pub stop: CancellationToken,
    /// Where the metrics go.
    pub metrics: Recorder,
    /// Where the audit records go, if anywhere.
    pub audit: Option<AuditSink>,
    /// Request limits.
    pub limits: Limits,
    /// The client keys; `None` (or none configured) lets anonymous calls in.
    pub keys: Option<ClientKeys>,
    /// The response cache, when a route caches.
    pub cache: Option<Arc<ResponseCache>>,
    /// The per-key rate limiter.
    pub limiter: Option<Arc<crate::limits::RateLimiter>>,
    /// The per-key budgets.
    pub budgets: Option<Arc<crate::limits::budget::Budgets>>,
    /// The token prices in force; a configuration reload swaps them.
    pub pricing: Arc<ArcSwap<Pricing>>,
}

/// The call pipeline of a gateway; cheap to clone. See the module docs.
#[derive(Clone, Debug)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    router: Arc<ArcSwap<Router>>,
    default_timeout: Duration,
    stop: CancellationToken,
    metrics: Recorder,
    audit: Option<AuditSink>,
    max_messages: usize,
    keys: Option<ClientKeys>,
    admission: Admission,
    cache: Option<Arc<ResponseCache>>,
    pricing: Arc<ArcSwap<Pricing>>,
}

/// One call in the pipeline, from its arrival to its end; see the module docs.
#[derive(Debug)]
pub struct Call {
    record: CallRecord,
    client: Option<Arc<ClientKey>>,
    /// When the pipeline gives up on the call.
    deadline: Instant,
    cache_mode: Result<CacheMode, Error>,
    max_messages: usize,
}

impl Pipeline {
    /// A pipeline of `parts`.
    pub fn new(parts: Parts) -> Pipeline {
        Pipeline {
            inner: Arc::new(Inner {
                router: parts.router,
                default_timeout: parts.default_timeout,
                stop: parts.stop,
                metrics: parts.metrics,
                audit: parts.audit,
                max_messages: parts.limits.max_messages,
                keys: parts.keys,
                admission: Admission::new(&parts.limits, parts.limiter, parts.budgets),
                cache: parts.cache,
                pricing: parts.pricing,
            }),
        }
    }

    /// Begins a call of `method` through `front_door`, whose headers arrived at `arrived`,
    /// with the caller's `timeout` if it gave one: waits for room in the audit queue (a slow
    /// audit sink slows callers rather than losing records), then opens its record.
    pub async fn begin(
        &self,
        front_door: FrontDoor,
        method: Method,
        headers: &http::HeaderMap,
        arrived: Instant,
        timeout: Option<Duration>,
    ) -> Call {
        let inner = &self.inner;
        if let Some(audit) = &inner.audit {
            audit.admit().await;
        }
        let mut record =
            CallRecord::begin(&inner.metrics, front_door, method, headers, inner.audit.as_ref());
        let deadline = match timeout {
            Some(timeout) => {
                if let Some(at) = arrived.into_std().checked_add(timeout) {
                    record.set_deadline(at);
                }
                arrived + timeout.saturating_sub(DEADLINE_MARGIN)
            }
            None => arrived + inner.default_timeout,
        };
        Call {
            record,
            client: None,
            deadline,
            cache_mode: CacheMode::from_headers(headers),
            max_messages: inner.max_messages,
        }
    }

    /// Identifies the caller by the client key in `headers` (`authorization: Bearer` or
    /// `x-api-key`); UNAUTHENTICATED when keys are required and it sent none or an unknown
    /// one. Anonymous calls pass when no keys are configured.
    pub fn identify(&self, call: &mut Call, headers: &http::HeaderMap) -> Result<(), Error> {
        let Some(keys) = self.inner.keys.as_ref().filter(|k| k.required()) else {
            return Ok(());
        };
        match keys.check(headers) {
            Ok(key) => {
                call.record.client(&key);
                call.client = Some(key);
                Ok(())
            }
            Err(failure) => Err(Error::Unauthenticated(failure.message())),
        }
    }

    /// Everything before the upstream: a place under the in-flight limit, the cache mode, the
    /// route, the key's routes and rate, and the cache lookup.
    async fn admit(
        &self,
        record: &mut CallRecord,
        client: Option<&ClientKey>,
        cache_mode: Result<CacheMode, Error>,
        request: &ChatRequest,
    ) -> Result<Admitted, Error> {
        let inner = &self.inner;
        inner.admission.take_place(record)?;
        let mode = cache_mode?;
        record.content(request);
        let route = inner.router.load().resolve(&request.model)?;
        record.route(&route);
        inner.admission.authorize(client, &route.name).await?;
        let cache = CallCache::new(inner.cache.as_ref(), &route, request, mode);
        match cache.lookup::<CachedAnswer>().await {
            Lookup::Hit(hit) => {
                record.cache_lookup(true);
                return Ok(Admitted::Cached(hit));
            }
            Lookup::Miss => record.cache_lookup(false),
            Lookup::Skipped => {}
        }
        Ok(Admitted::Upstream { route, cache })
    }

    /// One complete answer to `request`, and the end of the call.
    pub async fn chat(&self, call: Call, request: ChatRequest) -> Result<Answer, Error> {
        let Call { mut record, client, deadline, cache_mode, .. } = call;
        let result = self.answer(&mut record, client, deadline, cache_mode, request).await;
        match result {
            Ok(answer) => {
                record.answered(&answer.usage, &answer.provider_model);
                record.billed(&answer.bill);
                record.finish_ok();
                Ok(answer)
            }
            Err(error) => {
                record.fail(&error);
                Err(error)
            }
        }
    }

    async fn answer(
        &self,
        record: &mut CallRecord,
        client: Option<Arc<ClientKey>>,
        deadline: Instant,
        cache_mode: Result<CacheMode, Error>,
        request: ChatRequest,
    ) -> Result<Answer, Error> {
        let inner = &self.inner;
        let (route, cache) =
            match self.admit(record, client.as_deref(), cache_mode, &request).await? {
                Admitted::Cached(hit) => {
                    return Ok(Answer { bill: bill::cached(), ..hit.into_answer() });
                }
                Admitted::Upstream { route, cache } => (route, cache),
            };
        // The attempt loop's future is large; boxed, it is not copied each time the call's own
        // future moves (a measured ~1,000 instructions per call). The upstream is polled
        // first (`biased`): its answer ends the select without a look at the stop signal.
        let served = tokio::select! {
            biased;
            served = record.upstream(Box::pin(route.chat(&request, deadline))) => served?,
            () = inner.stop.cancelled() => return Err(Error::Stopped),
        };
        let biller = self.biller(client, &served.provider, &served.model);
        let reply = served.value;
        // A provider that reports no usage gets the same estimate as a stream without one.
        let usage = if reply.usage.total_tokens() == 0 {
            estimate_usage(&request, reply.message.output_bytes())
        } else {
            reply.usage
        };
        let answer = Answer {
            id: reply.id,
            route: route.name.clone(),
            provider: served.provider,
            provider_model: reply.provider_model,
            message: reply.message,
            finish_reason: reply.finish_reason,
            usage,
            bill: Bill::default(),
        };
        cache.store(&answer).await;
        let bill = biller.bill(&answer.usage, &answer.provider_model).await;
        Ok(Answer { bill, ..answer })
    }

    /// A streamed answer to `request`; the call ends with the stream's last event.
    pub async fn stream(&self, call: Call, request: ChatRequest) -> Result<ReplyStream, Error> {
        let Call { mut record, client, deadline, cache_mode, .. } = call;
        let result = self.open_stream(&mut record, client, deadline, cache_mode, request).await;
        match result {
            Ok(stream) => Ok(Box::pin(record.relay(stream))),
            Err(error) => {
                record.fail(&error);
                Err(error)
            }
        }
    }

    async fn open_stream(
        &self,
        record: &mut CallRecord,
        client: Option<Arc<ClientKey>>,
        deadline: Instant,
        cache_mode: Result<CacheMode, Error>,
        request: ChatRequest,
    ) -> Result<ReplyStream, Error> {
        let inner = &self.inner;
        let (route, cache) =
            match self.admit(record, client.as_deref(), cache_mode, &request).await? {
                Admitted::Cached(hit) => {
                    let events = hit.replay().into_iter().map(|event| match event {
                        ReplyEvent::Finish(mut finish) => {
                            finish.bill = bill::cached();
                            Ok(ReplyEvent::Finish(finish))
                        }
                        other => Ok(other),
                    });
                    return Ok(Box::pin(futures::stream::iter(events)));
                }
                Admitted::Upstream { route, cache } => (route, cache),
            };
        let served = tokio::select! {
            biased;
            served = record.upstream(Box::pin(route.stream(&request, deadline))) => served?,
            () = inner.stop.cancelled() => return Err(Error::Stopped),
        };
        let biller = self.biller(client, &served.provider, &served.model);
        let stream = relay::relay(
            served,
            &request,
            route.name.clone(),
            deadline,
            inner.stop.clone(),
            biller,
        );
        Ok(cache.record(stream))
    }

    /// The biller of a call of `client` answered by `provider` for a target of `model`, at the
    /// prices in force now.
    fn biller(&self, client: Option<Arc<ClientKey>>, provider: &str, model: &str) -> bill::Biller {
        let inner = &self.inner;
        bill::Biller::new(
            inner.pricing.load_full(),
            inner.admission.clone(),
            client,
            provider.to_owned(),
            model.to_owned(),
        )
    }

    /// The embeddings of `request`, and the end of the call. The same steps as a unary chat
    /// call: admission, the route, the key's routes and rate, the response cache, the router
    /// with its retries and failover, then the token charge and one record.
    pub async fn embed(&self, call: Call, request: EmbedRequest) -> Result<Embedded, Error> {
        let Call { mut record, client, deadline, cache_mode, .. } = call;
        let result = self.embeddings(&mut record, client, deadline, cache_mode, request).await;
        match result {
            Ok(embedded) => {
                record.answered(&embedded.usage, &embedded.provider_model);
                record.billed(&embedded.bill);
                record.finish_ok();
                Ok(embedded)
            }
            Err(error) => {
                record.fail(&error);
                Err(error)
            }
        }
    }

    async fn embeddings(
        &self,
        record: &mut CallRecord,
        client: Option<Arc<ClientKey>>,
        deadline: Instant,
        cache_mode: Result<CacheMode, Error>,
        request: EmbedRequest,
    ) -> Result<Embedded, Error> {
        let inner = &self.inner;
        inner.admission.take_place(record)?;
        let mode = cache_mode?;
        record.embed_content(&request);
        let route = inner.router.load().resolve(&request.model)?;
        record.route(&route);
        inner.admission.authorize(client.as_deref(), &route.name).await?;
        let cache = CallCache::for_embeddings(inner.cache.as_ref(), &route, &request, mode);
        match cache.lookup::<CachedEmbeddings>().await {
            Lookup::Hit(hit) => {
                record.cache_lookup(true);
                return Ok(Embedded { bill: bill::cached(), ..hit.into_embedded() });
            }
            Lookup::Miss => record.cache_lookup(false),
            Lookup::Skipped => {}
        }
        let served = tokio::select! {
            biased;
            served = record.upstream(Box::pin(route.embed(&request, deadline))) => served?,
            () = inner.stop.cancelled() => return Err(Error::Stopped),
        };
        let biller = self.biller(client, &served.provider, &served.model);
        let reply = served.value;
        // Gemini reports no usage for embeddings: estimated, as for chat.
        let usage =
            if reply.usage.total_tokens() == 0 { request.estimate_usage() } else { reply.usage };
        let bill = biller.bill(&usage, &reply.provider_model).await;
        let embedded = Embedded {
            route: route.name.clone(),
            provider: served.provider,
            provider_model: reply.provider_model,
            vectors: reply.vectors,
            usage,
            bill,
        };
        cache.store_embeddings(&embedded).await;
        Ok(embedded)
    }

    /// The models the call's client may use, and the end of the call.
    pub fn models(&self, call: Call) -> Vec<ModelInfo> {
        let models = self.inner.router.load().models(call.client.as_deref(), Instant::now());
        call.record.finish_ok();
        models
    }

    /// The model `name` (a route or one of its aliases) if the call's client may use it, and the
    /// end of the call: OK, or `NOT_FOUND` for a name it cannot see.
    pub fn model(&self, call: Call, name: &str) -> Result<ModelInfo, Error> {
        let models = self.inner.router.load().models(call.client.as_deref(), Instant::now());
        match models.into_iter().find(|m| m.name == name || m.aliases.iter().any(|a| a == name)) {
            Some(model) => {
                call.record.finish_ok();
                Ok(model)
            }
            None => Err(call.refuse(Error::ModelNotFound { model: name.to_owned() })),
        }
    }

    /// The name of the route `model` reaches, for a front door whose stream must name it
    /// before the stream's `Finish` does (Anthropic's `message_start`).
    pub fn route_name(&self, model: &str) -> Option<String> {
        self.inner.router.load().resolve(model).ok().map(|route| route.name.clone())
    }
}

/// A call past admission.
enum Admitted {
    /// The response cache answers it.
    Cached(CachedAnswer),
    /// It goes to the route's upstreams.
    Upstream { route: Arc<Route>, cache: CallCache },
}

impl Call {
    /// Notes what the caller asked for, before the front door validates it (the record keeps
    /// it either way), and checks the messages-per-request limit.
    pub fn asked(
        &mut self,
        model: &str,
        messages: usize,
        metadata: &HashMap<String, String>,
    ) -> Result<(), Error> {
        self.record.asked(model, messages, metadata);
        if messages > self.max_messages {
            let limit = self.max_messages;
            return Err(Error::invalid(
                "messages",
                format!("at most {limit} messages per request, got {messages}"),
            ));
        }
        Ok(())
    }

    /// Notes what an `Embed` caller asked for, before the front door validates it: the
    /// model, the number of inputs (the record's message count) and the metadata. The inputs'
    /// own limit is checked by validation.
    pub fn asked_inputs(&mut self, model: &str, inputs: usize, metadata: &HashMap<String, String>) {
        self.record.asked(model, inputs, metadata);
    }

    /// The call is a `method` after all (an HTTP door reads `stream` from the body, after the
    /// call began as `Chat`).
    pub fn set_method(&mut self, method: Method) {
        self.record.set_method(method);
    }

    /// Ends the call with `error` (refused by the front door: an invalid request), and
    /// returns it for the front door to put in its shape.
    pub fn refuse(mut self, error: Error) -> Error {
        self.record.fail(&error);
        error
    }

    /// Ends the call with a status that is no [`Error`] of ours (the caller reset it while it
    /// was still sending its request).
    pub fn end_with(self, code: Code, message: &str) {
        self.record.end_with(code, message);
    }

    /// The call's request id, for the front door's response.
    pub fn request_id(&self) -> &str {
        self.record.context().request_id()
    }

    /// The call's span.
    pub fn span(&self) -> &tracing::Span {
        self.record.span()
    }
}
