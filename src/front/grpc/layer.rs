//! The gRPC front door's tower layer: begins every `aiservice.v1.ChatService` and
//! `aiservice.v1.EmbedService` call in the pipeline as its headers arrive, before its body is
//! decoded, and identifies its caller.
//!
//! The call goes to the handler through the request's extensions ([`OpenCall`]): the handler
//! takes it and the pipeline ends it. A call refused here (no or wrong client key) ends here.
//! When the handler never took the call, tonic refused it before the handler ran: a request
//! over `server.max_request_bytes` or bytes that are no protobuf. The layer then ends the call
//! with that refusal, after giving it the `ErrorInfo` every error carries: `REQUEST_TOO_LARGE`
//! (OUT_OF_RANGE) or `MALFORMED_REQUEST` (INVALID_ARGUMENT).
//!
//! A call that came in over gRPC-Web reaches this layer already translated to gRPC, marked
//! with [`FrontDoor::GrpcWeb`] ([`crate::front::grpc_web`]), and is recorded under that door.
//!
//! Other services (health, reflection) pass through untouched.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::{Code, Status, server::NamedService};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{Arrival, OpenCall, grpc_timeout, status};
use crate::{
    call::{Call, Pipeline},
    error::Error,
    metrics::{FrontDoor, Method},
};

/// Adds [`Rpc`] to the chat and embeddings services.
#[derive(Clone, Debug)]
pub struct RpcLayer {
    pipeline: Pipeline,
    max_request_bytes: usize,
}

impl RpcLayer {
    /// Begins calls in `pipeline`; `max_request_bytes` is the decoder's limit, for the refusal
    /// of a larger request.
    pub fn new(pipeline: Pipeline, max_request_bytes: usize) -> Self {
        RpcLayer { pipeline, max_request_bytes }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rpc { inner, layer: self.clone() }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Rpc<S> {
    inner: S,
    layer: RpcLayer,
}

impl<S: NamedService> NamedService for Rpc<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Rpc<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let Some(method) = Method::from_path(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready serves this call; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let headers = request.headers();
            let arrived = request
                .extensions()
                .get::<Arrival>()
                .map_or_else(tokio::time::Instant::now, |a| a.0);
            let pipeline = &layer.pipeline;
            let door = front_door(request.extensions());
            let mut call =
                pipeline.begin(door, method, headers, arrived, grpc_timeout(headers)).await;
            if let Err(error) = pipeline.identify(&mut call, headers) {
                let id = call.request_id().to_owned();
                return Ok(status(call.refuse(error), &id).into_http());
            }
            let span = call.span().clone();
            let open = OpenCall::new(call);
            request.extensions_mut().insert(open.clone());
            let response = inner.call(request).instrument(span).await?;
            Ok(match open.take() {
                None => response,
                Some(call) => refused(call, response, layer.max_request_bytes),
            })
        })
    }
}

/// The door a call came in by: gRPC-Web when its door marked it so
/// ([`crate::front::grpc_web`]), else gRPC.
pub fn front_door(extensions: &http::Extensions) -> FrontDoor {
    extensions.get::<FrontDoor>().copied().unwrap_or(FrontDoor::Grpc)
}

/// Ends a call the handler never saw with the refusal it got.
fn refused<B: Default>(call: Call, response: Response<B>, max_request_bytes: usize) -> Response<B> {
    let found =
        response.extensions().get::<Status>().cloned().or_else(|| grpc_status(response.headers()));
    let Some(refusal) = found else {
        // An answer that is no refusal (nothing of ours answers so): recorded as it came.
        call.end_with(Code::Ok, "");
        return response;
    };
    let id = call.request_id().to_owned();
    let error = match refusal.code() {
        Code::OutOfRange => Error::RequestTooLarge {
            limit: max_request_bytes,
            detail: refusal.message().to_owned(),
        },
        // The caller went away while sending its request: nobody is left to tell.
        Code::Cancelled | Code::DeadlineExceeded => {
            call.end_with(refusal.code(), refusal.message());
            return response;
        }
        _ => Error::MalformedRequest(refusal.message().to_owned()),
    };
    status(call.refuse(error), &id).into_http()
}

/// The status of a trailers-only response, read without tonic's parser, which panics on a
/// malformed details header.
fn grpc_status(headers: &http::HeaderMap) -> Option<Status> {
    // Names, not `&str`: a look-up by text parses the name first (this runs on every answer).
    static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    static GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");
    let code = Code::from_bytes(headers.get(&GRPC_STATUS)?.as_bytes());
    let message = headers
        .get(&GRPC_MESSAGE)
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some(Status::new(code, message))
}
