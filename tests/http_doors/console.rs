//! The operator console on the admin port: the page and its assets with their security
//! headers, the JSON endpoints (route table with endpoint health, traffic samples, the
//! redacted configuration), no secret in any answer, and `server.console: false`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{net::SocketAddr, time::Duration};

use crate::common::{
    TestServer, chat,
    fake_upstream::{FakeUpstream, Reply},
    start_admin,
};
use ai_service::{Config, proto::v1::ListModelsRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::Request;

const CLIENT_KEY: &str = "ais_console_0123456789abcdef0123456789";
const PROVIDER_KEY: &str = "sk-console-provider-secret-0123456789";
const OTLP_TOKEN: &str = "otlp-token-never-shown-4242";

/// Every path the console serves.
const CONSOLE_PATHS: [&str; 8] = [
    "/",
    "/index.html",
    "/console.js",
    "/grpcweb.js",
    "/console.css",
    "/favicon.svg",
    "/api/routes",
    "/api/overview",
];

fn digest(key: &str) -> String {
    ai_service::auth::hex(&Sha256::digest(key.as_bytes()))
}

/// A GET with `Host: localhost:<port>`: status, headers (lower-cased names) and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    let (status, headers, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    serde_json::from_str(&body).unwrap()
}

/// Client keys on, a provider key from the environment, an OTLP token in the file, three
/// routes: `chat` on echo, `flaky` on an upstream that answers 503 and is ejected after one
/// failure, and `safe`, which fails over from that upstream to echo.
async fn gateway(console: &str) -> (TestServer, FakeUpstream) {
    let down = FakeUpstream::start(vec![Reply::json(503, "openai/error_400.json")]).await;
    let yaml = format!(
        r#"
server: {{console: {console}}}
auth:
  keys:
    - {{id: ops, sha256: {}}}
routing: {{max_retries: 0, eject_after: 1, eject_cooldown: 10m, eject_cooldown_max: 10m}}
tracing: {{sample_ratio: 0, otlp: {{endpoint: "http://127.0.0.1:1", headers: {{authorization: {{value: "Bearer {OTLP_TOKEN}"}}}}}}}}
providers:
  e: {{kind: echo}}
  up: {{kind: openai_compatible, base_url: "{}/v1", api_key_env: CONSOLE_TEST_KEY, disable_proxy: true}}
routes:
  - {{name: chat, aliases: [talk], targets: [{{provider: e, model: small}}]}}
  - {{name: flaky, targets: [{{provider: up, model: m}}]}}
  - {{name: safe, max_retries: 1, targets: [{{provider: up, model: m}}, {{provider: e, model: small}}]}}
"#,
        digest(CLIENT_KEY),
        down.url("")
    );
    let vars = vec![
        ("AI_SERVICE__AUDIT__SINK".to_owned(), "/dev/null".to_owned()),
        ("CONSOLE_TEST_KEY".to_owned(), PROVIDER_KEY.to_owned()),
    ];
    let config = Config::from_yaml(&yaml, vars).expect("test config is valid");
    (TestServer::start_with(config).await, down)
}

fn keyed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {CLIENT_KEY}").parse().unwrap());
    request
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let (server, _down) = gateway("true").await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let (status, headers, body) = get(admin, "/").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/html; charset=utf-8"));
    assert!(body.contains("<script src=\"/console.js\""), "{body}");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    let csp = header(&headers, "content-security-policy").unwrap();
    let grpc = format!(
        "connect-src 'self' http://localhost:{};",
        server.gateway.config().server.listen.port()
    );
    assert!(csp.contains(&grpc), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    for path in CONSOLE_PATHS {
        let (status, headers, _) = get(admin, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"), "{path}");
        assert!(header(&headers, "content-security-policy").is_some(), "{path}");
    }
    let (_, headers, _) = get(admin, "/console.js").await;
    assert_eq!(header(&headers, "content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(get(admin, "/api/nothing").await.0, 404);
}

#[tokio::test]
async fn the_route_table_matches_list_models_and_shows_an_ejected_endpoint() {
    let (server, down) = gateway("true").await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut client = server.client().await;
    let models = client.list_models(keyed(ListModelsRequest {})).await.unwrap().into_inner();
    let table = json(admin, "/api/routes").await;
    let routes = table["routes"].as_array().unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let listed: Vec<&str> = models.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, listed);
    assert_eq!(routes[0]["aliases"], serde_json::json!(["talk"]));
    let endpoint = &routes[1]["targets"][0]["endpoints"][0];
    assert_eq!(endpoint["name"], "default");
    assert_eq!(
        (endpoint["ejected"].as_bool(), endpoint["breaker"].as_str()),
        (Some(false), Some("closed"))
    );

    // One 503 ejects the only endpoint of "flaky"; "chat" is untouched.
    let status = client.chat(keyed(chat("flaky", "hi"))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(down.received().len(), 1);
    let table = json(admin, "/api/routes").await;
    let flaky = &table["routes"][1];
    assert_eq!(flaky["name"], "flaky");
    assert_eq!(flaky["available"], false);
    let endpoint = &flaky["targets"][0]["endpoints"][0];
    assert_eq!(endpoint["ejected"], true);
    assert_eq!(endpoint["available"], false);
    assert_eq!(endpoint["breaker"], "open");
    assert_eq!(table["routes"][0]["available"], true);
    assert_eq!(table["routes"][0]["targets"][0]["endpoints"][0]["ejected"], false);
}

#[tokio::test]
async fn the_charts_sample_the_calls_and_the_overview_shows_the_build() {
    let (server, _down) = gateway("true").await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut client = server.client().await;
    // The sampler's first reading is its baseline; calls after it show up in a sample. Once
    // there is a sample, the baseline was taken.
    for _ in 0..100 {
        if !json(admin, "/api/metrics").await["samples"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        client.chat(keyed(chat("chat", "hello"))).await.unwrap();
    }
    // The upstream's 503 ejects it and the call fails over to echo; then "flaky" has no
    // endpoint left.
    let reply = client.chat(keyed(chat("safe", "hello"))).await.unwrap().into_inner();
    assert_eq!(reply.provider, "e");
    client.chat(keyed(chat("flaky", "hi"))).await.unwrap_err();
    let mut series = Value::Null;
    for _ in 0..50 {
        series = json(admin, "/api/metrics").await;
        if series["requests_total"].as_f64() == Some(5.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(series["interval_secs"], 1);
    assert_eq!(series["requests_total"], 5.0, "{series}");
    assert_eq!(series["errors_total"], 1.0, "{series}");
    let samples = series["samples"].as_array().unwrap();
    let calls: f64 = samples.iter().map(|s| s["requests_per_sec"].as_f64().unwrap()).sum();
    assert_eq!(calls, 5.0, "every call lands in exactly one sample: {series}");
    let failovers: f64 = samples.iter().map(|s| s["failovers"].as_f64().unwrap()).sum();
    assert_eq!(failovers, 1.0, "{series}");
    assert_eq!(
        series["resilience"],
        serde_json::json!([{"route": "safe", "provider": "up", "retries": 0.0, "failovers": 1.0, "hedges": 0.0}])
    );
    let busy = samples.iter().find(|s| s["requests_per_sec"].as_f64() > Some(0.0)).unwrap();
    assert!(busy["latency_p50_ms"].as_f64().unwrap() > 0.0, "{busy}");
    assert!(busy["overhead_p99_ms"].as_f64().is_some(), "{busy}");

    let overview = json(admin, "/api/overview").await;
    assert_eq!(overview["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(overview["client_keys"], true);
    assert_eq!(overview["grpc_port"], server.gateway.config().server.listen.port());
    let config = overview["config"].as_str().unwrap();
    assert!(config.contains("flaky") && config.contains("eject_after: 1"), "{config}");
}

#[tokio::test]
async fn no_console_answer_carries_a_secret() {
    let (server, _down) = gateway("true").await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    let mut client = server.client().await;
    client.chat(keyed(chat("chat", "hello"))).await.unwrap();
    client.chat(keyed(chat("flaky", "hello"))).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let overview = json(admin, "/api/overview").await;
    assert!(overview["config"].as_str().unwrap().contains("sha256: '***'"), "{overview}");
    let secrets = [CLIENT_KEY, PROVIDER_KEY, OTLP_TOKEN, &digest(CLIENT_KEY)];
    for path in CONSOLE_PATHS.iter().copied().chain(["/api/metrics"]) {
        let (status, headers, body) = get(admin, path).await;
        assert_eq!(status, 200, "{path}");
        for secret in secrets {
            assert!(!body.contains(secret), "{path} shows a secret: {body}");
            assert!(headers.iter().all(|(_, v)| !v.contains(secret)), "{path} header");
        }
    }
}

#[tokio::test]
async fn console_off_serves_no_page_and_no_json() {
    let (server, _down) = gateway("false").await;
    let (admin, _stop) = start_admin(&server.gateway).await;
    for path in CONSOLE_PATHS.iter().copied().chain(["/api/metrics"]) {
        assert_eq!(get(admin, path).await.0, 404, "{path}");
    }
    assert_eq!(get(admin, "/metrics").await.0, 200);
    assert_eq!(get(admin, "/livez").await.0, 200);
}
