//! The Bedrock adapter against a fake Bedrock runtime that speaks the Converse wire format:
//! JSON for `converse` and `invoke`, AWS's binary event stream for `converse-stream` (frames
//! encoded from the fixture's events, sent in 7-byte pieces). Every request the fake receives
//! is checked for a valid SigV4 signature, recomputed independently ([`sigv4`]), and for its
//! path and body. Failover, error types and embeddings are covered here; the credential
//! chain (web identity, container, instance metadata, profile) with the real binary in
//! [`credentials`]; botocore against the fake in [`botocore`].

mod botocore;
mod credentials;
pub(crate) mod sigv4;

use ai_service::proto::v1 as pb;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};
use tonic::Code;

use crate::common::fake_upstream::*;

pub(crate) const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(crate) const SESSION_TOKEN: &str = "FwoGZXIvYXdzEBYaDHhNTPtSessionTokenExample";
pub(crate) const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
pub(crate) const CLAUDE_PATH: &str = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0";

/// The AWS keys the gateway reads from its environment.
const KEYS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ("AWS_SESSION_TOKEN", SESSION_TOKEN),
];

/// The event-stream frames of the `converse_stream.json` fixture (or another of its shape).
pub(crate) fn event_stream(fixture_path: &str) -> Vec<u8> {
    let events: Vec<Value> = serde_json::from_slice(&fixture(fixture_path)).unwrap();
    let mut out = Vec::new();
    for event in events {
        let message = Message::new(serde_json::to_vec(&event["payload"]).unwrap())
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event["event"].as_str().unwrap().to_owned().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    }
    out
}

/// One exception frame, as Bedrock sends a failure in the middle of a stream.
fn exception_frame(kind: &str, message: &str) -> Vec<u8> {
    let frame = Message::new(serde_json::to_vec(&json!({"message": message})).unwrap())
        .add_header(Header::new(":exception-type", HeaderValue::String(kind.to_owned().into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
        .add_header(Header::new(":message-type", HeaderValue::String("exception".into())));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&frame, &mut out).unwrap();
    out
}

/// A 200 event-stream reply sent in small pieces, so frames straddle reads.
pub(crate) fn stream_reply(bytes: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/vnd.amazon.eventstream".into()),
            ("x-amzn-requestid".into(), "7f3c2a10-stream".into()),
        ],
        body: ReplyBody::Chunks(bytes.chunks(7).map(<[u8]>::to_vec).collect()),
    }
}

/// A Bedrock error reply of `kind`, the way AWS sends it.
pub(crate) fn error_reply(status: u16, kind: &str, fixture_path: &str) -> Reply {
    Reply::json(status, fixture_path).header(
        "x-amzn-errortype",
        &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
    )
}

/// Checks the SigV4 signature of `got` with `secret`; returns what it covered.
pub(crate) fn check_signature(got: &Received, secret: &str) -> sigv4::Signed {
    let (path, query) = got.uri.split_once('?').unwrap_or((&got.uri, ""));
    let header = |name: &str| got.header(name).map(str::to_owned);
    sigv4::verify(&got.method, path, query, &header, &got.raw, secret)
        .unwrap_or_else(|e| panic!("bad signature on {}: {e}", got.uri))
}

/// A gateway with a `bedrock` provider at `upstream` (keys from the environment), routes
/// `claude` and `nova`, and `extra` YAML.
async fn start(replies: Vec<Reply>, extra: &str) -> (TestGateway, FakeUpstream) {
    let upstream = FakeUpstream::start(replies).await;
    let yaml = format!(
        "providers:
  bedrock:
    kind: bedrock
    region: us-east-1
    base_url: {}
    disable_proxy: true
  echo: {{kind: echo}}
routes:
  - name: claude
    targets: [{{provider: bedrock, model: {CLAUDE}}}]
  - name: nova
    targets: [{{provider: bedrock, model: amazon.nova-pro-v1:0}}]
  - name: titan
    targets: [{{provider: bedrock, model: amazon.titan-embed-text-v2:0}}]
  - name: cohere-embed
    targets: [{{provider: bedrock, model: cohere.embed-english-v3}}]
{extra}",
        upstream.url("")
    );
    (gateway(&yaml, &KEYS).await, upstream)
}

fn text_of(part: &pb::ContentPart) -> Option<&str> {
    match &part.part {
        Some(pb::content_part::Part::Text(t)) => Some(t),
        _ => None,
    }
}

#[tokio::test]
async fn converse_is_signed_with_sigv4_and_its_reply_mapped() {
    let reply =
        Reply::json(200, "bedrock/converse.json").header("x-amzn-requestid", "7f3c2a10-unary");
    let (mut gw, upstream) = start(vec![reply], "").await;
    let mut request = user_request("claude", "Weather in Paris?");
    request.messages.insert(0, message(pb::Role::System, "Be brief."));
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let got = upstream.only_request();
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, format!("{CLAUDE_PATH}/converse"));
    let signed = check_signature(&got, SECRET_KEY);
    assert_eq!(signed.access_key_id, ACCESS_KEY_ID);
    assert_eq!((signed.region.as_str(), signed.service.as_str()), ("us-east-1", "bedrock"));
    for header in ["content-type", "host", "x-amz-date", "x-amz-security-token"] {
        assert!(signed.signed_headers.iter().any(|h| h == header), "{header} unsigned: {signed:?}");
    }
    assert_eq!(got.header("x-amz-security-token"), Some(SESSION_TOKEN));
    assert_eq!(
        got.body,
        json!({
            "system": [{"text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
        })
    );

    assert_eq!(reply.id, "7f3c2a10-unary");
    assert_eq!(reply.provider, "bedrock");
    assert_eq!(reply.finish_reason, pb::FinishReason::ToolCalls as i32);
    let message = reply.message.unwrap();
    let texts: Vec<&str> = message.content.iter().filter_map(text_of).collect();
    assert_eq!(texts, ["Let me check the weather in Paris."]);
    let reasoning = message.content.iter().find_map(|p| match &p.part {
        Some(pb::content_part::Part::Reasoning(r)) => Some(r.clone()),
        _ => None,
    });
    let reasoning = reasoning.expect("the reasoning part");
    assert!(reasoning.text.starts_with("The user asks"));
    assert_eq!(reasoning.signature, "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds");
    assert_eq!(message.tool_calls.len(), 1);
    assert_eq!(message.tool_calls[0].id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(message.tool_calls[0].name, "get_weather");
    let arguments: Value = serde_json::from_str(&message.tool_calls[0].arguments_json).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let usage = reply.usage.unwrap();
    // Converse counts cached and cache-writing input apart, as Anthropic does.
    assert_eq!(usage.input_tokens, 30 + 1200 + 400);
    assert_eq!(usage.cached_input_tokens, 1200);
    assert_eq!(usage.cache_write_input_tokens, 400);
    assert_eq!(usage.output_tokens, 47);
    assert!(!usage.estimated);
}

#[tokio::test]
async fn converse_stream_frames_become_reasoning_text_and_tool_call_events() {
    let (mut gw, upstream) =
        start(vec![stream_reply(event_stream("bedrock/converse_stream.json"))], "").await;
    let streamed = stream_chat(&mut gw, user_request("claude", "Weather in Paris?")).await;
    assert!(streamed.error.is_none(), "{:?}", streamed.error);

    let got = upstream.only_request();
    assert_eq!(got.uri, format!("{CLAUDE_PATH}/converse-stream"));
    assert_eq!(got.header("accept"), Some("application/vnd.amazon.eventstream"));
    check_signature(&got, SECRET_KEY);

    let reasoning: Vec<pb::ReasoningDelta> = streamed
        .events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ReasoningDelta(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let text: String = reasoning.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(text, "Paris weather, so call the tool.");
    assert_eq!(reasoning.last().unwrap().signature, "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    assert_eq!(streamed.text(), "Let me check the weather.");
    let calls = streamed.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"city": "Paris"}));
    let usage = streamed.usage().unwrap();
    assert_eq!(
        (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens),
        (1630, 1200, 47)
    );
    let finish = streamed.finish().expect("ends with Finish");
    assert_eq!(finish.reason, pb::FinishReason::ToolCalls as i32);
    assert_eq!(finish.id, "7f3c2a10-stream");
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_or_mid_frame_is_never_a_finish() {
    let frames = event_stream("bedrock/converse_stream.json");
    // Up to the end of the last text block's frames: no messageStop.
    let mut before_stop = Vec::new();
    let events: Vec<Value> =
        serde_json::from_slice(&fixture("bedrock/converse_stream.json")).unwrap();
    for event in events.iter().take(7) {
        let message = Message::new(serde_json::to_vec(&event["payload"]).unwrap())
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event["event"].as_str().unwrap().to_owned().into()),
            ))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        aws_smithy_eventstream::frame::write_message_to(&message, &mut before_stop).unwrap();
    }
    // Cut in the middle of a frame, after everything else.
    let mid_frame = frames[..frames.len() - 5].to_vec();
    for (body, what) in [(before_stop, "before messageStop"), (mid_frame, "mid-frame")] {
        let (mut gw, _upstream) = start(vec![stream_reply(body)], "").await;
        let streamed = stream_chat(&mut gw, user_request("claude", "hi")).await;
        assert!(streamed.finish().is_none(), "{what}: a cut stream must not finish");
        let status = streamed.error.unwrap_or_else(|| panic!("{what}: no error"));
        assert_eq!(reason(&status), "UPSTREAM_STREAM_CUT", "{what}: {status:?}");
    }
}

#[tokio::test]
async fn an_exception_frame_ends_the_stream_with_its_kind() {
    let body = event_stream("bedrock/converse_stream.json");
    // The first two frames, then a throttling exception.
    let mut first_two = Vec::new();
    let mut at = 0;
    for _ in 0..2 {
        let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        first_two.extend_from_slice(&body[at..at + len]);
        at += len;
    }
    first_two.extend(exception_frame("throttlingException", "Too many tokens, slow down."));
    let (mut gw, _upstream) = start(vec![stream_reply(first_two)], "").await;
    let streamed = stream_chat(&mut gw, user_request("claude", "hi")).await;
    assert!(streamed.finish().is_none());
    let status = streamed.error.expect("an error");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("Too many tokens"), "{status:?}");
}

#[tokio::test]
async fn error_types_decide_the_code_and_model_not_ready_is_unavailable() {
    for (reply, code, reason_text) in [
        (
            error_reply(429, "ThrottlingException", "bedrock/throttling.json"),
            Code::ResourceExhausted,
            "UPSTREAM_RATE_LIMITED",
        ),
        // A 429 by status, but not a rate limit: the model is loading.
        (
            error_reply(429, "ModelNotReadyException", "bedrock/model_not_ready.json"),
            Code::Unavailable,
            "UPSTREAM_SERVER_ERROR",
        ),
        (
            error_reply(503, "ServiceUnavailableException", "bedrock/model_not_ready.json"),
            Code::Unavailable,
            "UPSTREAM_SERVER_ERROR",
        ),
        (
            error_reply(404, "ResourceNotFoundException", "bedrock/model_not_ready.json"),
            Code::NotFound,
            "UPSTREAM_MODEL_NOT_FOUND",
        ),
    ] {
        let (mut gw, _upstream) = start(vec![reply], "routing: {max_retries: 0}\n").await;
        let status = gw.client.chat(user_request("claude", "hi")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, reason_text), "{status:?}");
    }
}

#[tokio::test]
async fn a_refused_credential_names_aws_and_never_a_secret() {
    let (mut gw, _upstream) =
        start(vec![error_reply(403, "AccessDeniedException", "bedrock/access_denied.json")], "")
            .await;
    let status = gw.client.chat(user_request("claude", "hi")).await.unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_AUTH_FAILED");
    assert!(status.message().contains("AWS refused the credentials"), "{status:?}");
    assert!(status.message().contains("bedrock:InvokeModel"), "{status:?}");
    let shown = format!("{status:?}");
    assert!(!shown.contains(SECRET_KEY) && !shown.contains(SESSION_TOKEN), "{shown}");
}

#[tokio::test]
async fn claude_fails_over_from_anthropic_to_a_throttled_bedrock_to_vertex() {
    let tokens = crate::vertex::TokenServer::start(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let key = crate::vertex::key_file(&dir, &tokens.uri());
    let vertex = FakeUpstream::start(vec![Reply::json(200, "vertex/claude_message.json")]).await;
    let bedrock = FakeUpstream::start(vec![error_reply(
        429,
        "ThrottlingException",
        "bedrock/throttling.json",
    )])
    .await;
    let anthropic = FakeUpstream::start(vec![Reply::json(429, "anthropic/error_429.json")]).await;
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "providers:
  anthropic: {{kind: anthropic, base_url: '{}', api_key_env: TEST_KEY, disable_proxy: true}}
  bedrock: {{kind: bedrock, region: us-east-1, base_url: '{}', disable_proxy: true}}
  vertex:
    kind: vertex
    project: test-project
    location: us-central1
    base_url: {}
    credentials_file: {}
    disable_proxy: true
routes:
  - name: chain
    targets:
      - {{provider: anthropic, model: claude-sonnet-4-20250514}}
      - {{provider: bedrock, model: {CLAUDE}}}
      - {{provider: vertex, model: claude-sonnet-4@20250514}}
  - name: bedrock-only
    targets: [{{provider: bedrock, model: {CLAUDE}}}]
routing: {{max_retries: 2}}
audit: {{sink: '{}'}}
",
        anthropic.url(""),
        bedrock.url(""),
        vertex.url(""),
        key.display(),
        audit.display()
    );
    let mut gw = gateway(&yaml, &KEYS).await;
    let reply = gw.client.chat(user_request("chain", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "vertex");
    assert_eq!(anthropic.received().len(), 1);
    let throttled = bedrock.received();
    assert!(!throttled.is_empty());
    check_signature(&throttled[0], SECRET_KEY);
    let got = vertex.only_request();
    assert!(
        got.uri.ends_with("/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"),
        "{}",
        got.uri
    );
    assert_eq!(got.header("authorization"), Some(crate::vertex::bearer(1).as_str()));

    // Alone, Bedrock's model is still cooling down from its throttle: RESOURCE_EXHAUSTED at
    // once, nothing sent. Both calls leave their record.
    let status = gw.client.chat(user_request("bedrock-only", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let records = crate::common::audit_records(&audit, 2).await;
    assert_eq!(
        (
            &records[0]["route"],
            &records[0]["provider"],
            &records[0]["code"],
            &records[0]["attempts"]
        ),
        (&json!("chain"), &json!("vertex"), &json!("OK"), &json!(3)),
        "{}",
        records[0]
    );
    assert_eq!(bedrock.received().len(), 1);
    assert_eq!(
        (&records[1]["route"], &records[1]["code"], &records[1]["attempts"]),
        (&json!("bedrock-only"), &json!("RESOURCE_EXHAUSTED"), &json!(0)),
        "{}",
        records[1]
    );
}

#[tokio::test]
async fn titan_embeds_one_text_a_call_and_cohere_many() {
    use pb::embed_service_client::EmbedServiceClient;
    let titan = Reply::json(200, "bedrock/titan_embed.json")
        .header("x-amzn-bedrock-input-token-count", "5");
    let (gw, upstream) = start(vec![titan], "").await;
    let mut client = EmbedServiceClient::connect(format!("http://{}", gw.addr)).await.unwrap();
    let mut embed = pb::EmbedRequest {
        model: "titan".into(),
        inputs: vec!["first text".into(), "second text".into(), "third".into()],
        dimensions: Some(256),
        ..Default::default()
    };
    let reply = client.embed(embed.clone()).await.unwrap().into_inner();
    assert_eq!(reply.embeddings.len(), 3);
    assert_eq!(reply.usage.unwrap().input_tokens, 15);
    let got = upstream.received();
    assert_eq!(got.len(), 3);
    let mut texts: Vec<String> = Vec::new();
    for request in &got {
        assert_eq!(request.uri, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        check_signature(request, SECRET_KEY);
        assert_eq!(request.body["dimensions"], 256);
        assert_eq!(request.body["normalize"], true);
        texts.push(request.body["inputText"].as_str().unwrap().to_owned());
    }
    texts.sort();
    assert_eq!(texts, ["first text", "second text", "third"]);

    let (gw, upstream) = start(vec![Reply::json(200, "bedrock/cohere_embed.json")], "").await;
    let mut client = EmbedServiceClient::connect(format!("http://{}", gw.addr)).await.unwrap();
    embed.model = "cohere-embed".into();
    embed.inputs.truncate(2);
    embed.dimensions = None;
    let reply = client.embed(embed.clone()).await.unwrap().into_inner();
    assert_eq!(reply.embeddings.len(), 2);
    let got = upstream.only_request();
    assert_eq!(got.uri, "/model/cohere.embed-english-v3/invoke");
    assert_eq!(
        got.body,
        json!({"texts": ["first text", "second text"], "input_type": "search_document", "truncate": "NONE"})
    );
    // A fixed-size model refuses dimensions before anything is sent.
    embed.dimensions = Some(256);
    let status = client.embed(embed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(upstream.received().len(), 1);
}
