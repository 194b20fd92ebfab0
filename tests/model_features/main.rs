//! Today's model features through the gateway, one file per capability: reasoning, prompt
//! caching, documents, embeddings, the cost of every call and budgets per client key. They
//! share one test binary (one link instead of six keeps `make test` lean on two cores); run
//! one capability with `cargo test --test model_features reasoning::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod budgets;
mod cost;
mod documents;
mod embeddings;
mod prompt_caching;
mod reasoning;
