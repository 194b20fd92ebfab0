//! What every HTTP provider adapter shares: the pooled transport built from a provider's
//! [`ConnectionSettings`] (see [`super::transport`]), the key held for atomic rotation, sending
//! a request, and turning upstream failures (transport errors, error statuses and bodies,
//! malformed JSON, cut streams) into [`ProviderError`]s whose kind says whether a retry may
//! help.
//!
//! No error built here carries a key or a request: messages come from the provider's error
//! body or from the transport error's causes, never from the URL or headers we sent.

use std::{
    sync::{Arc, Once, OnceLock},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use futures::Stream;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;

use super::{
    ProviderError, ProviderErrorKind,
    roots::Roots,
    sse::{SseEvent, SseParser},
    transport::{Transport, TransportError, UpstreamRequest, UpstreamResponse},
};
use crate::{config::ConnectionSettings, secret::Secret};

/// Longest provider error message kept, in bytes.
const MAX_MESSAGE: usize = 1000;
/// Most bytes of an error body read: enough for any provider's error object, and an HTML
/// error page or an endless body cannot grow memory.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Installs rustls' ring provider once per process; an embedder's own choice wins.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS settings every provider's transport shares, made once per process: rustls on ring
/// with the platform's verifier (the system's roots, read when first needed: [`Roots`]); each
/// transport sets its ALPN protocols. Made per transport, the verifier read the system's
/// roots again for every provider (six times at the start of the benchmark's six-provider
/// config, and a copy of the roots each).
fn shared_tls() -> Result<(rustls::ClientConfig, Arc<Roots>), String> {
    static TLS: OnceLock<Result<(rustls::ClientConfig, Arc<Roots>), String>> = OnceLock::new();
    TLS.get_or_init(|| {
        install_crypto();
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let roots = Roots::shared(&provider);
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(roots.clone())
            .with_no_client_auth();
        Ok((config, roots))
    })
    .clone()
}

/// One provider's connection: a pooled transport, its base URL and its key.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The provider's configured name.
    pub name: String,
    /// The base URL, without a trailing slash.
    pub base_url: String,
    transport: Transport,
    /// Swapped whole by a key rotation, so a request sees the old key or the new one.
    key: Option<Arc<ArcSwap<Secret>>>,
    request_timeout: Duration,
    max_output_bytes: usize,
}

impl Upstream {
    /// Builds the transport of `settings`.
    pub fn new(name: &str, settings: &ConnectionSettings) -> Result<Upstream, ProviderError> {
        let (tls, roots) = shared_tls().map_err(|e| {
            ProviderError::new(name, ProviderErrorKind::Connect, format!("cannot set up TLS: {e}"))
        })?;
        let transport = Transport::new(settings, tls)
            .map_err(|e| ProviderError::new(name, ProviderErrorKind::Connect, e))?;
        // A provider that will speak TLS (to its upstream or its proxy) has the roots read
        // now, off the start's path; one on plain HTTP never needs them.
        let plain = settings.base_url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        if !plain || matches!(transport, Transport::Proxied(_)) {
            roots.warm_up();
        }
        Ok(Upstream {
            name: name.to_owned(),
            base_url: normalized(&settings.base_url),
            transport,
            key: settings.api_key.clone().map(|k| Arc::new(ArcSwap::from_pointee(k))),
            request_timeout: settings.request_timeout,
            max_output_bytes: settings.max_output_bytes,
        })
    }

    /// A POST to `url`.
    pub fn post(&self, url: &str) -> UpstreamRequest {
        UpstreamRequest::new(Method::POST, url)
    }

    /// A POST to a URL parsed once already.
    pub fn post_to(&self, uri: Uri) -> UpstreamRequest {
        UpstreamRequest::to(Method::POST, uri)
    }

    /// The current key, if the provider has one.
    pub fn key(&self) -> Option<Arc<Secret>> {
        self.key.as_ref().map(|k| k.load_full())
    }

    /// The handle a key rotation swaps.
    pub fn key_handle(&self) -> Option<Arc<ArcSwap<Secret>>> {
        self.key.clone()
    }

    /// An active health probe: a key-less `GET {base_url}/models`. Any answer below 500 (a
    /// 401 for the missing key included) shows the endpoint is up; a transport error, a
    /// timeout or a 5xx shows it is not. No key is sent, so a probe can leak none.
    pub async fn probe(&self, timeout: Duration) -> Result<(), ProviderError> {
        let url = format!("{}/models", self.base_url);
        let response = self
            .transport
            .send(UpstreamRequest::new(Method::GET, &url), Some(timeout))
            .await
            .map_err(|e| self.transport_error(&e, false))?;
        let status = response.status().as_u16();
        if status >= 500 {
            return Err(self
                .error(kind_for_status(status), format!("health probe answered {status}"))
                .with_status(status));
        }
        Ok(())
    }

    /// Sends `request`; an error status becomes an error built from its body. A unary call is
    /// bounded by the request timeout as a whole; a stream only by its read timeout.
    pub async fn send(
        &self,
        mut request: UpstreamRequest,
        stream: bool,
    ) -> Result<UpstreamResponse, ProviderError> {
        // The caller's request id and W3C trace context travel on to the provider (naming the
        // gateway's attempt span while trace export is on).
        if let Some(call) = crate::call::CallContext::current() {
            for (name, value) in call.upstream_headers() {
                request = request.header(name, value);
            }
        }
        let total = (!stream).then_some(self.request_timeout);
        let response = self
            .transport
            .send(request, total)
            .await
            .map_err(|e| self.transport_error(&e, false))?;
        let status = response.status();
        crate::telemetry::spans::record_http_status(status.as_u16());
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_at_most(response, MAX_ERROR_BODY).await.unwrap_or_default();
        Err(self.status_error(status, &headers, &body))
    }

    /// Reads a whole JSON body; a body that does not parse is `InvalidResponse`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        response: UpstreamResponse,
    ) -> Result<T, ProviderError> {
        let status = response.status().as_u16();
        let limit = self.max_output_bytes;
        let body = read_at_most(response, limit.saturating_add(1))
            .await
            .map_err(|e| self.transport_error(&e, true))?;
        if body.len() > limit {
            return Err(self.too_long().with_status(status));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ProviderError::new(
                &self.name,
                ProviderErrorKind::InvalidResponse,
                format!("the upstream sent a reply that does not parse: {e}"),
            )
            .with_status(status)
        })
    }

    /// The SSE events of a streamed body. A transport failure mid-body is `StreamCut` (or
    /// `Timeout`); the events simply end at the body's end, and the adapter decides whether
    /// its end marker came.
    pub fn events(&self, mut response: UpstreamResponse) -> SseEvents {
        response.release_headers();
        SseEvents {
            upstream: self.clone(),
            response,
            parser: SseParser::new(),
            parsed: Vec::new(),
            taken: 0,
            read: 0,
            ended: false,
        }
    }

    /// The chunks of a streamed body, ending with an error on a transport failure (`StreamCut`
    /// or `Timeout`) or once more than `max_output_bytes` came.
    pub fn chunks(
        &self,
        mut response: UpstreamResponse,
    ) -> impl Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static {
        let upstream = self.clone();
        response.release_headers();
        async_stream::stream! {
            let mut read = 0usize;
            loop {
                let chunk = match upstream.next_chunk(&mut response, &mut read).await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => return,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                yield Ok(chunk);
            }
        }
    }

    /// The next chunk of a streamed body (`None` at its end), `read` counting what came: a
    /// transport failure is `StreamCut` (or `Timeout`), and past `max_output_bytes` an endless
    /// stream ends here rather than at the caller's deadline, if any.
    async fn next_chunk(
        &self,
        response: &mut UpstreamResponse,
        read: &mut usize,
    ) -> Result<Option<bytes::Bytes>, ProviderError> {
        let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(&e, true))?
        else {
            return Ok(None);
        };
        *read = read.saturating_add(chunk.len());
        if *read > self.max_output_bytes {
            return Err(self.too_long());
        }
        Ok(Some(chunk))
    }

    /// Checks that an embeddings reply has one non-empty vector per input.
    pub fn check_vectors(&self, vectors: &[Vec<f32>], inputs: usize) -> Result<(), ProviderError> {
        if vectors.len() != inputs {
            return Err(self.invalid(format!(
                "the reply has {} embeddings for {inputs} inputs",
                vectors.len()
            )));
        }
        match vectors.iter().position(Vec::is_empty) {
            Some(i) => Err(self.invalid(format!("embedding {i} has no values"))),
            None => Ok(()),
        }
    }

    /// An error of this provider.
    pub fn error(&self, kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError::new(&self.name, kind, self.redact(message.into()))
    }

    /// A reply that lacks what the wire format promises.
    pub fn invalid(&self, message: impl Into<String>) -> ProviderError {
        self.error(ProviderErrorKind::InvalidResponse, message)
    }

    /// A reply longer than `max_output_bytes`.
    pub fn too_long(&self) -> ProviderError {
        self.invalid(format!(
            "the upstream reply is longer than max_output_bytes ({} bytes)",
            self.max_output_bytes
        ))
    }

    /// The stream ended before its end marker.
    pub fn cut(&self) -> ProviderError {
        self.error(ProviderErrorKind::StreamCut, "the upstream stream ended before its end marker")
    }

    /// A stream event whose JSON does not parse.
    pub fn malformed_event(&self, e: &serde_json::Error) -> ProviderError {
        self.invalid(format!("the upstream sent a stream event that does not parse: {e}"))
    }

    /// A transport failure: before the reply (`in_body == false`) or while reading it.
    fn transport_error(&self, e: &TransportError, in_body: bool) -> ProviderError {
        let kind = if e.timeout {
            ProviderErrorKind::Timeout
        } else if in_body {
            ProviderErrorKind::StreamCut
        } else if e.connect {
            ProviderErrorKind::Connect
        } else {
            ProviderErrorKind::Server
        };
        let what = match kind {
            ProviderErrorKind::Timeout => "the upstream timed out",
            ProviderErrorKind::StreamCut => "the upstream connection broke while sending the reply",
            ProviderErrorKind::Connect => "cannot reach the upstream",
            _ => "the upstream request failed",
        };
        self.error(kind, format!("{what}: {}", e.message))
    }

    /// An error status with its body.
    pub fn status_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ProviderError {
        let (message, provider_type) = error_message(body);
        let mut kind = kind_for_status(status.as_u16());
        if let Some(t) = provider_type.as_deref() {
            // Bodies can say more than the status: Gemini rejects a bad key with a 400.
            if t.contains("API_KEY_INVALID") || t == "authentication_error" {
                kind = ProviderErrorKind::Auth;
            } else if t == "overloaded_error" {
                kind = ProviderErrorKind::Overloaded;
            }
        }
        // AWS names the error's type (Bedrock's ModelNotReadyException is a 429 that means
        // unavailable, not a rate limit).
        if let Some(aws) = super::bedrock::error_type(headers, body)
            .as_deref()
            .and_then(super::bedrock::error_kind)
        {
            kind = aws;
        }
        let message = match message {
            Some(m) => format!("upstream returned {}: {m}", status.as_u16()),
            None => format!("upstream returned {}", status),
        };
        let mut err = self.error(kind, message).with_status(status.as_u16());
        if let Some(after) = retry_after(headers, SystemTime::now()) {
            err = err.with_retry_after(after);
        }
        err
    }

    /// An error object sent inside a stream (`event: error`, `data: {"error": …}`).
    pub fn stream_error(&self, error: &serde_json::Value) -> ProviderError {
        let message = error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("the upstream reported an error in the stream");
        let kind = error_kind_of(error);
        let status = error.get("code").and_then(serde_json::Value::as_u64);
        let mut err = self.error(kind, format!("upstream stream error: {}", truncate(message)));
        if let Some(status) = status.and_then(|s| u16::try_from(s).ok()) {
            err = err.with_status(status);
        }
        err
    }

    /// The provider's message with our own key masked, in case an upstream echoes it.
    fn redact(&self, message: String) -> String {
        match self.key() {
            Some(key) if key.expose().len() >= 8 && message.contains(key.expose()) => {
                message.replace(key.expose(), "***")
            }
            _ => message,
        }
    }
}

/// `base_url` as the URL standard writes it (an international host in punycode, characters a
/// URI cannot hold percent-encoded), so every URL made from it is one `http::Uri` accepts;
/// without a trailing slash. The configuration checked that it parses.
fn normalized(base_url: &str) -> String {
    match reqwest::Url::parse(base_url) {
        Ok(url) => url.as_str().trim_end_matches('/').to_owned(),
        Err(_) => base_url.to_owned(),
    }
}

/// The kind of an error object's `type`, `status` or numeric `code`.
fn error_kind_of(error: &serde_json::Value) -> ProviderErrorKind {
    use ProviderErrorKind as K;
    let text = ["type", "status", "code"]
        .iter()
        .filter_map(|f| error.get(*f).and_then(|v| v.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(code) = error.get("code").and_then(serde_json::Value::as_u64) {
        return u16::try_from(code).map_or(K::Server, kind_for_status);
    }
    if text.contains("rate_limit") || text.contains("RESOURCE_EXHAUSTED") || text.contains("quota")
    {
        K::RateLimited
    } else if text.contains("overloaded") || text.contains("UNAVAILABLE") {
        K::Overloaded
    } else if text.contains("invalid_request") || text.contains("INVALID_ARGUMENT") {
        K::Rejected
    } else if text.contains("authentication") || text.contains("permission") {
        K::Auth
    } else if text.contains("not_found") || text.contains("NOT_FOUND") {
        K::NotFound
    } else {
        K::Server
    }
}

/// The first `limit` bytes of a body, or all of it when shorter; the rest is never read.
async fn read_at_most(
    mut response: UpstreamResponse,
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    let mut body = Vec::new();
    while body.len() < limit {
        let Some(chunk) = response.chunk().await? else { break };
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body)
}

/// The kind of an HTTP error status.
pub fn kind_for_status(status: u16) -> ProviderErrorKind {
    use ProviderErrorKind as K;
    match status {
        401 | 403 => K::Auth,
        404 => K::NotFound,
        408 => K::Timeout,
        429 => K::RateLimited,
        529 => K::Overloaded,
        500..=599 => K::Server,
        // A redirect is not followed (see `Upstream::new`): the upstream misbehaved.
        300..=399 => K::InvalidResponse,
        _ => K::Rejected,
    }
}

/// The provider's message and error type from an error body in any of the known shapes:
/// OpenAI `{"error":{"message","type"}}`, Anthropic `{"type":"error","error":{…}}`, Gemini
/// `{"error":{"message","status","details"}}`, or plain text.
fn error_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return ((!text.is_empty()).then(|| truncate(text)), None);
    };
    let error = json.get("error").unwrap_or(&json);
    let message = match error {
        serde_json::Value::String(s) => Some(s.clone()),
        other => other.get("message").and_then(|m| m.as_str()).map(str::to_owned),
    };
    let mut kinds: Vec<String> = ["type", "status", "code"]
        .iter()
        .filter_map(|f| error.get(*f).and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    if let Some(details) = error.get("details").and_then(|d| d.as_array()) {
        kinds.extend(
            details
                .iter()
                .filter_map(|d| d.get("reason").and_then(|r| r.as_str()).map(str::to_owned)),
        );
    }
    let kinds = kinds.join(" ");
    (message.map(|m| truncate(&m)), (!kinds.is_empty()).then_some(kinds))
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, as a wait from `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Splits a `data:` URL into its MIME type and base64 payload.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, data))
}

/// The SSE events of a streamed upstream body ([`Upstream::events`]), read as an adapter asks
/// for them. [`SseEvents::next`] is an async method the adapter's own stream awaits, not a
/// stream of its own: an event reaches the adapter without being handed through one more
/// generator (a slot written and read, the event moved in and out) on every chunk.
pub struct SseEvents {
    upstream: Upstream,
    response: UpstreamResponse,
    parser: SseParser,
    /// The events of the last read, `taken` of them handed out: one buffer for every read.
    parsed: Vec<SseEvent>,
    taken: usize,
    /// Bytes of the body so far.
    read: usize,
    /// The body ended, failed, or held something that is no SSE: nothing more comes.
    ended: bool,
}

impl SseEvents {
    /// The next event; `None` at the body's end and after an error.
    pub async fn next(&mut self) -> Option<Result<SseEvent, ProviderError>> {
        loop {
            if let Some(event) = self.parsed.get_mut(self.taken) {
                self.taken += 1;
                return Some(Ok(std::mem::take(event)));
            }
            self.parsed.clear();
            self.taken = 0;
            if self.ended {
                return None;
            }
            let chunk = match self.upstream.next_chunk(&mut self.response, &mut self.read).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            };
            if let Err(e) = self.parser.push_into(&chunk, &mut self.parsed) {
                // The read's events before the bad line are dropped with it, as they always were.
                self.parsed.clear();
                self.ended = true;
                return Some(Err(self
                    .upstream
                    .error(ProviderErrorKind::InvalidResponse, e.to_string())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert("retry-after", later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn statuses_map_to_retryable_kinds() {
        for s in [408, 429, 500, 502, 503, 529] {
            assert!(kind_for_status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!kind_for_status(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn error_bodies_of_every_shape_give_their_message() {
        let openai = br#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#;
        assert_eq!(error_message(openai).0.as_deref(), Some("bad model"));
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_message(anthropic),
            (Some("Overloaded".into()), Some("overloaded_error".into()))
        );
        let gemini = br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert!(error_message(gemini).1.unwrap().contains("API_KEY_INVALID"));
        assert_eq!(error_message(b"Bad Gateway").0.as_deref(), Some("Bad Gateway"));
    }

    #[test]
    fn base_urls_are_normalized_into_uris() {
        for (given, expected) in [
            ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
            ("https://api.example.com", "https://api.example.com"),
            ("https://API.Example.com/v1/", "https://api.example.com/v1"),
            ("https://bücher.example/v1", "https://xn--bcher-kva.example/v1"),
        ] {
            let url = normalized(given);
            assert_eq!(url, expected);
            assert!(Uri::try_from(format!("{url}/chat/completions")).is_ok(), "{url}");
        }
    }

    #[test]
    fn data_urls_split_into_type_and_payload() {
        assert_eq!(data_url("data:image/png;base64,AAAA"), Some(("image/png", "AAAA")));
        assert_eq!(data_url("https://x/y.png"), None);
    }
}
