//! What the console's JSON endpoints show, as typed structs: the route table read from the
//! router in force (`/api/routes`) and the overview (`/api/overview`: build version, the
//! redacted configuration, where the gRPC port is).
//!
//! Nothing here can carry a secret: endpoints are shown by name, weight and health, never by
//! address or key, and the configuration is the redacted snapshot the backup stores
//! ([`crate::config::backup::redacted_snapshot`]).

use serde::Serialize;
use tokio::time::Instant;

use crate::{
    metrics::BreakerState,
    router::{Endpoint, Router},
};

/// `/api/routes`.
#[derive(Debug, Serialize)]
pub struct RouteTable {
    /// Configured routes, sorted by name (the order of `ListModels`).
    pub routes: Vec<RouteView>,
}

/// One route.
#[derive(Debug, Serialize)]
pub struct RouteView {
    /// The name callers use.
    pub name: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Whether any target could serve now.
    pub available: bool,
    /// The failover chain, in order.
    pub targets: Vec<TargetView>,
}

/// One target of a route.
#[derive(Debug, Serialize)]
pub struct TargetView {
    /// The provider's configured name.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// Whether any endpoint could take a call for this model now.
    pub available: bool,
    /// Its endpoint pool, in configured order.
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint of a target's pool.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// Its name in the pool (`default` for a provider's own address).
    pub name: String,
    /// Its share of the traffic.
    pub weight: u32,
    /// Whether it takes calls for this target's model now.
    pub available: bool,
    /// Out of rotation: its breaker is open or it fails its health checks.
    pub ejected: bool,
    /// `closed`, `half_open` or `open`.
    pub breaker: &'static str,
    /// Seconds this target's model still cools down after a 429, when it does.
    pub cooling_secs: Option<f64>,
}

impl RouteTable {
    /// The routes of `router` and the health of their endpoints at `now`.
    pub fn of(router: &Router, now: Instant) -> RouteTable {
        let routes = router
            .routes()
            .iter()
            .map(|route| RouteView {
                name: route.name.clone(),
                aliases: route.aliases.clone(),
                available: route.is_available(now),
                targets: route
                    .targets
                    .iter()
                    .map(|target| TargetView {
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        available: target.pool.is_available(now, &target.model),
                        endpoints: target
                            .pool
                            .endpoints()
                            .iter()
                            .map(|e| EndpointView::of(e, &target.model, now))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        RouteTable { routes }
    }
}

impl EndpointView {
    fn of(endpoint: &Endpoint, model: &str, now: Instant) -> EndpointView {
        EndpointView {
            name: endpoint.name.clone(),
            weight: endpoint.weight,
            available: endpoint.weight > 0 && endpoint.is_available_for(now, model),
            ejected: !endpoint.is_available(now),
            breaker: match endpoint.breaker_state(now) {
                BreakerState::Closed => "closed",
                BreakerState::HalfOpen => "half_open",
                BreakerState::Open => "open",
            },
            cooling_secs: endpoint.cooling_for(now, model).map(|d| d.as_secs_f64()),
        }
    }
}

/// `/api/overview`.
#[derive(Debug, Serialize)]
pub struct Overview<'a> {
    /// The crate version of this build.
    pub version: &'static str,
    /// The gRPC port, for the playground's gRPC-Web calls (same host as the console).
    pub grpc_port: u16,
    /// Whether the gRPC port speaks TLS.
    pub grpc_tls: bool,
    /// Whether calls need a client key.
    pub client_keys: bool,
    /// Whether the configuration is the built-in echo fallback.
    pub echo_fallback: bool,
    /// The effective configuration, secrets masked, as YAML.
    pub config: &'a str,
}
