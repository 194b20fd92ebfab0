//! `ListModels` lists the configured routes with their targets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::TestServer;
use ai_service::proto::v1 as pb;

#[tokio::test]
async fn lists_the_builtin_echo_route_by_default() {
    let server = TestServer::start("").await;
    let models = server
        .client()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "echo");
    assert!(models[0].available);
    assert_eq!(models[0].targets[0].provider, "echo");
}

#[tokio::test]
async fn lists_configured_routes_sorted_with_aliases_and_targets() {
    let yaml = r#"
providers:
  a: {kind: echo}
  b: {kind: echo}
routes:
  - {name: zeta, targets: [{provider: a, model: m1}]}
  - {name: alpha, aliases: [first], targets: [{provider: b, model: m2}, {provider: a, model: m3}]}
"#;
    let server = TestServer::start(yaml).await;
    let models = server
        .client()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(models[0].aliases, ["first"]);
    let chain: Vec<(&str, &str)> =
        models[0].targets.iter().map(|t| (t.provider.as_str(), t.model.as_str())).collect();
    assert_eq!(chain, [("b", "m2"), ("a", "m3")]);
}
