//! Admission: whether a call may go on, once its caller is known and its request understood.
//!
//! In order: a place under the process-wide in-flight limit (`server.max_in_flight`, else
//! RESOURCE_EXHAUSTED `OVERLOADED`, shed rather than queued), then, for a call with a client
//! key, the key's routes (PERMISSION_DENIED), its request rate (RESOURCE_EXHAUSTED
//! `RATE_LIMITED`) and its budgets (RESOURCE_EXHAUSTED `BUDGET_EXHAUSTED`, see
//! [`crate::limits::budget`]). When the call ends ([`super::bill`]), its tokens are charged
//! against the key's token rate, and its cost and tokens against its budgets.
//! Anonymous calls (no keys configured) pass the key checks.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::record::CallRecord;
use crate::{
    chat::{BudgetLeft, Cost, Usage},
    config::{ClientKey, Limits},
    error::Error,
    limits::{RateLimiter, budget::Budgets},
};

/// The admission checks of a gateway; cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    limiter: Option<Arc<RateLimiter>>,
    budgets: Option<Arc<Budgets>>,
}

impl Admission {
    /// Admission under `limits`, with the per-key rate limiter and budgets when there are.
    pub fn new(
        limits: &Limits,
        limiter: Option<Arc<RateLimiter>>,
        budgets: Option<Arc<Budgets>>,
    ) -> Self {
        Admission {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            max_in_flight: limits.max_in_flight,
            limiter,
            budgets,
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
    /// its request rate or has spent a budget.
    pub async fn authorize(&self, client: Option<&ClientKey>, route: &str) -> Result<(), Error> {
        let Some(key) = client else { return Ok(()) };
        if !key.may_call(route) {
            return Err(Error::PermissionDenied { route: route.to_owned() });
        }
        if let Some(limiter) = &self.limiter {
            limiter.check_request(&key.id, &key.limits()).await?;
        }
        if let Some(budgets) = &self.budgets {
            budgets.check(key).await?;
        }
        Ok(())
    }

    /// Counts a finished call's tokens against its key's token rate and its `cost` and tokens
    /// against its budgets; what the budgets have left, when it has any.
    pub async fn charge(
        &self,
        key: &ClientKey,
        usage: &Usage,
        cost: Option<&Cost>,
    ) -> Option<BudgetLeft> {
        let tokens = u64::from(usage.total_tokens());
        if let Some(limiter) = &self.limiter {
            limiter.add_tokens(&key.id, tokens, &key.limits()).await;
        }
        match &self.budgets {
            Some(budgets) => budgets.charge(key, cost, tokens).await,
            None => None,
        }
    }
}
