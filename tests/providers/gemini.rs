//! The Gemini adapter against a fake upstream replaying recorded generateContent replies and
//! streamGenerateContent SSE.

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn config(fake: &FakeUpstream) -> String {
    format!(
        "providers:\n{}routes:\n  - name: gemini\n    targets: [{{provider: gemini, model: gemini-2.5-flash}}]\n",
        provider_yaml("gemini", "gemini", &fake.url("/v1beta"), "")
    )
}

#[tokio::test]
async fn chat_puts_the_key_in_a_header_and_maps_roles_and_usage() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "gemini/generate.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("gemini", "Capital of France?");
    request.messages.insert(0, message(pb::Role::System, "Be brief."));
    request.messages.push(message(pb::Role::Assistant, "Which France?"));
    request.messages.push(message(pb::Role::User, "The country."));
    request.generation = Some(pb::GenerationConfig {
        temperature: Some(0.1),
        max_tokens: Some(100),
        seed: Some(3),
        stop: vec!["STOP".into()],
        ..Default::default()
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.uri, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert!(!got.uri.contains("key="), "the key must never be in the URL");
    assert_eq!(got.header("x-goog-api-key"), Some(TEST_KEY));
    let body = &got.body;
    assert_eq!(body["systemInstruction"], serde_json::json!({"parts": [{"text": "Be brief."}]}));
    let roles: Vec<&str> =
        body["contents"].as_array().unwrap().iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "model", "user"]);
    assert_eq!(
        body["generationConfig"],
        serde_json::json!({"temperature": 0.1, "maxOutputTokens": 100, "seed": 3, "stopSequences": ["STOP"]})
    );

    assert_eq!(reply.id, "mAitaJnJKMTVvdIPnoqOyAQ");
    assert_eq!(reply.provider_model, "gemini-2.5-flash");
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
    let usage = reply.usage.unwrap();
    // Thinking tokens count as output.
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.cached_input_tokens), (12, 17, 4));
    // ... and are reported apart as reasoning.
    assert_eq!((usage.reasoning_tokens, usage.cache_write_input_tokens), (10, 0));
}

#[tokio::test]
async fn function_calls_get_ids_and_tool_calls_finish() {
    let fake =
        FakeUpstream::start(vec![Reply::json(200, "gemini/generate_function_call.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("gemini", "Weather in London and Paris?");
    request.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "Weather".into(),
        parameters_json: r#"{"type":"object","properties":{"location":{"type":"string"}}}"#.into(),
        strict: None,
        cache_control: None,
    }];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Required as i32)),
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();
    let body = fake.only_request().body;
    assert_eq!(body["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
    assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "ANY");

    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let calls = reply.message.unwrap().tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].id.as_str(), calls[1].id.as_str()), ("call_0", "call_1"));
    assert_eq!(calls[1].arguments_json, r#"{"location":"Paris"}"#);
}

#[tokio::test]
async fn stream_uses_alt_sse_and_ends_at_the_finish_reason() {
    let fake = FakeUpstream::start(vec![Reply::sse("gemini/stream.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gemini", "sky?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let got = fake.only_request();
    assert_eq!(got.uri, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(got.header("x-goog-api-key"), Some(TEST_KEY));
    assert_eq!(out.text(), "The sky is blue — ünïcödé.");
    let usage = out.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (8, 9, false));
    assert_eq!(out.finish().unwrap().reason, pb::FinishReason::Stop as i32);
    assert_eq!(out.finish().unwrap().id, "s-1");
}

#[tokio::test]
async fn a_streamed_function_call_arrives_whole() {
    let fake = FakeUpstream::start(vec![Reply::sse("gemini/stream_function_call.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gemini", "Tokyo?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.tool_calls(),
        [("call_0".into(), "get_weather".into(), r#"{"location":"Tokyo"}"#.into())]
    );
    assert_eq!(out.finish().unwrap().reason, pb::FinishReason::ToolCalls as i32);
}

#[tokio::test]
async fn a_stream_without_a_finish_reason_is_cut_and_bad_json_is_invalid() {
    let cases = [
        ("gemini/stream_cut.sse", "The sky", "UPSTREAM_STREAM_CUT"),
        ("gemini/stream_malformed.sse", "The", "UPSTREAM_INVALID_RESPONSE"),
    ];
    for (fixture, text, why) in cases {
        let fake = FakeUpstream::start(vec![Reply::sse(fixture)]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let out = stream_chat(&mut gw, user_request("gemini", "sky?")).await;
        assert_eq!(out.text(), text);
        let status = out.error.unwrap();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Unavailable, why));
    }
}

#[tokio::test]
async fn errors_map_by_status_and_body() {
    let cases = [
        (400, "gemini/error_400_key.json", Code::FailedPrecondition, "UPSTREAM_AUTH_FAILED"),
        (429, "gemini/error_429.json", Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
        (503, "gemini/error_503.json", Code::Unavailable, "UPSTREAM_SERVER_ERROR"),
    ];
    for (http, fixture, code, why) in cases {
        let fake = FakeUpstream::start(vec![
            Reply::json(http, fixture).header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ])
        .await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let status = gw.client.chat(user_request("gemini", "hi")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, why), "{http}");
        assert!(!status.message().contains(TEST_KEY));
        if http == 429 {
            // A date in the past: retry at once.
            let delay = status.get_error_details().retry_info().unwrap().retry_delay;
            assert_eq!(delay, Some(std::time::Duration::ZERO));
        }
    }
}

#[tokio::test]
async fn a_tool_result_is_a_function_response_named_after_its_call() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "gemini/generate.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("gemini", "Weather?");
    let mut assistant = message(pb::Role::Assistant, "");
    assistant.content.clear();
    assistant.tool_calls = vec![pb::ToolCall {
        id: "call_0".into(),
        name: "get_weather".into(),
        arguments_json: r#"{"location":"Oslo"}"#.into(),
        signature: String::new(),
    }];
    let mut result = message(pb::Role::Tool, r#"{"temp": -3}"#);
    result.tool_call_id = "call_0".into();
    request.messages.extend([assistant, result]);
    gw.client.chat(request).await.unwrap();
    let body = fake.only_request().body;
    assert_eq!(
        body["contents"][1]["parts"][0],
        serde_json::json!({"functionCall": {"name": "get_weather", "args": {"location": "Oslo"}}})
    );
    assert_eq!(
        body["contents"][2],
        serde_json::json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": -3}}}]})
    );
}

/// An id the gateway made for a reply without a `responseId`: `gen-` and a simple uuid.
fn assert_made_by_the_gateway(id: &str) {
    let uuid = id.strip_prefix("gen-").unwrap_or_default();
    assert!(uuid.len() == 32 && uuid.bytes().all(|b| b.is_ascii_hexdigit()), "id {id:?}");
}

#[tokio::test]
async fn unary_finish_reasons_map_calls_finish_tool_calls_and_a_missing_id_is_made() {
    let cases = [
        // An image withheld by policy: nothing comes back but the reason.
        ("gemini/generate_blocked.json", pb::FinishReason::ContentFilter, 0),
        // A complete call, then the token cap: the call is what the caller acts on.
        ("gemini/generate_function_call_max_tokens.json", pb::FinishReason::ToolCalls, 1),
    ];
    for (fixture, finish, calls) in cases {
        let fake = FakeUpstream::start(vec![Reply::json(200, fixture)]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let reply = gw.client.chat(user_request("gemini", "Weather?")).await.unwrap().into_inner();
        assert_eq!(reply.finish_reason, finish as i32, "{fixture}");
        assert_eq!(reply.message.unwrap().tool_calls.len(), calls, "{fixture}");
        assert_made_by_the_gateway(&reply.id);
    }
}

#[tokio::test]
async fn stream_finish_reasons_map_calls_finish_tool_calls_and_a_missing_id_is_made() {
    let cases = [
        ("gemini/stream_recitation.sse", pb::FinishReason::ContentFilter, 0),
        ("gemini/stream_function_call_max_tokens.sse", pb::FinishReason::ToolCalls, 1),
    ];
    for (fixture, finish, calls) in cases {
        let fake = FakeUpstream::start(vec![Reply::sse(fixture)]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let out = stream_chat(&mut gw, user_request("gemini", "Weather?")).await;
        assert!(out.error.is_none(), "{fixture}: {:?}", out.error);
        assert_eq!(out.tool_calls().len(), calls, "{fixture}");
        let end = out.finish().unwrap();
        assert_eq!(end.reason, finish as i32, "{fixture}");
        assert_made_by_the_gateway(&end.id);
    }
}
