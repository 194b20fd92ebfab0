//! The library embedded in another tonic service: mounting the chat service on the host's own
//! router, and serving the whole gateway on a listener the host owns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::{chat, text_of};
use ai_service::{
    Config, Gateway,
    proto::v1::{ListModelsRequest, chat_service_client::ChatServiceClient},
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test]
async fn the_chat_service_mounts_on_a_host_router() {
    let gateway =
        Gateway::new(Config::from_yaml("", common::quiet_audit("")).unwrap()).await.unwrap();
    // The host has its own health service and adds ours next to it.
    let (host_health, host_health_service) = tonic_health::server::health_reporter();
    host_health.set_service_status("host.Service", tonic_health::ServingStatus::Serving).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(
        Server::builder()
            .add_service(host_health_service)
            .add_service(gateway.chat_service())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let reply = ChatServiceClient::new(channel.clone())
        .chat(chat("echo", "embedded"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(text_of(&reply.message.unwrap()), "embedded");
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest { service: "host.Service".into() })
        .await;
    assert!(health.is_ok(), "the host's own services keep working");

    stop.send(()).unwrap();
    host.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_whole_gateway_serves_on_a_listener_the_host_owns() {
    let yaml = "providers: {mine: {kind: echo}}\nroutes: [{name: house-model, targets: [{provider: mine, model: m}]}]";
    let gateway =
        Gateway::new(Config::from_yaml(yaml, common::quiet_audit(yaml)).unwrap()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));

    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let models =
        ChatServiceClient::new(channel.clone()).list_models(ListModelsRequest {}).await.unwrap();
    assert_eq!(models.into_inner().models[0].name, "house-model");
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1);

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
