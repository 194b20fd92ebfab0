//! The standard gRPC health service (`grpc.health.v1`, from tonic-health), with two things
//! an operator needs on top of it:
//!
//! - [`HealthState`] keeps the overall status (`""`), `aiservice.v1.ChatService` and
//!   `aiservice.v1.EmbedService` in step:
//!   SERVING while a route can serve, NOT_SERVING otherwise or once draining began; and
//!   [`LIVENESS`] SERVING throughout, for liveness probes.
//! - [`DrainingHealth`] ends every `Watch` stream when the server drains, after telling the
//!   watcher NOT_SERVING. A watch never ends on its own, so without this a graceful shutdown
//!   would wait out its whole grace period for health watchers.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, server::NamedService};
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse,
        health_check_response::ServingStatus as WireStatus,
        health_server::{Health, HealthServer},
    },
    server::{HealthReporter, HealthService},
};

use crate::front::grpc::{ChatHandler, EmbedHandler};
use crate::proto::v1::{
    chat_service_server::ChatServiceServer, embed_service_server::EmbedServiceServer,
};

/// A health service name that is SERVING for as long as the process serves at all, through
/// a drain and an upstream outage: what a liveness probe should ask, so neither restarts the
/// pod.
pub const LIVENESS: &str = "liveness";

/// The health service name of the chat API.
pub const CHAT_SERVICE: &str = <ChatServiceServer<ChatHandler> as NamedService>::NAME;

/// The health service name of the embeddings API.
pub const EMBED_SERVICE: &str = <EmbedServiceServer<EmbedHandler> as NamedService>::NAME;

/// The reported health of the gateway; cheap to clone.
#[derive(Clone, Debug)]
pub struct HealthState {
    reporter: HealthReporter,
    drain: CancellationToken,
    /// The last status set, for readers that are not gRPC clients (the admin port).
    serving: Arc<AtomicBool>,
}

impl HealthState {
    /// A new state: SERVING or NOT_SERVING as `can_serve` says.
    pub async fn new(can_serve: bool) -> Self {
        let state = HealthState {
            reporter: HealthReporter::new(),
            drain: CancellationToken::new(),
            serving: Arc::new(AtomicBool::new(false)),
        };
        state.reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        state.set_can_serve(can_serve).await;
        state
    }

    /// Reports whether the gateway can serve; ignored once draining began.
    pub async fn set_can_serve(&self, can_serve: bool) {
        if self.drain.is_cancelled() {
            return;
        }
        self.serving.store(can_serve, Ordering::Relaxed);
        let status = if can_serve { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(CHAT_SERVICE, status).await;
        self.reporter.set_service_status(EMBED_SERVICE, status).await;
    }

    /// Turns every service NOT_SERVING for good and ends the health watches.
    pub async fn drain(&self) {
        self.serving.store(false, Ordering::Relaxed);
        self.reporter.set_service_status("", ServingStatus::NotServing).await;
        self.reporter.set_service_status(CHAT_SERVICE, ServingStatus::NotServing).await;
        self.reporter.set_service_status(EMBED_SERVICE, ServingStatus::NotServing).await;
        self.drain.cancel();
    }

    /// Whether the gateway reports SERVING.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// Whether draining began.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// The `grpc.health.v1.Health` service over this state.
    pub fn service(&self) -> HealthServer<DrainingHealth> {
        HealthServer::new(DrainingHealth {
            inner: HealthService::from_health_reporter(self.reporter.clone()),
            drain: self.drain.clone(),
        })
    }
}

/// tonic-health's service, whose watches end when the server drains.
#[derive(Debug)]
pub struct DrainingHealth {
    inner: HealthService,
    drain: CancellationToken,
}

/// The stream type of `Watch`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut inner = self.inner.watch(request).await?.into_inner();
        let drain = self.drain.clone();
        let stream = async_stream::stream! {
            let not_serving = WireStatus::NotServing as i32;
            let mut last = None;
            loop {
                tokio::select! {
                    biased;
                    item = inner.next() => match item {
                        Some(item) => {
                            last = item.as_ref().ok().map(|r| r.status);
                            yield item;
                        }
                        None => return,
                    },
                    () = drain.cancelled() => {
                        if last != Some(not_serving) {
                            yield Ok(HealthCheckResponse { status: not_serving });
                        }
                        return;
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
