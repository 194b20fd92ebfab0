//! The gateway as a whole: builds the router and the gRPC services from a [`Config`] and
//! serves them, with a staged shutdown.
//!
//! Services on the gRPC port: `aiservice.v1.ChatService` and `aiservice.v1.EmbedService`,
//! `grpc.health.v1.Health`, and server reflection in both `v1` and `v1alpha` (older grpcurl
//! builds speak only the latter); each also over gRPC-Web unless `server.grpc_web` turns it
//! off ([`crate::front::grpc_web`]).
//!
//! Shutdown, when the future given to [`Gateway::serve`] resolves:
//! 1. health turns NOT_SERVING and health watches end;
//! 2. the server keeps serving for `server.shutdown_delay`, so load balancers notice;
//! 3. the listener closes and connections get GOAWAY: no new calls;
//! 4. calls in flight get `server.shutdown_grace` to finish; those still running then end
//!    with UNAVAILABLE (`SERVER_STOPPED`), so a caller knows its answer is incomplete.
//!
//! The admin HTTP port ([`Gateway::serve_admin`]: `/metrics`, `/livez`, `/readyz`, the
//! operator console) is separate, so an embedder is not forced to have one; [`Gateway::run`]
//! binds both and keeps the admin port up until the gRPC server has stopped, so `/readyz`
//! reports the drain.

use std::{future::Future, net::SocketAddr, sync::Arc};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    service::{Routes, RoutesBuilder},
    transport::Server,
};

use crate::{
    accept,
    admin::Admin,
    audit::AuditSink,
    auth::ClientKeys,
    backup::task::BackupTask,
    cache::ResponseCache,
    call::{Parts, Pipeline},
    config::Config,
    console::Console,
    cost::Pricing,
    error::Error,
    front::grpc::{
        Arrival, ChatHandler, EmbedHandler,
        layer::{Rpc, RpcLayer},
    },
    front::grpc_web::GrpcWebLayer,
    front::http::HttpState,
    health::HealthState,
    keys::KeyRing,
    layers::request_id::RequestIdLayer,
    limits::{RateLimiter, budget::Budgets},
    metrics::{FacadeMetrics, GlobalRecorder, Metrics, PrometheusMetrics, Recorder},
    proto::{
        self,
        v1::{chat_service_server::ChatServiceServer, embed_service_server::EmbedServiceServer},
    },
    redis_store::RedisStore,
    router::Router,
    tls::{self, TlsReloader},
};

/// The chat service as [`Gateway::chat_service`] stacks it, outermost first.
pub type ChatServiceStack = Rpc<ChatServiceServer<ChatHandler>>;

/// The gRPC embeddings service behind the same layer as the chat service.
pub type EmbedServiceStack = Rpc<EmbedServiceServer<EmbedHandler>>;

/// How often the health status is brought in line with whether any route can serve.
const HEALTH_REFRESH: std::time::Duration = std::time::Duration::from_millis(200);

/// Keeps the health status in step with the routes: NOT_SERVING while no route can serve
/// (every endpoint ejected), SERVING again when one can.
async fn watch_routes(router: Arc<ArcSwap<Router>>, health: HealthState) {
    let mut last = None;
    loop {
        let can_serve = router.load().can_serve(tokio::time::Instant::now());
        if last != Some(can_serve) {
            if last.is_some() {
                tracing::warn!(can_serve, "route availability changed");
            }
            health.set_can_serve(can_serve).await;
            last = Some(can_serve);
        }
        tokio::time::sleep(HEALTH_REFRESH).await;
    }
}

/// Re-reads the key files every `interval`.
async fn reload_keys(keys: KeyRing, interval: std::time::Duration) {
    loop {
        tokio::time::sleep(interval).await;
        keys.reload();
    }
}

/// Aborts a task when dropped, so a helper task never outlives the server that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The response cache and rate limiter of `config`, on one shared Redis connection when
/// either uses Redis. The connection is lazy: the gateway starts while Redis is down.
fn shared_state(
    config: &Config,
    metrics: &Recorder,
) -> (Option<Arc<ResponseCache>>, Arc<RateLimiter>, Arc<Budgets>) {
    let redis = config.redis.as_ref().and_then(|redis| match RedisStore::new(redis) {
        Ok(store) => Some(store),
        Err(error) => {
            tracing::error!(%error, "cannot set up the Redis connection");
            None
        }
    });
    let cache = ResponseCache::from_config(config, redis.as_ref(), metrics.clone());
    let limiter = Arc::new(RateLimiter::from_config(config, redis.as_ref(), metrics.clone()));
    let budgets = Arc::new(Budgets::from_config(config, redis.as_ref(), metrics.clone()));
    (cache, limiter, budgets)
}

/// Adds `service` to the gRPC port's routes, behind the gRPC-Web door.
fn add_service<S>(builder: &mut RoutesBuilder, web: &GrpcWebLayer, service: S)
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    builder.add_service(tower::Layer::layer(web, service));
}

/// How long to wait for connections to close after the grace period ended their calls.
const HARD_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A configured gateway, ready to serve or to be mounted into another server.
#[derive(Clone, Debug)]
pub struct Gateway {
    config: Arc<Config>,
    /// The routes and providers in force; a configuration reload swaps them.
    router: Arc<ArcSwap<Router>>,
    /// Told when the routes were swapped, so the health checks follow the new endpoints.
    reloaded: Arc<tokio::sync::Notify>,
    health: HealthState,
    /// Cancelled when the grace period is over: calls still running end with UNAVAILABLE.
    stop: CancellationToken,
    metrics: Recorder,
    audit: AuditSink,
    keys: KeyRing,
    cache: Option<Arc<ResponseCache>>,
    limiter: Arc<RateLimiter>,
    /// The token prices in force; a configuration reload swaps them with the routes.
    pricing: Arc<ArcSwap<Pricing>>,
    /// The call pipeline every front door hands its calls to.
    pipeline: Pipeline,
    /// Cancelled when the gRPC port stops taking new calls (the drain's third step).
    closing: CancellationToken,
}

impl Gateway {
    /// Builds the providers, routes and health state of `config`, with a Prometheus registry
    /// of its own for its metrics (`metrics-exporter-prometheus`, not installed globally).
    /// Fails only when the audit sink cannot be opened.
    pub async fn new(config: Config) -> Result<Gateway, Error> {
        Gateway::with_metrics(config, Arc::new(PrometheusMetrics::new())).await
    }

    /// Like [`Gateway::new`], emitting every metric through the `metrics` facade to
    /// `recorder`, an embedding service's own recorder (its catalogue described to it on the
    /// way). The admin port's `/metrics` then answers 404: the service exports them.
    pub async fn with_metrics_recorder<R>(config: Config, recorder: R) -> Result<Gateway, Error>
    where
        R: ::metrics::Recorder + Send + Sync + 'static,
    {
        Gateway::with_metrics(config, Arc::new(FacadeMetrics::new(recorder))).await
    }

    /// Like [`Gateway::with_metrics_recorder`] with the recorder installed globally
    /// (`metrics::set_global_recorder`), which must be in place before this is called.
    pub async fn with_global_metrics_recorder(config: Config) -> Result<Gateway, Error> {
        Gateway::with_metrics_recorder(config, GlobalRecorder).await
    }

    /// Like [`Gateway::new`], emitting every metric to `metrics`, an embedding service's own
    /// backend. The admin port's `/metrics` then serves what `metrics.render()` returns.
    pub async fn with_metrics(config: Config, metrics: Arc<dyn Metrics>) -> Result<Gateway, Error> {
        let metrics = Recorder::new(metrics);
        metrics.build_info();
        let audit = AuditSink::open(&config.audit, metrics.clone())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let router = Router::with_metrics(&config, metrics.clone());
        let store = match &config.vault {
            Some(vault) => Some(Arc::new(
                crate::vault::SecretStore::new(vault)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            )),
            None => None,
        };
        if store.is_some() {
            // The config's secrets were read just before (`vault::resolve`).
            metrics.secret_store_ok();
        }
        let keys = KeyRing::new(router.key_files().to_vec(), ClientKeys::new(&config.auth), store);
        let health = HealthState::new(router.can_serve(tokio::time::Instant::now())).await;
        let router = Arc::new(ArcSwap::from_pointee(router));
        let (cache, limiter, budgets) = shared_state(&config, &metrics);
        let pricing = Arc::new(ArcSwap::from_pointee(Pricing::new(&config)));
        let stop = CancellationToken::new();
        let pipeline = Pipeline::new(Parts {
            router: router.clone(),
            default_timeout: config.server.request_timeout,
            stop: stop.clone(),
            metrics: metrics.clone(),
            audit: Some(audit.clone()),
            limits: config.server.limits.clone(),
            keys: Some(keys.client_keys.clone()),
            cache: cache.clone(),
            limiter: Some(limiter.clone()),
            budgets: Some(budgets),
            pricing: pricing.clone(),
        });
        Ok(Gateway {
            config: Arc::new(config),
            router,
            reloaded: Arc::new(tokio::sync::Notify::new()),
            health,
            stop,
            metrics,
            audit,
            keys,
            cache,
            limiter,
            pricing,
            pipeline,
            closing: CancellationToken::new(),
        })
    }

    /// Applies the providers, routes and routing policy of `config` without a restart (what
    /// SIGHUP does with the config file): new calls use the new routes and prices, calls in
    /// flight finish on the old ones. Endpoint health starts afresh. The other sections (server, auth, audit,
    /// cache, limits, redis, log, tracing) take effect at the next start; a change to them is
    /// logged.
    pub fn reload(&self, config: &Config) {
        let unchanged = config.server == self.config.server
            && config.auth.same_settings(&self.config.auth)
            && config.audit == self.config.audit
            && config.log == self.config.log
            && config.tracing == self.config.tracing;
        if !unchanged {
            tracing::warn!(
                "config reload: server, auth, audit, log and tracing settings take effect at the next start"
            );
        }
        let router = Router::with_metrics(config, self.metrics.clone());
        self.keys.provider_keys.store(Arc::new(router.key_files().to_vec()));
        let names: Vec<String> = router.routes().iter().map(|r| r.name.clone()).collect();
        self.router.store(Arc::new(router));
        self.pricing.store(Arc::new(Pricing::new(config)));
        self.reloaded.notify_waiters();
        tracing::info!(routes = %names.join(","), "config reloaded: routes and providers swapped");
    }

    /// Re-reads every secret held in Vault now (what SIGHUP does); false when the store
    /// failed (the secrets in force stay; logged and counted in the metrics).
    pub async fn refresh_secrets(&self) -> bool {
        crate::vault::refresh::refresh(&self.keys, &self.metrics).await
    }

    /// Fetches the Vault references of `config` (a config about to be applied with
    /// [`Gateway::reload`]), through the gateway's own Vault session when it has one.
    pub async fn resolve_secrets(
        &self,
        config: &mut Config,
    ) -> Result<(), crate::vault::VaultError> {
        match &self.keys.store {
            Some(store) if Some(store.config()) == config.vault.as_ref() => {
                crate::vault::resolve_with(store, config).await
            }
            _ => crate::vault::resolve(config).await,
        }
    }

    /// Re-reads every key file now (what SIGHUP does); returns how many provider keys changed.
    pub fn reload_keys(&self) -> usize {
        self.keys.reload()
    }

    /// The audit sink; [`Gateway::serve`] closes it when it stops.
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// The handle every part of the gateway emits its metrics through.
    pub fn metrics(&self) -> &Recorder {
        &self.metrics
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The health state; an embedding service may drain it itself.
    pub fn health(&self) -> &HealthState {
        &self.health
    }

    /// The gRPC chat service alone, to mount on another tonic server: the handler behind the
    /// layer that begins each call in the pipeline (before its body is decoded) and checks
    /// its client key.
    pub fn chat_service(&self) -> ChatServiceStack {
        let limits = &self.config.server.limits;
        let handler = ChatServiceServer::new(ChatHandler::new(self.pipeline.clone()))
            .max_decoding_message_size(limits.max_request_bytes);
        tower::Layer::layer(
            &RpcLayer::new(self.pipeline.clone(), limits.max_request_bytes),
            handler,
        )
    }

    /// The gRPC embeddings service alone, to mount on another tonic server, behind the same
    /// layer as [`Gateway::chat_service`].
    pub fn embed_service(&self) -> EmbedServiceStack {
        let limits = &self.config.server.limits;
        let handler = EmbedServiceServer::new(EmbedHandler::new(self.pipeline.clone()))
            .max_decoding_message_size(limits.max_request_bytes);
        tower::Layer::layer(
            &RpcLayer::new(self.pipeline.clone(), limits.max_request_bytes),
            handler,
        )
    }

    /// The call pipeline every front door hands its calls to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The response cache, when a route caches answers.
    pub fn cache(&self) -> Option<&Arc<ResponseCache>> {
        self.cache.as_ref()
    }

    /// The per-client rate limiter (`limits:`), for the auth layer to call.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Every service of the gRPC port: chat, embeddings, health and reflection.
    pub fn routes(&self) -> Result<Routes, Error> {
        // The error-detail types too, so grpcurl decodes a failed call's details. A file in
        // more than one set (google/protobuf/*) is served from the first that has it.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(proto::ERROR_DETAILS_DESCRIPTOR_SET)
        };
        let v1 =
            reflection().build_v1().map_err(|e| Error::Internal(format!("reflection: {e}")))?;
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
        // The gRPC-Web door in front of each service (`front::grpc_web`).
        let web = GrpcWebLayer::new(&self.config.server.grpc_web);
        let mut builder = Routes::builder();
        add_service(&mut builder, &web, self.chat_service());
        add_service(&mut builder, &web, self.embed_service());
        add_service(&mut builder, &web, self.health.service());
        add_service(&mut builder, &web, v1);
        add_service(&mut builder, &web, v1alpha);
        let routes = builder.routes();
        let http = &self.config.server.http;
        if http.enabled && http.listen.is_none() {
            // Same port: the HTTP front doors' paths beside the gRPC services'.
            return Ok(Routes::from(routes.into_axum_router().merge(self.http_router())));
        }
        Ok(routes)
    }

    /// The HTTP front doors (OpenAI- and Anthropic-compatible), to serve on a listener of
    /// their own or to mount on another server.
    pub fn http_router(&self) -> axum::Router {
        let http = &self.config.server.http;
        crate::front::http::router(HttpState {
            pipeline: self.pipeline.clone(),
            max_request_bytes: self.config.server.limits.max_request_bytes,
            body_timeout: http.body_timeout,
        })
    }

    /// Serves the HTTP front doors alone on a listener the caller owns (`server.http.listen`)
    /// until `shutdown` resolves, then lets the calls in flight finish.
    pub async fn serve_http(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "HTTP front doors listening (OpenAI- and Anthropic-compatible)");
        }
        let app = self
            .http_router()
            .layer(RequestIdLayer)
            .layer(tower::util::MapRequestLayer::new(Arrival::stamp));
        if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(%error, "the HTTP front doors' listener failed");
        }
    }

    /// Binds `server.listen` and `server.admin_listen`, serves both until `shutdown`
    /// resolves, drains the gRPC port, then closes the admin port.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Internal(format!("cannot listen on {addr}: {e}")))
        };
        let listener = bind(self.config.server.listen).await?;
        let admin = bind(self.config.server.admin_listen).await?;
        let http = match self.config.server.http.listen.filter(|_| self.config.server.http.enabled)
        {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let admin = self.clone().serve_admin(admin, async {
            let _ = stopped_rx.await;
        });
        // An HTTP listener of its own closes when the gRPC port does (the drain's third step).
        let http = http.map(|listener| {
            let closing = self.closing.clone();
            tokio::spawn(
                self.clone().serve_http(listener, async move { closing.cancelled().await }),
            )
        });
        let grpc = async move {
            let result = self.serve(listener, shutdown).await;
            let _ = stopped_tx.send(());
            result
        };
        let result = tokio::join!(grpc, admin).0;
        if let Some(http) = http {
            let _ = http.await;
        }
        result
    }

    /// Serves the admin HTTP port (`/metrics`, `/livez`, `/readyz` and, unless `server.console`
    /// is off, the operator console at `/`) on a listener the caller owns until `shutdown`
    /// resolves. Give it a shutdown that resolves after [`Gateway::serve`] returned, so
    /// `/readyz` answers 503 through the drain.
    pub async fn serve_admin(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        if let Ok(addr) = listener.local_addr() {
            let console = if self.config.server.console { ", console at /" } else { "" };
            tracing::info!(%addr, "admin port listening (HTTP: /metrics, /livez, /readyz{console})");
        }
        let console = self.config.server.console.then(|| {
            Console::new(self.router.clone(), self.config.clone(), self.keys.client_keys.required())
        });
        Admin { metrics: self.metrics, health: self.health, console }
            .serve(listener, shutdown)
            .await;
    }

    /// Serves on a listener the caller owns until `shutdown` resolves, then drains and flushes
    /// the audit trail.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let audit = self.audit.clone();
        let backup = self.start_backup();
        let grace = self.config.server.shutdown_grace;
        let result = self.serve_until_drained(listener, shutdown).await;
        audit.close().await;
        // The audit sink closed its last segment: upload it within the shutdown grace.
        if let Some(backup) = backup {
            backup.finish(grace).await;
        }
        result
    }

    async fn serve_until_drained(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let local: Option<SocketAddr> = listener.local_addr().ok();
        let handshake_timeout = self.config.server.handshake_timeout;
        match self.config.server.tls.clone() {
            None => {
                let (incoming, acceptor) =
                    accept::incoming(listener, handshake_timeout, accept::preface);
                let _acceptor = AbortOnDrop(acceptor);
                self.drive(incoming, shutdown, local).await
            }
            Some(files) => {
                let tls = TlsReloader::new(&files).map_err(Error::Internal)?;
                let _reloader = AbortOnDrop(tokio::spawn(tls.clone().watch()));
                let (incoming, acceptor) = tls::incoming(listener, tls, handshake_timeout);
                let _acceptor = AbortOnDrop(acceptor);
                tracing::info!(mtls = files.client_ca_file.is_some(), "TLS on the gRPC port");
                self.drive(incoming, shutdown, local).await
            }
        }
    }

    /// Serves the connections of `incoming` through the staged shutdown of the module docs.
    async fn drive<IO, IE>(
        self,
        incoming: impl futures::Stream<Item = Result<IO, IE>>,
        shutdown: impl Future<Output = ()>,
        local: Option<SocketAddr>,
    ) -> Result<(), Error>
    where
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let routes = self.routes()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let http = &self.config.server.http;
        let server = Server::builder()
            // The HTTP front doors on this port and gRPC-Web take HTTP/1.1 too (gRPC needs
            // HTTP/2; a browser's fetch may use either).
            .accept_http1(
                (http.enabled && http.listen.is_none()) || self.config.server.grpc_web.enabled,
            )
            // Outermost, so the arrival time is the moment tonic starts its deadline timer.
            .layer(tower::util::MapRequestLayer::new(Arrival::stamp))
            .layer(RequestIdLayer)
            .max_concurrent_streams(Some(self.config.server.limits.max_concurrent_streams))
            // PINGs reap peers that vanished or stall after the preface.
            .http2_keepalive_interval(self.config.server.keepalive_interval)
            .http2_keepalive_timeout(Some(self.config.server.keepalive_timeout))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        tokio::pin!(server);

        let _health_monitor =
            AbortOnDrop(tokio::spawn(watch_routes(self.router.clone(), self.health.clone())));
        let (router, reloaded) = (self.router.clone(), self.reloaded.clone());
        let _health_checks = AbortOnDrop(tokio::spawn(async move {
            // The checks of the routes in force, started over when they are swapped.
            loop {
                let current = router.load_full();
                tokio::select! {
                    // No endpoint has checks: wait for routes that may.
                    () = current.run_health_checks() => reloaded.notified().await,
                    () = reloaded.notified() => {}
                }
            }
        }));
        let _key_reloader = AbortOnDrop(tokio::spawn(reload_keys(
            self.keys.clone(),
            self.config.server.key_reload_interval,
        )));
        let _secret_refresher = self.config.vault.as_ref().map(|vault| {
            AbortOnDrop(tokio::spawn(crate::vault::refresh::run(
                self.keys.clone(),
                vault.refresh_interval,
                self.metrics.clone(),
            )))
        });
        self.log_start(local);
        tokio::select! {
            result = &mut server => return result.map_err(|e| Error::Internal(format!("server: {e}"))),
            () = shutdown => {}
        }

        let server_config = &self.config.server;
        self.health.drain().await;
        tracing::info!(delay = ?server_config.shutdown_delay, "health is NOT_SERVING; still serving for the shutdown delay");
        tokio::select! {
            result = &mut server => return result.map_err(|e| Error::Internal(format!("server: {e}"))),
            () = tokio::time::sleep(server_config.shutdown_delay) => {}
        }

        let _ = stop_tx.send(());
        self.closing.cancel();
        tracing::info!(grace = ?server_config.shutdown_grace, "no new calls; waiting for calls in flight");
        match tokio::time::timeout(server_config.shutdown_grace, &mut server).await {
            Ok(result) => {
                tracing::info!("drained; stopped");
                result.map_err(|e| Error::Internal(format!("server: {e}")))
            }
            Err(_) => {
                tracing::warn!("grace period over with calls still in flight; ending them");
                self.stop.cancel();
                // Ended calls close their connections at once; don't wait on a stuck peer.
                let _ = tokio::time::timeout(HARD_STOP_WAIT, &mut server).await;
                Ok(())
            }
        }
    }

    /// The backup task of `backup:`, owned by [`Gateway::serve`]; a store that cannot be set
    /// up is logged and the gateway serves without backup (segments wait on disk).
    fn start_backup(&self) -> Option<BackupTask> {
        let config = self.config.backup.clone()?;
        match BackupTask::start(config, self.audit.clone(), self.metrics.clone()) {
            Ok(task) => Some(task),
            Err(error) => {
                tracing::error!(%error, "backup: cannot set up the object store; audit segments stay on disk");
                None
            }
        }
    }

    fn log_start(&self, local: Option<SocketAddr>) {
        let router = self.router.load();
        let routes: Vec<&str> = router.routes().iter().map(|r| r.name.as_str()).collect();
        let addr = local.map(|a| a.to_string()).unwrap_or_default();
        if self.config.echo_fallback {
            tracing::warn!(
                %addr,
                "no provider configured: serving the built-in echo provider as model \"echo\"; \
                 set a provider key (e.g. OPENAI_API_KEY) or a config file to serve real models"
            );
        }
        tracing::info!(%addr, routes = %routes.join(","), "ai-service listening (gRPC)");
    }
}
