//! Logging set-up: `tracing` to stderr (stdout is left to the audit sink), as text or JSON,
//! filtered by `RUST_LOG` when it is set and by `log.level` otherwise.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it twice is harmless: the second call is ignored.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed (an embedding service, or a test that set one up): keep theirs.
    drop(result);
}
