//! What every call leaves behind: the audit trail, the record of each call (audit, metric,
//! log line) on happy and unhappy paths, and no secret in any of them. One test binary; run
//! one file with `cargo test --test records audit::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod call_records;
mod log_flush;
mod redaction;
