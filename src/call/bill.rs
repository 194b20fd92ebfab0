//! Billing, the pipeline's last step before a call's answer leaves: once the call's usage is
//! known, what it cost ([`crate::cost::Pricing`]) and what its client key has left after it
//! is charged ([`Admission::charge`]: the token rate and the budgets). The [`Bill`] rides on
//! the answer ([`crate::chat::Answer::bill`]) or on a stream's [`crate::chat::Finish`], so the
//! front door can show it and the call's record ([`super::record`]) can write it down.
//!
//! A unary call is billed when its answer is complete; a stream by its relay
//! ([`super::relay`]), after the usage event and before the finish, so a running stream is
//! never cut for its budget and its cost is charged when it ends. An answer from the response
//! cache costs nothing: no provider was paid, and no budget is charged.

use std::sync::Arc;

use super::admission::Admission;
use crate::{
    chat::{Bill, Cost, Usage},
    config::ClientKey,
    cost::Pricing,
};

/// The name a cache hit's zero cost is listed under.
pub const CACHED: &str = "cache";

/// The bill of an answer the response cache gave: nothing paid.
pub fn cached() -> Bill {
    Bill { cost: Some(Cost { priced_as: CACHED.into(), ..Cost::default() }), left: None }
}

/// Bills one call answered by `provider` for a target whose model is `target_model`.
#[derive(Clone, Debug)]
pub struct Biller {
    pricing: Arc<Pricing>,
    admission: Admission,
    key: Option<Arc<ClientKey>>,
    provider: String,
    target_model: String,
}

impl Biller {
    /// A biller at `pricing` charging `key` (none for an anonymous call) through `admission`.
    pub fn new(
        pricing: Arc<Pricing>,
        admission: Admission,
        key: Option<Arc<ClientKey>>,
        provider: String,
        target_model: String,
    ) -> Biller {
        Biller { pricing, admission, key, provider, target_model }
    }

    /// Prices `usage` of a reply naming `reply_model` and charges the key.
    pub async fn bill(&self, usage: &Usage, reply_model: &str) -> Bill {
        let cost = self.pricing.cost(&self.provider, &self.target_model, reply_model, usage);
        let left = match &self.key {
            Some(key) => self.admission.charge(key, usage, cost.as_ref()).await,
            None => None,
        };
        Bill { cost, left }
    }
}
