//! How upstream TLS certificates are checked: the platform's verifier over the system's root
//! certificates, as before, but the roots are read the first time they are needed rather than
//! while the gateway starts — ahead of the first call, on a thread of their own, as soon as a
//! provider with an `https` URL (or behind a proxy) is built ([`Roots::warm_up`]).
//!
//! Reading them (the bundle and every file of /etc/ssl/certs: some 300 certificates opened
//! and parsed) was the largest part of the time from launch to the first served call, on the
//! start's critical path; and a gateway whose upstreams are all plain HTTP (a local vLLM or
//! Ollama, the benchmark's fakes) never needs them at all. Checking signatures and offering
//! signature schemes need no roots: those come from the crypto provider directly, so a
//! ClientHello never waits for them.
//!
//! If the roots cannot be read, the warm-up logs it once, and every TLS handshake fails with
//! that reason (a connect error naming it), as a start with no roots would have failed.

use std::sync::{Arc, Once, OnceLock};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use rustls_platform_verifier::Verifier;

/// The process's certificate verifier (see the module docs).
#[derive(Debug)]
pub struct Roots {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Verifier, String>>,
    warming: Once,
}

impl Roots {
    /// The one verifier of the process, on `provider` (the first caller's provider wins).
    pub fn shared(provider: &Arc<CryptoProvider>) -> Arc<Roots> {
        static ROOTS: OnceLock<Arc<Roots>> = OnceLock::new();
        ROOTS.get_or_init(|| Arc::new(Roots::new(provider.clone()))).clone()
    }

    fn new(provider: Arc<CryptoProvider>) -> Roots {
        Roots { provider, verifier: OnceLock::new(), warming: Once::new() }
    }

    /// Starts reading the roots on a thread of their own, once; a handshake that comes first
    /// waits for it.
    pub fn warm_up(self: &Arc<Self>) {
        self.warming.call_once(|| {
            let roots = self.clone();
            let spawned = std::thread::Builder::new().name("tls-roots".into()).spawn(move || {
                if let Err(e) = roots.verifier() {
                    tracing::error!(error = %e, "upstream TLS connections will fail");
                }
            });
            if let Err(e) = spawned {
                // Read at the first handshake instead.
                tracing::debug!(error = %e, "cannot start a thread to read the root certificates");
            }
        });
    }

    /// Whether the roots have been read (successfully or not).
    #[cfg(test)]
    fn is_loaded(&self) -> bool {
        self.verifier.get().is_some()
    }

    fn verifier(&self) -> Result<&Verifier, rustls::Error> {
        let verifier = self.verifier.get_or_init(|| {
            Verifier::new(self.provider.clone())
                .map_err(|e| format!("cannot read the system's root certificates: {e}"))
        });
        verifier.as_ref().map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for Roots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn roots() -> Arc<Roots> {
        Arc::new(Roots::new(Arc::new(rustls::crypto::ring::default_provider())))
    }

    /// A ClientHello's signature schemes come from the crypto provider: offering them reads
    /// no roots.
    #[test]
    fn offering_signature_schemes_reads_no_roots() {
        let roots = roots();
        assert!(!roots.supported_verify_schemes().is_empty());
        assert!(!roots.is_loaded());
    }

    /// Checking a certificate reads the roots, and one no root vouches for is refused.
    #[test]
    fn a_certificate_check_reads_the_roots_and_refuses_an_unknown_issuer() {
        let roots = roots();
        let cert = rcgen::generate_simple_self_signed(vec!["upstream.test".to_owned()]).unwrap();
        let name = ServerName::try_from("upstream.test").unwrap();
        let checked = roots.verify_server_cert(cert.cert.der(), &[], &name, &[], UnixTime::now());
        assert!(roots.is_loaded());
        assert!(
            matches!(checked, Err(rustls::Error::InvalidCertificate(_))),
            "a self-signed certificate: {checked:?}"
        );
    }

    /// The warm-up reads them on a thread of its own, once.
    #[test]
    fn the_warm_up_reads_the_roots_in_the_background() {
        let roots = roots();
        roots.warm_up();
        roots.warm_up();
        let until = Instant::now() + Duration::from_secs(20);
        while !roots.is_loaded() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(roots.is_loaded());
    }
}
