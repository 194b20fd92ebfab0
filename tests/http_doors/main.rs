//! The HTTP front doors: the shared HTTP port, the OpenAI-compatible API and the
//! Anthropic-compatible API, each through a real gateway; and the operator console that the
//! admin port serves to browsers. One test binary; run one door with
//! `cargo test --test http_doors openai::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod anthropic;
mod console;
mod front;
mod grpc_web;
mod openai;
