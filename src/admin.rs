//! The admin HTTP port (`server.admin_listen`, 9090 by default), for tools that speak plain
//! HTTP rather than gRPC:
//!
//! - `GET /metrics`: the Prometheus text exposition of the gateway's registry (404 when its
//!   metrics go to an embedder's own `metrics` recorder or a backend that renders none);
//! - `GET /livez`: 200 while the process serves HTTP at all;
//! - `GET /readyz`: 200 while the gRPC health is SERVING and the server is not draining,
//!   503 otherwise, so a load balancer stops sending calls as soon as the drain begins;
//! - `GET /` and `/api/*`: the operator console ([`crate::console`]), unless
//!   `server.console: false` (then 404). Its sampling task runs as long as the port serves.
//!
//! HTTP/1.1 on hyper directly: a handful of fixed answers need no framework.

use std::{convert::Infallible, future::Future, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};

use crate::{
    console::Console, health::HealthState, metrics::Recorder, metrics::prometheus::CONTENT_TYPE,
};

/// What the admin port reports on; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Admin {
    pub(crate) metrics: Recorder,
    pub(crate) health: HealthState,
    /// The operator console; `None` when `server.console` is off.
    pub(crate) console: Option<Console>,
}

/// Aborts the console's sampling task when the admin port stops.
struct Sampler(tokio::task::JoinHandle<()>);

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Admin {
    /// Serves `listener` until `shutdown` resolves; open connections are then closed.
    pub(crate) async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        let _sampler = self
            .console
            .as_ref()
            .map(|console| Sampler(tokio::spawn(console.sampler(self.metrics.clone()))));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let admin = self.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |request| {
                                let answer = admin.answer(&request);
                                async move { Ok::<_, Infallible>(answer) }
                            });
                            let io = TokioIo::new(stream);
                            if let Err(e) = http1::Builder::new().serve_connection(io, service).await {
                                tracing::debug!(error = %e, "admin connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "admin port cannot accept; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Dropping the set aborts the connections still open (idle keep-alives, mostly).
        drop(connections);
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        }
        match request.uri().path() {
            "/metrics" => match self.metrics.render() {
                Some(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(CONTENT_TYPE),
                    );
                    response
                }
                None => {
                    text(StatusCode::NOT_FOUND, "metrics go to the embedding service's backend\n")
                }
            },
            "/livez" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if self.health.is_serving() && !self.health.is_draining() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
            path => {
                let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
                match self.console.as_ref().and_then(|console| console.answer(path, host)) {
                    Some(page) => page,
                    None => {
                        text(StatusCode::NOT_FOUND, "not found; try /metrics, /livez or /readyz\n")
                    }
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
