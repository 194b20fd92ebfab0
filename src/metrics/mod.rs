//! Metrics: the signals the gateway emits, a small trait any backend can implement, and the
//! [`Recorder`] handle through which the gateway's code emits them.
//!
//! - [`Metrics`] is the backend: counter, gauge and histogram (a timer is a histogram of
//!   seconds) with labels. [`FacadeMetrics`] sends every signal through the `metrics` facade
//!   to a `metrics::Recorder` (one handle registered per series, then reused);
//!   [`PrometheusMetrics`] is that over `metrics-exporter-prometheus`, rendered for the admin
//!   port's `/metrics`; [`NoopMetrics`] drops everything. A service that embeds the library
//!   hands its own `metrics` recorder to [`crate::Gateway::with_metrics_recorder`] (or uses
//!   the global one, [`crate::Gateway::with_global_metrics_recorder`]), or implements
//!   [`Metrics`] for another backend and passes it to [`crate::Gateway::with_metrics`].
//! - [`names`] holds every metric name (all in the `ai_service_` namespace) and [`labels`]
//!   every label key; [`CATALOGUE`] their kinds, help texts and buckets; `docs/metrics.md`
//!   describes them.
//! - [`Recorder`] is what the gateway's code holds: typed methods, one per signal, so label
//!   sets stay the same wherever a signal is emitted. A call's record
//!   ([`crate::call::record`]) emits its start and end ([`Recorder::call_started`],
//!   [`Recorder::call_finished`]); the router emits retries, failovers, hedges, attempts,
//!   endpoint health and breaker state; the cache, the limiter and the audit sink their own.
//!
//! This module is a sink: it depends on nothing else of the gateway. Labels stay bounded:
//! route names come from the config (a `provider/model` passthrough is labelled `provider/*`,
//! see [`crate::router::Route::label`]), providers from the config, front doors, methods, codes
//! and reasons from fixed sets. Never a request id, a user id or a model string a caller sent.

mod call;
pub mod facade;
pub mod prometheus;

use std::{fmt, sync::Arc, time::Duration};

use tonic::Code;

pub use call::{CallSignals, Tokens};
pub use facade::{FacadeMetrics, GlobalRecorder};
pub use prometheus::PrometheusMetrics;

/// Label pairs of one sample: `(key, value)`. Keys are the constants of [`labels`].
pub type Labels<'a> = &'a [(&'static str, &'a str)];

/// A metrics backend. Names are the constants of [`names`]; implementations must be cheap
/// (they run on every call) and must not block.
pub trait Metrics: Send + Sync + fmt::Debug + 'static {
    /// Adds `value` to a counter.
    fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64);

    /// Sets a gauge.
    fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64);

    /// Adds `delta` (negative to subtract) to a gauge.
    fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64);

    /// Records one observation in a histogram.
    fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64);

    /// Records a duration, in seconds, in a histogram.
    fn timing(&self, name: &'static str, labels: Labels<'_>, elapsed: Duration) {
        self.histogram(name, labels, elapsed.as_secs_f64());
    }

    /// Records what a finished call emits (see [`Recorder::call_finished`]): by default one
    /// sample at a time through the methods above; a backend may keep the handles of a
    /// call's series together ([`FacadeMetrics`] does), as long as it records the same.
    fn call_finished(&self, s: &CallSignals<'_>) {
        call::emit(self, s);
    }

    /// The Prometheus text exposition of everything recorded, for backends that keep one;
    /// the admin port serves it at `/metrics`.
    fn render(&self) -> Option<String> {
        None
    }
}

/// A backend that drops every signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopMetrics;

impl Metrics for NoopMetrics {
    fn counter(&self, _: &'static str, _: Labels<'_>, _: u64) {}
    fn gauge_set(&self, _: &'static str, _: Labels<'_>, _: f64) {}
    fn gauge_add(&self, _: &'static str, _: Labels<'_>, _: f64) {}
    fn histogram(&self, _: &'static str, _: Labels<'_>, _: f64) {}
}

/// Every metric name. `docs/metrics.md` gives each one's type, labels and meaning.
pub mod names {
    /// Counter {front_door, method, route, provider, code}: finished calls.
    pub const REQUESTS_TOTAL: &str = "ai_service_requests_total";
    /// Histogram {front_door, method, route, provider}: seconds from the call's arrival to its last
    /// message (for a stream, its end).
    pub const REQUEST_DURATION_SECONDS: &str = "ai_service_request_duration_seconds";
    /// Histogram {route, provider}: seconds from a stream's arrival to its first content.
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "ai_service_time_to_first_token_seconds";
    /// Histogram {method, provider}: seconds spent waiting on the upstream.
    pub const UPSTREAM_DURATION_SECONDS: &str = "ai_service_upstream_duration_seconds";
    /// Histogram {method}: the gateway's own time, total minus upstream.
    pub const OVERHEAD_SECONDS: &str = "ai_service_overhead_seconds";
    /// Counter {route, provider, type}: tokens, `type` = `input` | `output`, and the parts of
    /// them a provider reports: `cache_read` and `cache_write` (of the input), `reasoning` (of
    /// the output).
    pub const TOKENS_TOTAL: &str = "ai_service_tokens_total";
    /// Counter {provider, outcome}: upstream attempts, `outcome` = `ok` or an error reason.
    pub const UPSTREAM_ATTEMPTS_TOTAL: &str = "ai_service_upstream_attempts_total";
    /// Counter {route, provider}: attempts retried on the same target.
    pub const RETRIES_TOTAL: &str = "ai_service_retries_total";
    /// Counter {route, provider}: moves from a failed target (`provider`) to the next.
    pub const FAILOVERS_TOTAL: &str = "ai_service_failovers_total";
    /// Counter {route, provider}: hedged (duplicate) requests sent.
    pub const HEDGES_TOTAL: &str = "ai_service_hedges_total";
    /// Gauge {provider, endpoint}: 1 when the endpoint takes traffic, 0 when ejected.
    pub const ENDPOINT_HEALTHY: &str = "ai_service_endpoint_healthy";
    /// Gauge {provider, endpoint}: 0 closed, 1 half-open, 2 open.
    pub const BREAKER_STATE: &str = "ai_service_breaker_state";
    /// Counter {route}: answers served from the response cache.
    pub const CACHE_HITS_TOTAL: &str = "ai_service_cache_hits_total";
    /// Counter {route}: cacheable calls the cache could not answer.
    pub const CACHE_MISSES_TOTAL: &str = "ai_service_cache_misses_total";
    /// Counter: answers the in-memory cache dropped to stay within its bounds.
    pub const CACHE_EVICTIONS_TOTAL: &str = "ai_service_cache_evictions_total";
    /// Counter {operation}: cache reads (`get`) and writes (`set`) that failed (Redis down or
    /// slow, an unreadable entry); the call went on without the cache.
    pub const CACHE_ERRORS_TOTAL: &str = "ai_service_cache_errors_total";
    /// Counter {limit}: calls refused by a client's rate limit, `limit` = `requests` | `tokens`.
    pub const RATE_LIMITED_TOTAL: &str = "ai_service_rate_limited_total";
    /// Counter {operation}: rate-limit updates that failed (Redis down or slow); the call was
    /// let through.
    pub const RATE_LIMIT_ERRORS_TOTAL: &str = "ai_service_rate_limit_errors_total";
    /// Gauge {route, provider, model, client_key}: US dollars spent, only ever added to (a
    /// gauge because the `metrics` facade counts whole numbers only; `rate()` it as a counter).
    pub const COST_USD_TOTAL: &str = "ai_service_cost_usd_total";
    /// Counter {route, provider}: answered calls whose cost is unknown (no price for the model,
    /// or for a token class it used).
    pub const UNPRICED_CALLS_TOTAL: &str = "ai_service_unpriced_calls_total";
    /// Gauge {client_key, window}: dollars left in the key's budget window, after its last call.
    pub const BUDGET_REMAINING_USD: &str = "ai_service_budget_remaining_usd";
    /// Gauge {client_key, window}: tokens left in the key's budget window, after its last call.
    pub const BUDGET_REMAINING_TOKENS: &str = "ai_service_budget_remaining_tokens";
    /// Counter {budget}: calls refused by a client key's budget, `budget` = `usd` | `tokens`.
    pub const BUDGET_EXHAUSTED_TOTAL: &str = "ai_service_budget_exhausted_total";
    /// Counter {operation}: budget reads (`check`) and updates (`charge`) that failed (Redis
    /// down or slow); the call was let through uncounted.
    pub const BUDGET_ERRORS_TOTAL: &str = "ai_service_budget_errors_total";
    /// Gauge: 1 while the secret store (Vault/OpenBao) answers, 0 after a failed login,
    /// renewal or read (the secrets read last stay in force).
    pub const SECRET_STORE_UP: &str = "ai_service_secret_store_up";
    /// Counter {operation}: secret-store requests that failed, `operation` = `login` |
    /// `renew` | `read`.
    pub const SECRET_STORE_ERRORS_TOTAL: &str = "ai_service_secret_store_errors_total";
    /// Gauge: Unix time of the last complete read of every secret from the store.
    pub const SECRET_STORE_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
        "ai_service_secret_store_last_success_timestamp_seconds";
    /// Gauge: audit records waiting to be written.
    pub const AUDIT_QUEUE_DEPTH: &str = "ai_service_audit_queue_depth";
    /// Gauge: closed audit segments waiting on local disk for the backup.
    pub const BACKUP_BACKLOG_SEGMENTS: &str = "ai_service_backup_backlog_segments";
    /// Gauge: bytes of closed audit segments waiting on local disk for the backup.
    pub const BACKUP_BACKLOG_BYTES: &str = "ai_service_backup_backlog_bytes";
    /// Gauge: Unix time of the last backup pass that uploaded everything it had.
    pub const BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
        "ai_service_backup_last_success_timestamp_seconds";
    /// Counter: backup passes that failed (store unreachable or refusing).
    pub const BACKUP_FAILURES_TOTAL: &str = "ai_service_backup_failures_total";
    /// Counter: audit segments removed unbacked because the backlog was full.
    pub const BACKUP_DROPPED_SEGMENTS_TOTAL: &str = "ai_service_backup_dropped_segments_total";
    /// Gauge {method}: RPCs being handled; a stream counts until it ends.
    pub const REQUESTS_IN_FLIGHT: &str = "ai_service_requests_in_flight";
    /// Gauge: streams relaying an upstream stream to a caller.
    pub const STREAMS_IN_FLIGHT: &str = "ai_service_streams_in_flight";
    /// Gauge {version}: always 1.
    pub const BUILD_INFO: &str = "ai_service_build_info";
}

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

/// A metric's definition: name, kind, help text and, for histograms, bucket bounds.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// One of [`names`].
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Upper bounds of the histogram buckets, ascending; empty for other kinds.
    pub buckets: &'static [f64],
}

/// Buckets for whole calls and upstream calls, in seconds: 5 ms to 2 minutes.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Buckets for time to first token, in seconds: 10 ms to 30 s.
pub const TTFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
/// Buckets for the gateway's own overhead, in seconds: 10 µs to 100 ms.
pub const OVERHEAD_BUCKETS: &[f64] =
    &[0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1];

const fn def(name: &'static str, kind: Kind, help: &'static str) -> MetricDef {
    MetricDef { name, kind, help, buckets: &[] }
}

const fn histogram(name: &'static str, help: &'static str, buckets: &'static [f64]) -> MetricDef {
    MetricDef { name, kind: Kind::Histogram, help, buckets }
}

/// Every metric the gateway emits.
pub const CATALOGUE: &[MetricDef] = {
    use Kind::{Counter, Gauge};
    use names::*;
    &[
        def(
            REQUESTS_TOTAL,
            Counter,
            "Finished calls by front door, method, route, provider and gRPC code.",
        ),
        histogram(
            REQUEST_DURATION_SECONDS,
            "Seconds from a call's arrival to its end (a stream's last event).",
            LATENCY_BUCKETS,
        ),
        histogram(
            TIME_TO_FIRST_TOKEN_SECONDS,
            "Seconds from a stream's arrival to its first content event.",
            TTFT_BUCKETS,
        ),
        histogram(
            UPSTREAM_DURATION_SECONDS,
            "Seconds a call spent waiting on upstream providers (all attempts).",
            LATENCY_BUCKETS,
        ),
        histogram(
            OVERHEAD_SECONDS,
            "The gateway's own seconds per call: handler time minus upstream time.",
            OVERHEAD_BUCKETS,
        ),
        def(
            TOKENS_TOTAL,
            Counter,
            "Tokens by route, provider and type (input, output; cache_read, cache_write of the input; reasoning of the output).",
        ),
        def(UPSTREAM_ATTEMPTS_TOTAL, Counter, "Upstream attempts by provider and outcome."),
        def(RETRIES_TOTAL, Counter, "Attempts retried on the same target."),
        def(FAILOVERS_TOTAL, Counter, "Moves from a failed target to the next in the chain."),
        def(HEDGES_TOTAL, Counter, "Hedged requests sent."),
        def(ENDPOINT_HEALTHY, Gauge, "1 when an endpoint takes traffic, 0 when ejected."),
        def(BREAKER_STATE, Gauge, "Circuit breaker state: 0 closed, 1 half-open, 2 open."),
        def(CACHE_HITS_TOTAL, Counter, "Answers served from the response cache."),
        def(CACHE_MISSES_TOTAL, Counter, "Cacheable calls the cache could not answer."),
        def(
            CACHE_EVICTIONS_TOTAL,
            Counter,
            "Answers evicted from the in-memory cache by its bounds.",
        ),
        def(
            CACHE_ERRORS_TOTAL,
            Counter,
            "Cache reads and writes that failed; the call went on uncached.",
        ),
        def(RATE_LIMITED_TOTAL, Counter, "Calls refused by a client's rate limit, by limit."),
        def(
            RATE_LIMIT_ERRORS_TOTAL,
            Counter,
            "Rate-limit updates that failed; the call was let through.",
        ),
        def(
            COST_USD_TOTAL,
            Gauge,
            "US dollars spent by route, provider, priced model and client key; only increases.",
        ),
        def(UNPRICED_CALLS_TOTAL, Counter, "Answered calls whose cost is unknown."),
        def(BUDGET_REMAINING_USD, Gauge, "Dollars left in a client key's budget window."),
        def(BUDGET_REMAINING_TOKENS, Gauge, "Tokens left in a client key's budget window."),
        def(BUDGET_EXHAUSTED_TOTAL, Counter, "Calls refused by a client key's budget."),
        def(
            BUDGET_ERRORS_TOTAL,
            Counter,
            "Budget reads and updates that failed; the call was let through uncounted.",
        ),
        def(SECRET_STORE_UP, Gauge, "1 while the secret store answers, 0 after it failed."),
        def(
            SECRET_STORE_ERRORS_TOTAL,
            Counter,
            "Secret-store logins, token renewals and reads that failed, by operation.",
        ),
        def(
            SECRET_STORE_LAST_SUCCESS_TIMESTAMP_SECONDS,
            Gauge,
            "Unix time of the last complete read of the secrets from the store.",
        ),
        def(AUDIT_QUEUE_DEPTH, Gauge, "Audit records waiting to be written."),
        def(
            BACKUP_BACKLOG_SEGMENTS,
            Gauge,
            "Closed audit segments waiting on local disk for the backup.",
        ),
        def(
            BACKUP_BACKLOG_BYTES,
            Gauge,
            "Bytes of closed audit segments waiting on local disk for the backup.",
        ),
        def(
            BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS,
            Gauge,
            "Unix time of the last backup pass that uploaded everything it had.",
        ),
        def(
            BACKUP_FAILURES_TOTAL,
            Counter,
            "Backup passes that failed (store unreachable or refusing).",
        ),
        def(
            BACKUP_DROPPED_SEGMENTS_TOTAL,
            Counter,
            "Audit segments removed without a backup because the local backlog was full.",
        ),
        def(REQUESTS_IN_FLIGHT, Gauge, "RPCs being handled; a stream counts until it ends."),
        def(STREAMS_IN_FLIGHT, Gauge, "Streams relaying an upstream stream to a caller."),
        def(BUILD_INFO, Gauge, "Always 1; the version label names the build."),
    ]
};

/// The definition of `name`, if it is one of [`names`].
pub fn definition(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// Every label key, and the fixed values some labels take.
pub mod labels {
    /// The way in: `grpc`, `openai`, `anthropic`.
    pub const FRONT_DOOR: &str = "front_door";
    /// The call: `Chat`, `StreamChat` or `ListModels`.
    pub const METHOD: &str = "method";
    /// The route's configured name, `provider/*` for a passthrough, [`NONE`] before routing.
    pub const ROUTE: &str = "route";
    /// The provider's configured name, [`NONE`] when no provider was reached.
    pub const PROVIDER: &str = "provider";
    /// The gRPC status code name, e.g. `OK`, `NOT_FOUND`.
    pub const CODE: &str = "code";
    /// Token type: `input` or `output`.
    pub const TYPE: &str = "type";
    /// Attempt outcome: `ok` or an `ErrorInfo` reason such as `UPSTREAM_RATE_LIMITED`.
    pub const OUTCOME: &str = "outcome";
    /// An endpoint's configured name.
    pub const ENDPOINT: &str = "endpoint";
    /// The crate version.
    pub const VERSION: &str = "version";
    /// A shared-state operation: `get`, `set`, `check`, `add_tokens`.
    pub const OPERATION: &str = "operation";
    /// Which rate limit: `requests` or `tokens`.
    pub const LIMIT: &str = "limit";
    /// The model a price is listed under (a name from the price list, never a caller's).
    pub const MODEL: &str = "model";
    /// A configured client key's id, [`NONE`] for anonymous calls.
    pub const CLIENT_KEY: &str = "client_key";
    /// A budget's window: `day` or `month`.
    pub const WINDOW: &str = "window";
    /// Which budget: `usd` or `tokens`.
    pub const BUDGET: &str = "budget";
    /// The value of `route` or `provider` when the call never got that far.
    pub const NONE: &str = "none";
}

/// A circuit breaker's state, as the [`names::BREAKER_STATE`] gauge encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed = 0,
    /// A trial request is allowed.
    HalfOpen = 1,
    /// No traffic.
    Open = 2,
}

/// The RPCs of `aiservice.v1.ChatService` and `aiservice.v1.EmbedService`, each recorded
/// with its code and latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `ChatService.Chat`.
    Chat,
    /// `ChatService.StreamChat`.
    StreamChat,
    /// `ChatService.ListModels`.
    ListModels,
    /// `EmbedService.Embed`.
    Embed,
}

impl Method {
    /// Every method, for code that must handle each one.
    pub const ALL: [Method; 4] =
        [Method::Chat, Method::StreamChat, Method::ListModels, Method::Embed];

    /// The `method` label value: the RPC's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Chat => "Chat",
            Method::StreamChat => "StreamChat",
            Method::ListModels => "ListModels",
            Method::Embed => "Embed",
        }
    }

    /// The method of a gRPC request path, `/aiservice.v1.ChatService/<name>` or
    /// `/aiservice.v1.EmbedService/Embed`; `None` for any other service or an unknown method.
    pub fn from_path(path: &str) -> Option<Method> {
        if path == "/aiservice.v1.EmbedService/Embed" {
            return Some(Method::Embed);
        }
        let name = path.strip_prefix("/aiservice.v1.ChatService/")?;
        Method::ALL.into_iter().filter(|m| *m != Method::Embed).find(|m| m.as_str() == name)
    }
}

/// The way a call came in; each front door translates its wire format and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontDoor {
    /// `aiservice.v1.ChatService` over gRPC.
    Grpc,
    /// The same services over gRPC-Web (browsers), on the gRPC port.
    GrpcWeb,
    /// The OpenAI-compatible HTTP API.
    OpenAi,
    /// The Anthropic-compatible HTTP API.
    Anthropic,
}

impl FrontDoor {
    /// The `front_door` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontDoor::Grpc => "grpc",
            FrontDoor::GrpcWeb => "grpc_web",
            FrontDoor::OpenAi => "openai",
            FrontDoor::Anthropic => "anthropic",
        }
    }
}

/// The canonical name of a gRPC code, as the `code` label shows it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The gateway's handle on its metrics backend: one typed method per signal. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    sink: Arc<dyn Metrics>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new(Arc::new(NoopMetrics))
    }
}

impl Recorder {
    /// A recorder emitting to `sink`.
    pub fn new(sink: Arc<dyn Metrics>) -> Self {
        Recorder { sink }
    }

    /// The backend, for signals without a typed method here.
    pub fn sink(&self) -> &dyn Metrics {
        self.sink.as_ref()
    }

    /// The backend's Prometheus text, when it keeps one.
    pub fn render(&self) -> Option<String> {
        self.sink.render()
    }

    /// A call began (the in-flight gauge).
    pub fn call_started(&self, method: Method) {
        self.sink.gauge_add(names::REQUESTS_IN_FLIGHT, &[(labels::METHOD, method.as_str())], 1.0);
    }

    /// A call begun as `from` turned out to be a `to` (a door whose method is in the body).
    pub fn call_became(&self, from: Method, to: Method) {
        self.sink.gauge_add(names::REQUESTS_IN_FLIGHT, &[(labels::METHOD, from.as_str())], -1.0);
        self.call_started(to);
    }

    /// A call began relaying a stream.
    pub fn stream_started(&self) {
        self.sink.gauge_add(names::STREAMS_IN_FLIGHT, &[], 1.0);
    }

    /// A call ended: the request counter, the latency, upstream, overhead and
    /// time-to-first-token histograms, tokens and the in-flight gauges, at once
    /// ([`Metrics::call_finished`]).
    pub fn call_finished(&self, s: &CallSignals<'_>) {
        self.sink.call_finished(s);
    }

    /// Sets the build-info gauge; called once when the gateway is built.
    pub fn build_info(&self) {
        let labels = [(labels::VERSION, env!("CARGO_PKG_VERSION"))];
        self.sink.gauge_set(names::BUILD_INFO, &labels, 1.0);
    }

    /// One upstream attempt ended; `outcome` is `"ok"` or the error's `ErrorInfo` reason
    /// (a fixed set, see [`crate::provider::ProviderErrorKind::reason`]). The router calls
    /// this once per attempt.
    pub fn upstream_attempt(&self, provider: &str, outcome: &str) {
        let labels = [(labels::PROVIDER, provider), (labels::OUTCOME, outcome)];
        self.sink.counter(names::UPSTREAM_ATTEMPTS_TOTAL, &labels, 1);
    }

    /// The router retries `provider` (same target, next attempt).
    pub fn retry(&self, route: &str, provider: &str) {
        let labels = [(labels::ROUTE, route), (labels::PROVIDER, provider)];
        self.sink.counter(names::RETRIES_TOTAL, &labels, 1);
    }

    /// The router leaves the failed target `provider` for the next one in the chain.
    pub fn failover(&self, route: &str, provider: &str) {
        let labels = [(labels::ROUTE, route), (labels::PROVIDER, provider)];
        self.sink.counter(names::FAILOVERS_TOTAL, &labels, 1);
    }

    /// The router sent a hedged request to `provider`.
    pub fn hedge(&self, route: &str, provider: &str) {
        let labels = [(labels::ROUTE, route), (labels::PROVIDER, provider)];
        self.sink.counter(names::HEDGES_TOTAL, &labels, 1);
    }

    /// An endpoint was ejected (`false`) or returned (`true`).
    pub fn endpoint_health(&self, provider: &str, endpoint: &str, healthy: bool) {
        let labels = [(labels::PROVIDER, provider), (labels::ENDPOINT, endpoint)];
        self.sink.gauge_set(names::ENDPOINT_HEALTHY, &labels, if healthy { 1.0 } else { 0.0 });
    }

    /// An endpoint's breaker changed state.
    pub fn breaker_state(&self, provider: &str, endpoint: &str, state: BreakerState) {
        let labels = [(labels::PROVIDER, provider), (labels::ENDPOINT, endpoint)];
        self.sink.gauge_set(names::BREAKER_STATE, &labels, f64::from(state as u8));
    }

    /// A cache lookup for `route` hit or missed.
    pub fn cache_lookup(&self, route: &str, hit: bool) {
        let name = if hit { names::CACHE_HITS_TOTAL } else { names::CACHE_MISSES_TOTAL };
        self.sink.counter(name, &[(labels::ROUTE, route)], 1);
    }

    /// The in-memory cache evicted `count` answers to stay within its bounds.
    pub fn cache_evictions(&self, count: u64) {
        self.sink.counter(names::CACHE_EVICTIONS_TOTAL, &[], count);
    }

    /// A cache `operation` (`get` or `set`) failed; the call went on without the cache.
    pub fn cache_error(&self, operation: &'static str) {
        self.sink.counter(names::CACHE_ERRORS_TOTAL, &[(labels::OPERATION, operation)], 1);
    }

    /// A call was refused by its client's `limit` (`requests` or `tokens`).
    pub fn rate_limited(&self, limit: &'static str) {
        self.sink.counter(names::RATE_LIMITED_TOTAL, &[(labels::LIMIT, limit)], 1);
    }

    /// A rate-limit `operation` failed; the call was let through.
    pub fn rate_limit_error(&self, operation: &'static str) {
        self.sink.counter(names::RATE_LIMIT_ERRORS_TOTAL, &[(labels::OPERATION, operation)], 1);
    }

    /// An answered call cost `usd` (`None`: unknown) at the price listed for `model`.
    pub fn call_cost(
        &self,
        route: &str,
        provider: &str,
        model: &str,
        client_key: &str,
        usd: Option<f64>,
    ) {
        match usd {
            Some(usd) => {
                let labels = [
                    (labels::ROUTE, route),
                    (labels::PROVIDER, provider),
                    (labels::MODEL, model),
                    (labels::CLIENT_KEY, client_key),
                ];
                self.sink.gauge_add(names::COST_USD_TOTAL, &labels, usd);
            }
            None => {
                let labels = [(labels::ROUTE, route), (labels::PROVIDER, provider)];
                self.sink.counter(names::UNPRICED_CALLS_TOTAL, &labels, 1);
            }
        }
    }

    /// What `client_key` has left in its `window` budgets (in pico-dollars and tokens).
    pub fn budget_left(
        &self,
        client_key: &str,
        window: &str,
        picousd: Option<u64>,
        tokens: Option<u64>,
    ) {
        let labels = [(labels::CLIENT_KEY, client_key), (labels::WINDOW, window)];
        // Precision loss above 2^53 is not a concern for what is left of a budget.
        #[allow(clippy::cast_precision_loss)]
        if let Some(pico) = picousd {
            self.sink.gauge_set(names::BUDGET_REMAINING_USD, &labels, pico as f64 / 1e12);
        }
        #[allow(clippy::cast_precision_loss)]
        if let Some(tokens) = tokens {
            self.sink.gauge_set(names::BUDGET_REMAINING_TOKENS, &labels, tokens as f64);
        }
    }

    /// A call was refused by its key's `budget` (`usd` or `tokens`).
    pub fn budget_exhausted(&self, budget: &'static str) {
        self.sink.counter(names::BUDGET_EXHAUSTED_TOTAL, &[(labels::BUDGET, budget)], 1);
    }

    /// A budget `operation` (`check` or `charge`) failed; the call was let through.
    pub fn budget_error(&self, operation: &'static str) {
        self.sink.counter(names::BUDGET_ERRORS_TOTAL, &[(labels::OPERATION, operation)], 1);
    }

    /// The audit sink's queue holds `depth` records.
    pub fn audit_queue_depth(&self, depth: usize) {
        // Precision loss above 2^53 records is not a concern.
        #[allow(clippy::cast_precision_loss)]
        self.sink.gauge_set(names::AUDIT_QUEUE_DEPTH, &[], depth as f64);
    }

    /// The backup's local backlog.
    #[allow(clippy::cast_precision_loss)]
    pub fn backup_backlog(&self, segments: usize, bytes: u64) {
        self.sink.gauge_set(names::BACKUP_BACKLOG_SEGMENTS, &[], segments as f64);
        self.sink.gauge_set(names::BACKUP_BACKLOG_BYTES, &[], bytes as f64);
    }

    /// A backup pass uploaded everything it had, at `unix_seconds`.
    pub fn backup_succeeded(&self, unix_seconds: f64) {
        self.sink.gauge_set(names::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS, &[], unix_seconds);
    }

    /// A backup pass failed.
    pub fn backup_failed(&self) {
        self.sink.counter(names::BACKUP_FAILURES_TOTAL, &[], 1);
    }

    /// A segment was removed unbacked (backlog full).
    pub fn backup_segment_dropped(&self) {
        self.sink.counter(names::BACKUP_DROPPED_SEGMENTS_TOTAL, &[], 1);
    }

    /// The secret store answered a complete refresh: it is up, as of now.
    pub fn secret_store_ok(&self) {
        self.sink.gauge_set(names::SECRET_STORE_UP, &[], 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.sink.gauge_set(names::SECRET_STORE_LAST_SUCCESS_TIMESTAMP_SECONDS, &[], now);
    }

    /// A secret-store `operation` (`login`, `renew` or `read`) failed; the secrets in force stay.
    pub fn secret_store_error(&self, operation: &'static str) {
        self.sink.gauge_set(names::SECRET_STORE_UP, &[], 0.0);
        self.sink.counter(names::SECRET_STORE_ERRORS_TOTAL, &[(labels::OPERATION, operation)], 1);
    }
}
