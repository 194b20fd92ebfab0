//! Logs: one JSON line per finished RPC, inside the call's span, with the fields operators
//! search by. This file holds a single test because it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::{
    io,
    sync::{Arc, Mutex},
};

use ai_service::{
    config::{LogConfig, LogFormat},
    telemetry,
};
use common::{TestServer, chat};
use serde_json::Value;

/// Log lines written into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The line that finished the call with `request_id`.
    fn finished(&self, request_id: &str) -> Value {
        self.lines()
            .into_iter()
            .find(|l| l["span"]["request_id"] == request_id && l["span"]["code"].is_string())
            .unwrap_or_else(|| panic!("no finished line for {request_id}: {:?}", self.lines()))
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_finished_rpc_logs_its_span_fields_as_json() {
    let captured = Captured::default();
    let writer = captured.clone();
    let log = LogConfig {
        level: "info".into(),
        format: LogFormat::Json,
        flush_interval: LogConfig::DEFAULT_FLUSH_INTERVAL,
    };
    tracing::subscriber::set_global_default(telemetry::subscriber(&log, move || writer.clone()))
        .unwrap();

    let yaml = "providers: {local: {kind: echo}}\nroutes: [{name: fast, targets: [{provider: local, model: echo-small}]}]";
    let server = TestServer::start(yaml).await;
    let mut client = server.client().await;
    let mut request = tonic::Request::new(chat("fast", "three little words"));
    request.metadata_mut().insert("x-request-id", "log-test-ok".parse().unwrap());
    request.metadata_mut().insert("traceparent", TRACEPARENT.parse().unwrap());
    let usage = client.chat(request).await.unwrap().into_inner().usage.unwrap();
    let mut request = tonic::Request::new(chat("no-such-model", "x"));
    request.metadata_mut().insert("x-request-id", "log-test-err".parse().unwrap());
    client.chat(request).await.unwrap_err();

    let ok = captured.finished("log-test-ok");
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["message"], "rpc finished");
    assert!(ok["latency_ms"].is_number(), "{ok}");
    let span = &ok["span"];
    assert_eq!(span["name"], "rpc");
    assert_eq!(span["method"], "Chat");
    assert_eq!(span["model"], "fast");
    assert_eq!(span["route"], "fast");
    assert_eq!(span["provider"], "local");
    assert_eq!(span["upstream_model"], "echo-small");
    assert_eq!(span["code"], "OK");
    assert_eq!(span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["input_tokens"], usage.input_tokens);
    assert_eq!(span["output_tokens"], usage.output_tokens);
    assert!(span.get("error").is_none(), "{ok}");

    let err = captured.finished("log-test-err");
    assert_eq!(err["span"]["code"], "NOT_FOUND");
    // What the caller asked is logged, valid or not; it resolved to no route.
    assert_eq!(err["span"]["model"], "no-such-model");
    assert_eq!(err["span"]["route"], serde_json::Value::Null, "an unknown model is not resolved");
    assert!(err["span"]["error"].as_str().unwrap().contains("no-such-model"), "{err}");
}
