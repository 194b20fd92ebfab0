//! `POST /v1/chat/completions`: begins the call, reads and translates its body
//! ([`super::request`]), hands the domain request to the call pipeline, and answers with
//! OpenAI's `chat.completion` object, or for `stream: true` with its chunks ([`super::stream`]).
//!
//! The call begins as `Chat` when its headers arrive, so that a body that is too large, too
//! slow or malformed is recorded like any other refusal; it becomes a `StreamChat` once the body
//! says `stream: true`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Extension, Json,
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
};
use http::HeaderMap;
use serde::Serialize;

use super::{
    reasoning::{self, ExtraContent, ReasoningDetail},
    request::{self, Translated},
    stream,
};
use crate::{
    call::Call,
    chat::{self, Answer, Cost, FinishReason, Usage},
    error::Error,
    front::{grpc::Arrival, http::HttpState},
    metrics::Method,
};

/// The handler of `POST /v1/chat/completions`.
pub(super) async fn completions(
    State(state): State<HttpState>,
    headers: HeaderMap,
    arrival: Option<Extension<Arrival>>,
    body: Body,
) -> Response {
    let state = &state;
    super::serve(state, Method::Chat, &headers, arrival, |call, id| async move {
        answer(state, call, body, &id).await
    })
    .await
}

async fn answer(
    state: &HttpState,
    call: Call,
    body: Body,
    request_id: &str,
) -> Result<Response, Error> {
    let (call, Translated { request, stream, include_usage }) =
        understand(state, call, body).await?;
    // Answers name the model as the caller asked for it, as OpenAI does.
    let model = request.model.clone();
    if stream {
        let events = state.pipeline.stream(call, request).await?;
        let head = stream::ChunkHead::new(format!("chatcmpl-{request_id}"), model);
        stream::respond(events, head, include_usage).await
    } else {
        let answer = state.pipeline.chat(call, request).await?;
        let bill = answer.bill.clone();
        let response = Json(Completion::new(answer, model)).into_response();
        Ok(crate::front::http::with_bill(response, &bill))
    }
}

/// The body read and translated, or the call refused.
async fn understand(
    state: &HttpState,
    mut call: Call,
    body: Body,
) -> Result<(Call, Translated), Error> {
    let translated = async {
        let bytes = state.read_body(body).await?;
        let wire = request::read(&bytes)?;
        if wire.stream() {
            call.set_method(Method::StreamChat);
        }
        call.asked(wire.model(), wire.message_count(), &wire.metadata())?;
        wire.translate()
    }
    .await;
    match translated {
        Ok(translated) => Ok((call, translated)),
        Err(error) => Err(call.refuse(error)),
    }
}

/// OpenAI's `chat.completion` object.
#[derive(Debug, Serialize)]
struct Completion {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: [Choice; 1],
    usage: UsageOut,
}

#[derive(Debug, Serialize)]
struct Choice {
    index: u32,
    message: AssistantMessage,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct AssistantMessage {
    role: &'static str,
    /// `null` when the model only called tools.
    content: Option<String>,
    refusal: Option<String>,
    /// The reasoning text, as DeepSeek and vLLM name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    /// The reasoning parts, when one has a signature or is redacted (OpenRouter's field).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<Vec<ReasoningDetail>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut>,
}

#[derive(Debug, Serialize)]
struct ToolCallOut {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<ExtraContent>,
}

#[derive(Debug, Serialize)]
struct FunctionOut {
    name: String,
    arguments: String,
}

impl Completion {
    fn new(answer: Answer, model: String) -> Completion {
        let Answer { id, message, finish_reason, usage, .. } = answer;
        let text = message.joined_text();
        let (reasoning_content, reasoning_details) = reasoning::fields(&message.content);
        let tool_calls = message
            .tool_calls
            .into_iter()
            .map(|c: chat::ToolCall| ToolCallOut {
                id: c.id,
                kind: "function",
                function: FunctionOut { name: c.name, arguments: c.arguments },
                extra_content: ExtraContent::signed(c.signature),
            })
            .collect::<Vec<_>>();
        let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
        Completion {
            id,
            object: "chat.completion",
            created: unix_now(),
            model,
            choices: [Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content,
                    refusal: None,
                    reasoning_content,
                    reasoning_details,
                    tool_calls,
                },
                logprobs: None,
                finish_reason: finish_reason_name(finish_reason),
            }],
            usage: UsageOut::from(usage),
        }
    }
}

/// OpenAI's `usage` object.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct UsageOut {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
    /// A stream's cost in US dollars, on its usage chunk; absent when unknown and on unary
    /// answers (they have the `x-ai-cost-usd` header). An extension, as OpenRouter's
    /// `usage.cost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

impl UsageOut {
    /// With the call's cost, when it is known.
    pub(super) fn with_cost(mut self, cost: Option<&Cost>) -> UsageOut {
        self.cost_usd = cost.map(Cost::usd);
        self
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u32,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> UsageOut {
        UsageOut {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens(),
            prompt_tokens_details: PromptTokensDetails { cached_tokens: u.cached_input_tokens },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
            cost_usd: None,
        }
    }
}

/// OpenAI's name for why generation stopped; a reason OpenAI has no name for is `stop`, the
/// one its clients take as a normal end.
pub(super) fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Seconds since the Unix epoch, for `created`.
pub(super) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
