//! `Chat` against the built-in echo provider, end to end through the real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{TestServer, chat, message, text_of};
use ai_service::proto::v1 as pb;

#[tokio::test]
async fn chat_echoes_the_last_user_message_with_usage() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let mut request = chat("echo", "hello gateway world");
    request.messages.insert(0, message(pb::Role::System, "be brief"));

    let reply = client.chat(request).await.unwrap().into_inner();

    let msg = reply.message.unwrap();
    assert_eq!(msg.role, pb::Role::Assistant as i32);
    assert_eq!(text_of(&msg), "hello gateway world");
    assert_eq!(reply.model, "echo");
    assert_eq!(reply.provider, "echo");
    assert_eq!(reply.provider_model, "echo");
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
    assert!(!reply.id.is_empty());
    let usage = reply.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (5, 3, 8));
    assert!(!usage.estimated);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_length() {
    let server = TestServer::start("").await;
    let mut request = chat("echo", "one two three four five");
    request.generation = Some(pb::GenerationConfig { max_tokens: Some(2), ..Default::default() });

    let reply = server.client().await.chat(request).await.unwrap().into_inner();

    assert_eq!(text_of(&reply.message.unwrap()), "one two ");
    assert_eq!(reply.finish_reason, pb::FinishReason::Length as i32);
    assert_eq!(reply.usage.unwrap().output_tokens, 2);
}

#[tokio::test]
async fn a_required_tool_comes_back_as_a_tool_call() {
    let server = TestServer::start("").await;
    let mut request = chat("echo", "weather in Oslo");
    request.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        parameters_json: r#"{"type":"object","properties":{"text":{"type":"string"}}}"#.into(),
        strict: None,
        cache_control: None,
    }];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Required as i32)),
    });

    let reply = server.client().await.chat(request).await.unwrap().into_inner();

    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let calls = reply.message.unwrap().tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].arguments_json, r#"{"text":"weather in Oslo"}"#);
}

#[tokio::test]
async fn routes_aliases_and_passthrough_reach_the_provider() {
    let yaml = r#"
providers:
  local: {kind: echo}
routes:
  - name: fast
    aliases: [quick]
    targets: [{provider: local, model: echo-small}]
"#;
    let server = TestServer::start(yaml).await;
    let mut client = server.client().await;
    for (asked, route, provider_model) in [
        ("fast", "fast", "echo-small"),
        ("quick", "fast", "echo-small"),
        ("local/raw-model", "local/raw-model", "raw-model"),
    ] {
        let reply = client.chat(chat(asked, "hi")).await.unwrap().into_inner();
        assert_eq!(reply.model, route, "asked {asked}");
        assert_eq!(reply.provider, "local");
        assert_eq!(reply.provider_model, provider_model);
    }
}
