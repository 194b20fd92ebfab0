//! The Anthropic-compatible `POST /v1/messages` against a real gateway on 127.0.0.1 and fake
//! upstreams of both dialects: unary answers and the exact SSE event sequence of a stream,
//! system prompts, tools both ways (tool_use answers from an Anthropic and an OpenAI upstream,
//! tool results reaching the upstream), images, Anthropic's error types and statuses, a stream
//! that breaks, bad input, and the same record and metric series as a gRPC call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::{collections::HashMap, time::Duration};

use crate::common::{
    TestServer,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml},
    http_get, start_admin,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway from `yaml`, with the fake upstreams' key in its environment.
async fn start(yaml: &str) -> TestServer {
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(common::quiet_audit(yaml));
    TestServer::start_with(ai_service::Config::from_yaml(yaml, env).unwrap()).await
}

/// A gateway with route `claude` on an Anthropic fake and route `gpt` on an OpenAI fake.
async fn start_two(claude: &FakeUpstream, gpt: &FakeUpstream) -> TestServer {
    let yaml = format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}{}routes:\n  - name: claude\n    targets: [{{provider: anthropic, model: claude-up}}]\n  - name: gpt\n    targets: [{{provider: openai, model: gpt-up}}]\n",
        provider_yaml("anthropic", "anthropic", &claude.url(""), ""),
        provider_yaml("openai", "openai", &gpt.url("/v1"), ""),
    );
    start(&yaml).await
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// What came back: status, headers and the body as JSON.
struct Answered {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answered {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error's type, and its gateway reason.
    fn error(&self) -> (&str, &str) {
        assert_eq!(self.body["type"], "error", "{}", self.body);
        (
            self.body["error"]["type"].as_str().unwrap(),
            self.body["error"]["details"]["error_code"]
                .as_str()
                .unwrap_or_else(|| panic!("{}", self.body)),
        )
    }
}

/// Posts `body` with `headers`: the status, the headers and the whole body's text.
async fn send(
    server: &TestServer,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().post(format!("http://{}/v1/messages", server.addr)).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn post_with(server: &TestServer, body: &Value, headers: &[(&str, &str)]) -> Answered {
    let (status, headers, text) = send(server, body, headers).await;
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answered { status, headers, body }
}

async fn post(server: &TestServer, body: &Value) -> Answered {
    post_with(server, body, &[]).await
}

/// A streamed answer: status, headers and its events as (name, data).
struct Streamed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    events: Vec<(String, Value)>,
}

impl Streamed {
    fn names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn text(&self) -> String {
        self.events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "text_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect()
    }

    /// The input JSON of the tool_use block at `index`, assembled from its deltas.
    fn tool_input(&self, index: u64) -> Value {
        let json: String = self
            .events
            .iter()
            .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        serde_json::from_str(&json).unwrap()
    }
}

async fn stream_with(server: &TestServer, body: &Value, headers: &[(&str, &str)]) -> Streamed {
    let mut body = body.clone();
    body["stream"] = json!(true);
    // A stream that breaks still ends its body cleanly: its error is an event.
    let (status, headers, text) = send(server, &body, headers).await;
    if status != 200 {
        let body: Value = serde_json::from_str(&text).unwrap();
        return Streamed { status, headers, events: vec![("(not a stream)".into(), body)] };
    }
    Streamed { status, headers, events: sse(&text) }
}

async fn stream(server: &TestServer, body: &Value) -> Streamed {
    stream_with(server, body, &[]).await
}

/// Server-sent events: every event has a name and JSON data whose type is that name.
fn sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            let (name, data) = (name.unwrap(), data.unwrap());
            assert_eq!(data["type"], name.as_str(), "{event}");
            (name, data)
        })
        .collect()
}

fn hello(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn a_unary_call_answers_with_a_message() {
    let server = start("").await;
    let answer =
        post_with(&server, &hello("echo", "hello there"), &[("x-request-id", "req-a1")]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "echo");
    assert_eq!(body["content"], json!([{"type": "text", "text": "hello there"}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 2, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(answer.header("request-id"), Some("req-a1"));
    assert_eq!(answer.header("x-request-id"), Some("req-a1"));
    assert!(answer.header("content-type").unwrap().starts_with("application/json"));

    let mut cut = hello("echo", "one two three");
    cut["max_tokens"] = json!(1);
    let answer = post(&server, &cut).await;
    assert_eq!(answer.body["stop_reason"], "max_tokens");
    assert_eq!(answer.body["content"][0]["text"], "one ");
}

#[tokio::test]
async fn a_stream_is_anthropics_event_sequence() {
    let server = start("").await;
    let streamed =
        stream_with(&server, &hello("echo", "a b c"), &[("x-request-id", "req-s1")]).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.headers["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(streamed.headers["request-id"], "req-s1");
    assert_eq!(
        streamed.names(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &streamed.events[0].1["message"];
    assert_eq!(start["id"], "msg_req-s1");
    assert_eq!(start["model"], "echo");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert_eq!(
        streamed.events[1].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(streamed.text(), "a b c");
    assert!(streamed.events[2..5].iter().all(|(_, d)| d["index"] == 0));
    assert_eq!(streamed.events[5].1, json!({"type": "content_block_stop", "index": 0}));
    let delta = &streamed.events[6].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(delta["usage"]["output_tokens"], 3);
    assert_eq!(delta["usage"]["input_tokens"], 3);
}

#[tokio::test]
async fn h2c_serves_the_same_stream() {
    let server = start("").await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h2 = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let mut body = hello("echo", "over h2c");
    body["stream"] = json!(true);
    let response =
        h2.post(format!("http://{}/v1/messages", server.addr)).json(&body).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let events = sse(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn an_alias_is_answered_in_its_routes_name() {
    let server = start(
        "providers: {e: {kind: echo}}\nroutes: [{name: main, aliases: [latest], targets: [{provider: e, model: echo}]}]\n",
    )
    .await;
    assert_eq!(post(&server, &hello("latest", "x")).await.body["model"], "main");
    let streamed = stream(&server, &hello("latest", "x")).await;
    assert_eq!(streamed.events[0].1["message"]["model"], "main");
}

#[tokio::test]
async fn the_system_prompt_sampling_and_metadata_translate() {
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let gpt = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start_two(&claude, &gpt).await;
    let request = |model: &str| {
        json!({
            "model": model, "max_tokens": 300,
            "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"],
            "metadata": {"user_id": "user-7"},
        })
    };
    let mut with_top_k = request("claude");
    with_top_k["top_k"] = json!(40);
    let answer = post(&server, &with_top_k).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = claude.only_request().body;
    assert_eq!(sent["model"], "claude-up");
    assert_eq!(sent["system"], "be brief\n\nbe kind");
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(
        (&sent["temperature"], &sent["top_p"], &sent["top_k"]),
        (&json!(0.5), &json!(0.9), &json!(40))
    );
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    );
    assert_eq!(sent.get("metadata"), None, "caller metadata stays in the gateway");
    // The usage comes back as the upstream reported it (the fixture's own figures: input
    // apart from cache reads and writes); the model is the route's name.
    assert_eq!(answer.body["model"], "claude");
    assert_eq!(
        answer.body["usage"],
        json!({"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 100,
               "cache_read_input_tokens": 2000})
    );
    assert_eq!(answer.body["content"][0]["text"], "Hi! My name is Claude.");

    // The same request answered by an OpenAI upstream.
    let answer = post(&server, &request("gpt")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = gpt.only_request().body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "Hello"},
        ])
    );
    assert_eq!(sent["max_completion_tokens"], 300);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(answer.body["model"], "gpt");
    assert_eq!(answer.body["type"], "message");
}

fn weather_request(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 500,
        "messages": [{"role": "user", "content": "Weather in San Francisco?"}],
        "tools": [{"name": "get_weather", "description": "Current weather",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"},
    })
}

#[tokio::test]
async fn tool_use_from_an_anthropic_upstream_reaches_the_caller_as_blocks() {
    let claude = FakeUpstream::start(vec![
        Reply::json(200, "anthropic/message_tool_use.json"),
        Reply::sse("anthropic/stream_tool_use.sse"),
    ])
    .await;
    let gpt = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start_two(&claude, &gpt).await;

    let answer = post(&server, &weather_request("claude")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["content"],
        json!([
            {"type": "text", "text": "I'll check the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}},
        ])
    );
    assert_eq!(answer.body["stop_reason"], "tool_use");
    let sent = &claude.received()[0].body;
    assert_eq!(sent["tools"][0]["input_schema"]["properties"]["location"]["type"], "string");
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));

    let streamed = stream(&server, &weather_request("claude")).await;
    assert_eq!(
        streamed.names(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &streamed.events[4].1;
    assert_eq!(start["index"], 1);
    assert_eq!(
        start["content_block"],
        json!({"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        streamed.tool_input(1),
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    assert_eq!(streamed.events[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(streamed.events[9].1["usage"]["output_tokens"], 89);
}

#[tokio::test]
async fn tool_calls_from_an_openai_upstream_reach_the_caller_as_tool_use_blocks() {
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let gpt = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_tool_calls.json"),
        Reply::sse("openai/stream_tool_calls.sse"),
    ])
    .await;
    let server = start_two(&claude, &gpt).await;

    let answer = post(&server, &weather_request("gpt")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["content"],
        json!([{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                "input": {"location": "Boston, MA"}}])
    );
    assert_eq!(answer.body["stop_reason"], "tool_use");
    let sent = &gpt.received()[0].body;
    assert_eq!(sent["tools"][0]["type"], "function");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");

    // Two parallel calls: two tool_use blocks, each with its own input_json_delta pieces.
    let streamed = stream(&server, &weather_request("gpt")).await;
    assert_eq!(
        streamed.names(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(streamed.events[1].1["content_block"]["id"], "call_paris");
    assert_eq!(streamed.events[5].1["content_block"]["id"], "call_rome");
    assert_eq!(streamed.tool_input(0), json!({"location": "Paris"}));
    assert_eq!(streamed.tool_input(1), json!({"location": "Rome"}));
    let delta = &streamed.events[8].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"],
        // The upstream's gpt-4o at $2.50 in and $10 out per million: 60×2.50 + 30×10 = $0.00045.
        json!({"input_tokens": 60, "output_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "cost_usd": 0.00045})
    );
}

/// A conversation that called a tool and brings back its result.
fn tool_result_turn(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                 "content": [{"type": "text", "text": "station offline"}]},
                {"type": "text", "text": "Summarise."},
            ]},
        ],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    })
}

#[tokio::test]
async fn a_tool_result_turn_reaches_either_upstream() {
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let gpt = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start_two(&claude, &gpt).await;

    assert_eq!(post(&server, &tool_result_turn("gpt")).await.status, 200);
    let sent = gpt.only_request().body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "{sent}");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Checking.");
    assert_eq!(messages[1]["tool_calls"][1]["id"], "toolu_2");
    assert_eq!(messages[1]["tool_calls"][1]["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(
        messages[1]["tool_calls"][0]["function"]["arguments"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(arguments, json!({"location": "Paris"}));
    assert_eq!(
        (&messages[2]["role"], &messages[2]["tool_call_id"]),
        (&json!("tool"), &json!("toolu_1"))
    );
    assert_eq!(messages[2]["content"], "18C");
    assert_eq!(messages[3]["tool_call_id"], "toolu_2");
    assert_eq!(messages[3]["content"], "Error: station offline");
    assert_eq!(messages[4], json!({"role": "user", "content": "Summarise."}));

    assert_eq!(post(&server, &tool_result_turn("claude")).await.status, 200);
    let sent = claude.only_request().body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    assert_eq!(
        messages[1]["content"][1],
        json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}})
    );
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_1");
    assert_eq!(results[1]["tool_use_id"], "toolu_2");
    assert_eq!(results[2], json!({"type": "text", "text": "Summarise."}));
}

#[tokio::test]
async fn images_reach_the_upstream() {
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let gpt = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start_two(&claude, &gpt).await;
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "What are these?"},
        ]}]})
    };
    assert_eq!(post(&server, &request("claude")).await.status, 200);
    let content = &claude.only_request().body["messages"][0]["content"];
    assert_eq!(
        content[0]["source"],
        json!({"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"})
    );
    assert_eq!(content[1]["source"], json!({"type": "url", "url": "https://example.com/cat.png"}));
    assert_eq!(post(&server, &request("gpt")).await.status, 200);
    let content = &gpt.only_request().body["messages"][0]["content"];
    assert_eq!(content[0]["image_url"]["url"], "data:image/gif;base64,R0lGODlh");
    assert_eq!(content[1]["image_url"]["url"], "https://example.com/cat.png");
}

#[tokio::test]
async fn upstream_failures_get_anthropics_types_and_statuses() {
    let limited = FakeUpstream::start(vec![
        Reply::json(429, "anthropic/error_429.json").header("retry-after", "7"),
    ])
    .await;
    let overloaded = FakeUpstream::start(vec![Reply::json(529, "anthropic/error_529.json")]).await;
    let server = start_two(&limited, &overloaded).await;

    let answer = post(&server, &hello("claude", "x")).await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(answer.error(), ("rate_limit_error", "UPSTREAM_RATE_LIMITED"));
    let wait: u64 = answer
        .header("retry-after")
        .unwrap_or_else(|| panic!("{:?} {}", answer.headers, answer.body))
        .parse()
        .unwrap();
    assert!((1..=7).contains(&wait), "{wait}");
    assert!(answer.header("request-id").is_some());
    assert_eq!(answer.body["request_id"], answer.header("request-id").unwrap());

    // An overloaded upstream, whatever its dialect, is Anthropic's 529.
    let answer = post(&server, &hello("gpt", "x")).await;
    assert_eq!(answer.status, 529, "{}", answer.body);
    assert_eq!(answer.error(), ("overloaded_error", "UPSTREAM_OVERLOADED"));

    // A failure before the stream's first event is an HTTP error too.
    let streamed = stream(&server, &hello("gpt", "x")).await;
    assert_eq!(streamed.status, 529);
    assert_eq!(streamed.events[0].1["error"]["type"], "overloaded_error");

    let answer = post(&server, &hello("nope", "x")).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error(), ("not_found_error", "MODEL_NOT_FOUND"));
}

#[tokio::test]
async fn a_gateway_at_capacity_is_overloaded() {
    let server = start(
        "server: {max_in_flight: 1}\nproviders: {slow: {kind: echo, chunk_delay: 300ms}}\nroutes: [{name: slow, targets: [{provider: slow, model: echo}]}]\n",
    )
    .await;
    let mut body = hello("slow", "one two three four");
    body["stream"] = json!(true);
    let held = client()
        .post(format!("http://{}/v1/messages", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let answer = post(&server, &hello("slow", "x")).await;
    assert_eq!(answer.status, 529, "{}", answer.body);
    assert_eq!(answer.error(), ("overloaded_error", "OVERLOADED"));
    assert_eq!(answer.header("retry-after"), Some("1"));
    drop(held);
}

#[tokio::test]
async fn keys_and_routes_are_checked() {
    let key = "ais_anthropic_door_key_0123456789";
    let yaml = format!(
        "auth:\n  keys: [{{id: a, sha256: {}, routes: [echo]}}]\nproviders: {{e: {{kind: echo}}}}\nroutes: [{{name: echo, targets: [{{provider: e, model: x}}]}}, {{name: other, targets: [{{provider: e, model: y}}]}}]\n",
        ai_service::auth::hex(&Sha256::digest(key.as_bytes()))
    );
    let server = start(&yaml).await;
    let answer = post(&server, &hello("echo", "x")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.error(), ("authentication_error", "UNAUTHENTICATED"));
    let answer = post_with(&server, &hello("echo", "x"), &[("x-api-key", "wrong")]).await;
    assert_eq!(answer.status, 401);
    let answer = post_with(&server, &hello("echo", "x"), &[("x-api-key", key)]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let bearer = format!("Bearer {key}");
    let answer = post_with(&server, &hello("echo", "x"), &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, 200);
    let answer = post_with(&server, &hello("other", "x"), &[("x-api-key", key)]).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.error(), ("permission_error", "ROUTE_NOT_ALLOWED"));
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let cut = FakeUpstream::start(vec![Reply::sse("anthropic/stream_cut.sse").then_break()]).await;
    let failing = FakeUpstream::start(vec![Reply::sse("anthropic/stream_error.sse")]).await;
    let yaml = format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}{}routes:\n  - name: cut\n    targets: [{{provider: cut, model: c}}]\n  - name: failing\n    targets: [{{provider: failing, model: f}}]\n",
        provider_yaml("cut", "anthropic", &cut.url(""), ""),
        provider_yaml("failing", "anthropic", &failing.url(""), ""),
    );
    let server = start(&yaml).await;

    let streamed = stream(&server, &hello("cut", "x")).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(
        streamed.names(),
        ["message_start", "content_block_start", "content_block_delta", "error"]
    );
    assert_eq!(streamed.text(), "Hello");
    let error = &streamed.events[3].1["error"];
    assert_eq!(error["type"], "api_error");
    assert_eq!(error["details"]["error_code"], "UPSTREAM_STREAM_CUT");

    // The upstream's own error event, mid-stream.
    let streamed = stream(&server, &hello("failing", "x")).await;
    assert_eq!(streamed.names().last(), Some(&"error"));
    assert_eq!(streamed.events.last().unwrap().1["error"]["type"], "overloaded_error");
    assert!(!streamed.names().contains(&"message_stop"));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let server = start("server: {max_request_bytes: 4096}\n").await;
    let refused = |answer: &Answered| {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body["error"]["type"], "invalid_request_error");
        answer.body["error"]["message"].as_str().unwrap().to_owned()
    };
    let cases = [
        (
            json!({"model": "echo", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "echo", "max_tokens": "many", "messages": []}),
            "max_tokens: invalid type",
        ),
        (
            json!({"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "top_q": 1}),
            "top_q: Extra inputs are not permitted",
        ),
        (
            json!({"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1d"}}]}]}),
            "messages[0].content[0].cache_control.ttl: unknown TTL \"1d\"",
        ),
        (
            json!({"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": 500}}),
            "thinking.budget_tokens: must be at least 1024",
        ),
        (
            json!({"model": "echo", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role: unknown variant `system`",
        ),
        (
            json!({"model": "echo", "max_tokens": 5, "messages": []}),
            "messages: at least one message",
        ),
    ];
    for (body, expected) in cases {
        let message = refused(&post(&server, &body).await);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let beta =
        post_with(&server, &hello("echo", "x"), &[("anthropic-beta", "context-1m-2025-08-07")])
            .await;
    assert!(refused(&beta).contains("anthropic-beta"));
    // The version header is not required, and any date is accepted.
    let dated =
        post_with(&server, &hello("echo", "x"), &[("anthropic-version", "2099-01-01")]).await;
    assert_eq!(dated.status, 200);

    // Not JSON at all.
    let response = client()
        .post(format!("http://{}/v1/messages", server.addr))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["error_code"], "MALFORMED_REQUEST");

    // Over server.max_request_bytes.
    let answer = post(&server, &hello("echo", &"x".repeat(8192))).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.error(), ("request_too_large", "REQUEST_TOO_LARGE"));

    // Only POST.
    let (status, _) = http_get(server.addr, "/v1/messages").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_body_that_never_arrives_is_a_timeout_not_a_hang() {
    let server = start("server: {http: {body_timeout: 200ms}}\n").await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":";
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&raw).contains("\"request_id\"") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer: {}", String::from_utf8_lossy(&raw));
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains("\"timeout_error\""), "{raw}");
}

#[tokio::test]
async fn this_door_and_grpc_leave_the_same_records_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "audit: {{sink: {}}}\nproviders: {{e: {{kind: echo}}}}\nroutes: [{{name: echo, targets: [{{provider: e, model: echo-1}}]}}]\n",
        audit.display()
    );
    let server = start(&yaml).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    let mut request = tonic::Request::new(common::chat("echo", "same words"));
    request.metadata_mut().insert("x-request-id", "rec-grpc".parse().unwrap());
    grpc.chat(request).await.unwrap();
    let mut body = hello("echo", "same words");
    body["metadata"] = json!({"user_id": "user-9"});
    assert_eq!(post_with(&server, &body, &[("x-request-id", "rec-http")]).await.status, 200);
    let streamed = stream_with(&server, &body, &[("x-request-id", "rec-http-stream")]).await;
    assert_eq!(streamed.names().last(), Some(&"message_stop"));
    let mut invalid = hello("echo", "x");
    invalid["max_tokens"] = json!(0);
    assert_eq!(
        post_with(&server, &invalid, &[("x-request-id", "rec-http-invalid")]).await.status,
        400
    );

    let (status, scrape) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();

    let records: HashMap<String, Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["request_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(records.len(), 4, "{records:#?}");
    let (grpc, http) = (&records["rec-grpc"], &records["rec-http"]);
    assert_eq!((&grpc["front_door"], &http["front_door"]), (&json!("grpc"), &json!("anthropic")));
    for field in [
        "method",
        "model",
        "route",
        "provider",
        "provider_model",
        "endpoint",
        "attempts",
        "message_count",
        "input_tokens",
        "output_tokens",
        "code",
    ] {
        assert_eq!(grpc[field], http[field], "{field}: {grpc} vs {http}");
    }
    assert_eq!(http["code"], "OK");
    assert_eq!(http["metadata"]["user_id"], "user-9");
    let stream = &records["rec-http-stream"];
    assert_eq!((&stream["method"], &stream["code"]), (&json!("StreamChat"), &json!("OK")));
    let invalid = &records["rec-http-invalid"];
    assert_eq!((&invalid["code"], &invalid["model"]), (&json!("INVALID_ARGUMENT"), &json!("echo")));

    let series = |door: &str, method: &str, code: &str| {
        let route = if code == "OK" { ("echo", "e") } else { ("none", "none") };
        let name = format!(
            "ai_service_requests_total{{front_door=\"{door}\",method=\"{method}\",route=\"{}\",provider=\"{}\",code=\"{code}\"}} 1",
            route.0, route.1
        );
        assert!(scrape.lines().any(|l| l == name), "no {name} in:\n{scrape}");
    };
    series("grpc", "Chat", "OK");
    series("anthropic", "Chat", "OK");
    series("anthropic", "StreamChat", "OK");
    series("anthropic", "Chat", "INVALID_ARGUMENT");
}
