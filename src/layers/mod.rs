//! Tower layers of the gRPC port, outermost first, as [`crate::Gateway::serve`] stacks them
//! (the request flow of DESIGN.md):
//!
//! 1. arrival stamp ([`crate::front::grpc::Arrival`]): when the call's headers arrived, the
//!    moment tonic starts its own `grpc-timeout` timer, so the call's deadline counts from
//!    there;
//! 2. [`request_id`]: every call gets an `x-request-id` (the caller's or a fresh one), seen by
//!    everything inside and returned in the response headers.
//!
//! Then, around the chat service only ([`crate::Gateway::chat_service`], so an embedder who
//! mounts just that service still gets it), the gRPC front door's own layer
//! ([`crate::front::grpc::layer`]) begins each call in the pipeline and identifies its caller
//! before tonic decodes the body; the handler then hands the decoded call to the pipeline
//! ([`crate::call`]).

pub mod request_id;
