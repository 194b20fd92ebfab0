//! Where the HTTP front doors are served: on the gRPC port by default (HTTP/1.1 and h2c beside
//! gRPC), on a listener of their own with `server.http.listen`, or not at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::{process::Stdio, time::Duration};

use crate::common::{Binary, TestServer, chat, http_get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

/// `GET path` over HTTP/2 without TLS (prior knowledge, as gRPC clients do): the status and
/// the body, or the `grpc-status` of a gRPC answer (tonic answers an unknown path so).
async fn h2c_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let response = client.get(format!("http://{addr}{path}").parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    if let Some(grpc) = response.headers().get("grpc-status") {
        return (status, format!("grpc-status {}", grpc.to_str().unwrap()));
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn by_default_the_http_apis_share_the_grpc_port_over_http1_and_h2c() {
    let server = TestServer::start("").await;
    let (status, body) = http_get(server.addr, "/v1/models").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\":\"echo\""), "{body}");
    let (status, body) = h2c_get(server.addr, "/v1/models").await;
    assert_eq!(status, 200, "{body}");
    // gRPC on the same port is untouched.
    server.client().await.chat(chat("echo", "still gRPC")).await.unwrap();
}

#[tokio::test]
async fn switched_off_the_http_apis_are_not_served() {
    let server = TestServer::start("server: {http: {enabled: false}}").await;
    let (_, body) = h2c_get(server.addr, "/v1/models").await;
    assert_eq!(body, "grpc-status 12", "unimplemented, as for any unknown path");
    server.client().await.chat(chat("echo", "gRPC only")).await.unwrap();
}

#[tokio::test]
async fn on_a_listener_of_their_own_they_leave_the_grpc_port() {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let http = free();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("server: {{http: {{listen: \"{http}\"}}}}\n")).unwrap();
    let binary = Binary::start(&config, &[], Stdio::null(), Stdio::null()).await;
    let mut served = None;
    for _ in 0..50 {
        if let Ok(stream) = tokio::net::TcpStream::connect(http).await {
            drop(stream);
            served = Some(http_get(http, "/v1/models").await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = served.expect("the HTTP listener is up");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"echo\""), "{body}");
    let grpc: std::net::SocketAddr = binary.addr.parse().unwrap();
    let (_, body) = h2c_get(grpc, "/v1/models").await;
    assert_eq!(body, "grpc-status 12", "the gRPC port no longer serves them");
    binary.signal("TERM");
    assert!(binary.wait().await.success());
}

#[test]
fn the_http_listener_must_be_an_address_of_its_own() {
    let err = ai_service::Config::from_yaml(
        "server: {listen: \"127.0.0.1:7000\", http: {listen: \"127.0.0.1:7000\"}}",
        std::iter::empty(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("server.http.listen"), "{err}");
    let err =
        ai_service::Config::from_yaml("server: {http: {listen: nowhere}}", std::iter::empty())
            .unwrap_err();
    assert!(err.to_string().contains("server.http.listen"), "{err}");
}

/// Sends `request` (a whole HTTP/1.1 request, or its start when the body never comes) and
/// returns the status line's code once the answer's head is in.
async fn raw_status(addr: std::net::SocketAddr, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&head)[9..12].parse().unwrap()
}

/// Calls refused by either HTTP door before their body was understood (no key, too large, a
/// body that never came) each leave one audit record and one `requests_total` sample with
/// their door, method and code, as gRPC's refusals do.
#[tokio::test]
async fn refused_http_calls_leave_their_record_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let key = "ais_front_refusals_key_0123456789";
    let sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let yaml = format!(
        "server: {{max_request_bytes: 1024, http: {{body_timeout: 200ms}}}}\naudit: {{sink: {}}}\nauth:\n  keys: [{{id: team, sha256: {sha}}}]\n",
        audit.display()
    );
    let server = TestServer::start(&yaml).await;
    let (admin, _stop) = common::start_admin(&server.gateway).await;
    let post = |path: &str, key: Option<&str>, body: &str, length: usize| {
        let auth = key.map(|k| format!("authorization: Bearer {k}\r\n")).unwrap_or_default();
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}content-type: application/json\r\ncontent-length: {length}\r\n\r\n{body}"
        )
    };
    let big = format!("{{\"model\":\"echo\",\"pad\":\"{}\"}}", "x".repeat(2048));
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let hello =
            r#"{"model":"echo","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(raw_status(server.addr, &post(path, None, hello, hello.len())).await, 401);
        assert_eq!(raw_status(server.addr, &post(path, Some(key), &big, big.len())).await, 413);
        assert_eq!(raw_status(server.addr, &post(path, Some(key), "{\"mo", 100)).await, 408);
    }

    let mut records: Vec<serde_json::Value> = Vec::new();
    for _ in 0..100 {
        records = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["front_door"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
                r["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("openai", "Chat", "UNAUTHENTICATED"),
            ("openai", "Chat", "OUT_OF_RANGE"),
            ("openai", "Chat", "DEADLINE_EXCEEDED"),
            ("anthropic", "Chat", "UNAUTHENTICATED"),
            ("anthropic", "Chat", "OUT_OF_RANGE"),
            ("anthropic", "Chat", "DEADLINE_EXCEEDED"),
        ]
    );
    let (_, scrape) = http_get(admin, "/metrics").await;
    for door in ["openai", "anthropic"] {
        for code in ["UNAUTHENTICATED", "OUT_OF_RANGE", "DEADLINE_EXCEEDED"] {
            let series = format!(
                "ai_service_requests_total{{front_door=\"{door}\",method=\"Chat\",route=\"none\",provider=\"none\",code=\"{code}\"}} 1"
            );
            assert!(scrape.contains(&series), "no {series} in\n{scrape}");
        }
    }
}
