//! The parts of a call's usage that providers report beside input and output: prompt-cache
//! reads and writes, and reasoning tokens. Recorded replies from fake Anthropic, OpenAI and
//! Gemini upstreams; each part reaches the gRPC caller, each HTTP door in its own field names,
//! the audit record and `ai_service_tokens_total`, and a reply without them adds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{
    self, TestServer,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml, user_request},
    http_get, start_admin,
};
use ai_service::Config;
use serde_json::{Value, json};

/// A gateway with routes `claude`, `gpt` and `gemini`, each to its fake, auditing to `audit`.
async fn start(
    claude: &FakeUpstream,
    gpt: &FakeUpstream,
    gemini: &FakeUpstream,
    audit: &std::path::Path,
) -> TestServer {
    let yaml = format!(
        "audit: {{sink: {}}}\nrouting: {{max_retries: 0}}\nproviders:\n{}{}{}routes:\n  - {{name: claude, targets: [{{provider: claude, model: claude-up}}]}}\n  - {{name: gpt, targets: [{{provider: gpt, model: o3-mini}}]}}\n  - {{name: gemini, targets: [{{provider: gemini, model: gemini-2.5-flash}}]}}\n",
        audit.display(),
        provider_yaml("claude", "anthropic", &claude.url(""), "    default_max_tokens: 1024\n"),
        provider_yaml("gpt", "openai", &gpt.url("/v1"), ""),
        provider_yaml("gemini", "gemini", &gemini.url(""), ""),
    );
    let env = [("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    TestServer::start_with(Config::from_yaml(&yaml, env).unwrap()).await
}

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn cache_reads_writes_and_reasoning_reach_every_door_the_audit_and_the_metrics() {
    // Anthropic's documented reply: 2,095 plain input tokens, 100 written to the cache, 2,000
    // read from it. OpenAI's o-series example: 1,024 of 1,186 output tokens reasoned. Gemini:
    // 10 thought tokens, 4 cached.
    let claude = FakeUpstream::start(vec![
        Reply::json(200, "anthropic/message.json"),
        Reply::json(200, "anthropic/message.json"),
        Reply::json(200, "anthropic/message.json"),
    ])
    .await;
    let gpt = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_reasoning.json"),
        Reply::json(200, "openai/chat_reasoning.json"),
    ])
    .await;
    let gemini = FakeUpstream::start(vec![Reply::json(200, "gemini/generate.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = start(&claude, &gpt, &gemini, &audit).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    // gRPC: every part in Usage.
    let usage = grpc.chat(user_request("claude", "hi")).await.unwrap().into_inner().usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_input_tokens),
        (4195, 2000, 100)
    );
    let usage = grpc.chat(user_request("gpt", "hi")).await.unwrap().into_inner().usage.unwrap();
    assert_eq!((usage.output_tokens, usage.reasoning_tokens), (1186, 1024));
    let usage = grpc.chat(user_request("gemini", "hi")).await.unwrap().into_inner().usage.unwrap();
    assert_eq!(
        (usage.output_tokens, usage.reasoning_tokens, usage.cached_input_tokens),
        (17, 10, 4)
    );

    // The Anthropic door gives back Anthropic's own figures.
    let message = json!({"model": "claude", "max_tokens": 64,
                         "messages": [{"role": "user", "content": "hi"}]});
    let answer = post(&server, "/v1/messages", message).await;
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 100,
               "cache_read_input_tokens": 2000})
    );
    // The OpenAI door in OpenAI's: reasoning in completion_tokens_details.
    let completion = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let answer = post(&server, "/v1/chat/completions", completion).await;
    assert_eq!(answer["usage"]["completion_tokens"], 1186);
    assert_eq!(answer["usage"]["completion_tokens_details"], json!({"reasoning_tokens": 1024}));
    assert_eq!(answer["usage"]["prompt_tokens_details"], json!({"cached_tokens": 0}));
    // Through the OpenAI door, an Anthropic upstream's cache reads are OpenAI's cached_tokens.
    let completion = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    let answer = post(&server, "/v1/chat/completions", completion).await;
    assert_eq!(answer["usage"]["prompt_tokens"], 4195);
    assert_eq!(answer["usage"]["prompt_tokens_details"], json!({"cached_tokens": 2000}));

    // The audit record has each part, and leaves out the parts a reply did not have.
    let records = common::audit_records(&audit, 6).await;
    let parts = |r: &Value| {
        ["cached_input_tokens", "cache_write_input_tokens", "reasoning_tokens"]
            .map(|f| r[f].clone())
    };
    assert_eq!(parts(&records[0]), [json!(2000), json!(100), Value::Null], "{}", records[0]);
    assert_eq!(parts(&records[1]), [Value::Null, Value::Null, json!(1024)], "{}", records[1]);
    assert_eq!(parts(&records[2]), [json!(4), Value::Null, json!(10)], "{}", records[2]);
    assert_eq!(records[3]["front_door"], "anthropic");
    assert_eq!(parts(&records[3]), parts(&records[0]));
    assert_eq!(parts(&records[4]), parts(&records[1]));

    // The metrics count each part under its own type, only where a provider reported it.
    let (_, scrape) = http_get(admin, "/metrics").await;
    for (route, kind, count) in [
        ("claude", "input", 3 * 4195),
        ("claude", "cache_read", 3 * 2000),
        ("claude", "cache_write", 3 * 100),
        ("gpt", "output", 2 * 1186),
        ("gpt", "reasoning", 2 * 1024),
        ("gemini", "reasoning", 10),
        ("gemini", "cache_read", 4),
    ] {
        let series = format!(
            "ai_service_tokens_total{{route=\"{route}\",provider=\"{route}\",type=\"{kind}\"}} {count}"
        );
        assert!(scrape.contains(&series), "no {series} in\n{scrape}");
    }
    for absent in [
        "route=\"gpt\",provider=\"gpt\",type=\"cache_write\"",
        "route=\"claude\",provider=\"claude\",type=\"reasoning\"",
    ] {
        assert!(!scrape.contains(absent), "{absent} in\n{scrape}");
    }
}
