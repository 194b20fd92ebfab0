//! Anthropic Messages (`POST {base}/v1/messages`). The same translation serves Claude on
//! Vertex AI ([`super::VertexProvider`]): there the model is in the URL, not the body, and
//! the version is the body's `anthropic_version`, not a header.
//!
//! The translation: system messages are hoisted into `system`; `max_tokens` is always sent
//! (the API requires it; the provider's `default_max_tokens` when the caller sets none);
//! content becomes blocks (`text`, `image`, `document`, `thinking`, `redacted_thinking`,
//! `tool_use`, `tool_result`), and a tool message becomes a `tool_result` block in a user turn;
//! consecutive turns of one role are merged, so the results of parallel tool calls share one
//! turn as the API requires. A cache breakpoint puts `cache_control` (with its TTL) on the
//! block before it, or on a tool's declaration; a system prompt with one is sent as blocks.
//! A reasoning request becomes `thinking: {type: enabled, budget_tokens}`, with `max_tokens`
//! raised above the budget when the caller set none. Reasoning parts go back as the signed
//! `thinking` / `redacted_thinking` blocks they came as; unsigned reasoning (from another
//! provider) cannot be verified by Anthropic and is left out.
//!
//! A stream is a sequence of named SSE events: `message_start`, then per content block
//! `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`) /
//! `content_block_stop` (`thinking_delta` and `signature_delta` for thinking blocks; a
//! `redacted_thinking` block comes whole in its start), then `message_delta` (stop reason,
//! output usage) and `message_stop`,
//! the end marker. `ping` is ignored; `error` ends the call with the error's kind. Tool calls
//! are numbered in the order their blocks start, whatever the block index.

use std::{collections::HashMap, sync::Arc};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ChatStream, Provider, ProviderError,
    http::{Upstream, data_url},
    transport::UpstreamRequest,
    vertex::VertexAccess,
};
use crate::{
    chat::{
        CacheControl, ChatEvent, ChatRequest, ChatResponse, ContentPart, Document, DocumentSource,
        FinishReason, Image, ImageDetail, ImageSource, Message, Reasoning, ReasoningDelta,
        ResponseFormat, Role, ToolCall, ToolCallDelta, ToolChoice, Usage,
    },
    config::ConnectionSettings,
};

/// Most cache breakpoints one Anthropic request may carry.
const MAX_CACHE_BREAKPOINTS: usize = 4;

/// Anthropic's `cache_control` for a breakpoint.
fn cache_control(control: &CacheControl) -> Value {
    match control.ttl {
        None => json!({"type": "ephemeral"}),
        Some(ttl) => json!({"type": "ephemeral", "ttl": ttl.as_str()}),
    }
}

/// The Anthropic provider.
#[derive(Debug)]
pub struct AnthropicProvider {
    upstream: Upstream,
    version: String,
    default_max_tokens: u32,
    /// Set for Claude on Vertex AI: its URL and bearer token, the version in the body.
    vertex: Option<Arc<VertexAccess>>,
}

impl AnthropicProvider {
    /// An Anthropic provider sending `anthropic-version: version`.
    pub fn new(
        name: &str,
        connection: &ConnectionSettings,
        version: &str,
        default_max_tokens: u32,
    ) -> Result<Self, ProviderError> {
        Ok(AnthropicProvider {
            upstream: Upstream::new(name, connection)?,
            version: version.to_owned(),
            default_max_tokens,
            vertex: None,
        })
    }

    /// Claude on Vertex AI, reached through `vertex`, with `version` as the body's
    /// `anthropic_version`.
    pub(super) fn on_vertex(
        upstream: Upstream,
        vertex: Arc<VertexAccess>,
        version: &str,
        default_max_tokens: u32,
    ) -> Self {
        AnthropicProvider {
            upstream,
            version: version.to_owned(),
            default_max_tokens,
            vertex: Some(vertex),
        }
    }

    async fn request(
        &self,
        model: &str,
        mut body: Value,
        stream: bool,
    ) -> Result<UpstreamRequest, ProviderError> {
        if let Some(vertex) = &self.vertex {
            // Vertex names the model in the URL and takes the version in the body.
            if let Some(fields) = body.as_object_mut() {
                fields.remove("model");
                fields.insert("anthropic_version".into(), json!(self.version));
            }
            let method = if stream { "streamRawPredict" } else { "rawPredict" };
            return Ok(vertex.post(&self.upstream, "anthropic", model, method).await?.json(&body));
        }
        let builder = self
            .upstream
            .post(&format!("{}/v1/messages", self.upstream.base_url))
            .header("anthropic-version", &self.version);
        let builder = match self.upstream.key() {
            Some(key) => builder.header("x-api-key", key.expose()),
            None => builder,
        };
        Ok(builder.json(&body))
    }

    fn unsupported(&self, field: impl Into<String>, why: impl Into<String>) -> ProviderError {
        ProviderError::unsupported(&self.upstream.name, field, why)
    }

    /// The wire request for `model`.
    fn body(
        &self,
        model: &str,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<Value, ProviderError> {
        let g = &request.generation;
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        let budget = g.reasoning.as_ref().and_then(|r| r.budget());
        let max_tokens = match (g.max_tokens, budget) {
            (Some(max), Some(budget)) if max <= budget => {
                return Err(self.unsupported(
                    "generation.max_tokens",
                    format!("must exceed the reasoning budget ({budget} tokens) on Anthropic"),
                ));
            }
            (Some(max), _) => max,
            (None, Some(budget)) => budget.saturating_add(self.default_max_tokens),
            (None, None) => self.default_max_tokens,
        };
        body.insert("max_tokens".into(), json!(max_tokens));
        if let Some(budget) = budget {
            self.thinking_compatible(request)?;
            body.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
        }

        let mut system: Vec<Value> = Vec::new();
        let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
        for (i, m) in request.messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            if m.name.is_some() {
                return Err(
                    self.unsupported(format!("{at}.name"), "Anthropic has no participant names")
                );
            }
            let (role, blocks) = match m.role {
                Role::System => {
                    super::system_text_only(&self.upstream.name, &at, m)?;
                    system.extend(self.blocks(&at, &m.content)?);
                    continue;
                }
                Role::User => ("user", self.blocks(&at, &m.content)?),
                Role::Assistant => {
                    let mut blocks = self.blocks(&at, &m.content)?;
                    for (j, call) in m.tool_calls.iter().enumerate() {
                        let input = if call.arguments.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str::<Value>(&call.arguments).map_err(|e| {
                                self.unsupported(
                                    format!("{at}.tool_calls[{j}].arguments_json"),
                                    format!("is not JSON: {e}"),
                                )
                            })?
                        };
                        blocks.push(json!({
                            "type": "tool_use", "id": call.id, "name": call.name, "input": input
                        }));
                    }
                    ("assistant", blocks)
                }
                Role::Tool => {
                    let content = self.blocks(&at, &m.content)?;
                    let result = json!({
                        "type": "tool_result",
                        "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                        "content": content,
                    });
                    ("user", vec![result])
                }
            };
            match turns.last_mut() {
                Some((last, existing)) if *last == role => existing.extend(blocks),
                _ => turns.push((role, blocks)),
            }
        }
        if system.iter().any(|b| b.get("cache_control").is_some()) {
            body.insert("system".into(), Value::Array(system));
        } else if !system.is_empty() {
            let texts: Vec<&str> =
                system.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
            body.insert("system".into(), json!(texts.join("\n\n")));
        }
        let messages: Vec<Value> = turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect();
        body.insert("messages".into(), Value::Array(messages));

        if let Some(t) = g.temperature {
            if t > 1.0 {
                return Err(self.unsupported(
                    "generation.temperature",
                    format!("Anthropic accepts 0 to 1, got {t}"),
                ));
            }
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = g.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(k) = g.top_k {
            body.insert("top_k".into(), json!(k));
        }
        if !g.stop.is_empty() {
            body.insert("stop_sequences".into(), json!(g.stop));
        }
        if g.presence_penalty.is_some() {
            return Err(self
                .unsupported("generation.presence_penalty", "Anthropic has no presence penalty"));
        }
        if g.frequency_penalty.is_some() {
            return Err(self.unsupported(
                "generation.frequency_penalty",
                "Anthropic has no frequency penalty",
            ));
        }
        if g.seed.is_some() {
            return Err(self.unsupported("generation.seed", "Anthropic has no sampling seed"));
        }
        match &g.response_format {
            ResponseFormat::Text => {}
            ResponseFormat::JsonObject | ResponseFormat::JsonSchema(_) => {
                return Err(self.unsupported(
                    "generation.response_format",
                    "this adapter does not ask Anthropic for JSON output; describe the format in a tool and require it",
                ));
            }
        }

        if !request.tools.is_empty() {
            let mut tools = Vec::with_capacity(request.tools.len());
            for (i, t) in request.tools.iter().enumerate() {
                if t.strict == Some(true) {
                    return Err(self.unsupported(
                        format!("tools[{i}].strict"),
                        "this adapter does not ask Anthropic for strict tool arguments",
                    ));
                }
                let mut declaration = super::tool_declaration(t, "input_schema");
                if let Some(control) = &t.cache_control {
                    declaration.insert("cache_control".into(), cache_control(control));
                }
                tools.push(Value::Object(declaration));
            }
            body.insert("tools".into(), Value::Array(tools));
        }
        let breakpoints = request
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .filter(|p| matches!(p, ContentPart::CacheBreakpoint(_)))
            .count()
            + request.tools.iter().filter(|t| t.cache_control.is_some()).count();
        if breakpoints > MAX_CACHE_BREAKPOINTS {
            return Err(self.unsupported(
                "cache_control",
                format!("Anthropic takes at most {MAX_CACHE_BREAKPOINTS} cache breakpoints, got {breakpoints}"),
            ));
        }
        let mut choice = match &request.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::Tool(name)) => Some(json!({"type": "tool", "name": name})),
        };
        if g.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if let Some(obj) = c.as_object_mut()
                && obj.get("type").and_then(Value::as_str) != Some("none")
            {
                obj.insert("disable_parallel_tool_use".into(), json!(true));
            }
        }
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
        if stream {
            body.insert("stream".into(), json!(true));
        }
        Ok(Value::Object(body))
    }

    /// What extended thinking cannot be combined with, refused by name: a changed
    /// temperature or top_k, a top_p below 0.95, and a forced tool call.
    fn thinking_compatible(&self, request: &ChatRequest) -> Result<(), ProviderError> {
        let g = &request.generation;
        let why = "cannot be combined with reasoning on Anthropic";
        if g.temperature.is_some_and(|t| t != 1.0) {
            return Err(self.unsupported("generation.temperature", why));
        }
        if g.top_k.is_some() {
            return Err(self.unsupported("generation.top_k", why));
        }
        if g.top_p.is_some_and(|p| p < 0.95) {
            return Err(self.unsupported("generation.top_p", format!("below 0.95 {why}")));
        }
        if matches!(request.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool(_))) {
            return Err(self.unsupported("tool_choice", format!("a forced tool call {why}")));
        }
        Ok(())
    }

    fn blocks(&self, at: &str, content: &[ContentPart]) -> Result<Vec<Value>, ProviderError> {
        let mut blocks: Vec<Value> = Vec::with_capacity(content.len());
        for (j, part) in content.iter().enumerate() {
            match part {
                // The API rejects empty text blocks.
                ContentPart::Text(text) if text.is_empty() => {}
                ContentPart::Text(text) => blocks.push(json!({"type": "text", "text": text})),
                ContentPart::Image(image) => {
                    blocks.push(self.image(&format!("{at}.content[{j}].image"), image)?);
                }
                ContentPart::Document(document) => {
                    blocks.push(self.document(&format!("{at}.content[{j}].document"), document)?);
                }
                ContentPart::Reasoning(r) => match (&r.redacted_data, &r.signature) {
                    (Some(data), _) => {
                        blocks.push(json!({"type": "redacted_thinking", "data": data}))
                    }
                    (None, Some(signature)) => blocks.push(
                        json!({"type": "thinking", "thinking": r.text, "signature": signature}),
                    ),
                    // Unsigned reasoning came from another provider; Anthropic would refuse it.
                    (None, None) => {}
                },
                ContentPart::CacheBreakpoint(control) => match blocks.last_mut() {
                    Some(Value::Object(block)) => {
                        block.insert("cache_control".into(), cache_control(control));
                    }
                    _ => {
                        return Err(self.unsupported(
                            format!("{at}.content[{j}].cache_control"),
                            "a cache breakpoint must follow a non-empty part",
                        ));
                    }
                },
            }
        }
        Ok(blocks)
    }

    fn document(&self, at: &str, document: &Document) -> Result<Value, ProviderError> {
        let mime = document.mime_type.as_deref();
        let source = match (&document.source, mime) {
            (DocumentSource::Data(data), Some("application/pdf")) => json!({
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            }),
            (DocumentSource::Data(data), Some("text/plain")) => match std::str::from_utf8(data) {
                Ok(text) => json!({"type": "text", "media_type": "text/plain", "data": text}),
                Err(_) => {
                    return Err(
                        self.unsupported(format!("{at}.data"), "text/plain data is not UTF-8")
                    );
                }
            },
            (DocumentSource::Data(_), other) => {
                return Err(self.unsupported(
                    format!("{at}.mime_type"),
                    format!(
                        "Anthropic takes application/pdf or text/plain documents, not {}",
                        other.unwrap_or("none")
                    ),
                ));
            }
            (DocumentSource::Url(url), None | Some("application/pdf")) => {
                json!({"type": "url", "url": url})
            }
            (DocumentSource::Url(_), Some(other)) => {
                return Err(self.unsupported(
                    format!("{at}.mime_type"),
                    format!("Anthropic takes documents by URL only as PDF, not {other}"),
                ));
            }
        };
        let mut block = json!({"type": "document", "source": source});
        if let Some(title) = &document.title {
            block["title"] = json!(title);
        }
        Ok(block)
    }

    fn image(&self, at: &str, image: &Image) -> Result<Value, ProviderError> {
        if matches!(image.detail, Some(ImageDetail::Low | ImageDetail::High)) {
            return Err(self.unsupported(
                format!("{at}.detail"),
                "Anthropic does not take an image detail level",
            ));
        }
        let source = match &image.source {
            ImageSource::Data(data) => json!({
                "type": "base64",
                "media_type": image.mime_type.as_deref().unwrap_or("image/png"),
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            }),
            ImageSource::Url(url) => match data_url(url) {
                Some((mime, data)) => json!({"type": "base64", "media_type": mime, "data": data}),
                None => json!({"type": "url", "url": url}),
            },
        };
        Ok(json!({"type": "image", "source": source}))
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
}

impl WireUsage {
    /// Later figures replace earlier ones; `message_delta` repeats only what changed.
    fn update(&mut self, newer: WireUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens =
            newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens =
            newer.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    fn usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            // Anthropic counts cached and cache-writing input apart from `input_tokens`.
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
                .saturating_add(cached),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: cached,
            cache_write_input_tokens: self.cache_creation_input_tokens.unwrap_or(0),
            // Anthropic counts thinking within `output_tokens` and reports no split.
            reasoning_tokens: 0,
            estimated: false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireStartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: WireBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: WireDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: WireMessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: Value,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct WireStartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct WireMessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        crate::config::ProviderKind::Anthropic.gen_ai_provider()
    }

    fn upstream(&self) -> Option<&super::http::Upstream> {
        Some(&self.upstream)
    }

    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.body(model, request, false)?;
        let response = self.upstream.send(self.request(model, body, false).await?, false).await?;
        let wire: WireResponse = self.upstream.json(response).await?;
        let mut content: Vec<ContentPart> = Vec::new();
        let mut tool_calls = Vec::new();
        for block in wire.content {
            match block.kind.as_str() {
                "text" => {
                    let text = block.text.unwrap_or_default();
                    match content.last_mut() {
                        Some(ContentPart::Text(existing)) => existing.push_str(&text),
                        _ if text.is_empty() => {}
                        _ => content.push(ContentPart::Text(text)),
                    }
                }
                "thinking" => content.push(ContentPart::Reasoning(Reasoning {
                    text: block.thinking.unwrap_or_default(),
                    signature: block.signature.filter(|s| !s.is_empty()),
                    redacted_data: None,
                })),
                "redacted_thinking" => content.push(ContentPart::Reasoning(Reasoning {
                    redacted_data: Some(block.data.unwrap_or_default()),
                    ..Reasoning::default()
                })),
                "tool_use" => tool_calls.push(ToolCall {
                    id: block.id.unwrap_or_default(),
                    name: block.name.unwrap_or_default(),
                    arguments: block.input.unwrap_or_else(|| json!({})).to_string(),
                    signature: None,
                }),
                // Server-tool blocks have no place in this API.
                _ => {}
            }
        }
        Ok(ChatResponse {
            id: wire.id,
            provider_model: if wire.model.is_empty() { model.to_owned() } else { wire.model },
            message: Message {
                role: Role::Assistant,
                content,
                name: None,
                tool_calls,
                tool_call_id: None,
            },
            finish_reason: wire.stop_reason.as_deref().map_or(FinishReason::Stop, finish_reason),
            usage: wire.usage.usage(),
        })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let body = self.body(model, request, true)?;
        let response = self.upstream.send(self.request(model, body, true).await?, true).await?;
        let upstream = self.upstream.clone();
        let mut events = self.upstream.events(response);
        let mut provider_model = model.to_owned();
        let stream = async_stream::stream! {
            let mut id = String::new();
            let mut usage = WireUsage::default();
            let mut finish = FinishReason::Stop;
            // Content block index → tool call number.
            let mut tool_index: HashMap<u32, u32> = HashMap::new();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let parsed: WireEvent = match serde_json::from_str(&event.data) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        yield Err(upstream.malformed_event(&e));
                        return;
                    }
                };
                match parsed {
                    WireEvent::MessageStart { message } => {
                        id = message.id;
                        if !message.model.is_empty() {
                            provider_model = message.model;
                        }
                        usage.update(message.usage);
                    }
                    WireEvent::ContentBlockStart { index, content_block } => {
                        match content_block.kind.as_str() {
                            "text" => {
                                if let Some(text) = content_block.text.filter(|t| !t.is_empty()) {
                                    yield Ok(ChatEvent::ContentDelta(text));
                                }
                            }
                            "thinking" => {
                                let text = content_block.thinking.unwrap_or_default();
                                let signature = content_block.signature.filter(|s| !s.is_empty());
                                if !text.is_empty() || signature.is_some() {
                                    yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { text, signature, redacted_data: None }));
                                }
                            }
                            "redacted_thinking" => {
                                yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta {
                                    redacted_data: Some(content_block.data.unwrap_or_default()),
                                    ..ReasoningDelta::default()
                                }));
                            }
                            "tool_use" => {
                                let n = u32::try_from(tool_index.len()).unwrap_or(u32::MAX);
                                tool_index.insert(index, n);
                                // The start block's `input` is `{}`; the arguments follow as
                                // input_json_delta pieces.
                                yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                                    index: n,
                                    id: content_block.id,
                                    name: content_block.name,
                                    arguments: String::new(),
                                    signature: None,
                                }));
                            }
                            _ => {}
                        }
                    }
                    WireEvent::ContentBlockDelta { index, delta } => match delta {
                        WireDelta::TextDelta { text } => {
                            if !text.is_empty() {
                                yield Ok(ChatEvent::ContentDelta(text));
                            }
                        }
                        WireDelta::InputJsonDelta { partial_json } => {
                            let Some(&n) = tool_index.get(&index) else {
                                yield Err(upstream.invalid(format!("input_json_delta for block {index}, which is not a tool_use block")));
                                return;
                            };
                            if !partial_json.is_empty() {
                                yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                                    index: n,
                                    id: None,
                                    name: None,
                                    arguments: partial_json,
                                    signature: None,
                                }));
                            }
                        }
                        WireDelta::ThinkingDelta { thinking } => {
                            if !thinking.is_empty() {
                                yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { text: thinking, ..ReasoningDelta::default() }));
                            }
                        }
                        WireDelta::SignatureDelta { signature } => {
                            yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { signature: Some(signature), ..ReasoningDelta::default() }));
                        }
                        WireDelta::Other => {}
                    },
                    WireEvent::MessageDelta { delta, usage: newer } => {
                        if let Some(reason) = delta.stop_reason.as_deref() {
                            finish = finish_reason(reason);
                        }
                        if let Some(newer) = newer {
                            usage.update(newer);
                        }
                    }
                    WireEvent::MessageStop {} => {
                        yield Ok(ChatEvent::Usage(usage.usage()));
                        yield Ok(ChatEvent::Finish { reason: finish, id, provider_model });
                        return;
                    }
                    WireEvent::Error { error } => {
                        yield Err(upstream.stream_error(&error));
                        return;
                    }
                    WireEvent::ContentBlockStop {} | WireEvent::Ping {} | WireEvent::Unknown => {}
                }
            }
            yield Err(upstream.cut());
        };
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::chat::{Generation, Tool};

    fn provider() -> AnthropicProvider {
        let connection = ConnectionSettings::for_tests("http://127.0.0.1:1");
        AnthropicProvider::new("anthropic", &connection, "2023-06-01", 1024).unwrap()
    }

    #[test]
    fn system_is_hoisted_and_tool_results_share_a_user_turn() {
        let mut assistant = Message::text(Role::Assistant, "");
        assistant.content.clear();
        assistant.tool_calls = vec![
            ToolCall {
                id: "a".into(),
                name: "f".into(),
                arguments: r#"{"x":1}"#.into(),
                signature: None,
            },
            ToolCall {
                id: "b".into(),
                name: "f".into(),
                arguments: r#"{"x":2}"#.into(),
                signature: None,
            },
        ];
        let mut r1 = Message::text(Role::Tool, "one");
        r1.tool_call_id = Some("a".into());
        let mut r2 = Message::text(Role::Tool, "two");
        r2.tool_call_id = Some("b".into());
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, "hi"),
                assistant,
                r1,
                r2,
            ],
            tools: vec![Tool {
                name: "f".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: None,
            }],
            generation: Generation { parallel_tool_calls: Some(false), ..Default::default() },
            ..Default::default()
        };
        let body = provider().body("claude", &request, false).unwrap();
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], 1024);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1]["input"]["x"], 2);
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "b");
        assert_eq!(body["tool_choice"]["disable_parallel_tool_use"], true);
    }

    #[test]
    fn fields_anthropic_lacks_are_refused_by_name() {
        let cases: [(Generation, &str); 3] = [
            (Generation { seed: Some(1), ..Default::default() }, "generation.seed"),
            (Generation { temperature: Some(1.5), ..Default::default() }, "generation.temperature"),
            (
                Generation { response_format: ResponseFormat::JsonObject, ..Default::default() },
                "generation.response_format",
            ),
        ];
        for (generation, field) in cases {
            let request = ChatRequest {
                messages: vec![Message::text(Role::User, "x")],
                generation,
                ..Default::default()
            };
            let err = provider().body("m", &request, false).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field));
        }
    }
}
