//! The router: a caller's model name → a [`Route`] → its ordered failover chain of
//! [`Target`]s (provider + upstream model) → each target's [`Pool`] of endpoints.
//!
//! A call runs as a sequence of attempts, within the caller's deadline:
//! - an attempt goes to the endpoint the target's strategy picks; on a retryable failure
//!   (connect, timeout, 429, 5xx, a malformed reply) the next attempt goes to another endpoint
//!   of the same target, then to the next target in the chain; a non-retryable failure (the
//!   caller's own mistake) ends the call at once;
//! - retries wait an exponential back-off with full jitter, up to `max_retries`, and never
//!   past the deadline; every attempt is cancelled when the deadline passes;
//! - with hedging on, when the first attempt has no first token after `hedge_delay`, the
//!   next target is tried in parallel; the first answer wins and the other is dropped;
//! - a stream commits to its attempt at its first content event: failover happens only
//!   before anything reached the caller.
//!
//! Every outcome feeds the endpoint's health ([`endpoint`]), which in turn decides what the
//! strategies ([`balance`]) may pick. With trace export on, each attempt runs in a span that
//! says why it was made (first, retry, failover, hedge) and how it ended
//! ([`crate::telemetry::spans`]).

mod attempt;
pub mod balance;
pub mod endpoint;

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use tokio::time::Instant;

pub use attempt::Primed;
pub use balance::Pool;
pub use endpoint::{BreakerState, Endpoint, Outcome};

use crate::{
    config::{
        ClientKey, Config, EndpointConfig, HealthCheck, HealthPolicy, KeySource, ProviderConfig,
        Strategy,
    },
    error::Error,
    fast_map::FastMap,
    keys::ProviderKey,
    metrics::Recorder,
    provider::{self, SharedProvider},
};

/// Most `provider/model` passthrough routes kept; beyond it they are built per call.
const MAX_PASSTHROUGH_ROUTES: usize = 1024;

/// One provider model in a route's failover chain.
#[derive(Debug)]
pub struct Target {
    /// The provider's configured name.
    pub provider: String,
    /// The upstream model name.
    pub model: String,
    /// Where its calls go.
    pub pool: Pool,
}

/// Retry timing of a route.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Full jitter: uniformly random up to `base * 2^(retry-1)`, capped at `max`.
    fn delay(self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(20)))
            .min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// A public model name and its failover chain.
pub struct Route {
    /// The name callers use.
    pub name: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Targets, in failover order; never empty.
    pub targets: Vec<Target>,
    /// Whether the route was configured (else it is a `provider/model` passthrough).
    pub configured: bool,
    max_retries: u32,
    hedge_delay: Option<Duration>,
    backoff: Backoff,
    metrics: Recorder,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("targets", &self.targets.len())
            .finish()
    }
}

/// An answer and where it came from.
#[derive(Debug)]
pub struct Served<T> {
    /// The answer.
    pub value: T,
    /// The provider that gave it.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// The endpoint that gave it.
    pub endpoint: Arc<Endpoint>,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// A route as `ListModels` (and a front door's model list) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name callers use.
    pub name: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Its failover chain.
    pub targets: Vec<TargetInfo>,
    /// Whether any target could serve now.
    pub available: bool,
}

/// One target of a [`ModelInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    /// The provider's configured name.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// Whether it could serve now.
    pub available: bool,
}

impl Route {
    /// The `route` label of metrics: the configured name, or `provider/*` for a
    /// `provider/model` passthrough, so a caller's model strings never become label values.
    pub fn label(&self) -> Cow<'_, str> {
        if self.configured {
            return Cow::Borrowed(&self.name);
        }
        match self.targets.first() {
            Some(target) => Cow::Owned(format!("{}/*", target.provider)),
            None => Cow::Borrowed(crate::metrics::labels::NONE),
        }
    }

    /// Whether at least one target could serve now (its upstream model not cooling down).
    pub fn is_available(&self, now: Instant) -> bool {
        self.targets.iter().any(|t| t.pool.is_available(now, &t.model))
    }
}

/// All routes, by name and alias, and the providers for `provider/model` passthrough.
#[derive(Debug)]
pub struct Router {
    providers: FastMap<String, Arc<Endpoint>>,
    routes: Vec<Arc<Route>>,
    by_name: FastMap<String, Arc<Route>>,
    passthrough: std::sync::RwLock<FastMap<String, Arc<Route>>>,
    key_files: Vec<ProviderKey>,
    probes: Vec<(Arc<Endpoint>, HealthCheck)>,
    metrics: Recorder,
    policy: Arc<HealthPolicy>,
    max_retries: u32,
    backoff: Backoff,
}

/// Builds the adapter for `provider`, bound to `endpoint`'s address and key when given, and
/// notes a key read from a file or Vault so it can be rotated. An adapter that cannot be built (its
/// HTTP client failed) is logged and left out: its targets fail over as if it were down.
fn adapter(
    provider: &ProviderConfig,
    endpoint: Option<&EndpointConfig>,
    key_files: &mut Vec<ProviderKey>,
) -> Option<SharedProvider> {
    let mut bound = match endpoint {
        Some(e) => provider.for_endpoint(e),
        None => provider.clone(),
    };
    let owner = match endpoint {
        Some(e) => format!("{}@{}", provider.name, e.name),
        None => provider.name.clone(),
    };
    let built = provider::build(&bound)
        .map_err(|e| tracing::error!(provider = %owner, error = %e, "cannot build provider"))
        .ok()?;
    if let (Some(key), Some(connection)) = (built.key_handle(), bound.connection_mut())
        && let Some(source @ (KeySource::File(_) | KeySource::Vault(_))) =
            &connection.api_key_source
    {
        key_files.push(ProviderKey { owner, source: source.clone(), key });
    }
    Some(built)
}

impl Router {
    /// Builds the adapters, endpoints and routes of a validated config.
    pub fn from_config(config: &Config) -> Router {
        Router::with_metrics(config, Recorder::default())
    }

    /// Like [`Router::from_config`], emitting attempts, retries, failovers, hedges and endpoint
    /// health to `metrics`.
    pub fn with_metrics(config: &Config, metrics: Recorder) -> Router {
        let policy = Arc::new(config.routing.health.clone());
        let backoff =
            Backoff { base: config.routing.backoff_base, max: config.routing.backoff_max };
        let mut key_files = Vec::new();
        let mut probes = Vec::new();
        // Each provider's own address is one endpoint, shared by every target that has no pool
        // of its own, so its health is judged once.
        let providers: FastMap<String, Arc<Endpoint>> = config
            .providers
            .iter()
            .filter_map(|p| {
                let adapter = adapter(p, None, &mut key_files)?;
                Some((
                    p.name.clone(),
                    Arc::new(Endpoint::new("default", 1, adapter, policy.clone())),
                ))
            })
            .collect();

        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = FastMap::default();
        for r in &config.routes {
            let targets = r
                .targets
                .iter()
                .filter_map(|t| {
                    let provider_config = config.providers.iter().find(|p| p.name == t.provider)?;
                    let endpoints = if t.endpoints.is_empty() {
                        vec![providers.get(&t.provider)?.clone()]
                    } else {
                        t.endpoints
                            .iter()
                            .filter_map(|e| {
                                let adapter = adapter(provider_config, Some(e), &mut key_files)?;
                                Some(Arc::new(Endpoint::new(
                                    &e.name,
                                    e.weight,
                                    adapter,
                                    policy.clone(),
                                )))
                            })
                            .collect::<Vec<_>>()
                    };
                    if endpoints.is_empty() {
                        return None;
                    }
                    if let Some(check) = t.health_check {
                        for endpoint in &endpoints {
                            if !probes.iter().any(|(e, _): &(Arc<Endpoint>, HealthCheck)| {
                                Arc::ptr_eq(e, endpoint)
                            }) {
                                probes.push((endpoint.clone(), check));
                            }
                        }
                    }
                    Some(Target {
                        provider: t.provider.clone(),
                        model: t.model.clone(),
                        pool: Pool::new(t.strategy, endpoints),
                    })
                })
                .collect();
            let route = Arc::new(Route {
                name: r.name.clone(),
                aliases: r.aliases.clone(),
                targets,
                configured: true,
                max_retries: r.max_retries,
                hedge_delay: r.hedge_delay,
                backoff,
                metrics: metrics.clone(),
            });
            for name in std::iter::once(&r.name).chain(&r.aliases) {
                by_name.insert(name.clone(), route.clone());
            }
            routes.push(route);
        }
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        Router {
            providers,
            routes,
            by_name,
            passthrough: std::sync::RwLock::default(),
            key_files,
            probes,
            metrics,
            policy,
            max_retries: config.routing.max_retries,
            backoff,
        }
    }

    /// The route a caller's model name reaches: a configured route or alias, or else
    /// `provider/model`, which passes `model` through to that provider as it is.
    pub fn resolve(&self, model: &str) -> Result<Arc<Route>, Error> {
        if let Some(route) = self.by_name.get(model) {
            return Ok(route.clone());
        }
        if let Some(route) = self.passthrough.read().unwrap_or_else(|e| e.into_inner()).get(model) {
            return Ok(route.clone());
        }
        let Some((provider, upstream)) = model.split_once('/') else {
            return Err(Error::ModelNotFound { model: model.to_owned() });
        };
        let Some(endpoint) = self.providers.get(provider).filter(|_| !upstream.is_empty()) else {
            return Err(Error::ModelNotFound { model: model.to_owned() });
        };
        let route = Arc::new(Route {
            name: model.to_owned(),
            aliases: Vec::new(),
            targets: vec![Target {
                provider: provider.to_owned(),
                model: upstream.to_owned(),
                pool: Pool::new(Strategy::Health, vec![endpoint.clone()]),
            }],
            configured: false,
            max_retries: self.max_retries,
            hedge_delay: None,
            backoff: self.backoff,
            metrics: self.metrics.clone(),
        });
        let mut cache = self.passthrough.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < MAX_PASSTHROUGH_ROUTES {
            cache.insert(model.to_owned(), route.clone());
        }
        Ok(route)
    }

    /// Every configured route, sorted by name.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The configured routes `client` may call (every one for an anonymous caller), with
    /// whether each route and target could serve at `now`.
    pub fn models(&self, client: Option<&ClientKey>, now: Instant) -> Vec<ModelInfo> {
        self.routes
            .iter()
            .filter(|route| client.is_none_or(|c| c.may_call(&route.name)))
            .map(|route| ModelInfo {
                name: route.name.clone(),
                aliases: route.aliases.clone(),
                targets: route
                    .targets
                    .iter()
                    .map(|t| TargetInfo {
                        provider: t.provider.clone(),
                        model: t.model.clone(),
                        available: t.pool.is_available(now, &t.model),
                    })
                    .collect(),
                available: route.is_available(now),
            })
            .collect()
    }

    /// Whether any route can serve now, or any provider reachable as `provider/model`. A
    /// provider whose endpoint cools one model down still serves the others.
    pub fn can_serve(&self, now: Instant) -> bool {
        self.routes.iter().any(|r| r.is_available(now))
            || self.providers.values().any(|e| e.is_available(now))
    }

    /// Probes every endpoint that has active health checks, for as long as it runs: a probe at
    /// once, then one every interval.
    pub async fn run_health_checks(&self) {
        let mut checks = tokio::task::JoinSet::new();
        for (endpoint, check) in self.probes.clone() {
            checks.spawn(async move {
                loop {
                    let probe = endpoint.provider.probe(check.timeout);
                    let passed =
                        matches!(tokio::time::timeout(check.timeout, probe).await, Ok(Ok(())));
                    endpoint.record_probe(
                        passed,
                        check.healthy_threshold,
                        check.unhealthy_threshold,
                    );
                    tokio::time::sleep(check.interval).await;
                }
            });
        }
        while checks.join_next().await.is_some() {}
    }

    /// The provider keys read from files, for rotation.
    pub fn key_files(&self) -> &[ProviderKey] {
        &self.key_files
    }

    /// The health policy endpoints are judged by.
    pub fn health_policy(&self) -> &HealthPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests;
