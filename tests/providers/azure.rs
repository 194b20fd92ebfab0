//! Azure OpenAI: the OpenAI wire format behind a deployment-based URL, `api-version` and the
//! `api-key` header.

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;

fn config(fake: &FakeUpstream) -> String {
    format!(
        "providers:\n{}routes:\n  - name: gpt\n    targets: [{{provider: azure, model: my-gpt4o-deployment}}]\n",
        provider_yaml("azure", "azure_openai", &fake.url(""), "    api_version: 2024-10-21\n")
    )
}

#[tokio::test]
async fn chat_goes_to_the_deployment_with_the_api_key_header() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "azure/chat.json")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let reply = gw.client.chat(user_request("gpt", "hi")).await.unwrap().into_inner();
    let got = fake.only_request();
    assert_eq!(
        got.uri,
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(got.header("api-key"), Some(TEST_KEY));
    assert_eq!(got.header("authorization"), None);
    assert!(got.body.get("model").is_none(), "the deployment names the model");
    assert_eq!(reply.provider_model, "gpt-4o-2024-11-20");
    assert_eq!(reply.usage.unwrap().total_tokens, 15);
}

#[tokio::test]
async fn stream_skips_filter_results_and_maps_content_filter() {
    let fake = FakeUpstream::start(vec![Reply::sse("azure/stream.sse")]).await;
    let mut gw = gateway(&config(&fake), &[]).await;
    let out = stream_chat(&mut gw, user_request("gpt", "hi")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(fake.only_request().body["stream_options"]["include_usage"], true);
    assert_eq!(out.text(), "Hello from Azure.");
    let finish = out.finish().unwrap();
    assert_eq!(finish.reason, pb::FinishReason::ContentFilter as i32);
    assert_eq!(finish.id, "chatcmpl-az");
    assert_eq!(out.usage().unwrap().output_tokens, 4);
}

#[tokio::test]
async fn the_endpoint_may_come_from_the_environment() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "azure/chat.json")]).await;
    let yaml = "providers:\n  azure_openai:\n    disable_proxy: true\nroutes:\n  - name: gpt\n    targets: [{provider: azure_openai, model: dep}]\n";
    let endpoint = fake.url("");
    let mut gw = gateway(
        yaml,
        &[("AZURE_OPENAI_API_KEY", "azure-key-123456"), ("AZURE_OPENAI_ENDPOINT", &endpoint)],
    )
    .await;
    gw.client.chat(user_request("gpt", "hi")).await.unwrap();
    let got = fake.only_request();
    assert!(got.uri.starts_with("/openai/deployments/dep/chat/completions?api-version="));
    assert_eq!(got.header("api-key"), Some("azure-key-123456"));
}
