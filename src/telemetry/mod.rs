//! Logging and trace export set-up.
//!
//! Logs: `tracing` to stderr (stdout is left to the audit sink), as text or JSON, filtered by
//! `RUST_LOG` when it is set and by `log.level` otherwise, every line passed through the
//! redactor ([`crate::redact`]) and written by [`lines`], the log layer.
//!
//! Each RPC runs in one `rpc` span (opened by [`crate::call::record`]) with the fields
//! `request_id`, `method`, `trace_id`, `model`, `route`, `provider`, `upstream_model`, `code`,
//! `input_tokens`, `output_tokens` and `error`, and ends with one `rpc finished` (or
//! `rpc failed`) event carrying `latency_ms`, `upstream_ms` and `ttft_ms`. In JSON the span's
//! fields appear under `"span"` of every event inside it.
//!
//! Traces: with `tracing.otlp` configured, [`export::TraceExport`] sends that `rpc` span (as a
//! server span) and one client span per upstream attempt to an OpenTelemetry collector; see
//! [`spans`] for what they carry. The export layer has its own filter, so `RUST_LOG` and
//! `log.level` decide what is logged, never what is exported. Without `tracing.otlp` the
//! subscriber is the plain log subscriber, exactly as cheap as before export existed.

pub mod export;
mod lines;
pub mod spans;

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::FilterExt, fmt::MakeWriter, layer::SubscriberExt,
    util::SubscriberInitExt,
};

pub use export::TraceExport;

use crate::config::LogConfig;
use lines::LogLines;

/// Installs the global subscriber, exporting spans through `export` when there is one (build
/// it first, inside the runtime). Calling it twice is harmless: the second call is ignored.
pub fn init(log: &LogConfig, export: Option<&TraceExport>) {
    // Already installed (an embedding service, or a test that set one up): keep theirs.
    let subscriber = match export {
        None => subscriber(log, std::io::stderr),
        Some(export) => exporting_subscriber(log, export, std::io::stderr),
    };
    drop(subscriber.try_init());
    if let Some(export) = export {
        export.log_start();
    }
}

/// The log filter: `RUST_LOG` when set, else `log.level`.
fn log_filter(log: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The subscriber [`init`] installs without export, writing to `writer`; tests capture the
/// logs with it.
pub fn subscriber<W>(log: &LogConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Box::new(
        Registry::default().with(LogLines::new(log.format, writer).with_filter(log_filter(log))),
    )
}

/// The subscriber [`init`] installs with export: the same log lines as [`subscriber`], and the
/// export layer beside them. Each has its own filter: the log filter decides what is written,
/// [`export::ExportedSpans`] what is exported (a `RUST_LOG=warn` still exports every call).
pub fn exporting_subscriber<W>(
    log: &LogConfig,
    export: &TraceExport,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // Attempt spans exist for the collector only; the log lines stay as they are without export.
    let logged = log_filter(log).and(spans::not_export_only());
    let lines = LogLines::new(log.format, writer).with_filter(logged);
    Box::new(Registry::default().with(lines).with(export.layer()))
}
