//! OpenAI Chat Completions, the OpenAI-compatible APIs (Groq, DeepSeek, Mistral, Together,
//! OpenRouter, xAI, Ollama, vLLM, any base URL) and Azure OpenAI, which speaks the same wire
//! format behind a deployment-based URL and an `api-key` header.
//!
//! The compatible APIs differ in a few places only, kept in [`Dialect`]: whether they take
//! `top_k`, what the seed field is called, whether a stream may ask for usage with
//! `stream_options.include_usage`, and `max_tokens` vs `max_completion_tokens`.
//!
//! Reasoning: a request's control becomes `reasoning_effort` (a budget alone is mapped to an
//! effort), or OpenRouter's `reasoning` object; APIs without a control refuse it. Reasoning
//! text comes back in `reasoning_content` (DeepSeek, llama.cpp, older vLLM) or `reasoning`
//! (newer vLLM, Ollama, OpenRouter, Groq), as a reasoning part or delta. Chat Completions takes
//! no reasoning as input, so reasoning parts of earlier turns are left out, except DeepSeek's on
//! a turn that called tools, which its thinking mode needs back. Documents are `file` parts
//! (PDF data) on OpenAI and Azure; cache breakpoints are skipped (OpenAI caches implicitly).
//!
//! A stream is a sequence of `data:` chunks ending with `data: [DONE]`; usage comes in the last
//! chunk before it (with empty `choices`). A stream that ends without `[DONE]` is cut; a chunk
//! carrying `{"error": …}` ends the call with that error.

mod embed;
mod stream;

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ChatStream, Provider, ProviderError, http::Upstream, transport::UpstreamRequest};
use crate::{
    chat::{
        ChatRequest, ChatResponse, ContentPart, DocumentSource, FinishReason, ImageDetail,
        ImageSource, Message, Reasoning, ReasoningConfig, ReasoningEffort, ResponseFormat, Role,
        ToolCall, ToolChoice, Usage,
    },
    config::{ConnectionSettings, ProviderKind},
};

/// The small differences between OpenAI-compatible APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dialect {
    /// Accepts `top_k`.
    top_k: bool,
    /// The name of the seed field.
    seed: SeedField,
    /// Accepts `stream_options.include_usage` (the others report usage unasked, or not at all).
    stream_usage: bool,
    /// Takes `max_completion_tokens` rather than the older `max_tokens`.
    max_completion_tokens: bool,
    /// How the API takes a reasoning control.
    reasoning: ReasoningControl,
    /// Takes PDF documents as `file` content parts.
    documents: bool,
    /// Wants the reasoning of a turn that called tools back as `reasoning_content`.
    reasoning_back: bool,
}

/// Where an OpenAI-compatible API takes the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeedField {
    /// `seed`.
    Seed,
    /// Mistral's `random_seed`.
    RandomSeed,
}

/// How an OpenAI-compatible API takes a reasoning control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReasoningControl {
    /// `reasoning_effort: low|medium|high`.
    Effort,
    /// OpenRouter's `reasoning: {effort}` or `{max_tokens}`.
    Object,
    /// None: the model decides (DeepSeek's reasoner, Mistral's Magistral).
    Unsupported,
}

impl Dialect {
    fn of(kind: ProviderKind) -> Dialect {
        use ProviderKind as K;
        let base = Dialect {
            top_k: false,
            seed: SeedField::Seed,
            stream_usage: true,
            max_completion_tokens: false,
            reasoning: ReasoningControl::Effort,
            documents: false,
            reasoning_back: false,
        };
        match kind {
            K::OpenAi | K::AzureOpenAi => {
                Dialect { max_completion_tokens: true, documents: true, ..base }
            }
            K::Mistral => Dialect {
                seed: SeedField::RandomSeed,
                stream_usage: false,
                reasoning: ReasoningControl::Unsupported,
                ..base
            },
            K::DeepSeek => {
                Dialect { reasoning: ReasoningControl::Unsupported, reasoning_back: true, ..base }
            }
            K::OpenRouter => Dialect { top_k: true, reasoning: ReasoningControl::Object, ..base },
            K::Together | K::VLlm | K::OpenAiCompatible => Dialect { top_k: true, ..base },
            _ => base,
        }
    }
}

/// How requests are addressed and authenticated.
#[derive(Clone, Debug)]
enum Flavor {
    /// `{base}/chat/completions`, `Authorization: Bearer`. The URL is parsed once, not per
    /// call; `None` if it does not parse, which every call then reports.
    OpenAi { chat_url: Option<http::Uri> },
    /// `{base}/openai/deployments/{model}/chat/completions?api-version=…`, `api-key`.
    Azure { api_version: String },
}

/// An OpenAI or OpenAI-compatible provider.
#[derive(Debug)]
pub struct OpenAiProvider {
    upstream: Upstream,
    kind: ProviderKind,
    dialect: Dialect,
    flavor: Flavor,
}

impl OpenAiProvider {
    /// OpenAI or one of the compatible presets.
    pub fn new(
        name: &str,
        kind: ProviderKind,
        connection: &ConnectionSettings,
    ) -> Result<Self, ProviderError> {
        let upstream = Upstream::new(name, connection)?;
        let chat_url = http::Uri::try_from(format!("{}/chat/completions", upstream.base_url)).ok();
        Ok(OpenAiProvider {
            upstream,
            kind,
            dialect: Dialect::of(kind),
            flavor: Flavor::OpenAi { chat_url },
        })
    }

    /// Azure OpenAI: the target's model is the deployment name.
    pub fn azure(
        name: &str,
        connection: &ConnectionSettings,
        api_version: &str,
    ) -> Result<Self, ProviderError> {
        Ok(OpenAiProvider {
            upstream: Upstream::new(name, connection)?,
            kind: ProviderKind::AzureOpenAi,
            dialect: Dialect::of(ProviderKind::AzureOpenAi),
            flavor: Flavor::Azure { api_version: api_version.to_owned() },
        })
    }

    fn request(&self, model: &str, body: &WireRequest<'_>) -> UpstreamRequest {
        let chat_url = match &self.flavor {
            Flavor::OpenAi { chat_url } => chat_url.as_ref(),
            Flavor::Azure { .. } => None,
        };
        self.post(model, "chat/completions", chat_url).json(body)
    }

    /// A POST of the API's `endpoint` (`chat/completions`, `embeddings`) for `model`, at `url`
    /// when it was parsed once already, with the key as the flavor sends it: `Authorization:
    /// Bearer` at `{base}/{endpoint}`, or Azure's `api-key` at the deployment's URL.
    pub(super) fn post(
        &self,
        model: &str,
        endpoint: &str,
        url: Option<&http::Uri>,
    ) -> UpstreamRequest {
        let base = &self.upstream.base_url;
        let key = self.upstream.key();
        match &self.flavor {
            Flavor::OpenAi { .. } => {
                let builder = match url {
                    Some(url) => self.upstream.post_to(url.clone()),
                    None => self.upstream.post(&format!("{base}/{endpoint}")),
                };
                match &key {
                    Some(key) => builder.bearer_auth(key.expose()),
                    None => builder,
                }
            }
            Flavor::Azure { api_version } => {
                let builder = self.upstream.post(&format!(
                    "{base}/openai/deployments/{}/{endpoint}?api-version={}",
                    path_segment(model),
                    path_segment(api_version)
                ));
                match &key {
                    Some(key) => builder.header("api-key", key.expose()),
                    None => builder,
                }
            }
        }
    }

    /// The wire request for `model`.
    fn body<'a>(
        &self,
        model: &'a str,
        request: &'a ChatRequest,
        stream: bool,
    ) -> Result<WireRequest<'a>, ProviderError> {
        let name = &self.upstream.name;
        let mut body = WireRequest {
            model: matches!(self.flavor, Flavor::OpenAi { .. }).then_some(model),
            messages: request
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| message(name, self.dialect, i, m))
                .collect::<Result<Vec<_>, _>>()?,
            ..WireRequest::default()
        };

        let g = &request.generation;
        body.temperature = g.temperature;
        body.top_p = g.top_p;
        if let Some(k) = g.top_k {
            if !self.dialect.top_k {
                return Err(ProviderError::unsupported(
                    name,
                    "generation.top_k",
                    "this provider's API has no top_k",
                ));
            }
            body.top_k = Some(k);
        }
        if self.dialect.max_completion_tokens {
            body.max_completion_tokens = g.max_tokens;
        } else {
            body.max_tokens = g.max_tokens;
        }
        body.presence_penalty = g.presence_penalty;
        body.frequency_penalty = g.frequency_penalty;
        body.stop = &g.stop;
        match self.dialect.seed {
            SeedField::Seed => body.seed = g.seed,
            SeedField::RandomSeed => body.random_seed = g.seed,
        }
        if let Some(reasoning) = &g.reasoning {
            match self.dialect.reasoning {
                ReasoningControl::Effort => {
                    body.reasoning_effort = Some(effort_of(reasoning).as_str());
                }
                ReasoningControl::Object => {
                    body.reasoning = Some(match (reasoning.effort, reasoning.budget_tokens) {
                        (_, Some(budget)) => json!({"max_tokens": budget}),
                        (Some(effort), None) => json!({"effort": effort.as_str()}),
                        (None, None) => json!({}),
                    });
                }
                ReasoningControl::Unsupported => {
                    return Err(ProviderError::unsupported(
                        name,
                        "generation.reasoning",
                        "this provider's API has no reasoning control; its reasoning models think unasked",
                    ));
                }
            }
        }
        body.response_format = match &g.response_format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
            ResponseFormat::JsonSchema(s) => {
                let mut schema = Map::new();
                schema.insert("name".into(), json!(s.name));
                if let Some(d) = &s.description {
                    schema.insert("description".into(), json!(d));
                }
                schema.insert("schema".into(), s.schema.clone());
                if let Some(strict) = s.strict {
                    schema.insert("strict".into(), json!(strict));
                }
                Some(json!({"type": "json_schema", "json_schema": schema}))
            }
        };
        if !request.tools.is_empty() {
            body.tools = request
                .tools
                .iter()
                .map(|t| {
                    let mut function = super::tool_declaration(t, "parameters");
                    if let Some(strict) = t.strict {
                        function.insert("strict".into(), json!(strict));
                    }
                    json!({"type": "function", "function": function})
                })
                .collect();
            // OpenAI rejects parallel_tool_calls without tools; without tools it means nothing.
            body.parallel_tool_calls = g.parallel_tool_calls;
        }
        body.tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        });
        if stream {
            body.stream = Some(true);
            if self.dialect.stream_usage {
                body.stream_options = Some(StreamOptions { include_usage: true });
            }
        }
        Ok(body)
    }
}

/// The Chat Completions request body, borrowing from the call's request: what a plain chat
/// sends is typed (nothing to build but this struct and the messages' list), what few calls
/// send (response formats, tools, content parts) stays a JSON value.
#[derive(Debug, Default, Serialize)]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: Vec<WireMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    /// Mistral's name for the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    random_seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One message of the request.
#[derive(Debug, Serialize)]
struct WireMessageOut<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// The assistant's reasoning sent back with its tool calls (DeepSeek's thinking mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A message's content: its text (borrowed when it is one part), content parts, or `null` for
/// an assistant turn that only calls tools.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Null,
    Text(Cow<'a, str>),
    Parts(Vec<Value>),
}

#[derive(Debug, Serialize)]
struct WireCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// A path segment with the characters that would change the path escaped.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The effort to send an API that takes only an effort: the caller's, or one for its budget.
fn effort_of(reasoning: &ReasoningConfig) -> ReasoningEffort {
    reasoning.effort.unwrap_or(match reasoning.budget_tokens {
        Some(b) if b <= ReasoningEffort::Low.budget_tokens() => ReasoningEffort::Low,
        Some(b) if b <= ReasoningEffort::Medium.budget_tokens() => ReasoningEffort::Medium,
        _ => ReasoningEffort::High,
    })
}

fn message<'a>(
    provider: &str,
    dialect: Dialect,
    i: usize,
    m: &'a Message,
) -> Result<WireMessageOut<'a>, ProviderError> {
    let has_parts =
        m.content.iter().any(|p| matches!(p, ContentPart::Image(_) | ContentPart::Document(_)));
    let content = if has_parts {
        if m.role != Role::User {
            return Err(ProviderError::unsupported(
                provider,
                format!("messages[{i}].content"),
                format!(
                    "images and documents are accepted only in user messages, not in {} messages",
                    m.role.as_str()
                ),
            ));
        }
        let mut parts: Vec<Value> = Vec::with_capacity(m.content.len());
        for (j, part) in m.content.iter().enumerate() {
            parts.push(match part {
                ContentPart::Text(text) => json!({"type": "text", "text": text}),
                ContentPart::Reasoning(_) | ContentPart::CacheBreakpoint(_) => continue,
                ContentPart::Document(document) => {
                    let at = format!("messages[{i}].content[{j}].document");
                    if !dialect.documents {
                        return Err(ProviderError::unsupported(
                            provider,
                            at,
                            "this provider's API takes no documents",
                        ));
                    }
                    let data = match (&document.source, document.mime_type.as_deref()) {
                        (DocumentSource::Data(data), Some("application/pdf")) => data,
                        (DocumentSource::Data(_), other) => {
                            return Err(ProviderError::unsupported(
                                provider,
                                format!("{at}.mime_type"),
                                format!(
                                    "OpenAI takes PDF documents only, not {}",
                                    other.unwrap_or("none")
                                ),
                            ));
                        }
                        (DocumentSource::Url(_), _) => {
                            return Err(ProviderError::unsupported(
                                provider,
                                format!("{at}.url"),
                                "OpenAI's Chat Completions takes documents as data, not by URL",
                            ));
                        }
                    };
                    let filename = document.title.as_deref().unwrap_or("document.pdf");
                    let file_data = format!(
                        "data:application/pdf;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(data)
                    );
                    json!({"type": "file", "file": {"filename": filename, "file_data": file_data}})
                }
                ContentPart::Image(image) => {
                    let url = match &image.source {
                        ImageSource::Url(url) => url.clone(),
                        ImageSource::Data(data) => format!(
                            "data:{};base64,{}",
                            image.mime_type.as_deref().unwrap_or("image/png"),
                            base64::engine::general_purpose::STANDARD.encode(data)
                        ),
                    };
                    let mut image_url = Map::new();
                    image_url.insert("url".into(), json!(url));
                    if let Some(detail) = image.detail {
                        image_url.insert("detail".into(), json!(detail_name(detail)));
                    }
                    json!({"type": "image_url", "image_url": image_url})
                }
            });
        }
        WireContent::Parts(parts)
    } else {
        match text_of(m) {
            text if text.is_empty() && !m.tool_calls.is_empty() => WireContent::Null,
            text => WireContent::Text(text),
        }
    };
    let reasoning_content = if dialect.reasoning_back && !m.tool_calls.is_empty() {
        let reasoning: String = m
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Reasoning(r) => Some(r.text.as_str()),
                _ => None,
            })
            .collect();
        (!reasoning.is_empty()).then_some(reasoning)
    } else {
        None
    };
    Ok(WireMessageOut {
        role: m.role.as_str(),
        content,
        name: m.name.as_deref(),
        reasoning_content,
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| WireCallOut {
                id: &c.id,
                kind: "function",
                function: WireFunctionOut { name: &c.name, arguments: &c.arguments },
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
    })
}

/// A message's text parts joined: borrowed when there is one (the usual case), so that sending
/// it copies nothing.
fn text_of(m: &Message) -> Cow<'_, str> {
    let mut texts = m.content.iter().filter_map(|p| match p {
        ContentPart::Text(text) => Some(text.as_str()),
        _ => None,
    });
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(only), None) => Cow::Borrowed(only),
        (Some(_), Some(_)) => Cow::Owned(m.joined_text()),
    }
}

fn detail_name(detail: ImageDetail) -> &'static str {
    match detail {
        ImageDetail::Auto => "auto",
        ImageDetail::Low => "low",
        ImageDetail::High => "high",
    }
}

/// A finish reason of the wire format.
fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "end_turn" => FinishReason::Stop,
        "length" | "model_length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    /// DeepSeek's, llama.cpp's and older vLLM's reasoning text.
    #[serde(default)]
    reasoning_content: Option<String>,
    /// Newer vLLM's, Ollama's, OpenRouter's and Groq's reasoning text.
    #[serde(default)]
    reasoning: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
}

/// `completion_tokens_details`: o-series models (and DeepSeek, vLLM) report reasoning here.
#[derive(Clone, Copy, Debug, Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u32>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            // OpenAI's cache is implicit: it reports no writes.
            cache_write_input_tokens: 0,
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        self.kind.gen_ai_provider()
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
        let body = self.body(model, request, false)?;
        let response = self.upstream.send(self.request(model, &body), false).await?;
        let wire: WireResponse = self.upstream.json(response).await?;
        let Some(choice) = wire.choices.into_iter().next() else {
            return Err(self.upstream.invalid("the reply has no choices"));
        };
        let reasoning =
            choice.message.reasoning_content.or(choice.message.reasoning).filter(|r| !r.is_empty());
        let mut text = choice.message.content.unwrap_or_default();
        if let Some(refusal) = choice.message.refusal {
            text.push_str(&refusal);
        }
        let tool_calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .into_iter()
            .map(|c| {
                let function = c.function.unwrap_or(WireFunction { name: None, arguments: None });
                ToolCall {
                    id: c.id.unwrap_or_default(),
                    name: function.name.unwrap_or_default(),
                    arguments: function.arguments.unwrap_or_default(),
                    signature: None,
                }
            })
            .collect();
        let mut content = Vec::with_capacity(2);
        if let Some(text) = reasoning {
            content.push(ContentPart::Reasoning(Reasoning { text, ..Reasoning::default() }));
        }
        if !text.is_empty() {
            content.push(ContentPart::Text(text));
        }
        // No usage reported: the call pipeline estimates it, as for every provider.
        let usage = wire.usage.map(Usage::from).unwrap_or_default();
        let finish = choice.finish_reason.as_deref().map_or(FinishReason::Stop, finish_reason);
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
            finish_reason: finish,
            usage,
        })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let body = self.body(model, request, true)?;
        let response = self.upstream.send(self.request(model, &body), true).await?;
        let upstream = self.upstream.clone();
        let mut events = self.upstream.events(response);
        let provider_model = model.to_owned();
        let stream = async_stream::stream! {
            let mut chunks = stream::Chunks::new(provider_model);
            let mut out = Vec::with_capacity(2);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let read = chunks.read(&event.data, &mut out);
                for event in out.drain(..) {
                    yield Ok(event);
                }
                match read {
                    Ok(stream::Read::More) => {}
                    Ok(stream::Read::Done) => return,
                    Err(stream::ChunkError::Malformed(e)) => {
                        yield Err(upstream.malformed_event(&e));
                        return;
                    }
                    Err(stream::ChunkError::Upstream(error)) => {
                        yield Err(upstream.stream_error(&error));
                        return;
                    }
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
    use crate::chat::{Generation, Image, JsonSchema, Tool};

    #[test]
    fn a_plain_chat_and_a_tool_turn_go_out_in_the_documented_shape() {
        let call =
            ToolCall { id: "c1".into(), name: "f".into(), arguments: "{}".into(), signature: None };
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message { tool_calls: vec![call], ..Message::text(Role::Assistant, "") },
                Message { tool_call_id: Some("c1".into()), ..Message::text(Role::Tool, "42") },
                Message {
                    content: vec![ContentPart::Text("a".into()), ContentPart::Text("b".into())],
                    name: Some("ann".into()),
                    ..Message::text(Role::User, "")
                },
            ],
            ..Default::default()
        };
        let body = wire(&provider(ProviderKind::OpenAi), "gpt", &request, false).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "content": "42", "tool_call_id": "c1"},
                    {"role": "user", "content": "ab", "name": "ann"}
                ]
            })
        );
        // Azure names the deployment in the URL, not the body; a stream asks for its usage.
        let azure =
            OpenAiProvider::azure("p", &ConnectionSettings::for_tests("http://127.0.0.1:1"), "v")
                .unwrap();
        let body = wire(&azure, "gpt", &request, true).unwrap();
        assert!(body.get("model").is_none());
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    /// The request body `provider` sends, as JSON.
    fn wire(
        provider: &OpenAiProvider,
        model: &str,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<Value, ProviderError> {
        provider.body(model, request, stream).map(|body| serde_json::to_value(body).unwrap())
    }

    fn provider(kind: ProviderKind) -> OpenAiProvider {
        let connection = ConnectionSettings::for_tests("http://127.0.0.1:1/v1");
        OpenAiProvider::new("p", kind, &connection).unwrap()
    }

    #[test]
    fn every_field_reaches_the_wire() {
        let mut user = Message::text(Role::User, "look");
        user.content.push(ContentPart::Image(Image {
            source: ImageSource::Data(bytes::Bytes::from_static(b"\x89PNG")),
            mime_type: Some("image/png".into()),
            detail: Some(ImageDetail::Low),
        }));
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::text(Role::System, "sys"), user],
            generation: Generation {
                temperature: Some(0.5),
                top_p: Some(0.9),
                max_tokens: Some(10),
                presence_penalty: Some(0.1),
                frequency_penalty: Some(0.2),
                stop: vec!["END".into()],
                seed: Some(42),
                response_format: ResponseFormat::JsonSchema(JsonSchema {
                    name: "s".into(),
                    description: None,
                    schema: json!({"type": "object"}),
                    strict: Some(true),
                }),
                parallel_tool_calls: Some(false),
                top_k: None,
                reasoning: None,
            },
            tools: vec![Tool {
                name: "f".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Tool("f".into())),
            metadata: Default::default(),
        };
        let body = wire(&provider(ProviderKind::OpenAi), "gpt", &request, true).unwrap();
        assert_eq!(body["max_completion_tokens"], 10);
        assert_eq!(body["seed"], 42);
        assert_eq!(
            body["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBORw=="
        );
        assert_eq!(body["messages"][1]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(body["tool_choice"]["function"]["name"], "f");
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["stream_options"]["include_usage"], true);

        let body = wire(&provider(ProviderKind::Mistral), "m", &request, true).unwrap();
        assert_eq!(body["random_seed"], 42);
        assert_eq!(body["max_tokens"], 10);
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn top_k_is_refused_where_the_api_has_none() {
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "x")],
            generation: Generation { top_k: Some(5), ..Default::default() },
            ..Default::default()
        };
        let err = provider(ProviderKind::OpenAi).body("m", &request, false).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("generation.top_k"));
        assert_eq!(wire(&provider(ProviderKind::VLlm), "m", &request, false).unwrap()["top_k"], 5);
    }
}
