//! The gateway's error type and the one place where errors become gRPC statuses.
//!
//! Every failure a caller can see is an [`Error`]. [`From<Error> for tonic::Status`] picks the
//! canonical code from DESIGN.md's table and attaches the rich details clients decode:
//! `google.rpc.ErrorInfo` always (domain [`ERROR_DOMAIN`], an UPPER_SNAKE reason, metadata such
//! as the provider), `BadRequest` field violations for invalid input and `RetryInfo` for rate
//! limits. Nothing else builds a `Status` from an internal error.

use std::{collections::HashMap, fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::provider::{ProviderError, ProviderErrorKind};

/// The `domain` of every `google.rpc.ErrorInfo` this service returns.
pub const ERROR_DOMAIN: &str = "ai-service";

/// One problem with one field of a request, as `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `messages[0].role`.
    pub field: String,
    /// What is wrong with it, for a human.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation { field: field.into(), description: description.into() }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Everything that can go wrong with a call, as the caller will see it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; each violation names a field.
    #[error("invalid request: {}", join(.0))]
    InvalidRequest(Vec<FieldViolation>),

    /// The request message is larger than `server.max_request_bytes`; refused before decoding.
    #[error("the request message is too large for this gateway (at most {limit} bytes): {detail}")]
    RequestTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
        /// What the decoder saw.
        detail: String,
    },

    /// The request's bytes are no valid message of the method's request type.
    #[error("the request could not be decoded: {0}")]
    MalformedRequest(String),

    /// The caller presented no client key, or an unknown one.
    #[error("{0}")]
    Unauthenticated(&'static str),

    /// The caller's key may not call this route.
    #[error("this client key may not call {route:?}")]
    PermissionDenied {
        /// The route asked for.
        route: String,
    },

    /// The gateway is at its concurrency limit and sheds the call.
    #[error("the gateway is at capacity ({limit} calls in flight); retry shortly")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },

    /// No route or model of that name.
    #[error(
        "model {model:?} is not served by this gateway; ListModels lists the models you can use"
    )]
    ModelNotFound {
        /// The name the caller asked for.
        model: String,
    },

    /// The caller's deadline passed before an answer was complete.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),

    /// An HTTP request's body did not arrive within `server.http.body_timeout` (HTTP 408).
    #[error(
        "deadline exceeded: the request body did not arrive within {after:?} (server.http.body_timeout)"
    )]
    BodyTimeout {
        /// The configured wait.
        after: Duration,
    },

    /// The server stopped (its shutdown grace period ran out) before the call finished.
    #[error("the server stopped before the call finished; retry on another replica")]
    Stopped,

    /// Every attempt failed with a retryable error, or no endpoint could take the call.
    #[error("{}", exhausted_message(route, attempts, *no_endpoint, *cooling_for))]
    Exhausted {
        /// The route called.
        route: String,
        /// Each failed attempt, in order.
        attempts: Vec<AttemptFailure>,
        /// True when the call ended because no endpoint was available (open breakers,
        /// `Retry-After` cool-downs).
        no_endpoint: bool,
        /// When every endpoint was cooling down after a rate limit: the shortest wait left.
        cooling_for: Option<Duration>,
    },

    /// The caller's client key used up one of its rate limits; retry after `retry_after`.
    #[error("rate limit exceeded: too many {limit} this minute for this client; retry in {}ms", retry_after.as_millis())]
    RateLimited {
        /// Which limit: `requests` or `tokens`.
        limit: &'static str,
        /// When the window that refused the call ends.
        retry_after: Duration,
    },

    /// The caller's client key has spent its budget for the window; calls start again when
    /// the window ends.
    #[error("{0}")]
    BudgetExhausted(Box<BudgetRefusal>),

    /// The provider failed, after whatever retries and failover applied.
    #[error("{0}")]
    Provider(#[from] ProviderError),

    /// A bug. The message is logged; the caller sees only that it was internal.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Which budget of which client key refused a call, and how far it was spent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "budget exhausted: client key {key:?} has spent {spent} of its {limit} {budget} budget this {window} (UTC); it renews at {renews}"
)]
pub struct BudgetRefusal {
    /// The client key's id.
    pub key: String,
    /// Which budget: `usd` or `tokens`.
    pub budget: &'static str,
    /// `day` or `month`.
    pub window: &'static str,
    /// What was spent, as shown (`$12.345678` or a token count).
    pub spent: String,
    /// The budget, shown the same way.
    pub limit: String,
    /// When the window ends, RFC 3339 UTC.
    pub renews: String,
}

/// One failed attempt of a call, for the caller's error details and the logs.
#[derive(Clone, Debug)]
pub struct AttemptFailure {
    /// The target's provider.
    pub provider: String,
    /// The target's upstream model.
    pub model: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// What went wrong.
    pub error: ProviderError,
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}@{}: {}",
            self.provider,
            self.model,
            self.endpoint,
            self.error.kind.reason()
        )?;
        if let Some(status) = self.error.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.error.message)
    }
}

fn exhausted_message(
    route: &str,
    attempts: &[AttemptFailure],
    no_endpoint: bool,
    cooling_for: Option<Duration>,
) -> String {
    let listed: Vec<String> = attempts.iter().map(ToString::to_string).collect();
    match (no_endpoint, attempts.is_empty()) {
        (true, true) if cooling_for.is_some() => format!(
            "route {route:?} is rate limited upstream: every endpoint asked to wait (Retry-After)"
        ),
        (true, true) => format!(
            "route {route:?} has no endpoint available now (every breaker is open or cooling down)"
        ),
        (true, false) => format!(
            "route {route:?} has no endpoint left to try after {} failed attempt(s): {}",
            attempts.len(),
            listed.join("; ")
        ),
        (false, _) => format!(
            "all {} attempt(s) on route {route:?} failed: {}",
            attempts.len(),
            listed.join("; ")
        ),
    }
}

/// Whether an exhausted call failed only on rate limits: every attempt was a 429, or no attempt
/// could be made because every endpoint was cooling down after one.
fn rate_limited(attempts: &[AttemptFailure], cooling_for: Option<Duration>) -> bool {
    if attempts.is_empty() {
        cooling_for.is_some()
    } else {
        attempts.iter().all(|a| a.error.kind == ProviderErrorKind::RateLimited)
    }
}

fn join(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl Error {
    /// A request with a single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidRequest(vec![FieldViolation::new(field, description)])
    }

    /// The message a caller is told, whatever the front door: redacted (provider messages
    /// pass on), and for a bug only that it was internal (the call's record logs the detail).
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error".to_owned(),
            other => crate::redact::redact(&other.to_string()).into_owned(),
        }
    }

    /// How long a caller should wait before trying again, for the errors that say so (rate
    /// limits, the gateway at capacity): gRPC's `RetryInfo`, HTTP's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            Error::Provider(p) if p.kind == ProviderErrorKind::RateLimited => {
                Some(p.retry_after.unwrap_or(Duration::from_secs(1)))
            }
            Error::Exhausted { attempts, cooling_for, .. }
                if rate_limited(attempts, *cooling_for) =>
            {
                // What the provider said, or else how long the cool-down it asked for still runs.
                let said = attempts.iter().filter_map(|a| a.error.retry_after).min();
                Some(said.or(*cooling_for).unwrap_or(Duration::from_secs(1)))
            }
            Error::Overloaded { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidRequest(_) | Error::MalformedRequest(_) => Code::InvalidArgument,
            Error::RequestTooLarge { .. } => Code::OutOfRange,
            Error::ModelNotFound { .. } => Code::NotFound,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied { .. } => Code::PermissionDenied,
            Error::Overloaded { .. } => Code::ResourceExhausted,
            Error::DeadlineExceeded(_) | Error::BodyTimeout { .. } => Code::DeadlineExceeded,
            Error::Stopped => Code::Unavailable,
            Error::Exhausted { attempts, cooling_for, .. }
                if rate_limited(attempts, *cooling_for) =>
            {
                Code::ResourceExhausted
            }
            Error::Exhausted { .. } => Code::Unavailable,
            Error::RateLimited { .. } | Error::BudgetExhausted(_) => Code::ResourceExhausted,
            Error::Provider(err) => provider_code(err.kind),
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The `ErrorInfo.reason`: a stable UPPER_SNAKE name clients can match on.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "INVALID_REQUEST",
            Error::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            Error::MalformedRequest(_) => "MALFORMED_REQUEST",
            Error::ModelNotFound { .. } => "MODEL_NOT_FOUND",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::PermissionDenied { .. } => "ROUTE_NOT_ALLOWED",
            Error::Overloaded { .. } => "OVERLOADED",
            Error::DeadlineExceeded(_) | Error::BodyTimeout { .. } => "DEADLINE_EXCEEDED",
            Error::Stopped => "SERVER_STOPPED",
            // The last failure says most about why the call failed (a rate limit, when every
            // attempt was one); every attempt is listed in the metadata.
            Error::Exhausted { attempts, no_endpoint, cooling_for, .. } => match attempts.last() {
                Some(last) => last.error.kind.reason(),
                None if cooling_for.is_some() => "UPSTREAM_RATE_LIMITED",
                None if *no_endpoint => "NO_ENDPOINT_AVAILABLE",
                None => "ALL_ATTEMPTS_FAILED",
            },
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::BudgetExhausted(_) => "BUDGET_EXHAUSTED",
            Error::Provider(err) => err.kind.reason(),
            Error::Internal(_) => "INTERNAL",
        }
    }
}

fn provider_code(kind: ProviderErrorKind) -> Code {
    use ProviderErrorKind as K;
    match kind {
        K::Connect | K::Timeout | K::Server | K::Overloaded | K::InvalidResponse | K::StreamCut => {
            Code::Unavailable
        }
        K::RateLimited => Code::ResourceExhausted,
        K::Rejected | K::Unsupported => Code::InvalidArgument,
        K::Auth => Code::FailedPrecondition,
        K::NotFound => Code::NotFound,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let code = err.code();
        let mut metadata = HashMap::new();
        if let Error::ModelNotFound { model } = &err {
            metadata.insert("model".to_owned(), model.clone());
        }
        if let Error::PermissionDenied { route } = &err {
            metadata.insert("route".to_owned(), route.clone());
        }
        if let Error::RequestTooLarge { limit, .. } = &err {
            metadata.insert("limit_bytes".to_owned(), limit.to_string());
        }
        if let Error::RateLimited { limit, .. } = &err {
            metadata.insert("limit".to_owned(), (*limit).to_owned());
        }
        if let Error::BudgetExhausted(refusal) = &err {
            let BudgetRefusal { key, budget, window, spent, limit, renews } = refusal.as_ref();
            for (k, v) in [("client_key", key.as_str()), ("budget", budget), ("window", window)] {
                metadata.insert(k.to_owned(), v.to_owned());
            }
            for (k, v) in [("spent", spent), ("limit", limit), ("renews", renews)] {
                metadata.insert(k.to_owned(), v.clone());
            }
        }
        if let Error::Provider(p) = &err {
            metadata.insert("provider".to_owned(), p.provider.clone());
            if let Some(status) = p.status {
                metadata.insert("upstream_status".to_owned(), status.to_string());
            }
        }
        if let Error::Exhausted { route, attempts, .. } = &err {
            metadata.insert("route".to_owned(), route.clone());
            metadata.insert("attempts".to_owned(), attempts.len().to_string());
            for (i, attempt) in attempts.iter().enumerate() {
                metadata.insert(format!("attempt_{}", i + 1), attempt.to_string());
            }
            if let Some(last) = attempts.last() {
                metadata.insert("provider".to_owned(), last.provider.clone());
                if let Some(status) = last.error.status {
                    metadata.insert("upstream_status".to_owned(), status.to_string());
                }
            }
        }
        let message = err.public_message();

        let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, metadata);
        match &err {
            Error::InvalidRequest(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
            }
            Error::Provider(p) if p.kind == ProviderErrorKind::Unsupported => {
                if let Some(field) = &p.field {
                    details.add_bad_request_violation(field.clone(), p.message.clone());
                }
            }
            Error::BudgetExhausted(refusal) => {
                let BudgetRefusal { key, budget, window, spent, limit, renews } = refusal.as_ref();
                details.add_quota_failure_violation(
                    format!("client_key:{key}/budget:{budget}"),
                    format!("{window} budget (UTC) spent: {spent} of {limit}; renews at {renews}"),
                );
            }
            _ => {}
        }
        if let Some(after) = err.retry_after() {
            details.set_retry_info(Some(after));
        }
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every variant, reaching every reason: each provider error kind alone and as
    /// the last of an exhausted call's attempts, and each way a call can be exhausted.
    fn every_error() -> Vec<Error> {
        let attempt = |kind| AttemptFailure {
            provider: "p".into(),
            model: "m".into(),
            endpoint: "e".into(),
            error: ProviderError::new("p", kind, "failed"),
        };
        let exhausted = |attempts, no_endpoint, cooling_for| Error::Exhausted {
            route: "r".into(),
            attempts,
            no_endpoint,
            cooling_for,
        };
        let mut errors = vec![
            Error::invalid("messages", "empty"),
            Error::RequestTooLarge { limit: 1, detail: "2 bytes".into() },
            Error::MalformedRequest("not protobuf".into()),
            Error::Unauthenticated("no key"),
            Error::PermissionDenied { route: "r".into() },
            Error::Overloaded { limit: 1 },
            Error::ModelNotFound { model: "m".into() },
            Error::DeadlineExceeded("late".into()),
            Error::BodyTimeout { after: Duration::from_secs(1) },
            Error::Stopped,
            exhausted(Vec::new(), true, Some(Duration::from_secs(1))),
            exhausted(Vec::new(), true, None),
            exhausted(Vec::new(), false, None),
            Error::RateLimited { limit: "requests", retry_after: Duration::from_secs(1) },
            Error::BudgetExhausted(Box::new(BudgetRefusal {
                key: "k".into(),
                budget: "usd",
                window: "day",
                spent: "$1".into(),
                limit: "$1".into(),
                renews: "2025-01-02T00:00:00Z".into(),
            })),
            Error::Internal("bug".into()),
        ];
        for kind in ProviderErrorKind::ALL {
            errors.push(Error::Provider(ProviderError::new("p", kind, "failed")));
            // Only retryable failures are collected as attempts; any may come last.
            if kind.is_retryable() {
                let before = attempt(ProviderErrorKind::Server);
                errors.push(exhausted(vec![attempt(kind)], false, None));
                errors.push(exhausted(vec![before, attempt(kind)], false, None));
            }
        }
        errors
    }

    /// Which variant an error is; a new variant fails to compile here until it gets an arm and
    /// an example in [`every_error`].
    fn variant(err: &Error) -> usize {
        match err {
            Error::InvalidRequest(_) => 0,
            Error::RequestTooLarge { .. } => 1,
            Error::MalformedRequest(_) => 2,
            Error::Unauthenticated(_) => 3,
            Error::PermissionDenied { .. } => 4,
            Error::Overloaded { .. } => 5,
            Error::ModelNotFound { .. } => 6,
            Error::DeadlineExceeded(_) => 7,
            Error::Stopped => 8,
            Error::Exhausted { .. } => 9,
            Error::RateLimited { .. } => 10,
            Error::Provider(_) => 11,
            Error::Internal(_) => 12,
            Error::BudgetExhausted(_) => 14,
            Error::BodyTimeout { .. } => 13,
        }
    }

    /// Likewise for provider error kinds and [`ProviderErrorKind::ALL`].
    fn kind_index(kind: ProviderErrorKind) -> usize {
        use ProviderErrorKind as K;
        match kind {
            K::Connect => 0,
            K::Timeout => 1,
            K::RateLimited => 2,
            K::Server => 3,
            K::Overloaded => 4,
            K::InvalidResponse => 5,
            K::StreamCut => 6,
            K::Rejected => 7,
            K::Auth => 8,
            K::NotFound => 9,
            K::Unsupported => 10,
        }
    }

    #[test]
    fn the_examples_cover_every_variant_and_every_kind() {
        let variants: std::collections::BTreeSet<usize> =
            every_error().iter().map(variant).collect();
        assert_eq!(variants, (0..15).collect());
        let kinds: std::collections::BTreeSet<usize> =
            ProviderErrorKind::ALL.into_iter().map(kind_index).collect();
        assert_eq!(kinds, (0..ProviderErrorKind::ALL.len()).collect());
    }

    /// The README's error table is the reference callers match reasons against: every reason
    /// the code can return must be in it, with the code it comes with.
    #[test]
    fn the_readme_lists_every_reason_with_its_code() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("\n## Errors\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has an Errors section");
        for err in every_error() {
            let reason = err.reason();
            let code = crate::metrics::code_name(err.code());
            let listed = table.lines().any(|line| {
                line.starts_with('|')
                    && line.contains(&format!("`{reason}`"))
                    && line.contains(code)
            });
            assert!(listed, "README's error table has no row for {reason} with {code} ({err})");
        }
    }

    #[test]
    fn invalid_request_carries_every_violation() {
        let err = Error::InvalidRequest(vec![
            FieldViolation::new("messages", "at least one message is required"),
            FieldViolation::new("generation.max_tokens", "must be positive, got -1"),
        ]);
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("generation.max_tokens: must be positive"));
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "INVALID_REQUEST");
        assert_eq!(info.domain, ERROR_DOMAIN);
        let fields: Vec<_> =
            details.bad_request().unwrap().field_violations.iter().map(|v| &v.field).collect();
        assert_eq!(fields, ["messages", "generation.max_tokens"]);
    }

    #[test]
    fn internal_errors_do_not_leak_their_detail() {
        let status = Status::from(Error::Internal("lock poisoned at 0xdeadbeef".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn local_rate_limits_carry_retry_info_and_their_reason() {
        let err = Error::RateLimited { limit: "requests", retry_after: Duration::from_secs(12) };
        let status = Status::from(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(Duration::from_secs(12)));
        let info = details.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["limit"].as_str()),
            ("RATE_LIMITED", "requests")
        );
    }

    #[test]
    fn rate_limits_carry_retry_info() {
        let err = ProviderError::new("openai", ProviderErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_secs(7));
        let status = Status::from(Error::from(err));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(Duration::from_secs(7)));
        assert_eq!(details.error_info().unwrap().metadata["provider"], "openai");
    }
}
