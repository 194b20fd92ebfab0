//! Prompt-cache breakpoints: set on system, content parts and tools, they reach Anthropic as
//! `cache_control` with their TTL, from the gRPC door and from the Anthropic door alike; an
//! OpenAI or Gemini target (which cache implicitly) gets none of them; more breakpoints than
//! Anthropic takes are refused by name; and the reply's cache writes and reads are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

fn route(kind: &str, fake: &FakeUpstream, base: &str) -> String {
    format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}routes:\n  - name: m\n    targets: [{{provider: p, model: up}}]\n",
        provider_yaml("p", kind, &fake.url(base), "")
    )
}

fn breakpoint(ttl: pb::CacheTtl) -> Option<pb::CacheControl> {
    Some(pb::CacheControl { ttl: ttl as i32 })
}

fn text(text: &str, cache: Option<pb::CacheControl>) -> pb::ContentPart {
    pb::ContentPart { part: Some(pb::content_part::Part::Text(text.into())), cache_control: cache }
}

/// A system prompt and a long document cached for an hour, a question after them, and a
/// cached tool.
fn cached_request() -> pb::ChatRequest {
    pb::ChatRequest {
        model: "m".into(),
        messages: vec![
            pb::Message {
                role: pb::Role::System as i32,
                content: vec![text("You analyse novels.", breakpoint(pb::CacheTtl::CacheTtl1Hour))],
                ..Default::default()
            },
            pb::Message {
                role: pb::Role::User as i32,
                content: vec![
                    text(
                        "<the whole of Pride and Prejudice>",
                        breakpoint(pb::CacheTtl::Unspecified),
                    ),
                    text("What is it about?", None),
                ],
                ..Default::default()
            },
        ],
        tools: vec![pb::Tool {
            name: "lookup".into(),
            cache_control: breakpoint(pb::CacheTtl::CacheTtl5Minutes),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn breakpoints_reach_anthropic_as_cache_control_with_their_ttl() {
    let fake =
        FakeUpstream::start(vec![Reply::json(200, "anthropic/message_cache_write.json")]).await;
    let mut gw = gateway(&route("anthropic", &fake, ""), &[]).await;
    let reply = gw.client.chat(cached_request()).await.unwrap().into_inner();
    let body = fake.only_request().body;
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You analyse novels.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "<the whole of Pride and Prejudice>", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "What is it about?"},
        ])
    );
    assert_eq!(body["tools"][0]["cache_control"], json!({"type": "ephemeral", "ttl": "5m"}));
    let usage = reply.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.cache_write_input_tokens, usage.cached_input_tokens),
        (21 + 188_086, 188_086, 0)
    );
}

#[tokio::test]
async fn more_breakpoints_than_anthropic_takes_are_refused_by_name() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let mut gw = gateway(&route("anthropic", &fake, ""), &[]).await;
    let mut request = cached_request();
    for n in 0..2 {
        request.messages[1]
            .content
            .push(text(&format!("more {n}"), breakpoint(pb::CacheTtl::Unspecified)));
    }
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "cache_control");
    assert!(violation.description.contains("at most 4"), "{}", violation.description);
    assert!(fake.received().is_empty());

    // An unknown TTL is refused at the door, for every provider.
    let mut request = cached_request();
    request.messages[1].content[0].cache_control = Some(pb::CacheControl { ttl: 9 });
    let status = gw.client.chat(request).await.unwrap_err();
    let details = status.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "messages[1].content[0].cache_control.ttl");
}

#[tokio::test]
async fn providers_that_cache_implicitly_get_no_breakpoints() {
    for (kind, base, fixture) in
        [("openai", "/v1", "openai/chat.json"), ("gemini", "/v1beta", "gemini/generate.json")]
    {
        let fake = FakeUpstream::start(vec![Reply::json(200, fixture)]).await;
        let mut gw = gateway(&route(kind, &fake, base), &[]).await;
        gw.client.chat(cached_request()).await.unwrap();
        let body = fake.only_request().body.to_string();
        assert!(!body.contains("cache_control"), "{kind}: {body}");
        assert!(body.contains("<the whole of Pride and Prejudice>"), "{kind}: the text still goes");
    }
}

#[tokio::test]
async fn the_anthropic_door_passes_cache_control_through_and_caches_the_prefix_automatically() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let yaml = format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}routes:\n  - name: claude\n    targets: [{{provider: anthropic, model: up}}]\n",
        provider_yaml("anthropic", "anthropic", &fake.url(""), ""),
    );
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(common::quiet_audit(&yaml));
    let server =
        common::TestServer::start_with(ai_service::Config::from_yaml(&yaml, env).unwrap()).await;
    let body = json!({
        "model": "claude", "max_tokens": 100,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
    });
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/v1/messages", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = fake.only_request().body;
    assert_eq!(sent["system"][0]["cache_control"], json!({"type": "ephemeral", "ttl": "1h"}));
    assert_eq!(sent["tools"][0]["cache_control"], json!({"type": "ephemeral"}));
    // The top-level breakpoint lands on the last block.
    assert_eq!(sent["messages"][0]["content"][0]["cache_control"], json!({"type": "ephemeral"}));
}
