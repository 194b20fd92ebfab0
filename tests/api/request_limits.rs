//! Request limits: size, messages per request, and load shedding at the in-flight limit; over
//! a limit a caller gets a clear error and the server stays healthy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use crate::common::{TestServer, chat, collect, stream_chat, text_of, user};
use ai_service::proto::v1::stream_chat_response::Event;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_and_the_server_stays_healthy() {
    let server = TestServer::start("server: {max_request_bytes: 10000}").await;
    let mut client = server.client().await;
    let status = client.chat(chat("echo", &"x".repeat(20_000))).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("message length too large"), "{}", status.message());
    // At the limit is fine, and so is the next call.
    client.chat(chat("echo", &"y".repeat(9_000))).await.unwrap();
}

/// The codec's buffers start at 1 KiB (src/proto.rs): a request and replies hundreds of times
/// larger grow them and arrive whole, unary and streamed.
#[tokio::test]
async fn messages_far_larger_than_the_codecs_first_buffer_arrive_whole() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let text: String = (0..40_000).map(|i| format!("w{i} ")).collect::<String>().trim_end().into();
    assert!(text.len() > 250_000);

    let reply = client.chat(chat("echo", &text)).await.unwrap().into_inner();
    assert_eq!(text_of(reply.message.as_ref().unwrap()), text);

    let stream = client.stream_chat(stream_chat("echo", &text)).await.unwrap().into_inner();
    let (events, status) = collect(stream).await;
    assert!(status.is_none(), "{status:?}");
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            Event::ContentDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, text);
    assert!(matches!(events.last(), Some(Event::Finish(_))));
}

#[tokio::test]
async fn too_many_messages_is_invalid() {
    let server = TestServer::start("server: {max_messages: 100}").await;
    let mut request = chat("echo", "first");
    request.messages.extend((0..200).map(|i| user(&format!("m{i}"))));
    let status = server.client().await.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 100 messages per request, got 201"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn calls_over_the_in_flight_limit_are_shed_not_queued() {
    let yaml = r#"
server: {max_in_flight: 2}
providers: {slow: {kind: echo, chunk_delay: 300ms}}
routes: [{name: slow, targets: [{provider: slow, model: m}]}]
"#;
    let server = TestServer::start(yaml).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut client = server.client().await;
        busy.push(tokio::spawn(async move { client.chat(chat("slow", "a")).await }));
    }
    // Let the two slow calls take their places.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = server.client().await.chat(chat("slow", "b")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "OVERLOADED");
    assert!(details.retry_info().is_some());
    // Health is not shed, and the calls that were admitted finish.
    let probe =
        ai_service::healthcheck::probe(&server.addr.to_string(), "", Duration::from_secs(5)).await;
    assert!(probe.is_ok());
    for call in busy {
        call.await.unwrap().unwrap();
    }
    server.client().await.chat(chat("slow", "c")).await.unwrap();
}
