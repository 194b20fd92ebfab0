//! The authentication layer of the chat service; see the [module docs](super).
//!
//! It sits inside the RPC layer ([`crate::layers::rpc`]), so a refused call is recorded (audit,
//! metrics, log) like every other refusal.

use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::{Status, server::NamedService};
use tower::{Layer, Service};

use super::{AuthFailure, ClientIdentity, ClientKeys};
use crate::error::Error;

/// Services that never need a key: probes and tools must reach them.
const OPEN_SERVICES: &[&str] = &["/grpc.health.v1.", "/grpc.reflection."];

/// Adds [`Auth`] to a service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    keys: ClientKeys,
}

impl AuthLayer {
    /// Checks calls against `keys`.
    pub fn new(keys: ClientKeys) -> Self {
        AuthLayer { keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth { inner, keys: self.keys.clone() }
    }
}

/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    keys: ClientKeys,
}

impl<S: NamedService> NamedService for Auth<S> {
    const NAME: &'static str = S::NAME;
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
                Either::Left(ready(Ok(Status::from(error).into_http::<ResBody>())))
            }
        }
    }
}
