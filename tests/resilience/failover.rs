//! Routing against real HTTP upstreams: failover order across providers, no failover on the
//! caller's mistakes, the health status following the routes, rate-limit cool-downs per
//! upstream model, and cancellation reaching the upstream at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::{Duration, Instant};

use crate::common::{
    TestServer, chat,
    fake_upstream::{FakeUpstream, Reply},
    stream_chat,
};
use ai_service::proto::v1::ListModelsRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

fn provider(name: &str, fake: &FakeUpstream) -> String {
    format!(
        "  {name}: {{kind: openai_compatible, base_url: \"{}/v1\", disable_proxy: true}}\n",
        fake.url("")
    )
}

#[tokio::test]
async fn fails_over_along_the_chain_in_order_and_lists_every_attempt() {
    let first = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let second = FakeUpstream::start(vec![Reply::json(500, "openai/error_400.json")]).await;
    let third = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "routing: {{backoff_base: 1ms, backoff_max: 5ms}}\nproviders:\n{}{}{}routes:\n  - name: smart\n    targets: [{{provider: a, model: m1}}, {{provider: b, model: m2}}, {{provider: c, model: m3}}]\n",
        provider("a", &first),
        provider("b", &second),
        provider("c", &third)
    );
    let server = TestServer::start(&yaml).await;
    let reply = server.client().await.chat(chat("smart", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "c");
    assert_eq!(
        (first.received().len(), second.received().len(), third.received().len()),
        (1, 1, 1)
    );
    assert_eq!(
        third.only_request().body["model"],
        "m3",
        "each target sends its own upstream model"
    );

    // All three failing: UNAVAILABLE listing each attempt.
    let down = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let yaml = format!(
        "routing: {{backoff_base: 1ms, backoff_max: 5ms, max_retries: 2}}\nproviders:\n{}routes: [{{name: r, targets: [{{provider: d, model: m}}]}}]\n",
        provider("d", &down)
    );
    let server = TestServer::start(&yaml).await;
    let status = server.client().await.chat(chat("r", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["attempts"], "3");
    assert!(
        info.metadata["attempt_1"].starts_with("d/m@default: UPSTREAM_SERVER_ERROR (HTTP 503)"),
        "{info:?}"
    );
}

#[tokio::test]
async fn the_callers_mistake_is_not_retried() {
    let first = FakeUpstream::start(vec![Reply::json(400, "openai/error_400.json")]).await;
    let second = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "providers:\n{}{}routes: [{{name: r, targets: [{{provider: a, model: m}}, {{provider: b, model: m}}]}}]\n",
        provider("a", &first),
        provider("b", &second)
    );
    let server = TestServer::start(&yaml).await;
    let status = server.client().await.chat(chat("r", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(second.received().is_empty());
}

#[tokio::test]
async fn health_and_list_models_follow_the_routes() {
    let fake = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let yaml = format!(
        "routing: {{max_retries: 0, eject_after: 1, eject_cooldown: 600ms, eject_cooldown_max: 600ms}}\nproviders:\n{}routes: [{{name: r, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &fake)
    );
    let server = TestServer::start(&yaml).await;
    let mut health = HealthClient::new(server.channel().await);
    let chat_service = || HealthCheckRequest { service: "aiservice.v1.ChatService".into() };
    assert_eq!(
        health.check(chat_service()).await.unwrap().into_inner().status(),
        ServingStatus::Serving
    );

    // One failure ejects the only endpoint: nothing can serve.
    server.client().await.chat(chat("r", "hi")).await.unwrap_err();
    let models =
        server.client().await.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
    assert!(!models[0].available && !models[0].targets[0].available);
    let mut seen_down = false;
    for _ in 0..20 {
        if health.check(chat_service()).await.unwrap().into_inner().status()
            == ServingStatus::NotServing
        {
            seen_down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen_down, "ChatService must turn NOT_SERVING when no route can serve");
    // The liveness name stays up: an upstream outage is no reason to restart.
    let live = health.check(HealthCheckRequest { service: "liveness".into() }).await.unwrap();
    assert_eq!(live.into_inner().status(), ServingStatus::Serving);

    // After the cool-down the endpoint may be probed again: SERVING again.
    let mut back = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if health.check(chat_service()).await.unwrap().into_inner().status()
            == ServingStatus::Serving
        {
            back = true;
            break;
        }
    }
    assert!(back, "ChatService must return to SERVING when a route can serve again");
}

/// A bare HTTP/1.1 upstream that starts an SSE stream, then waits; it reports when the
/// gateway closes the connection.
async fn hanging_stream() -> (String, tokio::sync::oneshot::Receiver<Instant>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = conn.read(&mut buf).await.unwrap();
        let chunk = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
            chunk.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        // Wait for the gateway to hang up.
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(Instant::now());
    });
    (url, closed_rx)
}

#[tokio::test]
async fn a_caller_who_goes_away_closes_the_upstream_request_at_once() {
    let (url, closed) = hanging_stream().await;
    let yaml = format!(
        "providers:\n  a: {{kind: openai_compatible, base_url: \"{url}\", disable_proxy: true}}\nroutes: [{{name: r, targets: [{{provider: a, model: m}}]}}]\n"
    );
    let server = TestServer::start(&yaml).await;
    let mut client = server.client().await;
    let mut stream = client.stream_chat(stream_chat("r", "hi")).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some(), "the first delta arrives");

    let dropped = Instant::now();
    drop(stream);
    drop(client);
    let closed = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the upstream connection stayed open")
        .unwrap();
    let after = closed.saturating_duration_since(dropped);
    assert!(
        after < Duration::from_millis(100),
        "the upstream saw the close {after:?} after the caller left"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_key() {
    let elsewhere = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let redirecting = FakeUpstream::start(vec![
        Reply::json(307, "openai/chat.json")
            .header("location", &elsewhere.url("/v1/chat/completions")),
    ])
    .await;
    let yaml = format!(
        "routing: {{max_retries: 0}}\nproviders:\n  a: {{kind: azure_openai, base_url: \"{}\", api_key_env: KEY, disable_proxy: true}}\nroutes: [{{name: r, targets: [{{provider: a, model: gpt-4o}}]}}]\n",
        redirecting.url("")
    );
    let config = ai_service::Config::from_yaml(
        &yaml,
        [
            ("KEY".to_owned(), "azure-secret-key-0123456789".to_owned()),
            ("AI_SERVICE__AUDIT__SINK".to_owned(), "/dev/null".to_owned()),
        ],
    )
    .unwrap();
    let server = TestServer::start_with(config).await;
    let status = server.client().await.chat(chat("r", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(redirecting.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed, key and all");
}

#[tokio::test]
async fn the_trace_context_and_request_id_reach_the_upstream() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "providers:\n{}routes: [{{name: r, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &fake)
    );
    let server = TestServer::start(&yaml).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = tonic::Request::new(chat("r", "hi"));
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    request.metadata_mut().insert("x-request-id", "trace-me-1".parse().unwrap());
    server.client().await.chat(request).await.unwrap();
    let sent = fake.only_request();
    assert_eq!(sent.header("traceparent"), Some(traceparent));
    assert_eq!(sent.header("x-request-id"), Some("trace-me-1"));
}

#[tokio::test]
async fn active_health_checks_take_an_endpoint_out_and_bring_it_back() {
    // The probes are the only requests: up, three failures, then up for good.
    let fake = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat.json"),
        Reply::json(503, "openai/error_400.json"),
        Reply::json(503, "openai/error_400.json"),
        Reply::json(503, "openai/error_400.json"),
        Reply::json(200, "openai/chat.json"),
    ])
    .await;
    let yaml = format!(
        "providers:\n{}routes:\n  - name: r\n    targets:\n      - {{provider: a, model: m, health_check: {{interval: 30ms, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}}}}\n",
        provider("a", &fake)
    );
    let server = TestServer::start(&yaml).await;
    let mut client = server.client().await;
    let mut seen = Vec::new();
    for _ in 0..200 {
        let models = client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
        let available = models[0].available;
        if seen.last() != Some(&available) {
            seen.push(available);
        }
        if seen == [true, false, true] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen,
        [true, false, true],
        "available, out after two failed probes, back after two good ones"
    );
    let probes = fake.received();
    assert!(probes.len() >= 6);
    assert!(probes.iter().all(|r| r.method == "GET" && r.uri.ends_with("/v1/models")));
    assert!(probes.iter().all(|r| r.header("authorization").is_none()), "probes carry no key");
}

#[tokio::test]
async fn a_429_cools_only_its_model_on_a_shared_provider_endpoint() {
    // Both routes, and passthrough calls, go to provider a's one default endpoint.
    let fake = FakeUpstream::start(vec![
        Reply::json(429, "openai/error_429.json").header("retry-after", "30"),
        Reply::json(200, "openai/chat.json"),
    ])
    .await;
    let yaml = format!(
        "routing: {{backoff_base: 1ms, backoff_max: 5ms}}\nproviders:\n{}routes:\n  - {{name: ra, targets: [{{provider: a, model: model-a}}]}}\n  - {{name: rb, targets: [{{provider: a, model: model-b}}]}}\n",
        provider("a", &fake)
    );
    let server = TestServer::start(&yaml).await;
    let mut client = server.client().await;
    let sent_models = || -> Vec<String> {
        fake.received().iter().map(|r| r.body["model"].as_str().unwrap().to_owned()).collect()
    };

    let status = client.chat(chat("ra", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(sent_models(), ["model-a"], "the 429 leaves nothing else to try for model-a");

    // Another model on the same endpoint is served at once.
    let reply = client.chat(chat("rb", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "a");
    assert_eq!(sent_models(), ["model-a", "model-b"]);

    // model-a is refused without reaching the upstream, through its route or as a passthrough,
    // with how long it still cools.
    for name in ["ra", "a/model-a"] {
        let status = client.chat(chat(name, "hi")).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{name}: {status:?}");
        let details = status.get_error_details();
        let info = details.error_info().cloned().unwrap();
        assert_eq!(info.reason, "UPSTREAM_RATE_LIMITED");
        assert_eq!(info.metadata["attempts"], "0");
        let delay = details.retry_info().unwrap().retry_delay.unwrap();
        assert!(delay <= Duration::from_secs(30) && delay > Duration::from_secs(25), "{delay:?}");
    }
    assert_eq!(sent_models(), ["model-a", "model-b"], "nothing more reached the upstream");
    client.chat(chat("a/model-c", "hi")).await.unwrap();
    assert_eq!(sent_models(), ["model-a", "model-b", "model-c"]);

    // A cooling model takes its route out of ListModels' available ones, not the provider
    // out of service.
    let models = client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
    let available: Vec<(&str, bool, bool)> =
        models.iter().map(|m| (m.name.as_str(), m.available, m.targets[0].available)).collect();
    assert_eq!(available, [("ra", false, false), ("rb", true, true)]);
    // Past one refresh of the health status (200 ms), which follows `Router::can_serve`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut health = HealthClient::new(server.channel().await);
    let check = HealthCheckRequest { service: "aiservice.v1.ChatService".into() };
    assert_eq!(health.check(check).await.unwrap().into_inner().status(), ServingStatus::Serving);
}
