//! Server reflection in both versions, so grpcurl (old and new) works without the protos.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::TestServer;
use futures::StreamExt;

const EXPECTED: [&str; 4] = [
    "aiservice.v1.ChatService",
    "aiservice.v1.EmbedService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
];

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
    assert!(names.iter().any(|n| n == "aiservice.v1.EmbedService"), "{names:?}");
}

/// What a test asks reflection for.
enum Ask {
    Symbol(&'static str),
    File(&'static str),
}

/// The files of each reply, decoded, or the reply's error message.
type Replies = Vec<Result<Vec<prost_types::FileDescriptorProto>, String>>;

/// Sends `asks` over one reflection stream of `$version` (`v1` or `v1alpha`, whose generated
/// types differ only by module) and collects one reply per ask.
macro_rules! ask {
    ($version:ident, $server:expr, $asks:expr) => {{
        use prost::Message as _;
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let requests: Vec<ServerReflectionRequest> = $asks
            .iter()
            .map(|ask| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(match ask {
                    Ask::Symbol(symbol) => MessageRequest::FileContainingSymbol(symbol.to_string()),
                    Ask::File(file) => MessageRequest::FileByFilename(file.to_string()),
                }),
            })
            .collect();
        let count = requests.len();
        let mut client = ServerReflectionClient::new($server.channel().await);
        let mut stream = client
            .server_reflection_info(futures::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut replies: Replies = Vec::new();
        for _ in 0..count {
            // tonic-reflection ends the stream with a status for an unknown symbol or file.
            replies.push(match stream.next().await {
                Some(Ok(reply)) => match reply.message_response {
                    Some(MessageResponse::FileDescriptorResponse(files)) => Ok(files
                        .file_descriptor_proto
                        .iter()
                        .map(|raw| {
                            prost_types::FileDescriptorProto::decode(raw.as_slice()).unwrap()
                        })
                        .collect()),
                    Some(MessageResponse::ErrorResponse(e)) => Err(e.error_message),
                    other => panic!("unexpected reflection reply {other:?}"),
                },
                Some(Err(status)) => Err(status.message().to_owned()),
                None => Err("no reply: the stream had ended".to_owned()),
            });
        }
        replies
    }};
}

/// The error details the gateway attaches to a failed call, and every file grpcurl must
/// resolve to decode them: `error_details.proto`, `status.proto` and their imports.
const ERROR_DETAIL_ASKS: [Ask; 8] = [
    Ask::Symbol("google.rpc.ErrorInfo"),
    Ask::Symbol("google.rpc.BadRequest"),
    Ask::Symbol("google.rpc.RetryInfo"),
    Ask::Symbol("google.rpc.Status"),
    Ask::File("google/rpc/error_details.proto"),
    Ask::File("google/rpc/status.proto"),
    Ask::File("google/protobuf/duration.proto"),
    Ask::File("google/protobuf/any.proto"),
];

fn assert_error_details_are_served(replies: Replies) {
    let files: Vec<prost_types::FileDescriptorProto> = replies
        .into_iter()
        .zip(ERROR_DETAIL_ASKS.iter())
        .map(|(reply, ask)| {
            let what = match ask {
                Ask::Symbol(s) | Ask::File(s) => s,
            };
            let mut files = reply.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(files.len(), 1, "{what}");
            files.remove(0)
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "google/rpc/error_details.proto",
            "google/rpc/error_details.proto",
            "google/rpc/error_details.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
            "google/rpc/status.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/any.proto",
        ]
    );
    let details = &files[4];
    assert_eq!(details.package(), "google.rpc");
    for message in ["ErrorInfo", "BadRequest", "RetryInfo"] {
        assert!(details.message_type.iter().any(|m| m.name() == message), "{message} missing");
    }
    assert_eq!(details.dependency, ["google/protobuf/duration.proto"]);
    assert_eq!(files[5].dependency, ["google/protobuf/any.proto"]);
    // The vendored files keep their comments, so `grpcurl describe google.rpc.ErrorInfo` explains it.
    let comments = details.source_code_info.clone().unwrap().location;
    assert!(
        comments
            .iter()
            .filter_map(|l| l.leading_comments.as_deref())
            .any(|c| c.contains("Describes the cause of the error"))
    );
}

#[tokio::test]
async fn v1_serves_the_error_detail_types() {
    let server = TestServer::start("").await;
    assert_error_details_are_served(ask!(v1, server, ERROR_DETAIL_ASKS));
}

#[tokio::test]
async fn v1alpha_serves_the_error_detail_types() {
    let server = TestServer::start("").await;
    assert_error_details_are_served(ask!(v1alpha, server, ERROR_DETAIL_ASKS));
}

#[tokio::test]
async fn the_embeddings_api_is_described_with_its_comments() {
    let server = TestServer::start("").await;
    let replies = ask!(v1, server, [Ask::Symbol("aiservice.v1.EmbedService")]);
    let files = replies.into_iter().next().unwrap().unwrap();
    let embed = files.iter().find(|f| f.name() == "aiservice/v1/embed.proto").unwrap();
    assert_eq!(embed.service[0].name(), "EmbedService");
    assert_eq!(embed.dependency, ["aiservice/v1/chat.proto"]);
    let comments = embed.source_code_info.clone().unwrap().location;
    assert!(
        comments
            .iter()
            .filter_map(|l| l.leading_comments.as_deref())
            .any(|c| c.contains("EmbedService turns text into embedding vectors"))
    );
}
