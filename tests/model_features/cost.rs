//! The cost of every call: recorded replies from fake Anthropic, OpenAI and Gemini upstreams
//! priced at the shipped list prices and checked against hand-computed figures, for each
//! provider's usage shape (cache reads and writes, reasoning, Gemini thoughts); an unknown
//! price is unset everywhere and counted as unpriced, never 0; `pricing:` and a target's
//! `price:` override the list; the cost reaches the response, the header or trailer, the HTTP
//! doors, the audit record and `ai_service_cost_usd_total`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{
    self, TestServer,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml, streaming, user_request},
    http_get,
    redis::metric,
    start_admin,
};
use ai_service::Config;
use serde_json::{Value, json};

async fn start(yaml: &str) -> TestServer {
    let env = [("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    TestServer::start_with(Config::from_yaml(yaml, env).unwrap()).await
}

fn header(response: &tonic::metadata::MetadataMap, name: &str) -> Option<String> {
    response.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn each_providers_usage_shape_costs_what_its_list_price_says() {
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let gpt = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_reasoning.json"),
        Reply::json(200, "openai/chat.json"),
    ])
    .await;
    let gemini = FakeUpstream::start(vec![Reply::json(200, "gemini/generate.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "audit: {{sink: {}}}\nrouting: {{max_retries: 0}}\nproviders:\n{}{}{}routes:\n  - {{name: claude, targets: [{{provider: claude, model: claude-up}}]}}\n  - {{name: gpt, targets: [{{provider: gpt, model: o3-mini}}]}}\n  - {{name: gemini, targets: [{{provider: gemini, model: gemini-2.5-flash}}]}}\n  - {{name: g4o, targets: [{{provider: gpt, model: gpt-4o}}]}}\n",
        audit.display(),
        provider_yaml("claude", "anthropic", &claude.url(""), "    default_max_tokens: 1024\n"),
        provider_yaml("gpt", "openai", &gpt.url("/v1"), ""),
        provider_yaml("gemini", "gemini", &gemini.url(""), ""),
    );
    let server = start(&yaml).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    // Anthropic, claude-sonnet-4-5-20250929 → claude-sonnet-4-5 ($3 in, $15 out, $0.30 cache
    // read, $3.75 cache write per million): 2,095 plain + 2,000 read + 100 written, 503 out:
    // 2095×3 + 2000×0.30 + 100×3.75 + 503×15 = 6285 + 600 + 375 + 7545 = 14,805 µ$ per token·M.
    // OpenAI o3-mini-2025-01-31 → o3-mini ($1.10 in, $4.40 out): 75 in, 1,186 out of which
    // 1,024 reasoning (billed as output): 75×1.10 + 1186×4.40 = 82.5 + 5218.4 = 5300.9.
    // Gemini 2.5 Flash ($0.30 in, $2.50 out, $0.03 cached): 12 in of which 4 cached, 7 + 10
    // thought out: 8×0.30 + 4×0.03 + 17×2.50 = 2.4 + 0.12 + 42.5 = 45.02.
    // OpenAI gpt-4o-2024-08-06 → gpt-4o ($2.50 in, $10 out, $1.25 cached): 1,117 in of which
    // 1,024 cached, 46 out: 93×2.50 + 1024×1.25 + 46×10 = 232.5 + 1280 + 460 = 1972.5.
    let expected = [
        ("claude", 0.014_805),
        ("gpt", 0.005_300_9),
        ("gemini", 0.000_045_02),
        ("g4o", 0.001_972_5),
    ];
    for (route, usd) in expected {
        let response = grpc.chat(user_request(route, "hi")).await.unwrap();
        assert_eq!(header(response.metadata(), "x-ai-cost-usd"), Some(usd.to_string()), "{route}");
        let answer = response.into_inner();
        assert_eq!(answer.cost.map(|c| c.usd), Some(usd), "{route}");
    }

    let records = common::audit_records(&audit, 4).await;
    for (record, (route, usd)) in records.iter().zip(expected) {
        assert_eq!(record["route"], route);
        assert_eq!(record["cost_usd"], json!(usd), "{record}");
        assert!(record.get("cost_estimated").is_none(), "{record}");
    }
    let (_, scrape) = http_get(admin, "/metrics").await;
    let series = r#"ai_service_cost_usd_total{route="claude",provider="claude",model="claude-sonnet-4-5",client_key="none"}"#;
    assert_eq!(metric(&scrape, series), 0.014_805, "{scrape}");
    let series = r#"ai_service_cost_usd_total{route="gemini",provider="gemini",model="gemini-2.5-flash",client_key="none"}"#;
    assert_eq!(metric(&scrape, series), 0.000_045_02);
    assert!(!scrape.contains("ai_service_unpriced_calls_total{"), "{scrape}");
}

#[tokio::test]
async fn an_unknown_price_is_unset_everywhere_and_counted_never_zero() {
    // An OpenAI-compatible server has no shipped prices, whatever its model is called.
    let local = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat.json"),
        Reply::json(200, "openai/chat.json"),
        Reply::sse("openai/stream_text.sse"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "audit: {{sink: {}}}\nrouting: {{max_retries: 0}}\nproviders:\n{}routes:\n  - {{name: local, targets: [{{provider: local, model: my-model}}]}}\n",
        audit.display(),
        provider_yaml("local", "openai_compatible", &local.url("/v1"), ""),
    );
    let server = start(&yaml).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    let response = grpc.chat(user_request("local", "hi")).await.unwrap();
    assert_eq!(header(response.metadata(), "x-ai-cost-usd"), None);
    assert_eq!(response.into_inner().cost, None);

    let http = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 200);
    assert!(http.headers().get("x-ai-cost-usd").is_none());

    let mut stream =
        grpc.stream_chat(streaming(user_request("local", "hi"))).await.unwrap().into_inner();
    let mut finish = None;
    while let Some(event) = stream.message().await.unwrap() {
        if let Some(ai_service::proto::v1::stream_chat_response::Event::Finish(f)) = event.event {
            finish = Some(f);
        }
    }
    assert_eq!(finish.unwrap().cost, None);
    let trailers = stream.trailers().await.unwrap().unwrap_or_default();
    assert!(trailers.get("x-ai-cost-usd").is_none());

    let records = common::audit_records(&audit, 3).await;
    assert!(records.iter().all(|r| r.get("cost_usd").is_none()), "{records:?}");
    let (_, scrape) = http_get(admin, "/metrics").await;
    let series = r#"ai_service_unpriced_calls_total{route="local",provider="local"}"#;
    assert_eq!(metric(&scrape, series), 3.0, "{scrape}");
    assert!(!scrape.contains("ai_service_cost_usd_total{"), "{scrape}");
}

#[tokio::test]
async fn config_prices_override_the_list_and_reach_streams_and_both_http_doors() {
    let gpt = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_reasoning.json"),
        Reply::json(200, "openai/chat_reasoning.json"),
        Reply::sse("openai/stream_text.sse"),
        Reply::sse("openai/stream_text.sse"),
    ])
    .await;
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    // o3-mini at $1 in, $2 out and reasoning at $3 (by provider name); gpt-4o-mini at a
    // target's own price of $0.50 in, $1 out; claude's cache writes at $4 (by kind).
    let yaml = format!(
        "routing: {{max_retries: 0}}\npricing:\n  gpt:\n    o3-mini: {{input: 1, output: \"2\", reasoning: 3}}\n  anthropic:\n    claude-sonnet-4-5: {{input: 3, output: 15, cache_read: 0.3, cache_write: 4}}\nproviders:\n{}{}routes:\n  - {{name: gpt, targets: [{{provider: gpt, model: o3-mini}}]}}\n  - {{name: mini, targets: [{{provider: gpt, model: gpt-4o-mini, price: {{input: 0.5, output: 1}}}}]}}\n  - {{name: claude, targets: [{{provider: claude, model: claude-up}}]}}\n",
        provider_yaml("gpt", "openai", &gpt.url("/v1"), ""),
        provider_yaml("claude", "anthropic", &claude.url(""), "    default_max_tokens: 1024\n"),
    );
    let server = start(&yaml).await;
    let mut grpc = server.client().await;

    // 75×1 + (1186 − 1024)×2 + 1024×3 = 75 + 324 + 3072 = 3471 → $0.003471.
    let answer = grpc.chat(user_request("gpt", "hi")).await.unwrap().into_inner();
    assert_eq!(answer.cost.map(|c| c.usd), Some(0.003_471));
    // 2095×3 + 2000×0.3 + 100×4 + 503×15 = 6285 + 600 + 400 + 7545 = 14,830.
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/messages", server.addr))
        .json(&json!({"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ai-cost-usd"], "0.01483");
    // Through the OpenAI door: the header.
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ai-cost-usd"], "0.003471");

    // A stream: gpt-4o-mini's fixture reports 9 in and 12 out (see its usage chunk), at the
    // target's price: 9×0.5 + 12×1 = 16.5 → $0.0000165, on the finish and in the trailer.
    let mut stream =
        grpc.stream_chat(streaming(user_request("mini", "hi"))).await.unwrap().into_inner();
    let mut finish = None;
    let mut usage = None;
    while let Some(event) = stream.message().await.unwrap() {
        use ai_service::proto::v1::stream_chat_response::Event;
        match event.event {
            Some(Event::Finish(f)) => finish = Some(f),
            Some(Event::Usage(u)) => usage = Some(u),
            _ => {}
        }
    }
    let usage = usage.unwrap();
    let usd = (f64::from(usage.input_tokens) * 0.5 + f64::from(usage.output_tokens)) / 1e6;
    let cost = finish.unwrap().cost.unwrap().usd;
    assert!((cost - usd).abs() < 1e-15, "{cost} vs {usd}");
    let trailers = stream.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("x-ai-cost-usd").unwrap().to_str().unwrap(), cost.to_string());

    // The OpenAI door's stream: `usage.cost_usd` on the usage chunk.
    let text = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .json(&json!({"model": "mini", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let usage_chunk: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .unwrap();
    assert_eq!(usage_chunk["usage"]["cost_usd"], json!(cost), "{text}");
}
