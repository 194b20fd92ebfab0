//! A provider behind an HTTP proxy: its requests go to the proxy (reqwest's path, see
//! `src/provider/transport.rs`), naming the upstream in absolute form, with the key; unary
//! replies and streams come back through it unchanged. The proxy here is the fake upstream
//! itself, so the upstream's own host (`upstream.invalid`) is never resolved.

use crate::common::fake_upstream::*;

fn config(proxy: &FakeUpstream) -> String {
    format!(
        "providers:\n  openai:\n    kind: openai\n    base_url: http://upstream.invalid/v1\n    api_key_env: TEST_KEY\n    proxy: {}\nroutes:\n  - {{name: gpt, max_retries: 0, targets: [{{provider: openai, model: gpt-4o}}]}}\n",
        proxy.url("")
    )
}

#[tokio::test]
async fn calls_go_through_the_configured_proxy() {
    let proxy = FakeUpstream::start(vec![
        Reply::json(200, "openai/chat.json"),
        Reply::sse("openai/stream_text.sse"),
    ])
    .await;
    let mut gw = gateway(&config(&proxy), &[]).await;
    let reply = gw.client.chat(user_request("gpt", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(reply.provider_model, "gpt-4o-2024-08-06");
    let streamed = stream_chat(&mut gw, user_request("gpt", "hi")).await;
    assert!(!streamed.text().is_empty());
    assert!(streamed.finish().is_some());
    let received = proxy.received();
    assert_eq!(received.len(), 2);
    for request in received {
        assert_eq!(request.uri, "http://upstream.invalid/v1/chat/completions");
        assert_eq!(request.header("host"), Some("upstream.invalid"));
        assert_eq!(request.header("authorization"), Some(&*format!("Bearer {TEST_KEY}")));
    }
}
