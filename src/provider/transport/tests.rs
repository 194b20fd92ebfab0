//! The transport against real TLS: HTTP/2 or HTTP/1.1 as the upstream's ALPN offers, and a
//! handshake that never completes ending at `connect_timeout`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::Version;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use super::*;

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the TLS upstream saw of each request: its HTTP version and user agent.
type Seen = Arc<Mutex<Vec<(Version, String)>>>;

/// An HTTPS upstream on 127.0.0.1 with a self-signed certificate, offering `alpn`; it answers
/// every request `{"ok":true}`.
async fn tls_upstream(alpn: &[&[u8]]) -> (SocketAddr, CertificateDer<'static>, Seen) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let agent = request.headers()[USER_AGENT].to_str().unwrap_or("").to_owned();
                        log.lock().unwrap().push((request.version(), agent));
                        async {
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                                b"{\"ok\":true}",
                            ))))
                        }
                    });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, cert, seen)
}

/// Client TLS settings trusting only `cert`.
fn trusting(cert: CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

async fn body_of(mut response: UpstreamResponse) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    body
}

#[tokio::test]
async fn https_speaks_http2_when_the_upstream_offers_it_and_http1_otherwise() {
    for (alpn, version) in [
        (&[b"h2".as_slice(), b"http/1.1"][..], Version::HTTP_2),
        (&[b"http/1.1".as_slice()][..], Version::HTTP_11),
        (&[][..], Version::HTTP_11),
    ] {
        let (addr, cert, seen) = tls_upstream(alpn).await;
        let url = format!("https://{addr}/v1/chat/completions");
        let settings = ConnectionSettings::for_tests(&format!("https://{addr}/v1"));
        let transport = Transport::new(&settings, trusting(cert)).unwrap();
        assert!(matches!(transport, Transport::Direct(_)));
        for _ in 0..2 {
            let request = UpstreamRequest::new(Method::POST, &url).json(&serde_json::json!({}));
            let response = transport.send(request, Some(Duration::from_secs(5))).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(body_of(response).await, br#"{"ok":true}"#);
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{alpn:?}");
        for (seen_version, agent) in seen {
            assert_eq!(seen_version, version, "{alpn:?}");
            assert_eq!(agent, USER_AGENT_VALUE);
        }
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_as_a_connect_error() {
    let (addr, _, seen) = tls_upstream(&[b"h2"]).await;
    let (_, other, _) = tls_upstream(&[b"h2"]).await;
    let settings = ConnectionSettings::for_tests(&format!("https://{addr}"));
    let transport = Transport::new(&settings, trusting(other)).unwrap();
    let request = UpstreamRequest::new(Method::GET, &format!("https://{addr}/models"));
    let e = transport.send(request, Some(Duration::from_secs(5))).await.unwrap_err();
    assert!(e.connect && !e.timeout, "{e:?}");
    assert!(e.message.contains("certificate"), "{}", e.message);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_handshake_that_never_completes_ends_at_the_connect_timeout() {
    // Accepts the TCP connection and never answers the TLS hello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let mut settings = ConnectionSettings::for_tests(&format!("https://{addr}"));
    settings.connect_timeout = Duration::from_millis(200);
    settings.request_timeout = Duration::from_secs(20);
    let (_, cert, _) = tls_upstream(&[]).await;
    let transport = Transport::new(&settings, trusting(cert)).unwrap();
    let started = Instant::now();
    let request = UpstreamRequest::new(Method::GET, &format!("https://{addr}/models"));
    let e = transport.send(request, None).await.unwrap_err();
    assert!(e.connect && e.timeout, "{e:?}");
    assert!(e.message.contains("connection timed out"), "{}", e.message);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    held.abort();
}

fn settings(proxy: Option<&str>, disable_proxy: bool) -> ConnectionSettings {
    ConnectionSettings {
        proxy: proxy.map(str::to_owned),
        disable_proxy,
        ..ConnectionSettings::for_tests("http://127.0.0.1:1")
    }
}

#[test]
fn a_proxy_applies_when_configured_or_named_by_the_environment() {
    let none = |_: &str| None;
    let env = |name: &str| (name == "https_proxy").then(|| "http://p:3128".into());
    let empty = |_: &str| Some(std::ffi::OsString::new());
    assert!(!proxied(&settings(None, false), none));
    assert!(proxied(&settings(Some("http://p:3128"), false), none));
    assert!(proxied(&settings(None, false), env));
    assert!(!proxied(&settings(None, true), env));
    assert!(!proxied(&settings(None, false), empty));
}

#[test]
fn bad_urls_and_headers_are_kept_until_sent_and_name_no_value() {
    let request = UpstreamRequest::new(Method::POST, "not a url");
    assert!(request.invalid.as_deref().is_some_and(|m| m.contains("not valid")));
    let request = UpstreamRequest::new(Method::POST, "/relative");
    assert_eq!(request.invalid.as_deref(), Some("the upstream URL is not absolute"));
    let request = UpstreamRequest::new(Method::POST, "http://h/v1").header("x-api-key", "sk-1\n2");
    let message = request.invalid.unwrap_or_default();
    assert!(message.starts_with("invalid header value"), "{message}");
    assert!(!message.contains("sk-1"), "{message}");
    let request = UpstreamRequest::new(Method::POST, "http://h/v1").bearer_auth("sk-1\n2");
    assert_eq!(request.invalid.as_deref(), Some("the key is not a valid header value"));
}

#[test]
fn a_bearer_key_is_sensitive_and_json_sets_its_content_type_once() {
    let request = UpstreamRequest::new(Method::POST, "http://h/v1")
        .bearer_auth("sk-secret")
        .header(CONTENT_TYPE, "application/vnd+json")
        .json(&serde_json::json!({"a": 1}));
    assert!(request.headers[AUTHORIZATION].is_sensitive());
    assert_eq!(request.headers.get_all(CONTENT_TYPE).iter().count(), 1);
    assert_eq!(request.headers[CONTENT_TYPE], "application/vnd+json");
    assert_eq!(&request.body[..], br#"{"a":1}"#);
}

/// A provider built as the gateway builds it (the shared TLS settings, the system's roots
/// read when first needed): an upstream whose certificate no system root vouches for is
/// refused at the handshake, as a connect error naming the certificate, and is sent nothing.
#[tokio::test]
async fn the_shared_settings_check_upstreams_against_the_system_roots() {
    let (addr, _, seen) = tls_upstream(&[b"h2"]).await;
    let settings = ConnectionSettings::for_tests(&format!("https://{addr}/v1"));
    let upstream = crate::provider::http::Upstream::new("tls", &settings).unwrap();
    let request = upstream.post(&format!("https://{addr}/v1/chat/completions")).body("{}");
    let e = upstream.send(request, false).await.unwrap_err();
    assert_eq!(e.kind, crate::provider::ProviderErrorKind::Connect, "{e:?}");
    assert!(e.message.contains("certificate"), "{}", e.message);
    assert!(seen.lock().unwrap().is_empty());
}
