//! Server reflection in both versions, so grpcurl (old and new) works without the protos.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::TestServer;
use futures::StreamExt;

const EXPECTED: [&str; 3] =
    ["aiservice.v1.ChatService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"];

#[tokio::test]
async fn v1_lists_services_and_describes_the_chat_api_with_comments() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start("").await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = futures::stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "aiservice.v1.ChatService".into(),
            )),
        },
    ]);
    let mut replies = client.server_reflection_info(requests).await.unwrap().into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in EXPECTED {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a file descriptor")
    };
    use prost::Message as _;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    assert_eq!(file.package(), "aiservice.v1");
    // Source info travels with the descriptor, so `grpcurl describe` shows the comments.
    let comments =
        file.source_code_info.unwrap().location.into_iter().filter_map(|l| l.leading_comments);
    assert!(comments.into_iter().any(|c| c.contains("ChatService answers chat completions")));
}

#[tokio::test]
async fn v1alpha_lists_services_for_older_tools() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start("").await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies =
        client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "aiservice.v1.ChatService"), "{names:?}");
}
