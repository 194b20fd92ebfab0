//! The secret and backup stores against real servers started on 127.0.0.1 from `.tools/`
//! (`make tools`): Vault/OpenBao (`vault`) and moto's S3-compatible server (`backup`). One
//! test binary (one link) for every store; run one with `cargo test --test stores vault::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod backup;
mod vault;
