//! Tower layers of the gRPC port, outermost first, as [`crate::Gateway::serve`] stacks them:
//!
//! 1. [`request_id`]: every call gets an `x-request-id` (the caller's or a fresh one), seen by
//!    everything inside and returned in the response headers;
//! 2. the chat handler opens the call's span and records its metrics
//!    ([`crate::metrics::rpc`]), so an embedder that mounts only the chat service gets them
//!    too.

pub mod request_id;
