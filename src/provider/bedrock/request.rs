//! The Bedrock Converse request (`POST {base}/model/{modelId}/converse` and
//! `.../converse-stream`), as typed wire structs, and the translation of a validated
//! [`ChatRequest`] into it: the first thing the Bedrock adapter does with a call.
//!
//! System messages become `system` blocks; the other messages keep their order in `user` and
//! `assistant` turns, a tool message becoming a `toolResult` block in a user turn, and
//! consecutive turns of one role are merged (Converse, like Anthropic, wants them alternating,
//! and the results of parallel calls in one turn). Content blocks: `text`, `image` and
//! `document` (as bytes), `toolUse`, `toolResult`, `reasoningContent` (signed reasoning or
//! redacted content, as it came; unsigned reasoning from another provider is left out) and
//! `cachePoint`, which Converse places exactly where the domain's cache breakpoint is: after
//! the content it caches, in the system prompt, the messages or the tool list.
//!
//! `maxTokens`, `temperature`, `topP` and `stopSequences` go in `inferenceConfig`; what Converse
//! has no field for goes in `additionalModelRequestFields` for Claude (`top_k`, `thinking`
//! with its budget) and is refused by field for other models, as are penalties, seeds, JSON
//! output modes and URLs Bedrock cannot fetch.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::BedrockProvider;
use crate::{
    chat::{
        CacheControl, CacheTtl, ChatRequest, ContentPart, Document, DocumentSource, Image,
        ImageDetail, ImageSource, Message, ResponseFormat, Role, ToolChoice,
    },
    provider::{ProviderError, http::data_url},
};

/// `maxTokens` for the answer beside a reasoning budget when the caller sets none.
const ANSWER_TOKENS_BESIDE_REASONING: u32 = 4096;

/// The request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest<'a> {
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_request_fields: Option<AdditionalFields>,
}

#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// A content block, tagged by its one field.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(&'a str),
    Image(WireImage),
    Document(WireDocument),
    #[serde(rename_all = "camelCase")]
    ToolUse {
        tool_use_id: &'a str,
        name: &'a str,
        input: Value,
    },
    #[serde(rename_all = "camelCase")]
    ToolResult {
        tool_use_id: &'a str,
        content: Vec<Block<'a>>,
    },
    ReasoningContent(WireReasoning<'a>),
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize)]
struct WireImage {
    format: &'static str,
    source: BytesSource,
}

#[derive(Debug, Serialize)]
struct WireDocument {
    format: &'static str,
    name: String,
    source: BytesSource,
}

/// Bytes, base64-encoded as Bedrock's JSON protocol writes blobs.
#[derive(Debug, Serialize)]
struct BytesSource {
    bytes: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum WireReasoning<'a> {
    ReasoningText { text: &'a str, signature: &'a str },
    RedactedContent(&'a str),
}

#[derive(Debug, Serialize)]
struct CachePoint {
    #[serde(rename = "type")]
    kind: &'static str,
}

const CACHE_POINT: CachePoint = CachePoint { kind: "default" };

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolEntry<'a> {
    ToolSpec(ToolSpec<'a>),
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: JsonSchema<'a>,
}

#[derive(Debug, Serialize)]
struct JsonSchema<'a> {
    json: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum WireToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: &'a str },
}

#[derive(Debug, Serialize)]
struct Empty {}

/// Claude's own fields, which Converse passes through.
#[derive(Debug, Default, Serialize)]
struct AdditionalFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
}

#[derive(Debug, Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// Whether `model` (an id, an inference profile or an ARN) is one of Anthropic's.
pub(super) fn is_claude(model: &str) -> bool {
    model.contains("anthropic.claude")
}

impl BedrockProvider {
    /// The Converse request for `model`.
    pub(super) fn converse_request<'a>(
        &self,
        model: &str,
        request: &'a ChatRequest,
    ) -> Result<ConverseRequest<'a>, ProviderError> {
        let g = &request.generation;
        let claude = is_claude(model);
        let only_claude = |field: &str, what: &str| {
            self.unsupported(
                field,
                format!("Bedrock's Converse API takes {what} only for Anthropic's Claude models"),
            )
        };
        for (field, set) in [
            ("generation.presence_penalty", g.presence_penalty.is_some()),
            ("generation.frequency_penalty", g.frequency_penalty.is_some()),
            ("generation.seed", g.seed.is_some()),
        ] {
            if set {
                return Err(self.unsupported(field, "Bedrock's Converse API has no such field"));
            }
        }
        if !matches!(g.response_format, ResponseFormat::Text) {
            return Err(self.unsupported(
                "generation.response_format",
                "Bedrock's Converse API has no JSON output mode; describe the format in the prompt or use a tool",
            ));
        }
        if g.parallel_tool_calls == Some(false) {
            return Err(self.unsupported(
                "generation.parallel_tool_calls",
                "Bedrock's Converse API cannot turn parallel tool calls off",
            ));
        }
        let mut additional = AdditionalFields::default();
        if let Some(k) = g.top_k {
            if !claude {
                return Err(only_claude("generation.top_k", "top_k"));
            }
            additional.top_k = Some(k);
        }
        let budget = g.reasoning.as_ref().and_then(|r| r.budget());
        let mut max_tokens = g.max_tokens;
        if let Some(budget) = budget {
            if !claude {
                return Err(only_claude("generation.reasoning", "a reasoning budget"));
            }
            max_tokens = match g.max_tokens {
                Some(max) if max <= budget => {
                    return Err(self.unsupported(
                        "generation.max_tokens",
                        format!("must exceed the reasoning budget ({budget} tokens) on Claude"),
                    ));
                }
                Some(max) => Some(max),
                None => Some(budget.saturating_add(ANSWER_TOKENS_BESIDE_REASONING)),
            };
            additional.thinking = Some(Thinking { kind: "enabled", budget_tokens: budget });
        }

        let mut system = Vec::new();
        let mut turns: Vec<Turn<'a>> = Vec::new();
        for (i, m) in request.messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            if m.name.is_some() {
                return Err(
                    self.unsupported(format!("{at}.name"), "Bedrock has no participant names")
                );
            }
            let (role, blocks) = match m.role {
                Role::System => {
                    crate::provider::system_text_only(&self.upstream.name, &at, m)?;
                    system.extend(self.blocks(&at, &m.content)?);
                    continue;
                }
                Role::User => ("user", self.blocks(&at, &m.content)?),
                Role::Assistant => ("assistant", self.assistant_blocks(&at, m)?),
                Role::Tool => {
                    let Some(id) = m.tool_call_id.as_deref() else {
                        return Err(self.unsupported(
                            format!("{at}.tool_call_id"),
                            "a tool message needs the id of the call it answers",
                        ));
                    };
                    let content = self.blocks(&at, &m.content)?;
                    ("user", vec![Block::ToolResult { tool_use_id: id, content }])
                }
            };
            match turns.last_mut() {
                Some(turn) if turn.role == role => turn.content.extend(blocks),
                _ => turns.push(Turn { role, content: blocks }),
            }
        }
        Ok(ConverseRequest {
            messages: turns,
            system,
            inference_config: InferenceConfig {
                max_tokens,
                temperature: g.temperature,
                top_p: g.top_p,
                stop_sequences: &g.stop,
            },
            tool_config: self.tool_config(request)?,
            additional_model_request_fields: (additional.top_k.is_some()
                || additional.thinking.is_some())
            .then_some(additional),
        })
    }

    fn tool_config<'a>(
        &self,
        request: &'a ChatRequest,
    ) -> Result<Option<ToolConfig<'a>>, ProviderError> {
        let history_has_tools =
            request.messages.iter().any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool);
        let tool_choice = match &request.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(WireToolChoice::Auto(Empty {})),
            Some(ToolChoice::Required) => Some(WireToolChoice::Any(Empty {})),
            Some(ToolChoice::Tool(name)) => Some(WireToolChoice::Tool { name }),
            Some(ToolChoice::None) if history_has_tools => {
                return Err(self.unsupported(
                    "tool_choice",
                    "Bedrock's Converse API has no \"none\" tool choice, and this conversation already uses tools",
                ));
            }
            // No tools offered, none can be called.
            Some(ToolChoice::None) => return Ok(None),
        };
        if request.tools.is_empty() {
            if tool_choice.is_some() {
                return Err(self.unsupported("tool_choice", "names tools, but none are declared"));
            }
            return Ok(None);
        }
        let mut tools = Vec::with_capacity(request.tools.len());
        for tool in &request.tools {
            tools.push(ToolEntry::ToolSpec(ToolSpec {
                name: &tool.name,
                description: tool.description.as_deref(),
                input_schema: JsonSchema { json: &tool.parameters },
            }));
            if let Some(control) = &tool.cache_control {
                self.cache_ttl("tools.cache_control", control)?;
                tools.push(ToolEntry::CachePoint(CACHE_POINT));
            }
        }
        Ok(Some(ToolConfig { tools, tool_choice }))
    }

    fn assistant_blocks<'a>(
        &self,
        at: &str,
        m: &'a Message,
    ) -> Result<Vec<Block<'a>>, ProviderError> {
        let mut blocks = self.blocks(at, &m.content)?;
        for (j, call) in m.tool_calls.iter().enumerate() {
            let input = if call.arguments.trim().is_empty() {
                Value::Object(serde_json::Map::new())
            } else {
                serde_json::from_str(&call.arguments).map_err(|e| {
                    self.unsupported(
                        format!("{at}.tool_calls[{j}].arguments_json"),
                        format!("is not JSON: {e}"),
                    )
                })?
            };
            blocks.push(Block::ToolUse { tool_use_id: &call.id, name: &call.name, input });
        }
        Ok(blocks)
    }

    fn blocks<'a>(
        &self,
        at: &str,
        content: &'a [ContentPart],
    ) -> Result<Vec<Block<'a>>, ProviderError> {
        let mut blocks = Vec::with_capacity(content.len());
        let mut documents = 0usize;
        for (j, part) in content.iter().enumerate() {
            let at = format!("{at}.content[{j}]");
            match part {
                // Converse rejects empty text blocks.
                ContentPart::Text(text) if text.is_empty() => {}
                ContentPart::Text(text) => blocks.push(Block::Text(text)),
                ContentPart::Image(image) => {
                    blocks.push(Block::Image(self.image(&format!("{at}.image"), image)?));
                }
                ContentPart::Document(document) => {
                    documents += 1;
                    blocks.push(Block::Document(self.document(
                        &format!("{at}.document"),
                        document,
                        documents,
                    )?));
                }
                ContentPart::Reasoning(r) => match (&r.redacted_data, &r.signature) {
                    (Some(data), _) => {
                        blocks.push(Block::ReasoningContent(WireReasoning::RedactedContent(data)))
                    }
                    (None, Some(signature)) => {
                        blocks.push(Block::ReasoningContent(WireReasoning::ReasoningText {
                            text: &r.text,
                            signature,
                        }))
                    }
                    // Unsigned reasoning came from another provider; Claude would refuse it.
                    (None, None) => {}
                },
                ContentPart::CacheBreakpoint(control) => {
                    self.cache_ttl(&format!("{at}.cache_control"), control)?;
                    if blocks.is_empty() {
                        return Err(self.unsupported(
                            format!("{at}.cache_control"),
                            "a cache breakpoint must follow a non-empty part",
                        ));
                    }
                    blocks.push(Block::CachePoint(CACHE_POINT));
                }
            }
        }
        Ok(blocks)
    }

    /// Bedrock's cache points last five minutes; a longer TTL is refused, not dropped.
    fn cache_ttl(&self, at: &str, control: &CacheControl) -> Result<(), ProviderError> {
        match control.ttl {
            None | Some(CacheTtl::FiveMinutes) => Ok(()),
            Some(CacheTtl::OneHour) => Err(self.unsupported(
                format!("{at}.ttl"),
                "Bedrock's cache points last five minutes; a one-hour TTL is not available",
            )),
        }
    }

    fn image(&self, at: &str, image: &Image) -> Result<WireImage, ProviderError> {
        if matches!(image.detail, Some(ImageDetail::Low | ImageDetail::High)) {
            return Err(self.unsupported(
                format!("{at}.detail"),
                "Bedrock does not take an image detail level",
            ));
        }
        let (mime, bytes) = match &image.source {
            ImageSource::Data(data) => (
                image.mime_type.as_deref().unwrap_or("image/png"),
                base64::engine::general_purpose::STANDARD.encode(data),
            ),
            ImageSource::Url(url) => match data_url(url) {
                Some((mime, data)) => (mime, data.to_owned()),
                None => {
                    return Err(self.unsupported(
                        format!("{at}.url"),
                        "Bedrock does not fetch images by URL: send the image's bytes",
                    ));
                }
            },
        };
        let format = match mime {
            "image/png" => "png",
            "image/jpeg" | "image/jpg" => "jpeg",
            "image/gif" => "gif",
            "image/webp" => "webp",
            other => {
                return Err(self.unsupported(
                    format!("{at}.mime_type"),
                    format!("Bedrock takes png, jpeg, gif or webp images, not {other}"),
                ));
            }
        };
        Ok(WireImage { format, source: BytesSource { bytes } })
    }

    fn document(
        &self,
        at: &str,
        document: &Document,
        nth: usize,
    ) -> Result<WireDocument, ProviderError> {
        let DocumentSource::Data(data) = &document.source else {
            return Err(self.unsupported(
                format!("{at}.url"),
                "Bedrock does not fetch documents by URL: send the document's bytes",
            ));
        };
        let mime = document.mime_type.as_deref().unwrap_or("text/plain");
        let format = match mime {
            "application/pdf" => "pdf",
            "text/plain" => "txt",
            "text/markdown" => "md",
            "text/html" => "html",
            "text/csv" => "csv",
            "application/msword" => "doc",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
            "application/vnd.ms-excel" => "xls",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
            other => {
                return Err(self.unsupported(
                    format!("{at}.mime_type"),
                    format!(
                        "Bedrock takes pdf, txt, md, html, csv, doc, docx, xls or xlsx documents, not {other}"
                    ),
                ));
            }
        };
        Ok(WireDocument {
            format,
            name: document_name(document.title.as_deref(), nth),
            source: BytesSource { bytes: base64::engine::general_purpose::STANDARD.encode(data) },
        })
    }
}

/// A document's name as Bedrock accepts it: letters, digits, single spaces, hyphens,
/// parentheses and square brackets; `document-N` when the title leaves nothing.
fn document_name(title: Option<&str>, nth: usize) -> String {
    let mut name = String::new();
    for c in title.unwrap_or_default().chars() {
        let c =
            if c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') { c } else { ' ' };
        if !(c == ' ' && (name.is_empty() || name.ends_with(' '))) {
            name.push(c);
        }
    }
    let name = name.trim_end();
    if name.is_empty() { format!("document-{nth}") } else { name.chars().take(200).collect() }
}

#[cfg(test)]
#[path = "request/tests.rs"]
mod tests;
