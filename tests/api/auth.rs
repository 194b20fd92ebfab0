//! Client authentication: keys by hash, Bearer or x-api-key, open health and reflection,
//! routes per key, a keys file that is re-read, and the keygen command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{TestServer, chat};
use ai_service::proto::v1::ListModelsRequest;
use sha2::{Digest, Sha256};
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

const ALICE: &str = "ais_alice_0123456789abcdef0123456789";
const BOB: &str = "ais_bob_0123456789abcdef0123456789abc";

fn sha(key: &str) -> String {
    ai_service::auth::hex(&Sha256::digest(key.as_bytes()))
}

fn config() -> String {
    format!(
        r#"
auth:
  keys:
    - {{id: alice, name: Alice, sha256: {}}}
    - {{id: bob, sha256: {}, routes: [cheap]}}
providers: {{e: {{kind: echo}}}}
routes:
  - {{name: cheap, targets: [{{provider: e, model: small}}]}}
  - {{name: premium, targets: [{{provider: e, model: large}}]}}
"#,
        sha(ALICE),
        sha(BOB)
    )
}

fn with_header<T>(message: T, name: &'static str, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(name, value.parse().unwrap());
    request
}

#[tokio::test]
async fn calls_without_a_valid_key_are_unauthenticated() {
    let server = TestServer::start(&config()).await;
    let mut client = server.client().await;

    let status = client.chat(chat("cheap", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("client key is required"), "{}", status.message());
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "UNAUTHENTICATED");

    let status = client
        .chat(with_header(chat("cheap", "hi"), "authorization", "Bearer ais_wrong"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("ais_wrong"));

    let status = client.list_models(ListModelsRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_key_works_as_bearer_or_x_api_key() {
    let server = TestServer::start(&config()).await;
    let mut client = server.client().await;
    let bearer = format!("Bearer {ALICE}");
    client.chat(with_header(chat("premium", "hi"), "authorization", &bearer)).await.unwrap();
    client.chat(with_header(chat("premium", "hi"), "x-api-key", ALICE)).await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_need_no_key() {
    let server = TestServer::start(&config()).await;
    let health = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest { service: String::new() })
        .await;
    assert!(health.is_ok());
    let probe = ai_service::healthcheck::probe(
        &server.addr.to_string(),
        "",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(probe.is_ok(), "{probe:?}");
}

#[tokio::test]
async fn a_key_limited_to_some_routes_is_denied_the_others() {
    let server = TestServer::start(&config()).await;
    let mut client = server.client().await;
    client.chat(with_header(chat("cheap", "hi"), "x-api-key", BOB)).await.unwrap();

    let status =
        client.chat(with_header(chat("premium", "hi"), "x-api-key", BOB)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "ROUTE_NOT_ALLOWED");
    let status = client.chat(with_header(chat("e/raw", "hi"), "x-api-key", BOB)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "passthrough routes are routes too");

    let listed =
        client.list_models(with_header(ListModelsRequest {}, "x-api-key", BOB)).await.unwrap();
    let names: Vec<String> = listed.into_inner().models.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["cheap"], "ListModels shows only what the key may call");
}

#[tokio::test]
async fn the_keys_file_is_re_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    std::fs::write(&file, format!("- {{id: alice, sha256: {}}}\n", sha(ALICE))).unwrap();
    let yaml = format!("auth: {{keys_file: {}}}\n", file.display());
    let server = TestServer::start(&yaml).await;
    let mut client = server.client().await;
    client.chat(with_header(chat("echo", "hi"), "x-api-key", ALICE)).await.unwrap();
    assert_eq!(
        client.chat(with_header(chat("echo", "hi"), "x-api-key", BOB)).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // Rotate: Bob in, Alice out.
    std::fs::write(&file, format!("- {{id: bob, sha256: {}}}\n", sha(BOB))).unwrap();
    server.gateway.reload_keys();
    client.chat(with_header(chat("echo", "hi"), "x-api-key", BOB)).await.unwrap();
    assert_eq!(
        client.chat(with_header(chat("echo", "hi"), "x-api-key", ALICE)).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A broken file keeps the keys in force.
    std::fs::write(&file, "- {id: [").unwrap();
    server.gateway.reload_keys();
    client.chat(with_header(chat("echo", "hi"), "x-api-key", BOB)).await.unwrap();
}

#[test]
fn keygen_prints_a_key_and_its_hash_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ai-service"))
        .args(["keygen", "--id", "team-a", "--name", "Team A"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(key.starts_with("ais_"), "{text}");
    assert!(
        text.contains(&format!("{{id: \"team-a\", name: \"Team A\", sha256: {}}}", sha(key))),
        "{text}"
    );
}

#[tokio::test]
async fn a_key_over_its_request_rate_is_resource_exhausted_with_retry_info() {
    let yaml = format!(
        "auth: {{keys: [{{id: slowpoke, sha256: {}, requests_per_minute: 2}}, {{id: other, sha256: {}}}]}}\n",
        sha(ALICE),
        sha(BOB)
    );
    let server = TestServer::start(&yaml).await;
    let mut client = server.client().await;
    for _ in 0..2 {
        client.chat(with_header(chat("echo", "hi"), "x-api-key", ALICE)).await.unwrap();
    }
    let status =
        client.chat(with_header(chat("echo", "hi"), "x-api-key", ALICE)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    let delay = details.retry_info().unwrap().retry_delay.unwrap();
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(60),
        "{delay:?}"
    );
    // Another key is not held back by this one's limit.
    client.chat(with_header(chat("echo", "hi"), "x-api-key", BOB)).await.unwrap();
}
