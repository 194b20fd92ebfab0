//! Bedrock credentials from the standard AWS chain, through the real `ai-service` binary (the
//! chain reads the process environment): web identity (IRSA) exchanged at a fake STS, the
//! container endpoint (ECS, EKS Pod Identity), the instance metadata service (IMDSv2) and a
//! shared-credentials profile. Each fake hands out numbered temporary credentials; the fake
//! Bedrock checks that every call is signed with the credentials in force, and the test checks
//! that they were fetched again before they expired, that a rotated web-identity token was
//! read again, and that no secret reached the gateway's log.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aws_smithy_types::date_time::{DateTime, Format};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post, put},
};

use super::{CLAUDE, CLAUDE_PATH, check_signature};
use crate::common::{Binary, fake_upstream::*};

/// What the fake AWS credential endpoints saw and hand out.
#[derive(Clone, Default)]
struct Issuer {
    /// Web-identity tokens STS was shown, in order.
    tokens: Arc<Mutex<Vec<String>>>,
    /// Tokens STS now refuses as expired.
    expired: Arc<Mutex<Vec<String>>>,
    /// Credentials handed out so far (by any endpoint).
    issued: Arc<Mutex<usize>>,
    /// How long each set of credentials lasts.
    lifetime: Duration,
}

impl Issuer {
    /// The next numbered credentials and their expiry, as AWS writes it.
    fn next(&self) -> (usize, String) {
        let mut issued = self.issued.lock().unwrap();
        *issued += 1;
        let expiry = SystemTime::now() + self.lifetime;
        (*issued, DateTime::from(expiry).fmt(Format::DateTime).unwrap())
    }
}

fn access_key(n: usize) -> String {
    format!("ASIATESTCREDENTIAL{n:02}")
}

fn secret(n: usize) -> String {
    format!("temporary-secret-{n}-do-not-log")
}

fn session(n: usize) -> String {
    format!("temporary-session-token-{n}")
}

/// STS `AssumeRoleWithWebIdentity` (query protocol: a form body, an XML reply).
async fn sts(State(issuer): State<Issuer>, body: String) -> impl IntoResponse {
    let form: Vec<(String, String)> = url_pairs(&body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("Action").as_deref(), Some("AssumeRoleWithWebIdentity"), "{body}");
    assert_eq!(field("RoleArn").as_deref(), Some("arn:aws:iam::123456789012:role/gateway"));
    let token = field("WebIdentityToken").unwrap_or_default();
    issuer.tokens.lock().unwrap().push(token.clone());
    if issuer.expired.lock().unwrap().contains(&token) {
        let error = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>ExpiredTokenException</Code><Message>Token expired: current date/time is after the exp claim</Message></Error><RequestId>e1</RequestId></ErrorResponse>";
        return (StatusCode::BAD_REQUEST, [("content-type", "text/xml")], error.to_owned());
    }
    let (n, expiry) = issuer.next();
    let reply = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult>\
         <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{expiry}</Expiration></Credentials>\
         <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/gateway/s</Arn>\
         <AssumedRoleId>AROATEST:s</AssumedRoleId></AssumedRoleUser>\
         <SubjectFromWebIdentityToken>system:serviceaccount:ai:ai-service</SubjectFromWebIdentityToken>\
         <Audience>sts.amazonaws.com</Audience><Provider>oidc.eks.amazonaws.com</Provider>\
         </AssumeRoleWithWebIdentityResult>\
         <ResponseMetadata><RequestId>r{n}</RequestId></ResponseMetadata>\
         </AssumeRoleWithWebIdentityResponse>",
        access_key(n),
        secret(n),
        session(n)
    );
    (StatusCode::OK, [("content-type", "text/xml")], reply)
}

/// The credentials JSON of the container endpoint and of IMDS.
fn credentials_json(issuer: &Issuer) -> serde_json::Value {
    let (n, expiry) = issuer.next();
    serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "LastUpdated": DateTime::from(SystemTime::now()).fmt(Format::DateTime).unwrap(),
        "AccessKeyId": access_key(n),
        "SecretAccessKey": secret(n),
        "Token": session(n),
        "Expiration": expiry,
    })
}

async fn container(State(issuer): State<Issuer>, headers: HeaderMap) -> impl IntoResponse {
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("pod-identity-token")
    );
    axum::Json(credentials_json(&issuer))
}

async fn imds_token(headers: HeaderMap) -> impl IntoResponse {
    let ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds").cloned();
    let ttl = ttl.expect("IMDSv2 asks for a TTL");
    ([("x-aws-ec2-metadata-token-ttl-seconds", ttl)], "imds-session-token")
}

async fn imds_role(headers: HeaderMap) -> impl IntoResponse {
    assert_eq!(
        headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()),
        Some("imds-session-token")
    );
    "gateway-role"
}

async fn imds_credentials(State(issuer): State<Issuer>, headers: HeaderMap) -> impl IntoResponse {
    assert_eq!(
        headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()),
        Some("imds-session-token")
    );
    axum::Json(credentials_json(&issuer))
}

fn url_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// The fake STS, container endpoint and IMDS on one port.
async fn aws_endpoints(issuer: Issuer) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/", post(sts))
        .route("/creds", get(container))
        .route("/latest/api/token", put(imds_token))
        .route("/latest/meta-data/iam/security-credentials/", get(imds_role))
        .route("/latest/meta-data/iam/security-credentials/gateway-role", get(imds_credentials))
        .with_state(issuer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// The real binary with a `bedrock` provider at `upstream`, `profile` in its config when
/// given, and `env` (everything else about AWS removed from its environment).
async fn binary(
    dir: &tempfile::TempDir,
    upstream: &FakeUpstream,
    profile: Option<&str>,
    env: &[(&str, String)],
) -> Binary {
    let profile = profile.map(|p| format!(", profile: {p}")).unwrap_or_default();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  bedrock: {{kind: bedrock, region: us-east-1, base_url: '{}', disable_proxy: true{profile}}}\nroutes:\n  - name: claude\n    targets: [{{provider: bedrock, model: {CLAUDE}}}]\n",
            upstream.url("")
        ),
    )
    .unwrap();
    let home = dir.path().to_str().unwrap().to_owned();
    let mut vars: Vec<(&str, String)> = vec![
        ("HOME", home.clone()),
        ("AWS_CONFIG_FILE", format!("{home}/no-config")),
        ("AWS_SHARED_CREDENTIALS_FILE", format!("{home}/no-credentials")),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AI_SERVICE__AUDIT__SINK", "/dev/null".into()),
        ("RUST_LOG", "info,aws_config=debug".into()),
    ];
    for (k, v) in env {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v.clone()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    Binary::start(&config, &vars, Stdio::from(log.try_clone().unwrap()), Stdio::from(log)).await
}

/// One `Chat` through the binary; the fake must have received it signed with credentials `n`.
async fn call_signed_with(gateway: &Binary, upstream: &FakeUpstream, n: usize) {
    let mut client =
        ai_service::proto::v1::chat_service_client::ChatServiceClient::new(gateway.channel().await);
    let reply = client.chat(user_request("claude", "hi")).await;
    assert!(reply.is_ok(), "{reply:?}; log:\n{}", "see gateway.log");
    let got = upstream.received().pop().unwrap();
    assert_eq!(got.uri, format!("{CLAUDE_PATH}/converse"));
    let signed = check_signature(&got, &secret(n));
    assert_eq!(signed.access_key_id, access_key(n));
    assert_eq!(got.header("x-amz-security-token"), Some(session(n).as_str()));
}

/// No secret the gateway held appears in its log.
fn log_has_no_secret(dir: &tempfile::TempDir, secrets: &[String]) {
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    for secret in secrets {
        assert!(!log.contains(secret.as_str()), "{secret} is in the log:\n{log}");
    }
}

fn converse_upstream() -> Vec<Reply> {
    vec![Reply::json(200, "bedrock/converse.json")]
}

#[tokio::test]
async fn web_identity_credentials_are_refreshed_before_they_expire_with_the_rotated_token() {
    let issuer = Issuer { lifetime: Duration::from_secs(4), ..Issuer::default() };
    let (sts_url, _sts) = aws_endpoints(issuer.clone()).await;
    let upstream = FakeUpstream::start(converse_upstream()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.web-identity-token-A.sig").unwrap();
    let env = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.display().to_string()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway".to_owned()),
        ("AWS_ROLE_SESSION_NAME", "ai-service".to_owned()),
        ("AWS_ENDPOINT_URL_STS", sts_url),
    ];
    let gw = binary(&dir, &upstream, None, &env).await;
    call_signed_with(&gw, &upstream, 1).await;
    // Cached: a second call goes to Bedrock only.
    call_signed_with(&gw, &upstream, 1).await;
    assert_eq!(issuer.tokens.lock().unwrap().len(), 1);

    // The kubelet rotates the projected token; STS now refuses the old one as expired.
    std::fs::write(&token_file, "eyJ.web-identity-token-B.sig").unwrap();
    issuer.expired.lock().unwrap().push("eyJ.web-identity-token-A.sig".into());
    // Halfway through the 4 s life the credentials are replaced, before they expire.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    call_signed_with(&gw, &upstream, 2).await;
    assert_eq!(
        *issuer.tokens.lock().unwrap(),
        ["eyJ.web-identity-token-A.sig", "eyJ.web-identity-token-B.sig"]
    );
    gw.signal("TERM");
    gw.wait().await;
    log_has_no_secret(
        &dir,
        &[secret(1), secret(2), session(1), session(2), "web-identity-token".into()],
    );
}

#[tokio::test]
async fn container_credentials_come_from_the_pod_identity_endpoint() {
    let issuer = Issuer { lifetime: Duration::from_secs(3600), ..Issuer::default() };
    let (url, _endpoints) = aws_endpoints(issuer.clone()).await;
    let upstream = FakeUpstream::start(converse_upstream()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/creds")),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token".to_owned()),
    ];
    let gw = binary(&dir, &upstream, None, &env).await;
    call_signed_with(&gw, &upstream, 1).await;
    call_signed_with(&gw, &upstream, 1).await;
    assert_eq!(*issuer.issued.lock().unwrap(), 1, "an hour-long credential is cached");
    gw.signal("TERM");
    gw.wait().await;
    log_has_no_secret(&dir, &[secret(1), session(1), "pod-identity-token".into()]);
}

#[tokio::test]
async fn instance_credentials_come_from_imdsv2() {
    let issuer = Issuer { lifetime: Duration::from_secs(3600), ..Issuer::default() };
    let (url, _endpoints) = aws_endpoints(issuer.clone()).await;
    let upstream = FakeUpstream::start(converse_upstream()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_EC2_METADATA_DISABLED", "false".to_owned()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", url),
    ];
    let gw = binary(&dir, &upstream, None, &env).await;
    call_signed_with(&gw, &upstream, 1).await;
    gw.signal("TERM");
    gw.wait().await;
    log_has_no_secret(&dir, &[secret(1), session(1)]);
}

#[tokio::test]
async fn a_named_profile_reads_the_shared_credentials_file() {
    let upstream = FakeUpstream::start(converse_upstream()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = AKIADEFAULTPROFILE0\naws_secret_access_key = not-this-one\n\n[prod]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            access_key(7),
            secret(7),
            session(7)
        ),
    )
    .unwrap();
    let env = [("AWS_SHARED_CREDENTIALS_FILE", file.display().to_string())];
    let gw = binary(&dir, &upstream, Some("prod"), &env).await;
    call_signed_with(&gw, &upstream, 7).await;
    gw.signal("TERM");
    gw.wait().await;
    log_has_no_secret(&dir, &[secret(7), session(7)]);
}

#[tokio::test]
async fn no_credentials_anywhere_is_a_clear_error_and_fails_over() {
    let upstream = FakeUpstream::start(converse_upstream()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  bedrock: {{kind: bedrock, region: us-east-1, base_url: '{}', disable_proxy: true}}\n  echo: {{kind: echo}}\nroutes:\n  - name: claude\n    targets: [{{provider: bedrock, model: {CLAUDE}}}]\n  - name: chain\n    targets: [{{provider: bedrock, model: {CLAUDE}}}, {{provider: echo, model: echo}}]\n",
            upstream.url("")
        ),
    )
    .unwrap();
    let home = dir.path().display().to_string();
    let env = [
        ("HOME", home.as_str()),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AI_SERVICE__AUDIT__SINK", "/dev/null"),
    ];
    let gw = Binary::start(&config, &env, Stdio::null(), Stdio::null()).await;
    let mut client =
        ai_service::proto::v1::chat_service_client::ChatServiceClient::new(gw.channel().await);
    let status = client.chat(user_request("claude", "hi")).await.unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_CONNECT_FAILED", "{status:?}");
    assert!(status.message().contains("no AWS credentials"), "{status:?}");
    assert!(status.message().contains("WebIdentityToken"), "names what it tried: {status:?}");
    let reply = client.chat(user_request("chain", "hi")).await.unwrap().into_inner();
    assert_eq!(reply.provider, "echo");
    assert!(upstream.received().is_empty(), "nothing unsigned is sent");
    gw.signal("TERM");
    gw.wait().await;
}
