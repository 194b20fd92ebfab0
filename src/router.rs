//! The router: a caller's model name → a [`Route`] → its ordered chain of [`Target`]s
//! (provider + upstream model).
//!
//! A call goes to the first target; on a retryable provider failure it moves on to the next
//! one, and the caller gets the last failure when every target failed. A caller's own mistake
//! (an error that is not retryable) ends the call at once.

use std::{collections::HashMap, sync::Arc};

use crate::{
    chat::{ChatRequest, ChatResponse},
    config::Config,
    error::Error,
    provider::{self, ChatStream, ProviderError, SharedProvider},
};

/// One provider model in a route's failover chain.
#[derive(Debug, Clone)]
pub struct Target {
    /// The adapter.
    pub provider: SharedProvider,
    /// The upstream model name.
    pub model: String,
}

/// A public model name and its failover chain.
#[derive(Debug)]
pub struct Route {
    /// The name callers use.
    pub name: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Targets, in failover order; never empty.
    pub targets: Vec<Target>,
}

/// What answered a call.
#[derive(Debug, Clone)]
pub struct Served<T> {
    /// The answer.
    pub value: T,
    /// The target that gave it.
    pub target: Target,
}

impl Route {
    /// Whether at least one target can serve now.
    pub fn is_available(&self) -> bool {
        !self.targets.is_empty()
    }

    /// One complete answer, failing over along the chain.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Served<ChatResponse>, Error> {
        let mut last: Option<ProviderError> = None;
        for target in &self.targets {
            match target.provider.chat(&target.model, request).await {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        target: target.clone(),
                    });
                }
                Err(err) if err.is_retryable() => {
                    tracing::warn!(provider = %err.provider, error = %err.message, "target failed; trying the next");
                    last = Some(err);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(last.map_or_else(
            || Error::Internal(format!("route {} has no targets", self.name)),
            Error::from,
        ))
    }

    /// A streamed answer. Failover happens only while opening the stream, before any event has
    /// reached the caller.
    pub async fn stream(&self, request: &ChatRequest) -> Result<Served<ChatStream>, Error> {
        let mut last: Option<ProviderError> = None;
        for target in &self.targets {
            match target.provider.stream(&target.model, request).await {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        target: target.clone(),
                    });
                }
                Err(err) if err.is_retryable() => last = Some(err),
                Err(err) => return Err(err.into()),
            }
        }
        Err(last.map_or_else(
            || Error::Internal(format!("route {} has no targets", self.name)),
            Error::from,
        ))
    }
}

/// All routes, by name and alias.
#[derive(Debug)]
pub struct Router {
    providers: HashMap<String, SharedProvider>,
    routes: Vec<Arc<Route>>,
    by_name: HashMap<String, Arc<Route>>,
}

impl Router {
    /// Builds the provider adapters and routes of a validated config. A provider whose
    /// adapter cannot be built (its HTTP client failed) is left out and its targets fail over;
    /// [`Router::try_from_config`] reports that instead.
    pub fn from_config(config: &Config) -> Router {
        let mut providers = HashMap::new();
        for p in &config.providers {
            match provider::build(p) {
                Ok(adapter) => {
                    providers.insert(p.name.clone(), adapter);
                }
                Err(e) => tracing::error!(provider = %p.name, error = %e, "cannot build provider"),
            }
        }
        Router::with_providers(config, providers)
    }

    /// Builds the provider adapters and routes of a validated config, failing on the first
    /// adapter that cannot be built.
    pub fn try_from_config(config: &Config) -> Result<Router, ProviderError> {
        let mut providers = HashMap::new();
        for p in &config.providers {
            providers.insert(p.name.clone(), provider::build(p)?);
        }
        Ok(Router::with_providers(config, providers))
    }

    fn with_providers(config: &Config, providers: HashMap<String, SharedProvider>) -> Router {
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = HashMap::new();
        for r in &config.routes {
            let targets = r
                .targets
                .iter()
                // Validation guarantees every target names a configured provider.
                .filter_map(|t| {
                    providers.get(t.provider.as_str()).map(|p| Target {
                        provider: p.clone(),
                        model: t.model.clone(),
                    })
                })
                .collect();
            let route = Arc::new(Route {
                name: r.name.clone(),
                aliases: r.aliases.clone(),
                targets,
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
        }
    }

    /// The route a caller's model name reaches: a configured route or alias, or else
    /// `provider/model`, which passes `model` through to that provider as it is.
    pub fn resolve(&self, model: &str) -> Result<Arc<Route>, Error> {
        if let Some(route) = self.by_name.get(model) {
            return Ok(route.clone());
        }
        if let Some((provider, upstream)) = model.split_once('/')
            && let Some(provider) = self.providers.get(provider)
            && !upstream.is_empty()
        {
            return Ok(Arc::new(Route {
                name: model.to_owned(),
                aliases: Vec::new(),
                targets: vec![Target {
                    provider: provider.clone(),
                    model: upstream.to_owned(),
                }],
            }));
        }
        Err(Error::ModelNotFound {
            model: model.to_owned(),
        })
    }

    /// Every route, sorted by name.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Whether any route can serve now, or a provider reachable as `provider/model`.
    pub fn can_serve(&self) -> bool {
        self.routes.iter().any(|r| r.is_available()) || !self.providers.is_empty()
    }
}
