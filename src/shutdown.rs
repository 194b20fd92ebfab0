//! Shutdown signals. Kubernetes sends SIGTERM, a terminal sends SIGINT; either starts the
//! drain that [`crate::server`] runs: NOT_SERVING, then no new calls, then a grace period for
//! the calls in flight.

use std::io;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; draining"),
            _ = int.recv() => tracing::info!("SIGINT received; draining"),
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        tracing::info!("interrupt received; draining");
        Ok(())
    }
}
