//! What the HTTP front doors share: their axum router, served on the gRPC port (HTTP/1.1 and
//! h2c; gRPC calls are told apart by their path and `application/grpc` content type) or on
//! `server.http.listen`, and the steps every HTTP handler takes before its door translates:
//! begin the call in the pipeline, identify the caller, read the body within the size limit
//! and `server.http.body_timeout`; and the body of a server-sent event stream.

use std::{convert::Infallible, time::Duration};

use axum::body::{Body, Bytes};
use futures::{Stream, StreamExt};
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::{
    call::{Call, Pipeline},
    error::Error,
    front::grpc::Arrival,
    metrics::{FrontDoor, Method},
};

/// What an HTTP handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The call pipeline.
    pub pipeline: Pipeline,
    /// The largest request body, the same limit as a gRPC message's.
    pub max_request_bytes: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

/// The router of every HTTP front door.
pub fn router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .merge(super::openai::router(state.clone()))
        .merge(super::anthropic::router(state))
}

impl HttpState {
    /// Begins a call of `method` through `front_door` and identifies its caller. A refused
    /// call has ended; its error is for the door to put in its shape.
    pub async fn begin(
        &self,
        front_door: FrontDoor,
        method: Method,
        headers: &HeaderMap,
        arrival: Option<Arrival>,
    ) -> Result<Call, (Error, String)> {
        let arrived = arrival.map_or_else(tokio::time::Instant::now, |a| a.0);
        let mut call = self.pipeline.begin(front_door, method, headers, arrived, None).await;
        match self.pipeline.identify(&mut call, headers) {
            Ok(()) => Ok(call),
            Err(error) => {
                let id = call.request_id().to_owned();
                Err((call.refuse(error), id))
            }
        }
    }

    /// The whole request body, at most `max_request_bytes` and within `body_timeout`.
    pub async fn read_body(&self, body: Body) -> Result<Bytes, Error> {
        let limit = self.max_request_bytes;
        let read = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.body_timeout, read).await {
            Err(_) => Err(Error::BodyTimeout { after: self.body_timeout }),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(Error::RequestTooLarge {
                    limit,
                    detail: "message length too large: the request body is over the limit".into(),
                })
            }
            Ok(Err(e)) => Err(Error::MalformedRequest(format!("the request body: {e}"))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// The HTTP status of `error` on every HTTP door, before a door's own exceptions (Anthropic's
/// 529 for overload): the client's mistakes 4xx, a failure upstream 502, nothing to send the
/// call to 503, the call's deadline 504 (408 for a body that never came), a bug 500.
pub fn status(error: &Error) -> http::StatusCode {
    use http::StatusCode as S;
    use tonic::Code;
    match error.code() {
        Code::InvalidArgument => S::BAD_REQUEST,
        Code::OutOfRange => S::PAYLOAD_TOO_LARGE,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::NotFound => S::NOT_FOUND,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded if matches!(error, Error::BodyTimeout { .. }) => S::REQUEST_TIMEOUT,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::Unavailable
            if matches!(error, Error::Stopped | Error::Exhausted { no_endpoint: true, .. }) =>
        {
            S::SERVICE_UNAVAILABLE
        }
        Code::Unavailable | Code::FailedPrecondition => S::BAD_GATEWAY,
        _ => S::INTERNAL_SERVER_ERROR,
    }
}

/// `Retry-After` for `error`, when the caller should wait: whole seconds, rounded up, so a
/// caller that waits that long is not refused again by the same window.
pub fn retry_after(error: &Error) -> Option<http::HeaderValue> {
    let after = error.retry_after()?;
    Some(http::HeaderValue::from(after.as_secs() + u64::from(after.subsec_nanos() > 0)))
}

/// Server-sent events as a response body: the events that are ready together go out as one
/// body frame (one write), as HTTP/2 coalesces gRPC's messages, and none waits for another.
pub fn event_stream<S>(events: S) -> Body
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    const MOST_AT_ONCE: usize = 64;
    Body::from_stream(events.ready_chunks(MOST_AT_ONCE).map(|ready| {
        let mut frames = ready.into_iter().map(|Ok(frame)| frame);
        let first = frames.next().unwrap_or_default();
        let Some(second) = frames.next() else {
            return Ok::<_, Infallible>(first);
        };
        let mut joined = Vec::with_capacity(first.len() + second.len());
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&second);
        frames.for_each(|frame| joined.extend_from_slice(&frame));
        Ok(Bytes::from(joined))
    }))
}

/// `response` with the call's bill as headers ([`crate::front::bill_headers`]).
pub fn with_bill(
    mut response: axum::response::Response,
    bill: &crate::chat::Bill,
) -> axum::response::Response {
    const NAMES: [http::HeaderName; 3] = [
        http::HeaderName::from_static(crate::front::BILL_HEADER_NAMES[0]),
        http::HeaderName::from_static(crate::front::BILL_HEADER_NAMES[1]),
        http::HeaderName::from_static(crate::front::BILL_HEADER_NAMES[2]),
    ];
    for (i, value) in crate::front::bill_headers(bill) {
        if let Ok(mut value) = http::HeaderValue::try_from(value) {
            // A value of this call only: never indexed (see crate::front).
            value.set_sensitive(true);
            response.headers_mut().insert(&NAMES[i], value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn next_frame(body: &mut Body) -> Option<Bytes> {
        body.frame().await.map(|f| f.unwrap().into_data().unwrap())
    }

    #[tokio::test]
    async fn ready_events_go_out_as_one_frame_and_none_waits_for_another() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        tx.unbounded_send(Ok(Bytes::from_static(b"data: 1\n\n"))).unwrap();
        tx.unbounded_send(Ok(Bytes::from_static(b"data: 2\n\n"))).unwrap();
        let mut body = event_stream(rx);
        assert_eq!(next_frame(&mut body).await.unwrap(), "data: 1\n\ndata: 2\n\n");
        // Nothing else is ready: the next event goes out alone, as soon as it comes.
        tx.unbounded_send(Ok(Bytes::from_static(b"data: 3\n\n"))).unwrap();
        assert_eq!(next_frame(&mut body).await.unwrap(), "data: 3\n\n");
        drop(tx);
        assert!(next_frame(&mut body).await.is_none());
    }
}
