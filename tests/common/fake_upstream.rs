//! A fake provider upstream on 127.0.0.1 that replays recorded fixtures and records every
//! request it receives, plus a gateway started against it.
//!
//! A [`FakeUpstream`] answers requests with its [`Reply`]s in order (the last one repeats).
//! A reply is a status, headers and a body that is either whole, sent in chunks, or cut: the
//! connection breaks after the chunks, as when an upstream dies mid-stream.

// Test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use ai_service::{Config, Gateway, proto::v1::chat_service_client::ChatServiceClient};
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// Reads `tests/fixtures/<path>`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// How the body of a reply is sent.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// All at once.
    Whole(Vec<u8>),
    /// In these pieces, flushed one by one.
    Chunks(Vec<Vec<u8>>),
    /// These pieces, then the connection breaks.
    CutAfter(Vec<Vec<u8>>),
    /// This piece, again and again, for as long as the reader reads.
    Endless(Vec<u8>),
    /// These pieces, then silence with the connection open.
    StallAfter(Vec<Vec<u8>>),
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

impl Reply {
    /// A JSON reply with `status` from a fixture file.
    pub fn json(status: u16, fixture_path: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: ReplyBody::Whole(fixture(fixture_path)),
        }
    }

    /// A 200 SSE reply from a fixture file, sent in small pieces so events straddle reads.
    pub fn sse(fixture_path: &str) -> Reply {
        let bytes = fixture(fixture_path);
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: ReplyBody::Chunks(bytes.chunks(7).map(<[u8]>::to_vec).collect()),
        }
    }

    /// With an extra header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same body, but the connection breaks after it.
    pub fn then_break(mut self) -> Reply {
        self.body = match self.body {
            ReplyBody::Whole(b) => ReplyBody::CutAfter(vec![b]),
            ReplyBody::Chunks(c) | ReplyBody::CutAfter(c) | ReplyBody::StallAfter(c) => {
                ReplyBody::CutAfter(c)
            }
            ReplyBody::Endless(c) => ReplyBody::Endless(c),
        };
        self
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body as it came, e.g. to check a signature over it.
    pub raw: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
struct Shared {
    replies: Arc<Mutex<Vec<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Endless bodies still being sent: one ends when the reader goes away.
    endless: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts one endless body for as long as it lives.
struct Live(Arc<std::sync::atomic::AtomicUsize>);

impl Live {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Live {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running fake upstream; stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts a fake answering with `replies` in order.
    pub async fn start(replies: Vec<Reply>) -> FakeUpstream {
        assert!(!replies.is_empty());
        let shared = Shared {
            replies: Arc::new(Mutex::new(replies)),
            received: Arc::default(),
            endless: Arc::default(),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many endless bodies are still being sent: one stops when its reader went away.
    pub fn endless_bodies(&self) -> usize {
        self.shared.endless.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The one request received; fails when there were more or none.
    pub fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "requests: {received:#?}");
        received.into_iter().next().unwrap()
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    shared.received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        raw: body.clone(),
    });
    let reply = {
        let mut replies = shared.replies.lock().unwrap();
        if replies.len() > 1 { replies.remove(0) } else { replies[0].clone() }
    };
    let body = match reply.body {
        ReplyBody::Whole(bytes) => Body::from(bytes),
        ReplyBody::Chunks(chunks) => Body::from_stream(futures::stream::iter(
            chunks.into_iter().map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        )),
        ReplyBody::CutAfter(chunks) => {
            let items = chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c)))
                .chain(std::iter::once(Err(std::io::Error::other("cut"))));
            Body::from_stream(futures::stream::iter(items))
        }
        ReplyBody::Endless(piece) => {
            let piece = Bytes::from(piece);
            let live = Live::new(&shared.endless);
            Body::from_stream(futures::stream::repeat_with(move || {
                let _ = &live;
                Ok::<_, std::io::Error>(piece.clone())
            }))
        }
        ReplyBody::StallAfter(chunks) => {
            let items = chunks.into_iter().map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
            Body::from_stream(futures::stream::iter(items).chain(futures::stream::pending()))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// A gateway serving on 127.0.0.1:0; shuts down when dropped.
pub struct TestGateway {
    pub client: ChatServiceClient<Channel>,
    /// Where it serves, for clients of its other services.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// The key the tests hand the gateway through the environment.
pub const TEST_KEY: &str = "sk-test-0123456789abcdef";

/// Starts a gateway from `yaml`, with `TEST_KEY` and `vars` as its environment.
pub async fn gateway(yaml: &str, vars: &[(&str, &str)]) -> TestGateway {
    let mut env = vec![("TEST_KEY".to_owned(), TEST_KEY.to_owned())];
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(String, String)> = env.into_iter().chain(super::quiet_audit(yaml)).collect();
    let config = Config::from_yaml(yaml, env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let gateway = Gateway::new(config).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = gateway
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let client = ChatServiceClient::connect(format!("http://{addr}")).await.unwrap();
    TestGateway { client, addr, stop: Some(stop), task }
}

/// A provider block for a config, pointing at `fake` with the test key and no proxy.
pub fn provider_yaml(name: &str, kind: &str, base_url: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: {kind}\n    base_url: {base_url}\n    api_key_env: TEST_KEY\n    disable_proxy: true\n{extra}"
    )
}

// Calling the gateway.

use ai_service::proto::v1 as pb;
use futures::StreamExt;
use tonic_types::StatusExt;

/// A request with one user message.
pub fn user_request(model: &str, text: &str) -> pb::ChatRequest {
    pb::ChatRequest {
        model: model.into(),
        messages: vec![message(pb::Role::User, text)],
        ..Default::default()
    }
}

/// A text message.
pub fn message(role: pb::Role, text: &str) -> pb::Message {
    pb::Message {
        role: role as i32,
        content: vec![pb::ContentPart {
            part: Some(pb::content_part::Part::Text(text.into())),
            cache_control: None,
        }],
        ..Default::default()
    }
}

/// The streaming form of `request`.
pub fn streaming(request: pb::ChatRequest) -> pb::StreamChatRequest {
    pb::StreamChatRequest {
        model: request.model,
        messages: request.messages,
        generation: request.generation,
        tools: request.tools,
        tool_choice: request.tool_choice,
        metadata: request.metadata,
    }
}

/// What a streamed call gave: its events, and the status it ended with if not OK.
pub struct Streamed {
    pub events: Vec<pb::stream_chat_response::Event>,
    pub error: Option<tonic::Status>,
}

impl Streamed {
    /// The content deltas joined.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                pb::stream_chat_response::Event::ContentDelta(d) => Some(d.text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Tool calls assembled from their deltas: (id, name, arguments) by index.
    pub fn tool_calls(&self) -> Vec<(String, String, String)> {
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for e in &self.events {
            if let pb::stream_chat_response::Event::ToolCallDelta(d) = e {
                let i = d.index as usize;
                while calls.len() <= i {
                    calls.push(Default::default());
                }
                if !d.id.is_empty() {
                    calls[i].0 = d.id.clone();
                }
                if !d.name.is_empty() {
                    calls[i].1 = d.name.clone();
                }
                calls[i].2.push_str(&d.arguments_delta);
            }
        }
        calls
    }

    /// The usage event.
    pub fn usage(&self) -> Option<pb::Usage> {
        self.events.iter().find_map(|e| match e {
            pb::stream_chat_response::Event::Usage(u) => Some(*u),
            _ => None,
        })
    }

    /// The finish event, which must be the last.
    pub fn finish(&self) -> Option<pb::Finish> {
        match self.events.last() {
            Some(pb::stream_chat_response::Event::Finish(f)) => Some(f.clone()),
            _ => None,
        }
    }
}

/// Calls StreamChat and collects everything it sends.
pub async fn stream_chat(gateway: &mut TestGateway, request: pb::ChatRequest) -> Streamed {
    let mut events = Vec::new();
    let mut stream = match gateway.client.stream_chat(streaming(request)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return Streamed { events, error: Some(status) };
        }
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(response) => events.extend(response.event),
            Err(status) => {
                return Streamed { events, error: Some(status) };
            }
        }
    }
    Streamed { events, error: None }
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}
