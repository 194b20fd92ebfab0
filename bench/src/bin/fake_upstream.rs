//! A fast fake OpenAI Chat Completions upstream for the benchmarks: every POST to a path that
//! ends in `/chat/completions` gets a fixed JSON reply, or, when the body asks for
//! `"stream": true`, an SSE reply of `--chunks` content chunks (then finish, usage and
//! `[DONE]`). `--delay-ms` waits before answering; `--chunk-delay-ms` waits between chunks,
//! which keeps streams open (the 1,000-open-streams figure). It never parses the JSON it is
//! sent, so its own cost stays small and constant beside the gateway's.
//!
//! Usage: fake-upstream [--listen 127.0.0.1:0] [--chunks 20] [--delay-ms 0]
//!        [--chunk-delay-ms 0] [--workers 1]
//! Prints `listening on ADDR` on stdout once bound; stops on SIGTERM or SIGINT.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{Request, Response, body::Frame, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

struct Settings {
    chunks: usize,
    delay: Duration,
    chunk_delay: Duration,
    json: Bytes,
    sse_head: Bytes,
    sse_chunk: Bytes,
    sse_tail: Bytes,
}

const JSON_REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1741570283,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

const SSE_HEAD: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const SSE_CHUNK: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";
const SSE_TAIL: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":20,\"total_tokens\":29}}\n\ndata: [DONE]\n\n";

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| die(&format!("bad value for {name}: {v}"))))
        .unwrap_or(default)
}

fn die(msg: &str) -> ! {
    eprintln!("fake-upstream: {msg}");
    std::process::exit(2)
}

/// Whether the request body sets `"stream": true` (any spacing), without parsing the JSON.
fn wants_stream(body: &[u8]) -> bool {
    let key = b"\"stream\"";
    let Some(at) = body.windows(key.len()).position(|w| w == key) else { return false };
    body[at + key.len()..]
        .iter()
        .find(|b| !matches!(b, b' ' | b':' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b't')
}

async fn handle(s: Arc<Settings>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let post = req.method() == hyper::Method::POST;
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !(post && path.ends_with("/chat/completions")) {
        let status = if path == "/health" { 200 } else { 404 };
        return Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"{}")).boxed_unsync())
            .unwrap_or_default());
    }
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let response = if !wants_stream(&body) {
        Response::builder().header("content-type", "application/json").body(Full::new(s.json.clone()).boxed_unsync())
    } else if s.chunk_delay.is_zero() {
        let mut all = Vec::with_capacity(s.sse_head.len() + s.chunks * s.sse_chunk.len() + s.sse_tail.len());
        all.extend_from_slice(&s.sse_head);
        for _ in 0..s.chunks {
            all.extend_from_slice(&s.sse_chunk);
        }
        all.extend_from_slice(&s.sse_tail);
        Response::builder().header("content-type", "text/event-stream").body(Full::new(Bytes::from(all)).boxed_unsync())
    } else {
        // One frame now, then one chunk per `chunk_delay`, then the tail.
        let st = s.clone();
        let frames = futures::stream::unfold(0usize, move |i| {
            let st = st.clone();
            async move {
                if i > st.chunks + 1 {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(st.chunk_delay).await;
                }
                let bytes = match i {
                    0 => st.sse_head.clone(),
                    i if i <= st.chunks => st.sse_chunk.clone(),
                    _ => st.sse_tail.clone(),
                };
                Some((Ok::<_, Infallible>(Frame::data(bytes)), i + 1))
            }
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(BodyExt::boxed_unsync(StreamBody::new(frames.boxed())))
    };
    Ok(response.unwrap_or_default())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: String = arg(&args, "--listen", "127.0.0.1:0".to_string());
    let workers: usize = arg(&args, "--workers", 1);
    let settings = Arc::new(Settings {
        chunks: arg(&args, "--chunks", 20),
        delay: Duration::from_millis(arg(&args, "--delay-ms", 0)),
        chunk_delay: Duration::from_millis(arg(&args, "--chunk-delay-ms", 0)),
        json: Bytes::from_static(JSON_REPLY.as_bytes()),
        sse_head: Bytes::from_static(SSE_HEAD.as_bytes()),
        sse_chunk: Bytes::from_static(SSE_CHUNK.as_bytes()),
        sse_tail: Bytes::from_static(SSE_TAIL.as_bytes()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    runtime.block_on(async move {
        let listener = TcpListener::bind(&listen).await.unwrap_or_else(|e| die(&format!("bind {listen}: {e}")));
        let local = listener.local_addr().unwrap_or_else(|e| die(&e.to_string()));
        println!("listening on {local}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| die(&e.to_string()));
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            };
            let _ = stream.set_nodelay(true);
            let s = settings.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(s.clone(), req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}
