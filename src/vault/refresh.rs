//! The gateway's Vault loop while it serves: renew the token when due, re-read every secret
//! each `vault.refresh_interval`, and on failure keep the secrets in force, log, count the
//! failure and try again with doubling back-off (1 s up to the refresh interval).

use std::time::Duration;

use tokio::time::Instant;

use crate::{keys::KeyRing, metrics::Recorder};

/// First wait after a failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Re-reads the secrets of `ring` every `interval` (and renews the token between reads) until
/// dropped; does nothing when the ring has no Vault session.
pub async fn run(ring: KeyRing, interval: Duration, metrics: Recorder) {
    let Some(store) = ring.store.clone() else { return };
    // The gateway's own session: log in (or look the token up) now, so renewal is scheduled
    // from the start.
    let mut failures: u32 = 0;
    if let Err(e) = store.token().await {
        tracing::error!(error = %e, "cannot log in to Vault; secrets in force stay");
        metrics.secret_store_error(e.operation.as_str());
        failures = 1;
    }
    let mut next_read = Instant::now() + interval;
    loop {
        let now = Instant::now();
        let wait = if failures > 0 {
            retry_after(failures, interval)
        } else {
            let until_read = next_read.saturating_duration_since(now);
            store.renewal_in().await.map_or(until_read, |renew| renew.min(until_read))
        };
        tokio::time::sleep(wait).await;
        if failures > 0 || Instant::now() >= next_read {
            if refresh(&ring, &metrics).await {
                if failures > 0 {
                    tracing::info!(failures, "the secret store answers again");
                }
                failures = 0;
                next_read = Instant::now() + interval;
            } else {
                failures = failures.saturating_add(1);
            }
        } else if let Err(e) = store.token().await {
            tracing::error!(error = %e, "cannot renew the Vault token; secrets in force stay");
            metrics.secret_store_error(e.operation.as_str());
            failures = failures.saturating_add(1);
        }
    }
}

/// One re-read of every secret (what SIGHUP does); false when it failed (logged and counted).
pub async fn refresh(ring: &KeyRing, metrics: &Recorder) -> bool {
    if ring.store.is_none() {
        return true;
    }
    match ring.refresh_vault().await {
        Ok(rotated) => {
            metrics.secret_store_ok();
            if rotated > 0 {
                tracing::info!(rotated, "secrets re-read from Vault");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot re-read secrets from Vault; keeping the ones in force");
            metrics.secret_store_error(e.operation.as_str());
            false
        }
    }
}

/// The wait before retry number `failures`: 1 s, doubling, at most `interval`.
fn retry_after(failures: u32, interval: Duration) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(interval).max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let minute = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n, minute).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_after(u32::MAX, minute), minute);
        assert_eq!(retry_after(3, Duration::from_millis(200)), Duration::from_millis(200));
    }
}
