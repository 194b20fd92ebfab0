//! The wire under every HTTP provider adapter: the request an adapter builds
//! ([`UpstreamRequest`]), how it travels ([`Transport`]) and the reply it gets
//! ([`UpstreamResponse`]). [`super::http::Upstream`] owns one transport per provider and turns
//! what fails here into provider errors.
//!
//! A request goes straight to the upstream over hyper's pooled connections (rustls on ring, HTTP/2
//! when the upstream offers it in ALPN, HTTP/1.1 keep-alive otherwise). Only when a proxy applies —
//! the provider's `proxy`, or `HTTP(S)_PROXY`/`ALL_PROXY` in the environment unless
//! `disable_proxy` — does it go through reqwest, for its proxy matcher (`NO_PROXY`), CONNECT
//! tunnels and proxy credentials. The direct path skips what reqwest does on every request and
//! the gateway has no use for: its redirect layer parsing the URL back out of the request and
//! again for the reply (redirects are never followed here), its retry layer, and a timer armed
//! per request even when the reply is already there.
//!
//! Timeouts are the same on both paths: `connect_timeout` for the connection (TLS included),
//! `request_timeout` for the reply's head and then for each read of the body, and for a unary
//! call `request_timeout` for the whole exchange, body included.

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT},
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use serde::Serialize;
use tokio::{net::TcpStream, time::Instant};

use crate::config::ConnectionSettings;

const USER_AGENT_VALUE: &str = concat!("ai-service/", env!("CARGO_PKG_VERSION"));

/// The environment variables that make reqwest send through a proxy (lower and upper case).
const PROXY_VARIABLES: [&str; 6] =
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/// A request to an upstream, as an adapter builds it. A header or body that cannot be made is
/// kept as an error and reported when the request is sent, as reqwest's builder does.
pub struct UpstreamRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    invalid: Option<String>,
}

impl UpstreamRequest {
    /// A request of `method` to `url`.
    pub fn new(method: Method, url: &str) -> UpstreamRequest {
        let (uri, invalid) = match Uri::try_from(url) {
            Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => (uri, None),
            Ok(_) => (Uri::default(), Some("the upstream URL is not absolute".to_owned())),
            Err(e) => (Uri::default(), Some(format!("the upstream URL is not valid: {e}"))),
        };
        UpstreamRequest::to(method, uri).with_invalid(invalid)
    }

    /// A request of `method` to a URI parsed once already.
    pub fn to(method: Method, uri: Uri) -> UpstreamRequest {
        UpstreamRequest {
            method,
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            invalid: None,
        }
    }

    fn with_invalid(mut self, invalid: Option<String>) -> Self {
        if self.invalid.is_none() {
            self.invalid = invalid;
        }
        self
    }

    /// Adds a header (kept beside any of the same name).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: fmt::Display,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: fmt::Display,
    {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
                self
            }
            // Neither message names the value, so neither can carry a key.
            (Err(e), _) => self.with_invalid(Some(format!("invalid header name: {e}"))),
            (_, Err(e)) => self.with_invalid(Some(format!("invalid header value: {e}"))),
        }
    }

    /// `Authorization: Bearer {token}`, marked sensitive.
    pub fn bearer_auth(mut self, token: &str) -> Self {
        let mut value = String::with_capacity("Bearer ".len() + token.len());
        value.push_str("Bearer ");
        value.push_str(token);
        match HeaderValue::try_from(value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, value);
                self
            }
            Err(_) => self.with_invalid(Some("the key is not a valid header value".to_owned())),
        }
    }

    /// `body` as JSON, with `Content-Type: application/json` unless one is set.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                if !self.headers.contains_key(CONTENT_TYPE) {
                    self.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                self.body = Bytes::from(bytes);
                self
            }
            Err(e) => self.with_invalid(Some(format!("cannot encode the request: {e}"))),
        }
    }

    /// The body as given.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// Why a request did not get its reply, or a body did not arrive whole.
#[derive(Debug)]
pub struct TransportError {
    /// The connection (or the TLS handshake) failed, or the request could not be built.
    pub connect: bool,
    /// A timeout ran out.
    pub timeout: bool,
    /// What happened: the chain of causes, never the URL or a header.
    pub message: String,
}

impl TransportError {
    fn timed_out(what: &str) -> TransportError {
        TransportError { connect: false, timeout: true, message: what.to_owned() }
    }

    fn of_reqwest(e: &reqwest::Error) -> TransportError {
        let message = match causes(e) {
            Some(causes) => causes,
            None => {
                // reqwest's own text, minus the URL it may name.
                let mut text = e.to_string();
                if let Some(at) = text.find(" for url (") {
                    text.truncate(at);
                }
                text
            }
        };
        TransportError {
            connect: e.is_connect() || e.is_request(),
            timeout: e.is_timeout(),
            message,
        }
    }

    fn of_hyper(e: &hyper_util::client::legacy::Error) -> TransportError {
        let timeout = chain(e).any(|cause| cause.is::<ConnectTimedOut>());
        let message = match causes(e) {
            Some(causes) => causes,
            None => e.to_string(),
        };
        TransportError { connect: e.is_connect(), timeout, message }
    }

    fn of_body(e: &hyper::Error) -> TransportError {
        let message = match causes(e) {
            Some(causes) => format!("{e}: {causes}"),
            None => e.to_string(),
        };
        TransportError { connect: false, timeout: false, message }
    }
}

/// An error and every error below it.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| e.source())
}

/// The causes below `e`, joined; `None` when it has none.
fn causes(e: &(dyn StdError + 'static)) -> Option<String> {
    let parts: Vec<String> = chain(e).skip(1).map(ToString::to_string).collect();
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// How one provider's requests travel.
#[derive(Clone)]
pub enum Transport {
    /// Straight to the upstream over hyper's pooled connections.
    Direct(Arc<Direct>),
    /// Through reqwest, because a proxy applies.
    Proxied(reqwest::Client),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Direct(_) => "Transport::Direct",
            Transport::Proxied(_) => "Transport::Proxied",
        })
    }
}

/// The direct path's pooled client.
pub struct Direct {
    client: Client<Connector, Full<Bytes>>,
    read_timeout: Duration,
}

impl Transport {
    /// The transport of `settings`, with the shared TLS settings `tls`.
    pub fn new(
        settings: &ConnectionSettings,
        tls: rustls::ClientConfig,
    ) -> Result<Transport, String> {
        if proxied(settings, |name| std::env::var_os(name)) {
            return proxied_client(settings, tls).map(Transport::Proxied);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // The builder sets the ALPN protocols, `h2` then `http/1.1` (and would refuse a
        // config that came with some).
        let mut tls = tls;
        tls.alpn_protocols.clear();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let connector = Connector { inner: https, timeout: settings.connect_timeout };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.pool_size)
            .pool_idle_timeout(settings.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Transport::Direct(Arc::new(Direct { client, read_timeout: settings.request_timeout })))
    }

    /// Sends `request`. `total` bounds the whole exchange, body included (a unary call);
    /// without it only each wait is bounded (a stream).
    pub async fn send(
        &self,
        request: UpstreamRequest,
        total: Option<Duration>,
    ) -> Result<UpstreamResponse, TransportError> {
        if let Some(invalid) = request.invalid {
            return Err(TransportError { connect: true, timeout: false, message: invalid });
        }
        let UpstreamRequest { method, uri, mut headers, body, .. } = request;
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        match self {
            Transport::Direct(direct) => direct.send(method, uri, headers, body, total).await,
            Transport::Proxied(client) => {
                let mut builder =
                    client.request(method, uri.to_string()).headers(headers).body(body);
                if let Some(total) = total {
                    builder = builder.timeout(total);
                }
                let mut response =
                    builder.send().await.map_err(|e| TransportError::of_reqwest(&e))?;
                Ok(UpstreamResponse {
                    status: response.status(),
                    headers: std::mem::take(response.headers_mut()),
                    body: ResponseBody::Proxied(response),
                })
            }
        }
    }
}

impl Direct {
    async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        total: Option<Duration>,
    ) -> Result<UpstreamResponse, TransportError> {
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let now = Instant::now();
        let deadline = total.map(|total| now + total);
        // The reply's head waits at most the read timeout, and never past the deadline.
        let head_by = earliest(now + self.read_timeout, deadline);
        let response = match tokio::time::timeout_at(head_by, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(TransportError::of_hyper(&e)),
            Err(_) => return Err(TransportError::timed_out("no reply within the timeout")),
        };
        let (parts, body) = response.into_parts();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body: ResponseBody::Direct { body, read_timeout: self.read_timeout, deadline },
        })
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    match b {
        Some(b) if b < a => b,
        _ => a,
    }
}

/// Whether a proxy applies to `settings`: its own, or one the environment names (read through
/// `var`) unless `disable_proxy`.
fn proxied(
    settings: &ConnectionSettings,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> bool {
    settings.proxy.is_some()
        || (!settings.disable_proxy
            && PROXY_VARIABLES.iter().any(|name| var(name).is_some_and(|v| !v.is_empty())))
}

/// reqwest's client for a proxied provider: its configured proxy, or the environment's.
fn proxied_client(
    settings: &ConnectionSettings,
    mut tls: rustls::ClientConfig,
) -> Result<reqwest::Client, String> {
    // reqwest takes a preconfigured TLS setup as it is, ALPN included.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(settings.pool_size)
        .pool_idle_timeout(settings.idle_timeout)
        .connect_timeout(settings.connect_timeout)
        // A stream may run for minutes; what must not last is silence.
        .read_timeout(settings.request_timeout)
        .tcp_nodelay(true)
        // Never follow a redirect: the request carries a key in headers that reqwest would
        // not strip on a cross-host redirect (x-api-key, api-key, x-goog-api-key). A 3xx is
        // an upstream error instead.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(proxy) = &settings.proxy {
        let proxy = reqwest::Proxy::all(proxy)
            .map_err(|e| format!("invalid proxy: {}", TransportError::of_reqwest(&e).message))?;
        builder = builder.proxy(proxy);
    }
    builder.build().map_err(|e| {
        format!("cannot build the HTTP client: {}", TransportError::of_reqwest(&e).message)
    })
}

/// An upstream's reply: its status and headers, and the body still to read.
pub struct UpstreamResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: ResponseBody,
}

impl fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamResponse").field("status", &self.status).finish_non_exhaustive()
    }
}

enum ResponseBody {
    Direct { body: Incoming, read_timeout: Duration, deadline: Option<Instant> },
    Proxied(reqwest::Response),
}

impl UpstreamResponse {
    /// The reply's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reply's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Lets go of the reply's headers, before its body is read for long (a stream): over
    /// HTTP/1 their values share the connection's first read buffer, which they would keep
    /// alive (8 KiB, beside the buffer the body is read into) for as long as the body lasts.
    pub fn release_headers(&mut self) {
        self.headers = HeaderMap::new();
    }

    /// The body's next piece; `None` at its end. Each read waits at most the read timeout, and
    /// never past a unary call's deadline.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        match &mut self.body {
            ResponseBody::Direct { body, read_timeout, deadline } => loop {
                let by = earliest(Instant::now() + *read_timeout, *deadline);
                let frame = match tokio::time::timeout_at(by, body.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => return Err(TransportError::timed_out("the reply stalled")),
                };
                match frame {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(TransportError::of_body(&e)),
                    Some(Ok(frame)) => {
                        // Trailers carry nothing a provider adapter reads.
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
            ResponseBody::Proxied(response) => {
                response.chunk().await.map_err(|e| TransportError::of_reqwest(&e))
            }
        }
    }
}

/// The connection's timeout ran out (TLS handshake included).
#[derive(Debug)]
struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection timed out")
    }
}

impl StdError for ConnectTimedOut {}

/// hyper-rustls' connector with `connect_timeout` over the TCP connection and the TLS handshake.
#[derive(Clone)]
struct Connector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests;
