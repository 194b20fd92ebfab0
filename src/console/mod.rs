//! The operator console, served by the admin port ([`crate::admin`]) at `/` unless
//! `server.console: false`: one page that shows the routes and the health of their endpoints,
//! the traffic charts, the retries, failovers and hedges, the configuration in force
//! (redacted) and the build version, plus a playground that streams a chat through the gRPC
//! port's gRPC-Web.
//!
//! - The page and its script and style are compiled into the binary ([`assets`]): no CDN, no
//!   framework, works offline.
//! - Its data comes from three JSON endpoints: `/api/routes` (the router in force, read at each
//!   request, [`view::RouteTable`]), `/api/metrics` (the sample ring, [`samples`]) and
//!   `/api/overview` ([`view::Overview`]).
//! - The admin port has no authentication, so nothing here may show a secret: the config is
//!   the redacted snapshot, endpoints are named but their addresses and keys are not shown. The
//!   playground's client key stays in the page's memory; it goes only to the gRPC port.
//! - Every answer carries a Content-Security-Policy that lets the page load only its own
//!   assets and connect only to itself and the gRPC port, plus `nosniff`, no framing and no
//!   referrer.

pub mod assets;
pub mod samples;
pub mod view;

use std::{future::Future, sync::Arc};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use serde::Serialize;

use crate::{config::Config, metrics::Recorder, router::Router};

pub use samples::Ring;

/// What the console reads from; cheap to clone.
#[derive(Clone, Debug)]
pub struct Console {
    router: Arc<ArcSwap<Router>>,
    ring: Arc<Ring>,
    config: Arc<Config>,
    client_keys: bool,
}

impl Console {
    /// The console over the gateway's router and configuration; `client_keys` says whether
    /// calls need a key (the playground then asks for one).
    pub fn new(router: Arc<ArcSwap<Router>>, config: Arc<Config>, client_keys: bool) -> Console {
        Console { router, ring: Arc::default(), config, client_keys }
    }

    /// The sampling task that feeds the charts; the admin port owns it.
    pub fn sampler(&self, metrics: Recorder) -> impl Future<Output = ()> + Send + 'static {
        samples::run(metrics, self.ring.clone())
    }

    /// The answer to a GET of `path`, or `None` when the path is not the console's. `host` is
    /// the request's `Host` header, from which the gRPC port's origin is derived for the
    /// Content-Security-Policy.
    pub fn answer(&self, path: &str, host: Option<&str>) -> Option<Response<Full<Bytes>>> {
        let (body, content_type) = match path {
            "/api/routes" => {
                let router = self.router.load();
                (json(&view::RouteTable::of(&router, tokio::time::Instant::now())), JSON)
            }
            "/api/metrics" => (json(&self.ring.series()), JSON),
            "/api/overview" => (
                json(&view::Overview {
                    version: env!("CARGO_PKG_VERSION"),
                    grpc_port: self.config.server.listen.port(),
                    grpc_tls: self.config.server.tls.is_some(),
                    client_keys: self.client_keys,
                    echo_fallback: self.config.echo_fallback,
                    config: &self.config.redacted,
                }),
                JSON,
            ),
            other => {
                let asset = assets::get(other)?;
                (Bytes::from_static(asset.body), asset.content_type)
            }
        };
        let mut response = Response::new(Full::new(body));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if let Ok(csp) = HeaderValue::from_str(&self.content_security_policy(host)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        Some(response)
    }

    /// Only the console's own assets, and connections to itself and the gRPC port (on the
    /// host the browser reached the console by) for the playground.
    fn content_security_policy(&self, host: Option<&str>) -> String {
        let scheme = if self.config.server.tls.is_some() { "https" } else { "http" };
        let port = self.config.server.listen.port();
        let grpc = host
            .and_then(host_name)
            .map(|name| format!(" {scheme}://{name}:{port}"))
            .unwrap_or_default();
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'{grpc}; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    }
}

const JSON: &str = "application/json";

fn json(value: &impl Serialize) -> Bytes {
    // Typed structs of strings, numbers and booleans always serialize.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// The host part of a `Host` header, when it is a plain DNS name or IP address (anything else
/// could smuggle directives into the policy, and gets none).
fn host_name(host: &str) -> Option<&str> {
    let name = match host.strip_prefix('[') {
        Some(v6) => &host[..v6.find(']')? + 2],
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!name.is_empty() && name.chars().all(allowed)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn only_plain_hosts_reach_the_policy() {
        assert_eq!(host_name("localhost:9090"), Some("localhost"));
        assert_eq!(host_name("127.0.0.1:9090"), Some("127.0.0.1"));
        assert_eq!(host_name("gw.example.com"), Some("gw.example.com"));
        assert_eq!(host_name("[::1]:9090"), Some("[::1]"));
        assert_eq!(host_name("evil; script-src *:9090"), None);
        assert_eq!(host_name("a b"), None);
        assert_eq!(host_name(""), None);
    }
}
