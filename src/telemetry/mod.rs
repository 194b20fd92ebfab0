//! Logging and trace export set-up.
//!
//! Logs: `tracing` to stderr (stdout is left to the audit sink), as text or JSON, filtered by
//! `RUST_LOG` when it is set and by `log.level` otherwise, every line passed through the
//! redactor ([`crate::redact`]) and written by [`lines`], the log layer, in batches
//! ([`batch`]: `info` lines wait up to `log.flush_interval`, warnings and errors never).
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

mod batch;
pub mod export;
mod lines;
pub mod spans;

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{FilterExt, Targets},
    fmt::MakeWriter,
    layer::{Filter, SubscriberExt},
    util::SubscriberInitExt,
};

pub use batch::LogFlush;
pub use export::TraceExport;

use crate::config::LogConfig;
use batch::Batched;
use lines::LogLines;

/// Installs the global subscriber, exporting spans through `export` when there is one (build
/// it first, inside the runtime), its lines written to stderr in batches ([`batch`]). Hold
/// the returned guard until the process ends: dropping it writes the lines still waiting.
/// Calling it twice is harmless: the second call is ignored.
pub fn init(log: &LogConfig, export: Option<&TraceExport>) -> LogFlush {
    let stderr = Batched::start(std::io::stderr(), log.flush_interval);
    let subscriber = match export {
        None => subscriber(log, stderr.clone()),
        Some(export) => exporting_subscriber(log, export, stderr.clone()),
    };
    // Already installed (an embedding service, or a test that set one up): keep theirs.
    if subscriber.try_init().is_err() {
        stderr.close();
        return LogFlush::none();
    }
    // A panic's message follows the lines logged before it.
    let flusher = stderr.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flusher.flush_unless_busy();
        previous(info);
    }));
    if let Some(export) = export {
        export.log_start();
    }
    stderr.guard()
}

/// The log filter: `RUST_LOG` when it is set and valid, else `log.level` when valid, else
/// `info`. Directives that name only targets and levels (`info`, `info,hyper=warn`) become a
/// [`Targets`] filter, which decides once per callsite; span and field directives
/// (`[rpc{route=fast}]=debug`) need an [`EnvFilter`], which also follows every span's enters,
/// exits and records (a lock and a look-up each, several times a call).
enum LogFilter {
    Targets(Targets),
    Env(Box<EnvFilter>),
}

impl LogFilter {
    /// The filter, whichever it is, as the log layer takes it.
    fn boxed(self) -> Box<dyn Filter<Registry> + Send + Sync> {
        match self {
            LogFilter::Targets(filter) => Box::new(filter),
            LogFilter::Env(filter) => Box::new(*filter),
        }
    }
}

fn log_filter(log: &LogConfig) -> LogFilter {
    filter_of(std::env::var(EnvFilter::DEFAULT_ENV).ok(), &log.level)
}

/// The filter of `env` (`RUST_LOG`'s value) and `level` (`log.level`); see [`LogFilter`].
fn filter_of(env: Option<String>, level: &str) -> LogFilter {
    let valid = |directives: &str| EnvFilter::builder().parse(directives).is_ok();
    let directives = env
        .filter(|d| valid(d))
        .or_else(|| valid(level).then(|| level.to_owned()))
        .unwrap_or_else(|| "info".to_owned());
    if !directives.contains(['[', '{', '}', ']'])
        && let Ok(targets) = directives.parse::<Targets>()
    {
        return LogFilter::Targets(targets);
    }
    LogFilter::Env(Box::new(EnvFilter::builder().parse_lossy(directives)))
}

/// The subscriber [`init`] installs without export, writing to `writer`; tests capture the
/// logs with it.
pub fn subscriber<W>(log: &LogConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    logging(log_filter(log), LogLines::new(log.format, writer))
}

fn logging<W>(filter: LogFilter, lines: LogLines<W>) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Box::new(Registry::default().with(lines.with_filter(filter.boxed())))
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
    let logged = log_filter(log).boxed().and(spans::not_export_only());
    let lines = LogLines::new(log.format, writer).with_filter(logged);
    Box::new(Registry::default().with(lines).with(export.layer()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::LogFormat;
    use lines::tests::Captured;

    /// Which of a fixed set of events `filter` lets through, by their messages.
    fn let_through(filter: LogFilter) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = logging(filter, LogLines::new(LogFormat::Json, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "ai_service::call", "call info");
            tracing::debug!(target: "ai_service::call", "call debug");
            tracing::warn!(target: "hyper::proto", "hyper warn");
            tracing::info!(target: "hyper::proto", "hyper info");
            tracing::info_span!("rpc", route = "fast").in_scope(|| {
                tracing::debug!(target: "ai_service::router", "router debug in fast");
            });
        });
        captured
            .text()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].to_string())
            .map(|m| m.trim_matches('"').to_owned())
            .collect()
    }

    #[test]
    fn plain_directives_filter_by_target_and_level_as_before() {
        for (env, level) in [(None, "info,hyper=warn"), (Some("info,hyper=warn"), "error")] {
            let filter = filter_of(env.map(str::to_owned), level);
            assert!(matches!(filter, LogFilter::Targets(_)), "{env:?} {level}");
            assert_eq!(let_through(filter), ["call info", "hyper warn"], "{env:?} {level}");
        }
    }

    #[test]
    fn span_directives_keep_the_env_filter_and_bad_ones_fall_back() {
        let filter = filter_of(Some("info,hyper=warn,[rpc{route=fast}]=debug".to_owned()), "info");
        assert!(matches!(filter, LogFilter::Env(_)));
        assert_eq!(let_through(filter), ["call info", "hyper warn", "router debug in fast"]);
        // An invalid RUST_LOG gives way to log.level, an invalid level to `info`.
        let filter = filter_of(Some("=!=".to_owned()), "warn");
        assert_eq!(let_through(filter), ["hyper warn"]);
        let filter = filter_of(None, "=!=");
        assert!(matches!(filter, LogFilter::Targets(_)));
        assert_eq!(let_through(filter), ["call info", "hyper warn", "hyper info"]);
    }
}
