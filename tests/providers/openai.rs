//! The OpenAI adapter (and its compatible presets) against a fake upstream that replays
//! recorded Chat Completions replies: what the upstream received, and what the caller got.

use std::time::Duration;

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn config(fake: &FakeUpstream) -> String {
    format!(
        "providers:\n{}routes:\n  - name: gpt\n    targets: [{{provider: openai, model: gpt-4o}}]\n",
        provider_yaml("openai", "openai", &fake.url("/v1"), "")
    )
}

fn full_request() -> pb::ChatRequest {
    let mut request = user_request("gpt", "What is the capital of France?");
    request.messages.insert(0, message(pb::Role::System, "Answer briefly."));
    request.generation = Some(pb::GenerationConfig {
        temperature: Some(0.25),
        top_p: Some(0.5),
        max_tokens: Some(64),
        stop: vec!["\n\n".into()],
        seed: Some(7),
        response_format: Some(pb::ResponseFormat {
            r#type: pb::ResponseFormatType::JsonObject as i32,
            json_schema: None,
        }),
        ..Default::default()
    });
    request.metadata.insert("x-user-id".into(), "u-1".into());
    request
}

#[tokio::test]
async fn chat_sends_the_wire_request_and_maps_the_reply() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let reply = gw.client.chat(full_request()).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, "/v1/chat/completions");
    assert_eq!(got.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = &got.body;
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(
        body["messages"][0],
        serde_json::json!({"role": "system", "content": "Answer briefly."})
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["max_completion_tokens"], 64);
    assert_eq!(body["stop"], serde_json::json!(["\n\n"]));
    assert_eq!(body["seed"], 7);
    assert_eq!(body["response_format"]["type"], "json_object");
    assert!(body.get("stream").is_none());
    assert!(body.get("metadata").is_none(), "caller metadata must not reach the provider");
    assert!(body.get("presence_penalty").is_none(), "unset fields stay unset");

    assert_eq!(reply.provider, "openai");
    assert_eq!(reply.provider_model, "gpt-4o-2024-08-06");
    assert_eq!(reply.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
    let text = &reply.message.as_ref().unwrap().content[0];
    assert_eq!(
        text.part,
        Some(pb::content_part::Part::Text("The capital of France is Paris.".into()))
    );
    let usage = reply.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens),
        (1117, 46, 1024)
    );
    assert_eq!((usage.cache_write_input_tokens, usage.reasoning_tokens), (0, 0));
    assert!(!usage.estimated);
}

/// A reasoning model's reply (OpenAI's documented o-series example): its reasoning tokens,
/// part of the completion tokens, reach the caller as their own count.
#[tokio::test]
async fn reasoning_tokens_are_reported_apart() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat_reasoning.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let reply = gw.client.chat(user_request("gpt", "Transpose a matrix")).await.unwrap();
    let usage = reply.into_inner().usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (75, 1186, 1261));
    assert_eq!(usage.reasoning_tokens, 1024);
    assert_eq!((usage.cached_input_tokens, usage.cache_write_input_tokens), (0, 0));
}

#[tokio::test]
async fn a_reply_without_usage_gets_an_estimate_marked_estimated() {
    // Servers such as llama.cpp and vLLM may leave usage out, or report zeros.
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_no_usage.json"),
        Reply::json(200, "openai/chat_zero_usage.json"),
    ])
    .await;
    let mut gw = gateway(&config(&fake), &[]).await;
    for _ in 0..2 {
        let request = user_request("gpt", "What is the capital of France?");
        let usage = gw.client.chat(request).await.unwrap().into_inner().usage.unwrap();
        assert!(usage.estimated, "{usage:?}");
        // About four bytes a token: 30 bytes asked, 20 answered.
        assert_eq!((usage.input_tokens, usage.output_tokens), (8, 5), "{usage:?}");
        assert_eq!(usage.total_tokens, 13);
    }
}

#[tokio::test]
async fn tools_and_tool_calls_map_both_ways() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat_tool_calls.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("gpt", "Weather in Boston?");
    request.tools = vec![pb::Tool {
        name: "get_current_weather".into(),
        description: "Current weather".into(),
        parameters_json: r#"{"type":"object","properties":{"location":{"type":"string"}}}"#.into(),
        strict: Some(true),
        cache_control: None,
    }];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Required as i32)),
    });
    // A previous round of the conversation, with a call and its result.
    let mut assistant = message(pb::Role::Assistant, "");
    assistant.content.clear();
    assistant.tool_calls = vec![pb::ToolCall {
        id: "call_0".into(),
        name: "get_current_weather".into(),
        arguments_json: r#"{"location":"NYC"}"#.into(),
        signature: String::new(),
    }];
    let mut result = message(pb::Role::Tool, "72F");
    result.tool_call_id = "call_0".into();
    request.messages.extend([assistant, result]);

    let reply = gw.client.chat(request).await.unwrap().into_inner();
    let body = fake.only_request().body;
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_current_weather");
    assert_eq!(body["tools"][0]["function"]["strict"], true);
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["properties"]["location"]["type"],
        "string"
    );
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["messages"][1]["content"], serde_json::Value::Null);
    assert_eq!(
        body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        r#"{"location":"NYC"}"#
    );
    assert_eq!(
        body["messages"][2],
        serde_json::json!({"role": "tool", "content": "72F", "tool_call_id": "call_0"})
    );

    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let call = &reply.message.unwrap().tool_calls[0];
    assert_eq!(call.id, "call_abc123");
    assert_eq!(call.name, "get_current_weather");
    assert_eq!(call.arguments_json, "{\n\"location\": \"Boston, MA\"\n}");
}

#[tokio::test]
async fn stream_asks_for_usage_and_ends_at_done() {
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_text.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gpt", "hi")).await;
    assert!(out.error.is_none(), "{:?}", out.error);

    let body = fake.only_request().body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);

    assert_eq!(out.text(), "Hello, wörld ✓");
    let usage = out.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (9, 4, false));
    let finish = out.finish().unwrap();
    assert_eq!(finish.reason, pb::FinishReason::Length as i32);
    assert_eq!(finish.id, "chatcmpl-123");
    assert_eq!(finish.provider_model, "gpt-4o-mini");
}

#[tokio::test]
async fn streamed_tool_call_arguments_assemble_per_call() {
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_tool_calls.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gpt", "weather?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.tool_calls(),
        [
            ("call_paris".into(), "get_weather".into(), r#"{"location": "Paris"}"#.into()),
            ("call_rome".into(), "get_weather".into(), r#"{"location": "Rome"}"#.into()),
        ]
    );
    assert_eq!(out.finish().unwrap().reason, pb::FinishReason::ToolCalls as i32);
}

#[tokio::test]
async fn rate_limits_keep_the_message_and_the_retry_after() {
    let fake = FakeUpstream::start(vec![
        Reply::json(429, "openai/error_429.json").header("retry-after", "20"),
    ])
    .await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let status = gw.client.chat(user_request("gpt", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "UPSTREAM_RATE_LIMITED");
    assert!(status.message().contains("Rate limit reached for gpt-4o"), "{}", status.message());
    assert!(!status.message().contains(TEST_KEY));
    let details = status.get_error_details();
    assert_eq!(details.retry_info().unwrap().retry_delay, Some(Duration::from_secs(20)));
    assert_eq!(details.error_info().unwrap().metadata["upstream_status"], "429");

    // The same for a stream that fails before its first event.
    let out = stream_chat(&mut gw, user_request("gpt", "hi")).await;
    assert_eq!(out.error.unwrap().code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_say_what_went_wrong() {
    let cases = [
        (
            400,
            "openai/error_400.json",
            Code::InvalidArgument,
            "UPSTREAM_REJECTED",
            "Invalid value for 'temperature'",
        ),
        (
            401,
            "openai/error_401.json",
            Code::FailedPrecondition,
            "UPSTREAM_AUTH_FAILED",
            "Incorrect API key provided",
        ),
        (404, "openai/error_400.json", Code::NotFound, "UPSTREAM_MODEL_NOT_FOUND", "Invalid value"),
    ];
    for (http, fixture, code, why, text) in cases {
        let fake = FakeUpstream::start(vec![Reply::json(http, fixture)]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let status = gw.client.chat(user_request("gpt", "hi")).await.unwrap_err();
        assert_eq!(status.code(), code, "{http}: {status:?}");
        assert_eq!(reason(&status), why);
        assert!(status.message().contains(text), "{}", status.message());
        assert_eq!(fake.received().len(), 1, "{http} must not be retried");
    }
}

#[tokio::test]
async fn a_failing_target_fails_over_to_the_next_one() {
    let bad = FakeUpstream::start(vec![Reply {
        status: 502,
        headers: vec![],
        body: ReplyBody::Whole(fixture("openai/error_502.html")),
    }])
    .await;
    let good = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "providers:\n{}{}routes:\n  - name: gpt\n    targets: [{{provider: a, model: m1}}, {{provider: b, model: m2}}]\n",
        provider_yaml("a", "openai", &bad.url("/v1"), ""),
        provider_yaml("b", "openai_compatible", &good.url("/v1"), "")
    );
    let mut gw = gateway(&yaml, &[]).await;
    let reply = gw.client.chat(user_request("gpt", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "b");
    assert_eq!(bad.received().len(), 1);
    assert_eq!(good.only_request().body["model"], "m2");
}

#[tokio::test]
async fn malformed_json_is_unavailable_not_an_answer() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/malformed.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let status = gw.client.chat(user_request("gpt", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_INVALID_RESPONSE");
}

#[tokio::test]
async fn a_stream_without_done_or_with_a_broken_connection_is_cut() {
    for reply in
        [Reply::sse("openai/stream_cut.sse"), Reply::sse("openai/stream_cut.sse").then_break()]
    {
        let fake = FakeUpstream::start(vec![reply]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let out = stream_chat(&mut gw, user_request("gpt", "hi")).await;
        assert_eq!(out.text(), "Hello");
        assert!(out.finish().is_none());
        let status = out.error.expect("a cut stream must end with an error");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(reason(&status), "UPSTREAM_STREAM_CUT");
    }
}

#[tokio::test]
async fn an_error_inside_the_stream_ends_it_with_its_kind() {
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_error.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gpt", "hi")).await;
    assert_eq!(out.text(), "Hel");
    let status = out.error.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("Rate limit reached"), "{}", status.message());
}

#[tokio::test]
async fn a_field_the_api_lacks_is_invalid_argument_and_nothing_is_sent() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("gpt", "hi");
    request.generation = Some(pb::GenerationConfig { top_k: Some(3), ..Default::default() });
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "generation.top_k");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn presets_use_their_key_variable_and_passthrough_models() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "providers:\n  groq:\n    base_url: {}\n    disable_proxy: true\nroutes:\n  - name: fast\n    targets: [{{provider: groq, model: llama-3.3-70b-versatile}}]\n",
        fake.url("/openai/v1")
    );
    let mut gw = gateway(&yaml, &[("GROQ_API_KEY", "gsk_fake_groq_key")]).await;
    gw.client.chat(user_request("groq/llama-3.1-8b-instant", "hi")).await.unwrap();
    let got = fake.only_request();
    assert_eq!(got.uri, "/openai/v1/chat/completions");
    assert_eq!(got.header("authorization"), Some("Bearer gsk_fake_groq_key"));
    assert_eq!(got.body["model"], "llama-3.1-8b-instant");
}

#[tokio::test]
async fn keyless_servers_get_no_authorization_header() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "providers:\n  local:\n    kind: ollama\n    base_url: {}\n    disable_proxy: true\nroutes:\n  - name: llama\n    targets: [{{provider: local, model: llama3.2}}]\n",
        fake.url("/v1")
    );
    let mut gw = gateway(&yaml, &[]).await;
    gw.client.chat(user_request("llama", "hi")).await.unwrap();
    assert_eq!(fake.only_request().header("authorization"), None);
}

/// Over HTTP/1.1 each concurrent call holds its own upstream connection. With the default
/// pool those connections are kept when the calls end and reused by the next ones, not closed
/// and reopened per call (a pool smaller than the concurrency churns connections: with TLS
/// upstreams that is a handshake per call). With `pool_size: 32` this test sees 96
/// connections after the second wave.
#[tokio::test]
async fn concurrent_calls_reuse_pooled_upstream_connections() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use http_body_util::Full;
    use hyper::{body::Incoming, server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;

    const CONCURRENCY: usize = 64;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    // Every reply waits until CONCURRENCY requests are in flight, so each wave really holds
    // CONCURRENCY upstream connections at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENCY));
    let reply = bytes::Bytes::from(fixture("openai/chat.json"));
    let server = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let (barrier, reply) = (barrier.clone(), reply.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |_req: hyper::Request<Incoming>| {
                        let (barrier, reply) = (barrier.clone(), reply.clone());
                        async move {
                            barrier.wait().await;
                            let mut response = hyper::Response::new(Full::new(reply));
                            response.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        })
    };
    let yaml = format!(
        "providers:\n{}routes:\n  - name: gpt\n    targets: [{{provider: openai, model: gpt-4o}}]\n",
        provider_yaml("openai", "openai", &format!("http://{addr}/v1"), "")
    );
    let gw = gateway(&yaml, &[]).await;
    for wave in 0..2 {
        let calls: Vec<_> = (0..CONCURRENCY)
            .map(|i| {
                let mut client = gw.client.clone();
                tokio::spawn(async move { client.chat(user_request("gpt", &format!("{i}"))).await })
            })
            .collect();
        for call in calls {
            let reply = tokio::time::timeout(Duration::from_secs(20), call).await;
            reply.expect("a call hung").unwrap().unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), CONCURRENCY, "after wave {wave}");
        // The last replies' connections go back to the pool as their bodies end.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
}
