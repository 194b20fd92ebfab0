//! The standard gRPC health protocol: Check, Watch, and the switch to NOT_SERVING on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::TestServer;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const CHAT: &str = "aiservice.v1.ChatService";

#[tokio::test]
async fn check_reports_serving_for_the_server_and_the_chat_service() {
    let server = TestServer::start("").await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", CHAT] {
        let reply = health.check(HealthCheckRequest { service: service.into() }).await.unwrap();
        assert_eq!(reply.into_inner().status(), ServingStatus::Serving, "service {service:?}");
    }
    let unknown =
        health.check(HealthCheckRequest { service: "no.such.Service".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn watch_sees_not_serving_on_shutdown_and_then_ends() {
    let mut server = TestServer::start("").await;
    let mut health = HealthClient::new(server.channel().await);
    let mut overall =
        health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let mut chat =
        health.watch(HealthCheckRequest { service: CHAT.into() }).await.unwrap().into_inner();
    assert_eq!(overall.message().await.unwrap().unwrap().status(), ServingStatus::Serving);
    assert_eq!(chat.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    server.begin_shutdown();

    assert_eq!(overall.message().await.unwrap().unwrap().status(), ServingStatus::NotServing);
    assert_eq!(chat.message().await.unwrap().unwrap().status(), ServingStatus::NotServing);
    // The watches end, so they do not hold the drain up.
    assert!(overall.message().await.unwrap().is_none());
    assert!(chat.message().await.unwrap().is_none());
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn check_reports_not_serving_during_the_shutdown_delay() {
    let mut server = TestServer::start("server: {shutdown_delay: 500ms}").await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch =
        health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    server.begin_shutdown();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::NotServing);

    // Still answering during the delay, but no longer SERVING; alive all the same, so a
    // liveness probe does not restart a draining pod.
    let reply = health.check(HealthCheckRequest { service: CHAT.into() }).await.unwrap();
    assert_eq!(reply.into_inner().status(), ServingStatus::NotServing);
    let reply = health.check(HealthCheckRequest { service: "liveness".into() }).await.unwrap();
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn the_healthcheck_probe_agrees() {
    let mut server = TestServer::start("").await;
    let addr = server.addr.to_string();
    let timeout = std::time::Duration::from_secs(5);
    ai_service::healthcheck::probe(&addr, "", timeout).await.unwrap();
    ai_service::healthcheck::probe(&addr, CHAT, timeout).await.unwrap();
    let err = ai_service::healthcheck::probe(&addr, "no.such.Service", timeout).await.unwrap_err();
    assert!(err.to_string().contains("NotFound"), "{err}");

    server.begin_shutdown();
    server.stopped().await.unwrap();
    let err = ai_service::healthcheck::probe(&addr, "", timeout).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
}
