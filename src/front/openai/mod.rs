//! The OpenAI-compatible front door: the HTTP API the `openai` SDKs speak, translated to and
//! from the call pipeline. Its one place that turns an [`Error`] into OpenAI's error shape is
//! [`error_response`].
//!
//! - `GET /v1/models`, `GET /v1/models/{id}`: the routes the caller's key may use, in
//!   OpenAI's list format;
//! - `POST /v1/chat/completions` (`chat.rs`): a chat call, answered whole or streamed as
//!   server-sent events (`stream.rs`); its request is read and translated by [`request`];
//! - `POST /v1/embeddings` (`embeddings.rs`): an `Embed` call in OpenAI's embeddings shape.
//!
//! A stream that fails after it began ends with OpenAI's error event ([`error_event`]), built
//! by the same mapping as an error response.

mod chat;
mod embeddings;
mod reasoning;
pub mod request;
mod stream;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use crate::{
    call::{Call, REQUEST_ID_HEADER},
    error::Error,
    front::{grpc::Arrival, http::HttpState},
    metrics::{FrontDoor, Method},
    router::ModelInfo,
};

/// The OpenAI-compatible routes.
pub fn router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .with_state(state)
}

/// OpenAI's model object.
#[derive(Debug, Serialize)]
struct Model {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl From<ModelInfo> for Model {
    fn from(m: ModelInfo) -> Model {
        Model { id: m.name, object: "model", created: 0, owned_by: "ai-service" }
    }
}

#[derive(Debug, Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<Model>,
}

async fn list_models(
    State(state): State<HttpState>,
    headers: HeaderMap,
    arrival: Option<axum::Extension<Arrival>>,
) -> Response {
    let call = match begin_listing(&state, &headers, arrival).await {
        Ok(call) => call,
        Err(refused) => return refused,
    };
    let id = call.request_id().to_owned();
    let data = state.pipeline.models(call).into_iter().map(Model::from).collect();
    with_request_id(Json(ModelList { object: "list", data }).into_response(), &id)
}

async fn get_model(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    arrival: Option<axum::Extension<Arrival>>,
) -> Response {
    let call = match begin_listing(&state, &headers, arrival).await {
        Ok(call) => call,
        Err(refused) => return refused,
    };
    let id = call.request_id().to_owned();
    match state.pipeline.model(call, &name) {
        Ok(model) => with_request_id(Json(Model::from(model)).into_response(), &id),
        Err(error) => error_response(&error, &id),
    }
}

/// A `ListModels` call begun and identified, or the response refusing it.
async fn begin_listing(
    state: &HttpState,
    headers: &HeaderMap,
    arrival: Option<axum::Extension<Arrival>>,
) -> Result<Call, Response> {
    state
        .begin(FrontDoor::OpenAi, Method::ListModels, headers, arrival.map(|a| a.0))
        .await
        .map_err(|(error, id)| error_response(&error, &id))
}

/// OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize)]
struct ErrorDetail {
    message: String,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<String>,
    code: &'static str,
}

/// `error` as OpenAI's error response, with the HTTP status the `openai` SDKs map to their own
/// exception for it, `Retry-After` on a rate limit, and the call's request id.
pub fn error_response(error: &Error, request_id: &str) -> Response {
    let (status, body) = error_body(error);
    let mut response = (status, Json(body)).into_response();
    if let Some(after) = crate::front::http::retry_after(error) {
        response.headers_mut().insert(http::header::RETRY_AFTER, after);
    }
    with_request_id(response, request_id)
}

/// `error` as the event that ends a failed stream: `data: {"error": {...}}`, which the `openai`
/// SDKs raise as an `APIError` while the caller iterates.
pub fn error_event(error: &Error) -> Bytes {
    let (_, body) = error_body(error);
    stream::event(&body)
}

/// The HTTP status and OpenAI's error object for `error`.
fn error_body(error: &Error) -> (StatusCode, ErrorBody) {
    let status = crate::front::http::status(error);
    let kind = match status.as_u16() {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let param = match error {
        Error::InvalidRequest(violations) => violations.first().map(|v| v.field.clone()),
        // A provider names the field as the gRPC API does.
        Error::Provider(p) => p.field.as_deref().map(openai_param),
        _ => None,
    };
    let body = ErrorBody {
        error: ErrorDetail { message: error.public_message(), kind, param, code: error.reason() },
    };
    (status, body)
}

/// The OpenAI name of a request field named as in the gRPC API (`generation.seed` → `seed`,
/// `tools[0].strict` → `tools[0].function.strict`). Messages, content parts and tools keep
/// their positions through the translation, so their indexes carry over.
fn openai_param(grpc: &str) -> String {
    let field = grpc.strip_prefix("generation.").unwrap_or(grpc);
    let field = field.replacen(".image.mime_type", ".image_url.url", 1);
    let field = field.replacen(".image.", ".image_url.", 1);
    let field = field.replacen(".arguments_json", ".function.arguments", 1);
    let field = field.replacen("tool_choice.tool_name", "tool_choice.function.name", 1);
    match field.split_once("].") {
        Some((tool, member)) if tool.starts_with("tools[") && !member.contains('.') => {
            let member = if member == "parameters_json" { "parameters" } else { member };
            format!("{tool}].function.{member}")
        }
        _ if field.contains("].tool_calls[") && field.ends_with("].name") => {
            field.replacen("].name", "].function.name", 1)
        }
        _ => field,
    }
}

/// A call of `method` through this door, begun from `headers` and answered by `answer` (given
/// the call and its request id) in the call's span; a refusal or failure in OpenAI's error
/// shape, and either way the call's `x-request-id`.
async fn serve<F, Fut>(
    state: &HttpState,
    method: Method,
    headers: &HeaderMap,
    arrival: Option<axum::Extension<Arrival>>,
    answer: F,
) -> Response
where
    F: FnOnce(Call, String) -> Fut,
    Fut: std::future::Future<Output = Result<Response, Error>>,
{
    use tracing::Instrument as _;
    let arrival = arrival.map(|a| a.0);
    let call = match state.begin(FrontDoor::OpenAi, method, headers, arrival).await {
        Ok(call) => call,
        Err((error, id)) => return error_response(&error, &id),
    };
    let (id, span) = (call.request_id().to_owned(), call.span().clone());
    match answer(call, id.clone()).instrument(span).await {
        Ok(response) => with_request_id(response, &id),
        Err(error) => error_response(&error, &id),
    }
}

/// `response` with the call's `x-request-id`.
fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(mut value) = HeaderValue::try_from(request_id) {
        // Never indexed (see crate::front).
        value.set_sensitive(true);
        response.headers_mut().insert(&REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_field_names_become_openai_params() {
        for (grpc, openai) in [
            ("generation.seed", "seed"),
            ("generation.response_format", "response_format"),
            ("tools[2].strict", "tools[2].function.strict"),
            ("tools[0].parameters_json", "tools[0].function.parameters"),
            ("messages[1].name", "messages[1].name"),
            ("messages[1].content[0].image.detail", "messages[1].content[0].image_url.detail"),
            ("messages[1].content[0].image.mime_type", "messages[1].content[0].image_url.url"),
            (
                "messages[3].tool_calls[0].arguments_json",
                "messages[3].tool_calls[0].function.arguments",
            ),
            ("messages[3].tool_calls[0].name", "messages[3].tool_calls[0].function.name"),
            ("tool_choice.tool_name", "tool_choice.function.name"),
        ] {
            assert_eq!(openai_param(grpc), openai, "{grpc}");
        }
    }
}
