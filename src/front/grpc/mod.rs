//! The gRPC front door: `aiservice.v1.ChatService` (and `EmbedService`, in [`embed`]). It translates and does nothing else:
//! protobuf into the domain request ([`crate::validate`]), the pipeline's answer, stream or
//! error back into protobuf and a `tonic::Status` (the one `From<Error> for Status`).
//!
//! The call itself is begun by the door's tower layer ([`layer`]) when its headers arrive,
//! before tonic decodes the body, so that a refusal by the decoder is recorded like any
//! other; the handler takes it from the request's extensions.

mod embed;
pub mod layer;

pub use embed::EmbedHandler;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::{
    call::{Call, Pipeline, REQUEST_ID, ReplyStream},
    chat::{
        self, Answer, Bill, ChatRequest, ContentPart, Cost, FinishReason, ImageSource, ReplyEvent,
        Usage,
    },
    error::Error,
    metrics::Method,
    proto::v1::{self as pb, chat_service_server::ChatService},
    router::ModelInfo,
    validate,
};

/// The chat service of the gRPC port; cheap to clone.
#[derive(Clone, Debug)]
pub struct ChatHandler {
    pipeline: Pipeline,
}

impl ChatHandler {
    /// The gRPC front door of `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        ChatHandler { pipeline }
    }

    async fn open<T>(&self, method: Method, request: &Request<T>) -> Result<Call, Status> {
        open(&self.pipeline, method, request).await
    }

    /// The domain request of `request`, or the call refused as invalid.
    fn understand(mut call: Call, request: pb::ChatRequest) -> Result<(Call, ChatRequest), Error> {
        if let Err(error) = call.asked(&request.model, request.messages.len(), &request.metadata) {
            return Err(call.refuse(error));
        }
        match validate::chat_request(request) {
            Ok(request) => Ok((call, request)),
            Err(error) => Err(call.refuse(error)),
        }
    }

    async fn answer(&self, call: Call, request: pb::ChatRequest) -> Result<Answer, Error> {
        let (call, request) = Self::understand(call, request)?;
        self.pipeline.chat(call, request).await
    }

    async fn answer_stream(
        &self,
        call: Call,
        request: pb::ChatRequest,
    ) -> Result<ReplyStream, Error> {
        let (call, request) = Self::understand(call, request)?;
        self.pipeline.stream(call, request).await
    }
}

/// The stream type of `StreamChat`.
pub type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::StreamChatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ChatService for ChatHandler {
    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let call = self.open(Method::Chat, &request).await?;
        let id = call.request_id().to_owned();
        // The layer runs the whole call in its span, and the pipeline enters it again for a
        // handler mounted without the layer; a third time here would only cost.
        match self.answer(call, request.into_inner()).await {
            Ok(answer) => {
                let bill = answer.bill.clone();
                let mut response = with_request_id(Response::new(answer_to_pb(answer)), &id);
                bill_metadata(&bill, response.metadata_mut());
                Ok(response)
            }
            Err(error) => Err(status(error, &id)),
        }
    }

    type StreamChatStream = EventStream;

    async fn stream_chat(
        &self,
        request: Request<pb::StreamChatRequest>,
    ) -> Result<Response<Self::StreamChatStream>, Status> {
        let call = self.open(Method::StreamChat, &request).await?;
        let id = call.request_id().to_owned();
        let request = pb::ChatRequest::from(request.into_inner());
        match self.answer_stream(call, request).await {
            Ok(stream) => Ok(with_request_id(Response::new(billed_events(stream)), &id)),
            Err(error) => Err(status(error, &id)),
        }
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let call = self.open(Method::ListModels, &request).await?;
        let id = call.request_id().to_owned();
        let models = self.pipeline.models(call).into_iter().map(model_to_pb).collect();
        Ok(with_request_id(Response::new(pb::ListModelsResponse { models }), &id))
    }
}

/// The call the layer began for `request`; or, when the service is mounted without its
/// layer, one begun (and identified) here.
async fn open<T>(
    pipeline: &Pipeline,
    method: Method,
    request: &Request<T>,
) -> Result<Call, Status> {
    if let Some(call) = request.extensions().get::<OpenCall>().and_then(OpenCall::take) {
        return Ok(call);
    }
    let headers = request.metadata().as_ref();
    let arrived = request.extensions().get::<Arrival>().map_or_else(Arrival::now, |a| a.0);
    let door = layer::front_door(request.extensions());
    let mut call = pipeline.begin(door, method, headers, arrived, grpc_timeout(headers)).await;
    match pipeline.identify(&mut call, headers) {
        Ok(()) => Ok(call),
        Err(error) => {
            let id = call.request_id().to_owned();
            Err(status(call.refuse(error), &id))
        }
    }
}

/// A call the layer began, waiting for the handler in the request's extensions. Whoever takes
/// it ends it; the layer ends one the handler never took.
#[derive(Clone, Debug)]
pub struct OpenCall(Arc<Mutex<Option<Call>>>);

impl OpenCall {
    /// Holds `call` for the handler.
    pub fn new(call: Call) -> Self {
        OpenCall(Arc::new(Mutex::new(Some(call))))
    }

    /// The call, if nobody took it yet.
    pub fn take(&self) -> Option<Call> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// When a call's headers arrived; set by the server's outermost layer, the moment tonic starts
/// its own `grpc-timeout` timer, so the call's deadline counts from there.
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub tokio::time::Instant);

impl Arrival {
    /// Stamps an incoming request with its arrival time.
    pub fn stamp<B>(mut request: http::Request<B>) -> http::Request<B> {
        request.extensions_mut().insert(Arrival(tokio::time::Instant::now()));
        request
    }

    fn now() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}

/// The caller's timeout, from its `grpc-timeout` header.
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    headers.get(&GRPC_TIMEOUT).and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout)
}

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

/// [`REQUEST_ID`] as a metadata key, made once: inserting by `&str` parses the name each time.
static REQUEST_ID_KEY: std::sync::LazyLock<tonic::metadata::AsciiMetadataKey> =
    std::sync::LazyLock::new(|| tonic::metadata::AsciiMetadataKey::from_static(REQUEST_ID));

/// `error` as the caller's `Status`, with the call's request id.
pub fn status(error: Error, request_id: &str) -> Status {
    let mut status = Status::from(error);
    if let Ok(mut value) = MetadataValue::try_from(request_id) {
        value.set_sensitive(true);
        status.metadata_mut().insert(&*REQUEST_ID_KEY, value);
    }
    status
}

pub(crate) fn with_request_id<T>(mut response: Response<T>, request_id: &str) -> Response<T> {
    if let Ok(mut value) = MetadataValue::try_from(request_id) {
        value.set_sensitive(true);
        response.metadata_mut().insert(&*REQUEST_ID_KEY, value);
    }
    response
}

pub(super) fn bill_metadata(bill: &Bill, metadata: &mut tonic::metadata::MetadataMap) {
    static KEYS: std::sync::LazyLock<[tonic::metadata::AsciiMetadataKey; 3]> =
        std::sync::LazyLock::new(|| {
            crate::front::BILL_HEADER_NAMES.map(tonic::metadata::AsciiMetadataKey::from_static)
        });
    for (i, value) in crate::front::bill_headers(bill) {
        if let Ok(mut value) = MetadataValue::try_from(value) {
            // A value of this call only: never indexed (see crate::front).
            value.set_sensitive(true);
            metadata.insert(&KEYS[i], value);
        }
    }
}

/// The stream's events in protobuf, then the bill of its finish as trailers: relayed to its
/// end first (which ends the call's record), then a final OK status that carries them.
fn billed_events(stream: ReplyStream) -> EventStream {
    Box::pin(BilledEvents { stream: Some(stream), bill: None })
}

/// The stream [`billed_events`] makes (written out, not a generator: each chunk passes
/// straight through).
struct BilledEvents {
    /// `None` once it ended or failed.
    stream: Option<ReplyStream>,
    /// The finish's bill, sent as trailers after the last event.
    bill: Option<Bill>,
}

impl futures::Stream for BilledEvents {
    type Item = Result<pb::StreamChatResponse, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        let Some(stream) = &mut this.stream else { return Poll::Ready(None) };
        let item = std::task::ready!(stream.as_mut().poll_next(cx));
        Poll::Ready(match item {
            Some(Ok(event)) => {
                if let ReplyEvent::Finish(finish) = &event {
                    this.bill = Some(finish.bill.clone());
                }
                Some(Ok(event_to_pb(event)))
            }
            Some(Err(error)) => {
                this.stream = None;
                Some(Err(Status::from(error)))
            }
            None => {
                // Ended: the record with it (dropped here), then the trailers.
                this.stream = None;
                let mut trailers = Status::ok("");
                if let Some(bill) = this.bill.take() {
                    bill_metadata(&bill, trailers.metadata_mut());
                }
                // tonic ends a stream on its first status and sends that status's metadata
                // as trailers; an OK status ends it cleanly.
                (!trailers.metadata().is_empty()).then_some(Err(trailers))
            }
        })
    }
}

fn event(event: pb::stream_chat_response::Event) -> pb::StreamChatResponse {
    pb::StreamChatResponse { event: Some(event) }
}

/// A reply event as a `StreamChat` message.
pub fn event_to_pb(e: ReplyEvent) -> pb::StreamChatResponse {
    use pb::stream_chat_response::Event;
    match e {
        ReplyEvent::ContentDelta(text) => event(Event::ContentDelta(pb::ContentDelta { text })),
        ReplyEvent::ToolCallDelta(d) => event(Event::ToolCallDelta(pb::ToolCallDelta {
            index: d.index,
            id: d.id.unwrap_or_default(),
            name: d.name.unwrap_or_default(),
            arguments_delta: d.arguments,
            signature: d.signature.unwrap_or_default(),
        })),
        ReplyEvent::ReasoningDelta(d) => event(Event::ReasoningDelta(pb::ReasoningDelta {
            text: d.text,
            signature: d.signature.unwrap_or_default(),
            redacted_data: d.redacted_data.unwrap_or_default(),
        })),
        ReplyEvent::Usage(u) => event(Event::Usage(usage_to_pb(u))),
        ReplyEvent::Finish(f) => event(Event::Finish(pb::Finish {
            reason: finish_to_pb(f.reason) as i32,
            id: f.id,
            model: f.route,
            provider: f.provider,
            provider_model: f.provider_model,
            cost: cost_to_pb(f.bill.cost.as_ref()),
        })),
    }
}

/// An answer as `Chat` returns it.
/// The cost as the API shows it; unset when unknown.
pub fn cost_to_pb(cost: Option<&Cost>) -> Option<pb::Cost> {
    cost.map(|c| pb::Cost { usd: c.usd() })
}

pub fn answer_to_pb(a: Answer) -> pb::ChatResponse {
    let cost = cost_to_pb(a.bill.cost.as_ref());
    pb::ChatResponse {
        id: a.id,
        model: a.route,
        provider: a.provider,
        provider_model: a.provider_model,
        message: Some(message_to_pb(a.message)),
        finish_reason: finish_to_pb(a.finish_reason) as i32,
        usage: Some(usage_to_pb(a.usage)),
        cost,
    }
}

fn model_to_pb(m: ModelInfo) -> pb::Model {
    pb::Model {
        name: m.name,
        aliases: m.aliases,
        targets: m
            .targets
            .into_iter()
            .map(|t| pb::Target { provider: t.provider, model: t.model, available: t.available })
            .collect(),
        available: m.available,
    }
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
        content: m.content.into_iter().filter_map(content_part_to_pb).collect(),
        name: m.name.unwrap_or_default(),
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| pb::ToolCall {
                id: c.id,
                name: c.name,
                arguments_json: c.arguments,
                signature: c.signature.unwrap_or_default(),
            })
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

pub(crate) fn usage_to_pb(u: Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        total_tokens: u.total_tokens(),
        cached_input_tokens: u.cached_input_tokens,
        estimated: u.estimated,
        cache_write_input_tokens: u.cache_write_input_tokens,
        reasoning_tokens: u.reasoning_tokens,
    }
}

/// A reply's content part as `Chat` returns it; a reply carries no cache breakpoints.
fn content_part_to_pb(part: ContentPart) -> Option<pb::ContentPart> {
    use pb::content_part::Part;
    let part = match part {
        ContentPart::Text(text) => Part::Text(text),
        ContentPart::Image(image) => Part::Image(pb::Image {
            source: Some(match image.source {
                ImageSource::Url(url) => pb::image::Source::Url(url),
                ImageSource::Data(data) => pb::image::Source::Data(data.to_vec()),
            }),
            mime_type: image.mime_type.unwrap_or_default(),
            detail: pb::ImageDetail::Unspecified as i32,
        }),
        ContentPart::Document(document) => Part::Document(pb::Document {
            source: Some(match document.source {
                chat::DocumentSource::Url(url) => pb::document::Source::Url(url),
                chat::DocumentSource::Data(data) => pb::document::Source::Data(data.to_vec()),
            }),
            mime_type: document.mime_type.unwrap_or_default(),
            title: document.title.unwrap_or_default(),
        }),
        ContentPart::Reasoning(r) => Part::Reasoning(pb::Reasoning {
            text: r.text,
            signature: r.signature.unwrap_or_default(),
            redacted_data: r.redacted_data.unwrap_or_default(),
        }),
        ContentPart::CacheBreakpoint(_) => return None,
    };
    Some(pb::ContentPart { part: Some(part), cache_control: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_call_values_are_sent_never_indexed() {
        let bill = crate::chat::Bill {
            cost: Some(crate::chat::Cost {
                picousd: 4_500_000,
                estimated: false,
                priced_as: "m".into(),
            }),
            left: Some(crate::chat::BudgetLeft {
                picousd: Some(2_000_000_000_000),
                tokens: Some(7),
            }),
        };
        let mut response = with_request_id(Response::new(()), "req-1");
        bill_metadata(&bill, response.metadata_mut());
        let status = status(crate::Error::Unauthenticated("no key"), "req-2");
        let mut trailers = Status::ok("");
        bill_metadata(&bill, trailers.metadata_mut());
        for (metadata, names) in [
            (
                response.metadata(),
                &[
                    "x-request-id",
                    "x-ai-cost-usd",
                    "x-ai-budget-remaining-usd",
                    "x-ai-budget-remaining-tokens",
                ][..],
            ),
            (status.metadata(), &["x-request-id"][..]),
            (
                trailers.metadata(),
                &["x-ai-cost-usd", "x-ai-budget-remaining-usd", "x-ai-budget-remaining-tokens"][..],
            ),
        ] {
            for name in names {
                let value = metadata.get(*name).unwrap_or_else(|| panic!("{name} missing"));
                assert!(value.is_sensitive(), "{name} would go into HPACK's table");
            }
        }
        assert_eq!(response.metadata().get("x-ai-budget-remaining-tokens").unwrap(), "7");
        assert_eq!(response.metadata().get("x-request-id").unwrap(), "req-1");
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
