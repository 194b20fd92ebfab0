//! The shipped price list: public list prices, in US dollars per million tokens, of the
//! models `docs/providers.md` names and their close relatives, for each provider kind that
//! sells them. Standard (not batch, not priority) tier, short-context rates. Sources and the
//! rules behind them are in `docs/cost.md`; `pricing:` in the config overrides or adds.
//!
//! Anthropic's cache writes are listed at the 5-minute rate (1.25 × input): its usage does
//! not say which TTL a write had. Gemini's cache reads are its context-caching rate. OpenAI
//! reports no cache writes, so its models list none.

use crate::fast_map::FastMap;

use crate::config::{Price, ProviderKind, pricing::per_million_to_pico_per_token};

/// (kind, model, input, output, cache read, cache write), dollars per million tokens; `""`
/// for a price the provider does not list.
type Row = (ProviderKind, &'static str, &'static str, &'static str, &'static str, &'static str);

const ROWS: &[Row] = {
    use ProviderKind::{Anthropic, Cohere, DeepSeek, Gemini, Groq, Mistral, OpenAi, Together, XAi};
    &[
        // https://openai.com/api/pricing/
        (OpenAi, "gpt-4o", "2.50", "10.00", "1.25", ""),
        (OpenAi, "gpt-4o-mini", "0.15", "0.60", "0.075", ""),
        (OpenAi, "gpt-4.1", "2.00", "8.00", "0.50", ""),
        (OpenAi, "gpt-4.1-mini", "0.40", "1.60", "0.10", ""),
        (OpenAi, "gpt-4.1-nano", "0.10", "0.40", "0.025", ""),
        (OpenAi, "gpt-5", "1.25", "10.00", "0.125", ""),
        (OpenAi, "gpt-5-mini", "0.25", "2.00", "0.025", ""),
        (OpenAi, "gpt-5-nano", "0.05", "0.40", "0.005", ""),
        (OpenAi, "o1", "15.00", "60.00", "7.50", ""),
        (OpenAi, "o3", "2.00", "8.00", "0.50", ""),
        (OpenAi, "o3-mini", "1.10", "4.40", "0.55", ""),
        (OpenAi, "o4-mini", "1.10", "4.40", "0.275", ""),
        // Embeddings: input only.
        (OpenAi, "text-embedding-3-small", "0.02", "0", "", ""),
        (OpenAi, "text-embedding-3-large", "0.13", "0", "", ""),
        (OpenAi, "text-embedding-ada-002", "0.10", "0", "", ""),
        // https://docs.anthropic.com/en/docs/about-claude/pricing
        (Anthropic, "claude-opus-4-1", "15", "75", "1.50", "18.75"),
        (Anthropic, "claude-opus-4-5", "5", "25", "0.50", "6.25"),
        (Anthropic, "claude-sonnet-4-5", "3", "15", "0.30", "3.75"),
        (Anthropic, "claude-sonnet-4", "3", "15", "0.30", "3.75"),
        (Anthropic, "claude-haiku-4-5", "1", "5", "0.10", "1.25"),
        (Anthropic, "claude-3-5-haiku", "0.80", "4", "0.08", "1"),
        // https://ai.google.dev/gemini-api/docs/pricing
        (Gemini, "gemini-2.5-pro", "1.25", "10.00", "0.125", ""),
        (Gemini, "gemini-2.5-flash", "0.30", "2.50", "0.03", ""),
        (Gemini, "gemini-2.5-flash-lite", "0.10", "0.40", "0.01", ""),
        (Gemini, "gemini-2.0-flash", "0.10", "0.40", "0.025", ""),
        (Gemini, "gemini-embedding-001", "0.15", "0", "", ""),
        // https://cohere.com/pricing (billed tokens, which is what the adapter reports)
        (Cohere, "command-a-03-2025", "2.50", "10.00", "", ""),
        (Cohere, "command-r-plus-08-2024", "2.50", "10.00", "", ""),
        (Cohere, "command-r-08-2024", "0.15", "0.60", "", ""),
        (Cohere, "command-r7b-12-2024", "0.0375", "0.15", "", ""),
        (Cohere, "embed-v4.0", "0.12", "0", "", ""),
        (Cohere, "embed-english-v3.0", "0.10", "0", "", ""),
        (Cohere, "embed-multilingual-v3.0", "0.10", "0", "", ""),
        // https://groq.com/pricing
        (Groq, "llama-3.3-70b-versatile", "0.59", "0.79", "", ""),
        (Groq, "llama-3.1-8b-instant", "0.05", "0.08", "", ""),
        // https://api-docs.deepseek.com/quick_start/pricing
        (DeepSeek, "deepseek-chat", "0.28", "0.42", "0.028", ""),
        (DeepSeek, "deepseek-reasoner", "0.28", "0.42", "0.028", ""),
        // https://mistral.ai/pricing#api-pricing
        (Mistral, "mistral-large-latest", "2", "6", "", ""),
        (Mistral, "mistral-small-latest", "0.10", "0.30", "", ""),
        // https://www.together.ai/pricing
        (Together, "meta-llama/Llama-3.3-70B-Instruct-Turbo", "0.88", "0.88", "", ""),
        // https://docs.x.ai/docs/models
        (XAi, "grok-3", "3", "15", "0.75", ""),
        (XAi, "grok-3-mini", "0.30", "0.50", "0.075", ""),
    ]
};

fn amount(text: &str) -> Option<u64> {
    per_million_to_pico_per_token(text)
}

/// The shipped prices by kind, then model.
pub fn table() -> FastMap<ProviderKind, FastMap<&'static str, Price>> {
    let mut table: FastMap<ProviderKind, FastMap<&'static str, Price>> = FastMap::default();
    for &(kind, model, input, output, read, write) in ROWS {
        let (Some(input), Some(output)) = (amount(input), amount(output)) else { continue };
        let price = Price {
            input,
            output,
            cache_read: amount(read),
            cache_write: amount(write),
            reasoning: None,
        };
        table.entry(kind).or_default().insert(model, price);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_price_parses() {
        let count: usize = table().values().map(FastMap::len).sum();
        assert_eq!(count, ROWS.len(), "a row failed to parse or is listed twice");
        let gpt4o = table()[&ProviderKind::OpenAi]["gpt-4o"];
        assert_eq!(
            (gpt4o.input, gpt4o.output, gpt4o.cache_read),
            (2_500_000, 10_000_000, Some(1_250_000))
        );
    }
}
