//! Log lines leave the real binary in batches (`log.flush_interval`): an `info` line waits,
//! a warning is written at once with the lines before it, and everything waiting is written
//! when the process stops. The interval is an hour here, so only those three rules can have
//! written anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{process::Stdio, time::Duration};

use crate::common::{
    Binary, chat,
    fake_upstream::{FakeUpstream, Reply},
};
use ai_service::proto::v1::chat_service_client::ChatServiceClient;
use tonic::{Code, Request};

/// The request ids of the finished-call lines on stderr so far, with each line's level.
fn finished(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["span"]["code"].is_string())
        .map(|l| {
            let id = l["span"]["request_id"].as_str().unwrap_or_default().to_owned();
            (id, l["level"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn with_id<T>(message: T, id: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("x-request-id", id.parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_lines_wait_warnings_take_them_along_and_the_exit_writes_the_rest() {
    let overloaded = FakeUpstream::start(vec![Reply::json(529, "anthropic/error_529.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "log: {{format: json, level: info, flush_interval: 1h}}\n\
             routing: {{max_retries: 0}}\n\
             providers:\n\
             \x20 busy: {{kind: anthropic, base_url: {}, api_key_env: TEST_KEY, disable_proxy: true}}\n\
             \x20 local: {{kind: echo}}\n\
             routes:\n\
             \x20 - {{name: busy, targets: [{{provider: busy, model: claude-x}}]}}\n\
             \x20 - {{name: echo, targets: [{{provider: local, model: echo-1}}]}}\n",
            overloaded.url("")
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let server = Binary::start(
        &config,
        &[("TEST_KEY", crate::common::fake_upstream::TEST_KEY), ("RUST_LOG", "info")],
        Stdio::null(),
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let mut client = ChatServiceClient::new(server.channel().await);

    client.chat(with_id(chat("echo", "hi"), "flush-info-1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(finished(&log), [], "an info line waits for the interval");

    let status = client.chat(with_id(chat("busy", "hi"), "flush-warn")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let mut written = Vec::new();
    for _ in 0..100 {
        written = finished(&log);
        if written.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        written,
        [("flush-info-1".into(), "INFO".into()), ("flush-warn".into(), "WARN".into())],
        "the warning is written at once, after the line that waited"
    );

    client.chat(with_id(chat("echo", "hi"), "flush-info-2")).await.unwrap();
    server.signal("TERM");
    assert!(server.wait().await.success());
    let written = finished(&log);
    assert_eq!(
        written.last().unwrap().0,
        "flush-info-2",
        "the exit wrote what waited: {written:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("drained; stopped"), "the last lines of the shutdown too: {text}");
}
