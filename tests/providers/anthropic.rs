//! The Anthropic Messages adapter against a fake upstream replaying recorded replies and
//! named SSE events.

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn config(fake: &FakeUpstream) -> String {
    format!(
        "providers:\n{}routes:\n  - name: claude\n    targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]\n",
        provider_yaml("anthropic", "anthropic", &fake.url(""), "    default_max_tokens: 2048\n")
    )
}

#[tokio::test]
async fn chat_hoists_the_system_prompt_and_always_sends_max_tokens() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("claude", "Hello");
    request.messages.insert(0, message(pb::Role::System, "You are terse."));
    request.messages.push(pb::Message {
        role: pb::Role::User as i32,
        content: vec![pb::ContentPart {
            part: Some(pb::content_part::Part::Image(pb::Image {
                source: Some(pb::image::Source::Data(b"GIF89a".to_vec())),
                mime_type: "image/gif".into(),
                detail: 0,
            })),
            cache_control: None,
        }],
        ..Default::default()
    });
    request.generation = Some(pb::GenerationConfig {
        temperature: Some(0.5),
        top_k: Some(40),
        stop: vec!["END".into()],
        ..Default::default()
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.uri, "/v1/messages");
    assert_eq!(got.header("x-api-key"), Some(TEST_KEY));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(got.header("authorization"), None);
    let body = &got.body;
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 2048);
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_k"], 40);
    assert_eq!(body["stop_sequences"], serde_json::json!(["END"]));
    // Two user messages in a row become one turn.
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["content"][0], serde_json::json!({"type": "text", "text": "Hello"}));
    assert_eq!(
        messages[0]["content"][1]["source"],
        serde_json::json!({"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"})
    );

    assert_eq!(reply.id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(reply.provider_model, "claude-sonnet-4-5-20250929");
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
    let usage = reply.usage.unwrap();
    // Input counts cache reads and writes as well.
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens),
        (4195, 503, 2000)
    );
    assert_eq!((usage.cache_write_input_tokens, usage.reasoning_tokens), (100, 0));
}

#[tokio::test]
async fn tool_use_blocks_become_tool_calls() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message_tool_use.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("claude", "Weather?");
    request.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "Weather by city".into(),
        parameters_json: r#"{"type":"object","properties":{"location":{"type":"string"}}}"#.into(),
        strict: None,
        cache_control: None,
    }];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::ToolName("get_weather".into())),
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let body = fake.only_request().body;
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["properties"]["location"]["type"], "string");
    assert_eq!(body["tool_choice"], serde_json::json!({"type": "tool", "name": "get_weather"}));

    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let message = reply.message.unwrap();
    let call = &message.tool_calls[0];
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    let args: serde_json::Value = serde_json::from_str(&call.arguments_json).unwrap();
    assert_eq!(args, serde_json::json!({"location": "San Francisco, CA", "unit": "celsius"}));
}

#[tokio::test]
async fn stream_relays_named_events_until_message_stop() {
    let fake = FakeUpstream::start(vec![Reply::sse("anthropic/stream_text.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("claude", "hi")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(fake.only_request().body["stream"], true);
    assert_eq!(out.text(), "Hello! Grüße 👋");
    let usage = out.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (25, 15, false));
    let finish = out.finish().unwrap();
    assert_eq!(finish.reason, pb::FinishReason::Stop as i32);
    assert_eq!(finish.id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
}

#[tokio::test]
async fn input_json_deltas_assemble_into_the_tool_call() {
    let fake = FakeUpstream::start(vec![Reply::sse("anthropic/stream_tool_use.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("claude", "weather?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "Okay, let's check the weather for San Francisco, CA:");
    // The tool_use block is content block 1 but tool call 0.
    assert_eq!(
        out.tool_calls(),
        [(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
            "get_weather".into(),
            r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#.into()
        )]
    );
    assert_eq!(out.finish().unwrap().reason, pb::FinishReason::ToolCalls as i32);
    assert_eq!(out.usage().unwrap().output_tokens, 89);
}

#[tokio::test]
async fn an_error_event_ends_the_stream_as_overloaded() {
    let fake = FakeUpstream::start(vec![Reply::sse("anthropic/stream_error.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("claude", "hi")).await;
    assert_eq!(out.text(), "Hel");
    let status = out.error.unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_OVERLOADED");
    assert!(status.message().contains("Overloaded"));
}

#[tokio::test]
async fn a_stream_without_message_stop_is_cut() {
    let fake = FakeUpstream::start(vec![Reply::sse("anthropic/stream_cut.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("claude", "hi")).await;
    assert_eq!(out.text(), "Hello");
    let status = out.error.unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_STREAM_CUT");
}

#[tokio::test]
async fn http_errors_map_to_their_kinds() {
    let cases = [
        (529, "anthropic/error_529.json", Code::Unavailable, "UPSTREAM_OVERLOADED"),
        (400, "anthropic/error_400.json", Code::InvalidArgument, "UPSTREAM_REJECTED"),
        (429, "anthropic/error_429.json", Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
    ];
    for (http, fixture, code, why) in cases {
        let fake =
            FakeUpstream::start(vec![Reply::json(http, fixture).header("retry-after", "3")]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let status = gw.client.chat(user_request("claude", "hi")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, why), "{http}");
        if http == 429 {
            let delay = status.get_error_details().retry_info().unwrap().retry_delay;
            assert_eq!(delay, Some(std::time::Duration::from_secs(3)));
        }
    }
}

#[tokio::test]
async fn fields_anthropic_lacks_are_refused_before_sending() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("claude", "hi");
    request.generation = Some(pb::GenerationConfig { seed: Some(1), ..Default::default() });
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "generation.seed");
    assert!(fake.received().is_empty());
}
