//! Tower layers of the gRPC port, outermost first, as [`crate::Gateway::serve`] stacks them
//! (the request flow of DESIGN.md):
//!
//! 1. arrival stamp ([`crate::service::Arrival`]): when the call's headers arrived, the moment
//!    tonic starts its own `grpc-timeout` timer, so the handler's deadline counts from there;
//! 2. [`request_id`]: every call gets an `x-request-id` (the caller's or a fresh one), seen by
//!    everything inside and returned in the response headers;
//!
//! Then, around the chat service only ([`crate::Gateway::chat_service`], so an embedder who
//! mounts just that service still gets them):
//!
//! 3. [`rpc`]: waits for room in the audit queue and opens the call's span and record (which
//!    writes the audit record, the metrics and the log line when the call ends, however it
//!    ends), before the body is decoded, so refusals by what follows are recorded too;
//! 4. authentication ([`crate::auth::AuthLayer`]): the client key; a refused call is answered
//!    UNAUTHENTICATED;
//! 5. tonic decodes the request (refusing one over `server.max_request_bytes` or undecodable)
//!    and the chat handler takes the record: it sheds the call at `max_in_flight`, checks the
//!    key's routes and rate limit and runs the router. These live in the handler because they
//!    need the decoded request (model, messages).

pub mod request_id;
pub mod rpc;
