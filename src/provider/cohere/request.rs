//! The Cohere v2 chat request (`POST {base}/v2/chat`), as typed wire structs, and the
//! translation of a validated [`ChatRequest`] into it: the first thing the Cohere adapter does
//! with a call the router sent its way.
//!
//! Messages keep their roles and order (`system`, `user`, `assistant`, `tool`); tool calls go
//! out as `tool_calls` with their ids and JSON argument strings, tool results as `tool`
//! messages with their `tool_call_id`. An assistant's reasoning text goes back as its
//! `tool_plan` when it made calls (that is where Cohere put it). Text documents (UTF-8 data,
//! `text/*` or no MIME type) become entries of the top-level `documents` list, or `document`
//! parts of a tool result; Cohere grounds its answer on them and cites them. Cache breakpoints
//! are hints Cohere has no use for and are skipped, as for OpenAI and Gemini. What Cohere
//! cannot take is refused by field before anything is sent.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::CohereProvider;
use crate::{
    chat::{
        ChatRequest, ContentPart, Document, DocumentSource, Image, ImageDetail, ImageSource,
        Message, ResponseFormat, Role, ToolChoice,
    },
    provider::ProviderError,
};

/// The request body.
#[derive(Debug, Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict_tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    documents: Vec<WireDocument<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<WireThinking>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// One message, tagged by its role.
#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: String,
    },
    User {
        content: Vec<WireContent<'a>>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<WireContent<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Vec<WireContent<'a>>,
    },
}

/// A content part, tagged by its type.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireContent<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl },
    Document { document: WireDocument<'a> },
}

#[derive(Debug, Serialize)]
struct WireImageUrl {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

/// A document: an id Cohere's citations refer to, and its fields.
#[derive(Debug, Serialize)]
struct WireDocument<'a> {
    id: String,
    data: WireDocumentData<'a>,
}

#[derive(Debug, Serialize)]
struct WireDocumentData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct WireResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<&'a Value>,
}

#[derive(Debug, Serialize)]
struct WireThinking {
    #[serde(rename = "type")]
    kind: &'static str,
    token_budget: u32,
}

impl CohereProvider {
    /// The wire request for `model`.
    pub(super) fn body<'a>(
        &self,
        model: &'a str,
        request: &'a ChatRequest,
        stream: bool,
    ) -> Result<WireRequest<'a>, ProviderError> {
        let g = &request.generation;
        let mut documents = Vec::new();
        let mut messages = Vec::with_capacity(request.messages.len());
        for (i, m) in request.messages.iter().enumerate() {
            messages.push(self.message(&format!("messages[{i}]"), m, &mut documents)?);
        }

        let mut tools = Vec::with_capacity(request.tools.len());
        for t in &request.tools {
            tools.push(WireTool {
                kind: "function",
                function: WireFunction {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters: &t.parameters,
                },
            });
        }
        // Cohere's strict mode is one switch for every tool.
        let strict = request.tools.iter().filter(|t| t.strict == Some(true)).count();
        let strict_tools = match strict {
            0 => None,
            n if n == request.tools.len() => Some(true),
            _ => {
                let i = request.tools.iter().position(|t| t.strict != Some(true)).unwrap_or(0);
                return Err(self.unsupported(
                    format!("tools[{i}].strict"),
                    "Cohere turns strict arguments on for all tools or none; set strict on every tool or on none",
                ));
            }
        };
        if g.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
            return Err(self.unsupported(
                "generation.parallel_tool_calls",
                "Cohere cannot be told to call one tool at a time",
            ));
        }
        let tool_choice = match &request.tool_choice {
            None | Some(ToolChoice::Auto) => None,
            Some(ToolChoice::None) => Some("NONE"),
            Some(ToolChoice::Required) => Some("REQUIRED"),
            Some(ToolChoice::Tool(_)) => {
                return Err(self.unsupported(
                    "tool_choice",
                    "Cohere can require a tool call but not name the tool; use REQUIRED",
                ));
            }
        };
        let response_format = match &g.response_format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => {
                Some(WireResponseFormat { kind: "json_object", json_schema: None })
            }
            ResponseFormat::JsonSchema(s) => {
                Some(WireResponseFormat { kind: "json_object", json_schema: Some(&s.schema) })
            }
        };
        let thinking = g
            .reasoning
            .as_ref()
            .and_then(|r| r.budget())
            .map(|token_budget| WireThinking { kind: "enabled", token_budget });
        Ok(WireRequest {
            model,
            messages,
            tools,
            strict_tools,
            tool_choice,
            documents,
            temperature: g.temperature,
            max_tokens: g.max_tokens,
            p: g.top_p,
            k: g.top_k,
            presence_penalty: g.presence_penalty,
            frequency_penalty: g.frequency_penalty,
            stop_sequences: &g.stop,
            seed: g.seed,
            response_format,
            thinking,
            stream,
        })
    }

    fn message<'a>(
        &self,
        at: &str,
        m: &'a Message,
        documents: &mut Vec<WireDocument<'a>>,
    ) -> Result<WireMessage<'a>, ProviderError> {
        if m.name.is_some() {
            return Err(self.unsupported(format!("{at}.name"), "Cohere has no participant names"));
        }
        Ok(match m.role {
            Role::System => {
                if let Some(j) = m.content.iter().position(|p| {
                    !matches!(p, ContentPart::Text(_) | ContentPart::CacheBreakpoint(_))
                }) {
                    return Err(self.unsupported(
                        format!("{at}.content[{j}]"),
                        "Cohere system messages hold only text",
                    ));
                }
                WireMessage::System { content: m.joined_text() }
            }
            Role::User => {
                let mut content = Vec::with_capacity(m.content.len());
                for (j, part) in m.content.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    match part {
                        ContentPart::Text(text) if text.is_empty() => {}
                        ContentPart::Text(text) => content.push(WireContent::Text { text }),
                        ContentPart::Image(image) => {
                            content.push(WireContent::ImageUrl { image_url: image_url(image) });
                        }
                        // Documents ground the whole chat: Cohere takes them beside the messages.
                        ContentPart::Document(d) => {
                            let id = format!("doc_{}", documents.len());
                            documents.push(self.document(&format!("{at}.document"), id, d)?);
                        }
                        ContentPart::Reasoning(_) | ContentPart::CacheBreakpoint(_) => {}
                    }
                }
                WireMessage::User { content }
            }
            Role::Assistant => {
                let mut content = Vec::new();
                let mut plan = String::new();
                for (j, part) in m.content.iter().enumerate() {
                    match part {
                        ContentPart::Text(text) if text.is_empty() => {}
                        ContentPart::Text(text) => content.push(WireContent::Text { text }),
                        ContentPart::Reasoning(r) => plan.push_str(&r.text),
                        ContentPart::CacheBreakpoint(_) => {}
                        ContentPart::Image(_) | ContentPart::Document(_) => {
                            return Err(self.unsupported(
                                format!("{at}.content[{j}]"),
                                "Cohere assistant messages hold only text and tool calls",
                            ));
                        }
                    }
                }
                let tool_calls: Vec<WireToolCall<'a>> = m
                    .tool_calls
                    .iter()
                    .map(|call| WireToolCall {
                        id: &call.id,
                        kind: "function",
                        function: WireCallFunction { name: &call.name, arguments: &call.arguments },
                    })
                    .collect();
                // The plan only travels with the calls it planned.
                let tool_plan = (!tool_calls.is_empty() && !plan.is_empty()).then_some(plan);
                WireMessage::Assistant { content, tool_plan, tool_calls }
            }
            Role::Tool => {
                let call_id = m.tool_call_id.as_deref().unwrap_or_default();
                let mut content = Vec::with_capacity(m.content.len());
                for (j, part) in m.content.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    match part {
                        ContentPart::Text(text) if text.is_empty() => {}
                        ContentPart::Text(text) => content.push(WireContent::Text { text }),
                        ContentPart::Document(d) => content.push(WireContent::Document {
                            document: self.document(
                                &format!("{at}.document"),
                                format!("{call_id}_{j}"),
                                d,
                            )?,
                        }),
                        ContentPart::Reasoning(_) | ContentPart::CacheBreakpoint(_) => {}
                        ContentPart::Image(_) => {
                            return Err(self.unsupported(
                                format!("{at}.image"),
                                "Cohere tool results hold text and documents, not images",
                            ));
                        }
                    }
                }
                WireMessage::Tool { tool_call_id: call_id, content }
            }
        })
    }

    /// A text document as Cohere takes it; PDFs, other binary types and URLs are refused, since
    /// Cohere reads documents as text and fetches nothing.
    fn document<'a>(
        &self,
        at: &str,
        id: String,
        document: &'a Document,
    ) -> Result<WireDocument<'a>, ProviderError> {
        let mime = document.mime_type.as_deref();
        if let Some(mime) = mime.filter(|m| !m.starts_with("text/")) {
            return Err(self.unsupported(
                format!("{at}.mime_type"),
                format!("Cohere takes documents as text (text/*), not {mime}"),
            ));
        }
        let text = match &document.source {
            DocumentSource::Data(data) => std::str::from_utf8(data)
                .map_err(|_| self.unsupported(format!("{at}.data"), "the text is not UTF-8"))?,
            DocumentSource::Url(_) => {
                return Err(self.unsupported(
                    format!("{at}.url"),
                    "Cohere takes documents as text, not by URL",
                ));
            }
        };
        Ok(WireDocument { id, data: WireDocumentData { title: document.title.as_deref(), text } })
    }
}

/// An image as a URL part: a data URL for bytes.
fn image_url(image: &Image) -> WireImageUrl {
    let url = match &image.source {
        ImageSource::Url(url) => url.clone(),
        ImageSource::Data(data) => format!(
            "data:{};base64,{}",
            image.mime_type.as_deref().unwrap_or("image/png"),
            base64::engine::general_purpose::STANDARD.encode(data)
        ),
    };
    let detail = image.detail.map(|d| match d {
        ImageDetail::Auto => "auto",
        ImageDetail::Low => "low",
        ImageDetail::High => "high",
    });
    WireImageUrl { url, detail }
}

#[cfg(test)]
mod tests;
