//! The front doors: the ways a call comes in. Each one translates its wire format into the
//! call pipeline's domain types ([`crate::call`]) and the outcome back, and does nothing
//! else; each has exactly one place that turns an [`crate::Error`] into its own error shape.
//!
//! - [`grpc`]: `aiservice.v1.ChatService`, the primary API;
//! - [`grpc_web`]: the same services over gRPC-Web, for browsers (CORS, then `tonic-web`);
//! - [`openai`]: the OpenAI-compatible HTTP API;
//! - [`anthropic`]: the Anthropic-compatible HTTP API (`POST /v1/messages`);
//!
//! The HTTP doors share [`http`]: their router, on the gRPC port or a listener of their own.
//! Every door shows a call's bill ([`bill_headers`]) under the same header names: gRPC as
//! response metadata (unary) or trailers (stream), HTTP as response headers (unary).

pub mod anthropic;
pub mod grpc;
pub mod grpc_web;
pub mod http;
pub mod openai;

use crate::chat::{Bill, usd_text};

/// The trailer (unary: header) with the call's cost in US dollars; absent when unknown.
pub const COST_USD: &str = "x-ai-cost-usd";
/// The header or trailer with the dollars left in the client key's budget window.
pub const BUDGET_REMAINING_USD: &str = "x-ai-budget-remaining-usd";
/// The header or trailer with the tokens left in the client key's budget window.
pub const BUDGET_REMAINING_TOKENS: &str = "x-ai-budget-remaining-tokens";

/// The bill's headers: cost, and what the key's budgets have left; each only when known.
pub fn bill_headers(bill: &Bill) -> Vec<(&'static str, String)> {
    let mut headers = Vec::with_capacity(3);
    if let Some(cost) = &bill.cost {
        headers.push((COST_USD, usd_text(cost.picousd)));
    }
    if let Some(left) = &bill.left {
        if let Some(pico) = left.picousd {
            headers.push((BUDGET_REMAINING_USD, usd_text(pico)));
        }
        if let Some(tokens) = left.tokens {
            headers.push((BUDGET_REMAINING_TOKENS, tokens.to_string()));
        }
    }
    headers
}
