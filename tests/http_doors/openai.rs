//! The OpenAI-compatible `POST /v1/chat/completions` on the gRPC port, over HTTP/1.1 and h2c:
//! answers and streams in OpenAI's shape from echo and from fake OpenAI and Anthropic
//! upstreams (what each upstream received is checked), every error with its HTTP status,
//! type, code and param, a stream cut mid-way, hostile bodies, and the audit record and metric
//! series of the same call through this door and through gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::time::Duration;

use crate::common::{
    TestServer,
    fake_upstream::{FakeUpstream, Reply, ReplyBody, TEST_KEY, provider_yaml},
    http_get, start_admin,
};
use ai_service::{Config, proto::v1 as pb};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway from `yaml`, with the test key in its environment for the fake upstreams.
async fn start(yaml: &str) -> TestServer {
    let env = [("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    let env = env.into_iter().chain(common::quiet_audit(yaml)).collect::<Vec<_>>();
    TestServer::start_with(Config::from_yaml(yaml, env).unwrap()).await
}

/// A config with one route `r` to `provider` of `kind` at `fake`, no retries.
fn one_route(kind: &str, fake: &FakeUpstream) -> String {
    let base = if kind == "openai" { fake.url("/v1") } else { fake.url("") };
    let extra = if kind == "anthropic" { "    default_max_tokens: 1024\n" } else { "" };
    format!(
        "providers:\n{}routing: {{max_retries: 0}}\nroutes:\n  - name: r\n    targets: [{{provider: up, model: m}}]\n",
        provider_yaml("up", kind, &base, extra)
    )
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().http1_only().build().unwrap()
}

/// What a POST came back with.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of an event stream, in order.
    fn events(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    /// The chunks of an event stream, without its `[DONE]`.
    fn chunks(&self) -> Vec<Value> {
        self.events()
            .iter()
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    /// The error object of an error response.
    fn error(&self) -> Value {
        self.json()["error"].clone()
    }
}

async fn post_with(
    client: &reqwest::Client,
    server: &TestServer,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Answer { status, headers, body }
}

async fn post(server: &TestServer, body: Value) -> Answer {
    post_with(&client(), server, body.to_string(), &[]).await
}

fn user(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Tool calls assembled from stream chunks: (id, name, arguments) by index.
fn assembled_tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in chunks {
        let Some(deltas) = chunk["choices"][0]["delta"]["tool_calls"].as_array() else { continue };
        for d in deltas {
            let i = d["index"].as_u64().unwrap() as usize;
            calls.resize(calls.len().max(i + 1), Default::default());
            if let Some(id) = d["id"].as_str() {
                assert_eq!(d["type"], "function", "the first piece names its type");
                calls[i].0 = id.to_owned();
            }
            if let Some(name) = d["function"]["name"].as_str() {
                calls[i].1 = name.to_owned();
            }
            calls[i].2.push_str(d["function"]["arguments"].as_str().unwrap());
        }
    }
    calls
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
}

#[tokio::test]
async fn a_unary_call_answers_in_openai_shape() {
    let server = start("").await;
    let got = post(&server, user("echo", "hello big world")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let body = got.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "echo");
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert!(body.get("system_fingerprint").is_none());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "hello big world");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    // Sampling controls reach the model: echo cuts at max_tokens and at stop sequences.
    let mut capped = user("echo", "one two three four");
    capped["max_completion_tokens"] = json!(2);
    let body = post(&server, capped).await.json();
    assert_eq!(body["choices"][0]["message"]["content"], "one two ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let mut stopped = user("echo", "one two three four");
    stopped["stop"] = json!("three");
    let body = post(&server, stopped).await.json();
    assert_eq!(body["choices"][0]["message"]["content"], "one two ");
}

#[tokio::test]
async fn a_stream_sends_chunks_then_usage_then_done() {
    let server = start("").await;
    let mut request = user("echo", "hello big world");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let got = post(&server, request.clone()).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("text/event-stream"));
    assert!(got.header("x-request-id").is_some());
    let events = got.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks = got.chunks();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id, "every chunk carries the same id");
        assert_eq!(chunk["model"], "echo");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(streamed_text(&chunks), "hello big world");
    // Every chunk but the last carries a null usage; the last has no choices and the usage.
    let (usage_chunk, others) = chunks.split_last().unwrap();
    assert!(others.iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 6);
    let finish = others.last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage chunk, no usage fields.
    request.as_object_mut().unwrap().remove("stream_options");
    let chunks = post(&server, request).await.chunks();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn h2c_works_as_well_as_http1() {
    let server = start("").await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut request = user("echo", "over h2c");
    let got = post_with(&h2, &server, request.to_string(), &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["choices"][0]["message"]["content"], "over h2c");
    request["stream"] = json!(true);
    let got = post_with(&h2, &server, request.to_string(), &[]).await;
    assert_eq!(streamed_text(&got.chunks()), "over h2c");
    assert_eq!(got.events().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn the_request_id_and_trace_context_reach_the_upstream() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start(&one_route("openai", &fake)).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = [("traceparent", traceparent), ("x-request-id", "http-trace-1")];
    let got = post_with(&client(), &server, user("r", "hi").to_string(), &headers).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-request-id"), Some("http-trace-1"));
    let sent = fake.only_request();
    assert_eq!(sent.header("traceparent"), Some(traceparent));
    assert_eq!(sent.header("x-request-id"), Some("http-trace-1"));
    // The provider's id, the model as asked, its cached tokens.
    let body = got.json();
    assert_eq!(body["id"], "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(body["model"], "r");
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 1024);
}

/// A conversation with a tool: its definition, an earlier call and its result.
fn tool_conversation(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "And Boston?"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "tool_choice": "required",
        "metadata": {"team": "t-1"}
    })
}

#[tokio::test]
async fn tools_round_trip_through_an_openai_upstream() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat_tool_calls.json"),
        Reply::sse("openai/stream_tool_calls.sse"),
    ])
    .await;
    let server = start(&one_route("openai", &fake)).await;
    let mut request = tool_conversation("r");
    request["parallel_tool_calls"] = json!(false);
    let got = post(&server, request.clone()).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let sent = fake.received()[0].body.clone();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["properties"]["location"]["type"],
        "string"
    );
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"Paris\"}"
    );
    assert_eq!(
        sent["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"})
    );
    assert!(sent.get("metadata").is_none(), "caller metadata never goes upstream");

    let message = &got.json()["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["id"], "call_abc123");
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_current_weather");
    assert_eq!(got.json()["choices"][0]["finish_reason"], "tool_calls");

    request["stream"] = json!(true);
    let got = post(&server, request).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let chunks = got.chunks();
    assert_eq!(
        assembled_tool_calls(&chunks),
        [
            ("call_paris".into(), "get_weather".into(), "{\"location\": \"Paris\"}".into()),
            ("call_rome".into(), "get_weather".into(), "{\"location\": \"Rome\"}".into()),
        ]
    );
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(got.events().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn tools_round_trip_through_an_anthropic_upstream() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "anthropic/message_tool_use.json"),
        Reply::sse("anthropic/stream_tool_use.sse"),
    ])
    .await;
    let server = start(&one_route("anthropic", &fake)).await;
    let mut request = tool_conversation("r");
    let got = post(&server, request.clone()).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let sent = fake.received()[0].body.clone();
    assert_eq!(sent["system"], "Use the tools.");
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["input_schema"]["properties"]["location"]["type"], "string");
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    let blocks = sent["messages"].to_string();
    assert!(
        blocks.contains(r#""type":"tool_use""#) && blocks.contains(r#""id":"call_1""#),
        "{blocks}"
    );
    assert!(
        blocks.contains(r#""type":"tool_result""#) && blocks.contains(r#""tool_use_id":"call_1""#)
    );

    let message = &got.json()["choices"][0]["message"];
    assert_eq!(message["content"], "I'll check the weather.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "San Francisco, CA", "unit": "celsius"}));
    assert_eq!(got.json()["choices"][0]["finish_reason"], "tool_calls");

    request["stream"] = json!(true);
    let got = post(&server, request).await;
    let chunks = got.chunks();
    let calls = assembled_tool_calls(&chunks);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    let arguments: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(arguments["location"], "San Francisco, CA");
    assert!(streamed_text(&chunks).starts_with("Okay, let's check the weather"));
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(got.events().last().map(String::as_str), Some("[DONE]"));
}

/// A tiny PNG header, base64.
const PNG_B64: &str = "iVBORw0KGgo=";

fn with_images(model: &str, detail: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}"), "detail": detail}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    ]}]})
}

#[tokio::test]
async fn images_reach_the_upstreams_as_each_one_takes_them() {
    let openai = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start(&one_route("openai", &openai)).await;
    let got = post(&server, with_images("r", "high")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let parts = &openai.only_request().body["messages"][0]["content"];
    assert_eq!(parts[0], json!({"type": "text", "text": "What is in these?"}));
    assert_eq!(
        parts[1],
        json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}"), "detail": "high"}})
    );
    assert_eq!(parts[2]["image_url"]["url"], "https://example.com/cat.jpg");

    let anthropic = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let server = start(&one_route("anthropic", &anthropic)).await;
    let got = post(&server, with_images("r", "auto")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let blocks = &anthropic.only_request().body["messages"][0]["content"];
    assert_eq!(
        blocks[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}})
    );
    assert_eq!(
        blocks[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );

    // What a provider cannot take is refused before anything is sent, named as OpenAI names it.
    let got = post(&server, with_images("r", "low")).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert_eq!(got.error()["code"], "UNSUPPORTED_BY_PROVIDER");
    assert_eq!(got.error()["param"], "messages[0].content[1].image_url.detail");
    assert_eq!(anthropic.received().len(), 1);
}

#[tokio::test]
async fn a_json_schema_response_format_reaches_the_upstream() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = start(&one_route("openai", &fake)).await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let mut request = user("r", "Capital of France as JSON");
    request["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "capital", "description": "a city", "schema": schema, "strict": true}});
    request["seed"] = json!(42);
    request["temperature"] = json!(0.5);
    request["max_tokens"] = json!(50);
    let got = post(&server, request).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let sent = fake.only_request().body;
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "capital", "description": "a city", "schema": schema, "strict": true}})
    );
    assert_eq!((sent["seed"].clone(), sent["temperature"].clone()), (json!(42), json!(0.5)));
    assert_eq!(sent["max_completion_tokens"], 50);
}

fn sha256(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn errors_carry_openai_status_type_code_and_param() {
    let limited = FakeUpstream::start(vec![
        Reply::json(429, "openai/error_429.json").header("retry-after", "7"),
    ])
    .await;
    let broken = FakeUpstream::start(vec![Reply {
        status: 500,
        headers: Vec::new(),
        body: ReplyBody::Whole(b"oops".to_vec()),
    }])
    .await;
    let denied = FakeUpstream::start(vec![Reply::json(401, "openai/error_401.json")]).await;
    let claude = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let key = "sk-client-http-0123456789";
    let yaml = format!(
        "server: {{request_timeout: 300ms}}\n\
         providers:\n{}{}{}{}  slow: {{kind: echo, chunk_delay: 200ms}}\n\
         routing: {{max_retries: 0}}\n\
         routes:\n\
         \x20 - {{name: limited, targets: [{{provider: limited, model: m}}]}}\n\
         \x20 - {{name: broken, targets: [{{provider: broken, model: m}}]}}\n\
         \x20 - {{name: denied, targets: [{{provider: denied, model: m}}]}}\n\
         \x20 - {{name: claude, targets: [{{provider: claude, model: m}}]}}\n\
         \x20 - {{name: slow, targets: [{{provider: slow, model: m}}]}}\n\
         \x20 - {{name: secret, targets: [{{provider: slow, model: m}}]}}\n\
         auth:\n  keys: [{{id: team, sha256: {}, routes: [limited, broken, denied, claude, slow]}}]\n",
        provider_yaml("limited", "openai", &limited.url("/v1"), ""),
        provider_yaml("broken", "openai", &broken.url("/v1"), ""),
        provider_yaml("denied", "openai", &denied.url("/v1"), ""),
        provider_yaml("claude", "anthropic", &claude.url(""), "    default_max_tokens: 64\n"),
        sha256(key),
    );
    let server = start(&yaml).await;
    let http = client();
    let bearer = format!("Bearer {key}");
    let call = |body: Value| {
        let (http, server, bearer) = (&http, &server, bearer.clone());
        async move {
            post_with(http, server, body.to_string(), &[("authorization", bearer.as_str())]).await
        }
    };
    let check = |got: &Answer, status: u16, kind: &str, code: &str| {
        assert_eq!(got.status, status, "{}", got.body);
        assert_eq!(got.error()["type"], kind, "{}", got.body);
        assert_eq!(got.error()["code"], code, "{}", got.body);
        assert!(got.error()["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(got.header("x-request-id").is_some(), "every answer has its request id");
    };

    let got = post_with(&http, &server, user("slow", "x").to_string(), &[]).await;
    check(&got, 401, "authentication_error", "UNAUTHENTICATED");
    let got = post_with(
        &http,
        &server,
        user("slow", "x").to_string(),
        &[("authorization", "Bearer nope")],
    )
    .await;
    check(&got, 401, "authentication_error", "UNAUTHENTICATED");

    let got = call(user("secret", "x")).await;
    check(&got, 403, "permission_error", "ROUTE_NOT_ALLOWED");

    let got = call(user("no-such-model", "x")).await;
    check(&got, 404, "not_found_error", "MODEL_NOT_FOUND");

    let mut bad = user("slow", "x");
    bad["temperature"] = json!(9);
    let got = call(bad).await;
    check(&got, 400, "invalid_request_error", "INVALID_REQUEST");
    assert_eq!(got.error()["param"], "temperature");

    let got = call(user("limited", "x")).await;
    check(&got, 429, "rate_limit_error", "UPSTREAM_RATE_LIMITED");
    assert_eq!(got.header("retry-after"), Some("7"));
    // A stream refused before its first event is the same HTTP error, not an event stream.
    let mut streamed = user("limited", "x");
    streamed["stream"] = json!(true);
    let got = call(streamed).await;
    check(&got, 429, "rate_limit_error", "UPSTREAM_RATE_LIMITED");
    assert!(got.header("retry-after").is_some());

    let got = call(user("broken", "x")).await;
    check(&got, 502, "api_error", "UPSTREAM_SERVER_ERROR");
    let got = call(user("denied", "x")).await;
    check(&got, 502, "api_error", "UPSTREAM_AUTH_FAILED");

    let mut seeded = user("claude", "x");
    seeded["seed"] = json!(1);
    let got = call(seeded).await;
    check(&got, 400, "invalid_request_error", "UNSUPPORTED_BY_PROVIDER");
    assert_eq!(got.error()["param"], "seed", "the gRPC field name becomes OpenAI's");

    let got = call(user("slow", "one two three four five six")).await;
    check(&got, 504, "timeout_error", "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_and_no_done() {
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_cut.sse").then_break()]).await;
    let server = start(&one_route("openai", &fake)).await;
    let mut request = user("r", "hi");
    request["stream"] = json!(true);
    let got = post(&server, request).await;
    assert_eq!(got.status, 200, "the stream had begun: {}", got.body);
    let events = got.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let chunks = got.chunks();
    assert_eq!(streamed_text(&chunks), "Hello");
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["type"], "api_error", "{last}");
    assert_eq!(last["error"]["code"], "UPSTREAM_STREAM_CUT");
    assert!(last["error"]["message"].as_str().unwrap().contains("stream"));
    assert!(chunks.iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_that_is_wrong() {
    let server = start("").await;
    let http = client();
    // A valid request with `extra` members set: one field wrong at a time.
    let with = |extra: Value| {
        let mut body = user("echo", "x");
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    let invalid = "INVALID_REQUEST";
    let cases: Vec<(String, &str, &str, Value)> = vec![
        ("{\"model\": \"echo\",".into(), "MALFORMED_REQUEST", "", Value::Null),
        ("not json".into(), "MALFORMED_REQUEST", "", Value::Null),
        ("[1, 2]".into(), "MALFORMED_REQUEST", "", Value::Null),
        (
            with(json!({"messages": [{"role": "user", "content": 7}]})),
            invalid,
            "content parts",
            json!("messages[0].content"),
        ),
        (with(json!({"max_tokens": "ten"})), invalid, "invalid type", json!("max_tokens")),
        (
            with(json!({"tempurature": 1})),
            invalid,
            "unrecognized request argument",
            json!("tempurature"),
        ),
        (
            with(json!({"messages": [{"role": "user", "content": "x", "mood": "sad"}]})),
            invalid,
            "is not a member",
            json!("messages[0].mood"),
        ),
        (with(json!({"n": 3})), invalid, "only 1 choice", json!("n")),
        (with(json!({"logprobs": true})), invalid, "not supported", json!("logprobs")),
        (
            with(json!({"reasoning_effort": "extreme"})),
            invalid,
            "unknown effort",
            json!("reasoning_effort"),
        ),
        (with(json!({"messages": []})), invalid, "at least one", json!("messages")),
        (
            with(json!({"tool_choice": "required"})),
            invalid,
            "at least one tool",
            json!("tool_choice"),
        ),
    ];
    for (body, code, says, param) in cases {
        let got = post_with(&http, &server, body.clone(), &[]).await;
        assert_eq!(got.status, 400, "{body}: {}", got.body);
        let error = got.error();
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["code"], code, "{body}: {error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{body}: {error}");
        assert_eq!(error["param"], param, "{body}: {error}");
    }
    // Garbage of every shape gets an answer, and the server stays up.
    for body in ["", "{", "\u{0}\u{1}", "{\"messages\": [[[[[[[[[[]]]]]]]]]]}", "null", "{}{}"] {
        assert_eq!(post_with(&http, &server, body, &[]).await.status, 400, "{body:?}");
    }
    assert_eq!(post(&server, user("echo", "still here")).await.status, 200);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_a_slow_body_is_408() {
    let server = start("server:\n  max_request_bytes: 2048\n  http: {body_timeout: 300ms}\n").await;
    let big = user("echo", &"x".repeat(4096));
    let got = post(&server, big).await;
    assert_eq!(got.status, 413, "{}", got.body);
    assert_eq!(got.error()["code"], "REQUEST_TOO_LARGE");
    assert_eq!(got.error()["type"], "invalid_request_error");

    // Headers, a tenth of the announced body, then nothing.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"model\": \"echo\"";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            raw.extend_from_slice(&buf[..n]);
            if n == 0 || raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"}}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains("\"code\":\"DEADLINE_EXCEEDED\""), "{raw}");
    assert!(raw.contains("body_timeout"), "{raw}");
}

#[tokio::test]
async fn the_same_call_through_grpc_and_http_leaves_the_same_record_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "audit: {{sink: {}}}\nproviders:\n  local: {{kind: echo}}\nroutes:\n  - name: fast\n    targets: [{{provider: local, model: echo-small}}]\n",
        audit.display()
    );
    let server = start(&yaml).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    let mut grpc = server.client().await;

    let mut request = common::chat("fast", "same words here");
    request.metadata.insert("team".into(), "t-1".into());
    grpc.chat(request.clone()).await.unwrap();
    let stream = pb::StreamChatRequest {
        model: request.model.clone(),
        messages: request.messages.clone(),
        metadata: request.metadata.clone(),
        ..Default::default()
    };
    let (_, status) = common::collect(grpc.stream_chat(stream).await.unwrap().into_inner()).await;
    assert!(status.is_none());
    let mut http = user("fast", "same words here");
    http["metadata"] = json!({"team": "t-1"});
    assert_eq!(post(&server, http.clone()).await.status, 200);
    http["stream"] = json!(true);
    assert_eq!(post(&server, http).await.events().last().map(String::as_str), Some("[DONE]"));
    let mut invalid = user("fast", "x");
    invalid["top_p"] = json!(2);
    assert_eq!(post(&server, invalid).await.status, 400);
    let (status, body) = http_get(server.addr, "/v1/models/no-such-model").await;
    assert_eq!(status, 404, "{body}");

    // The records are written when each call ends; the last one may still be on its way.
    let mut records: Vec<Value> = Vec::new();
    for _ in 0..50 {
        records = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(records.len(), 6, "{records:#?}");
    let kept = |r: &Value| {
        let mut r = r.clone();
        for varying in ["time", "request_id", "latency_ms", "ttft_ms", "front_door"] {
            r.as_object_mut().unwrap().remove(varying);
        }
        r
    };
    for (grpc, http) in [(&records[0], &records[2]), (&records[1], &records[3])] {
        assert_eq!(grpc["front_door"], "grpc");
        assert_eq!(http["front_door"], "openai");
        assert_eq!(kept(grpc), kept(http), "\ngrpc: {grpc}\nhttp: {http}");
    }
    assert_eq!(records[1]["method"], "StreamChat");
    assert_eq!(records[2]["metadata"], json!({"team": "t-1"}));
    assert_eq!(records[4]["code"], "INVALID_ARGUMENT");
    assert_eq!(records[4]["front_door"], "openai");
    assert_eq!(
        (&records[5]["method"], &records[5]["code"]),
        (&json!("ListModels"), &json!("NOT_FOUND"))
    );

    let (status, scrape) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for door in ["grpc", "openai"] {
        for method in ["Chat", "StreamChat"] {
            let series = format!(
                "ai_service_requests_total{{front_door=\"{door}\",method=\"{method}\",route=\"fast\",provider=\"local\",code=\"OK\"}} 1"
            );
            assert!(scrape.contains(&series), "no {series} in\n{scrape}");
        }
    }
    let refused = "ai_service_requests_total{front_door=\"openai\",method=\"Chat\",route=\"none\",provider=\"none\",code=\"INVALID_ARGUMENT\"} 1";
    assert!(scrape.contains(refused), "{scrape}");
    let unknown = "ai_service_requests_total{front_door=\"openai\",method=\"ListModels\",route=\"none\",provider=\"none\",code=\"NOT_FOUND\"} 1";
    assert!(scrape.contains(unknown), "{scrape}");
    // Nothing is left in flight once every call ended.
    for line in scrape.lines().filter(|l| l.starts_with("ai_service_requests_in_flight")) {
        assert!(line.ends_with(" 0"), "{line}");
    }
}
