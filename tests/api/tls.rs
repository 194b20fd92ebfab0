//! TLS and mTLS on the gRPC port, and certificates reloaded when their files change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{path::Path, time::Duration};

use crate::common::{TestServer, chat};
use ai_service::proto::v1::chat_service_client::ChatServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A CA and what it signs.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        Pki { ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// A leaf certificate for `name`, as (cert PEM, key PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn connect(
    server: &TestServer,
    ca: &Pki,
    identity: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca.pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

async fn chat_ok(channel: Channel) -> Result<(), tonic::Status> {
    ChatServiceClient::new(channel).chat(chat("echo", "over tls")).await.map(|_| ())
}

#[tokio::test]
async fn tls_serves_encrypted_calls_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("test ca");
    let (cert, key) = pki.leaf("localhost");
    let yaml = format!(
        "server: {{tls: {{cert_file: {}, key_file: {}}}}}\n",
        write(dir.path(), "cert.pem", &cert),
        write(dir.path(), "key.pem", &key)
    );
    let server = TestServer::start(&yaml).await;
    chat_ok(connect(&server, &pki, None).await.unwrap()).await.unwrap();

    let plain = Endpoint::from_shared(format!("http://{}", server.addr)).unwrap().connect().await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => chat_ok(channel).await.is_err(),
    };
    assert!(refused, "a plaintext call must not be served");
}

#[tokio::test]
async fn mtls_needs_a_client_certificate_from_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new("server ca");
    let clients = Pki::new("client ca");
    let strangers = Pki::new("other ca");
    let (cert, key) = servers.leaf("localhost");
    let yaml = format!(
        "server: {{tls: {{cert_file: {}, key_file: {}, client_ca_file: {}}}}}\n",
        write(dir.path(), "cert.pem", &cert),
        write(dir.path(), "key.pem", &key),
        write(dir.path(), "clients.pem", &clients.ca.pem())
    );
    let server = TestServer::start(&yaml).await;

    chat_ok(connect(&server, &servers, Some(clients.leaf("team-a"))).await.unwrap()).await.unwrap();
    for identity in [None, Some(strangers.leaf("team-a"))] {
        let result = match connect(&server, &servers, identity).await {
            Err(_) => Err(()),
            Ok(channel) => chat_ok(channel).await.map_err(|_| ()),
        };
        assert!(result.is_err(), "a client without a certificate from the client CA got through");
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Pki::new("old ca");
    let new = Pki::new("new ca");
    let (cert, key) = old.leaf("localhost");
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let yaml = format!(
        "server: {{tls: {{cert_file: {cert_path}, key_file: {key_path}, reload_interval: 50ms}}}}\n"
    );
    let server = TestServer::start(&yaml).await;
    chat_ok(connect(&server, &old, None).await.unwrap()).await.unwrap();

    let (cert, key) = new.leaf("localhost");
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&cert_path, cert).unwrap();
    let mut renewed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(channel) = connect(&server, &new, None).await
            && chat_ok(channel).await.is_ok()
        {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "new connections never got the renewed certificate");
}

#[test]
fn a_bad_certificate_is_a_config_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "server: {{tls: {{cert_file: {}, key_file: {}}}}}\n",
        write(dir.path(), "cert.pem", "not a certificate"),
        write(dir.path(), "key.pem", "not a key")
    );
    let err = ai_service::Config::from_yaml(&yaml, std::iter::empty()).unwrap_err();
    assert!(err.path.starts_with("server.tls"), "{err}");
}
