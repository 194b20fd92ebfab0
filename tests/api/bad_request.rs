//! Invalid input gets the right gRPC code, a message a user understands, and rich details:
//! `ErrorInfo` always, `BadRequest` field violations for invalid arguments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{TestServer, chat, stream_chat, user};
use ai_service::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn violations(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.domain, "ai-service");
    details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn empty_messages_are_invalid() {
    let server = TestServer::start("").await;
    let request = pb::ChatRequest { model: "echo".into(), ..Default::default() };
    let status = server.client().await.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("messages: at least one message is required"),
        "{}",
        status.message()
    );
    assert_eq!(violations(&status), ["messages"]);
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "INVALID_REQUEST");
}

#[tokio::test]
async fn an_unknown_or_missing_role_is_invalid() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let mut request = chat("echo", "hi");
    request.messages.push(pb::Message { role: 42, ..user("x") });
    request.messages.push(pb::Message { role: 0, ..user("y") });
    let status = client.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("unknown role 42"), "{}", status.message());
    assert_eq!(violations(&status), ["messages[1].role", "messages[2].role"]);
}

#[tokio::test]
async fn a_negative_max_tokens_is_invalid_in_both_rpcs() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;
    let generation = Some(pb::GenerationConfig { max_tokens: Some(-5), ..Default::default() });

    let status = client
        .chat(pb::ChatRequest { generation: generation.clone(), ..chat("echo", "hi") })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("must be positive, got -5"));
    assert_eq!(violations(&status), ["generation.max_tokens"]);

    let status = client
        .stream_chat(pb::StreamChatRequest { generation, ..stream_chat("echo", "hi") })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["generation.max_tokens"]);
}

#[tokio::test]
async fn an_unknown_model_is_not_found() {
    let server = TestServer::start("").await;
    let status = server.client().await.chat(chat("gpt-17", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("\"gpt-17\""), "{}", status.message());
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "MODEL_NOT_FOUND");
    assert_eq!(info.metadata["model"], "gpt-17");
}

#[tokio::test]
async fn a_missing_model_and_bad_schema_are_reported_together() {
    let server = TestServer::start("").await;
    let mut request = chat("", "hi");
    request.generation = Some(pb::GenerationConfig {
        temperature: Some(3.5),
        response_format: Some(pb::ResponseFormat {
            r#type: pb::ResponseFormatType::JsonSchema as i32,
            json_schema: Some(pb::JsonSchema {
                name: "answer".into(),
                schema_json: "{not json".into(),
                ..Default::default()
            }),
        }),
        ..Default::default()
    });
    let status = server.client().await.chat(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        ["model", "generation.temperature", "generation.response_format.json_schema.schema_json"]
    );
}
