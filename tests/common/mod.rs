//! The shared test harness: a real gateway on `127.0.0.1:0`, a generated tonic client, and
//! builders for requests. Each test file uses the parts it needs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // tests fail loudly

pub mod fake_upstream;
pub mod redis;

use std::net::SocketAddr;

use ai_service::{
    Config, Gateway,
    proto::v1::{self as pb, chat_service_client::ChatServiceClient},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, Endpoint};

/// A bare HTTP/2 client for gRPC, without tonic's client-side deadline.
pub type RawClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic::body::Body,
>;

/// A gateway serving on an ephemeral port until stopped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ai_service::Error>>,
}

impl TestServer {
    /// Starts a gateway with the config in `yaml` ("" for the built-in defaults).
    pub async fn start(yaml: &str) -> TestServer {
        let config = Config::from_yaml(yaml, quiet_audit(yaml)).expect("test config is valid");
        TestServer::start_with(config).await
    }

    /// Starts a gateway with `config`.
    pub async fn start_with(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Gateway::new(config).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let serving = gateway.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        TestServer { addr, gateway, shutdown: Some(tx), task }
    }

    /// A fresh connection to the server.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    /// A chat client on a fresh connection.
    pub async fn client(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(self.channel().await)
    }

    /// A chat client over a bare HTTP/2 client. Unlike tonic's `Channel` it does not enforce
    /// `grpc-timeout` itself, so a test sees the deadline status the server sends.
    pub fn raw_client(&self) -> ChatServiceClient<RawClient> {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build(connector);
        let origin = format!("http://{}", self.addr).parse().unwrap();
        ChatServiceClient::with_origin(client, origin)
    }

    /// Starts the drain without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Drains and waits until the server stopped.
    pub async fn stop(mut self) -> Result<(), ai_service::Error> {
        self.begin_shutdown();
        self.task.await.unwrap()
    }

    /// Waits until the server stopped (after `begin_shutdown`).
    pub async fn stopped(self) -> Result<(), ai_service::Error> {
        self.task.await.unwrap()
    }
}

/// The real `ai-service` binary, serving a config file on free loopback ports.
pub struct Binary {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT` of its gRPC port.
    pub addr: String,
    /// `127.0.0.1:PORT` of its admin port.
    pub admin: String,
}

impl Binary {
    /// Starts the binary with `--config config` and `env`, its output going to `stdout` and
    /// `stderr` (files, not pipes, for a chatty log); returns once it answers health checks,
    /// or after 5 s.
    pub async fn start(
        config: &std::path::Path,
        env: &[(&str, &str)],
        stdout: std::process::Stdio,
        stderr: std::process::Stdio,
    ) -> Binary {
        let free_port =
            || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ai-service"))
            .arg("--config")
            .arg(config)
            .env("AI_SERVICE__SERVER__LISTEN", &addr)
            .env("AI_SERVICE__SERVER__ADMIN_LISTEN", &admin)
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if ai_service::healthcheck::probe(&addr, "", std::time::Duration::from_secs(1))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Binary { child, addr, admin }
    }

    /// A connection to its gRPC port.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    /// Sends it a signal, e.g. `TERM` or `HUP`.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits for it to exit.
    pub async fn wait(mut self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || self.child.wait()).await.unwrap().unwrap()
    }
}

/// Sends the audit trail to /dev/null unless the test's config says where it goes, so test
/// output is not flooded with records.
pub fn quiet_audit(yaml: &str) -> Vec<(String, String)> {
    if yaml.contains("sink:") {
        Vec::new()
    } else {
        vec![("AI_SERVICE__AUDIT__SINK".to_owned(), "/dev/null".to_owned())]
    }
}

/// A user message of one text part.
pub fn user(text: &str) -> pb::Message {
    message(pb::Role::User, text)
}

/// A message of one text part.
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

/// A `Chat` request for `model` with one user message.
pub fn chat(model: &str, text: &str) -> pb::ChatRequest {
    pb::ChatRequest { model: model.into(), messages: vec![user(text)], ..Default::default() }
}

/// A `StreamChat` request for `model` with one user message.
pub fn stream_chat(model: &str, text: &str) -> pb::StreamChatRequest {
    pb::StreamChatRequest { model: model.into(), messages: vec![user(text)], ..Default::default() }
}

/// The text of a reply message.
pub fn text_of(message: &pb::Message) -> String {
    message
        .content
        .iter()
        .filter_map(|p| match &p.part {
            Some(pb::content_part::Part::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// Every event of a stream, or the status it ended with.
pub async fn collect(
    mut stream: tonic::Streaming<pb::StreamChatResponse>,
) -> (Vec<pb::stream_chat_response::Event>, Option<tonic::Status>) {
    let mut events = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(item)) => events.push(item.event.expect("every stream item carries an event")),
            Ok(None) => return (events, None),
            Err(status) => return (events, Some(status)),
        }
    }
}

/// The gateway's admin port on an ephemeral port, open until the returned sender fires.
pub async fn start_admin(gateway: &Gateway) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve_admin(listener, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The records of the audit file at `path` once there are at least `n` (waits up to 2 s).
pub async fn audit_records(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let records: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if records.len() >= n {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} audit records in {}", path.display());
}
