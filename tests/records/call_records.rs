//! Every call leaves exactly one audit record, one `requests_total` sample and one log line,
//! with the right route, provider and code: unhappy calls too. One real binary (JSON logs,
//! audit to a file) serves calls that fail upstream (429, 529, timeout), that pass their
//! deadline, that a provider refuses locally, that are invalid, too large, undecodable or
//! unauthenticated, plus `ListModels`; then its audit file, its log and its scrape are read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::{collections::HashMap, process::Stdio, time::Duration};

use crate::common::{
    Binary, chat,
    fake_upstream::{FakeUpstream, Reply, ReplyBody, TEST_KEY},
    http_get,
};
use ai_service::proto::v1::{self as pb, chat_service_client::ChatServiceClient};
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

const KEY: &str = "ais_records_test_key_0123456789abcdef";

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A call with the client key and a request id.
fn keyed<T>(message: T, request_id: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("x-api-key", KEY.parse().unwrap());
    r.metadata_mut().insert("x-request-id", request_id.parse().unwrap());
    r
}

/// Sends one gRPC frame of `payload` to `path` over a bare HTTP/2 connection with `headers`;
/// with `hold_open` only half the message is sent and the body never ends. Returns the `grpc-status` and the
/// `x-request-id` the server sent back.
async fn raw(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
    hold_open: bool,
) -> (Option<i32>, Option<String>) {
    use futures::StreamExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::StreamBody<
            futures::stream::BoxStream<'static, Result<hyper::body::Frame<Bytes>, std::io::Error>>,
        >>();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    // A body held open sends only half of the message it announced.
    frame.extend_from_slice(if hold_open { &payload[..payload.len() / 2] } else { payload });
    let first = futures::stream::iter([Ok(hyper::body::Frame::data(Bytes::from(frame)))]);
    let body: futures::stream::BoxStream<'static, _> =
        if hold_open { first.chain(futures::stream::pending()).boxed() } else { first.boxed() };
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(http_body_util::StreamBody::new(body)).unwrap();
    let response =
        tokio::time::timeout(Duration::from_secs(10), client.request(request)).await.unwrap();
    let Ok(response) = response else { return (None, None) };
    let head = response.headers().clone();
    let trailers =
        match tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
            .await
            .unwrap()
        {
            Ok(collected) => collected.trailers().cloned().unwrap_or_default(),
            Err(_) => Default::default(),
        };
    let get = |name: &str| {
        trailers.get(name).or_else(|| head.get(name)).map(|v| v.to_str().unwrap().to_owned())
    };
    (get("grpc-status").map(|s| s.parse().unwrap()), get("x-request-id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unhappy_call_leaves_one_record_one_sample_and_one_log_line() {
    let limited = FakeUpstream::start(vec![
        Reply::json(429, "openai/error_429.json").header("retry-after", "1"),
    ])
    .await;
    let overloaded = FakeUpstream::start(vec![Reply::json(529, "anthropic/error_529.json")]).await;
    let stalled = FakeUpstream::start(vec![Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: ReplyBody::StallAfter(Vec::new()),
    }])
    .await;
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let config = dir.path().join("config.yaml");
    let provider = |name: &str, kind: &str, fake: &FakeUpstream, extra: &str| {
        format!(
            "  {name}: {{kind: {kind}, base_url: {}, api_key_env: TEST_KEY, disable_proxy: true{extra}}}\n",
            fake.url("")
        )
    };
    let yaml = format!(
        "log: {{format: json, level: info}}\n\
         audit: {{sink: {audit}}}\n\
         auth:\n  keys: [{{id: team-a, sha256: {hash}}}]\n\
         routing: {{max_retries: 0}}\n\
         providers:\n{p1}{p2}{p3}{p4}  local: {{kind: echo}}\n\
         routes:\n\
         \x20 - {{name: limited, targets: [{{provider: limited, model: gpt-x}}]}}\n\
         \x20 - {{name: overloaded, targets: [{{provider: overloaded, model: claude-x}}]}}\n\
         \x20 - {{name: slow, targets: [{{provider: slow, model: gpt-slow}}]}}\n\
         \x20 - {{name: claude, targets: [{{provider: claude, model: claude-y}}]}}\n\
         \x20 - {{name: echo, targets: [{{provider: local, model: echo-1}}]}}\n",
        audit = audit.display(),
        hash = ai_service::auth::hex(&Sha256::digest(KEY.as_bytes())),
        p1 = provider("limited", "openai", &limited, ""),
        p2 = provider("overloaded", "anthropic", &overloaded, ""),
        p3 = provider("slow", "openai", &stalled, ", request_timeout: 300ms"),
        p4 = provider("claude", "anthropic", &claude, ""),
    );
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("stderr.log");
    let server = Binary::start(
        &config,
        &[("TEST_KEY", TEST_KEY), ("RUST_LOG", "info")],
        Stdio::null(),
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let channel: Channel = server.channel().await;
    let mut client = ChatServiceClient::new(channel);
    // code by request id, as the caller saw it (None: the caller gave up first)
    let mut expected: Vec<(&str, &str)> = Vec::new();

    // Failed upstream: 429, 529, a request timeout. The ErrorInfo names the provider, and so
    // must the record.
    for (id, model, code, reason) in [
        ("rec-429", "limited", Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
        ("rec-529", "overloaded", Code::Unavailable, "UPSTREAM_OVERLOADED"),
        ("rec-timeout", "slow", Code::Unavailable, "UPSTREAM_TIMEOUT"),
    ] {
        let status = client.chat(keyed(chat(model, "hi"), id)).await.unwrap_err();
        assert_eq!(status.code(), code, "{id}: {status:?}");
        assert_eq!(status.get_error_details().error_info().unwrap().reason, reason, "{id}");
        expected.push((id, ai_service::metrics::code_name(code)));
    }

    // The caller's deadline passes while the upstream is silent; the caller gives up at the
    // same moment as the gateway.
    for i in 0..5 {
        let id = format!("rec-deadline-{i}");
        let mut request = keyed(chat("slow", "hi"), &id);
        request.set_timeout(Duration::from_millis(150));
        let status = client.chat(request).await.unwrap_err();
        // tonic's client ends the call itself at the deadline, as CANCELLED "Timeout expired",
        // unless the gateway's DEADLINE_EXCEEDED arrived first.
        assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
        expected.push((Box::leak(id.into_boxed_str()), "DEADLINE_EXCEEDED"));
    }

    // A field the provider cannot honour: refused before anything is sent.
    let mut seeded = chat("claude", "hi");
    seeded.generation = Some(pb::GenerationConfig { seed: Some(7), ..Default::default() });
    let status = client.chat(keyed(seeded, "rec-unsupported")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "UNSUPPORTED_BY_PROVIDER");
    assert!(claude.received().is_empty(), "nothing may reach the provider");
    expected.push(("rec-unsupported", "INVALID_ARGUMENT"));

    // An invalid request that names a model and carries messages.
    let mut invalid = chat("echo", "first");
    invalid.messages.push(pb::Message { role: 0, ..common::user("second") });
    invalid.metadata.insert("feature".into(), "records".into());
    let status = client.chat(keyed(invalid, "rec-invalid")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    expected.push(("rec-invalid", "INVALID_ARGUMENT"));

    // Over the default 4 MiB size limit: refused by the decoder, before the handler.
    let status =
        client.chat(keyed(chat("echo", &"x".repeat(5 << 20)), "rec-oversized")).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("message length too large"), "{}", status.message());
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo on a size refusal");
    assert_eq!(info.reason, "REQUEST_TOO_LARGE");
    assert_eq!(info.metadata["limit_bytes"], (4 << 20).to_string());
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "rec-oversized");
    expected.push(("rec-oversized", "OUT_OF_RANGE"));

    // Bytes that are no protobuf.
    let (code, id) = raw(
        &server.addr,
        "/aiservice.v1.ChatService/Chat",
        &[("x-api-key", KEY), ("x-request-id", "rec-undecodable")],
        &[0xff; 64],
        false,
    )
    .await;
    assert_eq!(code, Some(Code::InvalidArgument as i32));
    assert_eq!(id.as_deref(), Some("rec-undecodable"));
    expected.push(("rec-undecodable", "INVALID_ARGUMENT"));

    // A request whose body never ends: its deadline passes before the handler could start.
    let (_, _) = raw(
        &server.addr,
        "/aiservice.v1.ChatService/StreamChat",
        &[("x-api-key", KEY), ("x-request-id", "rec-slow-body"), ("grpc-timeout", "200m")],
        &chat("echo", "hi").encode_to_vec(),
        true,
    )
    .await;
    expected.push(("rec-slow-body", "DEADLINE_EXCEEDED"));

    // No client key.
    let mut anonymous = Request::new(chat("echo", "hi"));
    anonymous.metadata_mut().insert("x-request-id", "rec-unauthenticated".parse().unwrap());
    let status = client.chat(anonymous).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    expected.push(("rec-unauthenticated", "UNAUTHENTICATED"));

    // ListModels is a call like any other.
    client.list_models(keyed(pb::ListModelsRequest {}, "rec-list")).await.unwrap();
    expected.push(("rec-list", "OK"));

    let (status, scrape) = http_get(server.admin.parse().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    server.signal("TERM");
    assert!(server.wait().await.success());

    // One audit record per call, with what the call was and how it ended.
    let records = lines(&audit);
    let record = |id: &str| -> &Value {
        let found: Vec<&Value> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        found[0]
    };
    for (id, code) in &expected {
        assert_eq!(record(id)["code"], *code, "{id}: {}", record(id));
    }
    assert_eq!(records.len(), expected.len(), "{records:#?}");
    for (id, provider, attempts) in
        [("rec-429", "limited", 1), ("rec-529", "overloaded", 1), ("rec-timeout", "slow", 1)]
    {
        let r = record(id);
        assert_eq!(r["provider"], provider, "{r}");
        assert_eq!(r["endpoint"], "default", "{r}");
        assert_eq!(r["attempts"], attempts, "{r}");
    }
    let r = record("rec-deadline-0");
    assert_eq!((&r["provider"], &r["attempts"]), (&Value::from("slow"), &Value::from(1)), "{r}");
    let r = record("rec-unsupported");
    assert_eq!(r["provider"], "claude", "{r}");
    assert_eq!(r["attempts"], 0, "nothing was sent upstream: {r}");
    assert_eq!(r["endpoint"], Value::Null, "{r}");
    let r = record("rec-invalid");
    assert_eq!(r["model"], "echo", "{r}");
    assert_eq!(r["message_count"], 2, "{r}");
    assert_eq!(r["metadata"]["feature"], "records", "{r}");
    assert_eq!(r["client_id"], "team-a", "{r}");
    for id in ["rec-oversized", "rec-undecodable", "rec-slow-body"] {
        assert_eq!(record(id)["method"], if id == "rec-slow-body" { "StreamChat" } else { "Chat" });
        assert!(record(id)["error"].is_string(), "{}", record(id));
    }
    assert_eq!(record("rec-list")["method"], "ListModels");

    // One log line per call, with the same code.
    let log = lines(&log);
    for (id, code) in &expected {
        let finished: Vec<&Value> = log
            .iter()
            .filter(|l| l["span"]["request_id"] == *id && l["span"]["code"].is_string())
            .collect();
        assert_eq!(finished.len(), 1, "{id}: {finished:?}");
        assert_eq!(finished[0]["span"]["code"], *code, "{id}");
    }

    // The samples: the provider that failed is on the metric; only what was sent counts as an
    // upstream attempt.
    let samples: HashMap<String, f64> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect();
    let sample = |series: &str| samples.get(series).copied().unwrap_or(0.0);
    let requests = |method: &str, route: &str, provider: &str, code: &str| {
        sample(&format!(
            "ai_service_requests_total{{front_door=\"grpc\",method=\"{method}\",route=\"{route}\",provider=\"{provider}\",code=\"{code}\"}}"
        ))
    };
    assert_eq!(requests("Chat", "limited", "limited", "RESOURCE_EXHAUSTED"), 1.0, "{scrape}");
    assert_eq!(requests("Chat", "overloaded", "overloaded", "UNAVAILABLE"), 1.0);
    assert_eq!(requests("Chat", "slow", "slow", "UNAVAILABLE"), 1.0);
    assert_eq!(requests("Chat", "slow", "slow", "DEADLINE_EXCEEDED"), 5.0, "{scrape}");
    assert_eq!(requests("Chat", "claude", "claude", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(requests("Chat", "none", "none", "INVALID_ARGUMENT"), 2.0, "{scrape}");
    assert_eq!(requests("Chat", "none", "none", "OUT_OF_RANGE"), 1.0);
    assert_eq!(requests("Chat", "none", "none", "UNAUTHENTICATED"), 1.0);
    assert_eq!(requests("ListModels", "none", "none", "OK"), 1.0, "{scrape}");
    let upstream = |provider: &str| {
        sample(&format!(
            "ai_service_upstream_duration_seconds_count{{method=\"Chat\",provider=\"{provider}\"}}"
        ))
    };
    assert_eq!(upstream("limited"), 1.0, "{scrape}");
    assert_eq!(upstream("overloaded"), 1.0);
    assert_eq!(upstream("slow"), 6.0, "the timeout and the five deadlines");
    assert_eq!(upstream("none"), 0.0, "{scrape}");
    assert_eq!(upstream("claude"), 0.0, "a local refusal is no upstream call");
    let attempts = |provider: &str, outcome: &str| {
        sample(&format!(
            "ai_service_upstream_attempts_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(attempts("claude", "UNSUPPORTED_BY_PROVIDER"), 0.0, "{scrape}");
    assert_eq!(attempts("limited", "UPSTREAM_RATE_LIMITED"), 1.0, "{scrape}");
    let duration = sample(
        "ai_service_request_duration_seconds_count{front_door=\"grpc\",method=\"ListModels\",route=\"none\",provider=\"none\"}",
    );
    assert_eq!(duration, 1.0, "ListModels' latency is recorded: {scrape}");
}
