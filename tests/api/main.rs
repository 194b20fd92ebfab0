//! The gRPC API through a real gateway, one file per capability: Chat and StreamChat, bad
//! requests and their details, deadlines, ListModels, health, reflection, request and rate
//! limits, client keys, TLS, usage, embedding the gateway in another program, the response
//! cache and the Redis shared by replicas. One test binary (one link instead of fifteen keeps
//! `make test` lean on two cores); run one file with `cargo test --test api auth::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod bad_request;
mod cache;
mod chat_stream;
mod chat_unary;
mod deadline;
mod embedding;
mod health;
mod limits;
mod list_models;
mod redis_shared;
mod reflection;
mod request_limits;
mod tls;
mod usage;
