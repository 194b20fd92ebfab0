//! The front doors: the ways a call comes in. Each one translates its wire format into the
//! call pipeline's domain types ([`crate::call`]) and the outcome back, and does nothing
//! else; each has exactly one place that turns an [`crate::Error`] into its own error shape.
//!
//! - [`grpc`]: `aiservice.v1.ChatService`, the primary API;
//! - [`openai`]: the OpenAI-compatible HTTP API;
//! - [`anthropic`]: the Anthropic-compatible HTTP API (`POST /v1/messages`);
//!
//! The HTTP doors share [`http`]: their router, on the gRPC port or a listener of their own.

pub mod anthropic;
pub mod grpc;
pub mod http;
pub mod openai;
