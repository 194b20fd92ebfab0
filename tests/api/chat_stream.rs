//! `StreamChat` end to end: the events, their order, and tool-call deltas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{TestServer, collect, stream_chat};
use ai_service::proto::v1::{self as pb, stream_chat_response::Event};

#[tokio::test]
async fn streams_deltas_then_usage_then_finish() {
    let server = TestServer::start("").await;
    let stream =
        server.client().await.stream_chat(stream_chat("echo", "one two three")).await.unwrap();

    let (events, status) = collect(stream.into_inner()).await;

    assert!(status.is_none(), "stream ended with {status:?}");
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::ContentDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, ["one ", "two ", "three"]);
    assert_eq!(events.len(), 5, "{events:?}");
    let Event::Usage(usage) = &events[3] else {
        panic!("usage must come after the deltas: {events:?}")
    };
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (3, 3, 6));
    let Event::Finish(finish) = &events[4] else { panic!("finish must be last: {events:?}") };
    assert_eq!(finish.reason, pb::FinishReason::Stop as i32);
    assert_eq!(finish.model, "echo");
    assert_eq!(finish.provider, "echo");
    assert!(!finish.id.is_empty());
}

#[tokio::test]
async fn tool_call_deltas_assemble_into_the_call() {
    let server = TestServer::start("").await;
    let mut request = stream_chat("echo", "look this up");
    request.tools = vec![pb::Tool { name: "search".into(), ..Default::default() }];
    request.tool_choice =
        Some(pb::ToolChoice { choice: Some(pb::tool_choice::Choice::ToolName("search".into())) });

    let (events, status) =
        collect(server.client().await.stream_chat(request).await.unwrap().into_inner()).await;

    assert!(status.is_none());
    let deltas: Vec<&pb::ToolCallDelta> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallDelta(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(deltas.len() >= 2, "arguments should come in pieces: {deltas:?}");
    assert_eq!((deltas[0].id.as_str(), deltas[0].name.as_str()), ("call_echo_0", "search"));
    let args: String = deltas.iter().map(|d| d.arguments_delta.as_str()).collect();
    assert_eq!(args, r#"{"text":"look this up"}"#);
    let Some(Event::Finish(finish)) = events.last() else { panic!("finish must be last") };
    assert_eq!(finish.reason, pb::FinishReason::ToolCalls as i32);
}

#[tokio::test]
async fn stream_errors_before_the_first_event_are_statuses() {
    let server = TestServer::start("").await;
    let err = server.client().await.stream_chat(stream_chat("nope", "hi")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
