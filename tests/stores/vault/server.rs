//! The Vault the tests talk to: HashiCorp Vault when `VAULT_ADDR` and `VAULT_TOKEN` point at
//! one, else one OpenBao dev server (`AI_SERVICE_BAO`, or `.tools/bin/bao` from `make tools`)
//! shared by every test of the binary; tests keep apart by path prefix and mount name. Seeding
//! goes through the HTTP API.

use std::{
    io::Read,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use serde_json::{Value, json};

/// A Vault server and a token that may do anything on it.
pub struct Vault {
    pub addr: String,
    pub root: String,
}

/// Keeps a started server's watcher alive: its stdin closing (when the test process ends,
/// however it ends) makes the watcher kill the server, so no server outlives the tests.
pub struct Running {
    pub child: Child,
    _stdin: ChildStdin,
}

impl Running {
    /// Stops the server at once (the watcher kills it).
    pub fn kill(mut self) {
        drop(self._stdin);
        let _ = self.child.wait();
    }
}

static SHARED: OnceLock<(Vault, Mutex<Option<Running>>)> = OnceLock::new();

/// The shared server, started on first use.
pub fn shared() -> &'static Vault {
    &SHARED
        .get_or_init(|| match external() {
            Some(vault) => (vault, Mutex::new(None)),
            None => {
                let (vault, running) = start_bao();
                (vault, Mutex::new(Some(running)))
            }
        })
        .0
}

/// The external Vault of `VAULT_ADDR`/`VAULT_TOKEN`, when both are set.
pub fn external() -> Option<Vault> {
    let addr = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty())?;
    let root = std::env::var("VAULT_TOKEN").ok().filter(|t| !t.is_empty())?;
    Some(Vault { addr: addr.trim_end_matches('/').to_owned(), root })
}

fn bao_binary() -> std::path::PathBuf {
    let path = std::env::var("AI_SERVICE_BAO").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/bao")
    });
    assert!(
        path.is_file(),
        "no OpenBao server at {}: run `make tools` (it unpacks ../shared/bin/bao.xz), or point \
         VAULT_ADDR and VAULT_TOKEN at a Vault",
        path.display()
    );
    path
}

/// Starts an OpenBao dev server on a free port (it also binds the port above).
pub fn start_bao() -> (Vault, Running) {
    let bao = bao_binary();
    for _ in 0..20 {
        let port = free_port_pair();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new("sh")
            .arg("-c")
            // The server runs in the background; `read` returns when the test process's end
            // closes our stdin, and the server is killed with it.
            .arg(r#""$0" server -dev -dev-root-token-id=root -dev-listen-address="$1" >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
            .arg(&bao)
            .arg(&addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let running = Running { child, _stdin: stdin };
        let vault = Vault { addr: format!("http://{addr}"), root: "root".to_owned() };
        if wait_ready(&addr) {
            return (vault, running);
        }
        running.kill();
    }
    panic!("OpenBao did not start");
}

/// A free port whose successor is free too (the dev server's cluster listener).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free ports in a row on 127.0.0.1 after 100 tries");
}

/// Waits (at most 10 s) until the server reports itself unsealed.
fn wait_ready(addr: &str) -> bool {
    use std::io::Write;
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let request =
                format!("GET /v1/sys/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if s.write_all(request.as_bytes()).is_ok()
                && s.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Vault {
    /// `METHOD /v1/<path>` with the root token; the JSON answer (Null for 204).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        ai_service::provider::http::install_crypto();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client
            .request(method.clone(), format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Writes `fields` to the KV v2 secret `secret/data/<name>`.
    pub async fn put_v2(&self, name: &str, fields: Value) {
        self.post(&format!("secret/data/{name}"), json!({ "data": fields })).await;
    }

    /// Mounts a KV v1 engine at `mount` (once).
    pub async fn mount_kv1(&self, mount: &str) {
        self.post(
            &format!("sys/mounts/{mount}"),
            json!({"type": "kv", "options": {"version": "1"}}),
        )
        .await;
    }

    /// A policy `name` that may read everything under `secret/data/<prefix>` and `<kv1>/`.
    pub async fn reader_policy(&self, name: &str, prefix: &str) {
        let policy = format!("path \"secret/data/{prefix}/*\" {{ capabilities = [\"read\"] }}\n");
        self.post(&format!("sys/policies/acl/{name}"), json!({ "policy": policy })).await;
    }

    /// Enables the auth method `kind` at `mount`.
    pub async fn enable_auth(&self, mount: &str, kind: &str) {
        self.post(&format!("sys/auth/{mount}"), json!({ "type": kind })).await;
    }
}

/// A per-test prefix, so tests sharing a server never see each other's secrets.
pub fn prefix(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// A TCP proxy to `target` (`http://host:port`) on a free port: `http://127.0.0.1:PORT` and
/// the task whose abort takes it (and every connection through it) down.
pub async fn proxy(target: &str) -> (String, tokio::task::JoinHandle<()>) {
    let upstream = target.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

/// A stand-in for the Kubernetes API server that answers every TokenReview with the service
/// account `namespace/name` (uid `uid`) authenticated: its URL and a count of reviews.
pub async fn token_review_server(
    namespace: &str,
    name: &str,
    uid: &str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{Arc, atomic::AtomicUsize};
    let reviews = Arc::new(AtomicUsize::new(0));
    let answer = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": {
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{namespace}:{name}"),
                "uid": uid,
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}")],
            }
        }
    });
    let counted = reviews.clone();
    let app = axum::Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        axum::routing::post(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = answer.clone();
            async move { (axum::http::StatusCode::CREATED, axum::Json(answer)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, reviews)
}

/// A service-account JWT with the claims OpenBao's kubernetes method reads (the signature is
/// not checked: the TokenReview is what vouches for it).
pub fn service_account_jwt(namespace: &str, name: &str, uid: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = json!({"alg": "RS256", "kid": "test"});
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token"),
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
    });
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{}", part(&header), part(&claims), URL_SAFE_NO_PAD.encode([7u8; 256]))
}

/// A CA certificate (PEM), which OpenBao's kubernetes config demands even for a plain-HTTP
/// stand-in API server.
pub fn any_ca_pem() -> String {
    rcgen::generate_simple_self_signed(vec!["kubernetes.default".to_owned()]).unwrap().cert.pem()
}
