//! The Anthropic-compatible front door: `POST /v1/messages` as the `anthropic` SDKs speak
//! it, translated to and from the call pipeline, whatever provider the route reaches. Its
//! one place that turns an [`Error`] into Anthropic's error shape and status is
//! [`error_response`] (and, for a stream that already began, its `error` event).
//!
//! - [`messages`]: the request body into the domain request, an answer into a `message`;
//! - [`stream`]: a streamed answer as Anthropic's server-sent events.
//!
//! A handler reads the body first (within the size limit and `server.http.body_timeout`):
//! whether the call is a `Chat` or a `StreamChat` is in it, and the call is begun as one or
//! the other. Headers: the client key comes as `x-api-key` or `authorization: Bearer`;
//! `anthropic-version` is accepted whatever its date and not required (this door speaks one
//! dialect, `2023-06-01`'s, and a missing header changes nothing); `anthropic-beta` is
//! refused, because a beta this door does not know could change what the caller expects
//! without anything in the body to refuse. Every response carries the call's id as
//! `request-id` (the header the SDKs read) and `x-request-id`.

pub mod messages;
mod reply;
mod stream;

use std::convert::Infallible;

use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::{
    Json,
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt;
use serde::Serialize;

pub use messages::MessagesRequest;

use crate::{
    call::{Call, REQUEST_ID_HEADER, ReplyStream},
    chat::ChatRequest,
    error::Error,
    front::{
        grpc::Arrival,
        http::{self, HttpState},
    },
    metrics::{FrontDoor, Method},
};

/// Anthropic's own name for the request id header.
const ANTHROPIC_REQUEST_ID: &str = "request-id";

/// The Anthropic-compatible routes.
pub fn router(state: HttpState) -> axum::Router {
    axum::Router::new().route("/v1/messages", post(create_message)).with_state(state)
}

async fn create_message(
    State(state): State<HttpState>,
    headers: HeaderMap,
    arrival: Option<axum::Extension<Arrival>>,
    body: Body,
) -> Response {
    use tracing::Instrument as _;
    let arrival = arrival.map(|a| a.0);
    let call = match state.begin(FrontDoor::Anthropic, Method::Chat, &headers, arrival).await {
        Ok(call) => call,
        Err((error, id)) => return error_response(&error, &id),
    };
    let span = call.span().clone();
    answer(state, call, body, headers).instrument(span).await
}

/// The call's answer in Anthropic's shape, or its refusal or failure; run in the call's span.
async fn answer(state: HttpState, call: Call, body: Body, headers: HeaderMap) -> Response {
    let id = call.request_id().to_owned();
    let (call, request, streaming) = match understand(&state, call, body, &headers).await {
        Ok(understood) => understood,
        Err(error) => return error_response(&error, &id),
    };
    if !streaming {
        return match state.pipeline.chat(call, request).await {
            Ok(answer) => {
                let bill = answer.bill.clone();
                let response = Json(reply::message_object(answer)).into_response();
                with_request_id(crate::front::http::with_bill(response, &bill), &id)
            }
            Err(error) => error_response(&error, &id),
        };
    }
    let model = request.model.clone();
    match state.pipeline.stream(call, request).await {
        Ok(events) => {
            let route = state.pipeline.route_name(&model).unwrap_or(model);
            stream_response(events, route, &id).await
        }
        Err(error) => error_response(&error, &id),
    }
}

/// The body read and translated to the domain request, and whether it asks for a stream (the
/// call, begun as `Chat`, becomes a `StreamChat` then); or the call refused.
async fn understand(
    state: &HttpState,
    mut call: Call,
    body: Body,
    headers: &HeaderMap,
) -> Result<(Call, ChatRequest, bool), Error> {
    let understood = async {
        let bytes = state.read_body(body).await?;
        let request = MessagesRequest::parse(&bytes)?;
        let streaming = request.stream();
        if streaming {
            call.set_method(Method::StreamChat);
        }
        call.asked(request.model(), request.message_count(), &request.caller_metadata())?;
        if let Some(beta) = headers.get("anthropic-beta") {
            let beta = String::from_utf8_lossy(beta.as_bytes());
            return Err(Error::invalid(
                "anthropic-beta",
                format!(
                    "beta features ({beta}) are not supported by this gateway; remove the header"
                ),
            ));
        }
        Ok((request.into_domain()?, streaming))
    }
    .await;
    match understood {
        Ok((request, streaming)) => Ok((call, request, streaming)),
        Err(error) => Err(call.refuse(error)),
    }
}

/// A stream's response: an error response when it fails before its first event, else the
/// events. Its message id is the call's request id, since the provider's id comes last.
async fn stream_response(mut events: ReplyStream, route: String, request_id: &str) -> Response {
    let first = match events.next().await {
        Some(Err(error)) => return error_response(&error, request_id),
        first => first,
    };
    let mut events = futures::stream::iter(first).chain(events);
    let message_id = format!("msg_{request_id}");
    let frames = async_stream::stream! {
        let mut translator = stream::Translator::default();
        yield Ok::<_, Infallible>(translator.start(message_id, route));
        // Read to the end, past the last event: the call's record ends when the pipeline's
        // stream does.
        while let Some(item) = events.next().await {
            if translator.finished() {
                continue;
            }
            match item {
                Ok(event) => {
                    for frame in translator.event(event) {
                        yield Ok(frame);
                    }
                }
                Err(error) => yield Ok(translator.error(&error)),
            }
        }
        // The pipeline ends every stream with its finish or an error; should one ever end
        // otherwise, the caller must not take it for a complete answer.
        if !translator.finished() {
            yield Ok(translator.error(&Error::Internal("the reply stream ended early".into())));
        }
    };
    let mut response = Response::new(http::event_stream(frames));
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_request_id(response, request_id)
}

/// Anthropic's error object: `{"type", "message", "details": {"error_code"}}`, the code being
/// the gateway's stable reason (`MODEL_NOT_FOUND`), which the SDKs expose as `error_code`.
#[derive(Debug, Serialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
    details: ErrorDetails,
}

#[derive(Debug, Serialize)]
struct ErrorDetails {
    error_code: &'static str,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorObject,
    request_id: &'a str,
}

/// The HTTP status Anthropic answers an error like `error` with, and its error object.
fn error_object(error: &Error) -> (StatusCode, ErrorObject) {
    // The gateway at its in-flight limit, or an upstream that said so: Anthropic's
    // "overloaded", which its SDKs retry, rather than a rate limit on this caller.
    let overloaded =
        matches!(error, Error::Overloaded { .. }) || error.reason() == "UPSTREAM_OVERLOADED";
    let status = http::status(error);
    let (status, kind) = match status.as_u16() {
        _ if overloaded => (
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
        ),
        400 => (status, "invalid_request_error"),
        401 => (status, "authentication_error"),
        403 => (status, "permission_error"),
        404 => (status, "not_found_error"),
        408 | 504 => (status, "timeout_error"),
        413 => (status, "request_too_large"),
        429 => (status, "rate_limit_error"),
        _ => (status, "api_error"),
    };
    let object = ErrorObject {
        kind,
        message: error.public_message(),
        details: ErrorDetails { error_code: error.reason() },
    };
    (status, object)
}

/// `error` as Anthropic's error response, with the status the `anthropic` SDKs map to their
/// own exception for it, `retry-after` when the caller should wait, and the call's request id.
pub fn error_response(error: &Error, request_id: &str) -> Response {
    let (status, object) = error_object(error);
    let body = ErrorBody { kind: "error", error: object, request_id };
    let mut response = (status, Json(body)).into_response();
    if let Some(after) = http::retry_after(error) {
        response.headers_mut().insert(header::RETRY_AFTER, after);
    }
    with_request_id(response, request_id)
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(mut value) = HeaderValue::try_from(request_id) {
        // Never indexed (see crate::front).
        value.set_sensitive(true);
        response.headers_mut().insert(ANTHROPIC_REQUEST_ID, value.clone());
        response.headers_mut().insert(&REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::call::REQUEST_ID;
    use crate::provider::{ProviderError, ProviderErrorKind};

    #[test]
    fn errors_get_anthropics_statuses_and_types() {
        let upstream = |kind| Error::Provider(ProviderError::new("p", kind, "failed"));
        let cases = [
            (Error::invalid("model", "x"), 400, "invalid_request_error"),
            (Error::MalformedRequest("x".into()), 400, "invalid_request_error"),
            (Error::RequestTooLarge { limit: 1, detail: "x".into() }, 413, "request_too_large"),
            (Error::Unauthenticated("no key"), 401, "authentication_error"),
            (Error::PermissionDenied { route: "r".into() }, 403, "permission_error"),
            (Error::ModelNotFound { model: "m".into() }, 404, "not_found_error"),
            (
                Error::RateLimited { limit: "requests", retry_after: Duration::from_secs(3) },
                429,
                "rate_limit_error",
            ),
            (Error::Overloaded { limit: 1 }, 529, "overloaded_error"),
            (upstream(ProviderErrorKind::Overloaded), 529, "overloaded_error"),
            (upstream(ProviderErrorKind::RateLimited), 429, "rate_limit_error"),
            (upstream(ProviderErrorKind::Server), 502, "api_error"),
            (upstream(ProviderErrorKind::Auth), 502, "api_error"),
            (upstream(ProviderErrorKind::Rejected), 400, "invalid_request_error"),
            (Error::Stopped, 503, "api_error"),
            (Error::DeadlineExceeded("late".into()), 504, "timeout_error"),
            (Error::BodyTimeout { after: Duration::from_secs(30) }, 408, "timeout_error"),
            (Error::Internal("secret detail".into()), 500, "api_error"),
        ];
        for (error, status, kind) in cases {
            let (got_status, object) = error_object(&error);
            assert_eq!((got_status.as_u16(), object.kind), (status, kind), "{error}");
            assert_eq!(object.details.error_code, error.reason());
        }
        assert_eq!(error_object(&Error::Internal("secret".into())).1.message, "internal error");
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let error =
            Error::RateLimited { limit: "requests", retry_after: Duration::from_millis(1500) };
        let response = error_response(&error, "req-1");
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[ANTHROPIC_REQUEST_ID], "req-1");
        assert_eq!(response.headers()[REQUEST_ID], "req-1");
    }
}
