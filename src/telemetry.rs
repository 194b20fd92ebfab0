//! Logging set-up: `tracing` to stderr (stdout is left to the audit sink), as text or JSON,
//! filtered by `RUST_LOG` when it is set and by `log.level` otherwise, every line passed
//! through the redactor ([`crate::redact`]).
//!
//! Each RPC runs in one `rpc` span (opened by [`crate::metrics::rpc`]) with the fields
//! `request_id`, `method`, `trace_id`, `model`, `route`, `provider`, `upstream_model`, `code`,
//! `input_tokens`, `output_tokens` and `error`, and ends with one `rpc finished` (or
//! `rpc failed`) event carrying `latency_ms`, `upstream_ms` and `ttft_ms`. In JSON the span's
//! fields appear under `"span"` of every event inside it.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, util::SubscriberInitExt};

use crate::{
    config::{LogConfig, LogFormat},
    redact::Redacting,
};

/// Installs the global subscriber. Calling it twice is harmless: the second call is ignored.
pub fn init(log: &LogConfig) {
    // Already installed (an embedding service, or a test that set one up): keep theirs.
    drop(subscriber(log, std::io::stderr).try_init());
}

/// The subscriber [`init`] installs, writing to `writer`; tests capture the logs with it.
pub fn subscriber<W>(log: &LogConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Every event passes the redactor, whatever the writer.
    let builder = fmt().with_env_filter(filter).with_writer(Redacting(writer));
    match log.format {
        LogFormat::Json => {
            Box::new(builder.json().flatten_event(true).with_current_span(true).finish())
        }
        LogFormat::Text => Box::new(builder.finish()),
    }
}
