//! A configuration reload swaps providers and routes without a restart: new calls use the new
//! routes, calls in flight finish on the old ones, and no call fails; the binary does it on
//! SIGHUP, and a config that does not load keeps the one in force.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use std::{process::Stdio, time::Duration};

use crate::common::{Binary, TestServer, chat, collect, stream_chat};
use ai_service::{
    Config,
    proto::v1::{ListModelsRequest, chat_service_client::ChatServiceClient},
};
use tonic::Code;

const BEFORE: &str = "providers: {e: {kind: echo, chunk_delay: 2ms}}\nroutes: [{name: old, targets: [{provider: e, model: m1}]}, {name: kept, targets: [{provider: e, model: m1}]}]\n";
const AFTER: &str = "providers: {e: {kind: echo, chunk_delay: 2ms}}\nroutes: [{name: new, targets: [{provider: e, model: m2}]}, {name: kept, targets: [{provider: e, model: m2}]}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_routes_under_load_without_failing_a_call() {
    let server = TestServer::start(BEFORE).await;
    let mut workers = Vec::new();
    for _ in 0..6 {
        let mut client = server.client().await;
        workers.push(tokio::spawn(async move {
            let mut models = Vec::new();
            for _ in 0..60 {
                let stream =
                    client.stream_chat(stream_chat("kept", "a b c")).await.expect("a call failed");
                let (events, status) = collect(stream.into_inner()).await;
                assert!(status.is_none(), "a stream was cut by the reload: {status:?}");
                if let Some(ai_service::proto::v1::stream_chat_response::Event::Finish(f)) =
                    events.last()
                {
                    models.push(f.provider_model.clone());
                }
            }
            models
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.gateway.reload(&Config::from_yaml(AFTER, common::quiet_audit(AFTER)).unwrap());

    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert_eq!(seen.len(), 360, "every call answered");
    assert!(
        seen.iter().any(|m| m == "m1") && seen.iter().any(|m| m == "m2"),
        "calls ran on both configs"
    );
    let mut client = server.client().await;
    assert_eq!(client.chat(chat("new", "hi")).await.unwrap().into_inner().provider_model, "m2");
    assert_eq!(client.chat(chat("old", "hi")).await.unwrap_err().code(), Code::NotFound);
    let names: Vec<String> = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["kept", "new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("audit: {{sink: {}}}\n{BEFORE}", dir.path().join("audit").display()),
    )
    .unwrap();
    let server = Binary::start(&config, &[], Stdio::null(), Stdio::null()).await;
    let channel = server.channel().await;
    let mut client = ChatServiceClient::new(channel);
    let names = |models: Vec<ai_service::proto::v1::Model>| -> Vec<String> {
        models.into_iter().map(|m| m.name).collect()
    };
    let hup = || server.signal("HUP");

    // A file that does not load: the config in force stays.
    std::fs::write(&config, "routes: [{name: broken}]\n").unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = names(client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models);
    assert_eq!(listed, ["kept", "old"]);

    std::fs::write(
        &config,
        format!("audit: {{sink: {}}}\n{AFTER}", dir.path().join("audit").display()),
    )
    .unwrap();
    hup();
    let mut reloaded = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let listed =
            names(client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models);
        if listed == ["kept", "new"] {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "SIGHUP did not apply the new routes");
    client.chat(chat("new", "hi")).await.unwrap();

    server.signal("TERM");
    assert!(server.wait().await.success());
}
