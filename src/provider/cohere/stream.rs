//! Reading Cohere's v2 chat stream into domain [`ChatEvent`]s: the streaming half of the
//! Cohere adapter, between the SSE parser ([`crate::provider::sse`]) and the call pipeline.
//!
//! Each SSE event's JSON names its `type`: `message-start` (the id), `content-start` /
//! `content-delta` / `content-end` (text in `delta.message.content.text`, reasoning in
//! `...content.thinking`), `tool-plan-delta` (the plan, as reasoning), `tool-call-start` (id
//! and name) / `tool-call-delta` (argument text) / `tool-call-end`, `citation-start` /
//! `citation-end` (spans of text already sent: skipped), and `message-end`, the end marker,
//! with `delta.finish_reason` and `delta.usage`. A body that ends before `message-end` is a
//! cut stream; an unknown event type is skipped, so a type Cohere adds later breaks nothing.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{CohereProvider, WireUsage, reply_id};
use crate::{
    chat::{ChatEvent, ReasoningDelta, ToolCallDelta, Usage},
    provider::{ChatStream, transport::UpstreamResponse},
};

/// One event's JSON; its `delta` is read by type.
#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<Value>,
}

/// The `delta` of `content-delta`, `tool-plan-delta` and the `tool-call-*` events.
#[derive(Debug, Default, Deserialize)]
struct WireMessageDelta {
    #[serde(default)]
    message: Option<WireDeltaMessage>,
}

#[derive(Debug, Default, Deserialize)]
struct WireDeltaMessage {
    #[serde(default)]
    content: Option<WireDeltaContent>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Option<WireDeltaToolCall>,
}

#[derive(Debug, Default, Deserialize)]
struct WireDeltaContent {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireDeltaToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<super::WireFunction>,
}

/// The `delta` of `message-end`.
#[derive(Debug, Default, Deserialize)]
struct WireEndDelta {
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The typed `delta` of `event`; an absent delta reads as empty.
fn delta<T: Default + serde::de::DeserializeOwned>(
    event: WireEvent,
) -> Result<T, serde_json::Error> {
    event.delta.map_or_else(|| Ok(T::default()), serde_json::from_value)
}

impl CohereProvider {
    /// The domain events of a streamed reply from `model`.
    pub(super) fn events(&self, model: &str, response: UpstreamResponse) -> ChatStream {
        // The stream outlives this borrow: it owns a handle of its own.
        let provider = CohereProvider { upstream: self.upstream.clone() };
        let upstream = provider.upstream.clone();
        let mut events = self.upstream.events(response);
        let provider_model = model.to_owned();
        let stream = async_stream::stream! {
            let mut id: Option<String> = None;
            // Cohere's tool-call index → ours, in the order the calls start.
            let mut calls: HashMap<u32, u32> = HashMap::new();
            let mut current_call: Option<u32> = None;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let wire: WireEvent = match serde_json::from_str(&event.data) {
                    Ok(wire) => wire,
                    Err(e) => {
                        yield Err(upstream.malformed_event(&e));
                        return;
                    }
                };
                let kind = if wire.kind.is_empty() { event.event.clone() } else { wire.kind.clone() };
                match kind.as_str() {
                    "message-start" if wire.id.is_some() => id = wire.id,
                    "content-start" | "content-delta" | "tool-plan-delta" | "tool-call-start" | "tool-call-delta" => {
                        let index = wire.index;
                        let message = match delta::<WireMessageDelta>(wire) {
                            Ok(d) => d.message.unwrap_or_default(),
                            Err(e) => {
                                yield Err(upstream.malformed_event(&e));
                                return;
                            }
                        };
                        if let Some(plan) = message.tool_plan.filter(|p| !p.is_empty()) {
                            yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { text: plan, ..ReasoningDelta::default() }));
                        }
                        if let Some(content) = message.content {
                            if let Some(text) = content.thinking.filter(|t| !t.is_empty()) {
                                yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { text, ..ReasoningDelta::default() }));
                            }
                            if let Some(text) = content.text.filter(|t| !t.is_empty()) {
                                yield Ok(ChatEvent::ContentDelta(text));
                            }
                        }
                        let Some(call) = message.tool_calls else { continue };
                        let function = call.function.unwrap_or_default();
                        if kind == "tool-call-start" {
                            let ours = u32::try_from(calls.len()).unwrap_or(u32::MAX);
                            calls.insert(index.unwrap_or(ours), ours);
                            current_call = Some(ours);
                            yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                                index: ours,
                                id: call.id.filter(|id| !id.is_empty()).or_else(|| Some(format!("call_{ours}"))),
                                name: function.name,
                                arguments: function.arguments.unwrap_or_default(),
                                signature: None,
                            }));
                        } else if kind == "tool-call-delta" {
                            let ours = index.and_then(|i| calls.get(&i).copied()).or(current_call);
                            let Some(ours) = ours else {
                                yield Err(upstream.invalid("a tool-call-delta came before its tool-call-start"));
                                return;
                            };
                            let arguments = function.arguments.unwrap_or_default();
                            if !arguments.is_empty() {
                                yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                                    index: ours,
                                    arguments,
                                    ..ToolCallDelta::default()
                                }));
                            }
                        }
                    }
                    "message-end" => {
                        let end = match delta::<WireEndDelta>(wire) {
                            Ok(end) => end,
                            Err(e) => {
                                yield Err(upstream.malformed_event(&e));
                                return;
                            }
                        };
                        let Some(reason) = end.finish_reason else {
                            yield Err(upstream.invalid("message-end has no finish_reason"));
                            return;
                        };
                        let reason = match provider.finish(&reason, calls.len()) {
                            Ok(reason) => reason,
                            Err(e) => {
                                yield Err(e);
                                return;
                            }
                        };
                        if let Some(usage) = end.usage {
                            yield Ok(ChatEvent::Usage(Usage::from(usage)));
                        }
                        yield Ok(ChatEvent::Finish { reason, id: reply_id(id), provider_model });
                        return;
                    }
                    // content-end, tool-call-end, citation-start / -end, debug, and
                    // types added later carry nothing the domain has.
                    _ => {}
                }
            }
            yield Err(upstream.cut());
        };
        Box::pin(stream)
    }
}
