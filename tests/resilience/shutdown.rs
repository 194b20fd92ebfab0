//! Graceful shutdown: streams in flight finish within the grace period; new calls are
//! refused; a grace period that runs out stops the server anyway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use crate::common::{TestServer, collect, stream_chat};
use ai_service::proto::v1::stream_chat_response::Event;

const SLOW: &str = r#"
server: {shutdown_grace: 30s}
providers:
  slow: {kind: echo, chunk_delay: 50ms}
routes:
  - {name: slow, targets: [{provider: slow, model: echo}]}
"#;

#[tokio::test]
async fn an_in_flight_stream_completes_during_the_grace_period() {
    let mut server = TestServer::start(SLOW).await;
    let mut client = server.client().await;
    let mut stream =
        client.stream_chat(stream_chat("slow", "a b c d e f g h i j")).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::ContentDelta(_))));

    server.begin_shutdown();
    let (rest, status) = collect(stream).await;

    assert!(status.is_none(), "the stream was cut: {status:?}");
    let deltas = rest.iter().filter(|e| matches!(e, Event::ContentDelta(_))).count();
    assert_eq!(deltas, 9, "every remaining word arrives");
    assert!(matches!(rest.last(), Some(Event::Finish(_))));
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn new_calls_are_refused_once_draining_stopped_the_listener() {
    let mut server = TestServer::start(SLOW).await;
    let mut client = server.client().await;
    // Keep a call in flight so the server is still draining while we knock.
    let in_flight =
        client.stream_chat(stream_chat("slow", "a b c d e f g h i j")).await.unwrap().into_inner();

    server.begin_shutdown();
    // The listener closes right away (no shutdown delay configured).
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are still accepted while draining");

    let (_, status) = collect(in_flight).await;
    assert!(status.is_none(), "the call in flight was cut: {status:?}");
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn the_grace_period_bounds_the_drain() {
    let yaml = r#"
server: {shutdown_grace: 100ms}
providers:
  slow: {kind: echo, chunk_delay: 10s}
routes:
  - {name: slow, targets: [{provider: slow, model: echo}]}
"#;
    let mut server = TestServer::start(yaml).await;
    let mut client = server.client().await;
    // The first word takes 10 s, so the call is still waiting for it when the drain starts.
    let call = tokio::spawn(async move { client.stream_chat(stream_chat("slow", "a b")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.begin_shutdown();
    // The drain gives up after the grace period instead of waiting for the stream.
    tokio::time::timeout(Duration::from_secs(5), server.stopped()).await.unwrap().unwrap();
    let status = match call.await.unwrap() {
        Err(status) => status,
        Ok(stream) => {
            collect(stream.into_inner()).await.1.expect("a cut stream must not end cleanly")
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("server stopped"), "{}", status.message());
}
