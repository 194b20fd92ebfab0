//! Vertex AI without a key: GKE workload identity, where tokens come from the instance metadata
//! server. `gcp_auth` asks the fixed host `metadata.google.internal`, so the real binary runs in
//! its own mount namespace (`unshare --mount`) whose `/etc/hosts` sends that name to 127.0.0.1,
//! where a fake metadata server (port 80) hands out numbered tokens to callers that send
//! `Metadata-Flavor: Google`. The network is the test's own: nothing leaves 127.0.0.1.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::get};
use serde_json::json;

use crate::common::{Binary, fake_upstream::*};

#[derive(Clone, Default)]
struct Metadata {
    tokens: Arc<Mutex<usize>>,
    expires_in: u64,
}

fn token(n: usize) -> String {
    format!("ya29.metadata-token-{n}")
}

fn flavored(headers: &HeaderMap) {
    assert_eq!(
        headers.get("metadata-flavor").and_then(|v| v.to_str().ok()),
        Some("Google"),
        "the metadata server answers only requests with Metadata-Flavor: Google"
    );
}

async fn project(headers: HeaderMap) -> &'static str {
    flavored(&headers);
    "test-project"
}

async fn access_token(
    State(m): State<Metadata>,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    flavored(&headers);
    let mut n = m.tokens.lock().unwrap();
    *n += 1;
    axum::Json(
        json!({"access_token": token(*n), "expires_in": m.expires_in, "token_type": "Bearer"}),
    )
}

#[tokio::test]
async fn without_a_key_tokens_come_from_the_metadata_server_and_are_renewed() {
    let metadata = Metadata { expires_in: 22, ..Metadata::default() };
    let app = axum::Router::new()
        .route("/computeMetadata/v1/project/project-id", get(project))
        .route("/computeMetadata/v1/instance/service-accounts/default/token", get(access_token))
        .with_state(metadata.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:80")
        .await
        .expect("port 80 on 127.0.0.1 for the fake metadata server (the tests run as root)");
    let _server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let upstream = FakeUpstream::start(vec![Reply::json(200, "vertex/generate.json")]).await;

    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 metadata.google.internal\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  vertex: {{kind: vertex, project: test-project, location: us-central1, base_url: '{}', disable_proxy: true}}\nroutes:\n  - name: gemini\n    targets: [{{provider: vertex, model: gemini-2.5-flash}}]\n",
            upstream.url("")
        ),
    )
    .unwrap();
    let free_port =
        || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (addr, admin) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_ai-service"))
        .arg("--config")
        .arg(&config)
        .env("AI_SERVICE__SERVER__LISTEN", &addr)
        .env("AI_SERVICE__SERVER__ADMIN_LISTEN", &admin)
        .env("AI_SERVICE__AUDIT__SINK", "/dev/null")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("unshare (util-linux) runs the binary in its own mount namespace");
    for _ in 0..100 {
        if ai_service::healthcheck::probe(&addr, "", Duration::from_secs(1)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gw = Binary { child, addr, admin };
    let mut client =
        ai_service::proto::v1::chat_service_client::ChatServiceClient::new(gw.channel().await);

    for text in ["one", "two"] {
        let reply = client.chat(user_request("gemini", text)).await;
        let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
        assert!(reply.is_ok(), "{reply:?}\n{log}");
    }
    // gcp_auth renews a token 20 s before it expires: one of 22 s is good for about 2 s.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    client.chat(user_request("gemini", "three")).await.unwrap();

    let sent: Vec<String> =
        upstream.received().iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    let bearer = |n| format!("Bearer {}", token(n));
    assert_eq!(sent, [bearer(1), bearer(1), bearer(2)]);
    assert!(upstream.received()[0].uri.starts_with(
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    ));
    gw.signal("TERM");
    gw.wait().await;
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(!log.contains("ya29.metadata-token"), "a token reached the log:\n{log}");
}
