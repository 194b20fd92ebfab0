//! Documents (PDF or text, as bytes or by URL): sent as Anthropic `document` blocks, Gemini
//! `inlineData` / `fileData` and OpenAI `file` parts, from the gRPC door and the OpenAI door;
//! refused by name where a provider cannot take them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common;

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use base64::Engine;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF";

fn route(kind: &str, fake: &FakeUpstream, base: &str) -> String {
    format!(
        "routing: {{max_retries: 0}}\nproviders:\n{}routes:\n  - name: m\n    targets: [{{provider: p, model: up}}]\n",
        provider_yaml("p", kind, &fake.url(base), "")
    )
}

fn document(source: pb::document::Source, mime: &str, title: &str) -> pb::ContentPart {
    pb::ContentPart {
        part: Some(pb::content_part::Part::Document(pb::Document {
            source: Some(source),
            mime_type: mime.into(),
            title: title.into(),
        })),
        cache_control: None,
    }
}

fn asking_about(documents: Vec<pb::ContentPart>) -> pb::ChatRequest {
    let mut request = user_request("m", "Summarise.");
    request.messages[0].content.splice(0..0, documents);
    request
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn violation(status: &tonic::Status) -> (String, String) {
    let details = status.get_error_details();
    let v = &details.bad_request().unwrap().field_violations[0];
    (v.field.clone(), v.description.clone())
}

#[tokio::test]
async fn anthropic_gets_document_blocks_for_pdf_bytes_urls_and_text() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let mut gw = gateway(&route("anthropic", &fake, ""), &[]).await;
    let request = asking_about(vec![
        document(pb::document::Source::Data(PDF.to_vec()), "application/pdf", "report.pdf"),
        document(pb::document::Source::Url("https://example.com/a.pdf".into()), "", ""),
        document(pb::document::Source::Data(b"plain words".to_vec()), "text/plain", ""),
    ]);
    gw.client.chat(request).await.unwrap();
    let content = &fake.only_request().body["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}})
    );
    assert_eq!(
        content[1],
        json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}})
    );
    assert_eq!(
        content[2],
        json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}})
    );
    assert_eq!(content[3], json!({"type": "text", "text": "Summarise."}));
}

#[tokio::test]
async fn gemini_gets_inline_and_file_data() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "gemini/generate.json")]).await;
    let mut gw = gateway(&route("gemini", &fake, "/v1beta"), &[]).await;
    let request = asking_about(vec![
        document(pb::document::Source::Data(PDF.to_vec()), "application/pdf", ""),
        document(
            pb::document::Source::Url("https://example.com/b.pdf".into()),
            "application/pdf",
            "",
        ),
    ]);
    gw.client.chat(request).await.unwrap();
    let parts = &fake.only_request().body["contents"][0]["parts"];
    assert_eq!(parts[0], json!({"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}}));
    assert_eq!(
        parts[1],
        json!({"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/b.pdf"}})
    );
}

#[tokio::test]
async fn openai_gets_file_parts_and_refuses_what_chat_completions_cannot_take() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("openai", &fake, "/v1"), &[]).await;
    let pdf = document(pb::document::Source::Data(PDF.to_vec()), "application/pdf", "report.pdf");
    gw.client.chat(asking_about(vec![pdf])).await.unwrap();
    let part = &fake.only_request().body["messages"][0]["content"][0];
    assert_eq!(
        part,
        &json!({"type": "file", "file": {"filename": "report.pdf", "file_data": format!("data:application/pdf;base64,{}", b64(PDF))}})
    );

    let by_url = document(pb::document::Source::Url("https://example.com/a.pdf".into()), "", "");
    let status = gw.client.chat(asking_about(vec![by_url])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation(&status).0, "messages[0].content[0].document.url");
    let text = document(pb::document::Source::Data(b"x".to_vec()), "text/plain", "");
    let status = gw.client.chat(asking_about(vec![text])).await.unwrap_err();
    assert_eq!(violation(&status).0, "messages[0].content[0].document.mime_type");

    // An OpenAI-compatible API without file input refuses documents altogether.
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("groq", &fake, "/v1"), &[]).await;
    let pdf = document(pb::document::Source::Data(PDF.to_vec()), "application/pdf", "");
    let status = gw.client.chat(asking_about(vec![pdf])).await.unwrap_err();
    let (field, why) = violation(&status);
    assert_eq!(field, "messages[0].content[0].document");
    assert!(why.contains("takes no documents"), "{why}");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn bad_documents_are_refused_at_the_door_with_their_path() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let mut gw = gateway(&route("anthropic", &fake, ""), &[]).await;
    let cases = [
        (
            document(pb::document::Source::Data(PDF.to_vec()), "", ""),
            "messages[0].content[0].document.mime_type",
        ),
        (
            document(pb::document::Source::Data(Vec::new()), "application/pdf", ""),
            "messages[0].content[0].document.data",
        ),
        (
            document(pb::document::Source::Data(PDF.to_vec()), "application/zip", ""),
            "messages[0].content[0].document.mime_type",
        ),
        (
            document(pb::document::Source::Url("ftp://x/a.pdf".into()), "", ""),
            "messages[0].content[0].document.url",
        ),
    ];
    for (part, field) in cases {
        let status = gw.client.chat(asking_about(vec![part])).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violation(&status).0, field);
    }
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn the_openai_door_takes_a_pdf_file_part_to_any_provider_that_reads_documents() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "anthropic/message.json")]).await;
    let yaml = route("anthropic", &fake, "");
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(common::quiet_audit(&yaml));
    let server =
        common::TestServer::start_with(ai_service::Config::from_yaml(&yaml, env).unwrap()).await;
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "r.pdf", "file_data": format!("data:application/pdf;base64,{}", b64(PDF))}},
            {"type": "text", "text": "Summarise.", "cache_control": {"type": "ephemeral"}},
        ]}],
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let content = &fake.only_request().body["messages"][0]["content"];
    assert_eq!(content[0]["type"], "document");
    assert_eq!(content[0]["title"], "r.pdf");
    assert_eq!(content[0]["source"]["data"], b64(PDF));
    assert_eq!(content[1]["cache_control"], json!({"type": "ephemeral"}));

    // file_id needs a Files API the gateway does not have.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]});
    let response = client
        .post(format!("http://{}/v1/chat/completions", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "messages[0].content[0].file.file_id");
}
