//! What keeps the gateway up, one file per capability: failover, hostile callers and
//! upstreams, key rotation, config reload, graceful shutdown, zero-downtime restarts and the
//! command line's config checks. One test binary; run one file with
//! `cargo test --test resilience failover::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod config_cli;
mod config_reload;
mod failover;
mod hostile_callers;
mod hostile_upstreams;
mod key_rotation;
mod shutdown;
mod zero_downtime;
