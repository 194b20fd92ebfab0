//! gRPC-Web on the gRPC port, checked at the wire: both modes' framing (binary and base64
//! text) for Chat and StreamChat, CORS (a preflight answered for an allowed origin, a
//! preflight and a call from any other refused), and the call's telemetry under
//! `front_door="grpc_web"`, refused calls too. A real gRPC-Web client (connect-web) drives the
//! same door from the TypeScript client's suite (`clients/typescript`).

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{self, TestServer, http_get, start_admin};
use ai_service::proto::v1 as pb;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ALLOWED: &str = "http://console.example:9090";
const KEY: &str = "ais_web_0123456789abcdef0123456789abc";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // HTTP/1.1, as a browser's fetch often is: gRPC-Web must not need HTTP/2.
    reqwest::Client::builder().http1_only().build().unwrap()
}

/// One length-prefixed message frame (flag 0: data).
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// A gRPC-Web answer taken apart: its HTTP status and headers, its data frames and the
/// trailers of its final frame (flag 0x80) or, for a trailers-only answer, of its headers.
struct WebAnswer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    messages: Vec<Vec<u8>>,
    trailers: HashMap<String, String>,
}

impl WebAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn grpc_status(&self) -> Option<&str> {
        self.trailers.get("grpc-status").map(String::as_str).or(self.header("grpc-status"))
    }
}

async fn web_call(
    server: &TestServer,
    method: &str,
    content_type: &str,
    message: &impl prost::Message,
    headers: &[(&str, &str)],
) -> WebAnswer {
    let text = content_type.starts_with("application/grpc-web-text");
    let framed = frame(message);
    let body = if text { B64.encode(&framed).into_bytes() } else { framed };
    let mut request = client()
        .post(format!("http://{}/aiservice.v1.ChatService/{method}", server.addr))
        .header("content-type", content_type)
        // What the answer comes back in: grpc-web-text clients ask for text.
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    // Text mode: base64 of the frames, padded per chunk, so each chunk decodes on its own.
    let bytes = if text && status == 200 {
        let mut decoded = Vec::new();
        let text = String::from_utf8(raw).unwrap();
        let mut chunk = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            chunk.push(c);
            // A chunk ends after its padding, or at the end.
            if (c == '=' && chars.peek() != Some(&'=')) || chars.peek().is_none() {
                decoded.extend(B64.decode(&chunk).unwrap());
                chunk.clear();
            }
        }
        decoded
    } else {
        raw
    };
    let (mut messages, mut trailers, mut rest) = (Vec::new(), HashMap::new(), &bytes[..]);
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let (flag, payload) = (rest[0], rest[5..5 + len].to_vec());
        if flag & 0x80 != 0 {
            for line in String::from_utf8(payload).unwrap().split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    trailers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
        } else {
            messages.push(payload);
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a partial frame at the end");
    WebAnswer { status, headers, messages, trailers }
}

fn sha(key: &str) -> String {
    ai_service::auth::hex(&Sha256::digest(key.as_bytes()))
}

async fn start(audit: &std::path::Path) -> TestServer {
    TestServer::start(&format!(
        "server: {{grpc_web: {{allowed_origins: [\"{ALLOWED}\"]}}}}\naudit: {{sink: {}}}\n\
         auth: {{keys: [{{id: web, sha256: {}}}]}}\n\
         providers: {{e: {{kind: echo}}}}\nroutes: [{{name: echo, targets: [{{provider: e, model: echo}}]}}]\n",
        audit.display(),
        sha(KEY)
    ))
    .await
}

fn text_of_stream(answer: &WebAnswer) -> (String, Vec<pb::stream_chat_response::Event>) {
    let events: Vec<_> = answer
        .messages
        .iter()
        .map(|m| pb::StreamChatResponse::decode(&m[..]).unwrap().event.unwrap())
        .collect();
    let text = events
        .iter()
        .filter_map(|e| match e {
            pb::stream_chat_response::Event::ContentDelta(d) => Some(d.text.clone()),
            _ => None,
        })
        .collect();
    (text, events)
}

#[tokio::test]
async fn both_modes_carry_chat_and_stream_chat_with_their_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = start(&audit).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    let bearer = format!("Bearer {KEY}");

    for content_type in ["application/grpc-web", "application/grpc-web+proto"] {
        let answer = web_call(
            &server,
            "Chat",
            content_type,
            &common::chat("echo", "hello binary web"),
            &[("authorization", &bearer), ("x-request-id", &format!("bin-{content_type}"))],
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/grpc-web+proto"));
        assert_eq!(answer.grpc_status(), Some("0"), "{:?}", answer.trailers);
        assert_eq!(answer.messages.len(), 1);
        let reply = pb::ChatResponse::decode(&answer.messages[0][..]).unwrap();
        assert_eq!(common::text_of(&reply.message.unwrap()), "hello binary web");
    }

    let answer = web_call(
        &server,
        "StreamChat",
        "application/grpc-web-text",
        &common::stream_chat("echo", "streamed to a browser"),
        &[("authorization", &bearer), ("x-request-id", "text-stream")],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/grpc-web-text+proto"));
    assert_eq!(answer.grpc_status(), Some("0"), "{:?}", answer.trailers);
    let (text, events) = text_of_stream(&answer);
    assert_eq!(text, "streamed to a browser");
    assert!(answer.messages.len() >= 3, "deltas, usage and finish: {}", answer.messages.len());
    assert!(matches!(events.last(), Some(pb::stream_chat_response::Event::Finish(_))));
    assert_eq!(answer.header("x-request-id"), Some("text-stream"));

    // A refused call: no key. The status comes in the headers (trailers-only) with details.
    let refused = web_call(
        &server,
        "StreamChat",
        "application/grpc-web-text",
        &common::stream_chat("echo", "no key"),
        &[("x-request-id", "text-no-key")],
    )
    .await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.grpc_status(), Some("16"));
    assert!(refused.header("grpc-status-details-bin").is_some());

    let (_, scrape) = http_get(admin, "/metrics").await;
    server.stop().await.unwrap();
    let records: HashMap<String, Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["request_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(records.len(), 4, "{records:#?}");
    for record in records.values() {
        assert_eq!(record["front_door"], "grpc_web", "{record}");
    }
    let stream = &records["text-stream"];
    assert_eq!(
        (&stream["method"], &stream["code"], &stream["client_id"]),
        (&json!("StreamChat"), &json!("OK"), &json!("web"))
    );
    assert_eq!(records["text-no-key"]["code"], "UNAUTHENTICATED");
    for (method, route, provider, code, n) in [
        ("Chat", "echo", "e", "OK", 2),
        ("StreamChat", "echo", "e", "OK", 1),
        ("StreamChat", "none", "none", "UNAUTHENTICATED", 1),
    ] {
        let line = format!(
            "ai_service_requests_total{{front_door=\"grpc_web\",method=\"{method}\",route=\"{route}\",provider=\"{provider}\",code=\"{code}\"}} {n}"
        );
        assert!(scrape.lines().any(|l| l == line), "no {line} in:\n{scrape}");
    }
    assert!(!scrape.contains("front_door=\"grpc\""), "gRPC-Web calls counted as gRPC");
}

async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    client()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/aiservice.v1.ChatService/StreamChat", server.addr),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,x-grpc-web")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_answers_an_allowed_origin_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = start(&audit).await;
    let bearer = format!("Bearer {KEY}");

    let allowed = preflight(&server, ALLOWED).await;
    assert_eq!(allowed.status(), 204);
    let header = |name: &str| allowed.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(ALLOWED));
    assert_eq!(header("access-control-allow-methods").as_deref(), Some("POST"));
    assert_eq!(
        header("access-control-allow-headers").as_deref(),
        Some("authorization,content-type,x-grpc-web")
    );

    for origin in ["http://evil.example", "http://console.example:9091", "null"] {
        let refused = preflight(&server, origin).await;
        assert_eq!(refused.status(), 403, "{origin}");
        assert!(refused.headers().get("access-control-allow-origin").is_none());
    }

    let call = web_call(
        &server,
        "Chat",
        "application/grpc-web+proto",
        &common::chat("echo", "from the console"),
        &[("authorization", &bearer), ("origin", ALLOWED), ("x-request-id", "cors-ok")],
    )
    .await;
    assert_eq!((call.status, call.grpc_status()), (200, Some("0")));
    assert_eq!(call.header("access-control-allow-origin"), Some(ALLOWED));
    let exposed = call.header("access-control-expose-headers").unwrap();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }

    let refused = web_call(
        &server,
        "Chat",
        "application/grpc-web+proto",
        &common::chat("echo", "from elsewhere"),
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
            ("x-request-id", "cors-no"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.messages.is_empty());

    // Plain gRPC is not subject to CORS: a browser cannot send it.
    let mut grpc = server.client().await;
    let mut request = tonic::Request::new(common::chat("echo", "plain"));
    request.metadata_mut().insert("authorization", bearer.parse().unwrap());
    grpc.chat(request).await.unwrap();

    server.stop().await.unwrap();
    let records = common::audit_records(&audit, 2).await;
    let ids: Vec<&str> = records.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(records.len(), 2, "the refused origin's call never became a call: {ids:?}");
    assert!(ids.contains(&"cors-ok"));
}

#[tokio::test]
async fn no_origin_is_allowed_by_default_and_grpc_web_can_be_turned_off() {
    let server = TestServer::start("").await;
    assert_eq!(preflight(&server, "http://localhost:3000").await.status(), 403);
    let call = web_call(
        &server,
        "Chat",
        "application/grpc-web",
        &common::chat("echo", "no origin sent"),
        &[],
    )
    .await;
    assert_eq!((call.status, call.grpc_status()), (200, Some("0")));
    server.stop().await.unwrap();

    let server = TestServer::start("server: {grpc_web: {enabled: false}}").await;
    let call =
        web_call(&server, "Chat", "application/grpc-web", &common::chat("echo", "off"), &[]).await;
    assert_eq!(call.status, 415, "served gRPC-Web while it is off");
    assert!(call.messages.is_empty());
    // gRPC itself is still served.
    server.client().await.chat(common::chat("echo", "plain")).await.unwrap();
    server.stop().await.unwrap();
}
