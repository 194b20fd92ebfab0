//! Reading ConverseStream's reply into domain [`ChatEvent`]s: the streaming half of the Bedrock
//! adapter, between the HTTP body and the call pipeline.
//!
//! The body is AWS's binary event stream (`application/vnd.amazon.eventstream`): frames with a
//! length prelude, typed headers, a JSON payload and CRCs, decoded by `aws-smithy-eventstream`
//! however the body is split into chunks. A frame's `:message-type` is `event` (its
//! `:event-type` names it), `exception` (`:exception-type`, e.g. `throttlingException`, and a
//! JSON `message`) or `error` (`:error-code`, `:error-message`).
//!
//! Events: `messageStart`; per content block `contentBlockStart` (a tool call's id and name),
//! `contentBlockDelta` (`text`, `toolUse.input` argument text, `reasoningContent` text,
//! signature or redacted content) and `contentBlockStop`; then `messageStop` with the stop
//! reason, and `metadata` with the usage. A body that ends before `messageStop`, or in the
//! middle of a frame, is a cut stream; an unknown event type is skipped, so one AWS adds later
//! breaks nothing. Tool calls are numbered in the order their blocks start.

use std::collections::HashMap;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, de::DeserializeOwned};

use super::{WireReasoning, WireUsage, error_kind, finish_reason, request_id};
use crate::{
    chat::{ChatEvent, FinishReason, ReasoningDelta, ToolCallDelta, Usage},
    provider::{
        ChatStream, ProviderError, ProviderErrorKind, http::Upstream, transport::UpstreamResponse,
    },
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    content_block_index: u32,
    #[serde(default)]
    start: Option<BlockStartKind>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartKind {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    content_block_index: u32,
    delta: DeltaKind,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaKind {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
    #[serde(default)]
    reasoning_content: Option<WireReasoning>,
}

#[derive(Debug, Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: String,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct ExceptionBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// What the stream has said so far.
#[derive(Default)]
struct Progress {
    /// Content block index → tool call number.
    tools: HashMap<u32, u32>,
    stop: Option<FinishReason>,
    usage: Option<Usage>,
}

/// The domain events of one ConverseStream reply.
pub(super) fn events(upstream: Upstream, response: UpstreamResponse, model: &str) -> ChatStream {
    let id = request_id(response.headers());
    let model = model.to_owned();
    let chunks = upstream.chunks(response);
    Box::pin(async_stream::stream! {
        let mut chunks = std::pin::pin!(chunks);
        let mut buffer = BytesMut::new();
        let mut decoder = MessageFrameDecoder::new();
        let mut progress = Progress::default();
        // Whether the decoder holds the prelude of a frame whose rest has not come.
        let mut mid_frame = false;
        loop {
            loop {
                let before = buffer.remaining();
                match decoder.decode_frame(&mut buffer) {
                    Ok(DecodedFrame::Complete(message)) => {
                        mid_frame = false;
                        match progress.read(&upstream, &message) {
                            Ok(Some(event)) => yield Ok(event),
                            Ok(None) => {}
                            Err(e) => {
                                yield Err(e);
                                return;
                            }
                        }
                    }
                    Ok(DecodedFrame::Incomplete) => {
                        mid_frame |= buffer.remaining() != before;
                        break;
                    }
                    Err(e) => {
                        yield Err(upstream.invalid(format!("the upstream sent a malformed event-stream frame: {e}")));
                        return;
                    }
                }
            }
            match chunks.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    yield Err(e);
                    return;
                }
                None => break,
            }
        }
        match progress.stop {
            Some(reason) if !mid_frame && buffer.is_empty() => {
                if let Some(usage) = progress.usage {
                    yield Ok(ChatEvent::Usage(usage));
                }
                yield Ok(ChatEvent::Finish { reason, id, provider_model: model });
            }
            _ => yield Err(upstream.cut()),
        }
    })
}

/// A string header of `message`.
fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

impl Progress {
    /// The domain event of one frame, if it makes one; an exception frame is the call's error.
    fn read(
        &mut self,
        upstream: &Upstream,
        message: &Message,
    ) -> Result<Option<ChatEvent>, ProviderError> {
        let payload = message.payload();
        match header(message, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = header(message, ":exception-type").unwrap_or("exception");
                let body: ExceptionBody = serde_json::from_slice(payload).unwrap_or_default();
                return Err(upstream.error(
                    error_kind(kind).unwrap_or(ProviderErrorKind::Server),
                    format!(
                        "upstream stream error: {kind}: {}",
                        body.message.as_deref().unwrap_or("no message")
                    ),
                ));
            }
            Some("error") => {
                let code = header(message, ":error-code").unwrap_or("error");
                return Err(upstream.error(
                    error_kind(code).unwrap_or(ProviderErrorKind::Server),
                    format!(
                        "upstream stream error: {code}: {}",
                        header(message, ":error-message").unwrap_or("no message")
                    ),
                ));
            }
            other => {
                return Err(upstream.invalid(format!(
                    "the upstream sent an event-stream frame of message type {other:?}"
                )));
            }
        }
        Ok(match header(message, ":event-type").unwrap_or_default() {
            "contentBlockStart" => {
                let start: BlockStart = json(upstream, payload)?;
                let Some(tool) = start.start.and_then(|s| s.tool_use) else { return Ok(None) };
                let index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.insert(start.content_block_index, index);
                Some(ChatEvent::ToolCallDelta(ToolCallDelta {
                    index,
                    id: Some(tool.tool_use_id),
                    name: Some(tool.name),
                    ..ToolCallDelta::default()
                }))
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = json(upstream, payload)?;
                let d = delta.delta;
                if let Some(text) = d.text {
                    Some(ChatEvent::ContentDelta(text))
                } else if let Some(tool) = d.tool_use {
                    let Some(&index) = self.tools.get(&delta.content_block_index) else {
                        return Err(upstream.invalid(format!(
                            "tool input for content block {} that started no tool call",
                            delta.content_block_index
                        )));
                    };
                    Some(ChatEvent::ToolCallDelta(ToolCallDelta {
                        index,
                        arguments: tool.input,
                        ..ToolCallDelta::default()
                    }))
                } else if let Some(r) = d.reasoning_content {
                    Some(ChatEvent::ReasoningDelta(ReasoningDelta {
                        text: r.text.unwrap_or_default(),
                        signature: r.signature,
                        redacted_data: r.redacted_content,
                    }))
                } else {
                    None
                }
            }
            "messageStop" => {
                let stop: MessageStop = json(upstream, payload)?;
                let mut reason = finish_reason(&stop.stop_reason);
                if reason == FinishReason::Stop && !self.tools.is_empty() {
                    reason = FinishReason::ToolCalls;
                }
                self.stop = Some(reason);
                None
            }
            "metadata" => {
                let metadata: Metadata = json(upstream, payload)?;
                self.usage = metadata.usage.map(|u| u.usage());
                None
            }
            // messageStart, contentBlockStop, and whatever comes later.
            _ => None,
        })
    }
}

fn json<T: DeserializeOwned>(upstream: &Upstream, payload: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(payload).map_err(|e| upstream.malformed_event(&e))
}
