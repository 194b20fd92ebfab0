//! Each provider adapter against a fake upstream that speaks its wire format, with recorded
//! fixtures: OpenAI and the OpenAI-compatible APIs, Anthropic, Gemini, Azure OpenAI, Vertex AI,
//! Cohere and AWS Bedrock. One
//! test binary; run one provider with `cargo test --test providers gemini::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;

mod anthropic;
mod azure;
mod bedrock;
mod cohere;
mod gemini;
mod openai;
mod proxy;
mod vertex;
mod vertex_workload_identity;
