//! The request-id layer: makes sure every call carries an `x-request-id` header, generating
//! one when the caller sent none (or an unusable one), and returns it in the response headers
//! (for a failed call too: a trailers-only response carries it in its headers).
//!
//! It runs first, so later layers and the handler read the same id from the call's metadata.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::call::{REQUEST_ID_HEADER, is_usable_request_id, new_request_id};

/// Adds [`RequestId`] to a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let headers = request.headers_mut();
        let id = match headers
            .get(&REQUEST_ID_HEADER)
            .filter(|v| v.to_str().is_ok_and(is_usable_request_id))
        {
            Some(id) => Some(id.clone()),
            None => {
                let fresh = HeaderValue::try_from(new_request_id()).ok();
                match &fresh {
                    Some(fresh) => headers.insert(&REQUEST_ID_HEADER, fresh.clone()),
                    None => headers.remove(&REQUEST_ID_HEADER),
                };
                fresh
            }
        };
        ResponseFuture { inner: self.inner.call(request), id }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestId`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, B, E> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(mut id) = this.id.take() {
            // Every call's own: never indexed in HTTP/2's header table (see crate::front).
            id.set_sensitive(true);
            response.headers_mut().insert(&REQUEST_ID_HEADER, id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;
    use crate::call::REQUEST_ID;

    /// Echoes the request's id into the body.
    fn service() -> impl Service<Request<()>, Response = Response<String>, Error = Infallible> {
        RequestIdLayer.layer(tower::service_fn(|req: Request<()>| async move {
            let seen = req.headers().get(REQUEST_ID).map(|v| v.to_str().unwrap().to_owned());
            Ok::<_, Infallible>(Response::new(seen.unwrap_or_default()))
        }))
    }

    #[tokio::test]
    async fn a_callers_id_is_kept_and_returned() {
        let request = Request::builder().header(REQUEST_ID, "abc-1").body(()).unwrap();
        let response = service().oneshot(request).await.unwrap();
        assert_eq!(response.body(), "abc-1");
        assert_eq!(response.headers()[REQUEST_ID], "abc-1");
        // Unique to the call: sent outside HTTP/2's header table (see crate::front).
        assert!(response.headers()[REQUEST_ID].is_sensitive());
    }

    #[tokio::test]
    async fn a_missing_id_is_generated_seen_inside_and_returned() {
        let response = service().oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.body().len(), 32);
        assert_eq!(response.headers()[REQUEST_ID], response.body().as_str());
        assert!(response.headers()[REQUEST_ID].is_sensitive());
    }
}
