//! botocore, the AWS SDK for Python's core, against the fake Bedrock: it signs with its own
//! SigV4 code, which the tests' independent check ([`super::sigv4`]) must accept, and reads the
//! fake's JSON and event-stream fixtures with its own parsers, which must give back the
//! fixture's content. So the fake and the check that judge the gateway are themselves checked
//! against AWS's software. botocore comes from `.tools/venv-stores` (`make tools`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{CLAUDE, CLAUDE_PATH, SECRET_KEY, check_signature, event_stream, stream_reply};
use crate::common::fake_upstream::*;

/// The Python of `.tools/venv-stores` (beside `$AI_SERVICE_MOTO` when the Makefile runs us).
fn python() -> PathBuf {
    let bin = std::env::var_os("AI_SERVICE_MOTO")
        .map(|m| PathBuf::from(m).with_file_name("python"))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv-stores/bin/python")
        });
    assert!(
        bin.exists(),
        "{} is missing: run `make tools` (it builds .tools/venv-stores)",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn botocore_signatures_pass_the_check_and_it_reads_the_fixtures_as_aws_replies() {
    let replies = vec![
        Reply::json(200, "bedrock/converse.json"),
        stream_reply(event_stream("bedrock/converse_stream.json")),
    ];
    let upstream = FakeUpstream::start(replies).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers/bedrock/botocore_check.py");
    let url = upstream.url("");
    // botocore blocks; the fake answers meanwhile on this test's runtime.
    let python = python();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(&script)
            .arg(&url)
            .arg(CLAUDE)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();

    let got = upstream.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].uri, format!("{CLAUDE_PATH}/converse"));
    assert_eq!(got[1].uri, format!("{CLAUDE_PATH}/converse-stream"));
    for request in &got {
        check_signature(request, SECRET_KEY);
    }

    let unary: Value = serde_json::from_slice(&fixture("bedrock/converse.json")).unwrap();
    assert_eq!(summary["unary"]["content"], unary["output"]["message"]["content"]);
    assert_eq!(summary["unary"]["stopReason"], "tool_use");
    assert_eq!(summary["unary"]["usage"]["cacheReadInputTokens"], 1200);
    // Every frame decoded, with its event type and payload (botocore drops the `p` padding
    // field, which is not part of the model).
    let mut frames: Vec<Value> =
        serde_json::from_slice(&fixture("bedrock/converse_stream.json")).unwrap();
    for frame in &mut frames {
        frame["payload"].as_object_mut().unwrap().remove("p");
    }
    let decoded = summary["stream"].as_array().unwrap();
    assert_eq!(decoded.len(), frames.len());
    for (decoded, frame) in decoded.iter().zip(&frames) {
        assert_eq!(decoded["event"], frame["event"]);
        let mut payload = decoded["payload"].clone();
        // botocore leaves out what the model does not know and nothing else.
        payload.as_object_mut().map(|p| p.remove("p"));
        assert_eq!(payload, frame["payload"], "{decoded}");
    }
    assert_eq!(
        decoded.last().unwrap(),
        &json!({"event": "metadata", "payload": frames.last().unwrap()["payload"]})
    );
}
