//! Tests against real storage servers started on 127.0.0.1 from `.tools/` (`make tools`):
//! backup and restore against moto's S3 server. One test binary, one file per store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod backup;
