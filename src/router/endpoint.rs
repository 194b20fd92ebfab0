//! One endpoint of a target's pool and its health: passive ejection, a circuit breaker,
//! `Retry-After` cool-downs per upstream model and a latency moving average.
//!
//! An endpoint is an address and a key; several targets may share it with different upstream
//! models (a provider's default endpoint serves every route and `provider/model` passthrough
//! of that provider). So every question about it names the model the call is for:
//! [`Endpoint::acquire`], [`Endpoint::is_available_for`] and [`Endpoint::cooling_for`], and an
//! [`AttemptGuard`] records its outcome for the model it was acquired for.
//!
//! The breaker is the single switch that takes the whole endpoint out of rotation:
//! - **closed**: the endpoint takes calls. It opens after `eject_after` consecutive failures,
//!   or when the failure ratio over the last `breaker_window` calls reaches
//!   `breaker_failure_ratio` (once `breaker_min_calls` calls were seen).
//! - **open**: no calls until the cool-down ends. The cool-down doubles each time the endpoint
//!   is ejected again without a success in between, up to `eject_cooldown_max`.
//! - **half-open**: after the cool-down, one probe call is let through; success closes the
//!   breaker, failure opens it again for longer.
//!
//! A 429 is not a health failure, and providers limit each model on its own: it cools the
//! endpoint for that upstream model only, for as long as `Retry-After` says (1 s without
//! one); other models still go through. 5xx, connect failures, timeouts and 529 overload
//! speak of the endpoint and feed the breaker whatever the model. The cool-downs are bounded:
//! expired ones are pruned, and at most [`MAX_COOLING_MODELS`] models are tracked at once;
//! when a new one arrives at the cap, the cool-down that would end soonest is forgotten (that
//! model may reach the upstream early, get another 429 and cool again: never a wider
//! cool-down). A rate limit learned after its attempt (a committed stream that failed) is
//! reported with its model ([`Endpoint::report`]).
//!
//! Failures that are the caller's (400, …) count as successes here: the endpoint answered.

use std::{
    collections::VecDeque,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    config::HealthPolicy,
    fast_map::{FastHasher, FastMap},
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
    /// Hashes model names into the keys of [`State::cooling`].
    model_keys: FastHasher,
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
    /// Upstream models cooling down after a 429, and until when. Keyed by a hash of the name,
    /// so an entry's size does not depend on the names passthrough callers send.
    cooling: FastMap<ModelKey, Instant>,
    /// Latency moving average, in microseconds; `None` until the first success.
    latency_ewma_us: Option<f64>,
    /// Availability and breaker state as last reported to the metrics (see
    /// [`Endpoint::report_health`]); `None` before the first report.
    reported: Option<(bool, BreakerState)>,
}

/// An upstream model's name, hashed with the endpoint's [`Endpoint::model_keys`]: a
/// collision (about one in 2^64 per pair) would only share a cool-down between two models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ModelKey(u64);

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
/// Most upstream models an endpoint keeps a cool-down for at once.
pub const MAX_COOLING_MODELS: usize = 256;
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
                cooling: FastMap::default(),
                latency_ewma_us: None,
                reported: None,
            }),
            in_flight: AtomicU32::new(0),
            model_keys: FastHasher::default(),
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

    fn model_key(&self, model: &str) -> ModelKey {
        ModelKey(self.model_keys.hash_one(model))
    }

    /// Whether the endpoint as a whole takes calls now: it passes its probes and its breaker
    /// lets a call through. Cool-downs of single models do not count here.
    pub fn is_available(&self, now: Instant) -> bool {
        self.passes_probes() && self.state().breaker_admits(now)
    }

    /// Whether a call for upstream `model` could be sent now: the endpoint is available and
    /// that model is not cooling down after a rate limit.
    pub fn is_available_for(&self, now: Instant, model: &str) -> bool {
        if !self.passes_probes() {
            return false;
        }
        let key = self.model_key(model);
        let state = self.state();
        !state.is_cooling(key, now) && state.breaker_admits(now)
    }

    /// How long upstream `model` still cools down after a rate limit, if it does.
    pub fn cooling_for(&self, now: Instant, model: &str) -> Option<Duration> {
        let key = self.model_key(model);
        self.state().cooling.get(&key).filter(|t| **t > now).map(|t| *t - now)
    }

    /// Whether it is available and has had no failure since its last success.
    pub fn is_healthy(&self, now: Instant) -> bool {
        self.is_available(now) && self.state().consecutive_failures == 0
    }

    /// The breaker's state now.
    pub fn breaker_state(&self, now: Instant) -> BreakerState {
        self.state().breaker_state(now)
    }

    /// Calls `report` with whether the endpoint is available now ([`Self::is_available`]) and
    /// its breaker's state, when either differs from what it was given last time: the health
    /// gauges change only then, and most attempts change neither. Under the state's lock, so
    /// that two attempts ending together report in the order they read the state.
    pub fn report_health(&self, now: Instant, report: impl FnOnce(bool, BreakerState)) {
        let passes_probes = self.passes_probes();
        let mut state = self.state();
        let now_reported = (passes_probes && state.breaker_admits(now), state.breaker_state(now));
        if state.reported != Some(now_reported) {
            state.reported = Some(now_reported);
            report(now_reported.0, now_reported.1);
        }
    }

    /// The latency score for least-latency balancing: the moving average scaled by the calls
    /// in flight; endpoints never measured score 0 so they get tried.
    pub fn latency_score(&self) -> f64 {
        let ewma = self.state().latency_ewma_us.unwrap_or(0.0);
        ewma * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Claims the endpoint for one attempt at upstream `model`: `None` when it is not available
    /// for that model. An open breaker whose cool-down ended lets exactly one probe through.
    pub fn acquire(self: &Arc<Self>, now: Instant, model: &str) -> Option<AttemptGuard> {
        if !self.passes_probes() {
            return None;
        }
        let key = self.model_key(model);
        let mut state = self.state();
        if state.is_cooling(key, now) {
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
        Some(AttemptGuard { endpoint: self.clone(), model: key, recorded: false })
    }

    /// Records an outcome learned outside an attempt at upstream `model` (a stream that failed
    /// after it committed).
    pub fn report(&self, model: &str, outcome: Outcome) {
        self.record(outcome, self.model_key(model), Instant::now());
    }

    fn record(&self, outcome: Outcome, model: ModelKey, now: Instant) {
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
                state.cool(model, until, now);
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

impl State {
    /// The breaker's state now: an open breaker whose cool-down ended reads half open.
    fn breaker_state(&self, now: Instant) -> BreakerState {
        match self.breaker {
            Breaker::Closed => BreakerState::Closed,
            Breaker::Open { until } if until <= now => BreakerState::HalfOpen,
            Breaker::Open { .. } => BreakerState::Open,
            Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether the breaker lets a call through now (without claiming a half-open probe).
    fn breaker_admits(&self, now: Instant) -> bool {
        match self.breaker {
            Breaker::Closed => true,
            Breaker::Open { until } => until <= now,
            Breaker::HalfOpen { probing } => !probing,
        }
    }

    fn is_cooling(&self, model: ModelKey, now: Instant) -> bool {
        self.cooling.get(&model).is_some_and(|t| *t > now)
    }

    /// Cools `model` until `until` (or longer, if it already cools longer), within
    /// [`MAX_COOLING_MODELS`].
    fn cool(&mut self, model: ModelKey, until: Instant, now: Instant) {
        if let Some(t) = self.cooling.get_mut(&model) {
            *t = (*t).max(until);
            return;
        }
        self.cooling.retain(|_, t| *t > now);
        if self.cooling.len() >= MAX_COOLING_MODELS {
            let soonest = self.cooling.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
            if let Some(soonest) = soonest {
                self.cooling.remove(&soonest);
            }
        }
        self.cooling.insert(model, until);
    }
}

fn push(window: &mut VecDeque<bool>, failed: bool, len: usize) {
    if window.len() >= len {
        window.pop_front();
    }
    window.push_back(failed);
}

/// One attempt in progress on an endpoint, for one upstream model. Record its outcome with
/// [`AttemptGuard::finish`] (a rate limit cools that model); dropped unrecorded (the call was
/// cancelled), it frees a half-open probe slot.
#[derive(Debug)]
pub struct AttemptGuard {
    endpoint: Arc<Endpoint>,
    model: ModelKey,
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
        self.endpoint.record(outcome, self.model, Instant::now());
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.recorded {
            self.endpoint.record(Outcome::Unknown, self.model, Instant::now());
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
        e.acquire(Instant::now(), "m").expect("available").finish(Outcome::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn health_is_reported_when_it_changes_and_only_then() {
        let e = endpoint(HealthPolicy { eject_after: 2, ..HealthPolicy::default() });
        let reports = std::sync::Mutex::new(Vec::new());
        let report = || {
            e.report_health(Instant::now(), |available, breaker| {
                reports.lock().unwrap().push((available, breaker));
            })
        };
        report();
        report();
        fail(&e);
        report();
        assert_eq!(
            *reports.lock().unwrap(),
            [(true, BreakerState::Closed)],
            "first, then unchanged"
        );
        fail(&e);
        report();
        report();
        // The cool-down ends: half open, and available for one probe.
        tokio::time::advance(Duration::from_secs(5)).await;
        report();
        let probe = e.acquire(Instant::now(), "m").expect("the probe");
        report();
        probe.finish(Outcome::Success { latency: Duration::from_millis(3) });
        report();
        assert_eq!(
            *reports.lock().unwrap(),
            [
                (true, BreakerState::Closed),
                (false, BreakerState::Open),
                (true, BreakerState::HalfOpen),
                (false, BreakerState::HalfOpen),
                (true, BreakerState::Closed),
            ]
        );
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
        assert!(e.acquire(Instant::now(), "m").is_none());

        // After the 5 s cool-down one probe goes through, and only one.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::HalfOpen);
        let probe = e.acquire(Instant::now(), "m").expect("probe");
        assert!(e.acquire(Instant::now(), "m").is_none(), "a second probe must wait");
        probe.finish(Outcome::Failure);

        // The failed probe re-opens it for twice as long.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!e.is_available(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = e.acquire(Instant::now(), "m").expect("probe after 10 s");
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
            let guard = e.acquire(Instant::now(), "m").unwrap();
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

    fn rate_limit(e: &Arc<Endpoint>, model: &str, secs: u64) {
        e.acquire(Instant::now(), model)
            .expect("available")
            .finish(Outcome::RateLimited { retry_after: Some(Duration::from_secs(secs)) });
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_cools_that_model_for_that_long_and_no_other() {
        let e = endpoint(HealthPolicy::default());
        rate_limit(&e, "a", 7);
        let now = Instant::now();
        assert!(!e.is_available_for(now, "a") && e.acquire(now, "a").is_none());
        assert_eq!(e.cooling_for(now, "a"), Some(Duration::from_secs(7)));
        assert!(e.is_available_for(now, "b"), "another model on the same endpoint");
        assert_eq!(e.cooling_for(now, "b"), None);
        assert!(e.is_available(now), "the endpoint as a whole still takes calls");
        e.acquire(now, "b")
            .expect("b goes through")
            .finish(Outcome::Success { latency: Duration::from_millis(3) });
        assert_eq!(e.breaker_state(now), BreakerState::Closed, "a 429 is not a health failure");

        tokio::time::advance(Duration::from_millis(6999)).await;
        assert!(!e.is_available_for(Instant::now(), "a"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(e.is_available_for(Instant::now(), "a"));
        assert_eq!(e.cooling_for(Instant::now(), "a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_rate_limit_extends_but_never_shortens_the_cooldown() {
        let e = endpoint(HealthPolicy::default());
        rate_limit(&e, "a", 10);
        // A call that was already in flight comes back with a shorter Retry-After.
        e.report("a", Outcome::RateLimited { retry_after: Some(Duration::from_secs(2)) });
        assert_eq!(e.cooling_for(Instant::now(), "a"), Some(Duration::from_secs(10)));
        e.report("a", Outcome::RateLimited { retry_after: Some(Duration::from_secs(20)) });
        assert_eq!(e.cooling_for(Instant::now(), "a"), Some(Duration::from_secs(20)));
        e.report("b", Outcome::RateLimited { retry_after: None });
        assert_eq!(e.cooling_for(Instant::now(), "b"), Some(DEFAULT_RATE_LIMIT_COOLDOWN));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_any_model_count_against_the_whole_endpoint() {
        let e = endpoint(HealthPolicy { eject_after: 3, ..HealthPolicy::default() });
        let overloaded = ProviderError::new("p", ProviderErrorKind::Overloaded, "529");
        let server = ProviderError::new("p", ProviderErrorKind::Server, "503");
        let connect = ProviderError::new("p", ProviderErrorKind::Connect, "refused");
        for (model, err) in [("a", &overloaded), ("b", &server), ("c", &connect)] {
            e.acquire(Instant::now(), model).expect("closed").finish(Outcome::of_error(err));
        }
        let now = Instant::now();
        assert_eq!(e.breaker_state(now), BreakerState::Open);
        assert!(!e.is_available(now));
        for model in ["a", "b", "d"] {
            assert!(!e.is_available_for(now, model) && e.acquire(now, model).is_none());
            assert_eq!(e.cooling_for(now, model), None, "ejected, not cooling: {model}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_model_waits_out_its_cooldown_even_when_the_breaker_would_probe() {
        let e = endpoint(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
        rate_limit(&e, "a", 60);
        fail(&e);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(e.acquire(Instant::now(), "a").is_none(), "still cooling");
        let probe = e.acquire(Instant::now(), "b").expect("the half-open probe");
        probe.finish(Outcome::Success { latency: Duration::ZERO });
        assert_eq!(e.breaker_state(Instant::now()), BreakerState::Closed);
        assert!(!e.is_available_for(Instant::now(), "a"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cooldown_table_is_bounded_and_pruned() {
        let e = endpoint(HealthPolicy::default());
        // One more model than the table holds; model i cools for 100 + i seconds.
        for i in 0..=MAX_COOLING_MODELS {
            e.report(
                &format!("model-{i}"),
                Outcome::RateLimited { retry_after: Some(Duration::from_secs(100 + i as u64)) },
            );
        }
        assert_eq!(e.state().cooling.len(), MAX_COOLING_MODELS);
        let now = Instant::now();
        assert!(
            e.is_available_for(now, "model-0"),
            "at the cap, the cool-down that ends soonest was forgotten"
        );
        for i in 1..=MAX_COOLING_MODELS {
            assert!(!e.is_available_for(now, &format!("model-{i}")), "model-{i} still cools");
        }

        // Once they all ended, the next rate limit prunes them.
        tokio::time::advance(Duration::from_secs(100 + MAX_COOLING_MODELS as u64)).await;
        e.report("late", Outcome::RateLimited { retry_after: None });
        assert_eq!(e.state().cooling.len(), 1);
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
        assert!(!e.is_available(Instant::now()) && e.acquire(Instant::now(), "m").is_none());
        assert!(!e.record_probe(true, 2, 3));
        assert!(e.record_probe(true, 2, 3), "two passes in a row");
        assert!(e.is_available(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let e = endpoint(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
        fail(&e);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(e.acquire(Instant::now(), "m").expect("probe"));
        assert!(e.acquire(Instant::now(), "m").is_some(), "the slot is free again");
    }
}
