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
//!
//! Values that differ from call to call (the request id, the bill's) are sent marked
//! sensitive, which HTTP/2 encodes as "never indexed" (RFC 7541 §6.2.3): outside the
//! connection's HPACK table. Indexed, each call's new value went into the table only to evict
//! entries that do repeat, and every later value of the same name was compared with all those
//! the table still held (~54 comparisons a unary call, a twentieth of the gateway's own
//! instructions). Their text is unchanged; HTTP/1.1 ignores the mark.

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

/// The three bill headers, in the order [`bill_headers`] gives them: an index into
/// [`BILL_HEADER_NAMES`] (and a door's own keys made once from them).
pub const BILL_HEADER_NAMES: [&str; 3] = [COST_USD, BUDGET_REMAINING_USD, BUDGET_REMAINING_TOKENS];

/// The bill's headers: cost, and what the key's budgets have left, each only when known, as
/// (index into [`BILL_HEADER_NAMES`], value). On the stack: a door inserts them under names it
/// parsed once, not under a name parsed again on every call.
pub fn bill_headers(bill: &Bill) -> impl Iterator<Item = (usize, String)> {
    let left = bill.left.unwrap_or_default();
    [
        bill.cost.as_ref().map(|cost| usd_text(cost.picousd)),
        left.picousd.map(usd_text),
        left.tokens.map(|tokens| itoa::Buffer::new().format(tokens).to_owned()),
    ]
    .into_iter()
    .enumerate()
    .filter_map(|(i, value)| Some((i, value?)))
}
