//! Reasoning through the gateway: the control reaches each provider in its own words (or is
//! refused by name where an API has none), reasoning comes back as its own parts and deltas,
//! never mixed into the answer, and signed reasoning goes back unchanged on the next turn, so
//! a two-turn tool call with reasoning works with Anthropic and Gemini. Fixtures follow the
//! providers' documented examples (Anthropic extended thinking, Gemini thought signatures,
//! DeepSeek's reasoning_content).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

fn route(kind: &str, fake: &FakeUpstream, base: &str, model: &str) -> String {
    format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}routes:\n  - name: m\n    targets: [{{provider: p, model: {model}}}]\n",
        provider_yaml("p", kind, &fake.url(base), "")
    )
}

fn reasoning(effort: pb::ReasoningEffort, budget: Option<i32>) -> Option<pb::GenerationConfig> {
    Some(pb::GenerationConfig {
        reasoning: Some(pb::ReasoningConfig { effort: effort as i32, budget_tokens: budget }),
        ..Default::default()
    })
}

fn weather_tool() -> pb::Tool {
    pb::Tool {
        name: "get_weather".into(),
        parameters_json: r#"{"type":"object","properties":{"location":{"type":"string"}}}"#.into(),
        ..Default::default()
    }
}

fn parts(message: &pb::Message) -> Vec<pb::content_part::Part> {
    message.content.iter().filter_map(|p| p.part.clone()).collect()
}

fn reasoning_of(part: &pb::content_part::Part) -> Option<&pb::Reasoning> {
    match part {
        pb::content_part::Part::Reasoning(r) => Some(r),
        _ => None,
    }
}

fn field(status: &tonic::Status) -> String {
    status.get_error_details().bad_request().unwrap().field_violations[0].field.clone()
}

#[tokio::test]
async fn anthropic_thinking_round_trips_through_a_two_turn_tool_call() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "anthropic/message_thinking_tool_use.json"),
        Reply::json(200, "anthropic/message_thinking_answer.json"),
    ])
    .await;
    let mut gw = gateway(&route("anthropic", &fake, "", "claude-sonnet-4-5"), &[]).await;
    let mut request = user_request("m", "What's the weather in Paris?");
    request.generation = reasoning(pb::ReasoningEffort::Unspecified, Some(2048));
    request.tools = vec![weather_tool()];
    let reply = gw.client.chat(request.clone()).await.unwrap().into_inner();

    let sent = &fake.received()[0].body;
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    // No max_tokens was given: the budget plus the provider's default (1024 when unset).
    assert!(sent["max_tokens"].as_u64().unwrap() > 2048, "{sent}");

    let assistant = reply.message.unwrap();
    let parts = parts(&assistant);
    let thought = reasoning_of(&parts[0]).expect("reasoning comes first");
    assert!(thought.text.starts_with("The user wants to know the current weather"));
    assert!(thought.signature.starts_with("BDaL4VrbR2Oj0hO4"));
    assert_eq!(
        parts[1],
        pb::content_part::Part::Text(
            "I can help you get the current weather information for Paris. Let me check that for you".into()
        ),
        "the answer text holds no reasoning"
    );
    assert_eq!(assistant.tool_calls[0].id, "toolu_01CswdEQBMshySk6Y9DFKrfq");
    let usage = reply.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (524, 141));

    // The second turn sends the assistant message back as it came, and the tool's result.
    let mut result = message(pb::Role::Tool, r#"{"temperature": 88}"#);
    result.tool_call_id = assistant.tool_calls[0].id.clone();
    request.messages.extend([assistant.clone(), result]);
    let reply = gw.client.chat(request).await.unwrap().into_inner();
    assert_eq!(
        common::text_of(reply.message.as_ref().unwrap()),
        "The current weather in Paris is 88°F and sunny."
    );
    let sent = &fake.received()[1].body;
    let turn = &sent["messages"][1];
    assert_eq!(turn["role"], "assistant");
    assert_eq!(turn["content"][0]["type"], "thinking");
    assert_eq!(turn["content"][0]["thinking"], thought.text.as_str());
    assert_eq!(turn["content"][0]["signature"], thought.signature.as_str());
    assert_eq!(turn["content"][2]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
}

#[tokio::test]
async fn redacted_thinking_comes_back_whole_and_goes_back_unchanged() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "anthropic/message_redacted_thinking.json"),
        Reply::json(200, "anthropic/message_thinking_answer.json"),
    ])
    .await;
    let mut gw = gateway(&route("anthropic", &fake, "", "claude-3-7-sonnet"), &[]).await;
    let mut request = user_request("m", "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING");
    request.generation = reasoning(pb::ReasoningEffort::High, None);
    let reply = gw.client.chat(request.clone()).await.unwrap().into_inner();
    // High effort is a 24,576-token budget on a provider that takes only budgets.
    assert_eq!(fake.received()[0].body["thinking"]["budget_tokens"], 24576);
    let assistant = reply.message.unwrap();
    let redacted = reasoning_of(&parts(&assistant)[0]).unwrap().clone();
    assert!(redacted.redacted_data.starts_with("EmwKAhgBEgy3va3pzix"));
    assert!(redacted.text.is_empty() && redacted.signature.is_empty());

    request.messages.extend([assistant, message(pb::Role::User, "And?")]);
    gw.client.chat(request).await.unwrap();
    let turn = &fake.received()[1].body["messages"][1];
    assert_eq!(
        turn["content"][0],
        json!({"type": "redacted_thinking", "data": redacted.redacted_data})
    );
}

#[tokio::test]
async fn anthropic_thinking_streams_as_reasoning_deltas_closed_by_their_signature() {
    let fake = FakeUpstream::start(vec![Reply::sse("anthropic/stream_thinking.sse")]).await;
    let mut gw = gateway(&route("anthropic", &fake, "", "claude-sonnet-4-5"), &[]).await;
    let mut request = user_request("m", "27 * 453?");
    request.generation = reasoning(pb::ReasoningEffort::Low, None);
    let out = stream_chat(&mut gw, request).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let deltas: Vec<&pb::ReasoningDelta> = out
        .events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ReasoningDelta(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(deltas.len(), 3);
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(
        text,
        "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
    );
    assert_eq!(deltas[2].signature, "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds");
    assert_eq!(out.text(), "27 * 453 = 12,231", "reasoning never mixes into the answer");
    // The reasoning came before the answer.
    let first = out
        .events
        .iter()
        .position(|e| matches!(e, pb::stream_chat_response::Event::ContentDelta(_)));
    let last = out
        .events
        .iter()
        .rposition(|e| matches!(e, pb::stream_chat_response::Event::ReasoningDelta(_)));
    assert!(last < first);
    assert_eq!(out.usage().unwrap().output_tokens, 312);
}

#[tokio::test]
async fn what_anthropic_thinking_cannot_be_combined_with_is_refused_by_name() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("anthropic", &fake, "", "claude-sonnet-4-5"), &[]).await;
    let cases: [(pb::GenerationConfig, &str); 3] = [
        (
            pb::GenerationConfig {
                temperature: Some(0.2),
                ..reasoning(pb::ReasoningEffort::Low, None).unwrap()
            },
            "generation.temperature",
        ),
        (
            pb::GenerationConfig {
                max_tokens: Some(2000),
                ..reasoning(pb::ReasoningEffort::Unspecified, Some(4096)).unwrap()
            },
            "generation.max_tokens",
        ),
        (
            pb::GenerationConfig {
                top_k: Some(5),
                ..reasoning(pb::ReasoningEffort::Medium, None).unwrap()
            },
            "generation.top_k",
        ),
    ];
    for (generation, expected) in cases {
        let mut request = user_request("m", "hi");
        request.generation = Some(generation);
        let status = gw.client.chat(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(field(&status), expected);
    }
    // A budget below Anthropic's floor is refused for every provider, before routing.
    let mut request = user_request("m", "hi");
    request.generation = reasoning(pb::ReasoningEffort::Unspecified, Some(100));
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(field(&status), "generation.reasoning.budget_tokens");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn gemini_thought_signatures_ride_on_the_tool_call_and_go_back_with_it() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "gemini/generate_thinking_function_call.json"),
        Reply::json(200, "gemini/generate.json"),
    ])
    .await;
    let mut gw = gateway(&route("gemini", &fake, "/v1beta", "gemini-2.5-flash"), &[]).await;
    let mut request = user_request("m", "Weather in Paris?");
    request.generation = reasoning(pb::ReasoningEffort::Medium, None);
    request.tools = vec![weather_tool()];
    let reply = gw.client.chat(request.clone()).await.unwrap().into_inner();
    assert_eq!(
        fake.received()[0].body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let assistant = reply.message.unwrap();
    let thought = reasoning_of(&parts(&assistant)[0]).unwrap().clone();
    assert!(thought.text.starts_with("**Checking the weather**"));
    let call = &assistant.tool_calls[0];
    assert_eq!(
        call.signature,
        "CiIBVKhc7oDPpCaXyJKKssjqr4g3JNOSgJ/M2V+1THC1icsWCmwBVKhc7pBABbJl+Az5X"
    );
    let usage = reply.usage.unwrap();
    assert_eq!((usage.reasoning_tokens, usage.output_tokens), (103, 118));

    let mut result = message(pb::Role::Tool, r#"{"temperature": 21}"#);
    result.tool_call_id = call.id.clone();
    request.messages.extend([assistant.clone(), result]);
    gw.client.chat(request).await.unwrap();
    let model_turn = &fake.received()[1].body["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(model_turn["parts"][0]["thought"], true);
    assert_eq!(model_turn["parts"][1]["functionCall"]["name"], "get_weather");
    assert_eq!(model_turn["parts"][1]["thoughtSignature"], call.signature.as_str());
}

#[tokio::test]
async fn a_gemini_stream_signs_the_thought_before_the_answer() {
    let fake = FakeUpstream::start(vec![Reply::sse("gemini/stream_thinking.sse")]).await;
    let mut gw = gateway(&route("gemini", &fake, "/v1beta", "gemini-2.5-pro"), &[]).await;
    let mut request = user_request("m", "27 * 453?");
    request.generation = reasoning(pb::ReasoningEffort::Unspecified, Some(2048));
    let out = stream_chat(&mut gw, request).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let deltas: Vec<pb::ReasoningDelta> = out
        .events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ReasoningDelta(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert!(deltas[0].text.starts_with("**Working it out**"));
    assert_eq!(
        deltas[1],
        pb::ReasoningDelta { signature: "EpsBCpgBAXLI2nwSigned".into(), ..Default::default() }
    );
    assert_eq!(out.text(), "27 × 453 = 12,231");
    assert_eq!(out.usage().unwrap().reasoning_tokens, 28);
}

#[tokio::test]
async fn reasoning_content_of_openai_compatible_servers_is_a_reasoning_part() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "deepseek/chat_reasoning_content.json"),
        Reply::sse("deepseek/stream_reasoning_content.sse"),
    ])
    .await;
    let mut gw = gateway(&route("deepseek", &fake, "/v1", "deepseek-reasoner"), &[]).await;
    let reply = gw.client.chat(user_request("m", "9.11 or 9.8?")).await.unwrap().into_inner();
    let message = reply.message.unwrap();
    let parts = parts(&message);
    assert_eq!(
        reasoning_of(&parts[0]).unwrap().text,
        "Okay, so I need to figure out whether 9.11 is greater than 9.8. Comparing the tenths: 1 is less than 8."
    );
    assert_eq!(common::text_of(&message), "9.11 is smaller than 9.8.");
    assert_eq!(reply.usage.unwrap().reasoning_tokens, 248);

    let out = stream_chat(&mut gw, user_request("m", "9.11 or 9.8?")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let reasoning: String = out
        .events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ReasoningDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "Okay, compare the tenths.");
    assert_eq!(out.text(), "9.11 is smaller.");
}

#[tokio::test]
async fn a_reasoning_control_goes_where_the_api_takes_one_and_is_refused_where_it_does_not() {
    // OpenAI: reasoning_effort; a budget alone becomes the nearest effort.
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat_reasoning.json"); 2]).await;
    let mut gw = gateway(&route("openai", &fake, "/v1", "o3"), &[]).await;
    let mut request = user_request("m", "hi");
    request.generation = reasoning(pb::ReasoningEffort::Minimal, None);
    gw.client.chat(request.clone()).await.unwrap();
    request.generation = reasoning(pb::ReasoningEffort::Unspecified, Some(4000));
    gw.client.chat(request).await.unwrap();
    let sent: Vec<_> =
        fake.received().into_iter().map(|r| r.body["reasoning_effort"].clone()).collect();
    assert_eq!(sent, [json!("minimal"), json!("medium")]);

    // DeepSeek and Mistral have no control: asking for one is refused, never dropped.
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("deepseek", &fake, "/v1", "deepseek-reasoner"), &[]).await;
    let mut request = user_request("m", "hi");
    request.generation = reasoning(pb::ReasoningEffort::High, None);
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "generation.reasoning");
    assert_eq!(reason(&status), "UNSUPPORTED_BY_PROVIDER");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn reasoning_parts_are_refused_outside_assistant_messages() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("openai", &fake, "/v1", "o3"), &[]).await;
    let mut request = user_request("m", "hi");
    request.messages[0].content.push(pb::ContentPart {
        part: Some(pb::content_part::Part::Reasoning(pb::Reasoning {
            text: "x".into(),
            ..Default::default()
        })),
        cache_control: None,
    });
    let status = gw.client.chat(request).await.unwrap_err();
    assert_eq!(field(&status), "messages[0].content");
}

#[tokio::test]
async fn echo_reasons_when_asked_so_clients_can_try_reasoning_without_a_provider() {
    let yaml = "providers: {e: {kind: echo}}\nroutes: [{name: e, targets: [{provider: e, model: echo}]}]\n";
    let mut gw = gateway(yaml, &[]).await;
    let mut request = user_request("e", "three little words");
    request.generation = reasoning(pb::ReasoningEffort::Low, None);
    let reply = gw.client.chat(request.clone()).await.unwrap().into_inner();
    let message = reply.message.unwrap();
    let thought = reasoning_of(&parts(&message)[0]).unwrap().clone();
    assert_eq!(
        (thought.text.as_str(), thought.signature.as_str()),
        ("Reasoning about 3 words.", "echo-3")
    );
    assert_eq!(common::text_of(&message), "three little words");
    let out = stream_chat(&mut gw, request).await;
    assert_eq!(out.text(), "three little words");
    assert_eq!(out.usage().unwrap().reasoning_tokens, 4);
}

#[tokio::test]
async fn deepseek_gets_a_tool_turns_reasoning_back_and_openai_gets_none() {
    let mut assistant = message(pb::Role::Assistant, "");
    assistant.content = vec![pb::ContentPart {
        part: Some(pb::content_part::Part::Reasoning(pb::Reasoning {
            text: "I should look the weather up.".into(),
            ..Default::default()
        })),
        cache_control: None,
    }];
    assistant.tool_calls = vec![pb::ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments_json: r#"{"location":"Paris"}"#.into(),
        signature: String::new(),
    }];
    let mut result = message(pb::Role::Tool, r#"{"temperature": 21}"#);
    result.tool_call_id = "call_1".into();
    let mut request = user_request("m", "Weather in Paris?");
    request.tools = vec![weather_tool()];
    request.messages.extend([assistant, result]);

    for (kind, reasoning_back) in [("deepseek", true), ("openai", false)] {
        let fake =
            FakeUpstream::start(vec![Reply::json(200, "deepseek/chat_reasoning_content.json")])
                .await;
        let mut gw = gateway(&route(kind, &fake, "/v1", "deepseek-reasoner"), &[]).await;
        gw.client.chat(request.clone()).await.unwrap();
        let turn = &fake.only_request().body["messages"][1];
        assert_eq!(
            turn["content"],
            serde_json::Value::Null,
            "{kind}: a turn of tool calls has no text"
        );
        assert_eq!(turn["tool_calls"][0]["id"], "call_1");
        let expected = if reasoning_back {
            json!("I should look the weather up.")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(turn["reasoning_content"], expected, "{kind}");
    }
}
