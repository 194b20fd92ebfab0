//! The floor of the benchmark: the least a gRPC→OpenAI proxy built on ai-service's stack must
//! do per call, so that a run can say what any such proxy costs on this machine and how much of
//! the gateway's cost is its own. It is placed and loaded exactly like the gateway.
//!
//! The stack is the gateway's: tonic 0.14's server (hyper and h2 underneath) on tokio's default
//! multi-thread runtime, and hyper's pooled HTTP/1.1 keep-alive client (`hyper_util`'s legacy
//! client, the engine under reqwest) with TCP_NODELAY on both sides. Per call:
//! - `Chat`: decode the request, write the OpenAI JSON body (strings escaped, nothing else),
//!   POST it upstream, read the whole reply, check that it contains `"choices"`, and answer a
//!   `ChatResponse` carrying the first `"content":"…"` string of the reply, cut out by a byte
//!   search (escapes left as they are).
//! - `StreamChat`: the same request with `"stream":true`; the SSE body is forwarded as it
//!   arrives, one `StreamChatResponse` content delta per `data:` line with a non-empty
//!   `"content"`, and a finish at `data: [DONE]`.
//!
//! Nothing else: no auth, audit, metrics, routing, limits, deadlines or JSON parsing. The
//! service is written by hand instead of generated; the messages are the subset of
//! proto/aiservice/v1/chat.proto that the load generator sends and reads, same field numbers.
//!
//! Usage: null-proxy --listen 127.0.0.1:P --upstream http://127.0.0.1:Q/v1/chat/completions
//!        [--key sk-fake-bench]
//! Prints `listening on ADDR` on stdout once bound; stops on SIGTERM or SIGINT.

use std::{convert::Infallible, fmt::Write as _, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tonic::{
    Request, Response, Status,
    codegen::{Body, BoxFuture, BoxStream, Context, Poll, Service, StdError},
    server::{Grpc, NamedService, ServerStreamingService, UnaryService},
    transport::{Server, server::TcpIncoming},
};
use tonic_prost::ProstCodec;

#[path = "../wire.rs"]
mod wire;
use wire::*;

const ROLE_ASSISTANT: i32 = 3;
const FINISH_REASON_STOP: i32 = 1;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn die(msg: &str) -> ! {
    eprintln!("null-proxy: {msg}");
    std::process::exit(2)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first `"content":"…"` string of an OpenAI JSON object, escapes not decoded.
fn content_text(json: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"content\":\"";
    let rest = &json[find(json, KEY)? + KEY.len()..];
    let mut end = 0;
    while end < rest.len() && rest[end] != b'"' {
        end += if rest[end] == b'\\' { 2 } else { 1 };
    }
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// Appends `s` as the inside of a JSON string.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The Chat Completions body: model, then each message's role and its text parts joined.
fn openai_body(req: &ChatRequest, stream: bool) -> String {
    let mut body = String::with_capacity(128);
    body.push_str(r#"{"model":""#);
    push_escaped(&mut body, &req.model);
    body.push_str(r#"","messages":["#);
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role {
            1 => "system",
            3 => "assistant",
            4 => "tool",
            _ => "user",
        };
        let _ = write!(body, r#"{}{{"role":"{role}","content":""#, if i > 0 { "," } else { "" });
        for part in &m.content {
            push_escaped(&mut body, part.text.as_deref().unwrap_or_default());
        }
        body.push_str(r#""}"#);
    }
    body.push(']');
    if stream {
        body.push_str(r#","stream":true"#);
    }
    body.push('}');
    body
}

/// The one upstream: a pooled keep-alive client, the endpoint's URI and its key.
struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    auth: HeaderValue,
}

impl Upstream {
    /// POSTs `body`; the reply's body when the status is a success.
    async fn post(&self, body: String) -> Result<Incoming, Status> {
        let req = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, self.auth.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Status::internal(format!("request: {e}")))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| Status::unavailable(format!("upstream: {e}")))?;
        if !resp.status().is_success() {
            return Err(Status::unavailable(format!("upstream: HTTP {}", resp.status())));
        }
        Ok(resp.into_body())
    }
}

struct Chat(Arc<Upstream>);

impl UnaryService<ChatRequest> for Chat {
    type Response = ChatResponse;
    type Future = BoxFuture<Response<ChatResponse>, Status>;

    fn call(&mut self, request: Request<ChatRequest>) -> Self::Future {
        let upstream = self.0.clone();
        Box::pin(async move {
            let body = openai_body(request.get_ref(), false);
            let reply = upstream
                .post(body)
                .await?
                .collect()
                .await
                .map_err(|e| Status::unavailable(format!("upstream body: {e}")))?
                .to_bytes();
            if find(&reply, b"\"choices\"").is_none() {
                return Err(Status::unavailable("upstream reply without choices"));
            }
            let text = content_text(&reply).unwrap_or_default().to_owned();
            Ok(Response::new(ChatResponse {
                id: "null-proxy".into(),
                message: Some(Message {
                    role: ROLE_ASSISTANT,
                    content: vec![ContentPart { text: Some(text) }],
                }),
                finish_reason: FINISH_REASON_STOP,
            }))
        })
    }
}

struct StreamChat(Arc<Upstream>);

impl ServerStreamingService<ChatRequest> for StreamChat {
    type Response = StreamChatResponse;
    type ResponseStream = BoxStream<StreamChatResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<ChatRequest>) -> Self::Future {
        let upstream = self.0.clone();
        Box::pin(async move {
            let body = upstream.post(openai_body(request.get_ref(), true)).await?;
            Ok(Response::new(sse_events(body).boxed()))
        })
    }
}

/// Reading an SSE body: bytes not yet split into lines, and whether the stream has ended.
struct SseReader {
    body: Incoming,
    pending: BytesMut,
    done: bool,
}

/// One event per `data:` line with content, a finish at `[DONE]`; an error if the body ends
/// or fails before it.
fn sse_events(body: Incoming) -> impl futures::Stream<Item = Result<StreamChatResponse, Status>> {
    let reader = SseReader { body, pending: BytesMut::new(), done: false };
    futures::stream::unfold(reader, |mut r| async move {
        while !r.done {
            if let Some(eol) = r.pending.iter().position(|b| *b == b'\n') {
                let line = r.pending.split_to(eol + 1);
                let Some(data) = line.strip_prefix(b"data:") else { continue };
                let data = data.trim_ascii();
                if data == b"[DONE]" {
                    r.done = true;
                    let finish = Finish { reason: FINISH_REASON_STOP };
                    let event = StreamChatResponse { finish: Some(finish), ..Default::default() };
                    return Some((Ok(event), r));
                }
                match content_text(data) {
                    Some(text) if !text.is_empty() => {
                        let delta = ContentDelta { text: text.to_owned() };
                        let event =
                            StreamChatResponse { content_delta: Some(delta), ..Default::default() };
                        return Some((Ok(event), r));
                    }
                    _ => continue,
                }
            }
            let failure = match r.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        r.pending.extend_from_slice(&data);
                    }
                    continue;
                }
                Some(Err(e)) => Status::unavailable(format!("upstream body: {e}")),
                None => Status::unavailable("upstream stream ended without [DONE]"),
            };
            r.done = true;
            return Some((Err(failure), r));
        }
        None
    })
}

/// `aiservice.v1.ChatService` with its two methods, routed by path as tonic's generated
/// servers do.
#[derive(Clone)]
struct ChatServer(Arc<Upstream>);

impl NamedService for ChatServer {
    const NAME: &'static str = "aiservice.v1.ChatService";
}

impl<B> Service<http::Request<B>> for ChatServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let upstream = self.0.clone();
        match req.uri().path() {
            "/aiservice.v1.ChatService/Chat" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<ChatResponse, ChatRequest>::default());
                Ok(grpc.unary(Chat(upstream), req).await)
            }),
            "/aiservice.v1.ChatService/StreamChat" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<StreamChatResponse, ChatRequest>::default());
                Ok(grpc.server_streaming(StreamChat(upstream), req).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen", "127.0.0.1:0");
    let upstream = arg(&args, "--upstream", "http://127.0.0.1:8000/v1/chat/completions");
    let uri: http::Uri = upstream.parse().unwrap_or_else(|e| die(&format!("--upstream: {e}")));
    let auth = HeaderValue::try_from(format!("Bearer {}", arg(&args, "--key", "sk-fake-bench")))
        .unwrap_or_else(|e| die(&format!("--key: {e}")));
    // tokio's defaults, as in the gateway's main: one worker per CPU it may run on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .unwrap_or_else(|e| die(&format!("bind {listen}: {e}")));
        let local = listener.local_addr().unwrap_or_else(|e| die(&e.to_string()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let service = ChatServer(Arc::new(Upstream { client, uri, auth }));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| die(&e.to_string()));
        println!("listening on {local}");
        let stopped = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        if let Err(e) = Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stopped)
            .await
        {
            die(&format!("server: {e}"));
        }
    });
}
