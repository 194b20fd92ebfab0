//! AWS Bedrock through its Converse API: Claude, Llama, Mistral, Nova and the other models of
//! an AWS account, behind one adapter. The router hands a target's call here; this file sends
//! it and reads the unary reply, [`request`] builds the body, [`stream`] reads ConverseStream's
//! event stream, [`embed`] calls the embedding models, and [`auth`] keeps the AWS credentials
//! fresh and signs every request with SigV4.
//!
//! The target's model is a model id (`anthropic.claude-sonnet-4-20250514-v1:0`), a cross-region
//! inference profile (`us.anthropic.…`) or an ARN (`arn:aws:bedrock:…:inference-profile/…`,
//! a provisioned-throughput or imported model); it goes into the path as one segment:
//! `POST {base}/model/{modelId}/converse` (or `converse-stream`).
//!
//! Errors carry their type in `x-amzn-ErrorType` (and the body's `__type`): a
//! `ThrottlingException` or `ServiceQuotaExceededException` is a rate limit (fails over like a
//! 429), `ModelNotReadyException`, `ServiceUnavailableException`, `InternalServerException`
//! and the other 5xx are unavailable, `ModelTimeoutException` a timeout,
//! `ValidationException` a rejected request, `AccessDeniedException` and the signature and
//! token errors refused credentials, `ResourceNotFoundException` an unknown model.

mod auth;
mod embed;
mod request;
mod stream;

use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;

use super::{
    ChatStream, Provider, ProviderError, ProviderErrorKind, http::Upstream,
    transport::UpstreamResponse,
};
use crate::{
    chat::{
        ChatRequest, ChatResponse, ContentPart, FinishReason, Message, Reasoning, Role, ToolCall,
        Usage,
    },
    config::{BedrockSettings, ConnectionSettings, ProviderKind},
    embed::{EmbedRequest, Embeddings},
};

/// The Bedrock provider.
#[derive(Debug)]
pub struct BedrockProvider {
    upstream: Upstream,
    signer: auth::AwsSigner,
}

impl BedrockProvider {
    /// A Bedrock provider; its credentials are read at the first call.
    pub fn new(
        name: &str,
        connection: &ConnectionSettings,
        settings: &BedrockSettings,
    ) -> Result<Self, ProviderError> {
        Ok(BedrockProvider {
            upstream: Upstream::new(name, connection)?,
            signer: auth::AwsSigner::new(name, settings),
        })
    }

    fn unsupported(&self, field: impl Into<String>, why: impl Into<String>) -> ProviderError {
        ProviderError::unsupported(&self.upstream.name, field, why)
    }

    /// A signed POST of `body` to `{base}/model/{model}/{action}`, sent; an error status
    /// becomes an error of Bedrock's type.
    async fn post(
        &self,
        model: &str,
        action: &str,
        body: &impl serde::Serialize,
        accept: &'static str,
        stream: bool,
    ) -> Result<UpstreamResponse, ProviderError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| self.upstream.invalid(format!("cannot encode the request: {e}")))?;
        let url = format!("{}/model/{}/{action}", self.upstream.base_url, model_segment(model));
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let signed = self.signer.sign(&url, &headers, &body).await?;
        let mut builder = self
            .upstream
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept);
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        self.upstream.send(builder.body(body), stream).await.map_err(|e| self.typed(e))
    }

    /// A refused credential says so, naming the region and the permissions it needs.
    fn typed(&self, mut err: ProviderError) -> ProviderError {
        if err.kind == ProviderErrorKind::Auth {
            err.message = format!(
                "AWS refused the credentials (region {}; the role needs bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream): {}",
                self.signer.region(),
                err.message
            );
        }
        err
    }
}

/// A model id, inference profile or ARN as one path segment: `:` and `/` are escaped.
fn model_segment(model: &str) -> String {
    super::openai::path_segment(model)
}

/// The error kind of a Bedrock error type (`ThrottlingException`, or as streams write it,
/// `throttlingException`), with or without its `:namespace` suffix.
pub(crate) fn error_kind(error_type: &str) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    let name = error_type.split([':', ' ', ',']).next().unwrap_or_default();
    let name = name.rsplit('#').next().unwrap_or(name).to_ascii_lowercase();
    Some(match name.as_str() {
        "throttlingexception" | "servicequotaexceededexception" | "toomanyrequestsexception" => {
            K::RateLimited
        }
        "modelnotreadyexception"
        | "serviceunavailableexception"
        | "internalserverexception"
        | "modelstreamerrorexception"
        | "modelerrorexception" => K::Server,
        "modeltimeoutexception" => K::Timeout,
        "validationexception" => K::Rejected,
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => K::Auth,
        "resourcenotfoundexception" => K::NotFound,
        _ => return None,
    })
}

/// The error type of a failed reply: the `x-amzn-ErrorType` header, else the body's `__type`.
pub(crate) fn error_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct TypedBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| serde_json::from_slice::<TypedBody>(body).ok().and_then(|b| b.kind))
}

/// Converse's reply.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseReply {
    output: ReplyOutput,
    #[serde(default)]
    stop_reason: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct ReplyOutput {
    message: ReplyMessage,
}

#[derive(Debug, Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Vec<ReplyBlock>,
}

/// A reply block: one of its fields is set.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplyBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ReplyToolUse>,
    #[serde(default)]
    reasoning_content: Option<WireReasoning>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplyToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: serde_json::Value,
}

/// `reasoningContent`, in a reply block or a stream delta.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReasoning {
    #[serde(default)]
    reasoning_text: Option<WireReasoningText>,
    #[serde(default)]
    redacted_content: Option<String>,
    /// Stream deltas carry text and signature directly.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireReasoningText {
    #[serde(default)]
    text: String,
    #[serde(default)]
    signature: Option<String>,
}

/// Token usage, in a reply or the stream's `metadata` event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
    #[serde(default)]
    cache_read_input_tokens: u32,
    #[serde(default)]
    cache_write_input_tokens: u32,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            // Like Anthropic's API, Converse counts cached and cache-writing input apart.
            input_tokens: self
                .input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_write_input_tokens),
            output_tokens: self.output_tokens,
            cached_input_tokens: self.cache_read_input_tokens,
            cache_write_input_tokens: self.cache_write_input_tokens,
            reasoning_tokens: 0,
            estimated: false,
        }
    }
}

/// A Converse stop reason.
fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// The request id AWS gives every reply; Converse's body has no id of its own.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| format!("bedrock-{}", uuid::Uuid::new_v4()), str::to_owned)
}

#[async_trait::async_trait]
impl Provider for BedrockProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        ProviderKind::Bedrock.gen_ai_provider()
    }

    fn upstream(&self) -> Option<&Upstream> {
        Some(&self.upstream)
    }

    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.converse_request(model, request)?;
        let response = self.post(model, "converse", &body, "application/json", false).await?;
        let id = request_id(response.headers());
        let reply: ConverseReply = self.upstream.json(response).await?;
        let mut message = Message {
            role: Role::Assistant,
            content: Vec::new(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        };
        for block in reply.output.message.content {
            if let Some(text) = block.text {
                message.content.push(ContentPart::Text(text));
            }
            if let Some(call) = block.tool_use {
                message.tool_calls.push(ToolCall {
                    id: call.tool_use_id,
                    name: call.name,
                    arguments: call.input.to_string(),
                    signature: None,
                });
            }
            if let Some(r) = block.reasoning_content {
                let part = match (r.reasoning_text, r.redacted_content) {
                    (_, Some(data)) => {
                        Reasoning { redacted_data: Some(data), ..Reasoning::default() }
                    }
                    (Some(t), None) => {
                        Reasoning { text: t.text, signature: t.signature, redacted_data: None }
                    }
                    (None, None) => continue,
                };
                message.content.push(ContentPart::Reasoning(part));
            }
        }
        let mut finish_reason = finish_reason(&reply.stop_reason);
        if !message.tool_calls.is_empty() && finish_reason == FinishReason::Stop {
            finish_reason = FinishReason::ToolCalls;
        }
        let usage = match &reply.usage {
            Some(usage) => usage.usage(),
            None => super::estimate_usage(request, message.output_bytes()),
        };
        Ok(ChatResponse { id, provider_model: model.to_owned(), message, finish_reason, usage })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let body = self.converse_request(model, request)?;
        let response = self
            .post(model, "converse-stream", &body, "application/vnd.amazon.eventstream", true)
            .await?;
        Ok(stream::events(self.upstream.clone(), response, model))
    }

    async fn embed(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        self.embeddings(model, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_decide_the_kind_whatever_the_status() {
        use ProviderErrorKind as K;
        for (t, kind) in [
            (
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                K::RateLimited,
            ),
            ("throttlingException", K::RateLimited),
            ("ServiceQuotaExceededException", K::RateLimited),
            ("ModelNotReadyException", K::Server),
            ("com.amazonaws.bedrock#InternalServerException", K::Server),
            ("serviceUnavailableException", K::Server),
            ("ModelTimeoutException", K::Timeout),
            ("ValidationException", K::Rejected),
            ("AccessDeniedException", K::Auth),
            ("ExpiredTokenException", K::Auth),
            ("ResourceNotFoundException", K::NotFound),
        ] {
            assert_eq!(error_kind(t), Some(kind), "{t}");
        }
        assert_eq!(error_kind("SomethingNewException"), None);
        let mut headers = HeaderMap::new();
        assert_eq!(
            error_type(&headers, br#"{"__type":"ValidationException"}"#).as_deref(),
            Some("ValidationException")
        );
        headers.insert("x-amzn-errortype", "ThrottlingException:x".parse().unwrap());
        assert_eq!(error_type(&headers, b"{}").as_deref(), Some("ThrottlingException:x"));
    }

    #[test]
    fn model_ids_profiles_and_arns_are_one_path_segment() {
        assert_eq!(
            model_segment("us.anthropic.claude-sonnet-4-20250514-v1:0"),
            "us.anthropic.claude-sonnet-4-20250514-v1%3A0"
        );
        assert_eq!(
            model_segment(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0"
            ),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-3-70b-instruct-v1%3A0"
        );
    }
}
