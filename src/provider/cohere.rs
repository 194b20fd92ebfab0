//! Cohere, API v2: chat through `POST {base}/v2/chat` (unary, and SSE with `stream: true`) and
//! embeddings through `POST {base}/v2/embed`, the key as a bearer token. The router hands a
//! target's call to this adapter; it translates and nothing more.
//!
//! The request is built in [`request`] (typed wire structs; what Cohere cannot take is refused
//! by field), the stream read in [`stream`], the embeddings in [`embed`]. A reply's
//! `message.content[]` text parts become the answer; `thinking` parts and the `tool_plan`
//! (Cohere's plan before it calls tools) become reasoning; `message.tool_calls` the tool
//! calls, with Cohere's ids. Citations mark spans of the answer that is already text, so the
//! answer comes back whole and the citation objects themselves are not carried (the domain has
//! no citation type).
//!
//! `finish_reason`: `COMPLETE` and `STOP_SEQUENCE` → stop, `MAX_TOKENS` → length, `TOOL_CALL`
//! → tool calls (as does any reply that carries calls); `ERROR` and `TIMEOUT` mean the
//! generation failed, so the call fails as a retryable upstream error rather than finishing.
//! Usage is what Cohere bills (`billed_units`: the raw `tokens` count adds template tokens
//! Cohere does not charge), falling back to `tokens` when a reply carries no billed units.

mod embed;
mod request;
mod stream;

use serde::Deserialize;

use super::{
    ChatStream, Provider, ProviderError, ProviderErrorKind,
    http::Upstream,
    transport::{UpstreamRequest, UpstreamResponse},
};
use crate::{
    chat::{
        ChatRequest, ChatResponse, ContentPart, FinishReason, Message, Reasoning, Role, ToolCall,
        Usage,
    },
    config::ConnectionSettings,
};

/// The Cohere provider.
#[derive(Debug)]
pub struct CohereProvider {
    upstream: Upstream,
}

impl CohereProvider {
    /// A Cohere provider.
    pub fn new(name: &str, connection: &ConnectionSettings) -> Result<Self, ProviderError> {
        Ok(CohereProvider { upstream: Upstream::new(name, connection)? })
    }

    /// A POST of `body` to `{base}{path}` with the bearer key.
    fn post(&self, path: &str, body: &impl serde::Serialize) -> UpstreamRequest {
        let builder = self.upstream.post(&format!("{}{path}", self.upstream.base_url));
        let builder = match self.upstream.key() {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        };
        builder.json(body)
    }

    /// Sends `request`; Cohere's 498 ("invalid token") is an auth failure like a 401.
    async fn send(
        &self,
        request: UpstreamRequest,
        stream: bool,
    ) -> Result<UpstreamResponse, ProviderError> {
        self.upstream.send(request, stream).await.map_err(|mut e| {
            if e.status == Some(498) {
                e.kind = ProviderErrorKind::Auth;
            }
            e
        })
    }

    fn unsupported(&self, field: impl Into<String>, why: impl Into<String>) -> ProviderError {
        ProviderError::unsupported(&self.upstream.name, field, why)
    }

    /// `finish_reason` in domain terms, or the error a failed generation is.
    fn finish(&self, reason: &str, calls: usize) -> Result<FinishReason, ProviderError> {
        let finish = match reason {
            "COMPLETE" | "STOP_SEQUENCE" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            "TOOL_CALL" => FinishReason::ToolCalls,
            "ERROR" => {
                return Err(self
                    .upstream
                    .error(ProviderErrorKind::Server, "Cohere ended the generation with ERROR"));
            }
            "TIMEOUT" => {
                return Err(self.upstream.error(
                    ProviderErrorKind::Timeout,
                    "Cohere ended the generation with TIMEOUT",
                ));
            }
            // A value added after this list was written.
            _ => FinishReason::Other,
        };
        Ok(if calls > 0 { FinishReason::ToolCalls } else { finish })
    }
}

/// The reply's id: Cohere's, or one made here when it sends none.
fn reply_id(id: Option<String>) -> String {
    id.filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("gen-{}", crate::call::new_request_id()))
}

/// `POST /v2/chat`'s reply.
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<WireContent>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

/// A content item of a reply: `text` or `thinking`; other types are skipped.
#[derive(Debug, Deserialize)]
struct WireContent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Default, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// `usage`: Cohere counts in JSON numbers that may carry a fraction (`5.0`).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    billed_units: Option<WireTokens>,
    #[serde(default)]
    tokens: Option<WireTokens>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct WireTokens {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

/// A token count from Cohere's number.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
fn count(n: Option<f64>) -> u32 {
    n.filter(|n| n.is_finite()).map_or(0, |n| n.round().clamp(0.0, f64::from(u32::MAX)) as u32)
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        let billed =
            u.billed_units.filter(|b| b.input_tokens.is_some() || b.output_tokens.is_some());
        let tokens = billed.or(u.tokens).unwrap_or_default();
        Usage {
            input_tokens: count(tokens.input_tokens),
            output_tokens: count(tokens.output_tokens),
            // `cached_tokens` is left out: whether billed input includes them is not
            // documented, and Cohere lists no cache-read price to bill them at.
            ..Usage::default()
        }
    }
}

#[async_trait::async_trait]
impl Provider for CohereProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        crate::config::ProviderKind::Cohere.gen_ai_provider()
    }

    fn upstream(&self) -> Option<&Upstream> {
        Some(&self.upstream)
    }

    async fn embed(
        &self,
        model: &str,
        request: &crate::embed::EmbedRequest,
    ) -> Result<crate::embed::Embeddings, ProviderError> {
        self.embeddings(model, request).await
    }

    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.body(model, request, false)?;
        let response = self.send(self.post("/v2/chat", &body), false).await?;
        let wire: WireResponse = self.upstream.json(response).await?;
        let Some(reason) = wire.finish_reason.as_deref() else {
            return Err(self.upstream.invalid("the reply has no finish_reason"));
        };
        let message = wire.message.unwrap_or_default();
        let mut content = Vec::new();
        if let Some(plan) = message.tool_plan.filter(|p| !p.is_empty()) {
            content.push(ContentPart::Reasoning(Reasoning { text: plan, ..Reasoning::default() }));
        }
        for item in message.content {
            match (item.kind.as_str(), item.text, item.thinking) {
                ("text", Some(text), _) if !text.is_empty() => {
                    content.push(ContentPart::Text(text));
                }
                ("thinking", _, Some(text)) if !text.is_empty() => {
                    content.push(ContentPart::Reasoning(Reasoning { text, ..Reasoning::default() }))
                }
                _ => {}
            }
        }
        let mut tool_calls = Vec::with_capacity(message.tool_calls.len());
        for (n, call) in message.tool_calls.into_iter().enumerate() {
            let function = call.function.unwrap_or_default();
            let Some(name) = function.name.filter(|n| !n.is_empty()) else {
                return Err(self.upstream.invalid(format!("tool call {n} has no function name")));
            };
            tool_calls.push(ToolCall {
                id: call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{n}")),
                name,
                arguments: function.arguments.unwrap_or_else(|| "{}".to_owned()),
                signature: None,
            });
        }
        let finish_reason = self.finish(reason, tool_calls.len())?;
        Ok(ChatResponse {
            id: reply_id(wire.id),
            // Cohere's reply does not name the model.
            provider_model: model.to_owned(),
            message: Message {
                role: Role::Assistant,
                content,
                name: None,
                tool_calls,
                tool_call_id: None,
            },
            finish_reason,
            // No usage reported: the call pipeline estimates it, as for every provider.
            usage: wire.usage.map(Usage::from).unwrap_or_default(),
        })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let body = self.body(model, request, true)?;
        let response = self.send(self.post("/v2/chat", &body), true).await?;
        Ok(self.events(model, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CohereProvider {
        CohereProvider::new("cohere", &ConnectionSettings::for_tests("http://127.0.0.1:1")).unwrap()
    }

    #[test]
    fn finish_reasons_map_and_failed_generations_are_errors() {
        let p = provider();
        let cases = [
            ("COMPLETE", FinishReason::Stop),
            ("STOP_SEQUENCE", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("TOOL_CALL", FinishReason::ToolCalls),
            ("SOMETHING_NEW", FinishReason::Other),
        ];
        for (cohere, domain) in cases {
            assert_eq!(p.finish(cohere, 0).unwrap(), domain, "{cohere}");
            assert_eq!(p.finish(cohere, 1).unwrap(), FinishReason::ToolCalls, "{cohere}");
        }
        assert_eq!(p.finish("ERROR", 0).unwrap_err().kind, ProviderErrorKind::Server);
        assert_eq!(p.finish("TIMEOUT", 1).unwrap_err().kind, ProviderErrorKind::Timeout);
    }

    #[test]
    fn co_api_key_configures_a_cohere_provider_at_cohere_s_url() {
        let env = [("CO_API_KEY".to_owned(), "co-0123456789".to_owned())];
        let config = crate::Config::from_yaml("", env).unwrap();
        let [provider] = config.providers.as_slice() else { panic!("{:?}", config.providers) };
        assert_eq!(provider.name, "cohere");
        let crate::config::ProviderSettings::Cohere { connection } = &provider.settings else {
            panic!("{:?}", provider.settings)
        };
        assert_eq!(connection.base_url, "https://api.cohere.com");
        assert_eq!(connection.api_key.as_ref().unwrap().expose(), "co-0123456789");
    }

    #[test]
    fn usage_prefers_billed_units_and_reads_fractions() {
        let wire: WireUsage = serde_json::from_str(
            r#"{"billed_units": {"input_tokens": 5.0, "output_tokens": 418}, "tokens": {"input_tokens": 71, "output_tokens": 418}, "cached_tokens": 2}"#,
        )
        .unwrap();
        let usage = Usage::from(wire);
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens),
            (5, 418, 0)
        );
        let wire: WireUsage =
            serde_json::from_str(r#"{"tokens": {"input_tokens": 71, "output_tokens": -3}}"#)
                .unwrap();
        assert_eq!((Usage::from(wire).input_tokens, Usage::from(wire).output_tokens), (71, 0));
    }
}
