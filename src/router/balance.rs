//! A target's endpoint pool and the strategies that pick an endpoint from it.
//!
//! Every strategy skips endpoints that are out of rotation (open breaker, failed probes),
//! endpoints where the call's upstream model cools down after a 429, and endpoints the
//! current call already tried:
//! - `round_robin`: in turn;
//! - `weighted`: at random in proportion to the weights;
//! - `health`: like `weighted`, but only over endpoints with no failure since their last
//!   success, falling back to every available endpoint when none is that healthy;
//! - `least_latency`: two random candidates, the one with the lower latency score wins
//!   (power of two choices over a moving average, scaled by calls in flight).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::time::Instant;

use super::endpoint::Endpoint;
use crate::config::Strategy;

/// A target's endpoints and how to choose among them.
#[derive(Debug)]
pub struct Pool {
    strategy: Strategy,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl Pool {
    /// A pool over `endpoints` (never empty).
    pub fn new(strategy: Strategy, endpoints: Vec<Arc<Endpoint>>) -> Self {
        Pool { strategy, endpoints, next: AtomicUsize::new(0) }
    }

    /// The endpoints, in configured order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Whether any endpoint could take a call for upstream `model` now.
    pub fn is_available(&self, now: Instant, model: &str) -> bool {
        self.endpoints.iter().any(|e| e.weight > 0 && e.is_available_for(now, model))
    }

    /// Picks an endpoint index for a call to upstream `model`, skipping those in `tried`.
    pub fn pick(&self, now: Instant, tried: &[usize], model: &str) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.endpoints.len())
            .filter(|i| !tried.contains(i))
            .filter(|&i| {
                self.endpoints[i].weight > 0 && self.endpoints[i].is_available_for(now, model)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        match self.strategy {
            Strategy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                // The first candidate at or after the turn's position, wrapping around.
                let n = self.endpoints.len();
                (0..n).map(|k| (start + k) % n).find(|i| candidates.contains(i))
            }
            Strategy::Weighted => self.weighted(&candidates),
            Strategy::Health => {
                let healthy: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&i| self.endpoints[i].is_healthy(now))
                    .collect();
                self.weighted(if healthy.is_empty() { &candidates } else { &healthy })
            }
            Strategy::LeastLatency => {
                if candidates.len() == 1 {
                    return candidates.first().copied();
                }
                let a = candidates[fastrand::usize(..candidates.len())];
                let mut b = candidates[fastrand::usize(..candidates.len() - 1)];
                if b == a {
                    b = candidates[candidates.len() - 1];
                }
                let (sa, sb) =
                    (self.endpoints[a].latency_score(), self.endpoints[b].latency_score());
                Some(if sb < sa { b } else { a })
            }
        }
    }

    fn weighted(&self, candidates: &[usize]) -> Option<usize> {
        let total: u64 = candidates.iter().map(|&i| u64::from(self.endpoints[i].weight)).sum();
        if total == 0 {
            return None;
        }
        let mut ticket = fastrand::u64(..total);
        for &i in candidates {
            let w = u64::from(self.endpoints[i].weight);
            if ticket < w {
                return Some(i);
            }
            ticket -= w;
        }
        candidates.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{config::HealthPolicy, provider::EchoProvider, router::endpoint::Outcome};

    fn pool(strategy: Strategy, weights: &[u32]) -> Pool {
        let policy = Arc::new(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
        let endpoints = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let provider = Arc::new(EchoProvider::new("p", Duration::ZERO));
                Arc::new(Endpoint::new(format!("e{i}"), w, provider, policy.clone()))
            })
            .collect();
        Pool::new(strategy, endpoints)
    }

    fn shares(pool: &Pool, picks: usize) -> Vec<f64> {
        let mut counts = vec![0usize; pool.endpoints().len()];
        let now = Instant::now();
        for _ in 0..picks {
            counts[pool.pick(now, &[], "m").unwrap()] += 1;
        }
        counts.into_iter().map(|c| c as f64 / picks as f64).collect()
    }

    #[tokio::test]
    async fn weighted_choices_follow_the_weights() {
        fastrand::seed(7);
        let pool = pool(Strategy::Weighted, &[1, 3, 6]);
        let got = shares(&pool, 20_000);
        for (share, want) in got.iter().zip([0.1, 0.3, 0.6]) {
            assert!((share - want).abs() < 0.02, "share {share} vs weight share {want}: {got:?}");
        }
    }

    #[tokio::test]
    async fn round_robin_takes_turns_and_skips_what_was_tried() {
        let pool = pool(Strategy::RoundRobin, &[1, 1, 1]);
        let now = Instant::now();
        let picks: Vec<usize> = (0..6).map(|_| pool.pick(now, &[], "m").unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(pool.pick(now, &[0, 1, 2], "m"), None);
        let next = pool.pick(now, &[0], "m").unwrap();
        assert_ne!(next, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn health_avoids_failing_and_ejected_endpoints() {
        let pool = pool(Strategy::Health, &[1, 1]);
        pool.endpoints()[0].acquire(Instant::now(), "m").unwrap().finish(Outcome::Failure);
        for _ in 0..100 {
            assert_eq!(pool.pick(Instant::now(), &[], "m"), Some(1));
        }
        pool.endpoints()[1].acquire(Instant::now(), "m").unwrap().finish(Outcome::Failure);
        assert!(!pool.is_available(Instant::now(), "m"));
        assert_eq!(pool.pick(Instant::now(), &[], "m"), None);
    }

    #[tokio::test]
    async fn least_latency_prefers_the_faster_endpoint() {
        fastrand::seed(3);
        let pool = pool(Strategy::LeastLatency, &[1, 1]);
        let now = Instant::now();
        for (i, ms) in [(0, 80), (1, 10)] {
            pool.endpoints()[i]
                .acquire(now, "m")
                .unwrap()
                .finish(Outcome::Success { latency: Duration::from_millis(ms) });
        }
        let got = shares(&pool, 1000);
        assert!(got[1] > 0.99, "with two endpoints both are always compared: {got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_cooling_on_one_endpoint_goes_to_the_others() {
        let pool = pool(Strategy::RoundRobin, &[1, 1]);
        let cool = |i: usize, model: &str| {
            pool.endpoints()[i]
                .acquire(Instant::now(), model)
                .unwrap()
                .finish(Outcome::RateLimited { retry_after: Some(Duration::from_secs(30)) });
        };
        cool(0, "a");
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(pool.pick(now, &[], "a"), Some(1));
        }
        let others: Vec<usize> = (0..4).map(|_| pool.pick(now, &[], "b").unwrap()).collect();
        assert!(others.contains(&0) && others.contains(&1), "b takes turns: {others:?}");

        cool(1, "a");
        assert_eq!(pool.pick(now, &[], "a"), None);
        assert!(!pool.is_available(now, "a"));
        assert!(pool.is_available(now, "b"), "the pool still serves other models");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(pool.is_available(Instant::now(), "a"));
    }
}
