//! Each provider adapter's reply reader — unary JSON and SSE stream events, OpenAI (and the
//! compatible APIs), Anthropic, Gemini and Cohere, and Bedrock's JSON and binary event stream —
//! over arbitrary bytes from the upstream. For Bedrock's stream the bytes are either the body
//! as it is (the frame decoder's prelude, lengths and CRCs under attack) or, with the first body
//! byte odd, a list of events encoded as valid frames (the event reader under attack):
//! `[type][flags][len][payload…]` repeated, a type picking an event or exception name.
//!
//! The adapters read an upstream HTTP reply, so the target drives the real adapters against a
//! tiny in-process HTTP/1.1 server on 127.0.0.1 that answers with the fuzzer's bytes. Whatever
//! the body, a call must end with a reply or an error, never a panic or a hang, and a stream
//! must end with `Finish` or an error, never silently.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use ai_service::{
    Config,
    chat::{ChatEvent, ChatRequest},
    proto::v1 as pb,
    provider::{self, SharedProvider},
    validate,
};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

/// What the fake upstream answers next: status, content type, body.
type NextReply = Arc<Mutex<(u16, &'static str, Vec<u8>)>>;

struct Harness {
    runtime: Runtime,
    providers: Vec<SharedProvider>,
    reply: NextReply,
    request: ChatRequest,
}

async fn answer(mut socket: TcpStream, reply: NextReply) -> std::io::Result<()> {
    // Read the request head and its body (by content-length), then answer and close.
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let (status, content_type, body) = reply.lock().unwrap().clone();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&body).await?;
    socket.shutdown().await
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let reply: NextReply = Arc::new(Mutex::new((200, "application/json", Vec::new())));
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = reply.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(answer(socket, serving.clone()));
            }
        });
        let yaml = format!(
            "providers:\n\
             \x20 o: {{kind: openai, base_url: 'http://{addr}/v1', api_key_env: K, disable_proxy: true, request_timeout: 5s, max_output_bytes: 1000000}}\n\
             \x20 a: {{kind: anthropic, base_url: 'http://{addr}', api_key_env: K, disable_proxy: true, request_timeout: 5s, max_output_bytes: 1000000}}\n\
             \x20 g: {{kind: gemini, base_url: 'http://{addr}', api_key_env: K, disable_proxy: true, request_timeout: 5s, max_output_bytes: 1000000}}\n\
             \x20 c: {{kind: cohere, base_url: 'http://{addr}', api_key_env: K, disable_proxy: true, request_timeout: 5s, max_output_bytes: 1000000}}\n\
             \x20 b: {{kind: bedrock, region: us-east-1, base_url: 'http://{addr}', disable_proxy: true, request_timeout: 5s, max_output_bytes: 1000000}}\n\
             routes: [{{name: m, targets: [{{provider: o, model: m}}]}}]\n"
        );
        let vars = [
            ("K", "sk-fuzz-0123456789"),
            // Placeholders: the fake upstream checks no signature.
            ("AWS_ACCESS_KEY_ID", "fuzz-access-key-id"),
            ("AWS_SECRET_ACCESS_KEY", "fuzz-placeholder"),
        ];
        let config = Config::from_yaml(
            &yaml,
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap();
        let providers = config.providers.iter().map(|p| provider::build(p).unwrap()).collect();
        let request = validate::chat_request(pb::ChatRequest {
            model: "m".into(),
            messages: vec![pb::Message {
                role: pb::Role::User as i32,
                content: vec![pb::ContentPart {
                    part: Some(pb::content_part::Part::Text("hi".into())),
                    cache_control: None,
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        Harness { runtime, providers, reply, request }
    })
}

const STATUSES: [u16; 8] = [200, 200, 200, 200, 400, 429, 503, 307];

/// The event and exception names a framed Bedrock body picks from.
const EVENTS: [&str; 10] = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "throttlingException",
    "modelStreamErrorException",
    "internalServerException",
    "somethingNew",
];

/// `[type][flags][len][payload…]…` as valid event-stream frames; flags bit 0 makes the frame
/// an exception, bit 1 leaves out its `:message-type`.
fn frames(mut data: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut out = Vec::new();
    while let [kind, flags, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (payload, next) = rest.split_at(len);
        data = next;
        let name = EVENTS[usize::from(*kind) % EVENTS.len()].to_owned();
        let (kind_header, message_type) = if flags & 1 == 1 {
            (":exception-type", "exception")
        } else {
            (":event-type", "event")
        };
        let mut message = Message::new(payload.to_vec())
            .add_header(Header::new(kind_header, HeaderValue::String(name.into())));
        if flags & 2 == 0 {
            message = message
                .add_header(Header::new(":message-type", HeaderValue::String(message_type.into())));
        }
        let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: provider and unary/stream; byte 1: status; the rest: the body.
    let [selector, status, body @ ..] = data else { return };
    let h = harness();
    let provider = &h.providers[usize::from(selector & 0x7f) % h.providers.len()];
    let stream = selector & 0x80 != 0;
    let bedrock = provider.name() == "b";
    let (content_type, body) = match (stream, bedrock, body) {
        (true, true, [mode, rest @ ..]) if mode & 1 == 1 => {
            ("application/vnd.amazon.eventstream", frames(rest))
        }
        (true, true, _) => ("application/vnd.amazon.eventstream", body.to_vec()),
        (true, false, _) => ("text/event-stream", body.to_vec()),
        (false, _, _) => ("application/json", body.to_vec()),
    };
    *h.reply.lock().unwrap() =
        (STATUSES[usize::from(*status) % STATUSES.len()], content_type, body);
    h.runtime.block_on(async {
        if !stream {
            let _ = provider.chat("m", &h.request).await;
            return;
        }
        let Ok(mut events) = provider.stream("m", &h.request).await else { return };
        // Ends with Finish or an error: a cut or garbled stream never ends cleanly.
        let mut ended_well = false;
        while let Some(event) = events.next().await {
            ended_well = match event {
                Ok(ChatEvent::Finish { .. }) | Err(_) => true,
                Ok(_) => false,
            };
        }
        assert!(ended_well, "a stream ended without Finish and without an error");
    });
});
