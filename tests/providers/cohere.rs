//! The Cohere adapter against a fake upstream replaying Cohere's documented v2 chat replies,
//! chat SSE streams and embed replies: what the fake received (path, bearer key, body), and
//! what the gateway made of the reply, the stream, a cut stream, errors and failover.

use crate::common::fake_upstream::*;
use ai_service::proto::v1::{self as pb, embed_service_client::EmbedServiceClient};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

fn config(fake: &FakeUpstream) -> String {
    format!(
        "providers:\n{}routing: {{max_retries: 0}}\nroutes:\n  - name: command\n    targets: [{{provider: cohere, model: command-a-03-2025}}]\n",
        provider_yaml("cohere", "cohere", &fake.url(""), "")
    )
}

fn weather_tool() -> pb::Tool {
    pb::Tool {
        name: "get_weather".into(),
        description: "Current weather".into(),
        parameters_json: r#"{"type":"object","properties":{"location":{"type":"string"}}}"#.into(),
        strict: None,
        cache_control: None,
    }
}

#[tokio::test]
async fn chat_sends_a_bearer_key_and_maps_roles_sampling_and_usage() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "cohere/chat.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("command", "Capital of France?");
    request.messages.insert(0, message(pb::Role::System, "Be brief."));
    request.generation = Some(pb::GenerationConfig {
        temperature: Some(0.3),
        top_p: Some(0.75),
        top_k: Some(40),
        max_tokens: Some(100),
        seed: Some(3),
        stop: vec!["END".into()],
        ..Default::default()
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let got = fake.only_request();
    assert_eq!((got.method.as_str(), got.uri.as_str()), ("POST", "/v2/chat"));
    assert_eq!(got.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(
        got.body,
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
            ],
            "temperature": 0.3, "p": 0.75, "k": 40, "max_tokens": 100, "seed": 3,
            "stop_sequences": ["END"],
        })
    );

    assert_eq!(reply.id, "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    assert_eq!(reply.provider_model, "command-a-03-2025");
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
    assert_eq!(crate::common::text_of(&reply.message.unwrap()), "The capital of France is Paris.");
    let usage = reply.usage.unwrap();
    // What Cohere bills, not the template-inflated token count.
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (17, 8, false));
}

#[tokio::test]
async fn tools_round_trip_with_ids_plans_and_results() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "cohere/chat_tool_call.json"),
        Reply::json(200, "cohere/chat.json"),
    ])
    .await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("command", "Weather in Toronto?");
    request.tools = vec![weather_tool()];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Required as i32)),
    });
    let reply = gw.client.chat(request.clone()).await.unwrap().into_inner();
    let first = fake.received()[0].body.clone();
    assert_eq!(
        first["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}])
    );
    assert_eq!(first["tool_choice"], "REQUIRED");
    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let assistant = reply.message.unwrap();
    let call = &assistant.tool_calls[0];
    assert_eq!(
        (call.id.as_str(), call.name.as_str(), call.arguments_json.as_str()),
        ("get_weather_1byjy32y4hvq", "get_weather", r#"{"location":"Toronto"}"#)
    );
    // The plan is the model's reasoning before the call.
    assert!(matches!(
        &assistant.content[0].part,
        Some(pb::content_part::Part::Reasoning(r)) if r.text == "I will look up the weather in Toronto."
    ));

    // The next turn carries the call and its result back.
    let mut result = message(pb::Role::Tool, r#"{"temperature": "-3C"}"#);
    result.tool_call_id = call.id.clone();
    request.messages.extend([assistant, result]);
    request.tool_choice = None;
    gw.client.chat(request).await.unwrap();
    let second = fake.received()[1].body.clone();
    let roles: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);
    assert_eq!(
        second["messages"][1],
        json!({"role": "assistant", "tool_plan": "I will look up the weather in Toronto.",
               "tool_calls": [{"id": "get_weather_1byjy32y4hvq", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}]})
    );
    assert_eq!(
        second["messages"][2],
        json!({"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq",
               "content": [{"type": "text", "text": "{\"temperature\": \"-3C\"}"}]})
    );
    let headers: Vec<_> =
        fake.received().iter().map(|r| r.header("authorization").map(str::to_owned)).collect();
    assert!(headers.iter().all(|h| h.as_deref() == Some(&*format!("Bearer {TEST_KEY}"))));
}

#[tokio::test]
async fn text_documents_become_cohere_documents_and_the_cited_answer_comes_back_whole() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "cohere/chat_citations.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("command", "Which penguins are tallest?");
    request.messages[0].content.push(pb::ContentPart {
        part: Some(pb::content_part::Part::Document(pb::Document {
            source: Some(pb::document::Source::Data(b"Emperor penguins are the tallest.".to_vec())),
            mime_type: "text/plain".into(),
            title: "Tall penguins".into(),
        })),
        cache_control: None,
    });
    let reply = gw.client.chat(request).await.unwrap().into_inner();
    let body = fake.only_request().body;
    assert_eq!(
        body["documents"],
        json!([{"id": "doc_0", "data": {"title": "Tall penguins", "text": "Emperor penguins are the tallest."}}])
    );
    assert_eq!(
        crate::common::text_of(&reply.message.unwrap()),
        "The tallest penguins are Emperor penguins, which only live in Antarctica."
    );
}

#[tokio::test]
async fn stream_relays_text_until_message_end() {
    let fake = FakeUpstream::start(vec![Reply::sse("cohere/stream.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("command", "Tallest penguins?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let got = fake.only_request();
    assert_eq!(got.uri, "/v2/chat");
    assert_eq!(got.body["stream"], true);
    assert_eq!(out.text(), "Emperor penguins are the tallest — ünïcödé.");
    let usage = out.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (3, 9, false));
    let finish = out.finish().unwrap();
    assert_eq!(finish.reason, pb::FinishReason::Stop as i32);
    assert_eq!(finish.id, "29f14a5a-11de-4cae-9800-25e4747408ea");
}

#[tokio::test]
async fn a_streamed_tool_call_assembles_from_its_deltas() {
    let fake = FakeUpstream::start(vec![Reply::sse("cohere/stream_tool_call.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("command", "Weather in Toronto?");
    request.tools = vec![weather_tool()];
    let out = stream_chat(&mut gw, request).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.tool_calls(),
        [(
            "get_weather_nsz5zm3w56q3".into(),
            "get_weather".into(),
            r#"{"location":"Toronto"}"#.into()
        )]
    );
    let plan: String = out
        .events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ReasoningDelta(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(plan, "I will look up the weather in Toronto.");
    assert_eq!(out.text(), "");
    assert_eq!(out.finish().unwrap().reason, pb::FinishReason::ToolCalls as i32);
}

#[tokio::test]
async fn a_stream_without_message_end_is_cut_not_finished() {
    for reply in
        [Reply::sse("cohere/stream_cut.sse"), Reply::sse("cohere/stream_cut.sse").then_break()]
    {
        let fake = FakeUpstream::start(vec![reply]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let out = stream_chat(&mut gw, user_request("command", "Tallest penguins?")).await;
        assert_eq!(out.text(), "Emperor");
        assert!(out.finish().is_none());
        let status = out.error.expect("a cut stream must end with an error");
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::Unavailable, "UPSTREAM_STREAM_CUT")
        );
    }
}

#[tokio::test]
async fn a_stream_that_ends_with_finish_reason_error_fails_instead_of_finishing() {
    let fake = FakeUpstream::start(vec![Reply::sse("cohere/stream_error.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("command", "Tallest penguins?")).await;
    assert_eq!(out.text(), "Emperor");
    assert!(out.finish().is_none());
    let status = out.error.expect("a failed generation must end with an error");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "UPSTREAM_SERVER_ERROR")
    );
    assert!(status.message().contains("ERROR"), "{}", status.message());
}

#[tokio::test]
async fn errors_map_by_status_and_keep_cohere_s_message() {
    let cases = [
        (
            400,
            "cohere/error_400.json",
            Code::InvalidArgument,
            "UPSTREAM_REJECTED",
            "at least 1 token",
        ),
        (
            429,
            "cohere/error_429.json",
            Code::ResourceExhausted,
            "UPSTREAM_RATE_LIMITED",
            "Trial key",
        ),
        (498, "cohere/error_400.json", Code::FailedPrecondition, "UPSTREAM_AUTH_FAILED", "invalid"),
        (503, "cohere/error_503.json", Code::Unavailable, "UPSTREAM_SERVER_ERROR", "unavailable"),
    ];
    for (http, fixture, code, why, text) in cases {
        let fake =
            FakeUpstream::start(vec![Reply::json(http, fixture).header("retry-after", "12")]).await;
        let mut gw = gateway(&config(&fake), &[]).await;
        let status = gw.client.chat(user_request("command", "hi")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, why), "{http}");
        assert!(status.message().contains(text), "{http}: {}", status.message());
        assert!(!status.message().contains(TEST_KEY));
        if http == 429 {
            let delay = status.get_error_details().retry_info().unwrap().retry_delay;
            assert_eq!(delay, Some(std::time::Duration::from_secs(12)));
        }
    }
}

#[tokio::test]
async fn a_rate_limited_cohere_target_fails_over_to_the_next() {
    let limited = FakeUpstream::start(vec![
        Reply::json(429, "cohere/error_429.json").header("retry-after", "5"),
    ])
    .await;
    let good = FakeUpstream::start(vec![Reply::json(200, "cohere/chat.json")]).await;
    let yaml = format!(
        "providers:\n{}{}routes:\n  - name: command\n    targets: [{{provider: a, model: command-a-03-2025}}, {{provider: b, model: command-r-08-2024}}]\n",
        provider_yaml("a", "cohere", &limited.url(""), ""),
        provider_yaml("b", "cohere", &good.url(""), "")
    );
    let mut gw = gateway(&yaml, &[]).await;
    let reply = gw.client.chat(user_request("command", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "b");
    assert_eq!(limited.received().len(), 1);
    assert_eq!(good.only_request().body["model"], "command-r-08-2024");
}

#[tokio::test]
async fn a_named_tool_choice_is_refused_before_sending() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "cohere/chat.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let mut request = user_request("command", "Weather?");
    request.tools = vec![weather_tool()];
    request.tool_choice = Some(pb::ToolChoice {
        choice: Some(pb::tool_choice::Choice::ToolName("get_weather".into())),
    });
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "UNSUPPORTED_BY_PROVIDER")
    );
    let details = status.get_error_details();
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "tool_choice");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn embed_sends_texts_as_search_documents_and_reads_floats_and_billed_units() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "cohere/embed.json")]).await;
    let yaml = format!(
        "providers:\n{}routes:\n  - name: embed\n    targets: [{{provider: cohere, model: embed-v4.0}}]\n",
        provider_yaml("cohere", "cohere", &fake.url(""), "")
    );
    let gw = gateway(&yaml, &[]).await;
    let mut client = EmbedServiceClient::connect(format!("http://{}", gw.addr)).await.unwrap();
    let request = pb::EmbedRequest {
        model: "embed".into(),
        inputs: vec!["hello".into(), "goodbye".into()],
        dimensions: Some(256),
        ..Default::default()
    };
    let reply = client.embed(request).await.unwrap().into_inner();
    let got = fake.only_request();
    assert_eq!(got.uri, "/v2/embed");
    assert_eq!(got.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(
        got.body,
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_document",
               "embedding_types": ["float"], "truncate": "NONE", "output_dimension": 256})
    );
    let vectors: Vec<Vec<f32>> = reply.embeddings.iter().map(|e| e.values.clone()).collect();
    assert_eq!(
        vectors,
        [
            vec![0.016_296_387, -0.008_354_187, -0.046_997_07],
            vec![-0.024_017_334, 0.010_742_187_5, 0.004_241_943_4]
        ]
    );
    let usage = reply.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.estimated), (2, false));
}
