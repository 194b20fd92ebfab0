//! Google Gemini (Generative Language API): `POST {base}/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, the key in the `x-goog-api-key` header, never in the URL.
//! The same translation serves Gemini on Vertex AI ([`super::VertexProvider`]), which only
//! changes the URL and sends a bearer token instead of the key.
//!
//! The translation: system messages become `systemInstruction`; user and tool messages are
//! `user` turns, assistant messages `model` turns (consecutive turns of one role merged, so
//! the responses to parallel calls share one turn); images become `inlineData` (bytes, data
//! URLs) or `fileData` (other URLs); tool calls are `functionCall` parts and tool results
//! `functionResponse` parts, which Gemini matches by function name, so a tool message's name
//! is looked up from the assistant call it answers. Gemini gives no ids to its calls; the
//! adapter numbers them `call_0`, `call_1`, …
//!
//! Reasoning: a request's control becomes `thinkingConfig` (`thinkingBudget`, the effort's
//! budget when only an effort is given, and `includeThoughts`); `thought` parts come back as
//! reasoning parts. Gemini signs its reasoning with `thoughtSignature` on the parts that
//! follow it: on a `functionCall` part it becomes the tool call's signature, on a text part
//! the signature of the reasoning part before it (or a reasoning part of its own). Both go
//! back on the next turn where they came from, as Gemini requires for function calling.
//! Documents become `inlineData` / `fileData`; cache breakpoints are skipped (Gemini caches
//! implicitly).
//!
//! A stream is a sequence of `data:` chunks, each a partial `GenerateContentResponse`, with no
//! end marker: the chunk with a `finishReason` is the end, and a body that ends before one is
//! a cut stream.
//!
//! The reply's id is Gemini's `responseId`, or `gen-<uuid>` when a reply carries none. Every
//! documented `finishReason` maps to the nearest domain reason ([`finish_reason`]), and a reply
//! that carries function calls finishes `ToolCalls` whatever the reason says.

mod embed;

use std::{collections::HashMap, sync::Arc};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ChatStream, Provider, ProviderError,
    http::{Upstream, data_url},
    openai::path_segment,
    transport::UpstreamRequest,
    vertex::VertexAccess,
};
use crate::{
    chat::{
        ChatEvent, ChatRequest, ChatResponse, ContentPart, DocumentSource, FinishReason,
        ImageDetail, ImageSource, Message, Reasoning, ReasoningDelta, ResponseFormat, Role,
        ToolCall, ToolCallDelta, ToolChoice, Usage,
    },
    config::ConnectionSettings,
};

/// The Gemini provider.
#[derive(Debug)]
pub struct GeminiProvider {
    upstream: Upstream,
    /// Set when the wire format is sent to Vertex AI instead: its URL and bearer token.
    vertex: Option<Arc<VertexAccess>>,
}

impl GeminiProvider {
    /// A Gemini provider.
    pub fn new(name: &str, connection: &ConnectionSettings) -> Result<Self, ProviderError> {
        Ok(GeminiProvider { upstream: Upstream::new(name, connection)?, vertex: None })
    }

    /// Gemini models on Vertex AI, reached through `vertex`.
    pub(super) fn on_vertex(upstream: Upstream, vertex: Arc<VertexAccess>) -> Self {
        GeminiProvider { upstream, vertex: Some(vertex) }
    }

    async fn request(
        &self,
        model: &str,
        body: &Value,
        stream: bool,
    ) -> Result<UpstreamRequest, ProviderError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let method = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
        if let Some(vertex) = &self.vertex {
            return Ok(vertex.post(&self.upstream, "google", model, method).await?.json(body));
        }
        let url = format!("{}/models/{}:{method}", self.upstream.base_url, path_segment(model));
        let builder = self.upstream.post(&url);
        let builder = match self.upstream.key() {
            Some(key) => builder.header("x-goog-api-key", key.expose()),
            None => builder,
        };
        Ok(builder.json(body))
    }

    fn unsupported(&self, field: impl Into<String>, why: impl Into<String>) -> ProviderError {
        ProviderError::unsupported(&self.upstream.name, field, why)
    }

    /// The wire request.
    fn body(&self, request: &ChatRequest) -> Result<Value, ProviderError> {
        let mut body = Map::new();
        let mut system: Vec<Value> = Vec::new();
        let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
        // Tool call id → function name, for the functionResponse parts.
        let mut call_names: HashMap<&str, &str> = HashMap::new();
        for (i, m) in request.messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            if m.name.is_some() {
                return Err(
                    self.unsupported(format!("{at}.name"), "Gemini has no participant names")
                );
            }
            let (role, parts) = match m.role {
                Role::System => {
                    system.extend(self.parts(&at, m)?);
                    continue;
                }
                Role::User => ("user", self.parts(&at, m)?),
                Role::Assistant => {
                    let mut parts = self.parts(&at, m)?;
                    for (j, call) in m.tool_calls.iter().enumerate() {
                        call_names.insert(&call.id, &call.name);
                        let args = if call.arguments.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str::<Value>(&call.arguments).map_err(|e| {
                                self.unsupported(
                                    format!("{at}.tool_calls[{j}].arguments_json"),
                                    format!("is not JSON: {e}"),
                                )
                            })?
                        };
                        let mut part = json!({"functionCall": {"name": call.name, "args": args}});
                        if let Some(signature) = &call.signature {
                            part["thoughtSignature"] = json!(signature);
                        }
                        parts.push(part);
                    }
                    ("model", parts)
                }
                Role::Tool => {
                    if m.content.iter().any(|p| {
                        !matches!(p, ContentPart::Text(_) | ContentPart::CacheBreakpoint(_))
                    }) {
                        return Err(self.unsupported(
                            format!("{at}.content"),
                            "Gemini tool results hold only text",
                        ));
                    }
                    let id = m.tool_call_id.as_deref().unwrap_or_default();
                    let Some(name) = call_names.get(id) else {
                        return Err(self.unsupported(
                            format!("{at}.tool_call_id"),
                            "Gemini matches a tool result to its call by function name, and no earlier assistant message has a tool call with this id",
                        ));
                    };
                    let text = m.joined_text();
                    let response = match serde_json::from_str::<Value>(&text) {
                        Ok(object @ Value::Object(_)) => object,
                        _ => json!({"result": text}),
                    };
                    (
                        "user",
                        vec![json!({"functionResponse": {"name": name, "response": response}})],
                    )
                }
            };
            match turns.last_mut() {
                Some((last, existing)) if *last == role => existing.extend(parts),
                _ => turns.push((role, parts)),
            }
        }
        if !system.is_empty() {
            body.insert("systemInstruction".into(), json!({"parts": system}));
        }
        let contents: Vec<Value> =
            turns.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
        body.insert("contents".into(), Value::Array(contents));

        let g = &request.generation;
        let mut config = Map::new();
        let numbers = [
            ("temperature", g.temperature),
            ("topP", g.top_p),
            ("presencePenalty", g.presence_penalty),
            ("frequencyPenalty", g.frequency_penalty),
        ];
        for (field, value) in numbers {
            if let Some(v) = value {
                config.insert(field.into(), json!(v));
            }
        }
        if let Some(k) = g.top_k {
            config.insert("topK".into(), json!(k));
        }
        if let Some(max) = g.max_tokens {
            config.insert("maxOutputTokens".into(), json!(max));
        }
        if let Some(budget) = g.reasoning.as_ref().and_then(|r| r.budget()) {
            config.insert(
                "thinkingConfig".into(),
                json!({"thinkingBudget": budget, "includeThoughts": true}),
            );
        }
        if !g.stop.is_empty() {
            config.insert("stopSequences".into(), json!(g.stop));
        }
        if let Some(seed) = g.seed {
            let seed = i32::try_from(seed)
                .map_err(|_| self.unsupported("generation.seed", "Gemini takes a 32-bit seed"))?;
            config.insert("seed".into(), json!(seed));
        }
        match &g.response_format {
            ResponseFormat::Text => {}
            ResponseFormat::JsonObject => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            ResponseFormat::JsonSchema(s) => {
                config.insert("responseMimeType".into(), json!("application/json"));
                config.insert("responseJsonSchema".into(), s.schema.clone());
            }
        }
        if !config.is_empty() {
            body.insert("generationConfig".into(), Value::Object(config));
        }

        if !request.tools.is_empty() {
            if g.parallel_tool_calls == Some(false) {
                return Err(self.unsupported(
                    "generation.parallel_tool_calls",
                    "Gemini cannot be told to call one tool at a time",
                ));
            }
            let mut declarations = Vec::with_capacity(request.tools.len());
            for (i, t) in request.tools.iter().enumerate() {
                if t.strict == Some(true) {
                    return Err(self.unsupported(
                        format!("tools[{i}].strict"),
                        "Gemini has no strict mode for function arguments",
                    ));
                }
                declarations
                    .push(Value::Object(super::tool_declaration(t, "parametersJsonSchema")));
            }
            body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        }
        if let Some(choice) = &request.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
        }
        Ok(Value::Object(body))
    }

    fn parts(&self, at: &str, m: &Message) -> Result<Vec<Value>, ProviderError> {
        let mut parts = Vec::with_capacity(m.content.len());
        // A signature given alone belongs to the part after it.
        let mut pending_signature: Option<&str> = None;
        for (j, part) in m.content.iter().enumerate() {
            match part {
                ContentPart::Text(text) if text.is_empty() => {}
                ContentPart::Text(text) => {
                    let mut part = json!({"text": text});
                    if let Some(signature) = pending_signature.take() {
                        part["thoughtSignature"] = json!(signature);
                    }
                    parts.push(part);
                }
                ContentPart::CacheBreakpoint(_) => {}
                ContentPart::Reasoning(r) => {
                    if r.redacted_data.is_some() {
                        // Another provider's redacted reasoning means nothing to Gemini.
                        continue;
                    }
                    if r.text.is_empty() {
                        pending_signature = r.signature.as_deref();
                        continue;
                    }
                    let mut part = json!({"text": r.text, "thought": true});
                    if let Some(signature) = &r.signature {
                        part["thoughtSignature"] = json!(signature);
                    }
                    parts.push(part);
                }
                ContentPart::Document(document) => {
                    let at = format!("{at}.content[{j}].document");
                    let mime = document.mime_type.as_deref().unwrap_or("application/pdf");
                    parts.push(match &document.source {
                        DocumentSource::Data(data) => json!({"inlineData": {
                            "mimeType": mime,
                            "data": base64::engine::general_purpose::STANDARD.encode(data),
                        }}),
                        DocumentSource::Url(url) => {
                            if document.mime_type.is_none()
                                && !url.to_ascii_lowercase().ends_with(".pdf")
                            {
                                return Err(self.unsupported(
                                    format!("{at}.mime_type"),
                                    "Gemini needs the MIME type of a document given by URL",
                                ));
                            }
                            json!({"fileData": {"mimeType": mime, "fileUri": url}})
                        }
                    });
                }
                ContentPart::Image(image) => {
                    let at = format!("{at}.content[{j}].image");
                    if matches!(image.detail, Some(ImageDetail::Low | ImageDetail::High)) {
                        return Err(self.unsupported(
                            format!("{at}.detail"),
                            "Gemini does not take a detail level per image",
                        ));
                    }
                    let part = match &image.source {
                        ImageSource::Data(data) => json!({"inlineData": {
                            "mimeType": image.mime_type.as_deref().unwrap_or("image/png"),
                            "data": base64::engine::general_purpose::STANDARD.encode(data),
                        }}),
                        ImageSource::Url(url) => match data_url(url) {
                            Some((mime, data)) => {
                                json!({"inlineData": {"mimeType": mime, "data": data}})
                            }
                            None => {
                                let Some(mime) = image.mime_type.as_deref() else {
                                    return Err(self.unsupported(
                                        format!("{at}.mime_type"),
                                        "Gemini needs the MIME type of an image given by URL",
                                    ));
                                };
                                json!({"fileData": {"mimeType": mime, "fileUri": url}})
                            }
                        },
                    };
                    parts.push(part);
                }
            }
        }
        Ok(parts)
    }
}

/// Gemini's `Candidate.FinishReason` in domain terms. Every value of Google's documented list
/// is named, so that one added later is a deliberate choice here rather than an accident.
fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        // Withheld by a policy: safety settings, the terminology blocklist, prohibited content,
        // personal data, recitation of training data, and the same for generated images.
        "SAFETY"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "RECITATION"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        // Stopped for a reason that is no policy: an unsupported language, a function call the
        // model botched or was not offered, a server-side tool loop cut short, a thought
        // signature missing from the replayed history, a malformed response, an image that
        // failed or never came, or no reason at all.
        "LANGUAGE"
        | "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "MISSING_THOUGHT_SIGNATURE"
        | "MALFORMED_RESPONSE"
        | "IMAGE_OTHER"
        | "NO_IMAGE"
        | "OTHER"
        | "FINISH_REASON_UNSPECIFIED" => FinishReason::Other,
        // A value added after this list was written.
        _ => FinishReason::Other,
    }
}

/// A reply with function calls finishes `ToolCalls` whatever Gemini's reason: Gemini says
/// `STOP` for a turn of calls, and the calls are what the caller must act on.
fn with_calls(finish: FinishReason, calls: usize) -> FinishReason {
    if calls > 0 { FinishReason::ToolCalls } else { finish }
}

/// The reply's id: Gemini's `responseId`, or one made here when the reply has none, since the
/// API promises every completion an id.
fn reply_id(response_id: Option<String>) -> String {
    response_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("gen-{}", crate::call::new_request_id()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<WirePromptFeedback>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    thoughts_token_count: u32,
    #[serde(default)]
    cached_content_token_count: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            input_tokens: u.prompt_token_count,
            // Thinking tokens are billed as output.
            output_tokens: u.candidates_token_count.saturating_add(u.thoughts_token_count),
            cached_input_tokens: u.cached_content_token_count,
            cache_write_input_tokens: 0,
            reasoning_tokens: u.thoughts_token_count,
            estimated: false,
        }
    }
}

/// What one response (or stream chunk) says, in domain terms: reasoning and text parts in
/// order (adjacent text merged), and the function calls with their signatures.
struct Reading {
    content: Vec<ContentPart>,
    calls: Vec<(WireFunctionCall, Option<String>)>,
    finish: Option<FinishReason>,
}

impl Reading {
    /// Reasoning text, signed or not; it continues an unsigned reasoning part before it.
    fn thought(&mut self, text: String, signature: Option<String>) {
        match self.content.last_mut() {
            Some(ContentPart::Reasoning(r))
                if r.signature.is_none() && r.redacted_data.is_none() =>
            {
                r.text.push_str(&text);
                r.signature = signature;
            }
            _ => self.content.push(ContentPart::Reasoning(Reasoning {
                text,
                signature,
                redacted_data: None,
            })),
        }
    }

    fn text(&mut self, text: String) {
        match self.content.last_mut() {
            Some(ContentPart::Text(existing)) => existing.push_str(&text),
            _ if text.is_empty() => {}
            _ => self.content.push(ContentPart::Text(text)),
        }
    }
}

fn read(wire: &mut WireResponse) -> Reading {
    let mut reading = Reading { content: Vec::new(), calls: Vec::new(), finish: None };
    if wire.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some()) {
        // The prompt was blocked: no candidates come.
        reading.finish = Some(FinishReason::ContentFilter);
    }
    if let Some(candidate) = wire.candidates.first_mut() {
        if let Some(content) = candidate.content.take() {
            for part in content.parts {
                let signature = part.thought_signature.filter(|s| !s.is_empty());
                if let Some(call) = part.function_call {
                    reading.calls.push((call, signature));
                    continue;
                }
                if part.thought == Some(true) {
                    reading.thought(part.text.unwrap_or_default(), signature);
                    continue;
                }
                if signature.is_some() {
                    // A signed answer part: the signature closes the reasoning before it.
                    reading.thought(String::new(), signature);
                }
                if let Some(text) = part.text {
                    reading.text(text);
                }
            }
        }
        if let Some(reason) = candidate.finish_reason.as_deref() {
            reading.finish = Some(finish_reason(reason));
        }
    }
    reading
}

fn call_id(call: &WireFunctionCall, n: usize) -> String {
    call.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{n}"))
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        crate::config::ProviderKind::Gemini.gen_ai_provider()
    }

    fn upstream(&self) -> Option<&super::http::Upstream> {
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
        let body = self.body(request)?;
        let response = self.upstream.send(self.request(model, &body, false).await?, false).await?;
        let mut wire: WireResponse = self.upstream.json(response).await?;
        let reading = read(&mut wire);
        let Some(finish) = reading.finish else {
            return Err(self.upstream.invalid("the reply has no finished candidate"));
        };
        let tool_calls: Vec<ToolCall> = reading
            .calls
            .iter()
            .enumerate()
            .map(|(n, (call, signature))| ToolCall {
                id: call_id(call, n),
                name: call.name.clone(),
                arguments: call.args.clone().unwrap_or_else(|| json!({})).to_string(),
                signature: signature.clone(),
            })
            .collect();
        let finish = with_calls(finish, tool_calls.len());
        // No usage reported: the call pipeline estimates it, as for every provider.
        let usage = wire.usage_metadata.map(Usage::from).unwrap_or_default();
        Ok(ChatResponse {
            id: reply_id(wire.response_id),
            provider_model: wire.model_version.unwrap_or_else(|| model.to_owned()),
            message: Message {
                role: Role::Assistant,
                content: reading.content,
                name: None,
                tool_calls,
                tool_call_id: None,
            },
            finish_reason: finish,
            usage,
        })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let body = self.body(request)?;
        let response = self.upstream.send(self.request(model, &body, true).await?, true).await?;
        let upstream = self.upstream.clone();
        let mut events = self.upstream.events(response);
        let mut provider_model = model.to_owned();
        let stream = async_stream::stream! {
            let mut id: Option<String> = None;
            let mut usage: Option<Usage> = None;
            let mut calls = 0usize;
            let mut finish: Option<FinishReason> = None;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let mut wire: WireResponse = match serde_json::from_str(&event.data) {
                    Ok(wire) => wire,
                    Err(e) => {
                        yield Err(upstream.malformed_event(&e));
                        return;
                    }
                };
                if let Some(error) = &wire.error {
                    yield Err(upstream.stream_error(error));
                    return;
                }
                if let Some(r) = wire.response_id.take().filter(|r| !r.is_empty()) {
                    id = Some(r);
                }
                if let Some(m) = wire.model_version.take() {
                    provider_model = m;
                }
                if let Some(u) = wire.usage_metadata {
                    usage = Some(u.into());
                }
                let reading = read(&mut wire);
                for part in reading.content {
                    match part {
                        ContentPart::Reasoning(r) => yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta {
                            text: r.text,
                            signature: r.signature,
                            redacted_data: None,
                        })),
                        ContentPart::Text(text) => yield Ok(ChatEvent::ContentDelta(text)),
                        _ => {}
                    }
                }
                for (call, signature) in reading.calls {
                    let n = calls;
                    calls += 1;
                    // Gemini sends each call whole, in one piece.
                    yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                        index: u32::try_from(n).unwrap_or(u32::MAX),
                        id: Some(call_id(&call, n)),
                        name: Some(call.name.clone()),
                        arguments: call.args.unwrap_or_else(|| json!({})).to_string(),
                        signature,
                    }));
                }
                if reading.finish.is_some() {
                    finish = reading.finish;
                }
            }
            // No end marker in this format: a finish reason is the end, and its absence a cut.
            let Some(finish) = finish else {
                yield Err(upstream.cut());
                return;
            };
            if let Some(usage) = usage {
                yield Ok(ChatEvent::Usage(usage));
            }
            let reason = with_calls(finish, calls);
            yield Ok(ChatEvent::Finish { reason, id: reply_id(id), provider_model });
        };
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::chat::{Generation, JsonSchema, Tool};

    fn provider() -> GeminiProvider {
        let connection = ConnectionSettings::for_tests("http://127.0.0.1:1/v1beta");
        GeminiProvider::new("gemini", &connection).unwrap()
    }

    #[test]
    fn roles_tools_and_generation_map_to_the_wire() {
        let mut assistant = Message::text(Role::Assistant, "calling");
        assistant.tool_calls = vec![ToolCall {
            id: "call_0".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
            signature: None,
        }];
        let mut result = Message::text(Role::Tool, "sunny");
        result.tool_call_id = Some("call_0".into());
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::System, "sys"),
                Message::text(Role::User, "hi"),
                assistant,
                result,
            ],
            generation: Generation {
                temperature: Some(0.2),
                top_k: Some(3),
                max_tokens: Some(9),
                seed: Some(5),
                stop: vec!["x".into()],
                response_format: ResponseFormat::JsonSchema(JsonSchema {
                    name: "s".into(),
                    description: None,
                    schema: json!({"type": "object"}),
                    strict: None,
                }),
                ..Default::default()
            },
            tools: vec![Tool {
                name: "weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Tool("weather".into())),
            ..Default::default()
        };
        let body = provider().body(&request).unwrap();
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "sys");
        assert_eq!(body["contents"][1]["role"], "model");
        assert_eq!(body["contents"][1]["parts"][1]["functionCall"]["args"]["city"], "Paris");
        assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["name"], "weather");
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["response"]["result"],
            "sunny"
        );
        assert_eq!(body["generationConfig"]["topK"], 3);
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 9);
        assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(
            body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"][0],
            "weather"
        );
    }

    /// Google's documented `FinishReason` values, each with the domain reason it maps to.
    const FINISH_REASONS: [(&str, FinishReason); 20] = [
        ("FINISH_REASON_UNSPECIFIED", FinishReason::Other),
        ("STOP", FinishReason::Stop),
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("RECITATION", FinishReason::ContentFilter),
        ("LANGUAGE", FinishReason::Other),
        ("OTHER", FinishReason::Other),
        ("BLOCKLIST", FinishReason::ContentFilter),
        ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("SPII", FinishReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", FinishReason::Other),
        ("IMAGE_SAFETY", FinishReason::ContentFilter),
        ("IMAGE_PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("IMAGE_OTHER", FinishReason::Other),
        ("NO_IMAGE", FinishReason::Other),
        ("IMAGE_RECITATION", FinishReason::ContentFilter),
        ("UNEXPECTED_TOOL_CALL", FinishReason::Other),
        ("TOO_MANY_TOOL_CALLS", FinishReason::Other),
        ("MISSING_THOUGHT_SIGNATURE", FinishReason::Other),
        ("MALFORMED_RESPONSE", FinishReason::Other),
    ];

    #[test]
    fn every_documented_finish_reason_maps_to_its_nearest_domain_reason() {
        for (gemini, domain) in FINISH_REASONS {
            assert_eq!(finish_reason(gemini), domain, "{gemini}");
        }
        // Values added after the list, and the casing Gemini never sends, are `Other`.
        for unknown in ["SOME_FUTURE_REASON", "stop", ""] {
            assert_eq!(finish_reason(unknown), FinishReason::Other, "{unknown:?}");
        }
    }

    #[test]
    fn function_calls_finish_tool_calls_whatever_the_reason() {
        for (gemini, domain) in FINISH_REASONS {
            assert_eq!(with_calls(finish_reason(gemini), 1), FinishReason::ToolCalls, "{gemini}");
            assert_eq!(with_calls(finish_reason(gemini), 0), domain, "{gemini}");
        }
    }

    #[test]
    fn the_reply_id_is_gemini_s_or_made_here() {
        assert_eq!(reply_id(Some("mAitaJnJKMTVvdIPnoqOyAQ".into())), "mAitaJnJKMTVvdIPnoqOyAQ");
        for missing in [None, Some(String::new())] {
            let id = reply_id(missing);
            let uuid = id.strip_prefix("gen-").unwrap();
            assert_eq!(uuid.len(), 32, "{id}");
            assert!(uuid.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert_ne!(reply_id(None), reply_id(None));
    }

    #[test]
    fn a_tool_result_without_its_call_is_refused() {
        let mut result = Message::text(Role::Tool, "sunny");
        result.tool_call_id = Some("nope".into());
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "hi"), result],
            ..Default::default()
        };
        let err = provider().body(&request).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("messages[1].tool_call_id"));
    }
}
