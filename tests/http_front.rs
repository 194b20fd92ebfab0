//! Where the HTTP front doors are served: on the gRPC port by default (HTTP/1.1 and h2c beside
//! gRPC), on a listener of their own with `server.http.listen`, or not at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::{process::Stdio, time::Duration};

use bytes::Bytes;
use common::{Binary, TestServer, chat, http_get};
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
