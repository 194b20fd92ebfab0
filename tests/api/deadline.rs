//! The caller's deadline (`grpc-timeout`) bounds the whole call, unary and streaming, and
//! the caller gets DEADLINE_EXCEEDED promptly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::{Duration, Instant};

use crate::common::{TestServer, chat, collect, stream_chat};
use tonic::Code;

const SLOW: &str = r#"
server: {request_timeout: 3s}
providers:
  slow: {kind: echo, chunk_delay: 100ms}
routes:
  - {name: slow, targets: [{provider: slow, model: echo}]}
"#;

#[tokio::test]
async fn a_unary_call_past_its_deadline_is_deadline_exceeded() {
    let server = TestServer::start(SLOW).await;
    let mut request = tonic::Request::new(chat("slow", "a b c d e f g h i j k l m n o p"));
    // The header as any gRPC client sends it, over a client that does not enforce it itself
    // (tonic's would report its own CANCELLED first): this checks what the server answers.
    request.metadata_mut().insert("grpc-timeout", "300m".parse().unwrap());
    let started = Instant::now();
    let status = server.raw_client().chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "not prompt: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
    let server = TestServer::start(SLOW).await;
    let mut request = tonic::Request::new(stream_chat("slow", "a b c d e f g h i j k l m n o p"));
    request.metadata_mut().insert("grpc-timeout", "450m".parse().unwrap());
    let stream = server.raw_client().stream_chat(request).await.unwrap().into_inner();
    let (events, status) = collect(stream).await;
    assert!(!events.is_empty(), "some words arrive before the deadline");
    assert!(events.len() < 16, "the stream must not finish: {events:?}");
    assert_eq!(status.expect("the stream must end with an error").code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn calls_without_a_deadline_get_the_configured_request_timeout() {
    let yaml = SLOW.replace("request_timeout: 3s", "request_timeout: 250ms");
    let server = TestServer::start(&yaml).await;
    let status = server.client().await.chat(chat("slow", "a b c d e f g h i j")).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(status.message().contains("deadline"), "{}", status.message());
}
