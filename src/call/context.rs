//! What the gateway knows about the call it is serving and passes down to the provider call:
//! the request id and the caller's W3C trace context.
//!
//! The call's record ([`super::record`]) builds a [`CallContext`] from the call's headers
//! (gRPC metadata or HTTP headers, whatever the front door) and runs the router
//! inside [`CallContext::scope`], so every provider adapter can read it with
//! [`CallContext::current`] without the `Provider` trait growing a parameter. An adapter adds
//! the headers to its upstream request like this:
//!
//! ```ignore
//! let mut req = self.http.post(url).json(&body);
//! if let Some(call) = CallContext::current() {
//!     for (name, value) in call.upstream_headers() {
//!         req = req.header(name, value);
//!     }
//! }
//! ```
//!
//! The context lives in a tokio task-local: it is visible to the futures the router awaits,
//! not to tasks it spawns (those must take a clone along).
//!
//! It also keeps the call's upstream trail: the router notes every attempt it sends
//! ([`CallContext::attempt_sent`]), so the call's record names the provider and endpoint it
//! last went to even when the call ends while that attempt is still in flight (the caller
//! left, its deadline passed) and no answer or error ever came back from the router.
//!
//! Trace context: with trace export off (the default) the gateway records no spans, so it
//! forwards `traceparent` and `tracestate` unchanged, as W3C Trace Context allows a
//! non-participating intermediary to do: the upstream's spans then hang under the caller's
//! span. With `tracing.otlp` configured it participates: the call's `rpc` span is a child of
//! the caller's span, each upstream attempt a child of that, and the `traceparent` sent
//! upstream carries the same trace id with the attempt span's id, so the provider's spans hang
//! under the gateway's attempt ([`crate::telemetry::spans`]). `tracestate` is passed on as
//! the caller sent it.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex},
};

use tonic::metadata::MetadataMap;

/// The metadata key of the request id, read from the call and returned in its response.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor trace state header.
pub const TRACESTATE: &str = "tracestate";

/// [`REQUEST_ID`] as a header name: a look-up or insert by `&str` parses the name first.
pub static REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);
/// The trace headers as names, for the same reason.
static TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: http::HeaderName = http::HeaderName::from_static(TRACESTATE);

/// The longest request id taken from a caller; a longer one is replaced by a fresh id.
const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// The RPC being served, as the provider call sees it; cheap to clone.
#[derive(Clone, Debug)]
pub struct CallContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    request_id: String,
    trace: Option<TraceParent>,
    tracestate: Option<String>,
    trail: Mutex<Trail>,
}

/// Where a call's upstream attempts went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trail {
    /// Attempts sent upstream.
    pub attempts: u32,
    /// The provider of the last attempt.
    pub provider: Option<String>,
    /// The endpoint the last attempt was sent to; `None` when the provider refused the request
    /// itself (a field it cannot honour) before sending anything.
    pub endpoint: Option<String>,
}

impl CallContext {
    /// The context of a call with `metadata`; see [`CallContext::from_headers`].
    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        CallContext::from_headers(metadata.as_ref())
    }

    /// The context of a call with these request headers: its `x-request-id` (or a fresh one
    /// when it brought none or an unusable one) and its valid `traceparent`, if any.
    pub fn from_headers(metadata: &http::HeaderMap) -> Self {
        let request_id = metadata
            .get(&REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_usable_request_id(id))
            .map_or_else(new_request_id, str::to_owned);
        let trace = metadata
            .get(&TRACEPARENT_NAME)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<TraceParent>().ok());
        // `tracestate` means nothing without a valid `traceparent`.
        let tracestate = trace
            .as_ref()
            .and(metadata.get(&TRACESTATE_NAME))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        CallContext {
            inner: Arc::new(Inner { request_id, trace, tracestate, trail: Mutex::default() }),
        }
    }

    /// The context of the call being served, inside [`CallContext::scope`].
    pub fn current() -> Option<CallContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with this context as [`CallContext::current`].
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        CURRENT.scope(self.clone(), future).await
    }

    /// Notes an attempt sent to `provider` at `endpoint`.
    pub fn attempt_sent(&self, provider: &str, endpoint: &str) {
        let mut trail = self.trail_mut();
        trail.attempts += 1;
        trail.provider = Some(provider.to_owned());
        trail.endpoint = Some(endpoint.to_owned());
    }

    /// Takes back an attempt that `provider` refused before sending it (a field it cannot
    /// honour): it went nowhere, but the provider is the one that refused the call.
    pub fn attempt_refused_locally(&self, provider: &str) {
        let mut trail = self.trail_mut();
        trail.attempts = trail.attempts.saturating_sub(1);
        trail.provider = Some(provider.to_owned());
        trail.endpoint = None;
    }

    /// Where the call's attempts went so far.
    pub fn trail(&self) -> Trail {
        self.trail_mut().clone()
    }

    fn trail_mut(&self) -> std::sync::MutexGuard<'_, Trail> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.inner.trail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The caller's trace context, when it sent a valid one.
    pub fn trace(&self) -> Option<&TraceParent> {
        self.inner.trace.as_ref()
    }

    /// The caller's `tracestate`, sent with a valid `traceparent`.
    pub fn tracestate(&self) -> Option<&str> {
        self.inner.tracestate.as_deref()
    }

    /// The headers an adapter adds to its upstream request: `traceparent` (the caller's, or
    /// the current attempt span's while trace export is on) and the caller's `tracestate`,
    /// and `x-request-id`.
    pub fn upstream_headers(&self) -> Vec<(&'static http::HeaderName, String)> {
        let mut headers = Vec::with_capacity(3);
        if let Some(ours) = crate::telemetry::spans::upstream_traceparent() {
            headers.push((&TRACEPARENT_NAME, ours.to_string()));
        } else if let Some(trace) = &self.inner.trace {
            headers.push((&TRACEPARENT_NAME, trace.to_string()));
        }
        if let Some(state) = &self.inner.tracestate {
            headers.push((&TRACESTATE_NAME, state.clone()));
        }
        headers.push((&REQUEST_ID_HEADER, self.inner.request_id.clone()));
        headers
    }
}

/// Whether a caller's request id may be used as it is: short, printable ASCII.
pub(crate) fn is_usable_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh request id: a version 4 UUID in its simple (32 hex digits) form.
///
/// Its random bits come from the thread's fast generator (`fastrand`, seeded per thread from
/// the process's OS-seeded hash keys) rather than from the OS: a request id must be unique,
/// not secret, and `getrandom(2)` on every call was a system call per RPC.
pub fn new_request_id() -> String {
    let mut text = [0u8; uuid::fmt::Simple::LENGTH];
    // Encoded into a buffer of its exact length and copied once (no formatter).
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .simple()
        .encode_lower(&mut text)
        .to_owned()
}

/// A W3C `traceparent`: `00-<trace id>-<parent id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The caller's span, 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// The trace id in lower-case hex, as logs show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Why a `traceparent` was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid W3C traceparent")]
pub struct InvalidTraceParent;

impl std::str::FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidTraceParent);
        };
        let version: [u8; 1] = unhex(version)?;
        // Version ff is forbidden; version 00 has exactly four fields. Later versions may
        // append fields, which we ignore as the spec asks.
        if version[0] == 0xff || (version[0] == 0 && parts.next().is_some()) {
            return Err(InvalidTraceParent);
        }
        let trace_id: [u8; 16] = unhex(trace)?;
        let parent_id: [u8; 8] = unhex(parent)?;
        let [flags] = unhex::<1>(flags)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(InvalidTraceParent);
        }
        Ok(TraceParent { trace_id, parent_id, flags })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.parent_id), self.flags)
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Exactly `2 * N` lower-case hex digits.
fn unhex<const N: usize>(s: &str) -> Result<[u8; N], InvalidTraceParent> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return Err(InvalidTraceParent);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(InvalidTraceParent),
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let tp: TraceParent = VALID.parse().unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), VALID);
    }

    #[test]
    fn invalid_traceparents_are_rejected() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_context_comes_from_metadata_and_reaches_the_provider_call() {
        let mut md = MetadataMap::new();
        md.insert(REQUEST_ID, "req-1".parse().unwrap());
        md.insert(TRACEPARENT, VALID.parse().unwrap());
        md.insert(TRACESTATE, "vendor=x".parse().unwrap());
        let call = CallContext::from_metadata(&md);
        assert!(CallContext::current().is_none());
        let headers =
            call.scope(async { CallContext::current().unwrap().upstream_headers() }).await;
        let headers: Vec<(&str, String)> =
            headers.into_iter().map(|(name, value)| (name.as_str(), value)).collect();
        assert_eq!(
            headers,
            [
                (TRACEPARENT, VALID.to_owned()),
                (TRACESTATE, "vendor=x".to_owned()),
                (REQUEST_ID, "req-1".to_owned())
            ]
        );
    }

    #[test]
    fn a_missing_or_unusable_request_id_is_replaced() {
        let fresh = CallContext::from_metadata(&MetadataMap::new());
        assert_eq!(fresh.request_id().len(), 32);
        let mut md = MetadataMap::new();
        md.insert(REQUEST_ID, "x".repeat(200).parse().unwrap());
        assert_ne!(CallContext::from_metadata(&md).request_id(), "x".repeat(200));
    }

    #[test]
    fn fresh_request_ids_are_distinct_v4_uuids_across_threads() {
        let ids: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5_000).map(|_| new_request_id()).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "a request id repeated");
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }
}
