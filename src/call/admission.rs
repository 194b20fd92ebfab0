//! Admission: whether a call may go on, once its caller is known and its request understood.
//!
//! In order: a place under the process-wide in-flight limit (`server.max_in_flight`, else
//! RESOURCE_EXHAUSTED `OVERLOADED`, shed rather than queued), then, for a call with a client
//! key, the key's routes (PERMISSION_DENIED) and its request rate (RESOURCE_EXHAUSTED
//! `RATE_LIMITED`). When the call ends, its tokens are charged against the key's token rate.
//! Anonymous calls (no keys configured) pass the key checks.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::Semaphore;

use super::record::CallRecord;
use crate::{
    chat::{ReplyEvent, Usage},
    config::{ClientKey, Limits},
    error::Error,
    limits::RateLimiter,
};

/// The admission checks of a gateway; cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    limiter: Option<Arc<RateLimiter>>,
}

impl Admission {
    /// Admission under `limits`, with the per-key rate limiter when there is one.
    pub fn new(limits: &Limits, limiter: Option<Arc<RateLimiter>>) -> Self {
        Admission {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            max_in_flight: limits.max_in_flight,
            limiter,
        }
    }

    /// Takes a place under the in-flight limit for the call, held by its record until it
    /// ends, or sheds it.
    pub fn take_place(&self, record: &mut CallRecord) -> Result<(), Error> {
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                record.hold(permit);
                Ok(())
            }
            Err(_) => Err(Error::Overloaded { limit: self.max_in_flight }),
        }
    }

    /// PERMISSION_DENIED unless `client` may call `route`; RESOURCE_EXHAUSTED when it is over
    /// its request rate.
    pub async fn authorize(&self, client: Option<&ClientKey>, route: &str) -> Result<(), Error> {
        let Some(key) = client else { return Ok(()) };
        if !key.may_call(route) {
            return Err(Error::PermissionDenied { route: route.to_owned() });
        }
        match &self.limiter {
            Some(limiter) => {
                limiter.check_request(&key.id, &key.limits()).await.map_err(Error::from)
            }
            None => Ok(()),
        }
    }

    /// Counts a finished call's tokens against its key's token rate.
    pub async fn charge(&self, key: &ClientKey, usage: &Usage) {
        if let Some(limiter) = &self.limiter {
            limiter.add_tokens(&key.id, u64::from(usage.total_tokens()), &key.limits()).await;
        }
    }

    /// `stream`, charging its tokens to `key` when its usage event passes.
    pub fn charged<S>(
        &self,
        mut stream: S,
        key: Arc<ClientKey>,
    ) -> impl Stream<Item = Result<ReplyEvent, Error>> + Send + 'static
    where
        S: Stream<Item = Result<ReplyEvent, Error>> + Send + Unpin + 'static,
    {
        let admission = self.clone();
        async_stream::stream! {
            while let Some(item) = stream.next().await {
                if let Ok(ReplyEvent::Usage(usage)) = &item {
                    admission.charge(&key, usage).await;
                }
                yield item;
            }
        }
    }
}
