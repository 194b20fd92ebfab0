//! Secrets from Vault/OpenBao, against a real server (`vault/server.rs`): keys from KV v2 and
//! KV v1 at start, a rotation reaching the next upstream call, calls going on while Vault is
//! down (and the metrics saying so), a wrong path ending the binary with exit code 69, a
//! short-TTL token renewed, AppRole and Kubernetes logins, and the token never printed.

mod server;

use std::{process::Stdio, time::Duration};

use ai_service::{Config, vault};
use serde_json::json;
use tokio::time::Instant;

use crate::common::{
    Binary, TestServer, chat,
    fake_upstream::{FakeUpstream, Reply},
    http_get, quiet_audit, start_admin,
};
use server::{Vault, prefix, shared};

/// Loads `yaml` with the test Vault's address (and `token` when given) in the environment; its
/// Vault references are not read yet.
fn load(yaml: &str, vault: &Vault, token: Option<&str>) -> Config {
    let mut vars = quiet_audit(yaml);
    vars.push(("VAULT_ADDR".into(), vault.addr.clone()));
    if let Some(token) = token {
        vars.push(("VAULT_TOKEN".into(), token.to_owned()));
    }
    Config::from_yaml(yaml, vars).expect("test config is valid")
}

/// [`load`], then its Vault references resolved.
async fn config(yaml: &str, vault: &Vault, token: Option<&str>) -> Config {
    let mut config = load(yaml, vault, token);
    vault::resolve(&mut config).await.expect("the Vault secrets resolve");
    config
}

/// An OpenAI provider `name` at `fake`, its key at the Vault reference `key`.
fn provider(name: &str, fake: &FakeUpstream, key: &str) -> String {
    format!(
        "  {name}: {{kind: openai, base_url: \"{}/v1\", disable_proxy: true, api_key_vault: {key}}}\n",
        fake.url("")
    )
}

/// The `Authorization` header of the fake's latest request, after one call to `route`.
async fn key_sent(server: &TestServer, fake: &FakeUpstream, route: &str) -> String {
    server.client().await.chat(chat(route, "hi")).await.expect("the call succeeds");
    fake.received().last().unwrap().header("authorization").unwrap().to_owned()
}

/// Calls `route` until the fake sees `Bearer want`, for at most 10 s.
async fn until_key(server: &TestServer, fake: &FakeUpstream, route: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!("Bearer {want}");
    loop {
        let sent = key_sent(server, fake, route).await;
        if sent == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {sent:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_kv_v2_and_kv_v1_rotate_into_the_next_call() {
    let vault = shared();
    let p = prefix("rotate");
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-v2-first", "other": 1})).await;
    let kv1 = format!("{p}-kv1");
    vault.mount_kv1(&kv1).await;
    vault.post(&format!("{kv1}/ai/groq"), json!({"key": "gsk-v1-first"})).await;

    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "vault: {{refresh_interval: 200ms}}\nproviders:\n{}{}routes:\n  - {{name: a, targets: [{{provider: a, model: m}}]}}\n  - {{name: b, targets: [{{provider: b, model: m}}]}}\n",
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
        provider("b", &fake, &format!("{{path: {kv1}/ai/groq, field: key, kv: 1}}")),
    );
    let server = TestServer::start_with(config(&yaml, vault, Some(&vault.root)).await).await;
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-v2-first");
    assert_eq!(key_sent(&server, &fake, "b").await, "Bearer gsk-v1-first");

    // Rotated in Vault: the refresh interval brings it to the next calls.
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-v2-second"})).await;
    until_key(&server, &fake, "a", "sk-v2-second").await;

    // What SIGHUP does: re-read at once.
    vault.post(&format!("{kv1}/ai/groq"), json!({"key": "gsk-v1-second"})).await;
    assert!(server.gateway.refresh_secrets().await);
    assert_eq!(key_sent(&server, &fake, "b").await, "Bearer gsk-v1-second");

    // A config reload (SIGHUP) reads the new config's references before its routes apply.
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-v2-third"})).await;
    let mut reloaded = load(&yaml, vault, Some(&vault.root));
    server.gateway.resolve_secrets(&mut reloaded).await.unwrap();
    server.gateway.reload(&reloaded);
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-v2-third");
    assert_eq!(key_sent(&server, &fake, "b").await, "Bearer gsk-v1-second");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_an_endpoint_key_and_an_otlp_header_come_from_vault() {
    use sha2::{Digest, Sha256};
    let vault = shared();
    let p = prefix("clients");
    let hash = ai_service::auth::hex(&Sha256::digest(b"ais_vault_client_key"));
    let keys = format!("- {{id: from-vault, sha256: {hash}}}\n");
    vault.put_v2(&format!("{p}/clients"), json!({"keys": keys})).await;
    vault.put_v2(&format!("{p}/endpoint"), json!({"key": "sk-endpoint"})).await;
    vault.put_v2(&format!("{p}/otel"), json!({"auth": "Bearer otel-from-vault"})).await;
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "tracing: {{otlp: {{endpoint: 'http://127.0.0.1:9', headers: {{authorization: {{value_vault: {{path: secret/data/{p}/otel, field: auth}}}}}}}}}}\nauth: {{keys_vault: {{path: secret/data/{p}/clients, field: keys}}}}\nproviders:\n  o: {{kind: openai, api_key_env: UNUSED_KEY, disable_proxy: true}}\nroutes: [{{name: r, targets: [{{provider: o, model: m, endpoints: [{{name: e, url: \"{}/v1\", api_key_vault: {{path: secret/data/{p}/endpoint, field: key}}}}]}}]}}]\n",
        fake.url("")
    );
    let mut vars = quiet_audit(&yaml);
    vars.extend([
        ("VAULT_ADDR".to_owned(), vault.addr.clone()),
        ("VAULT_TOKEN".to_owned(), vault.root.clone()),
        ("UNUSED_KEY".to_owned(), "sk-provider".to_owned()),
    ]);
    let mut config = Config::from_yaml(&yaml, vars).unwrap();
    vault::resolve(&mut config).await.unwrap();
    let otlp = config.tracing.otlp.as_ref().unwrap();
    assert!(otlp.vault_headers.is_empty());
    assert_eq!(otlp.headers.len(), 1);
    assert_eq!(otlp.headers[0].0, "authorization");
    assert_eq!(otlp.headers[0].1.expose(), "Bearer otel-from-vault");
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    let refused = client.chat(chat("r", "hi")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(chat("r", "hi"));
    request.metadata_mut().insert("x-api-key", "ais_vault_client_key".parse().unwrap());
    client.chat(request).await.expect("the key from Vault is accepted");
    assert_eq!(fake.only_request().header("authorization"), Some("Bearer sk-endpoint"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_vault_is_down_and_the_metrics_say_so() {
    // A server of its own, to stop; with an external Vault, a proxy in front of it stands in.
    let (vault, stop) = match server::external() {
        Some(external) => {
            let (proxy, stop) = server::proxy(&external.addr).await;
            (Vault { addr: proxy, root: external.root }, Stop::Proxy(stop))
        }
        None => {
            let (vault, running) = server::start_bao();
            (vault, Stop::Bao(running))
        }
    };
    let p = prefix("down");
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-before-outage"})).await;
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "vault: {{refresh_interval: 200ms, timeout: 1s}}\nproviders:\n{}routes: [{{name: a, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
    );
    let server = TestServer::start_with(config(&yaml, &vault, Some(&vault.root)).await).await;
    let (admin, _admin_stop) = start_admin(&server.gateway).await;
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(metrics.contains("ai_service_secret_store_up 1"), "{metrics}");
    assert!(metrics.contains("ai_service_secret_store_last_success_timestamp_seconds "));

    stop.now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = http_get(admin, "/metrics").await;
        if metrics.contains("ai_service_secret_store_up 0")
            && metrics.contains("ai_service_secret_store_errors_total{operation=")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the outage does not show:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-before-outage");
    }
    assert!(!server.gateway.refresh_secrets().await, "a SIGHUP re-read fails too");
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-before-outage");
    server.stop().await.unwrap();
}

/// What stops the Vault of the outage test.
enum Stop {
    Bao(server::Running),
    Proxy(tokio::task::JoinHandle<()>),
}

impl Stop {
    fn now(self) {
        match self {
            Stop::Bao(running) => running.kill(),
            Stop::Proxy(task) => task.abort(),
        }
    }
}

/// Runs the binary with `config` and the test Vault in its environment until it exits (at
/// most 20 s); its exit code and stderr.
async fn run_binary(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, yaml).unwrap();
    let errors = dir.path().join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ai-service"))
        .arg("--config")
        .arg(&file)
        .env("AI_SERVICE__SERVER__LISTEN", "127.0.0.1:0")
        .env("AI_SERVICE__SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not exit within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (status.code(), std::fs::read_to_string(&errors).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_path_or_an_unreachable_vault_exits_69_before_binding() {
    let vault = shared();
    let p = prefix("wrong");
    let yaml = format!(
        "providers: {{openai: {{api_key_vault: {{path: secret/data/{p}/missing, field: key}}}}}}\nroutes: [{{name: r, targets: [{{provider: openai, model: m}}]}}]\n"
    );
    let env = [("VAULT_ADDR", vault.addr.as_str()), ("VAULT_TOKEN", vault.root.as_str())];
    let (code, stderr) = run_binary(&yaml, &env).await;
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains(&format!("secret/data/{p}/missing#key")), "{stderr}");
    assert!(stderr.contains("providers.openai.api_key_vault"), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");

    // A field that is not in the secret.
    vault.put_v2(&format!("{p}/present"), json!({"other": "x"})).await;
    let (code, stderr) = run_binary(&yaml.replace("/missing", "/present"), &env).await;
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("the field does not exist"), "{stderr}");

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nowhere = format!("http://{closed}");
    let (code, stderr) =
        run_binary(&yaml, &[("VAULT_ADDR", &nowhere), ("VAULT_TOKEN", "hvs.not-a-real-token")])
            .await;
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(!stderr.contains("hvs.not-a-real-token"), "{stderr}");

    // A bad reference is a config error (64), naming the field.
    let (code, stderr) = run_binary(&yaml.replace("field: key", "field: ''"), &env).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("providers.openai.api_key_vault.field"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_ttl_token_is_renewed_before_it_expires() {
    let vault = shared();
    let p = prefix("ttl");
    vault.reader_policy(&p, &p).await;
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-ttl-first"})).await;
    let created = vault
        .post(
            "auth/token/create",
            json!({"policies": [p], "ttl": "3s", "renewable": true, "no_parent": true}),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();

    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "vault: {{refresh_interval: 1m}}\nproviders:\n{}routes: [{{name: a, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
    );
    let server = TestServer::start_with(config(&yaml, vault, Some(&token)).await).await;
    // Well past the token's first TTL: only renewals keep it alive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let looked = vault.post("auth/token/lookup", json!({ "token": token })).await;
    // Alive (an expired token is revoked and looks up as nothing) and renewed since it was made.
    // Not its `ttl`: whole seconds, it reads 0 in the instant a renewal is due and not yet done
    // (renewal is at two thirds of the 3 s), which failed this test once under load.
    let data = &looked["data"];
    assert!(data["last_renewal_time"].as_u64() > data["creation_time"].as_u64(), "{looked}");
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-ttl-second"})).await;
    assert!(server.gateway.refresh_secrets().await, "the renewed token still reads");
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-ttl-second");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_login_reads_the_keys() {
    let vault = shared();
    let p = prefix("approle");
    vault.reader_policy(&p, &p).await;
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-approle"})).await;
    vault.enable_auth(&p, "approle").await;
    // Tokens that live 2 s and can be renewed only up to 3 s: the gateway must log in again.
    vault
        .post(
            &format!("auth/{p}/role/gateway"),
            json!({"token_policies": [p], "token_ttl": "2s", "token_max_ttl": "3s"}),
        )
        .await;
    let role_id =
        vault.call(reqwest::Method::GET, &format!("auth/{p}/role/gateway/role-id"), None).await;
    let secret_id = vault.post(&format!("auth/{p}/role/gateway/secret-id"), json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, secret_id["data"]["secret_id"].as_str().unwrap()).unwrap();

    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "vault: {{refresh_interval: 1m, auth: {{method: approle, mount: {p}, role_id: {}, secret_id_file: {}}}}}\nproviders:\n{}routes: [{{name: a, targets: [{{provider: a, model: m}}]}}]\n",
        role_id["data"]["role_id"].as_str().unwrap(),
        secret_file.display(),
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
    );
    let server = TestServer::start_with(config(&yaml, vault, None).await).await;
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-approle");
    // Past the first token's max TTL: renewals, then a new login, keep the reads going.
    tokio::time::sleep(Duration::from_secs(5)).await;
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-approle-rotated"})).await;
    assert!(server.gateway.refresh_secrets().await, "the gateway logged in again");
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-approle-rotated");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_login_goes_through_a_token_review() {
    let vault = shared();
    let p = prefix("k8s");
    vault.reader_policy(&p, &p).await;
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-kubernetes"})).await;
    let (api_server, reviews) = server::token_review_server("ai", "ai-service", "uid-1").await;
    vault.enable_auth(&p, "kubernetes").await;
    vault
        .post(&format!("auth/{p}/config"), json!({"kubernetes_host": api_server, "disable_local_ca_jwt": true, "kubernetes_ca_cert": server::any_ca_pem()}))
        .await;
    vault
        .post(
            &format!("auth/{p}/role/gateway"),
            json!({"bound_service_account_names": ["ai-service"], "bound_service_account_namespaces": ["ai"], "token_policies": [p], "token_ttl": "1m"}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("token");
    std::fs::write(&jwt_file, server::service_account_jwt("ai", "ai-service", "uid-1")).unwrap();

    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "vault: {{auth: {{method: kubernetes, role: gateway, mount: {p}, jwt_file: {}}}}}\nproviders:\n{}routes: [{{name: a, targets: [{{provider: a, model: m}}]}}]\n",
        jwt_file.display(),
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
    );
    let server = TestServer::start_with(config(&yaml, vault, None).await).await;
    assert_eq!(key_sent(&server, &fake, "a").await, "Bearer sk-kubernetes");
    assert!(
        reviews.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the API server reviewed the JWT"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_token_never_appears_in_logs_errors_or_debug() {
    let vault = shared();
    let p = prefix("redact");
    let token = format!("gw-TOKENTAIL{}0123456789", std::process::id());
    vault
        .post(
            "auth/token/create",
            json!({"id": token, "policies": ["root"], "ttl": "1h", "no_parent": true}),
        )
        .await;
    vault.put_v2(&format!("{p}/openai"), json!({"key": "sk-redact-0123456789abcdef"})).await;
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let yaml = format!(
        "log: {{level: trace}}\nvault: {{refresh_interval: 200ms}}\nproviders:\n{}routes: [{{name: a, targets: [{{provider: a, model: m}}]}}]\n",
        provider("a", &fake, &format!("{{path: secret/data/{p}/openai, field: key}}")),
    );

    // Debug of the config, of the session and of an error.
    let config = config(&yaml, vault, Some(&token)).await;
    assert!(!format!("{config:?}").contains(&token));
    let store = vault::SecretStore::new(config.vault.as_ref().unwrap()).unwrap();
    assert!(!format!("{store:?}").contains(&token));
    let mut missing = config.clone();
    if let Some(ai_service::config::KeySource::Vault(r)) =
        &mut missing.providers[0].connection_mut().unwrap().api_key_source
    {
        r.path.push_str("-nope");
    }
    let err = vault::resolve_with(&store, &mut missing).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&token));

    // The binary's logs at trace level, through start, calls, refreshes and a SIGHUP.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (out, errs) = (dir.path().join("out"), dir.path().join("err"));
    let binary = Binary::start(
        &file,
        &[("VAULT_ADDR", &vault.addr), ("VAULT_TOKEN", &token)],
        std::fs::File::create(&out).unwrap().into(),
        std::fs::File::create(&errs).unwrap().into(),
    )
    .await;
    let mut client =
        ai_service::proto::v1::chat_service_client::ChatServiceClient::new(binary.channel().await);
    client.chat(chat("a", "hi")).await.unwrap();
    binary.signal("HUP");
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.chat(chat("a", "hi")).await.unwrap();
    binary.signal("TERM");
    assert!(binary.wait().await.success());
    let logs = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&errs).unwrap();
    assert!(logs.contains("SIGHUP"), "the logs were captured: {logs}");
    assert!(!logs.contains("TOKENTAIL"), "the Vault token leaked into the logs");
}
