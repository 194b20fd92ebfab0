//! Hostile callers: requests at and over the size limit, thousands of messages, deeply nested
//! JSON schemas, invalid UTF-8, unknown enum values, many streams that are never read,
//! slowloris connections and abrupt disconnects. Each gets a clear error or is shed, memory
//! stays bounded, and the server keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use crate::common::{TestServer, chat, fake_upstream, stream_chat, user};
use ai_service::proto::v1 as pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tonic::Code;
use tonic_types::StatusExt;

/// Bounds every call: a hang is a failure, not a stuck suite.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("the call ended in time")
}

/// The server answers a plain call on `model` (an echo route) and its health check: it
/// stayed healthy.
async fn assert_healthy_on(server: &TestServer, model: &str) {
    let reply = bounded(server.client().await.chat(chat(model, "still there?"))).await.unwrap();
    assert_eq!(common::text_of(reply.get_ref().message.as_ref().unwrap()), "still there?");
    let probe =
        ai_service::healthcheck::probe(&server.addr.to_string(), "", Duration::from_secs(5)).await;
    assert!(probe.is_ok(), "{probe:?}");
}

/// [`assert_healthy_on`] the default `echo` route.
async fn assert_healthy(server: &TestServer) {
    assert_healthy_on(server, "echo").await;
}

/// A server for `yaml`, with the fake upstreams' test key in its environment.
async fn with_test_key(yaml: &str) -> TestServer {
    let env = [("TEST_KEY".to_owned(), fake_upstream::TEST_KEY.to_owned())];
    let config =
        ai_service::Config::from_yaml(yaml, env.into_iter().chain(common::quiet_audit("")))
            .unwrap();
    TestServer::start_with(config).await
}

/// The field paths of a status's `BadRequest` details.
fn violations(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest details");
    bad.field_violations.iter().map(|v| v.field.clone()).collect()
}

/// Sends `payload` as one gRPC message to `path` over a bare HTTP/2 connection, bypassing any
/// client-side encoding; returns `grpc-status` and `grpc-message`.
async fn raw_call(server: &TestServer, path: &str, payload: &[u8]) -> (i32, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    let request = http::Request::post(format!("http://{}{path}", server.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let response = bounded(client.request(request)).await.unwrap();
    let headers = response.headers().clone();
    let collected = bounded(response.into_body().collect()).await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let get = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (get("grpc-status").parse().unwrap(), get("grpc-message"))
}

#[tokio::test]
async fn a_request_exactly_at_the_size_limit_passes_and_one_byte_more_is_refused() {
    const LIMIT: usize = 10_000;
    let server = TestServer::start(&format!("server: {{max_request_bytes: {LIMIT}}}")).await;
    // Grow the text until the encoded request is exactly at the limit.
    let mut request = chat("echo", "");
    let text = |r: &mut pb::ChatRequest, n: usize| {
        r.messages[0].content[0].part = Some(pb::content_part::Part::Text("x".repeat(n)));
    };
    let mut n = LIMIT - 100;
    text(&mut request, n);
    while request.encoded_len() < LIMIT {
        n += 1;
        text(&mut request, n);
    }
    assert_eq!(request.encoded_len(), LIMIT);
    let mut client = server.client().await;
    bounded(client.chat(request.clone())).await.unwrap();
    // The same size as a stream request is fine too.
    let stream_request = pb::StreamChatRequest {
        model: request.model.clone(),
        messages: request.messages.clone(),
        ..Default::default()
    };
    assert_eq!(stream_request.encoded_len(), LIMIT);
    let stream = bounded(client.stream_chat(stream_request.clone())).await.unwrap();
    assert!(common::collect(stream.into_inner()).await.1.is_none());

    text(&mut request, n + 1);
    let status = bounded(client.chat(request.clone())).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let mut stream_request = stream_request;
    stream_request.messages = request.messages.clone();
    let status = match bounded(client.stream_chat(stream_request)).await {
        Err(status) => status,
        Ok(stream) => common::collect(stream.into_inner()).await.1.expect("an error"),
    };
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // A request far over the limit (64 MiB) is refused just the same.
    let status = bounded(client.chat(chat("echo", &"y".repeat(64 << 20)))).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_healthy(&server).await;
}

#[tokio::test]
async fn thousands_of_messages_are_refused_and_the_limit_itself_passes() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let default_max = 1024;
    let mut request = chat("echo", "first");
    request.messages.extend((1..default_max).map(|i| user(&format!("m{i}"))));
    bounded(client.chat(request.clone())).await.unwrap();

    request.messages.extend((0..20_000).map(|i| user(&format!("more {i}"))));
    let status = bounded(client.chat(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at most 1024 messages"), "{}", status.message());
    assert_healthy(&server).await;
}

#[tokio::test]
async fn deeply_nested_json_schemas_are_invalid_not_a_stack_overflow() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let depth = 200_000;
    let objects = format!("{}{{}}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let mut request = chat("echo", "hi");
    request.generation = Some(pb::GenerationConfig {
        response_format: Some(pb::ResponseFormat {
            r#type: pb::ResponseFormatType::JsonSchema as i32,
            json_schema: Some(pb::JsonSchema {
                name: "deep".into(),
                schema_json: objects,
                ..Default::default()
            }),
        }),
        ..Default::default()
    });
    request.tools =
        vec![pb::Tool { name: "deep".into(), parameters_json: arrays, ..Default::default() }];
    let status = bounded(client.chat(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = violations(&status);
    assert!(
        fields.contains(&"generation.response_format.json_schema.schema_json".to_owned()),
        "{fields:?}"
    );
    assert!(fields.contains(&"tools[0].parameters_json".to_owned()), "{fields:?}");
    assert_healthy(&server).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_string_is_refused_cleanly() {
    let server = TestServer::start("").await;
    // A valid request whose text is then made invalid UTF-8 on the wire.
    let marker = "MARKER-TEXT";
    let mut bytes = chat("echo", marker).encode_to_vec();
    let at = bytes.windows(marker.len()).position(|w| w == marker.as_bytes()).unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    for path in ["/aiservice.v1.ChatService/Chat", "/aiservice.v1.ChatService/StreamChat"] {
        let (status, message) = raw_call(&server, path, &bytes).await;
        // A request that does not parse is the caller's mistake: INVALID_ARGUMENT (where
        // tonic alone answers INTERNAL), with the reason.
        assert_eq!(status, Code::InvalidArgument as i32, "{path}: {message}");
        assert!(message.contains("UTF-8"), "{path}: {message}");
    }
    // Bytes that are no protobuf at all.
    let (status, _) = raw_call(&server, "/aiservice.v1.ChatService/Chat", &[0xff; 64]).await;
    assert_eq!(status, Code::InvalidArgument as i32);
    assert_healthy(&server).await;
}

#[tokio::test]
async fn unknown_enum_values_name_their_fields() {
    let server = TestServer::start("").await;
    let mut request = chat("echo", "hi");
    request.messages[0].role = 99;
    request.messages.push(pb::Message {
        role: pb::Role::User as i32,
        content: vec![pb::ContentPart {
            part: Some(pb::content_part::Part::Image(pb::Image {
                source: Some(pb::image::Source::Url("https://example.com/a.png".into())),
                detail: 42,
                ..Default::default()
            })),
            cache_control: None,
        }],
        ..Default::default()
    });
    request.generation = Some(pb::GenerationConfig {
        response_format: Some(pb::ResponseFormat { r#type: 77, json_schema: None }),
        ..Default::default()
    });
    request.tool_choice = Some(pb::ToolChoice { choice: Some(pb::tool_choice::Choice::Mode(9)) });
    // The raw bytes, so no client-side enum check could interfere.
    let (code, message) =
        raw_call(&server, "/aiservice.v1.ChatService/Chat", &request.encode_to_vec()).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    let status = bounded(server.client().await.chat(request)).await.unwrap_err();
    let fields = violations(&status);
    for field in [
        "messages[0].role",
        "messages[1].content[0].image.detail",
        "generation.response_format.type",
        "tool_choice.mode",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} not in {fields:?}");
    }
    assert_healthy(&server).await;
}

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_are_never_read_do_not_grow_memory() {
    // Upstream streams that never end: if the gateway read ahead of its callers, each would
    // buffer up to max_output_bytes (64 MiB by default).
    use fake_upstream::{FakeUpstream, Reply, ReplyBody};
    let chunk = b"data: {\"choices\":[{\"delta\":{\"content\":\"0123456789abcdef\"}}]}\n\n";
    let fake = FakeUpstream::start(vec![Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: ReplyBody::Endless(chunk.repeat(64)),
    }])
    .await;
    let yaml = format!(
        "providers:\n{}  e: {{kind: echo}}\nroutes:\n  - {{name: m, targets: [{{provider: p, model: m}}]}}\n  - {{name: echo, targets: [{{provider: e, model: e}}]}}\n",
        fake_upstream::provider_yaml("p", "openai", &fake.url("/v1"), "")
    );
    let server = with_test_key(&yaml).await;

    let before = rss();
    // 64 streams on one connection and 16 connections with one each, none of them read.
    let mut held = Vec::new();
    let mut client = server.client().await;
    for _ in 0..64 {
        held.push(bounded(client.stream_chat(stream_chat("m", "go"))).await.unwrap());
    }
    for _ in 0..16 {
        held.push(
            bounded(server.client().await.stream_chat(stream_chat("m", "go"))).await.unwrap(),
        );
    }
    // Give unbounded buffering time to show: 80 streams would be gigabytes within a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 256 << 20, "RSS grew by {} MiB", grown >> 20);
    // Everyone else is still served, and the held streams still work when read.
    assert_healthy(&server).await;
    let mut first = held.swap_remove(0).into_inner();
    assert!(bounded(first.message()).await.unwrap().is_some());
    drop(held);
}

#[tokio::test]
async fn slowloris_connections_do_not_starve_other_callers() {
    let server = TestServer::start("").await;
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        match i % 4 {
            // Nothing at all.
            0 => {}
            // Half the HTTP/2 preface.
            1 => socket.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap(),
            // The preface, then a partial frame header.
            2 => socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00").await.unwrap(),
            // An HTTP/1.1 request line without its end.
            _ => socket
                .write_all(b"POST /aiservice.v1.ChatService/Chat HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap(),
        }
        idle.push(socket);
    }
    for _ in 0..3 {
        assert_healthy(&server).await;
    }
    drop(idle);
    assert_healthy(&server).await;
}

/// Reads from `socket` until the server closes it (EOF or reset), ignoring what it sends
/// (its SETTINGS, a GOAWAY); `None` if it is still open after `within`.
async fn closed_by_server(socket: &mut tokio::net::TcpStream, within: Duration) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn silent_and_stalled_connections_are_closed() {
    let server = TestServer::start(
        "server: {handshake_timeout: 300ms, keepalive_interval: 200ms, keepalive_timeout: 200ms}",
    )
    .await;
    let stalls: [&[u8]; 4] = [
        // Nothing at all: the preface never comes.
        b"",
        // Half the HTTP/2 preface, dribbled.
        b"PRI * HTTP/2.0\r\n",
        // The preface, then half a frame header: past the preface, so the keepalive PING
        // (never answered) closes it.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00",
        // An HTTP/1.1 request head that never ends (the HTTP front doors share the port).
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
    ];
    let mut sockets = Vec::new();
    for stall in stalls {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(stall).await.unwrap();
        sockets.push(socket);
    }
    // A real client on one HTTP/2 connection (no transparent reconnect, unlike a Channel).
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let call = |text: &str| {
        let payload = chat("echo", text).encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&payload);
        http::Request::post(format!("http://{}/aiservice.v1.ChatService/Chat", server.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(frame)))
            .unwrap()
    };
    let first = bounded(sender.send_request(call("before"))).await.unwrap();
    assert_eq!(first.status(), 200);
    bounded(first.into_body().collect()).await.unwrap();

    for (stall, socket) in stalls.iter().zip(&mut sockets) {
        let closed = closed_by_server(socket, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "still open after 5 s: {:?}", String::from_utf8_lossy(stall));
    }
    // Several keepalive rounds later, the idle real connection (its client answers PINGs) is
    // still open and serves the next call.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!sender.is_closed(), "the server closed a client that answers its PINGs");
    let second = bounded(sender.send_request(call("after the pings"))).await.unwrap();
    let body = bounded(second.into_body().collect()).await.unwrap();
    let status = body.trailers().and_then(|t| t.get("grpc-status")).cloned();
    assert_eq!(status.unwrap(), "0");
    assert_healthy(&server).await;
}

/// Waits, bounded, until a call on the `slow` route is admitted again.
async fn admitted_again(server: &TestServer, what: &str) {
    for _ in 0..100 {
        match server.client().await.chat(chat("slow", "x")).await {
            Ok(_) => return,
            Err(status) if status.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("{what}: {status:?}"),
        }
    }
    panic!("{what}: a vanished caller kept its in-flight place");
}

#[tokio::test]
async fn callers_that_vanish_mid_stream_release_their_place() {
    // One call in flight at most: a vanished caller whose call kept running would shed all
    // later calls with RESOURCE_EXHAUSTED.
    let yaml = r#"
server: {max_in_flight: 1}
providers: {slow: {kind: echo, chunk_delay: 20ms}}
routes: [{name: slow, targets: [{provider: slow, model: m}]}]
"#;
    let server = TestServer::start(yaml).await;
    let long_text = "word ".repeat(10_000);
    for round in 0..3 {
        // Politely: the client drops the stream and its connection.
        let mut client = server.client().await;
        let mut stream = bounded(client.stream_chat(stream_chat("slow", &long_text)))
            .await
            .unwrap()
            .into_inner();
        assert!(bounded(stream.message()).await.unwrap().is_some(), "round {round}");
        drop(stream);
        drop(client);
        admitted_again(&server, &format!("dropped, round {round}")).await;

        // Abruptly: the TCP connection is shut down under the stream, with no HTTP/2 goodbye.
        let (sockets_tx, sockets_rx) = std::sync::mpsc::channel::<std::net::TcpStream>();
        let addr = server.addr;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let sockets_tx = sockets_tx.clone();
                async move {
                    let socket = std::net::TcpStream::connect(addr)?;
                    socket.set_nonblocking(true)?;
                    let _ = sockets_tx.send(socket.try_clone()?);
                    let socket = tokio::net::TcpStream::from_std(socket)?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(socket))
                }
            }))
            .await
            .unwrap();
        let mut client = pb::chat_service_client::ChatServiceClient::new(channel);
        let mut stream = bounded(client.stream_chat(stream_chat("slow", &long_text)))
            .await
            .unwrap()
            .into_inner();
        assert!(bounded(stream.message()).await.unwrap().is_some(), "round {round}");
        sockets_rx.recv().unwrap().shutdown(std::net::Shutdown::Both).unwrap();
        admitted_again(&server, &format!("cut, round {round}")).await;
        drop(stream);
    }
    assert_healthy_on(&server, "slow").await;
}

#[tokio::test]
async fn a_caller_that_goes_away_drops_its_upstream_request() {
    use fake_upstream::{FakeUpstream, Reply, ReplyBody};
    let chunk = b"data: {\"choices\":[{\"delta\":{\"content\":\"more \"}}]}\n\n";
    let fake = FakeUpstream::start(vec![Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: ReplyBody::Endless(chunk.to_vec()),
    }])
    .await;
    let yaml = format!(
        "providers:\n{}routes:\n  - {{name: m, targets: [{{provider: p, model: m}}]}}\n",
        fake_upstream::provider_yaml("p", "openai", &fake.url("/v1"), "")
    );
    let server = with_test_key(&yaml).await;
    let mut client = server.client().await;
    let mut stream =
        bounded(client.stream_chat(stream_chat("m", "go"))).await.unwrap().into_inner();
    assert!(bounded(stream.message()).await.unwrap().is_some());
    assert_eq!(fake.endless_bodies(), 1);
    drop(stream);
    drop(client);
    // The gateway drops its upstream request, the connection closes, and the fake's endless
    // body ends; bounded wait, no timing asserted.
    for _ in 0..200 {
        if fake.endless_bodies() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the upstream request outlived its caller");
}
