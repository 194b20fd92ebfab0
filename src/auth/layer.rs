//! The authentication layer of the gRPC port; see the [module docs](super).

use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::{AuthFailure, ClientIdentity, ClientKeys};
use crate::{
    audit::{AuditRecord, AuditSink, caller_headers},
    call::REQUEST_ID,
    error::Error,
    metrics::rpc::code_name,
};

/// Services that never need a key: probes and tools must reach them.
const OPEN_SERVICES: &[&str] = &["/grpc.health.v1.", "/grpc.reflection."];

/// Adds [`Auth`] to a service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    keys: ClientKeys,
    audit: AuditSink,
}

impl AuthLayer {
    /// Checks calls against `keys`, auditing the refused ones to `audit`.
    pub fn new(keys: ClientKeys, audit: AuditSink) -> Self {
        AuthLayer { keys, audit }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth { inner, keys: self.keys.clone(), audit: self.audit.clone() }
    }
}

/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    keys: ClientKeys,
    audit: AuditSink,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if !self.keys.required() || OPEN_SERVICES.iter().any(|p| path.starts_with(p)) {
            return Either::Right(self.inner.call(request));
        }
        match self.keys.check(request.headers()) {
            Ok(key) => {
                request.extensions_mut().insert(ClientIdentity(key));
                Either::Right(self.inner.call(request))
            }
            Err(failure) => {
                let error = Error::Unauthenticated(match failure {
                    AuthFailure::Missing => {
                        "a client key is required, in the authorization header (Bearer) or the x-api-key header"
                    }
                    AuthFailure::Invalid => "the client key is not valid",
                });
                let status = Status::from(error);
                self.audit.submit(refused_record(&request, &self.audit, &status));
                let mut response = status.into_http::<ResBody>();
                if let Some(id) = request.headers().get(REQUEST_ID) {
                    response.headers_mut().insert(REQUEST_ID, id.clone());
                }
                Either::Left(ready(Ok(response)))
            }
        }
    }
}

/// The audit record of a call refused before the handler.
fn refused_record<B>(request: &Request<B>, audit: &AuditSink, status: &Status) -> AuditRecord {
    let metadata = tonic::metadata::MetadataMap::from_headers(request.headers().clone());
    let method = match request.uri().path().rsplit('/').next() {
        Some("Chat") => "Chat",
        Some("StreamChat") => "StreamChat",
        Some("ListModels") => "ListModels",
        _ => "other",
    };
    AuditRecord {
        request_id: request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        method,
        caller: caller_headers(audit.headers(), &metadata),
        code: code_name(status.code()),
        error: Some(status.message().to_owned()),
        ..AuditRecord::default()
    }
}
