//! The Messages dialect's answer: a domain [`Answer`] as Anthropic's `message` object, and
//! the pieces the stream writer ([`super::stream`]) builds its events from: content blocks,
//! usage as Anthropic counts it, the stop reason and a tool call's `input`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::chat::{Answer, ContentPart, FinishReason, Usage};

/// Anthropic's `message` object.
#[derive(Debug, Serialize)]
pub(super) struct MessageObject {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: WireUsage,
}

impl MessageObject {
    /// A message with nothing in it yet, as a stream's `message_start` carries it.
    pub fn empty(id: String, model: String) -> MessageObject {
        MessageObject {
            id,
            kind: "message",
            role: "assistant",
            model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: WireUsage::default(),
        }
    }
}

/// A content block of an answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ContentBlock {
    /// Text.
    Text { text: String },
    /// Signed reasoning.
    Thinking { thinking: String, signature: String },
    /// Reasoning the provider withheld.
    RedactedThinking { data: String },
    /// A tool call.
    ToolUse { id: String, name: String, input: Value },
}

/// Anthropic's usage: `input_tokens` counts what was neither read from nor written to the
/// provider's cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(super) struct WireUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_creation_input_tokens: u32,
    pub cache_read_input_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> WireUsage {
        WireUsage {
            input_tokens: u
                .input_tokens
                .saturating_sub(u.cached_input_tokens)
                .saturating_sub(u.cache_write_input_tokens),
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_write_input_tokens,
            cache_read_input_tokens: u.cached_input_tokens,
        }
    }
}

/// The stop reason of a domain finish reason. The domain does not tell a stop sequence from
/// the end of the turn, so `stop_sequence` is never reported.
pub(super) fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// A tool call's arguments as a `tool_use` block's `input`: the JSON object, `{}` for none;
/// text that is no JSON object (a model's broken or cut-off JSON) stays as it is, a string,
/// rather than being lost.
pub(super) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => input,
        _ => Value::String(arguments.to_owned()),
    }
}

/// `answer` as Anthropic's `message`, named by its route.
pub(super) fn message_object(answer: Answer) -> MessageObject {
    let mut content = Vec::new();
    for part in answer.message.content {
        match part {
            ContentPart::Reasoning(r) => content.push(match r.redacted_data {
                Some(data) => ContentBlock::RedactedThinking { data },
                None => ContentBlock::Thinking {
                    thinking: r.text,
                    signature: r.signature.unwrap_or_default(),
                },
            }),
            ContentPart::Text(text) if text.is_empty() => {}
            ContentPart::Text(text) => match content.last_mut() {
                Some(ContentBlock::Text { text: existing }) => existing.push_str(&text),
                _ => content.push(ContentBlock::Text { text }),
            },
            // An answer carries no images, documents or breakpoints.
            _ => {}
        }
    }
    for call in answer.message.tool_calls {
        content.push(ContentBlock::ToolUse {
            input: tool_input(&call.arguments),
            id: call.id,
            name: call.name,
        });
    }
    MessageObject {
        content,
        stop_reason: Some(stop_reason(answer.finish_reason)),
        usage: answer.usage.into(),
        ..MessageObject::empty(answer.id, answer.route)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::{Message, Role, ToolCall};

    #[test]
    fn answers_become_message_objects() {
        let answer = Answer {
            id: "id-1".into(),
            route: "claude".into(),
            provider: "p".into(),
            provider_model: "pm".into(),
            message: Message {
                tool_calls: vec![
                    ToolCall {
                        id: "a".into(),
                        name: "f".into(),
                        arguments: r#"{"x":1}"#.into(),
                        signature: None,
                    },
                    ToolCall {
                        id: "b".into(),
                        name: "f".into(),
                        arguments: String::new(),
                        signature: None,
                    },
                    ToolCall {
                        id: "c".into(),
                        name: "f".into(),
                        arguments: r#"{"x":"#.into(),
                        signature: None,
                    },
                ],
                ..Message::text(Role::Assistant, "hi")
            },
            finish_reason: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
                cached_input_tokens: 4,
                estimated: false,
                ..Usage::default()
            },
            bill: crate::chat::Bill::default(),
        };
        let object = serde_json::to_value(message_object(answer)).unwrap();
        assert_eq!(
            object,
            json!({
                "id": "id-1", "type": "message", "role": "assistant", "model": "claude",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
                    {"type": "tool_use", "id": "b", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "c", "name": "f", "input": "{\"x\":"},
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 6, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4},
            })
        );
    }
}
