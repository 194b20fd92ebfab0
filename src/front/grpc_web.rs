//! The gRPC-Web front door: the gRPC services of the gRPC port, for browsers. It sits in
//! front of each service ([`Gateway::routes`](crate::Gateway::routes)), before the gRPC
//! door's layer ([`super::grpc::layer`]), and does three things, outermost first:
//!
//! 1. CORS: a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from
//!    an origin in `server.grpc_web.allowed_origins` is answered here, and a gRPC-Web call
//!    from one gets the headers that let its page read the answer; a preflight or call from
//!    any other origin is refused with 403 before anything else happens. A caller that sends
//!    no `Origin` (not a page in a browser) is not subject to CORS.
//! 2. Marks the call as [`FrontDoor::GrpcWeb`] in the request's extensions, so its audit
//!    record, metric sample and log line say how it came in.
//! 3. Translates gRPC-Web (binary `application/grpc-web[+proto]` and base64
//!    `application/grpc-web-text[+proto]`) to gRPC and back with `tonic-web`. From there on
//!    the call is a gRPC call: same keys, limits, pipeline and error details.
//!
//! Plain gRPC passes through untouched.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::{body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::{config::GrpcWebConfig, metrics::FrontDoor};

/// The response headers a page may read besides the CORS-safelisted ones: the status of a
/// trailers-only answer with its details, the request id, and the bill.
const EXPOSED: &str = "grpc-status, grpc-message, grpc-status-details-bin, x-request-id, \
                       x-ai-cost-usd, x-ai-budget-remaining-usd, x-ai-budget-remaining-tokens";
/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "7200";

/// Wraps each gRPC service in [`GrpcWeb`].
#[derive(Clone, Debug)]
pub struct GrpcWebLayer {
    enabled: bool,
    allowed_origins: Arc<[HeaderValue]>,
}

impl GrpcWebLayer {
    /// The door of `config`.
    pub fn new(config: &GrpcWebConfig) -> Self {
        GrpcWebLayer {
            enabled: config.enabled,
            allowed_origins: config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let origin = origin.as_bytes();
        self.allowed_origins.iter().any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }
}

impl<S> Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcWeb { inner, door: self.clone() }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct GrpcWeb<S> {
    inner: S,
    door: GrpcWebLayer,
}

impl<S: NamedService> NamedService for GrpcWeb<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for GrpcWeb<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The service that was polled ready serves this call; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !self.door.enabled {
            return off(inner, request);
        }
        let is_preflight = is_preflight(&request);
        if !is_preflight && !is_grpc_web(request.headers()) {
            // Plain gRPC: straight to the service, no origin check, no translation.
            return Box::pin(inner.call(request));
        }
        let origin = request.headers().get(header::ORIGIN).cloned();
        let refused = origin.as_ref().filter(|o| !self.door.allows(o));
        if is_preflight {
            let answer = match (&origin, refused) {
                (Some(origin), None) => preflight(origin, request.headers()),
                _ => forbidden(&request, refused),
            };
            return Box::pin(async move { Ok(answer) });
        }
        if refused.is_some() {
            let answer = forbidden(&request, refused);
            return Box::pin(async move { Ok(answer) });
        }
        request.extensions_mut().insert(FrontDoor::GrpcWeb);
        let answer = tonic_web::GrpcWebLayer::new().layer(inner).call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(origin) = origin {
                let headers = response.headers_mut();
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED),
                );
                headers.append(header::VARY, HeaderValue::from_static("origin"));
            }
            Ok(response)
        })
    }
}

/// With `server.grpc_web.enabled: false`: gRPC passes straight to the service, gRPC-Web is
/// answered 415 (tonic would otherwise half-serve its binary mode as gRPC) and a preflight 403.
fn off<S>(
    mut inner: S,
    request: Request<Body>,
) -> BoxFuture<'static, Result<Response<Body>, Infallible>>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    let status = if is_preflight(&request) {
        StatusCode::FORBIDDEN
    } else if is_grpc_web(request.headers()) {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        return Box::pin(inner.call(request));
    };
    tracing::debug!(path = request.uri().path(), "gRPC-Web is off (server.grpc_web.enabled)");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    Box::pin(async move { Ok(response) })
}

/// Whether `headers` announce a gRPC-Web call, in either mode (what `tonic-web` translates).
pub fn is_grpc_web(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    matches!(
        content_type,
        "application/grpc-web"
            | "application/grpc-web+proto"
            | "application/grpc-web-text"
            | "application/grpc-web-text+proto"
    )
}

fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an allowed origin's preflight: POST (all gRPC-Web uses), with whatever
/// headers the page asked for (client key, deadline, caller metadata): the origin is what
/// is checked, and a page may only send headers to a gateway that allowed it.
fn preflight(origin: &HeaderValue, asked: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    if let Some(wanted) = asked.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, wanted.clone());
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    response
}

/// 403 for a preflight or call from an origin not allowed (or a preflight with no origin,
/// which no browser sends). Such a request never becomes a call, so it leaves no audit
/// record: the log line is its trace.
fn forbidden<B>(request: &Request<B>, origin: Option<&HeaderValue>) -> Response<Body> {
    tracing::warn!(
        origin = origin.and_then(|o| o.to_str().ok()).unwrap_or(""),
        path = request.uri().path(),
        method = %request.method(),
        front_door = FrontDoor::GrpcWeb.as_str(),
        "gRPC-Web: origin not allowed (server.grpc_web.allowed_origins); refused with 403"
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("origin"));
    response
}
