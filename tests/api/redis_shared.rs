//! Two gateways (two replicas on two ports) sharing one real Redis: an answer cached through
//! one is a hit through the other; a Redis that goes away degrades both to no cache (calls
//! still succeed, errors counted) and the cache works again when Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::time::Duration;

use crate::common::{
    TestServer, collect,
    fake_upstream::{FakeUpstream, Reply, TEST_KEY, provider_yaml, streaming, user_request},
    redis::{RedisServer, metric},
};
use ai_service::{Config, proto::v1 as pb};

async fn replica(fake: &FakeUpstream, redis: &RedisServer) -> TestServer {
    let yaml = format!(
        "cache: {{enabled: true, backend: redis}}\nredis: {{url: '{}', key_prefix: 'test:', command_timeout: 2s}}\nproviders:\n{}routes:\n  - name: gpt\n    targets: [{{provider: openai, model: gpt-4o}}]\n",
        redis.url(),
        provider_yaml("openai", "openai", &fake.url("/v1"), "")
    );
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(common::quiet_audit(&yaml));
    TestServer::start_with(Config::from_yaml(&yaml, env).unwrap()).await
}

fn hits(server: &TestServer) -> f64 {
    metric(
        &server.gateway.metrics().render().unwrap(),
        r#"ai_service_cache_hits_total{route="gpt"}"#,
    )
}

#[tokio::test]
async fn an_answer_cached_through_one_replica_is_a_hit_through_the_other() {
    let redis = RedisServer::start();
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let (a, b) = (replica(&fake, &redis).await, replica(&fake, &redis).await);
    assert_ne!(a.addr, b.addr);

    let through_a =
        a.client().await.chat(user_request("gpt", "shared?")).await.unwrap().into_inner();
    let through_b =
        b.client().await.chat(user_request("gpt", "shared?")).await.unwrap().into_inner();

    assert_eq!(fake.received().len(), 1, "B answered from Redis");
    // The same answer; the hit cost nothing (no provider was paid).
    assert_eq!(through_a.cost.as_ref().map(|c| c.usd), Some(0.001_972_5));
    assert_eq!(through_b.cost.as_ref().map(|c| c.usd), Some(0.0));
    assert_eq!(through_a, pb::ChatResponse { cost: through_a.cost, ..through_b });
    assert_eq!((hits(&a), hits(&b)), (0.0, 1.0));
}

#[tokio::test]
async fn a_stream_stored_through_one_replica_replays_through_the_other() {
    let redis = RedisServer::start();
    let fake = FakeUpstream::start(vec![Reply::sse("openai/stream_text.sse")]).await;
    let (a, b) = (replica(&fake, &redis).await, replica(&fake, &redis).await);
    let request = || streaming(user_request("gpt", "stream it"));

    let live = collect(a.client().await.stream_chat(request()).await.unwrap().into_inner()).await;
    let replay = collect(b.client().await.stream_chat(request()).await.unwrap().into_inner()).await;

    assert!(live.1.is_none() && replay.1.is_none());
    // The same events; the replay's finish cost nothing (no provider was paid).
    let free = |events: Vec<pb::stream_chat_response::Event>| -> Vec<_> {
        events
            .into_iter()
            .map(|e| match e {
                pb::stream_chat_response::Event::Finish(f) => {
                    assert!(f.cost.is_some(), "priced: gpt-4o");
                    pb::stream_chat_response::Event::Finish(pb::Finish { cost: None, ..f })
                }
                other => other,
            })
            .collect()
    };
    assert_eq!(free(replay.0), free(live.0));
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn redis_going_away_degrades_to_no_cache_and_its_return_restores_it() {
    let mut redis = RedisServer::start();
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let (a, b) = (replica(&fake, &redis).await, replica(&fake, &redis).await);
    a.client().await.chat(user_request("gpt", "before")).await.unwrap();
    b.client().await.chat(user_request("gpt", "before")).await.unwrap();
    assert_eq!(fake.received().len(), 1);

    redis.kill();
    for _ in 0..3 {
        a.client().await.chat(user_request("gpt", "during")).await.expect("calls still succeed");
    }
    assert_eq!(fake.received().len(), 4, "no cache: every call goes upstream");
    let text = a.gateway.metrics().render().unwrap();
    assert_eq!(metric(&text, r#"ai_service_cache_errors_total{operation="get"}"#), 3.0, "{text}");
    assert_eq!(metric(&text, r#"ai_service_cache_errors_total{operation="set"}"#), 3.0, "{text}");

    // Same port, empty Redis: the connection manager reconnects on the next commands.
    redis.restart();
    let mut hit = false;
    for attempt in 0..50 {
        let question = format!("after {attempt}");
        a.client().await.chat(user_request("gpt", &question)).await.unwrap();
        let before = hits(&b);
        b.client().await.chat(user_request("gpt", &question)).await.unwrap();
        if hits(&b) > before {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the shared cache works again once Redis is back");
}
