//! One endpoint of a target's pool and its health: passive ejection, a circuit breaker,
//! `Retry-After` cool-downs and a latency moving average.
//!
//! The breaker is the single switch that takes an endpoint out of rotation:
//! - **closed**: the endpoint takes calls. It opens after `eject_after` consecutive failures,
//!   or when the failure ratio over the last `breaker_window` calls reaches
//!   `breaker_failure_ratio` (once `breaker_min_calls` calls were seen).
//! - **open**: no calls until the cool-down ends. The cool-down doubles each time the endpoint
//!   is ejected again without a success in between, up to `eject_cooldown_max`.
//! - **half-open**: after the cool-down, one probe call is let through; success closes the
//!   breaker, failure opens it again for longer.
//!
//! A 429 with `Retry-After` is not a health failure: it cools the endpoint for that long.
//! Failures that are the caller's (400, …) count as successes here: the endpoint answered.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    config::HealthPolicy,
    provider::{ProviderError, ProviderErrorKind, SharedProvider},
};

pub use crate::metrics::BreakerState;

/// An endpoint: an adapter bound to one address and key, with its health.
#[derive(Debug)]
pub struct Endpoint {
    /// Unique within its pool; `default` for a target without a configured pool.
    pub name: String,
    /// Relative share of the traffic.
    pub weight: u32,
    /// The adapter bound to this endpoint's address and key.
    pub provider: SharedProvider,
    policy: Arc<HealthPolicy>,
    state: Mutex<State>,
    in_flight: AtomicU32,
    /// Active probes: whether the endpoint passes them (true without probes), and the run
    /// of passing (positive) or failing (negative) probes.
    probed: Mutex<(bool, i64)>,
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    consecutive_failures: u32,
    /// Ejections since the last success; the cool-down doubles with each.
    ejections: u32,
    /// Recent outcomes, `true` for a failure.
    window: VecDeque<bool>,
    cooled_until: Option<Instant>,
    /// Latency moving average, in microseconds; `None` until the first success.
    latency_ewma_us: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Breaker {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What one attempt on an endpoint came to, for its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered (even if the answer was the caller's error).
    Success {
        /// Time to the answer (or to the first token of a stream).
        latency: Duration,
    },
    /// The endpoint failed in a way that speaks of its health.
    Failure,
    /// The endpoint asked us to wait.
    RateLimited {
        /// How long, when it said.
        retry_after: Option<Duration>,
    },
    /// Nothing learned (the caller's deadline or cancellation ended the attempt).
    Unknown,
}

impl Outcome {
    /// How a provider error reflects on the endpoint.
    pub fn of_error(err: &ProviderError) -> Outcome {
        use ProviderErrorKind as K;
        match err.kind {
            K::RateLimited => Outcome::RateLimited { retry_after: err.retry_after },
            K::Connect
            | K::Timeout
            | K::Server
            | K::Overloaded
            | K::InvalidResponse
            | K::StreamCut => Outcome::Failure,
            // Auth and NotFound are misconfiguration of this endpoint: take it out too.
            K::Auth | K::NotFound => Outcome::Failure,
            K::Rejected => Outcome::Success { latency: Duration::ZERO },
            // The adapter refused the request before sending it: nothing learned.
            K::Unsupported => Outcome::Unknown,
        }
    }
}

/// Cool-down of a 429 that gave no `Retry-After`.
const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(1);
/// Weight of the newest sample in the latency average.
const EWMA_ALPHA: f64 = 0.3;

impl Endpoint {
    /// A healthy endpoint.
    pub fn new(
        name: impl Into<String>,
        weight: u32,
        provider: SharedProvider,
        policy: Arc<HealthPolicy>,
    ) -> Self {
        let window = VecDeque::with_capacity(policy.breaker_window as usize);
        Endpoint {
            name: name.into(),
            weight,
            provider,
            policy,
            state: Mutex::new(State {
                breaker: Breaker::Closed,
                consecutive_failures: 0,
                ejections: 0,
                window,
                cooled_until: None,
                latency_ewma_us: None,
            }),
            in_flight: AtomicU32::new(0),
            probed: Mutex::new((true, 0)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain counters;
        // the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an active probe: `unhealthy` failures in a row take the endpoint out of
    /// rotation, `healthy` passes in a row bring it back. Returns whether it passes now.
    pub fn record_probe(&self, passed: bool, healthy: u32, unhealthy: u32) -> bool {
        let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
        let (up, run) = *probed;
        let run = match (passed, run >= 0) {
            (true, true) => run.saturating_add(1),
            (true, false) => 1,
            (false, false) => run.saturating_sub(1),
            (false, true) => -1,
        };
        let up = match up {
            true if run <= -i64::from(unhealthy) => {
                tracing::warn!(endpoint = %self.name, provider = self.provider.name(), "endpoint failed its health checks");
                false
            }
            false if run >= i64::from(healthy) => {
                tracing::info!(endpoint = %self.name, provider = self.provider.name(), "endpoint passes its health checks again");
                true
            }
            same => same,
        };
        *probed = (up, run);
        up
    }

    fn passes_probes(&self) -> bool {
        self.probed.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Whether a call could be sent now.
    pub fn is_available(&self, now: Instant) -> bool {
        if !self.passes_probes() {
            return false;
        }
        let state = self.state();
        if state.cooled_until.is_some_and(|t| t > now) {
            return false;
        }
        match state.breaker {
            Breaker::Closed => true,
            Breaker::Open { until } => until <= now,
            Breaker::HalfOpen { probing } => !probing,
        }
    }

    /// How long it still cools down after a rate limit, if it does.
    pub fn cooling_for(&self, now: Instant) -> Option<Duration> {
        self.state().cooled_until.filter(|t| *t > now).map(|t| t - now)
    }

    /// Whether it is available and has had no failure since its last success.
    pub fn is_healthy(&self, now: Instant) -> bool {
        self.is_available(now) && self.state().consecutive_failures == 0
    }

    /// The breaker's state now.
    pub fn breaker_state(&self, now: Instant) -> BreakerState {
        match self.state().breaker {
            Breaker::Closed => BreakerState::Closed,
            Breaker::Open { until } if until <= now => BreakerState::HalfOpen,
            Breaker::Open { .. } => BreakerState::Open,
            Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// The latency score for least-latency balancing: the moving average scaled by the calls
    /// in flight; endpoints never measured score 0 so they get tried.
    pub fn latency_score(&self) -> f64 {
        let ewma = self.state().latency_ewma_us.unwrap_or(0.0);
        ewma * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Claims the endpoint for one attempt: `None` when it is not available. An open breaker
    /// whose cool-down ended lets exactly one probe through.
    pub fn acquire(self: &Arc<Self>, now: Instant) -> Option<AttemptGuard> {
        if !self.passes_probes() {
            return None;
        }
        let mut state = self.state();
        if state.cooled_until.is_some_and(|t| t > now) {
            return None;
        }
        match state.breaker {
            Breaker::Closed => {}
            Breaker::Open { until } if until <= now => {
                state.breaker = Breaker::HalfOpen { probing: true }
            }
            Breaker::Open { .. } | Breaker::HalfOpen { probing: true } => return None,
            Breaker::HalfOpen { probing: false } => {
                state.breaker = Breaker::HalfOpen { probing: true }
            }
        }
        drop(state);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(AttemptGuard { endpoint: self.clone(), recorded: false })
    }

    /// Records an outcome learned outside an attempt (a stream that failed after it committed).
    pub fn report(&self, outcome: Outcome) {
        self.record(outcome, Instant::now());
    }

    fn record(&self, outcome: Outcome, now: Instant) {
        let mut state = self.state();
        let window_len = self.policy.breaker_window as usize;
        match outcome {
            Outcome::Success { latency } => {
                state.consecutive_failures = 0;
                state.ejections = 0;
                state.breaker = Breaker::Closed;
                push(&mut state.window, false, window_len);
                if !latency.is_zero() {
                    let sample = latency.as_secs_f64() * 1e6;
                    state.latency_ewma_us = Some(
                        state
                            .latency_ewma_us
                            .map_or(sample, |old| old + EWMA_ALPHA * (sample - old)),
                    );
                }
            }
            Outcome::Failure => {
                state.consecutive_failures += 1;
                push(&mut state.window, true, window_len);
                let failures = state.window.iter().filter(|f| **f).count();
                let ratio_tripped = state.window.len() >= self.policy.breaker_min_calls as usize
                    && failures as f64
                        >= self.policy.breaker_failure_ratio * state.window.len() as f64;
                let probe_failed = matches!(state.breaker, Breaker::HalfOpen { .. });
                if probe_failed
                    || state.consecutive_failures >= self.policy.eject_after
                    || ratio_tripped
                {
                    let cooldown = self.cooldown(state.ejections);
                    state.ejections = state.ejections.saturating_add(1);
                    state.breaker = Breaker::Open { until: now + cooldown };
                    state.window.clear();
                    tracing::warn!(endpoint = %self.name, provider = self.provider.name(), ?cooldown, "endpoint ejected");
                }
            }
            Outcome::RateLimited { retry_after } => {
                let until = now + retry_after.unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN);
                state.cooled_until = Some(state.cooled_until.map_or(until, |t| t.max(until)));
                if let Breaker::HalfOpen { .. } = state.breaker {
                    state.breaker = Breaker::HalfOpen { probing: false };
                }
            }
            Outcome::Unknown => {
                if let Breaker::HalfOpen { .. } = state.breaker {
                    state.breaker = Breaker::HalfOpen { probing: false };
                }
            }
        }
    }

    fn cooldown(&self, ejections: u32) -> Duration {
        let factor = 2u32.saturating_pow(ejections.min(16));
        self.policy.eject_cooldown.saturating_mul(factor).min(self.policy.eject_cooldown_max)
    }
}

fn push(window: &mut VecDeque<bool>, failed: bool, len: usize) {
    if window.len() >= len {
        window.pop_front();
    }
    window.push_back(failed);
}

/// One attempt in progress on an endpoint. Record its outcome with [`AttemptGuard::finish`];
/// dropped unrecorded (the call was cancelled), it frees a half-open probe slot.
#[derive(Debug)]
pub struct AttemptGuard {
    endpoint: Arc<Endpoint>,
    recorded: bool,
}

impl AttemptGuard {
    /// The endpoint this attempt runs on.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Records the attempt's outcome.
    pub fn finish(mut self, outcome: Outcome) {
        self.recorded = true;
        self.endpoint.record(outcome, Instant::now());
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.recorded {
            self.endpoint.record(Outcome::Unknown, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::EchoProvider;

    fn endpoint(policy: HealthPolicy) -> Arc<Endpoint> {
        Arc::new(Endpoint::new(
            "e1",
            1,
            Arc::new(EchoProvider::new("p", Duration::ZERO)),
            Arc::new(policy),
        ))
    }

    fn fail(e: &Arc<Endpoint>) {
        e.acquire(Instant::now()).expect("available").finish(Outcome::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_and_the_cooldown_grows() {
        let e = endpoint(HealthPolicy { eject_after: 3, ..HealthPolicy::default() });
        fail(&e);
        fail(&e);
        assert!(e.is_available(Instant::now()));
        assert!(!e.is_healthy(Instant::now()));
        fail(&e);
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::Open);
        assert!(e.acquire(Instant::now()).is_none());

        // After the 5 s cool-down one probe goes through, and only one.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::HalfOpen);
        let probe = e.acquire(Instant::now()).expect("probe");
        assert!(e.acquire(Instant::now()).is_none(), "a second probe must wait");
        probe.finish(Outcome::Failure);

        // The failed probe re-opens it for twice as long.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!e.is_available(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = e.acquire(Instant::now()).expect("probe after 10 s");
        probe.finish(Outcome::Success { latency: Duration::from_millis(5) });
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::Closed);
        assert!(e.is_healthy(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_ratio_opens_the_breaker() {
        let e = endpoint(HealthPolicy {
            eject_after: 100,
            breaker_failure_ratio: 0.5,
            breaker_min_calls: 10,
            breaker_window: 10,
            ..HealthPolicy::default()
        });
        for i in 0..9 {
            let guard = e.acquire(Instant::now()).unwrap();
            guard.finish(if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success { latency: Duration::ZERO }
            });
        }
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::Closed, "below min calls");
        fail(&e);
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::Open, "6 of 10 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_cools_the_endpoint_for_that_long() {
        let e = endpoint(HealthPolicy::default());
        e.acquire(Instant::now())
            .unwrap()
            .finish(Outcome::RateLimited { retry_after: Some(Duration::from_secs(7)) });
        assert!(!e.is_available(Instant::now()));
        assert_eq!(
            e.breaker_state(Instant::now()),
            BreakerState::Closed,
            "a 429 is not a health failure"
        );
        tokio::time::advance(Duration::from_millis(6999)).await;
        assert!(!e.is_available(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(e.is_available(Instant::now()));
    }

    #[tokio::test]
    async fn active_probes_need_a_run_of_results_to_change_their_mind() {
        let e = endpoint(HealthPolicy::default());
        assert!(e.record_probe(false, 2, 3));
        assert!(e.record_probe(false, 2, 3));
        assert!(e.record_probe(true, 2, 3), "a pass resets the failing run");
        for _ in 0..2 {
            assert!(e.record_probe(false, 2, 3));
        }
        assert!(!e.record_probe(false, 2, 3), "three failures in a row");
        assert!(!e.is_available(Instant::now()) && e.acquire(Instant::now()).is_none());
        assert!(!e.record_probe(true, 2, 3));
        assert!(e.record_probe(true, 2, 3), "two passes in a row");
        assert!(e.is_available(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let e = endpoint(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
        fail(&e);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(e.acquire(Instant::now()).expect("probe"));
        assert!(e.acquire(Instant::now()).is_some(), "the slot is free again");
    }
}
