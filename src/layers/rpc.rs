//! The RPC layer: begins the record of every `aiservice.v1.ChatService` call as its headers
//! arrive, before its body is decoded, so every call leaves one audit record, one metric
//! sample and one log line, whatever refuses it.
//!
//! The layer waits for room in the audit queue, opens the call's [`RpcRecord`] (its span, its
//! request id, the caller's deadline, the audited headers) and hands it to what is inside
//! through the request's extensions ([`OpenRpc`]): the handler takes it and finishes it. When
//! the handler never took it, something before the handler refused the call: the client-key
//! check ([`crate::auth::AuthLayer`]), or tonic's decoder (a request over
//! `server.max_request_bytes`, bytes that are no protobuf). The layer then finishes the record
//! with that refusal, after giving a decoder refusal the `ErrorInfo` every error carries:
//! `REQUEST_TOO_LARGE` (OUT_OF_RANGE) or `MALFORMED_REQUEST` (INVALID_ARGUMENT).
//!
//! Other services (health, reflection) pass through unrecorded.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::{Code, Status, server::NamedService};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{
    audit::AuditSink,
    error::Error,
    metrics::{
        Method, Recorder,
        rpc::{OpenRpc, RpcRecord},
    },
    service::{Arrival, parse_grpc_timeout},
};

/// Adds [`Rpc`] to the chat service.
#[derive(Clone, Debug)]
pub struct RpcLayer {
    metrics: Recorder,
    audit: Option<AuditSink>,
    max_request_bytes: usize,
}

impl RpcLayer {
    /// Records calls to `metrics` and `audit`; `max_request_bytes` is the decoder's limit, for
    /// the refusal of a larger request.
    pub fn new(metrics: Recorder, audit: Option<AuditSink>, max_request_bytes: usize) -> Self {
        RpcLayer { metrics, audit, max_request_bytes }
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
            if let Some(audit) = &layer.audit {
                audit.admit().await;
            }
            let mut rpc = layer.metrics.begin_rpc(method, request.headers());
            if let Some(audit) = &layer.audit {
                rpc.audit(audit, request.headers());
            }
            if let Some(deadline) = caller_deadline(&request) {
                rpc.set_deadline(deadline);
            }
            let span = rpc.span().clone();
            let open = OpenRpc::new(rpc);
            request.extensions_mut().insert(open.clone());
            let response = inner.call(request).instrument(span).await?;
            Ok(match open.take() {
                None => response,
                Some(rpc) => refused(rpc, response, layer.max_request_bytes),
            })
        })
    }
}

/// When the caller's deadline passes: its `grpc-timeout` counted from the headers' arrival.
fn caller_deadline<B>(request: &Request<B>) -> Option<std::time::Instant> {
    let timeout = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)?;
    let arrived = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(std::time::Instant::now, |a| a.0.into_std());
    arrived.checked_add(timeout.min(Duration::from_secs(u32::MAX.into())))
}

/// Finishes the record of a call the handler never saw, with the refusal it got.
fn refused<B: Default>(
    rpc: RpcRecord,
    response: Response<B>,
    max_request_bytes: usize,
) -> Response<B> {
    let status =
        response.extensions().get::<Status>().cloned().or_else(|| grpc_status(response.headers()));
    let Some(status) = status else {
        // An answer that is no refusal (nothing of ours answers so): recorded as it came.
        drop(rpc.refuse(Status::ok("")));
        return response;
    };
    let status = with_details(status, max_request_bytes);
    rpc.refuse(status).into_http()
}

/// The status of a trailers-only response, read without tonic's parser, which panics on a
/// malformed details header.
fn grpc_status(headers: &http::HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some(Status::new(code, message))
}

/// A refusal as the caller gets it: the decoder's bare statuses become ours, with their
/// `ErrorInfo`; one that already carries details (the key check's) stays as it is.
fn with_details(status: Status, max_request_bytes: usize) -> Status {
    if !status.details().is_empty() {
        return status;
    }
    match status.code() {
        Code::OutOfRange => Status::from(Error::RequestTooLarge {
            limit: max_request_bytes,
            detail: status.message().to_owned(),
        }),
        // The caller went away while sending its request: nobody is left to tell.
        Code::Cancelled | Code::DeadlineExceeded => status,
        _ => Status::from(Error::MalformedRequest(status.message().to_owned())),
    }
}
