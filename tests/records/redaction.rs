//! No key ever leaves the process: the binary runs at the most verbose log level with a known
//! provider key and client key, serves a success, a caller error and upstream errors (one whose
//! body echoes the key back), and neither key appears in its logs, its audit trail or the
//! errors callers get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::process::Stdio;

use crate::common::{
    Binary, chat,
    fake_upstream::{FakeUpstream, Reply, ReplyBody},
};
use ai_service::proto::v1::chat_service_client::ChatServiceClient;
use sha2::{Digest, Sha256};
use tonic::Request;

const PROVIDER_KEY: &str = "sk-proj-PROVIDERKEY0123456789abcdefXYZ";
const CLIENT_KEY: &str = "ais_CLIENTKEY_0123456789abcdef0123456789";
/// The provider key's shape-less tail, to catch a partial leak too.
const PROVIDER_TAIL: &str = "PROVIDERKEY0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_appear_in_logs_audit_or_errors() {
    let echo_key = format!(
        r#"{{"error": {{"message": "bad key {PROVIDER_KEY} for Bearer {CLIENT_KEY}", "type": "invalid_request_error"}}}}"#
    );
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat.json"),
        Reply {
            status: 401,
            headers: vec![("content-type".into(), "application/json".into())],
            body: ReplyBody::Whole(echo_key.into_bytes()),
        },
        Reply::json(500, "openai/error_400.json"),
        Reply::json(200, "openai/malformed.json"),
    ])
    .await;

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let key_file = dir.path().join("openai-key");
    std::fs::write(&key_file, PROVIDER_KEY).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
log: {{level: trace, format: json}}
audit: {{sink: {audit}, include_content: true}}
auth: {{keys: [{{id: ci, sha256: {hash}}}]}}
routing: {{max_retries: 0}}
providers:
  openai: {{kind: openai, base_url: "{base}/v1", api_key_file: {key_file}, disable_proxy: true}}
routes: [{{name: gpt, targets: [{{provider: openai, model: gpt-4o}}]}}]
"#,
            audit = audit.display(),
            hash = ai_service::auth::hex(&Sha256::digest(CLIENT_KEY.as_bytes())),
            base = fake.url(""),
            key_file = key_file.display(),
        ),
    )
    .unwrap();
    // Files, not pipes: trace logging fills a pipe nobody reads until the end.
    let log_path = dir.path().join("stderr.log");
    let out_path = dir.path().join("stdout.log");
    let server = Binary::start(
        &config,
        &[("RUST_LOG", "trace")],
        Stdio::from(std::fs::File::create(&out_path).unwrap()),
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    )
    .await;

    let channel = server.channel().await;
    let mut client = ChatServiceClient::new(channel);
    let mut errors = Vec::new();
    let call = |text: &str| {
        let mut r = Request::new(chat("gpt", text));
        r.metadata_mut().insert("authorization", format!("Bearer {CLIENT_KEY}").parse().unwrap());
        r
    };
    client.chat(call("hello")).await.unwrap();
    for text in [
        "upstream 401",
        "upstream 500",
        "malformed reply",
        &format!("the caller pastes {PROVIDER_KEY}"),
    ] {
        if let Err(status) = client.chat(call(text)).await {
            errors.push(format!("{status:?}"));
        }
    }
    let mut wrong = Request::new(chat("gpt", "x"));
    wrong.metadata_mut().insert("x-api-key", format!("{CLIENT_KEY}-wrong").parse().unwrap());
    errors.push(format!("{:?}", client.chat(wrong).await.unwrap_err()));
    assert!(errors.len() >= 4, "the error paths ran: {errors:?}");

    server.signal("TERM");
    let status = server.wait().await;
    assert!(status.success());
    let logs =
        std::fs::read_to_string(&log_path).unwrap() + &std::fs::read_to_string(&out_path).unwrap();
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(logs.lines().count() > 50, "trace logging ran");
    assert_eq!(audit.lines().count(), 6, "{audit}");
    assert!(audit.contains("bad key ***"), "the provider's message survives, masked: {audit}");
    for (what, text) in [("logs", &logs), ("audit", &audit), ("errors", &errors.join("\n"))] {
        for secret in [PROVIDER_KEY, PROVIDER_TAIL, CLIENT_KEY] {
            assert!(!text.contains(secret), "{secret} leaked into the {what}");
        }
    }
}
