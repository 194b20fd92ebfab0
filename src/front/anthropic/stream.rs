//! A streamed answer as Anthropic's server-sent events: `message_start` (an empty message
//! named by its route), then per content block `content_block_start`, `content_block_delta`s
//! (`text_delta`, `input_json_delta`) and `content_block_stop`, then `message_delta` (stop
//! reason and usage) and `message_stop`. A stream that fails after it began ends with an
//! `error` event, which the `anthropic` SDKs raise; it never just ends.
//!
//! The domain's deltas become blocks in the order they come: text opens a text block;
//! reasoning opens a `thinking` block, its text follows as `thinking_delta`s and its signature
//! as a `signature_delta`, which closes it; redacted reasoning is a `redacted_thinking` block
//! whole in its start; a tool call's first piece opens a `tool_use` block and its arguments
//! follow as `input_json_delta`s; a block closes when another one opens or the answer ends. The usage
//! comes last in the domain's stream, so `message_start` reports zero tokens and
//! `message_delta` the real figures (input tokens included, which the SDKs take from it).

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::reply::{ContentBlock, MessageObject, WireUsage, stop_reason};
use crate::{chat::ReplyEvent, error::Error};

/// The usage of `message_delta`, with the call's cost in US dollars (`cost_usd`, absent when
/// unknown): the stream's one honest place for it, since SSE has no trailers.
#[derive(Debug, Serialize)]
struct BilledUsage {
    #[serde(flatten)]
    usage: WireUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

/// One event of the stream, named in SSE by its `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart { message: MessageObject },
    ContentBlockStart { index: u32, content_block: ContentBlock },
    ContentBlockDelta { index: u32, delta: Delta },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: MessageDelta, usage: BilledUsage },
    MessageStop,
    Error { error: super::ErrorObject },
}

impl StreamEvent {
    fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }

    /// The event as an SSE frame.
    fn frame(&self) -> Bytes {
        // These types always serialize; should one ever not, the caller still gets an event.
        let data = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.into()
        });
        Bytes::from(format!("event: {}\ndata: {data}\n\n", self.name()))
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // Anthropic's names.
enum Delta {
    TextDelta { text: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
    InputJsonDelta { partial_json: String },
}

#[derive(Debug, Serialize)]
struct MessageDelta {
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

/// The block open now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text { block: u32 },
    Thinking { block: u32 },
    Tool { block: u32, call: u32 },
}

/// Turns the domain's reply events into the stream's frames; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Translator {
    next_block: u32,
    open: Option<Open>,
    /// The block of each tool call, by the domain's tool-call index.
    tool_blocks: HashMap<u32, u32>,
    usage: WireUsage,
    finished: bool,
}

impl Translator {
    /// The first frame: `message_start` with the message's id and route.
    pub fn start(&self, id: String, model: String) -> Bytes {
        StreamEvent::MessageStart { message: MessageObject::empty(id, model) }.frame()
    }

    /// The frames of one reply event.
    pub fn event(&mut self, event: ReplyEvent) -> Vec<Bytes> {
        let mut out = Vec::new();
        match event {
            ReplyEvent::ContentDelta(text) if text.is_empty() => {}
            ReplyEvent::ContentDelta(text) => {
                let index = match self.open {
                    Some(Open::Text { block }) => block,
                    _ => {
                        let block =
                            self.open_block(ContentBlock::Text { text: String::new() }, &mut out);
                        self.open = Some(Open::Text { block });
                        block
                    }
                };
                out.push(
                    StreamEvent::ContentBlockDelta { index, delta: Delta::TextDelta { text } }
                        .frame(),
                );
            }
            ReplyEvent::ReasoningDelta(d) => {
                if let Some(data) = d.redacted_data {
                    let block = self.open_block(ContentBlock::RedactedThinking { data }, &mut out);
                    self.open = Some(Open::Thinking { block });
                    self.close(&mut out);
                    return out;
                }
                let index = match self.open {
                    Some(Open::Thinking { block }) => block,
                    _ => {
                        let start = ContentBlock::Thinking {
                            thinking: String::new(),
                            signature: String::new(),
                        };
                        let block = self.open_block(start, &mut out);
                        self.open = Some(Open::Thinking { block });
                        block
                    }
                };
                if !d.text.is_empty() {
                    let delta = Delta::ThinkingDelta { thinking: d.text };
                    out.push(StreamEvent::ContentBlockDelta { index, delta }.frame());
                }
                if let Some(signature) = d.signature {
                    let delta = Delta::SignatureDelta { signature };
                    out.push(StreamEvent::ContentBlockDelta { index, delta }.frame());
                    self.close(&mut out);
                }
            }
            ReplyEvent::ToolCallDelta(d) => {
                let index = match (self.open, self.tool_blocks.get(&d.index)) {
                    (Some(Open::Tool { block, call }), _) if call == d.index => block,
                    // A late piece of a call whose block another one closed (providers that
                    // interleave parallel calls): it goes to its own block's index, by which
                    // the SDKs assemble it.
                    (_, Some(&block)) => block,
                    (_, None) => {
                        let start = ContentBlock::ToolUse {
                            id: d.id.unwrap_or_default(),
                            name: d.name.unwrap_or_default(),
                            input: Value::Object(Map::new()),
                        };
                        let block = self.open_block(start, &mut out);
                        self.tool_blocks.insert(d.index, block);
                        self.open = Some(Open::Tool { block, call: d.index });
                        block
                    }
                };
                if !d.arguments.is_empty() {
                    let delta = Delta::InputJsonDelta { partial_json: d.arguments };
                    out.push(StreamEvent::ContentBlockDelta { index, delta }.frame());
                }
            }
            ReplyEvent::Usage(usage) => self.usage = usage.into(),
            ReplyEvent::Finish(finish) => {
                self.close(&mut out);
                let delta =
                    MessageDelta { stop_reason: stop_reason(finish.reason), stop_sequence: None };
                let usage = BilledUsage {
                    usage: self.usage,
                    cost_usd: finish.bill.cost.as_ref().map(crate::chat::Cost::usd),
                };
                out.push(StreamEvent::MessageDelta { delta, usage }.frame());
                out.push(StreamEvent::MessageStop.frame());
                self.finished = true;
            }
        }
        out
    }

    /// Whether the answer has ended (`message_stop` was sent).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The frame that ends a failed stream.
    pub fn error(&mut self, error: &Error) -> Bytes {
        self.finished = true;
        StreamEvent::Error { error: super::error_object(error).1 }.frame()
    }

    fn open_block(&mut self, content_block: ContentBlock, out: &mut Vec<Bytes>) -> u32 {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(StreamEvent::ContentBlockStart { index, content_block }.frame());
        index
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some(open) = self.open.take() {
            let index = match open {
                Open::Text { block } | Open::Thinking { block } | Open::Tool { block, .. } => block,
            };
            out.push(StreamEvent::ContentBlockStop { index }.frame());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Finish, FinishReason, ToolCallDelta, Usage};

    /// The frames as (event name, data) pairs.
    fn parsed(frames: &[Bytes]) -> Vec<(String, Value)> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).unwrap();
                let (head, data) = text.trim_end().split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "the event's name is its type");
                (name, data)
            })
            .collect()
    }

    fn tool(index: u32, first: bool, arguments: &str) -> ReplyEvent {
        ReplyEvent::ToolCallDelta(ToolCallDelta {
            index,
            id: first.then(|| format!("call_{index}")),
            name: first.then(|| "f".to_owned()),
            arguments: arguments.into(),
            signature: None,
        })
    }

    #[test]
    fn text_and_tool_calls_become_blocks_in_order() {
        let mut t = Translator::default();
        let mut frames = vec![t.start("msg_1".into(), "claude".into())];
        for event in [
            ReplyEvent::ContentDelta("Hel".into()),
            ReplyEvent::ContentDelta(String::new()),
            ReplyEvent::ContentDelta("lo".into()),
            tool(0, true, ""),
            tool(0, false, "{\"a\":"),
            tool(0, false, "1}"),
            tool(1, true, "{}"),
            tool(0, false, " "),
            ReplyEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 4,
                cached_input_tokens: 2,
                estimated: false,
                ..Usage::default()
            }),
            ReplyEvent::Finish(Box::new(Finish {
                reason: FinishReason::ToolCalls,
                ..Finish::default()
            })),
        ] {
            assert!(!t.finished());
            frames.extend(t.event(event));
        }
        assert!(t.finished());
        let events = parsed(&frames);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let start = &events[0].1["message"];
        assert_eq!(
            (start["id"].as_str(), start["model"].as_str()),
            (Some("msg_1"), Some("claude"))
        );
        assert_eq!(start["content"], serde_json::json!([]));
        assert_eq!(events[5].1["content_block"]["type"], "tool_use");
        assert_eq!(events[5].1["content_block"]["id"], "call_0");
        assert_eq!(events[5].1["content_block"]["input"], serde_json::json!({}));
        assert_eq!(events[7].1["delta"]["partial_json"], "1}");
        assert_eq!(events[9].1["index"], 2);
        // The late piece of call 0 goes to block 1.
        assert_eq!(
            (events[11].1["index"].as_u64(), events[12].1["index"].as_u64()),
            (Some(1), Some(2))
        );
        let delta = &events[13].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            delta["usage"],
            serde_json::json!({"input_tokens": 7, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2})
        );
    }

    #[test]
    fn reasoning_becomes_thinking_blocks_closed_by_their_signature() {
        use crate::chat::ReasoningDelta;
        let reasoning = |text: &str, signature: Option<&str>, redacted: Option<&str>| {
            ReplyEvent::ReasoningDelta(ReasoningDelta {
                text: text.into(),
                signature: signature.map(Into::into),
                redacted_data: redacted.map(Into::into),
            })
        };
        let mut t = Translator::default();
        let mut frames = vec![t.start("msg_1".into(), "claude".into())];
        for event in [
            reasoning("Let me ", None, None),
            reasoning("think.", None, None),
            reasoning("", Some("sig"), None),
            reasoning("", None, Some("opaque")),
            ReplyEvent::ContentDelta("Answer".into()),
            ReplyEvent::Finish(Box::default()),
        ] {
            frames.extend(t.event(event));
        }
        let events = parsed(&frames);
        let summary: Vec<(String, Value)> = events
            .iter()
            .map(|(name, data)| {
                let detail = match name.as_str() {
                    "content_block_start" => data["content_block"].clone(),
                    "content_block_delta" => data["delta"].clone(),
                    "content_block_stop" => data["index"].clone(),
                    _ => Value::Null,
                };
                (name.clone(), detail)
            })
            .collect();
        use serde_json::json;
        assert_eq!(
            summary[1..9],
            [
                (
                    "content_block_start".into(),
                    json!({"type": "thinking", "thinking": "", "signature": ""})
                ),
                (
                    "content_block_delta".into(),
                    json!({"type": "thinking_delta", "thinking": "Let me "})
                ),
                (
                    "content_block_delta".into(),
                    json!({"type": "thinking_delta", "thinking": "think."})
                ),
                (
                    "content_block_delta".into(),
                    json!({"type": "signature_delta", "signature": "sig"})
                ),
                ("content_block_stop".into(), json!(0)),
                (
                    "content_block_start".into(),
                    json!({"type": "redacted_thinking", "data": "opaque"})
                ),
                ("content_block_stop".into(), json!(1)),
                ("content_block_start".into(), json!({"type": "text", "text": ""})),
            ]
        );
    }

    #[test]
    fn a_failure_is_an_error_event() {
        let mut t = Translator::default();
        let frame = t.error(&Error::Overloaded { limit: 1 });
        let events = parsed(&[frame]);
        assert_eq!(events[0].1["error"]["type"], "overloaded_error");
        assert!(t.finished());
    }
}
