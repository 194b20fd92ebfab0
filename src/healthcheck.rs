//! `ai-service healthcheck`: a gRPC health probe for container `HEALTHCHECK`s and scripts,
//! speaking the same `grpc.health.v1.Health/Check` that Kubernetes' `grpc:` probe uses.

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Why a probe did not find the service SERVING.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The address is not a valid endpoint.
    #[error("invalid address {0:?}")]
    Address(String),
    /// No connection or no answer in time.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address probed.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The service answered with another status.
    #[error("{service:?} is {status}")]
    NotServing {
        /// The service probed ("" is the whole server).
        service: String,
        /// What it reported.
        status: String,
    },
}

/// Checks `service` at `addr` (`host:port` or a URL); `Ok` only when it is SERVING.
pub async fn probe(addr: &str, service: &str, timeout: Duration) -> Result<(), ProbeError> {
    let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    let endpoint = Endpoint::from_shared(url).map_err(|_| ProbeError::Address(addr.to_owned()))?;
    let unreachable = |reason: String| ProbeError::Unreachable { addr: addr.to_owned(), reason };
    let channel = endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.to_owned() })
        .await
        .map_err(|s| unreachable(format!("{:?}: {}", s.code(), s.message())))?;
    let status = response.into_inner().status();
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        Err(ProbeError::NotServing {
            service: service.to_owned(),
            status: status.as_str_name().to_owned(),
        })
    }
}
