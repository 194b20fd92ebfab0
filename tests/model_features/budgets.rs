//! Budgets per client key: a key that has spent its dollar or token budget is refused with
//! RESOURCE_EXHAUSTED, `BUDGET_EXHAUSTED` and a `QuotaFailure` (and leaves an audit record and
//! a `requests_total` sample saying so); what is left shows in headers and trailers; a stream
//! that crosses the line runs to its end; and two gateways sharing one real Redis enforce one
//! budget exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{
    self, TestServer,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml, streaming, user_request},
    http_get,
    redis::{RedisServer, metric},
    start_admin,
};
use ai_service::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::{Code, Request};
use tonic_types::StatusExt;

const KEY: &str = "ais_team_0123456789abcdef0123456789";

fn sha(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    request
}

/// A gateway whose key `team` has `budget`, routing `gpt` to `fake` (gpt-4o), with `extra`
/// config (Redis) and its audit in `audit`.
async fn gateway(
    fake: &FakeUpstream,
    budget: &str,
    extra: &str,
    audit: &std::path::Path,
) -> TestServer {
    let yaml = format!(
        "{extra}audit: {{sink: {}}}\nauth:\n  keys:\n    - {{id: team, sha256: {}, budget: {budget}}}\nrouting: {{max_retries: 0}}\nproviders:\n{}routes:\n  - {{name: gpt, targets: [{{provider: openai, model: gpt-4o}}]}}\n",
        audit.display(),
        sha(KEY),
        provider_yaml("openai", "openai", &fake.url("/v1"), "")
    );
    let env = [("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    TestServer::start_with(Config::from_yaml(&yaml, env).unwrap()).await
}

fn assert_budget_refusal(status: &tonic::Status, budget: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "BUDGET_EXHAUSTED");
    let quota = details.quota_failure().expect("a QuotaFailure");
    assert_eq!(quota.violations.len(), 1);
    assert_eq!(quota.violations[0].subject, format!("client_key:team/budget:{budget}"));
    assert!(quota.violations[0].description.starts_with("day budget (UTC) spent: "), "{quota:?}");
}

#[tokio::test]
async fn a_spent_dollar_budget_refuses_with_quota_failure_and_is_recorded() {
    // openai/chat.json on gpt-4o costs $0.0019725 (see tests/model_features/cost.rs); $0.003 a day lets two
    // calls start (the second crosses the line) and refuses the third.
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json"); 2]).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = gateway(&fake, "{window: day, usd: 0.003}", "", &audit).await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    let first = grpc.chat(authorized(user_request("gpt", "one"))).await.unwrap();
    let left = |r: &tonic::metadata::MetadataMap| {
        r.get("x-ai-budget-remaining-usd").map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(left(first.metadata()), Some("0.0010275".into()));
    let second = grpc.chat(authorized(user_request("gpt", "two"))).await.unwrap();
    assert_eq!(left(second.metadata()), Some("0".into()));
    let refused = grpc.chat(authorized(user_request("gpt", "three"))).await.unwrap_err();
    assert_budget_refusal(&refused, "usd");
    assert!(refused.message().contains("$0.003945 of its $0.003"), "{}", refused.message());
    assert_eq!(fake.received().len(), 2, "the refused call never went upstream");

    // The OpenAI door refuses with 429 in its own dialect.
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BUDGET_EXHAUSTED");

    let records = common::audit_records(&audit, 4).await;
    assert_eq!(records[2]["code"], "RESOURCE_EXHAUSTED");
    assert_eq!(records[2]["client_id"], "team");
    assert!(records[2].get("cost_usd").is_none());
    let (_, scrape) = http_get(admin, "/metrics").await;
    let refused = r#"ai_service_requests_total{front_door="grpc",method="Chat",route="gpt",provider="none",code="RESOURCE_EXHAUSTED"}"#;
    assert_eq!(metric(&scrape, refused), 1.0, "{scrape}");
    assert_eq!(metric(&scrape, r#"ai_service_budget_exhausted_total{budget="usd"}"#), 2.0);
    let gauge = r#"ai_service_budget_remaining_usd{client_key="team",window="day"}"#;
    assert_eq!(metric(&scrape, gauge), 0.0);
    let spent = r#"ai_service_cost_usd_total{route="gpt",provider="openai",model="gpt-4o",client_key="team"}"#;
    assert_eq!(metric(&scrape, spent), 0.003_945);
}

#[tokio::test]
async fn a_stream_that_crosses_its_token_budget_runs_to_its_end_and_the_next_is_refused() {
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_text.sse")]).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = gateway(&fake, "{window: day, tokens: 5}", "", &audit).await;
    let mut grpc = server.client().await;

    let mut stream = grpc
        .stream_chat(authorized(streaming(user_request("gpt", "go"))))
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    let finish = events.iter().find_map(|e| match &e.event {
        Some(ai_service::proto::v1::stream_chat_response::Event::Finish(f)) => Some(f.clone()),
        _ => None,
    });
    assert!(finish.is_some(), "the stream was not cut: it ends with its finish");
    let trailers = stream.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("x-ai-budget-remaining-tokens").unwrap(), "0");

    let refused =
        grpc.stream_chat(authorized(streaming(user_request("gpt", "again")))).await.unwrap_err();
    assert_budget_refusal(&refused, "tokens");
}

async fn replica(fake: &FakeUpstream, redis: &RedisServer, audit: &std::path::Path) -> TestServer {
    let extra = format!(
        "limits: {{backend: redis}}\nredis: {{url: '{}', key_prefix: 'budget-test:', command_timeout: 2s}}\n",
        redis.url()
    );
    gateway(fake, "{window: month, usd: 0.005, tokens: 100000}", &extra, audit).await
}

#[tokio::test]
async fn two_gateways_sharing_one_redis_enforce_one_budget_exactly() {
    // Three calls at $0.0019725 fit under $0.005 only until the sum reaches it: 0, 0.0019725
    // and 0.003945 spent before each of the first three; the fourth (0.0059175) is refused,
    // whichever replica takes it.
    let redis = RedisServer::start();
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json"); 3]).await;
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&fake, &redis, &dir.path().join("a.jsonl")).await;
    let b = replica(&fake, &redis, &dir.path().join("b.jsonl")).await;
    let (mut ga, mut gb) = (a.client().await, b.client().await);

    let left = |r: &tonic::Response<_>| {
        let r: &tonic::Response<ai_service::proto::v1::ChatResponse> = r;
        r.metadata().get("x-ai-budget-remaining-usd").unwrap().to_str().unwrap().to_owned()
    };
    let one = ga.chat(authorized(user_request("gpt", "1"))).await.unwrap();
    assert_eq!(left(&one), "0.0030275");
    let two = gb.chat(authorized(user_request("gpt", "2"))).await.unwrap();
    assert_eq!(left(&two), "0.001055", "B sees what A spent");
    let tokens = two.metadata().get("x-ai-budget-remaining-tokens").unwrap();
    assert_eq!(tokens, (100_000 - 2 * 1163).to_string().as_str());
    let three = ga.chat(authorized(user_request("gpt", "3"))).await.unwrap();
    assert_eq!(left(&three), "0");
    for client in [&mut ga, &mut gb] {
        let refused = client.chat(authorized(user_request("gpt", "4"))).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        let quota = refused.get_error_details().quota_failure().unwrap().clone();
        assert!(
            quota.violations[0]
                .description
                .starts_with("month budget (UTC) spent: $0.0059175 of $0.005"),
            "{quota:?}"
        );
    }
    assert_eq!(fake.received().len(), 3);
}
