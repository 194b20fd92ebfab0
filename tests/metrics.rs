//! Metrics end to end: `/metrics` scraped after a known sequence of calls, `/livez` and
//! `/readyz` through a drain, request ids, and an embedder's own backend: a `Metrics`
//! implementation, a `metrics` recorder it holds, or the one it installed globally.
//!
//! The router's signals (attempts, failovers, endpoint health, breakers) are checked against
//! fake HTTP upstreams; cache hits and misses in `tests/cache.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ai_service::{
    Config, Gateway,
    metrics::{CATALOGUE, Kind, Labels, Metrics, names},
    proto::v1 as pb,
};
use common::{TestServer, chat, collect, http_get, start_admin, stream_chat};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pb::chat_service_client::ChatServiceClient;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

const YAML: &str = r#"
providers:
  local: {kind: echo}
routes:
  - name: fast
    targets: [{provider: local, model: echo-small}]
"#;

/// Samples of a scrape: the line without its value → the value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no sample {series}"))
}

#[tokio::test]
async fn a_scrape_counts_calls_by_route_provider_and_code() {
    let server = TestServer::start(YAML).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    let mut client = server.client().await;

    let mut tokens = (0u64, 0u64);
    for text in ["one", "two words"] {
        let usage = client.chat(chat("fast", text)).await.unwrap().into_inner().usage.unwrap();
        tokens =
            (tokens.0 + u64::from(usage.input_tokens), tokens.1 + u64::from(usage.output_tokens));
    }
    let (events, status) =
        collect(client.stream_chat(stream_chat("fast", "a b c")).await.unwrap().into_inner()).await;
    assert!(status.is_none());
    let Some(pb::stream_chat_response::Event::Usage(usage)) = events.iter().rev().nth(1) else {
        panic!("usage before finish")
    };
    tokens = (tokens.0 + u64::from(usage.input_tokens), tokens.1 + u64::from(usage.output_tokens));
    let mut empty = chat("fast", "x");
    empty.messages.clear();
    assert_eq!(client.chat(empty).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(client.chat(chat("nope", "x")).await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(client.chat(chat("nope/raw", "x")).await.unwrap_err().code(), tonic::Code::NotFound);
    client.chat(chat("local/raw-model-from-a-caller", "x")).await.unwrap();

    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&text);
    let requests = |method: &str, route: &str, provider: &str, code: &str| {
        value(
            &s,
            &format!(
                "ai_service_requests_total{{front_door=\"grpc\",method=\"{method}\",route=\"{route}\",provider=\"{provider}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(requests("Chat", "fast", "local", "OK"), 2.0);
    assert_eq!(requests("StreamChat", "fast", "local", "OK"), 1.0);
    assert_eq!(requests("Chat", "none", "none", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(requests("Chat", "none", "none", "NOT_FOUND"), 2.0);
    assert_eq!(requests("Chat", "local/*", "local", "OK"), 1.0);
    // Callers' model strings never become label values.
    for raw in ["raw-model", "nope", "echo-small"] {
        assert!(!text.contains(raw), "{raw} leaked into the labels:\n{text}");
    }

    let fast = "front_door=\"grpc\",method=\"Chat\",route=\"fast\",provider=\"local\"";
    assert_eq!(value(&s, &format!("ai_service_request_duration_seconds_count{{{fast}}}")), 2.0);
    assert_eq!(
        value(&s, &format!("ai_service_request_duration_seconds_bucket{{{fast},le=\"+Inf\"}}")),
        2.0
    );
    assert!(text.contains("# TYPE ai_service_request_duration_seconds histogram"));
    let upstream = "ai_service_upstream_duration_seconds_count";
    assert_eq!(value(&s, &format!("{upstream}{{method=\"Chat\",provider=\"local\"}}")), 3.0);
    assert_eq!(value(&s, &format!("{upstream}{{method=\"StreamChat\",provider=\"local\"}}")), 1.0);
    // Every call, the failed ones too, has an overhead sample.
    assert_eq!(value(&s, "ai_service_overhead_seconds_count{method=\"Chat\"}"), 6.0);
    assert_eq!(
        value(
            &s,
            "ai_service_time_to_first_token_seconds_count{route=\"fast\",provider=\"local\"}"
        ),
        1.0
    );
    let token = |t: &str| {
        value(
            &s,
            &format!("ai_service_tokens_total{{route=\"fast\",provider=\"local\",type=\"{t}\"}}"),
        )
    };
    assert_eq!((token("input"), token("output")), (tokens.0 as f64, tokens.1 as f64));
    assert_eq!(value(&s, "ai_service_requests_in_flight{method=\"Chat\"}"), 0.0);
    assert_eq!(value(&s, "ai_service_requests_in_flight{method=\"StreamChat\"}"), 0.0);
    assert_eq!(value(&s, "ai_service_streams_in_flight"), 0.0);
    assert!(text.contains("ai_service_build_info{version=\""));
}

#[tokio::test]
async fn readyz_turns_unavailable_when_the_drain_begins_and_livez_stays_up() {
    let mut server = TestServer::start("server: {shutdown_delay: 5s}").await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    assert_eq!(http_get(admin, "/livez").await.0, 200);
    assert_eq!(http_get(admin, "/readyz").await.0, 200);
    assert_eq!(http_get(admin, "/nothing").await.0, 404);

    server.begin_shutdown();
    // The drain starts asynchronously; wait for it rather than for a time.
    while !server.gateway.health().is_draining() {
        tokio::task::yield_now().await;
    }
    assert_eq!(http_get(admin, "/readyz").await.0, 503);
    assert_eq!(http_get(admin, "/livez").await.0, 200);
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_and_returned() {
    let server = TestServer::start("").await;
    let mut client = server.client().await;

    let mut request = tonic::Request::new(chat("echo", "hi"));
    request.metadata_mut().insert("x-request-id", "caller-id-7".parse().unwrap());
    let reply = client.chat(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "caller-id-7");

    let reply = client.chat(chat("echo", "hi")).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap().len(), 32);

    let mut request = tonic::Request::new(chat("missing", "hi"));
    request.metadata_mut().insert("x-request-id", "caller-id-8".parse().unwrap());
    let status = client.chat(request).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "caller-id-8");
}

/// What an embedder's backend saw.
#[derive(Debug, Default)]
struct RecordingMetrics {
    samples: Mutex<Vec<(&'static str, String, f64)>>,
}

impl RecordingMetrics {
    fn push(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.samples.lock().unwrap().push((name, labels.join(","), value));
    }

    fn sum(&self, name: &str, labels: &str) -> f64 {
        let samples = self.samples.lock().unwrap();
        samples.iter().filter(|(n, l, _)| *n == name && l == labels).map(|(_, _, v)| v).sum()
    }

    fn count(&self, name: &str, labels: &str) -> usize {
        let samples = self.samples.lock().unwrap();
        samples.iter().filter(|(n, l, _)| *n == name && l == labels).count()
    }
}

impl Metrics for RecordingMetrics {
    fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64) {
        self.push(name, labels, value as f64);
    }
    fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.push(name, labels, value);
    }
    fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64) {
        self.push(name, labels, delta);
    }
    fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.push(name, labels, value);
    }
}

/// Serves `gateway` on a fresh port; returns a client, the stop switch and the server task.
async fn serve(
    gateway: &Gateway,
) -> (ChatServiceClient<Channel>, oneshot::Sender<()>, JoinHandle<Result<(), ai_service::Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (ChatServiceClient::new(channel), stop, serving)
}

/// One `Chat` on route `fast`, one `StreamChat` on it, one `Chat` for an unknown model; the
/// first call's usage.
async fn chat_stream_and_unknown(client: &mut ChatServiceClient<Channel>) -> pb::Usage {
    let usage =
        client.chat(chat("fast", "four words of text")).await.unwrap().into_inner().usage.unwrap();
    let (_, status) =
        collect(client.stream_chat(stream_chat("fast", "streamed")).await.unwrap().into_inner())
            .await;
    assert!(status.is_none());
    client.chat(chat("unknown", "x")).await.unwrap_err();
    usage
}

#[tokio::test]
async fn an_embedder_receives_the_signals_in_its_own_backend() {
    let recording = Arc::new(RecordingMetrics::default());
    let config = Config::from_yaml(YAML, common::quiet_audit(YAML)).unwrap();
    let gateway = Gateway::with_metrics(config, recording.clone()).await.unwrap();
    let (mut client, stop, serving) = serve(&gateway).await;
    let usage = chat_stream_and_unknown(&mut client).await;

    let r = &recording;
    assert_eq!(
        r.sum(
            names::REQUESTS_TOTAL,
            "front_door=grpc,method=Chat,route=fast,provider=local,code=OK"
        ),
        1.0
    );
    assert_eq!(
        r.sum(
            names::REQUESTS_TOTAL,
            "front_door=grpc,method=StreamChat,route=fast,provider=local,code=OK"
        ),
        1.0
    );
    assert_eq!(
        r.sum(
            names::REQUESTS_TOTAL,
            "front_door=grpc,method=Chat,route=none,provider=none,code=NOT_FOUND"
        ),
        1.0
    );
    assert_eq!(
        r.count(
            names::REQUEST_DURATION_SECONDS,
            "front_door=grpc,method=Chat,route=fast,provider=local"
        ),
        1
    );
    assert_eq!(r.count(names::TIME_TO_FIRST_TOKEN_SECONDS, "route=fast,provider=local"), 1);
    assert_eq!(r.count(names::OVERHEAD_SECONDS, "method=Chat"), 2);
    assert!(
        r.sum(names::TOKENS_TOTAL, "route=fast,provider=local,type=input")
            >= f64::from(usage.input_tokens)
    );
    // In-flight gauges went up and came back down.
    assert_eq!(r.count(names::REQUESTS_IN_FLIGHT, "method=Chat"), 4);
    assert_eq!(r.sum(names::REQUESTS_IN_FLIGHT, "method=Chat"), 0.0);
    assert_eq!(r.sum(names::STREAMS_IN_FLIGHT, ""), 0.0);
    assert_eq!(r.count(names::BUILD_INFO, &format!("version={}", env!("CARGO_PKG_VERSION"))), 1);

    // Its backend renders no Prometheus text, so the admin port has none to serve.
    let (admin, _admin_stop) = start_admin(&gateway).await;
    assert_eq!(http_get(admin, "/metrics").await.0, 404);

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_embedders_metrics_recorder_gets_every_signal_with_the_catalogue() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let config = Config::from_yaml(YAML, common::quiet_audit(YAML)).unwrap();
    let gateway = Gateway::with_metrics_recorder(config, recorder).await.unwrap();
    let (mut client, stop, serving) = serve(&gateway).await;
    let usage = chat_stream_and_unknown(&mut client).await;

    let snapshot: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, help, value)| {
            let (_, key) = key.into_parts();
            let labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            (key.name().to_owned(), labels.join(","), unit, help, value)
        })
        .collect();
    let find = |name: &str, labels: &str| {
        snapshot
            .iter()
            .find(|(n, l, ..)| n == name && l == labels)
            .unwrap_or_else(|| panic!("no series {name}{{{labels}}} in {snapshot:#?}"))
    };
    let (.., help, value) = find(
        names::REQUESTS_TOTAL,
        "front_door=grpc,method=Chat,route=fast,provider=local,code=OK",
    );
    assert_eq!(*value, DebugValue::Counter(1));
    assert_eq!(
        help.as_deref(),
        Some(ai_service::metrics::definition(names::REQUESTS_TOTAL).unwrap().help)
    );
    let (.., value) = find(
        names::REQUESTS_TOTAL,
        "front_door=grpc,method=Chat,route=none,provider=none,code=NOT_FOUND",
    );
    assert_eq!(*value, DebugValue::Counter(1));
    let (.., value) = find(names::TOKENS_TOTAL, "route=fast,provider=local,type=input");
    assert!(matches!(value, DebugValue::Counter(n) if *n >= u64::from(usage.input_tokens)));
    let (.., unit, _, value) = find(
        names::REQUEST_DURATION_SECONDS,
        "front_door=grpc,method=Chat,route=fast,provider=local",
    );
    assert_eq!(*unit, Some(metrics::Unit::Seconds));
    assert!(matches!(value, DebugValue::Histogram(v) if v.len() == 1));
    let (.., value) = find(names::TIME_TO_FIRST_TOKEN_SECONDS, "route=fast,provider=local");
    assert!(matches!(value, DebugValue::Histogram(v) if v.len() == 1));
    let (.., value) = find(names::REQUESTS_IN_FLIGHT, "method=StreamChat");
    assert_eq!(*value, DebugValue::Gauge(0.0.into()));
    let (.., value) = find(names::BUILD_INFO, &format!("version={}", env!("CARGO_PKG_VERSION")));
    assert_eq!(*value, DebugValue::Gauge(1.0.into()));

    // The recorder renders nothing the admin port could serve.
    let (admin, _admin_stop) = start_admin(&gateway).await;
    assert_eq!(http_get(admin, "/metrics").await.0, 404);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

/// The only test here that installs a global recorder: the other gateways of this process
/// keep their own registries, and must not see its series (nor it theirs).
#[tokio::test]
async fn the_global_recorder_gets_every_signal_beside_the_embedders_own() {
    let handle = ai_service::metrics::prometheus::builder().unwrap().install_recorder().unwrap();
    metrics::counter!("embedder_jobs_total").increment(7);
    let config = Config::from_yaml(YAML, common::quiet_audit(YAML)).unwrap();
    let gateway = Gateway::with_global_metrics_recorder(config).await.unwrap();
    let (mut client, stop, serving) = serve(&gateway).await;
    chat_stream_and_unknown(&mut client).await;
    // A gateway with a registry of its own, in the same process.
    let other = TestServer::start(YAML).await;
    other.client().await.chat(chat("fast", "elsewhere")).await.unwrap();

    let text = handle.render();
    let s = samples(&text);
    assert_eq!(value(&s, "embedder_jobs_total"), 7.0);
    let ok = "front_door=\"grpc\",method=\"Chat\",route=\"fast\",provider=\"local\"";
    assert_eq!(value(&s, &format!("ai_service_requests_total{{{ok},code=\"OK\"}}")), 1.0);
    // Histograms, with the catalogue's buckets, because the exporter was built from
    // `prometheus::builder()`.
    for def in CATALOGUE.iter().filter(|d| d.kind == Kind::Histogram) {
        assert!(text.contains(&format!("# TYPE {} histogram\n", def.name)), "{text}");
    }
    let bucket =
        |le: &str| format!("ai_service_request_duration_seconds_bucket{{{ok},le=\"{le}\"}}");
    assert!(value(&s, &bucket("0.005")) <= 1.0);
    assert_eq!(value(&s, &bucket("+Inf")), 1.0);
    assert!(text.contains("# HELP ai_service_requests_total Finished calls"));
    // The gateway on its own registry kept its series there.
    let theirs = other.gateway.metrics().render().unwrap();
    assert_eq!(
        value(&samples(&theirs), &format!("ai_service_requests_total{{{ok},code=\"OK\"}}")),
        1.0
    );
    assert!(!theirs.contains("embedder_jobs_total"));

    // The embedder's exporter is the one that serves them; the gateway's admin port has none.
    let (admin, _admin_stop) = start_admin(&gateway).await;
    assert_eq!(http_get(admin, "/metrics").await.0, 404);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_scrape_shows_failovers_attempts_and_endpoint_health() {
    use common::fake_upstream::{FakeUpstream, Reply};
    let down = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let up = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "routing: {{eject_after: 1}}\nproviders:\n  a: {{kind: openai_compatible, base_url: \"{}/v1\", disable_proxy: true}}\n  b: {{kind: openai_compatible, base_url: \"{}/v1\", disable_proxy: true}}\nroutes: [{{name: r, targets: [{{provider: a, model: m}}, {{provider: b, model: m}}]}}]\n",
        down.url(""),
        up.url("")
    );
    let server = TestServer::start(&yaml).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    server.client().await.chat(chat("r", "hi")).await.unwrap();

    let (_, text) = http_get(admin, "/metrics").await;
    let s = samples(&text);
    assert_eq!(value(&s, r#"ai_service_failovers_total{route="r",provider="a"}"#), 1.0, "{text}");
    assert_eq!(
        value(
            &s,
            r#"ai_service_upstream_attempts_total{provider="a",outcome="UPSTREAM_SERVER_ERROR"}"#
        ),
        1.0
    );
    assert_eq!(value(&s, r#"ai_service_upstream_attempts_total{provider="b",outcome="ok"}"#), 1.0);
    // One failure ejected a's only endpoint (eject_after: 1): its breaker is open.
    assert_eq!(value(&s, r#"ai_service_endpoint_healthy{provider="a",endpoint="default"}"#), 0.0);
    assert_eq!(value(&s, r#"ai_service_breaker_state{provider="a",endpoint="default"}"#), 2.0);
    assert_eq!(value(&s, r#"ai_service_endpoint_healthy{provider="b",endpoint="default"}"#), 1.0);
    assert_eq!(
        value(
            &s,
            r#"ai_service_requests_total{front_door="grpc",method="Chat",route="r",provider="b",code="OK"}"#
        ),
        1.0
    );
}
