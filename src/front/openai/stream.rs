//! A streamed chat completion as OpenAI sends it: server-sent events, each a `data:` line with
//! a `chat.completion.chunk` object, in this order:
//!
//! 1. a chunk with the assistant's role and empty content;
//! 2. a chunk per content delta (`delta.content`), reasoning delta (`delta.reasoning_content`,
//!    and `delta.reasoning_details` for a signature or redacted reasoning) or tool-call delta
//!    (`delta.tool_calls`, the call's index, and its id, type and name on its first piece, and
//!    Gemini's thought signature in `extra_content`);
//! 3. a chunk with empty `delta` and the `finish_reason`;
//! 4. with `stream_options.include_usage`, a chunk with empty `choices` and the `usage` (every
//!    other chunk then carries `"usage": null`, as OpenAI's do);
//! 5. `data: [DONE]`, once the call has ended.
//!
//! A stream that fails after it began ends with `data: {"error": {...}}` ([`super::error_event`])
//! and no `[DONE]`: the `openai` SDKs raise it while the caller iterates. A failure before the
//! first event is still an HTTP error with its status.

use std::convert::Infallible;

use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, header};
use serde::Serialize;

use super::{
    chat::{UsageOut, finish_reason_name, unix_now},
    error_event,
    reasoning::{ExtraContent, ReasoningDetail},
};
use crate::{
    call::ReplyStream,
    chat::{ReplyEvent, ToolCallDelta, Usage},
    error::Error,
};

/// What every chunk of one stream repeats.
#[derive(Debug)]
pub(super) struct ChunkHead {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHead {
    /// The chunks of completion `id`, answering a request for `model`.
    pub(super) fn new(id: String, model: String) -> ChunkHead {
        ChunkHead { id, created: unix_now(), model }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Option<UsageOut>>) -> Bytes {
        event(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        })
    }
}

#[derive(Debug, Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice>,
    /// Absent unless the caller asked for usage; then `null` but on the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Debug, Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Delta,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<[ReasoningDetail; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallChunk; 1]>,
}

#[derive(Debug, Serialize)]
struct ToolCallChunk {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<ExtraContent>,
}

#[derive(Debug, Serialize)]
struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    arguments: String,
}

impl From<ToolCallDelta> for ToolCallChunk {
    fn from(d: ToolCallDelta) -> ToolCallChunk {
        ToolCallChunk {
            index: d.index,
            kind: d.id.is_some().then_some("function"),
            id: d.id,
            function: FunctionDelta { name: d.name, arguments: d.arguments },
            extra_content: ExtraContent::signed(d.signature),
        }
    }
}

/// The stream of `events` as OpenAI's server-sent events, or the error it failed with before
/// its first event.
pub(super) async fn respond(
    mut events: ReplyStream,
    head: ChunkHead,
    include_usage: bool,
) -> Result<Response, Error> {
    // Headers wait for the first event, so that a failure before anything was relayed is an
    // HTTP error the SDKs map to their exceptions (a 429 with its Retry-After).
    let first = match events.next().await {
        Some(Err(error)) => return Err(error),
        first => first,
    };
    let events = futures::stream::iter(first).chain(events);
    let mut response =
        Response::new(crate::front::http::event_stream(sse(events, head, include_usage)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The chunks of a stream; see the module docs for their order.
fn sse<S>(
    mut events: S,
    head: ChunkHead,
    include_usage: bool,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send
where
    S: Stream<Item = Result<ReplyEvent, Error>> + Send + Unpin + 'static,
{
    let usage_field = include_usage.then_some(None);
    async_stream::stream! {
        let delta = |delta: Delta, finish_reason: Option<&'static str>| {
            let choice = ChunkChoice { index: 0, delta, logprobs: None, finish_reason };
            head.chunk(vec![choice], usage_field)
        };
        let role = Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() };
        yield Ok(delta(role, None));
        let mut usage = Usage::default();
        let mut finished = false;
        while let Some(item) = events.next().await {
            match item {
                Ok(ReplyEvent::ContentDelta(text)) => {
                    yield Ok(delta(Delta { content: Some(text), ..Delta::default() }, None));
                }
                Ok(ReplyEvent::ReasoningDelta(d)) => {
                    let signed = d.signature.is_some() || d.redacted_data.is_some();
                    let details = signed.then(|| [ReasoningDetail::of_delta(&d)]);
                    let text = (!d.text.is_empty()).then_some(d.text);
                    yield Ok(delta(Delta { reasoning_content: text, reasoning_details: details, ..Delta::default() }, None));
                }
                Ok(ReplyEvent::ToolCallDelta(d)) => {
                    yield Ok(delta(Delta { tool_calls: Some([d.into()]), ..Delta::default() }, None));
                }
                // The pipeline sends usage right before the finish.
                Ok(ReplyEvent::Usage(u)) => usage = u,
                Ok(ReplyEvent::Finish(f)) => {
                    finished = true;
                    yield Ok(delta(Delta::default(), Some(finish_reason_name(f.reason))));
                    if include_usage {
                        let usage = UsageOut::from(usage).with_cost(f.bill.cost.as_ref());
                        yield Ok(head.chunk(Vec::new(), Some(Some(usage))));
                    }
                }
                Err(error) => {
                    yield Ok(error_event(&error));
                    return;
                }
            }
        }
        // [DONE] only once the stream ended, and with it the call (its record written).
        if finished {
            yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        } else {
            // Never expected: the pipeline ends every stream with its finish or an error.
            let error = Error::Internal("the stream ended without its finish".into());
            yield Ok(error_event(&error));
        }
    }
}

/// One server-sent event whose data is `data` as JSON.
pub(super) fn event(data: &impl Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    if serde_json::to_writer(&mut out, data).is_err() {
        // Never expected for these types; the caller still gets an error it can raise.
        out.truncate(b"data: ".len());
        out.extend_from_slice(
            br#"{"error":{"message":"internal error","type":"api_error","param":null,"code":"INTERNAL"}}"#,
        );
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
