//! The Vertex AI adapter against a fake OAuth token endpoint and a fake Vertex upstream:
//! Gemini (`generateContent`, `streamGenerateContent`) and Claude (`rawPredict`,
//! `streamRawPredict`) with a service-account key whose `token_uri` points at the fake. The
//! token endpoint checks the JWT-bearer grant (its RS256 signature against the throwaway test
//! key, the account, scope and audience); the upstream is checked for the bearer token, the
//! URL (project, location, publisher, model, method) and the body.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::common::fake_upstream::*;
use ai_service::proto::v1 as pb;
use axum::{extract::State, routing::post};
use base64::Engine;
use serde_json::{Value, json};
use tonic::Code;

const ACCOUNT: &str = "gateway@test-project.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const PREFIX: &str = "/v1/projects/test-project/locations/us-central1/publishers";

/// One grant the fake token endpoint received.
#[derive(Clone, Debug)]
struct Grant {
    grant_type: String,
    claims: Value,
    signature_valid: bool,
}

#[derive(Clone)]
struct TokenState {
    grants: Arc<Mutex<Vec<Grant>>>,
    expires_in: u64,
}

/// A fake OAuth 2.0 token endpoint handing out `token(n)` for the n-th grant.
pub(crate) struct TokenServer {
    addr: SocketAddr,
    state: TokenState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    pub(crate) async fn start(expires_in: u64) -> TokenServer {
        let state = TokenState { grants: Arc::default(), expires_in };
        let app = axum::Router::new().route("/token", post(grant)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer { addr, state, task }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn grants(&self) -> Vec<Grant> {
        self.state.grants.lock().unwrap().clone()
    }
}

/// The access token of the n-th grant (from 1); long enough for the redactor to learn it.
pub(crate) fn token(n: usize) -> String {
    format!("ya29.c.test-access-token-{n:04}-0123456789")
}

async fn grant(State(state): State<TokenState>, body: String) -> axum::Json<Value> {
    let form: std::collections::HashMap<String, String> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
            (k.to_owned(), v)
        })
        .collect();
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (claims, signature_valid) = match parts[..] {
        [header, payload, signature] => {
            // gcp_auth pads its base64url; JWT (RFC 7515) leaves padding out: take both.
            let claims = b64
                .decode(payload.trim_end_matches('='))
                .ok()
                .and_then(|c| serde_json::from_slice(&c).ok());
            let public = fixture("vertex/test_key_public.der");
            let key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                public,
            );
            let signed = format!("{header}.{payload}");
            let valid = b64
                .decode(signature.trim_end_matches('='))
                .is_ok_and(|s| key.verify(signed.as_bytes(), &s).is_ok());
            (claims.unwrap_or(Value::Null), valid)
        }
        _ => (Value::Null, false),
    };
    let n = {
        let mut grants = state.grants.lock().unwrap();
        grants.push(Grant {
            grant_type: form.get("grant_type").cloned().unwrap_or_default(),
            claims,
            signature_valid,
        });
        grants.len()
    };
    axum::Json(
        json!({"access_token": token(n), "expires_in": state.expires_in, "token_type": "Bearer"}),
    )
}

/// A service-account key file whose `token_uri` is the fake's.
pub(crate) fn key_file(dir: &tempfile::TempDir, token_uri: &str) -> PathBuf {
    let pem = String::from_utf8(fixture("vertex/test_key.pem")).unwrap();
    let key = json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": ACCOUNT,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    let path = dir.path().join("sa.json");
    std::fs::write(&path, key.to_string()).unwrap();
    path
}

/// A `vertex` provider (and a direct `anthropic` one) at `upstream`, with routes `gemini` and
/// `claude`, and `extra` YAML.
fn config(upstream: &FakeUpstream, key: &std::path::Path, extra: &str) -> String {
    format!(
        "providers:
  vertex:
    kind: vertex
    project: test-project
    location: us-central1
    base_url: {}
    credentials_file: {}
    disable_proxy: true
  anthropic:
    kind: anthropic
    base_url: {}
    api_key_env: TEST_KEY
    disable_proxy: true
  echo: {{kind: echo}}
routes:
  - name: gemini
    targets: [{{provider: vertex, model: gemini-2.5-flash}}]
  - name: claude
    targets: [{{provider: vertex, model: claude-sonnet-4@20250514}}]
{extra}",
        upstream.url(""),
        key.display(),
        upstream.url(""),
    )
}

/// A gateway with a Vertex provider answering `replies`, and its token endpoint.
async fn start(
    replies: Vec<Reply>,
    expires_in: u64,
    extra: &str,
) -> (TestGateway, FakeUpstream, TokenServer, tempfile::TempDir) {
    let tokens = TokenServer::start(expires_in).await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(&dir, &tokens.uri());
    let upstream = FakeUpstream::start(replies).await;
    let gw = gateway(&config(&upstream, &key, extra), &[]).await;
    (gw, upstream, tokens, dir)
}

pub(crate) fn bearer(n: usize) -> String {
    format!("Bearer {}", token(n))
}

#[tokio::test]
async fn gemini_unary_sends_a_bearer_token_from_a_signed_jwt_grant() {
    let replies = vec![Reply::json(200, "vertex/generate.json")];
    let (mut gw, upstream, tokens, _dir) = start(replies, 3600, "").await;
    let mut request = user_request("gemini", "Capital of France?");
    request.messages.insert(0, message(pb::Role::System, "Be brief."));
    let reply = gw.client.chat(request).await.unwrap().into_inner();

    let got = upstream.only_request();
    assert_eq!(got.uri, format!("{PREFIX}/google/models/gemini-2.5-flash:generateContent"));
    assert_eq!(got.header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(got.header("x-goog-api-key"), None);
    assert_eq!(got.body["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
    assert_eq!(got.body["contents"][0]["parts"][0]["text"], "Capital of France?");

    let grants = tokens.grants();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(g.grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert!(g.signature_valid, "the assertion must be signed with the account's key");
    assert_eq!(g.claims["iss"], ACCOUNT);
    assert_eq!(g.claims["scope"], SCOPE);
    assert_eq!(g.claims["aud"], tokens.uri());

    assert_eq!(reply.id, "7rBKaOCZH8Sd2PgPpJjTmAk");
    assert_eq!(
        reply.message.unwrap().content[0].part,
        text_kind("The capital of France is Paris.")
    );
    let usage = reply.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (7, 8));
}

fn text_kind(text: &str) -> Option<pb::content_part::Part> {
    Some(pb::content_part::Part::Text(text.into()))
}

#[tokio::test]
async fn gemini_streams_over_sse_and_the_token_is_cached() {
    let replies = vec![Reply::sse("vertex/stream.sse")];
    let (mut gw, upstream, tokens, _dir) = start(replies, 3600, "").await;
    for _ in 0..2 {
        let streamed = stream_chat(&mut gw, user_request("gemini", "Capital?")).await;
        assert_eq!(streamed.text(), "The capital of France is Paris.");
        assert_eq!(streamed.finish().unwrap().reason, pb::FinishReason::Stop as i32);
        assert_eq!(streamed.usage().unwrap().output_tokens, 8);
    }
    for got in upstream.received() {
        assert_eq!(
            got.uri,
            format!("{PREFIX}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        );
        assert_eq!(got.header("authorization"), Some(bearer(1).as_str()));
    }
    assert_eq!(tokens.grants().len(), 1, "a valid token is reused");
}

#[tokio::test]
async fn claude_unary_takes_the_version_in_the_body_and_the_model_in_the_url() {
    let replies = vec![Reply::json(200, "vertex/claude_message.json")];
    let (mut gw, upstream, _tokens, _dir) = start(replies, 3600, "").await;
    let reply = gw.client.chat(user_request("claude", "Capital of France?")).await.unwrap();
    let reply = reply.into_inner();

    let got = upstream.only_request();
    assert_eq!(got.uri, format!("{PREFIX}/anthropic/models/claude-sonnet-4@20250514:rawPredict"));
    assert_eq!(got.header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(got.header("anthropic-version"), None);
    assert_eq!(got.header("x-api-key"), None);
    assert_eq!(got.body["anthropic_version"], "vertex-2023-10-16");
    assert!(got.body.get("model").is_none(), "{}", got.body);
    assert_eq!(got.body["max_tokens"], 4096);
    assert_eq!(got.body["messages"][0]["content"][0]["text"], "Capital of France?");

    assert_eq!(reply.id, "msg_vrtx_01YbVqGzXUWrD4DdLqLBPjvp");
    assert_eq!(reply.message.unwrap().content[0].part, text_kind("Paris."));
    assert_eq!(reply.finish_reason, pb::FinishReason::Stop as i32);
}

#[tokio::test]
async fn claude_streams_anthropic_events_from_stream_raw_predict() {
    let replies = vec![Reply::sse("vertex/claude_stream.sse")];
    let (mut gw, upstream, _tokens, _dir) = start(replies, 3600, "").await;
    let streamed = stream_chat(&mut gw, user_request("claude", "Capital?")).await;
    assert_eq!(streamed.text(), "Paris.");
    assert_eq!(streamed.finish().unwrap().reason, pb::FinishReason::Stop as i32);
    assert_eq!(streamed.usage().unwrap().output_tokens, 5);

    let got = upstream.only_request();
    assert_eq!(
        got.uri,
        format!("{PREFIX}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")
    );
    assert_eq!(got.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(got.body["stream"], true);
    assert!(got.body.get("model").is_none());
}

#[tokio::test]
async fn an_expired_token_is_replaced_by_a_new_grant() {
    // gcp_auth renews a token 20 s before it expires: one of 21 s is good for about 1 s.
    let replies = vec![Reply::json(200, "vertex/generate.json")];
    let (mut gw, upstream, tokens, _dir) = start(replies, 21, "").await;
    gw.client.chat(user_request("gemini", "one")).await.unwrap();
    gw.client.chat(user_request("gemini", "two")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    gw.client.chat(user_request("gemini", "three")).await.unwrap();

    let sent: Vec<String> =
        upstream.received().iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    assert_eq!(sent, [bearer(1), bearer(1), bearer(2)]);
    assert_eq!(tokens.grants().len(), 2);
    // Both tokens were learnt by the redactor the moment they were held.
    for n in [1, 2] {
        let line = format!("sent Authorization: {}", token(n));
        assert!(!ai_service::redact::redact(&line).contains(&token(n)), "{line}");
    }
}

#[tokio::test]
async fn a_rate_limit_fails_over_to_the_next_target() {
    let extra = "  - name: chain\n    targets: [{provider: vertex, model: gemini-2.5-flash}, {provider: echo, model: echo}]\n";
    let replies = vec![Reply::json(429, "vertex/error_429.json")];
    let (mut gw, upstream, _tokens, _dir) = start(replies, 3600, extra).await;
    let reply = gw.client.chat(user_request("chain", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "echo");
    assert!(!upstream.received().is_empty());

    // Alone, the same 429 is RESOURCE_EXHAUSTED.
    let status = gw.client.chat(user_request("gemini", "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "UPSTREAM_RATE_LIMITED");
}

#[tokio::test]
async fn a_refused_credential_names_vertex_and_never_the_token() {
    let replies = vec![Reply::json(403, "vertex/error_403.json")];
    let (mut gw, _upstream, _tokens, _dir) = start(replies, 3600, "").await;
    let status = gw.client.chat(user_request("gemini", "hi")).await.unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_AUTH_FAILED");
    assert!(status.message().contains("Vertex AI refused the credentials"), "{status:?}");
    assert!(!format!("{status:?}").contains(&token(1)));
}

#[tokio::test]
async fn text_embeddings_use_predict_with_one_instance_per_input() {
    use pb::embed_service_client::EmbedServiceClient;
    let extra = "  - name: embed\n    targets: [{provider: vertex, model: text-embedding-005}]\n";
    let replies = vec![Reply::json(200, "vertex/predict_embeddings.json")];
    let (gw, upstream, _tokens, _dir) = start(replies, 3600, extra).await;
    let mut client = EmbedServiceClient::connect(format!("http://{}", gw.addr)).await.unwrap();
    let request = pb::EmbedRequest {
        model: "embed".into(),
        inputs: vec!["What is life?".into(), "Hello".into()],
        dimensions: Some(3),
        ..Default::default()
    };
    let reply = client.embed(request).await.unwrap().into_inner();

    let got = upstream.only_request();
    assert_eq!(got.uri, format!("{PREFIX}/google/models/text-embedding-005:predict"));
    assert_eq!(got.header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(
        got.body,
        json!({
            "instances": [{"content": "What is life?"}, {"content": "Hello"}],
            "parameters": {"outputDimensionality": 3}
        })
    );
    let vectors: Vec<Vec<f32>> = reply.embeddings.iter().map(|e| e.values.clone()).collect();
    assert_eq!(vectors, [vec![0.0123, -0.0456, 0.0789], vec![-0.0321, 0.0654, -0.0987]]);
    // The token counts of the two inputs, summed.
    assert_eq!(reply.usage.unwrap().input_tokens, 10);
}

#[tokio::test]
async fn claude_fails_over_from_anthropic_direct_to_claude_on_vertex() {
    let extra = "  - name: chain\n    targets: [{provider: anthropic, model: claude-sonnet-4-20250514}, {provider: vertex, model: claude-sonnet-4@20250514}]\n";
    let replies = vec![
        Reply::json(429, "anthropic/error_429.json"),
        Reply::json(200, "vertex/claude_message.json"),
    ];
    let (mut gw, upstream, _tokens, _dir) = start(replies, 3600, extra).await;
    let reply = gw.client.chat(user_request("chain", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "vertex");
    assert_eq!(reply.message.unwrap().content[0].part, text_kind("Paris."));

    let got = upstream.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].uri, "/v1/messages");
    assert_eq!(got[0].header("x-api-key"), Some(TEST_KEY));
    assert_eq!(got[0].body["model"], "claude-sonnet-4-20250514");
    assert_eq!(
        got[1].uri,
        format!("{PREFIX}/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    );
    assert_eq!(got[1].header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(got[1].header("x-api-key"), None);
}

#[tokio::test]
async fn no_token_fails_over_without_calling_vertex() {
    let extra = "  - name: chain\n    targets: [{provider: vertex, model: gemini-2.5-flash}, {provider: echo, model: echo}]\nrouting: {max_retries: 1}\n";
    let replies = vec![Reply::json(200, "vertex/generate.json")];
    let (mut gw, upstream, tokens, _dir) = start(replies, 3600, extra).await;
    // The token endpoint goes away: gcp_auth retries it a few times (< 1 s), then gives up.
    drop(tokens);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let reply = gw.client.chat(user_request("chain", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "echo");
    assert!(upstream.received().is_empty(), "no call without a token");
}
