//! Hostile upstreams: endless streams and bodies, stalls, gigantic and garbled replies, wrong
//! content types, HTML error pages and redirects. Each ends the call with a clear non-OK
//! status (never a hang, never a silent clean end), within the bounds the config sets, and a
//! redirect is never followed with a key attached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::common::fake_upstream::*;
use tonic::Code;

/// An OpenAI provider at `fake` with `extra` settings (indented YAML lines), one route `m`,
/// no retries so each call reaches the fake once.
fn openai(fake: &FakeUpstream, extra: &str) -> String {
    format!(
        "providers:\n{}routes:\n  - {{name: m, max_retries: 0, targets: [{{provider: p, model: m}}]}}\n",
        provider_yaml("p", "openai", &fake.url("/v1"), extra)
    )
}

/// A route `m` on one provider of `kind` at `base`, no retries.
fn provider(kind: &str, base: &str, extra: &str) -> String {
    format!(
        "providers:\n{}routes:\n  - {{name: m, max_retries: 0, targets: [{{provider: p, model: m}}]}}\n",
        provider_yaml("p", kind, base, extra)
    )
}

/// Bounds every test: a hang is a failure, not a stuck suite.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("the call ended in time")
}

fn reply(status: u16, content_type: &str, body: ReplyBody) -> Reply {
    Reply { status, headers: vec![("content-type".into(), content_type.into())], body }
}

const CHUNK: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"more and more \"}}]}\n\n";

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_so_no_key_leaves() {
    // The "other host" records what reaches it; the upstream redirects there, keeping the
    // method (307). reqwest would strip `Authorization` but not `x-api-key`, `api-key` or
    // `x-goog-api-key`, so the gateway must not follow at all.
    let elsewhere = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    for (kind, base_path) in
        [("anthropic", ""), ("gemini", "/v1beta"), ("openai", "/v1"), ("azure_openai", "")]
    {
        let location = elsewhere.url("/stolen");
        let redirecting = FakeUpstream::start(vec![Reply {
            status: 307,
            headers: vec![("location".into(), location)],
            body: ReplyBody::Whole(Vec::new()),
        }])
        .await;
        let extra = if kind == "azure_openai" { "    api_version: 2024-10-21\n" } else { "" };
        let mut gw = gateway(&provider(kind, &redirecting.url(base_path), extra), &[]).await;
        let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{kind}: {status:?}");
        assert!(status.message().contains("307"), "{kind}: {}", status.message());
        assert!(!status.message().contains(TEST_KEY), "{kind}");
        assert_eq!(redirecting.received().len(), 1, "{kind}");
    }
    assert!(
        elsewhere.received().is_empty(),
        "a redirect was followed: {:#?}",
        elsewhere.received()
    );
}

#[tokio::test]
async fn an_endless_stream_is_cut_at_max_output_bytes() {
    let fake = FakeUpstream::start(vec![reply(
        200,
        "text/event-stream",
        ReplyBody::Endless(CHUNK.to_vec()),
    )])
    .await;
    let mut gw = gateway(&openai(&fake, "    max_output_bytes: 100000\n"), &[]).await;
    let streamed = bounded(stream_chat(&mut gw, user_request("m", "hi"))).await;
    let status = streamed.error.as_ref().expect("the stream ends with an error");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(status), "UPSTREAM_INVALID_RESPONSE");
    assert!(status.message().contains("max_output_bytes"), "{}", status.message());
    // What reached the caller is bounded by the limit too.
    assert!(!streamed.text().is_empty());
    assert!(streamed.text().len() <= 100_000, "{}", streamed.text().len());
}

#[tokio::test]
async fn an_endless_stream_of_keep_alives_is_ended_by_the_callers_deadline() {
    // Comments only: no event ever reaches the caller, and the limit is far away.
    let fake = FakeUpstream::start(vec![reply(
        200,
        "text/event-stream",
        ReplyBody::Endless(b": keep-alive\n\n".to_vec()),
    )])
    .await;
    // The gateway's deadline for calls that bring none (a client's own `grpc-timeout` would
    // be enforced by tonic's client before the server's answer arrives).
    let yaml = format!(
        "server: {{request_timeout: 500ms}}\n{}",
        openai(&fake, "    max_output_bytes: 100000000000\n")
    );
    let mut gw = gateway(&yaml, &[]).await;
    let request = tonic::Request::new(streaming(user_request("m", "hi")));
    let result = bounded(async {
        let mut stream = gw.client.stream_chat(request).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<_, tonic::Status>(())
    })
    .await;
    let status = result.expect_err("an endless stream cannot end cleanly");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn a_stalled_stream_ends_with_unavailable_after_the_idle_timeout() {
    let first = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_vec();
    let fake = FakeUpstream::start(vec![reply(
        200,
        "text/event-stream",
        ReplyBody::StallAfter(vec![first]),
    )])
    .await;
    let mut gw = gateway(&openai(&fake, "    request_timeout: 300ms\n"), &[]).await;
    let streamed = bounded(stream_chat(&mut gw, user_request("m", "hi"))).await;
    assert_eq!(streamed.text(), "Hel");
    let status = streamed.error.expect("a stalled stream ends with an error");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn a_unary_reply_that_stalls_mid_body_times_out() {
    let fake = FakeUpstream::start(vec![reply(
        200,
        "application/json",
        ReplyBody::StallAfter(vec![b"{\"id\":\"x\",\"choices\":[".to_vec()]),
    )])
    .await;
    let mut gw = gateway(&openai(&fake, "    request_timeout: 300ms\n"), &[]).await;
    let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn gigantic_and_endless_unary_bodies_are_refused_at_max_output_bytes() {
    let mut big = b"{\"choices\":[{\"message\":{\"content\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2_000_000));
    big.extend_from_slice(b"\"}}]}");
    for body in [ReplyBody::Whole(big), ReplyBody::Endless(b"xxxxxxxxxxxxxxxx".to_vec())] {
        let fake = FakeUpstream::start(vec![reply(200, "application/json", body)]).await;
        let mut gw = gateway(&openai(&fake, "    max_output_bytes: 100000\n"), &[]).await;
        let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "UPSTREAM_INVALID_RESPONSE");
        assert!(status.message().contains("max_output_bytes"), "{}", status.message());
    }
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_in_part() {
    // A 500 whose body never ends: only the start of it is read, so the call ends at once
    // (not at the 300 s request timeout) and the message is short.
    let page = b"<html><body>Internal Server Error ".to_vec();
    let fake = FakeUpstream::start(vec![reply(500, "text/html", ReplyBody::Endless(page))]).await;
    let mut gw = gateway(&openai(&fake, ""), &[]).await;
    let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_SERVER_ERROR");
    assert!(status.message().len() < 2000, "{}", status.message().len());
}

#[tokio::test]
async fn an_html_error_page_becomes_a_short_clear_error() {
    let page = format!(
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "<p>nginx</p>".repeat(1000)
    );
    for (status_code, code) in [(502, Code::Unavailable), (404, Code::NotFound)] {
        let fake = FakeUpstream::start(vec![reply(
            status_code,
            "text/html",
            ReplyBody::Whole(page.clone().into_bytes()),
        )])
        .await;
        let mut gw = gateway(&openai(&fake, ""), &[]).await;
        let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(&status_code.to_string()), "{}", status.message());
        assert!(status.message().len() < 2000, "{}", status.message().len());
    }
}

#[tokio::test]
async fn wrong_content_types_never_end_cleanly() {
    // A unary call answered with an HTML page under 200.
    let html = b"<html><body>Welcome to nginx!</body></html>".to_vec();
    let fake =
        FakeUpstream::start(vec![reply(200, "text/html", ReplyBody::Whole(html.clone()))]).await;
    let mut gw = gateway(&openai(&fake, ""), &[]).await;
    let status = bounded(gw.client.chat(user_request("m", "hi"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_INVALID_RESPONSE");

    // A stream answered with a JSON body, or with the HTML page: no SSE events, no end marker.
    for body in [fixture("openai/chat.json"), html] {
        let fake =
            FakeUpstream::start(vec![reply(200, "application/json", ReplyBody::Whole(body))]).await;
        let mut gw = gateway(&openai(&fake, ""), &[]).await;
        let streamed = bounded(stream_chat(&mut gw, user_request("m", "hi"))).await;
        assert!(streamed.events.is_empty(), "{:?}", streamed.events);
        let status = streamed.error.expect("a stream without its end marker is an error");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
}

#[tokio::test]
async fn a_stream_of_garbage_events_is_invalid() {
    let fake = FakeUpstream::start(vec![reply(
        200,
        "text/event-stream",
        ReplyBody::Whole(b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: \xff\xfe{not json\n\n".to_vec()),
    )])
    .await;
    let mut gw = gateway(&openai(&fake, ""), &[]).await;
    let streamed = bounded(stream_chat(&mut gw, user_request("m", "hi"))).await;
    assert_eq!(streamed.text(), "ok");
    let status = streamed.error.expect("garbage ends the stream with an error");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_INVALID_RESPONSE");
}
