//! TLS and mTLS on the gRPC port (rustls), with certificates reloaded when their files change.
//!
//! [`TlsReloader`] holds the current `rustls::ServerConfig` and rebuilds it when the files of
//! `server.tls` change (checked every `reload_interval`): a renewed certificate, or a new
//! client CA bundle, applies to the next connection, with no restart; connections already
//! open keep theirs. A file that does not parse leaves the config in force and logs an error.
//!
//! [`incoming`] accepts TCP connections and runs each TLS handshake in its own task, within
//! `server.handshake_timeout`, so a client that stalls its handshake holds up nobody else.

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use futures::Stream;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::config::TlsConfig;

/// The server's TLS settings, kept in step with their files.
#[derive(Clone, Debug)]
pub struct TlsReloader {
    files: TlsConfig,
    current: Arc<ArcSwap<ServerConfig>>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl TlsReloader {
    /// Loads `files` now; an error names the file and what is wrong with it.
    pub fn new(files: &TlsConfig) -> Result<TlsReloader, String> {
        let seen = contents(files).map_err(|e| format!("server.tls: {e}"))?;
        let config = load(files)?;
        Ok(TlsReloader {
            files: files.clone(),
            current: Arc::new(ArcSwap::from_pointee(config)),
            seen: Arc::new(Mutex::new(seen)),
        })
    }

    /// Rebuilds the config when a file changed; true when it did.
    pub fn reload(&self) -> bool {
        let Ok(now) = contents(&self.files) else {
            tracing::error!("cannot read the TLS files; keeping the current certificate");
            return false;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return false;
        }
        match load(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                *seen = now;
                tracing::info!("TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the new TLS files; keeping the current certificate");
                false
            }
        }
    }

    /// Checks the files every `reload_interval`, for as long as it runs.
    pub async fn watch(self) {
        loop {
            tokio::time::sleep(self.files.reload_interval).await;
            self.reload();
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

fn contents(files: &TlsConfig) -> io::Result<Vec<u8>> {
    let mut all = std::fs::read(&files.cert_file)?;
    all.extend(std::fs::read(&files.key_file)?);
    if let Some(ca) = &files.client_ca_file {
        all.extend(std::fs::read(ca)?);
    }
    Ok(all)
}

/// Builds the rustls config of `files`.
pub fn load(files: &TlsConfig) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| format!("server.tls.cert_file: {}: {e}", files.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.cert_file: {} holds no certificate",
            files.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| format!("server.tls.key_file: {}: {e}", files.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?;
    let builder = match &files.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("server.tls.client_ca_file: {}: {e}", ca.display()))?
            {
                let cert =
                    cert.map_err(|e| format!("server.tls.client_ca_file: {}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("server.tls.client_ca_file: {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("server.tls.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: the certificate and key do not go together: {e}"))?;
    // h2 for gRPC; http/1.1 for the HTTP front doors when they share the port.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `listener` and yields them once their TLS handshake is done,
/// each handshake bounded by `timeout` ([`crate::accept`]). The returned task owns the accept
/// loop and the handshakes; abort it to stop them.
pub fn incoming(
    listener: TcpListener,
    tls: TlsReloader,
    timeout: Duration,
) -> (impl Stream<Item = io::Result<TlsStream<tokio::net::TcpStream>>>, tokio::task::JoinHandle<()>)
{
    crate::accept::incoming(listener, timeout, move |tcp| {
        // The config in force when the connection came.
        let acceptor = tls.acceptor();
        async move { acceptor.accept(tcp).await }
    })
}
