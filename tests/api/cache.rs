//! The in-memory response cache end to end: hits and misses counted at a fake upstream, the
//! `x-ai-cache` modes, eviction, streams replayed with the live stream's shape, and streams
//! that fail never stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::{
    TestServer, collect,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml, streaming, user_request},
    redis::metric,
};
use ai_service::{
    Config,
    proto::v1::{self as pb, stream_chat_response::Event},
};
use tonic::{Code, Request};

async fn server(fake: &FakeUpstream, cache: &str, route_extra: &str) -> TestServer {
    let yaml = format!(
        "cache: {cache}\nproviders:\n{}routes:\n  - name: gpt\n    aliases: [gpt-alias]\n{route_extra}    targets: [{{provider: openai, model: gpt-4o}}]\n",
        provider_yaml("openai", "openai", &fake.url("/v1"), "")
    );
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(common::quiet_audit(&yaml));
    TestServer::start_with(Config::from_yaml(&yaml, env).unwrap()).await
}

fn with_mode<T>(message: T, mode: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-ai-cache", mode.parse().unwrap());
    request
}

fn scrape(server: &TestServer) -> String {
    server.gateway.metrics().render().unwrap()
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = server(&fake, "{enabled: true}", "").await;
    let mut client = server.client().await;

    let first = client.chat(user_request("gpt", "capital of France?")).await.unwrap().into_inner();
    let second = client.chat(user_request("gpt", "capital of France?")).await.unwrap().into_inner();

    assert_eq!(fake.received().len(), 1, "the second call must not reach the upstream");
    // A hit returns the stored answer whole; it cost nothing (no provider was paid).
    assert_eq!(second.cost.as_ref().map(|c| c.usd), Some(0.0));
    assert_eq!(first, pb::ChatResponse { cost: first.cost, ..second.clone() }, "the stored answer");
    let text = scrape(&server);
    assert_eq!(metric(&text, r#"ai_service_cache_hits_total{route="gpt"}"#), 1.0, "{text}");
    assert_eq!(metric(&text, r#"ai_service_cache_misses_total{route="gpt"}"#), 1.0);

    client.chat(user_request("gpt", "capital of Spain?")).await.unwrap();
    assert_eq!(fake.received().len(), 2, "a different request is a miss");
}

#[tokio::test]
async fn the_key_ignores_metadata_the_callers_key_and_the_alias() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = server(&fake, "{enabled: true}", "").await;
    let mut client = server.client().await;

    let mut a = Request::new(user_request("gpt", "same question"));
    a.metadata_mut().insert("authorization", "Bearer client-key-one".parse().unwrap());
    a.metadata_mut().insert("x-user-id", "alice".parse().unwrap());
    client.chat(a).await.unwrap();

    let mut message = user_request("gpt-alias", "same question");
    message.metadata.insert("x-tenant-id".into(), "t-2".into());
    let mut b = Request::new(message);
    b.metadata_mut().insert("authorization", "Bearer client-key-two".parse().unwrap());
    b.metadata_mut().insert("x-user-id", "bob".parse().unwrap());
    client.chat(b).await.unwrap();

    assert_eq!(fake.received().len(), 1, "same route, same messages: one upstream call");
}

#[tokio::test]
async fn bypass_neither_reads_nor_writes_and_refresh_writes_the_fresh_answer() {
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat.json"),
        Reply::json(200, "openai/chat.json"),
        Reply::json(200, "openai/chat.json"),
        Reply::json(200, "openai/chat_tool_calls.json"),
    ])
    .await;
    let server = server(&fake, "{enabled: true}", "").await;
    let mut client = server.client().await;
    let ask = || user_request("gpt", "what now?");

    client.chat(with_mode(ask(), "bypass")).await.unwrap();
    client.chat(with_mode(ask(), "bypass")).await.unwrap();
    assert_eq!(fake.received().len(), 2, "bypass never reads");
    let first = client.chat(ask()).await.unwrap().into_inner();
    assert_eq!(fake.received().len(), 3, "bypass never wrote");
    assert!(first.message.unwrap().tool_calls.is_empty());

    // Refresh: skips the read (an upstream call) and replaces the entry with its answer.
    let fresh = client.chat(with_mode(ask(), "refresh")).await.unwrap().into_inner();
    assert_eq!(fake.received().len(), 4);
    let again = client.chat(with_mode(ask(), "default")).await.unwrap().into_inner();
    assert_eq!(fake.received().len(), 4, "the refreshed answer is served");
    assert_eq!(again, pb::ChatResponse { cost: again.cost, ..fresh }, "the same answer, free");
    assert!(!again.message.unwrap().tool_calls.is_empty());
}

#[tokio::test]
async fn an_unknown_cache_mode_is_invalid_argument_naming_the_header() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = server(&fake, "{enabled: false}", "").await;
    let status =
        server.client().await.chat(with_mode(user_request("gpt", "x"), "maybe")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-ai-cache"), "{}", status.message());
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn a_route_can_turn_the_cache_off_or_on() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let off = server(&fake, "{enabled: true}", "    cache: {enabled: false}\n").await;
    let mut client = off.client().await;
    client.chat(user_request("gpt", "q")).await.unwrap();
    client.chat(user_request("gpt", "q")).await.unwrap();
    assert_eq!(fake.received().len(), 2);

    let on = server(&fake, "{enabled: false}", "    cache: {enabled: true, ttl: 1h}\n").await;
    let mut client = on.client().await;
    client.chat(user_request("gpt", "q")).await.unwrap();
    client.chat(user_request("gpt", "q")).await.unwrap();
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn the_entry_bound_evicts_the_least_recently_used_answer() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let server = server(&fake, "{enabled: true, max_entries: 1}", "").await;
    let mut client = server.client().await;
    for question in ["a", "b", "a"] {
        client.chat(user_request("gpt", question)).await.unwrap();
    }
    assert_eq!(fake.received().len(), 3, "b evicted a, a evicted b");
    let text = scrape(&server);
    assert_eq!(metric(&text, "ai_service_cache_evictions_total"), 2.0, "{text}");
    assert_eq!(server.gateway.cache().unwrap().memory().unwrap().len(), 1);
}

fn echo_server_yaml(cache: &str) -> String {
    format!(
        "cache: {cache}\nproviders: {{e: {{kind: echo}}}}\nroutes: [{{name: echo, targets: [{{provider: e, model: echo-1}}]}}]\n"
    )
}

#[tokio::test]
async fn a_stream_hit_replays_the_live_stream_exactly() {
    let server = TestServer::start(&echo_server_yaml("{enabled: true}")).await;
    let mut client = server.client().await;
    let mut request = common::stream_chat("echo", "one two three");
    request.tools = vec![pb::Tool { name: "search".into(), ..Default::default() }];

    let live = collect(client.stream_chat(request.clone()).await.unwrap().into_inner()).await;
    let replay = collect(client.stream_chat(request.clone()).await.unwrap().into_inner()).await;

    assert!(live.1.is_none() && replay.1.is_none());
    assert!(live.0.len() >= 5, "{:?}", live.0);
    assert_eq!(replay.0, live.0, "same deltas, usage and finish, in the same order");
    let text = scrape(&server);
    assert_eq!(metric(&text, r#"ai_service_cache_hits_total{route="echo"}"#), 1.0, "{text}");

    // The stored stream answers a unary call of the same request too.
    let unary = pb::ChatRequest {
        model: request.model,
        messages: request.messages,
        tools: request.tools,
        ..Default::default()
    };
    let answer = client.chat(unary).await.unwrap().into_inner();
    let Some(Event::Finish(finish)) = live.0.last() else { panic!("finish last") };
    assert_eq!(answer.id, finish.id);
    assert_eq!(common::text_of(answer.message.as_ref().unwrap()), "one two three");
    assert_eq!(metric(&scrape(&server), r#"ai_service_cache_hits_total{route="echo"}"#), 2.0);
}

#[tokio::test]
async fn tool_call_streams_replay_with_their_tool_call_deltas() {
    let server = TestServer::start(&echo_server_yaml("{enabled: true}")).await;
    let mut client = server.client().await;
    let mut request = common::stream_chat("echo", "look this up");
    request.tools = vec![pb::Tool { name: "search".into(), ..Default::default() }];
    request.tool_choice =
        Some(pb::ToolChoice { choice: Some(pb::tool_choice::Choice::ToolName("search".into())) });
    let live = collect(client.stream_chat(request.clone()).await.unwrap().into_inner()).await;
    let replay = collect(client.stream_chat(request).await.unwrap().into_inner()).await;
    assert!(live.0.iter().any(|e| matches!(e, Event::ToolCallDelta(_))));
    assert_eq!(replay.0, live.0);
}

#[tokio::test]
async fn a_unary_answer_replays_as_a_stream() {
    let server = TestServer::start(&echo_server_yaml("{enabled: true}")).await;
    let mut client = server.client().await;
    let answer = client.chat(common::chat("echo", "hello there")).await.unwrap().into_inner();
    let (events, status) = collect(
        client.stream_chat(common::stream_chat("echo", "hello there")).await.unwrap().into_inner(),
    )
    .await;
    assert!(status.is_none());
    let Some(Event::ContentDelta(delta)) = events.first() else { panic!("{events:?}") };
    assert_eq!(delta.text, "hello there");
    assert!(matches!(&events[events.len() - 2], Event::Usage(u) if Some(*u) == answer.usage));
    let Some(Event::Finish(finish)) = events.last() else { panic!("{events:?}") };
    assert_eq!((finish.id.as_str(), finish.provider.as_str()), (answer.id.as_str(), "e"));
}

#[tokio::test]
async fn a_stream_cut_midway_is_never_stored() {
    let fake = FakeUpstream::start(vec![
        Reply::sse("openai/stream_cut.sse").then_break(),
        Reply::sse("openai/stream_text.sse"),
    ])
    .await;
    let server = server(&fake, "{enabled: true}", "").await;
    let mut client = server.client().await;
    let request = || streaming(user_request("gpt", "tell me"));

    let (_, status) = collect(client.stream_chat(request()).await.unwrap().into_inner()).await;
    assert!(status.is_some(), "the first stream fails");
    let (_, status) = collect(client.stream_chat(request()).await.unwrap().into_inner()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(fake.received().len(), 2, "the cut stream was not stored");
    let (_, status) = collect(client.stream_chat(request()).await.unwrap().into_inner()).await;
    assert!(status.is_none());
    assert_eq!(fake.received().len(), 2, "the complete one was");
}
