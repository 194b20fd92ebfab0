//! The `aiservice.v1.ChatService` handler: validates a call into the domain types, resolves
//! its route, calls the router and turns the answer (or the error) back into protobuf.
//!
//! Streams are relayed as they arrive, with the ordering the API promises: deltas, then one
//! usage event (estimated when the provider gave none, as for a unary answer), then finish. A provider stream that
//! ends without its finish event ends the gRPC stream with UNAVAILABLE, never cleanly.

use std::{pin::Pin, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use tokio::{sync::Semaphore, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{
    audit::AuditSink,
    auth::ClientIdentity,
    cache::{CacheMode, CallCache, ResponseCache},
    chat::{self, ChatEvent, ChatRequest, ContentPart, FinishReason, ImageSource, Usage},
    config::{ClientKey, Limits},
    error::Error,
    limits::RateLimiter,
    metrics::{
        Method, Recorder,
        rpc::{OpenRpc, RpcRecord},
    },
    proto::v1::{self as pb, chat_service_server::ChatService},
    provider::{ProviderError, ProviderErrorKind, estimate_tokens, estimate_usage},
    router::{Outcome, Primed, Route, Router, Served},
    validate,
};

/// The chat service handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct ChatHandler {
    router: Arc<ArcSwap<Router>>,
    default_timeout: Duration,
    stop: CancellationToken,
    metrics: Recorder,
    audit: Option<AuditSink>,
    limits: Limits,
    in_flight: Arc<Semaphore>,
    cache: Option<Arc<ResponseCache>>,
    limiter: Option<Arc<RateLimiter>>,
}

impl ChatHandler {
    /// A handler over `router`. Calls without a `grpc-timeout` get `default_timeout`; calls
    /// still running when `stop` is cancelled end with UNAVAILABLE (the grace period is over).
    pub fn new(router: Arc<Router>, default_timeout: Duration, stop: CancellationToken) -> Self {
        let limits = Limits::default();
        ChatHandler {
            router: Arc::new(ArcSwap::new(router)),
            default_timeout,
            stop,
            metrics: Recorder::default(),
            audit: None,
            cache: None,
            limiter: None,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
        }
    }

    /// Reading its router from `router`, which a configuration reload swaps.
    pub fn with_shared_router(mut self, router: Arc<ArcSwap<Router>>) -> Self {
        self.router = router;
        self
    }

    /// With an audit record for every call.
    pub fn with_audit(mut self, audit: AuditSink) -> Self {
        self.audit = Some(audit);
        self
    }

    /// With these request limits (messages per request, calls in flight).
    pub fn with_limits(mut self, limits: &Limits) -> Self {
        self.in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
        self.limits = limits.clone();
        self
    }

    /// The call's record: the one the RPC layer began when its headers arrived, or else (the
    /// chat service mounted without that layer) one begun here, after waiting for room in the
    /// audit queue.
    async fn open<T>(&self, method: Method, request: &Request<T>) -> RpcRecord {
        let begun = request.extensions().get::<OpenRpc>().and_then(OpenRpc::take);
        let mut rpc = match begun {
            Some(rpc) => rpc,
            None => {
                if let Some(audit) = &self.audit {
                    audit.admit().await;
                }
                let mut rpc = self.metrics.begin_rpc(method, request.metadata().as_ref());
                if let Some(audit) = &self.audit {
                    rpc.audit(audit, request.metadata().as_ref());
                }
                rpc
            }
        };
        if let Some(ClientIdentity(key)) = request.extensions().get::<ClientIdentity>() {
            rpc.client(key);
        }
        rpc
    }

    /// Takes a place under the in-flight limit for the call, or sheds it.
    fn take_place(&self, rpc: &mut RpcRecord) -> Result<(), Status> {
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                rpc.hold(permit);
                Ok(())
            }
            Err(_) => Err(Error::Overloaded { limit: self.limits.max_in_flight }.into()),
        }
    }

    /// PERMISSION_DENIED unless the caller's key may call `route`; RESOURCE_EXHAUSTED when
    /// the key is over its request rate. Anonymous calls (no keys configured) pass.
    async fn authorize(&self, client: Option<&ClientKey>, route: &str) -> Result<(), Error> {
        let Some(key) = client else { return Ok(()) };
        if !key.may_call(route) {
            return Err(Error::PermissionDenied { route: route.to_owned() });
        }
        match &self.limiter {
            Some(limiter) => {
                limiter.check_request(&key.id, &key.limits()).await.map_err(Error::from)
            }
            None => Ok(()),
        }
    }

    /// Counts a finished call's tokens against its key's token rate.
    async fn charge(&self, key: &ClientKey, usage: &pb::Usage) {
        if let Some(limiter) = &self.limiter {
            limiter.add_tokens(&key.id, u64::from(usage.total_tokens), &key.limits()).await;
        }
    }

    /// `stream`, counting its tokens against `key` when its usage event passes.
    fn charged(&self, mut stream: EventStream, key: Arc<ClientKey>) -> EventStream {
        let handler = self.clone();
        Box::pin(async_stream::stream! {
            while let Some(item) = stream.next().await {
                if let Ok(pb::StreamChatResponse { event: Some(pb::stream_chat_response::Event::Usage(usage)) }) = &item {
                    handler.charge(&key, usage).await;
                }
                yield item;
            }
        })
    }

    /// With the per-client rate limiter.
    pub fn with_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The call's deadline, counted from when its headers arrived (the moment tonic starts
    /// its own `grpc-timeout` timer), not from when the body was decoded.
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        let arrived = request.extensions().get::<Arrival>().map_or_else(Instant::now, |a| a.0);
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            // tonic's own timer for the same header ends the call with a bare CANCELLED; ending
            // a hair earlier lets the caller get our DEADLINE_EXCEEDED with its details.
            .map(|t| t.saturating_sub(DEADLINE_MARGIN))
            .unwrap_or(self.default_timeout);
        arrived + timeout
    }

    /// With the metrics every call records (none by default).
    pub fn with_metrics(mut self, metrics: Recorder) -> Self {
        self.metrics = metrics;
        self
    }

    /// With a response cache (none by default); see [`crate::cache`].
    pub fn with_cache(mut self, cache: Option<Arc<ResponseCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// Everything a call goes through before its upstream: deadline, size, cache mode,
    /// validation, route, the caller's key (routes and rate) and the cache plan.
    async fn admit(
        &self,
        rpc: &mut RpcRecord,
        request: Request<pb::ChatRequest>,
    ) -> Result<Admitted, Status> {
        let deadline = self.deadline(&request);
        let asked = request.get_ref();
        let count = asked.messages.len();
        rpc.asked(&asked.model, count, &asked.metadata);
        if count > self.limits.max_messages {
            let limit = self.limits.max_messages;
            return Err(Error::invalid(
                "messages",
                format!("at most {limit} messages per request, got {count}"),
            )
            .into());
        }
        let client = request.extensions().get::<ClientIdentity>().map(|c| c.0.clone());
        let mode = CacheMode::from_metadata(request.metadata())?;
        let request = validate::chat_request(request.into_inner())?;
        rpc.content(&request);
        let route = self.router.load().resolve(&request.model)?;
        rpc.route(&route);
        self.authorize(client.as_deref(), &route.name).await?;
        let cache = CallCache::new(self.cache.as_ref(), &route, &request, mode);
        Ok(Admitted { deadline, client, request, route, cache })
    }

    /// `Chat`, inside its [`RpcRecord`].
    async fn answer(
        &self,
        rpc: &mut RpcRecord,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let Admitted { deadline, client, request, route, cache } = self.admit(rpc, request).await?;
        if let Some(hit) = cache.lookup(rpc).await {
            let response = hit.into_response();
            rpc.answered(response.usage.as_ref(), &response.provider_model);
            return Ok(Response::new(response));
        }
        let served = tokio::select! {
            served = rpc.upstream(route.chat(&request, deadline)) => served?,
            () = self.stop.cancelled() => return Err(Error::Stopped.into()),
        };
        let answer = served.value;
        // A provider that reports no usage gets the same estimate as a stream without one.
        let usage = if answer.usage.total_tokens() == 0 {
            estimate_usage(&request, answer.message.output_bytes())
        } else {
            answer.usage
        };
        let response = pb::ChatResponse {
            id: answer.id,
            model: route.name.clone(),
            provider: served.provider,
            provider_model: answer.provider_model,
            message: Some(message_to_pb(answer.message)),
            finish_reason: finish_to_pb(answer.finish_reason) as i32,
            usage: Some(usage_to_pb(usage)),
        };
        rpc.answered(response.usage.as_ref(), &response.provider_model);
        cache.store(&response).await;
        if let (Some(key), Some(usage)) = (&client, &response.usage) {
            self.charge(key, usage).await;
        }
        Ok(Response::new(response))
    }

    /// `StreamChat`, inside its [`RpcRecord`].
    async fn answer_stream(
        &self,
        rpc: &mut RpcRecord,
        request: Request<pb::StreamChatRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.map(pb::ChatRequest::from);
        let Admitted { deadline, client, request, route, cache } = self.admit(rpc, request).await?;
        if let Some(hit) = cache.lookup(rpc).await {
            return Ok(Response::new(CallCache::replay(hit)));
        }
        let served = tokio::select! {
            served = rpc.upstream(route.stream(&request, deadline)) => served?,
            () = self.stop.cancelled() => return Err(Error::Stopped.into()),
        };
        let mut stream = relay(served, &request, route.name.clone(), deadline, self.stop.clone());
        if let Some(key) = client.filter(|k| k.tokens_per_minute.is_some()) {
            stream = self.charged(stream, key);
        }
        Ok(Response::new(cache.record(stream)))
    }
}

/// A call that passed every check before its upstream.
struct Admitted {
    deadline: Instant,
    client: Option<Arc<ClientKey>>,
    request: ChatRequest,
    route: Arc<Route>,
    cache: CallCache,
}

/// When a call's headers arrived; set by the server's outermost layer.
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub Instant);

impl Arrival {
    /// Stamps an incoming request with its arrival time.
    pub fn stamp<B>(mut request: http::Request<B>) -> http::Request<B> {
        request.extensions_mut().insert(Arrival(Instant::now()));
        request
    }
}

const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The stream type of `StreamChat`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamChatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ChatService for ChatHandler {
    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let mut rpc = self.open(Method::Chat, &request).await;
        if let Err(shed) = self.take_place(&mut rpc) {
            return Err(rpc.refuse(shed));
        }
        let span = rpc.span().clone();
        let result = self.answer(&mut rpc, request).instrument(span).await;
        rpc.finish_unary(result)
    }

    type StreamChatStream = EventStream;

    async fn stream_chat(
        &self,
        request: Request<pb::StreamChatRequest>,
    ) -> Result<Response<Self::StreamChatStream>, Status> {
        let mut rpc = self.open(Method::StreamChat, &request).await;
        if let Err(shed) = self.take_place(&mut rpc) {
            return Err(rpc.refuse(shed));
        }
        let span = rpc.span().clone();
        let result = self.answer_stream(&mut rpc, request).instrument(span).await;
        rpc.finish_stream(result)
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let rpc = self.open(Method::ListModels, &request).await;
        let now = Instant::now();
        let client = request.extensions().get::<ClientIdentity>().map(|c| c.0.clone());
        let router = self.router.load();
        let models: Vec<pb::Model> = router
            .routes()
            .iter()
            .filter(|route| client.as_ref().is_none_or(|c| c.may_call(&route.name)))
            .map(|route| pb::Model {
                name: route.name.clone(),
                aliases: route.aliases.clone(),
                targets: route
                    .targets
                    .iter()
                    .map(|t| pb::Target {
                        provider: t.provider.clone(),
                        model: t.model.clone(),
                        available: t.pool.is_available(now, &t.model),
                    })
                    .collect(),
                available: route.is_available(now),
            })
            .collect();
        rpc.finish_unary(Ok(Response::new(pb::ListModelsResponse { models })))
    }
}

fn event(event: pb::stream_chat_response::Event) -> pb::StreamChatResponse {
    pb::StreamChatResponse { event: Some(event) }
}

/// Relays a committed provider stream to the caller in the order the API promises, until it
/// ends, the deadline passes (DEADLINE_EXCEEDED) or `stop` ends it (UNAVAILABLE). A failure
/// after the commit also counts against the endpoint's health.
fn relay(
    served: Served<Primed>,
    request: &ChatRequest,
    route: String,
    deadline: Instant,
    stop: CancellationToken,
) -> EventStream {
    let estimate = estimate_usage(request, 0);
    let Served { value: Primed { head, mut rest }, provider, model, endpoint, .. } = served;
    let mut head = head.into_iter();
    Box::pin(async_stream::stream! {
        use pb::stream_chat_response::Event;
        let mut usage: Option<Usage> = None;
        let mut output_bytes = 0usize;
        loop {
            let item = match head.next() {
                Some(event) => Some(Ok(event)),
                None => tokio::select! {
                    item = rest.next() => item,
                    () = tokio::time::sleep_until(deadline) => {
                        yield Err(Status::from(Error::DeadlineExceeded("the stream did not finish within the deadline".into())));
                        return;
                    }
                    () = stop.cancelled() => {
                        yield Err(Status::from(Error::Stopped));
                        return;
                    }
                },
            };
            let Some(item) = item else { break };
            match item {
                Ok(ChatEvent::ContentDelta(text)) => {
                    output_bytes += text.len();
                    yield Ok(event(Event::ContentDelta(pb::ContentDelta { text })));
                }
                Ok(ChatEvent::ToolCallDelta(d)) => {
                    output_bytes += d.arguments.len();
                    yield Ok(event(Event::ToolCallDelta(pb::ToolCallDelta {
                        index: d.index,
                        id: d.id.unwrap_or_default(),
                        name: d.name.unwrap_or_default(),
                        arguments_delta: d.arguments,
                    })));
                }
                Ok(ChatEvent::Usage(u)) => usage = Some(u),
                Ok(ChatEvent::Finish { reason, id, provider_model }) => {
                    let usage = usage.unwrap_or(Usage {
                        output_tokens: estimate_tokens(output_bytes),
                        ..estimate
                    });
                    yield Ok(event(Event::Usage(usage_to_pb(usage))));
                    yield Ok(event(Event::Finish(pb::Finish {
                        reason: finish_to_pb(reason) as i32,
                        id,
                        model: route,
                        provider,
                        provider_model,
                    })));
                    return;
                }
                Err(err) => {
                    endpoint.report(&model, Outcome::of_error(&err));
                    yield Err(Status::from(Error::from(err)));
                    return;
                }
            }
        }
        endpoint.report(&model, Outcome::Failure);
        let cut = ProviderError::new(provider, ProviderErrorKind::StreamCut, "the stream ended before its finish event");
        yield Err(Status::from(Error::from(cut)));
    })
}

fn message_to_pb(m: chat::Message) -> pb::Message {
    let role = match m.role {
        chat::Role::System => pb::Role::System,
        chat::Role::User => pb::Role::User,
        chat::Role::Assistant => pb::Role::Assistant,
        chat::Role::Tool => pb::Role::Tool,
    };
    pb::Message {
        role: role as i32,
        content: m
            .content
            .into_iter()
            .map(|part| pb::ContentPart {
                part: Some(match part {
                    ContentPart::Text(text) => pb::content_part::Part::Text(text),
                    ContentPart::Image(image) => pb::content_part::Part::Image(pb::Image {
                        source: Some(match image.source {
                            ImageSource::Url(url) => pb::image::Source::Url(url),
                            ImageSource::Data(data) => pb::image::Source::Data(data.to_vec()),
                        }),
                        mime_type: image.mime_type.unwrap_or_default(),
                        detail: pb::ImageDetail::Unspecified as i32,
                    }),
                }),
            })
            .collect(),
        name: m.name.unwrap_or_default(),
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| pb::ToolCall { id: c.id, name: c.name, arguments_json: c.arguments })
            .collect(),
        tool_call_id: m.tool_call_id.unwrap_or_default(),
    }
}

fn finish_to_pb(reason: FinishReason) -> pb::FinishReason {
    match reason {
        FinishReason::Stop => pb::FinishReason::Stop,
        FinishReason::Length => pb::FinishReason::Length,
        FinishReason::ToolCalls => pb::FinishReason::ToolCalls,
        FinishReason::ContentFilter => pb::FinishReason::ContentFilter,
        FinishReason::Other => pb::FinishReason::Other,
    }
}

fn usage_to_pb(u: Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        total_tokens: u.total_tokens(),
        cached_input_tokens: u.cached_input_tokens,
        estimated: u.estimated,
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn served(events: Vec<Result<ChatEvent, ProviderError>>) -> Served<Primed> {
        let provider = Arc::new(crate::provider::EchoProvider::new("p", Duration::ZERO));
        let policy = Arc::new(crate::config::HealthPolicy::default());
        Served {
            value: Primed { head: Vec::new(), rest: Box::pin(stream::iter(events)) },
            provider: "p".into(),
            model: "m".into(),
            endpoint: Arc::new(crate::router::Endpoint::new("e", 1, provider, policy)),
            attempts: 1,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![chat::Message::text(chat::Role::User, "12345678")],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_stream_cut_before_finish_ends_with_unavailable() {
        let upstream = served(vec![Ok(ChatEvent::ContentDelta("par".into()))]);
        let out: Vec<_> = relay(upstream, &request(), "r".into(), far(), CancellationToken::new())
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let status = out[1].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("before its finish event"));
    }

    #[tokio::test]
    async fn missing_usage_is_estimated_and_comes_before_finish() {
        let upstream = served(vec![
            Ok(ChatEvent::ContentDelta("abcd".into())),
            Ok(ChatEvent::Finish {
                reason: FinishReason::Stop,
                id: "x".into(),
                provider_model: "m".into(),
            }),
        ]);
        let out: Vec<_> = relay(upstream, &request(), "r".into(), far(), CancellationToken::new())
            .map(Result::unwrap)
            .collect()
            .await;
        use pb::stream_chat_response::Event;
        match &out[1].event {
            Some(Event::Usage(u)) => {
                assert!(u.estimated);
                assert_eq!((u.input_tokens, u.output_tokens), (2, 1));
            }
            other => panic!("expected usage, got {other:?}"),
        }
        assert!(matches!(out[2].event, Some(Event::Finish(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
        let mut upstream = served(Vec::new());
        upstream.value.rest = Box::pin(stream::pending());
        upstream.value.head = vec![ChatEvent::ContentDelta("first".into())];
        let deadline = Instant::now() + Duration::from_secs(2);
        let out: Vec<_> =
            relay(upstream, &request(), "r".into(), deadline, CancellationToken::new())
                .collect()
                .await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_ref().unwrap_err().code(), tonic::Code::DeadlineExceeded);
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "m", "100", "123456789S", "1x", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
