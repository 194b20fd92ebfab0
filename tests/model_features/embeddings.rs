//! Embeddings end to end: `EmbedService.Embed` over gRPC and `POST /v1/embeddings` on the
//! OpenAI door, against fake OpenAI, Azure, OpenAI-compatible (Ollama) and Gemini upstreams
//! replaying the providers' documented replies, and against echo. Each test checks what the
//! fake received (URL, headers, body), not only what came back: the encodings, dimensions,
//! failover, the response cache, a provider without embeddings, field violations, and the one
//! audit record and metric sample every unhappy call leaves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::{
    TestServer,
    fake_upstream::{FakeUpstream, Reply, ReplyBody, TEST_KEY, provider_yaml},
    http_get, start_admin,
};
use ai_service::{
    Config,
    proto::v1::{self as pb, embed_service_client::EmbedServiceClient},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

/// A gateway from `yaml`, with the test key in its environment for the fake upstreams.
async fn start(yaml: &str) -> TestServer {
    let env = [("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    let env = env.into_iter().chain(common::quiet_audit(yaml)).collect::<Vec<_>>();
    TestServer::start_with(Config::from_yaml(yaml, env).unwrap()).await
}

async fn client(server: &TestServer) -> EmbedServiceClient<Channel> {
    EmbedServiceClient::new(server.channel().await)
}

/// A config with route `r` to `model` on provider `up` of `kind` at `base`, no retries.
fn one_route(kind: &str, base: &str, model: &str, extra: &str) -> String {
    format!(
        "providers:\n{}routing: {{max_retries: 0}}\nroutes:\n  - name: r\n    targets: [{{provider: up, model: {model}}}]\n",
        provider_yaml("up", kind, base, extra)
    )
}

fn embed(model: &str, inputs: &[&str]) -> pb::EmbedRequest {
    pb::EmbedRequest {
        model: model.into(),
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn values(response: &pb::EmbedResponse) -> Vec<Vec<f32>> {
    response.embeddings.iter().map(|e| e.values.clone()).collect()
}

fn fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details.bad_request().unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad.field_violations.iter().map(|v| v.field.clone()).collect()
}

#[tokio::test]
async fn openai_gets_the_documented_request_and_its_reply_comes_back_in_order() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/embeddings.json")]).await;
    let server = start(&one_route("openai", &fake.url("/v1"), "text-embedding-3-small", "")).await;
    let mut request = embed("r", &["The food was delicious", "and the waiter..."]);
    request.dimensions = Some(3);
    let reply = client(&server).await.embed(request).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!((got.method.as_str(), got.uri.as_str()), ("POST", "/v1/embeddings"));
    assert_eq!(got.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(
        got.body,
        json!({
            "model": "text-embedding-3-small",
            "input": ["The food was delicious", "and the waiter..."],
            "dimensions": 3,
            "encoding_format": "float",
        })
    );
    assert_eq!(reply.model, "r");
    assert_eq!(reply.provider, "up");
    assert_eq!(reply.provider_model, "text-embedding-3-small");
    assert_eq!(
        values(&reply),
        [
            vec![0.002_306_425_5, -0.009_327_292, -0.002_884_222_2],
            vec![0.005_120_731_5, 0.012_398_118, -0.021_178_314]
        ]
    );
    assert_eq!(reply.embeddings.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);
    let usage = reply.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (8, 0, 8));
    assert!(!usage.estimated);
    // 8 input tokens at text-embedding-3-small's $0.02 a million: $0.00000016.
    let cost = reply.cost.expect("a shipped price").usd;
    assert!((cost - 0.000_000_16).abs() < 1e-18, "{cost}");
}

#[tokio::test]
async fn bytes_are_asked_upstream_as_base64_and_come_back_little_endian() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/embeddings_base64.json")]).await;
    let server = start(&one_route("openai", &fake.url("/v1"), "text-embedding-3-small", "")).await;
    let mut request = embed("r", &["first", "second"]);
    request.encoding = pb::EmbeddingEncoding::Bytes as i32;
    let reply = client(&server).await.embed(request).await.unwrap().into_inner();

    assert_eq!(fake.only_request().body["encoding_format"], "base64");
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // The fixture lists index 1 before index 0.
    assert_eq!(reply.embeddings[0].data, le(&[1.0, -1.5]));
    assert_eq!(reply.embeddings[1].data, le(&[0.5, -0.25]));
    assert!(reply.embeddings.iter().all(|e| e.values.is_empty()));
}

#[tokio::test]
async fn azure_goes_to_the_deployment_with_its_api_key_header() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "azure/embeddings.json")]).await;
    let yaml =
        one_route("azure_openai", &fake.url(""), "my-embed", "    api_version: 2024-10-21\n");
    let server = start(&yaml).await;
    let reply = client(&server).await.embed(embed("r", &["hello"])).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.uri, "/openai/deployments/my-embed/embeddings?api-version=2024-10-21");
    assert_eq!(got.header("api-key"), Some(TEST_KEY));
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.body, json!({"input": ["hello"], "encoding_format": "float"}));
    assert_eq!(reply.embeddings.len(), 1);
    assert_eq!(reply.usage.unwrap().input_tokens, 4);
}

#[tokio::test]
async fn an_openai_compatible_server_without_a_key_serves_v1_embeddings() {
    let fake =
        FakeUpstream::start(vec![Reply::json(200, "openai/embeddings_compatible.json")]).await;
    let yaml = format!(
        "providers:\n  local:\n    kind: ollama\n    base_url: {}\n    disable_proxy: true\nroutes:\n  - name: nomic\n    targets: [{{provider: local, model: nomic-embed-text}}]\n",
        fake.url("/v1")
    );
    let server = start(&yaml).await;
    let reply = client(&server).await.embed(embed("nomic", &["why is the sky blue?"])).await;
    let reply = reply.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.uri, "/v1/embeddings");
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.body["model"], "nomic-embed-text");
    assert_eq!(got.body["input"], json!(["why is the sky blue?"]));
    assert_eq!(reply.provider, "local");
    assert_eq!(values(&reply), [vec![0.010_071_029, -0.001_759_486_2, 0.050_072_21, 0.046_929_72]]);
}

#[tokio::test]
async fn gemini_batch_embeds_with_output_dimensionality_and_estimated_usage() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "gemini/batch_embed.json")]).await;
    let server = start(&one_route("gemini", &fake.url("/v1beta"), "text-embedding-004", "")).await;
    let mut request = embed("r", &["What is the meaning of life?", "How much wood?"]);
    request.dimensions = Some(4);
    let reply = client(&server).await.embed(request).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.uri, "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(got.header("x-goog-api-key"), Some(TEST_KEY));
    assert!(!got.uri.contains("key="), "the key never goes in the URL");
    assert_eq!(
        got.body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "What is the meaning of life?"}]}, "outputDimensionality": 4},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "How much wood?"}]}, "outputDimensionality": 4},
        ]})
    );
    assert_eq!(
        values(&reply)[1],
        [-0.006_953_031_3, 0.004_946_353_4, -0.053_674_62, 0.011_042_473]
    );
    let usage = reply.usage.unwrap();
    // 28 + 14 bytes at about four bytes a token.
    assert_eq!((usage.input_tokens, usage.estimated), (11, true));
}

const ECHO: &str = "providers: {e: {kind: echo}}\nroutes: [{name: vec, targets: [{provider: e, model: echo-embed}]}]\n";

#[tokio::test]
async fn echo_vectors_are_deterministic_and_honour_dimensions() {
    let server = start(ECHO).await;
    let mut client = client(&server).await;
    let first = client.embed(embed("vec", &["a cat", "a dog"])).await.unwrap().into_inner();
    let again = client.embed(embed("vec", &["a dog"])).await.unwrap().into_inner();
    assert_eq!(first.embeddings.len(), 2);
    assert!(first.embeddings.iter().all(|e| e.values.len() == 8), "8 by default");
    assert_eq!(first.embeddings[1].values, again.embeddings[0].values);
    assert_ne!(first.embeddings[0].values, first.embeddings[1].values);
    assert_eq!(first.usage.unwrap().input_tokens, 4, "a word is a token");
    assert_eq!(first.provider_model, "echo-embed");

    let mut wide = embed("vec", &["a cat"]);
    wide.dimensions = Some(32);
    let wide = client.embed(wide).await.unwrap().into_inner();
    assert_eq!(wide.embeddings[0].values.len(), 32);
}

#[tokio::test]
async fn a_failing_target_fails_over_to_the_next() {
    let failing = FakeUpstream::start(vec![Reply {
        status: 503,
        headers: vec![],
        body: ReplyBody::Whole(br#"{"error": {"message": "overloaded"}}"#.to_vec()),
    }])
    .await;
    let backup = FakeUpstream::start(vec![Reply::json(200, "openai/embeddings.json")]).await;
    let yaml = format!(
        "routing: {{backoff_base: 1ms, backoff_max: 5ms, max_retries: 1}}\nproviders:\n{}{}routes:\n  - name: r\n    targets: [{{provider: a, model: m1}}, {{provider: b, model: m2}}]\n",
        provider_yaml("a", "openai", &failing.url("/v1"), ""),
        provider_yaml("b", "openai", &backup.url("/v1"), ""),
    );
    let server = start(&yaml).await;
    let reply = client(&server).await.embed(embed("r", &["x", "y"])).await.unwrap().into_inner();
    assert_eq!(reply.provider, "b");
    assert_eq!(failing.only_request().body["model"], "m1");
    assert_eq!(backup.only_request().body["model"], "m2");
}

#[tokio::test]
async fn a_second_call_is_a_cache_hit_whatever_the_encoding() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/embeddings.json")]).await;
    let yaml =
        format!("cache: {{enabled: true}}\n{}", one_route("openai", &fake.url("/v1"), "e", ""));
    let server = start(&yaml).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut client = client(&server).await;
    let first = client.embed(embed("r", &["a", "b"])).await.unwrap().into_inner();
    let mut bytes = embed("r", &["a", "b"]);
    bytes.encoding = pb::EmbeddingEncoding::Bytes as i32;
    let second = client.embed(bytes).await.unwrap().into_inner();
    let mut other = embed("r", &["a", "b"]);
    other.dimensions = Some(3);
    client.embed(other).await.unwrap();

    assert_eq!(fake.received().len(), 2, "the second call was served from the cache");
    for (a, b) in first.embeddings.iter().zip(&second.embeddings) {
        let decoded: Vec<f32> =
            b.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(a.values, decoded);
    }
    assert_eq!(second.usage, first.usage);
    let (_, text) = http_get(admin, "/metrics").await;
    assert!(text.contains("ai_service_cache_hits_total{route=\"r\"} 1"), "{text}");
    assert!(text.contains("ai_service_cache_misses_total{route=\"r\"} 2"), "{text}");
}

#[tokio::test]
async fn anthropic_has_no_embeddings_and_is_refused_before_sending() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let yaml = one_route(
        "anthropic",
        &fake.url(""),
        "claude-sonnet-4-5",
        "    default_max_tokens: 1024\n",
    );
    let server = start(&yaml).await;
    let status = client(&server).await.embed(embed("r", &["hi"])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), ["model"]);
    assert!(status.message().contains("no embeddings"), "{}", status.message());
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn invalid_requests_name_every_field() {
    let server = start(ECHO).await;
    let mut request = embed(" ", &["ok", "", "fine", ""]);
    request.dimensions = Some(0);
    request.encoding = 9;
    let status = client(&server).await.embed(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["model", "inputs[1]", "inputs[3]", "dimensions", "encoding"]);
    let status = client(&server).await.embed(embed("vec", &[])).await.unwrap_err();
    assert_eq!(fields(&status), ["inputs"]);
}

/// An HTTP/1.1 POST to the gateway's OpenAI door.
async fn post(server: &TestServer, body: &Value, key: Option<&str>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let mut request = client.post(format!("http://{}/v1/embeddings", server.addr)).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_openai_door_answers_in_openai_shape_as_floats_or_base64() {
    let server = start(ECHO).await;
    let (status, floats) = post(&server, &json!({"model": "vec", "input": "a cat"}), None).await;
    assert_eq!(status, 200, "{floats}");
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "vec");
    assert_eq!(floats["data"][0]["object"], "embedding");
    assert_eq!(floats["data"][0]["index"], 0);
    assert_eq!(floats["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(floats["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));

    let body = json!({"model": "vec", "input": ["x", "a cat"], "encoding_format": "base64", "dimensions": 4});
    let (status, encoded) = post(&server, &body, None).await;
    assert_eq!(status, 200, "{encoded}");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> =
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(decoded.len(), 4);
    // The same text at 8 dimensions over gRPC: echo's vectors depend on the length asked for,
    // so compare with the same request over gRPC.
    let mut same = embed("vec", &["a cat"]);
    same.dimensions = Some(4);
    let grpc = client(&server).await.embed(same).await.unwrap().into_inner();
    assert_eq!(decoded, grpc.embeddings[0].values);
}

#[tokio::test]
async fn the_openai_door_refuses_token_arrays_and_bad_fields_in_openai_shape() {
    let server = start(ECHO).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let (status, body) = post(&server, &json!({"model": "vec", "input": [[1, 2, 3]]}), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "input");
    assert!(body["error"]["message"].as_str().unwrap().contains("token arrays"), "{body}");

    let (status, body) = post(
        &server,
        &json!({"model": "vec", "input": ["a", ""], "encoding_format": "int8"}),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "input[1]");
    let (status, body) = post(&server, &json!({"model": "nope", "input": "a"}), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        post(&server, &json!({"model": "vec", "input": "a", "wat": 1}), None).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("wat")));

    // Each refusal is one sample of the door's Embed calls.
    let (_, scrape) = http_get(admin, "/metrics").await;
    for (code, count) in [("INVALID_ARGUMENT", 3), ("NOT_FOUND", 1)] {
        let series = format!(
            "ai_service_requests_total{{front_door=\"openai\",method=\"Embed\",route=\"none\",provider=\"none\",code=\"{code}\"}} {count}\n"
        );
        assert!(scrape.contains(&series), "no {series} in\n{scrape}");
    }
}

const KEY: &str = "ais_embed_test_key_0123456789abcdef";

#[tokio::test]
async fn unhappy_calls_leave_one_audit_record_and_one_metric_sample() {
    let broken = FakeUpstream::start(vec![Reply {
        status: 500,
        headers: vec![],
        body: ReplyBody::Whole(br#"{"error": {"message": "boom"}}"#.to_vec()),
    }])
    .await;
    let anthropic = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "audit: {{sink: {}}}\nauth:\n  keys: [{{id: team, sha256: {}, routes: [vec, claude, broken]}}]\nrouting: {{max_retries: 0}}\nproviders:\n  e: {{kind: echo}}\n{}{}routes:\n  - {{name: vec, targets: [{{provider: e, model: m}}]}}\n  - {{name: hidden, targets: [{{provider: e, model: m}}]}}\n  - {{name: claude, targets: [{{provider: a, model: claude-sonnet-4-5}}]}}\n  - {{name: broken, targets: [{{provider: o, model: text-embedding-3-small}}]}}\n",
        audit.display(),
        ai_service::auth::hex(&Sha256::digest(KEY.as_bytes())),
        provider_yaml("a", "anthropic", &anthropic.url(""), "    default_max_tokens: 1024\n"),
        provider_yaml("o", "openai", &broken.url("/v1"), ""),
    );
    let server = start(&yaml).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut client = client(&server).await;
    let call = |model: &str, inputs: &[&str], id: &str, key: bool| {
        let mut r = Request::new(embed(model, inputs));
        r.metadata_mut().insert("x-request-id", id.parse().unwrap());
        if key {
            r.metadata_mut().insert("x-api-key", KEY.parse().unwrap());
        }
        r
    };
    let cases = [
        ("ok", "vec", Code::Ok, true),
        ("nokey", "vec", Code::Unauthenticated, false),
        ("unknown", "nope", Code::NotFound, true),
        ("denied", "hidden", Code::PermissionDenied, true),
        ("refused", "claude", Code::InvalidArgument, true),
        ("upstream", "broken", Code::Unavailable, true),
        ("invalid", "vec", Code::InvalidArgument, true),
    ];
    for (id, model, code, key) in cases {
        let inputs: &[&str] = if id == "invalid" { &[""] } else { &["hello world"] };
        let got = client.embed(call(model, inputs, id, key)).await;
        assert_eq!(got.err().map_or(Code::Ok, |s| s.code()), code, "{id}");
    }
    let (_, scrape) = http_get(admin, "/metrics").await;
    drop(client);
    server.stop().await.unwrap();

    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), cases.len(), "{records:#?}");
    let expected = [
        ("ok", "vec", "e", "OK"),
        ("nokey", "none", "none", "UNAUTHENTICATED"),
        ("unknown", "none", "none", "NOT_FOUND"),
        ("denied", "hidden", "none", "PERMISSION_DENIED"),
        ("refused", "claude", "a", "INVALID_ARGUMENT"),
        ("upstream", "broken", "o", "UNAVAILABLE"),
        ("invalid", "none", "none", "INVALID_ARGUMENT"),
    ];
    for (id, route, provider, code) in expected {
        let record =
            records.iter().find(|r| r["request_id"] == id).unwrap_or_else(|| panic!("{id}"));
        assert_eq!(record["method"], "Embed", "{id}");
        assert_eq!(record["front_door"], "grpc", "{id}");
        assert_eq!(record["code"], code, "{id}");
        assert_eq!(record["route"].as_str().unwrap_or("none"), route, "{id}: {record}");
        assert_eq!(record["provider"].as_str().unwrap_or("none"), provider, "{id}: {record}");
        if id == "ok" {
            assert_eq!(record["input_tokens"], 2);
            assert_eq!(record["provider_model"], "m");
            assert_eq!(record["message_count"], 1, "the record counts inputs");
        }
    }
    for (id, route, provider, code) in expected {
        let series = format!(
            "ai_service_requests_total{{front_door=\"grpc\",method=\"Embed\",route=\"{route}\",provider=\"{provider}\",code=\"{code}\"}}"
        );
        assert!(scrape.contains(&format!("{series} 1\n")), "{id}: no {series} in\n{scrape}");
    }
}
