//! ai-service: a gRPC-native gateway that puts the LLM providers behind one typed, streaming,
//! observable and secure API.
//!
//! The request flow, outside in: a front door ([`front`]: gRPC on the server of [`server`])
//! translates a call into the domain types of [`chat`] (or [`embed`]) and hands it to the call
//! pipeline ([`call`]): identity, admission, the response cache ([`cache`]), the router
//! ([`router`]) with its retries and failover over the providers' adapters ([`provider`]), the
//! relay of a stream, and one record of the call (audit, metrics, log). Every failure is an [`Error`],
//! turned into each front door's error shape in one place.
//!
//! The library is what the `ai-service` binary runs, and it can be embedded: build a
//! [`Gateway`] from a [`Config`], then either mount [`Gateway::chat_service`] (and
//! [`Gateway::embed_service`]) on your own tonic router or let [`Gateway::serve`] run the
//! whole gateway on a listener you own.

pub mod accept;
mod admin;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod call;
pub mod chat;
pub mod config;
pub mod console;
pub mod cost;
pub mod embed;
pub mod error;
mod fast_map;
pub mod front;
pub mod health;
pub mod healthcheck;
mod json_text;
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
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod vault;

pub use config::Config;
pub use error::Error;
pub use server::Gateway;
