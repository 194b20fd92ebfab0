//! Trace export over OTLP to a fake collector on 127.0.0.1 (OTLP/gRPC through opentelemetry-
//! proto's `TraceService`, OTLP/HTTP as a `/v1/traces` receiver): the spans of known calls,
//! their parents and attributes, the `traceparent` the upstream received, calls that do not
//! wait for a dead or silent collector, the flush at SIGTERM, and export being off (no
//! connection at all) without `tracing.otlp`.
//!
//! In-process tests install their exporting subscriber as the test thread's default; a
//! `#[tokio::test]` runs the gateway, the fake upstreams and the export task on that thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use ai_service::{
    Config,
    config::{LogConfig, LogFormat},
    proto::v1::{ChatRequest, chat_service_client::ChatServiceClient},
    telemetry::{self, TraceExport},
};
use common::{
    Binary, TestServer, chat, collect,
    fake_upstream::{FakeUpstream, Reply, ReplyBody},
    quiet_audit, stream_chat,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use prost::Message;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;
const STATUS_UNSET: i32 = 0;
const STATUS_ERROR: i32 = 2;

fn caller_traceparent() -> String {
    format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    status: i32,
    status_message: String,
    attributes: HashMap<String, Value>,
}

impl Exported {
    fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Value::IntValue(n)) => Some(*n),
            _ => None,
        }
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<Exported> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
                Some(Value::StringValue(s)) => Some(s),
                _ => None,
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let status = span.status.clone().unwrap_or_default();
                out.push(Exported {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    status: status.code,
                    status_message: status.message,
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
                        .collect(),
                });
            }
        }
    }
    out
}

/// What a fake collector received.
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Exported>>>,
    /// The headers (gRPC metadata) of every export request.
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
    /// When set, every export is refused with this message.
    reject: Option<String>,
}

impl Received {
    fn take(&self, headers: &http::HeaderMap, request: ExportTraceServiceRequest) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        self.headers.lock().unwrap().push(headers);
        self.spans.lock().unwrap().extend(flatten(request));
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.take(&headers, request.into_inner());
        match &self.reject {
            Some(message) => Err(tonic::Status::unauthenticated(message.clone())),
            None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
        }
    }
}

/// A fake OTLP collector on 127.0.0.1; stops when dropped.
struct Collector {
    addr: SocketAddr,
    received: Received,
    protocol: &'static str,
    task: JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// OTLP/gRPC.
    async fn grpc() -> Collector {
        Collector::grpc_with(Received::default()).await
    }

    /// OTLP/gRPC that refuses every export with `message`.
    async fn grpc_rejecting(message: &str) -> Collector {
        Collector::grpc_with(Received { reject: Some(message.to_owned()), ..Received::default() })
            .await
    }

    async fn grpc_with(received: Received) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(received.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Collector { addr, received, protocol: "grpc", task }
    }

    /// OTLP/HTTP with protobuf bodies.
    async fn http() -> Collector {
        use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post};
        async fn traces(
            State(received): State<Received>,
            headers: HeaderMap,
            body: Bytes,
        ) -> impl axum::response::IntoResponse {
            received.take(&headers, ExportTraceServiceRequest::decode(body).unwrap());
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        let received = Received::default();
        let app =
            axum::Router::new().route("/v1/traces", post(traces)).with_state(received.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { addr, received, protocol: "http/protobuf", task }
    }

    /// The `tracing:` block that exports to this collector.
    fn tracing_yaml(&self, extra: &str) -> String {
        format!(
            "tracing:\n  service_name: gateway-under-test\n  otlp: {{endpoint: 'http://{}', protocol: {}, timeout: 2s{extra}}}\n",
            self.addr, self.protocol
        )
    }

    fn spans(&self) -> Vec<Exported> {
        self.received.spans.lock().unwrap().clone()
    }

    fn headers(&self) -> Vec<HashMap<String, String>> {
        self.received.headers.lock().unwrap().clone()
    }
}

/// The server span of the call with `request_id`, and its attempt spans in order.
fn call_spans(spans: &[Exported], request_id: &str) -> Option<(Exported, Vec<Exported>)> {
    let server = spans.iter().find(|s| s.str("ai_service.request_id") == Some(request_id))?.clone();
    let mut attempts: Vec<Exported> =
        spans.iter().filter(|s| s.parent_span_id == server.span_id).cloned().collect();
    attempts.sort_by_key(|s| s.int("ai_service.attempt.number"));
    Some((server, attempts))
}

/// Log lines written into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A test thread's exporting subscriber (logging JSON at DEBUG into memory) and its pipeline.
struct Traced {
    export: TraceExport,
    logs: Captured,
    _subscriber: tracing::subscriber::DefaultGuard,
}

impl Traced {
    /// Starts the export of `config` and makes it this thread's subscriber (inside a runtime).
    fn start(config: &Config) -> Traced {
        let export = TraceExport::start(&config.tracing).unwrap().expect("tracing.otlp is set");
        let log = LogConfig {
            level: "debug".into(),
            format: LogFormat::Json,
            flush_interval: LogConfig::DEFAULT_FLUSH_INTERVAL,
        };
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = telemetry::exporting_subscriber(&log, &export, move || writer.clone());
        Traced { _subscriber: tracing::subscriber::set_default(subscriber), export, logs }
    }

    /// Flushes until the spans of the call with `request_id` (server span and `attempts`
    /// attempt spans) reached `collector`, or fails after 10 s.
    async fn wait_for(
        &self,
        collector: &Collector,
        request_id: &str,
        attempts: usize,
    ) -> (Exported, Vec<Exported>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = self.export.flush().await;
            if let Some(found) = call_spans(&collector.spans(), request_id)
                && found.1.len() >= attempts
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "the spans of {request_id} never arrived: {:#?}",
                collector.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn provider(name: &str, fake: &FakeUpstream) -> String {
    format!(
        "  {name}: {{kind: openai_compatible, base_url: \"{}/v1\", disable_proxy: true}}\n",
        fake.url("")
    )
}

/// A `Chat` request with a request id and, when given, the caller's trace context.
fn request_with(
    request: ChatRequest,
    id: &str,
    traceparent: Option<&str>,
) -> tonic::Request<ChatRequest> {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert("x-request-id", id.parse().unwrap());
    if let Some(traceparent) = traceparent {
        request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
        request.metadata_mut().insert("tracestate", "vendor=x".parse().unwrap());
    }
    request
}

#[tokio::test]
async fn a_failover_call_exports_a_server_span_under_the_caller_and_one_client_span_per_attempt() {
    let collector = Collector::grpc().await;
    let failing = FakeUpstream::start(vec![Reply::json(500, "openai/error_400.json")]).await;
    let healthy = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "{}routing: {{backoff_base: 1ms, backoff_max: 2ms}}\nproviders:\n{}{}routes: [{{name: r, targets: [{{provider: a, model: m-a}}, {{provider: b, model: m-b}}]}}]\n",
        collector.tracing_yaml(""),
        provider("a", &failing),
        provider("b", &healthy),
    );
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;

    let request = request_with(chat("r", "hi"), "otlp-failover", Some(&caller_traceparent()));
    let reply = server.client().await.chat(request).await.unwrap().into_inner();
    let usage = reply.usage.unwrap();
    let (rpc, attempts) = traced.wait_for(&collector, "otlp-failover", 2).await;

    // The server span: under the caller's span, in the caller's trace.
    assert_eq!(rpc.service, "gateway-under-test");
    assert_eq!(rpc.trace_id, CALLER_TRACE);
    assert_eq!(rpc.parent_span_id, CALLER_SPAN);
    assert_eq!(rpc.kind, SPAN_KIND_SERVER);
    assert_eq!(rpc.name, "aiservice.v1.ChatService/Chat");
    assert_eq!(rpc.status, STATUS_UNSET);
    assert_eq!(rpc.str("rpc.system"), Some("grpc"));
    assert_eq!(rpc.str("rpc.service"), Some("aiservice.v1.ChatService"));
    assert_eq!(rpc.str("rpc.method"), Some("Chat"));
    assert_eq!(rpc.int("rpc.grpc.status_code"), Some(0));
    assert_eq!(rpc.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(rpc.str("gen_ai.provider.name"), Some("openai_compatible"));
    assert_eq!(rpc.str("gen_ai.request.model"), Some("r"));
    assert_eq!(rpc.str("gen_ai.response.model"), Some("gpt-4o-2024-08-06"));
    assert_eq!(rpc.int("gen_ai.usage.input_tokens"), Some(i64::from(usage.input_tokens)));
    assert_eq!(rpc.int("gen_ai.usage.output_tokens"), Some(i64::from(usage.output_tokens)));
    assert_eq!(rpc.str("ai_service.route"), Some("r"));
    assert_eq!(rpc.str("ai_service.provider"), Some("b"));
    assert_eq!(rpc.str("error.type"), None);

    // One client span per attempt: the failure, then the failover that answered.
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let (first, second) = (&attempts[0], &attempts[1]);
    for (attempt, number) in [(first, 1), (second, 2)] {
        assert_eq!(attempt.trace_id, CALLER_TRACE);
        assert_eq!(attempt.kind, SPAN_KIND_CLIENT);
        assert_eq!(attempt.int("ai_service.attempt.number"), Some(number));
        assert_eq!(attempt.str("gen_ai.operation.name"), Some("chat"));
        assert_eq!(attempt.str("gen_ai.provider.name"), Some("openai_compatible"));
        assert_eq!(attempt.str("ai_service.endpoint"), Some("default"));
    }
    assert_eq!(first.name, "chat m-a");
    assert_eq!(first.str("ai_service.provider"), Some("a"));
    assert_eq!(first.str("gen_ai.request.model"), Some("m-a"));
    assert_eq!(first.str("ai_service.attempt.trigger"), Some("first"));
    assert_eq!(first.int("http.response.status_code"), Some(500));
    assert_eq!(first.str("error.type"), Some("UPSTREAM_SERVER_ERROR"));
    assert_eq!(first.status, STATUS_ERROR);
    assert!(first.status_message.contains("temperature"), "{first:?}");
    assert_eq!(second.name, "chat m-b");
    assert_eq!(second.str("ai_service.provider"), Some("b"));
    assert_eq!(second.str("ai_service.attempt.trigger"), Some("failover"));
    assert_eq!(second.str("ai_service.attempt.after_error"), Some("UPSTREAM_SERVER_ERROR"));
    assert_eq!(second.int("http.response.status_code"), Some(200));
    assert_eq!(second.status, STATUS_UNSET);

    // Each upstream saw the gateway's attempt span as its parent, in the caller's trace.
    let sent_a = failing.only_request();
    let sent_b = healthy.only_request();
    assert_eq!(
        sent_a.header("traceparent"),
        Some(&*format!("00-{CALLER_TRACE}-{}-01", first.span_id))
    );
    assert_eq!(
        sent_b.header("traceparent"),
        Some(&*format!("00-{CALLER_TRACE}-{}-01", second.span_id))
    );
    assert_eq!(sent_b.header("tracestate"), Some("vendor=x"));
    assert_eq!(sent_b.header("x-request-id"), Some("otlp-failover"));

    // The logs are those of a gateway without export: the attempt spans are not in them.
    let lines = traced.logs.lines();
    let finished = lines
        .iter()
        .find(|l| l["message"] == "rpc finished" && l["span"]["request_id"] == "otlp-failover")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(finished["span"]["name"], "rpc");
    assert_eq!(finished["span"]["provider"], "b");
    let failed = lines.iter().find(|l| l["message"] == "attempt failed").unwrap();
    assert_eq!(failed["span"]["name"], "rpc", "{failed}");
    assert!(!format!("{lines:?}").contains("upstream_attempt"), "{lines:#?}");

    server.stop().await.unwrap();
    traced.export.shutdown().await;
}

#[tokio::test]
async fn calls_through_the_http_doors_export_their_attempt_under_the_server_span() {
    // Each HTTP door enters the call's span itself (the pipeline does not): the attempt's
    // client span must still be the server span's child, and name itself to the upstream.
    let collector = Collector::grpc().await;
    let upstream = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "{}providers:\n{}routes: [{{name: r, targets: [{{provider: a, model: m-a}}]}}]\n",
        collector.tracing_yaml(""),
        provider("a", &upstream),
    );
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let messages = serde_json::json!([{"role": "user", "content": "hi"}]);
    for (n, (id, path, body)) in [
        (
            "otlp-openai-door",
            "/v1/chat/completions",
            serde_json::json!({"model": "r", "messages": messages}),
        ),
        (
            "otlp-anthropic-door",
            "/v1/messages",
            serde_json::json!({"model": "r", "max_tokens": 16, "messages": messages}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = http
            .post(format!("http://{}{path}", server.addr))
            .header("x-request-id", id)
            .header("traceparent", caller_traceparent())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{path}: {}", reply.text().await.unwrap());
        let (rpc, attempts) = traced.wait_for(&collector, id, 1).await;
        assert_eq!(
            (rpc.trace_id.as_str(), rpc.parent_span_id.as_str()),
            (CALLER_TRACE, CALLER_SPAN)
        );
        assert_eq!(rpc.kind, SPAN_KIND_SERVER);
        assert_eq!(attempts.len(), 1, "{path}: {attempts:#?}");
        assert_eq!(attempts[0].kind, SPAN_KIND_CLIENT);
        assert_eq!(attempts[0].name, "chat m-a");
        let sent = &upstream.received()[n];
        assert_eq!(
            sent.header("traceparent"),
            Some(&*format!("00-{CALLER_TRACE}-{}-01", attempts[0].span_id)),
            "{path}"
        );
    }
    server.stop().await.unwrap();
    traced.export.shutdown().await;
}

#[tokio::test]
async fn a_hedged_call_shows_the_hedge_and_the_cancelled_loser() {
    let collector = Collector::grpc().await;
    // Headers at once, then a body that never comes: the hedge wins.
    let stalled = FakeUpstream::start(vec![Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: ReplyBody::StallAfter(vec![]),
    }])
    .await;
    let fast = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "{}providers:\n{}{}routes: [{{name: h, hedge_delay: 100ms, targets: [{{provider: a, model: m-a}}, {{provider: b, model: m-b}}]}}]\n",
        collector.tracing_yaml(""),
        provider("a", &stalled),
        provider("b", &fast),
    );
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;

    let request = request_with(chat("h", "hi"), "otlp-hedge", Some(&caller_traceparent()));
    server.client().await.chat(request).await.unwrap();
    let (rpc, attempts) = traced.wait_for(&collector, "otlp-hedge", 2).await;

    assert_eq!(rpc.str("ai_service.provider"), Some("b"));
    let [first, hedge] = attempts.as_slice() else { panic!("{attempts:#?}") };
    assert_eq!(first.str("ai_service.provider"), Some("a"));
    assert_eq!(first.str("ai_service.attempt.trigger"), Some("first"));
    assert_eq!(first.attributes.get("ai_service.attempt.cancelled"), Some(&Value::BoolValue(true)));
    assert_eq!(hedge.str("ai_service.provider"), Some("b"));
    assert_eq!(hedge.str("ai_service.attempt.trigger"), Some("hedge"));
    assert_eq!(hedge.int("ai_service.attempt.number"), Some(2));
    assert_eq!(hedge.attributes.get("ai_service.attempt.cancelled"), None);
    assert_eq!(hedge.int("http.response.status_code"), Some(200));

    server.stop().await.unwrap();
    traced.export.shutdown().await;
}

#[tokio::test]
async fn a_failed_call_without_a_caller_trace_is_a_root_span_with_an_error_status() {
    let collector = Collector::grpc().await;
    let down = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let yaml = format!(
        "{}routing: {{max_retries: 0}}\nproviders:\n{}routes: [{{name: r, targets: [{{provider: a, model: m}}]}}]\n",
        collector.tracing_yaml(""),
        provider("a", &down),
    );
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;

    let status = server
        .client()
        .await
        .chat(request_with(chat("r", "hi"), "otlp-down", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let (rpc, attempts) = traced.wait_for(&collector, "otlp-down", 1).await;

    assert_eq!(rpc.parent_span_id, "", "a new trace starts at the gateway");
    assert_ne!(rpc.trace_id, CALLER_TRACE);
    assert_eq!(rpc.kind, SPAN_KIND_SERVER);
    assert_eq!(rpc.status, STATUS_ERROR);
    assert!(!rpc.status_message.is_empty(), "{rpc:?}");
    assert_eq!(rpc.int("rpc.grpc.status_code"), Some(14));
    assert_eq!(rpc.str("error.type"), Some("UNAVAILABLE"));
    let [attempt] = attempts.as_slice() else { panic!("{attempts:#?}") };
    assert_eq!(attempt.trace_id, rpc.trace_id);
    assert_eq!(attempt.status, STATUS_ERROR);
    assert_eq!(attempt.int("http.response.status_code"), Some(503));
    // The logs carry the trace the gateway started.
    let lines = traced.logs.lines();
    let failed = lines
        .iter()
        .find(|l| l["message"] == "rpc failed" && l["span"]["request_id"] == "otlp-down")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(failed["span"]["trace_id"], rpc.trace_id.as_str());
    // The upstream joined the trace the gateway started.
    let sent = down.only_request();
    assert_eq!(
        sent.header("traceparent"),
        Some(&*format!("00-{}-{}-01", rpc.trace_id, attempt.span_id))
    );
    assert_eq!(sent.header("tracestate"), None);

    server.stop().await.unwrap();
    traced.export.shutdown().await;
}

#[tokio::test]
async fn http_protobuf_export_sends_the_configured_headers_and_covers_a_stream() {
    let collector = Collector::http().await;
    let upstream = FakeUpstream::start(vec![Reply::sse("openai/stream_text.sse")]).await;
    let dir = tempfile::tempdir().unwrap();
    let tenant_file = dir.path().join("tenant");
    std::fs::write(&tenant_file, "tenant-7\n").unwrap();
    let headers = format!(
        ", headers: {{authorization: {{value_env: OTLP_AUTH}}, x-scope-orgid: {{value_file: {}}}}}",
        tenant_file.display()
    );
    let yaml = format!(
        "{}providers:\n{}routes: [{{name: s, targets: [{{provider: a, model: m}}]}}]\n",
        collector.tracing_yaml(&headers),
        provider("a", &upstream),
    );
    let mut vars = quiet_audit(&yaml);
    vars.push(("OTLP_AUTH".to_owned(), "Bearer collector-token-0123456789".to_owned()));
    let config = Config::from_yaml(&yaml, vars).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;

    let mut request = tonic::Request::new(stream_chat("s", "hi"));
    request.metadata_mut().insert("x-request-id", "otlp-stream".parse().unwrap());
    request.metadata_mut().insert("traceparent", caller_traceparent().parse().unwrap());
    let stream = server.client().await.stream_chat(request).await.unwrap().into_inner();
    let (_, status) = collect(stream).await;
    assert!(status.is_none(), "{status:?}");
    let (rpc, attempts) = traced.wait_for(&collector, "otlp-stream", 1).await;

    assert_eq!(rpc.name, "aiservice.v1.ChatService/StreamChat");
    assert_eq!(rpc.parent_span_id, CALLER_SPAN);
    assert_eq!(rpc.str("gen_ai.response.model"), Some("gpt-4o-mini"));
    assert!(rpc.int("gen_ai.usage.output_tokens").is_some(), "{rpc:?}");
    let [attempt] = attempts.as_slice() else { panic!("{attempts:#?}") };
    assert_eq!(attempt.kind, SPAN_KIND_CLIENT);
    assert_eq!(attempt.int("http.response.status_code"), Some(200));
    assert_eq!(
        upstream.only_request().header("traceparent"),
        Some(&*format!("00-{CALLER_TRACE}-{}-01", attempt.span_id))
    );
    let sent = collector.headers();
    assert!(!sent.is_empty());
    for headers in &sent {
        assert_eq!(
            headers.get("authorization").map(String::as_str),
            Some("Bearer collector-token-0123456789")
        );
        assert_eq!(headers.get("x-scope-orgid").map(String::as_str), Some("tenant-7"));
        assert_eq!(headers.get("content-type").map(String::as_str), Some("application/x-protobuf"));
    }

    server.stop().await.unwrap();
    traced.export.shutdown().await;
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Calls that must each succeed within a generous bound whatever the collector does.
async fn calls_succeed_promptly(server: &TestServer, count: usize) {
    let mut client = server.client().await;
    for i in 0..count {
        let request =
            request_with(chat("echo", "hi"), &format!("prompt-{i}"), Some(&caller_traceparent()));
        let reply = tokio::time::timeout(Duration::from_secs(5), client.chat(request)).await;
        assert!(matches!(reply, Ok(Ok(_))), "call {i}: {reply:?}");
    }
}

#[tokio::test]
async fn a_dead_collector_costs_the_calls_nothing() {
    let yaml =
        format!("tracing: {{otlp: {{endpoint: 'http://{}', timeout: 1s}}}}\n", closed_port());
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;
    calls_succeed_promptly(&server, 20).await;
    // An export that cannot connect fails within its timeout; the calls carry on.
    let flushed = tokio::time::timeout(Duration::from_secs(15), traced.export.flush()).await;
    assert!(flushed.is_ok(), "a flush is bounded by the export timeout");
    calls_succeed_promptly(&server, 5).await;
    server.stop().await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(15), traced.export.shutdown()).await;
    assert!(stopped.is_ok(), "the final flush is bounded by the export timeout");
}

#[tokio::test]
async fn a_silent_collector_costs_the_calls_nothing_while_an_export_hangs() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            open.push(connection);
        }
    });
    // An export waits up to 30 s for the silent collector; no call may wait with it.
    let yaml = format!("tracing: {{otlp: {{endpoint: 'http://{addr}', timeout: 30s}}}}\n");
    let config = Config::from_yaml(&yaml, quiet_audit(&yaml)).unwrap();
    let traced = Traced::start(&config);
    let server = TestServer::start_with(config).await;
    calls_succeed_promptly(&server, 5).await;
    // Start exporting those spans (it hangs), and call on while it does.
    let flush = tokio::time::timeout(Duration::from_secs(3), traced.export.flush());
    let (flushed, ()) = tokio::join!(flush, calls_succeed_promptly(&server, 20));
    assert!(!matches!(flushed, Ok(Ok(()))), "the silent collector cannot have taken the spans");
    server.stop().await.unwrap();
    // Dropped without the final flush (it would wait out the 30 s): the drop does not block.
    drop(traced);
    held.abort();
}

/// Counts the connections made to a port.
struct Listener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Listener {
    async fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Listener { addr, accepted, task }
    }
}

fn config_file(dir: &std::path::Path, yaml: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_off_by_default_even_with_the_standard_otel_variables_set() {
    let collector = Listener::start().await;
    let upstream = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "audit: {{sink: /dev/null}}\nproviders:\n{}routes: [{{name: r, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &upstream)
    );
    let endpoint = format!("http://{}", collector.addr);
    let log = dir.path().join("stderr.log");
    let server = Binary::start(
        &config_file(dir.path(), &yaml),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("RUST_LOG", "info"),
        ],
        Stdio::null(),
        Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let mut client = ChatServiceClient::new(server.channel().await);
    client.chat(request_with(chat("r", "hi"), "off-1", Some(&caller_traceparent()))).await.unwrap();
    server.signal("TERM");
    assert!(server.wait().await.success());

    assert_eq!(
        collector.accepted.load(Ordering::SeqCst),
        0,
        "something connected to the collector"
    );
    assert_eq!(
        upstream.only_request().header("traceparent"),
        Some(&*caller_traceparent()),
        "forwarded unchanged"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("OTLP"), "{log}");
    collector.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_queued_spans_and_rust_log_does_not_filter_them() {
    let collector = Collector::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("audit: {{sink: /dev/null}}\n{}", collector.tracing_yaml(""));
    let server = Binary::start(
        &config_file(dir.path(), &yaml),
        // Neither the rpc span (INFO) nor the attempt spans are logged at this level.
        &[("RUST_LOG", "warn")],
        Stdio::null(),
        Stdio::null(),
    )
    .await;
    let mut client = ChatServiceClient::new(server.channel().await);
    client
        .chat(request_with(chat("echo", "hi"), "flushed-at-exit", Some(&caller_traceparent())))
        .await
        .unwrap();
    // Long before the batch's scheduled export (5 s): only the shutdown flush can send it.
    server.signal("TERM");
    assert!(server.wait().await.success());

    let spans = collector.spans();
    let (rpc, attempts) =
        call_spans(&spans, "flushed-at-exit").expect("the call's spans were flushed at exit");
    assert_eq!(rpc.trace_id, CALLER_TRACE);
    assert_eq!(rpc.parent_span_id, CALLER_SPAN);
    assert_eq!(rpc.service, "gateway-under-test");
    let [attempt] = attempts.as_slice() else { panic!("{attempts:#?}") };
    assert_eq!(attempt.str("gen_ai.provider.name"), Some("echo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_credentials_never_appear_in_logs_or_errors() {
    const TOKEN: &str = "otlp-credential-0123456789abcdef";
    // A collector that refuses the credential and echoes it back in its error.
    let collector = Collector::grpc_rejecting(&format!("bad credential {TOKEN}")).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "audit: {{sink: /dev/null}}\nlog: {{level: trace, format: json}}\n{}",
        collector.tracing_yaml(", headers: {x-api-token: {value_env: OTLP_TOKEN}}")
    );
    let config = config_file(dir.path(), &yaml);
    let log = dir.path().join("stderr.log");
    let server = Binary::start(
        &config,
        &[("OTLP_TOKEN", TOKEN), ("RUST_LOG", "trace")],
        Stdio::null(),
        Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let mut client = ChatServiceClient::new(server.channel().await);
    client.chat(request_with(chat("echo", "hi"), "cred-1", None)).await.unwrap();
    server.signal("TERM");
    assert!(server.wait().await.success());

    // The credential was sent, and refused.
    let sent = collector.headers();
    assert!(
        sent.iter().any(|h| h.get("x-api-token").map(String::as_str) == Some(TOKEN)),
        "{sent:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("trace export failed"), "the refused export was logged: {log}");
    assert!(!log.contains(TOKEN), "the credential leaked into the logs");

    // A value that cannot be sent is refused by check-config, without being quoted.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ai-service"))
        .args(["check-config"])
        .arg(&config)
        .env("OTLP_TOKEN", format!("{TOKEN}\u{1}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tracing.otlp.headers.x-api-token"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
}
