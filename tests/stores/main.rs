//! Secret and backup stores against real servers: Vault/OpenBao (`vault`). One test binary
//! (one link) for every store; run one with `cargo test --test stores vault::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod vault;
