//! ai-service: a gRPC-native gateway that puts the LLM providers behind one typed, streaming,
//! observable and secure API.
//!
//! The request flow, outside in: the tonic server ([`server`]) hands a call to the chat handler
//! ([`service`]), which validates it into the domain types of [`chat`] ([`validate`]), resolves
//! the caller's model name to a route ([`router`]) and calls the route's provider adapter
//! ([`provider`]). Every failure is an [`Error`], turned into a `tonic::Status` in one place.
//!
//! The library is what the `ai-service` binary runs, and it can be embedded: build a
//! [`Gateway`] from a [`Config`], then either mount [`Gateway::chat_service`] on your own tonic
//! router or let [`Gateway::serve`] run the whole gateway on a listener you own.

pub mod accept;
mod admin;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod call;
pub mod chat;
pub mod config;
pub mod error;
pub mod health;
pub mod healthcheck;
pub mod keys;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod proto;
pub mod provider;
pub mod redact;
pub mod redis_store;
pub mod router;
pub mod secret;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod validate;

pub use config::Config;
pub use error::Error;
pub use server::Gateway;
