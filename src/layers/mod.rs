//! Tower layers of the gRPC port, outermost first, as [`crate::Gateway::serve`] stacks them
//! (the request flow of DESIGN.md):
//!
//! 1. arrival stamp ([`crate::service::Arrival`]): when the call's headers arrived, the moment
//!    tonic starts its own `grpc-timeout` timer, so the handler's deadline counts from there;
//! 2. [`request_id`]: every call gets an `x-request-id` (the caller's or a fresh one), seen by
//!    everything inside and returned in the response headers;
//! 3. authentication ([`crate::auth::AuthLayer`]): the client key, for every RPC but health and
//!    reflection; a refused call is answered UNAUTHENTICATED and audited here;
//! 4. the chat handler then, per call: waits for room in the audit queue, opens the call's span
//!    and metrics record (which writes the audit record when the call ends, however it ends),
//!    sheds the call at `max_in_flight`, checks the key's routes and rate limit, and runs the
//!    router. These live in the handler rather than in layers because they need the decoded
//!    request (model, messages), and so that an embedder who mounts only the chat service
//!    still gets them.

pub mod request_id;
pub mod rpc;
