//! The money parts of the configuration: token prices (`pricing:` and a target's `price:`)
//! and client-key budgets (`auth.keys[i].budget`, also in the keys file).
//!
//! Amounts are written in US dollars as YAML numbers or strings (`2.50`, `"0.075"`) and read
//! exactly into integer pico-dollars (10⁻¹² USD): a price per million tokens becomes
//! pico-dollars per token with no rounding, so the cost arithmetic of [`crate::cost`] and the
//! budget counters of [`crate::limits::budget`] stay exact. An amount with more digits than a
//! pico-dollar per token can hold is refused rather than rounded.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// An amount of dollars as written: a YAML number or a string of decimal digits.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAmount {
    /// `2.5`: read back through its shortest decimal form, which is the text written.
    Number(f64),
    /// `"2.50"`.
    Text(String),
}

impl RawAmount {
    fn text(&self) -> String {
        match self {
            RawAmount::Number(n) => format!("{n}"),
            RawAmount::Text(t) => t.trim().to_owned(),
        }
    }
}

/// A model's prices as written, in US dollars per million tokens.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// Plain prompt tokens (neither read from nor written to a prompt cache).
    pub input: Option<RawAmount>,
    /// Generated tokens.
    pub output: Option<RawAmount>,
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cache_read: Option<RawAmount>,
    /// Prompt tokens written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write: Option<RawAmount>,
    /// Reasoning tokens, when the model bills them apart from output (default: output's).
    #[serde(default)]
    pub reasoning: Option<RawAmount>,
}

/// `pricing:` provider name or provider kind → model → prices.
pub type RawPricing = BTreeMap<String, BTreeMap<String, RawPrice>>;

/// A model's prices, in pico-dollars per token (= dollars per million tokens × 10⁶).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Price {
    /// Plain prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Cache reads; `None`: unknown (a call that read the cache has an unknown cost).
    pub cache_read: Option<u64>,
    /// Cache writes; `None`: unknown.
    pub cache_write: Option<u64>,
    /// Reasoning tokens; `None`: billed as output.
    pub reasoning: Option<u64>,
}

/// One configured price: for `model` of the provider (or provider kind) `scope`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceEntry {
    /// A provider's name, or a provider kind (`openai`, `anthropic`, …).
    pub scope: String,
    /// The upstream model name.
    pub model: String,
    /// Its prices.
    pub price: Price,
}

/// `pricing:` and the targets' `price:`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PricingConfig {
    /// `pricing:` entries, in file order.
    pub entries: Vec<PriceEntry>,
    /// Targets' own prices (`scope` is the target's provider name): they win over all else.
    pub targets: Vec<PriceEntry>,
}

/// A client key's budgets as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// `day` or `month` (UTC calendar).
    pub window: BudgetWindow,
    /// Dollars the key may spend in a window.
    #[serde(default)]
    pub usd: Option<RawAmount>,
    /// Tokens (input plus output) the key may spend in a window.
    #[serde(default)]
    pub tokens: Option<u64>,
}

/// The calendar period a budget covers, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    /// From 00:00 UTC to the next.
    Day,
    /// From the first of the month, 00:00 UTC, to the next first.
    Month,
}

impl BudgetWindow {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Day => "day",
            BudgetWindow::Month => "month",
        }
    }
}

/// A client key's budgets, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The window.
    pub window: BudgetWindow,
    /// Pico-dollars a window.
    pub picousd: Option<u64>,
    /// Tokens a window.
    pub tokens: Option<u64>,
}

/// Digits after the point that a pico-dollar amount keeps, per unit of `scale`.
const PICO_DIGITS: u32 = 12;

/// Parses `text`, a non-negative decimal amount, into units of 10^-`digits`; `None` when it
/// is not one or needs more digits.
fn parse_decimal(text: &str, digits: u32) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    let places = u32::try_from(fraction.len()).ok().filter(|&n| n <= digits)?;
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: u64 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    whole
        .checked_mul(10u64.pow(digits))?
        .checked_add(fraction.checked_mul(10u64.pow(digits - places))?)
}

/// Dollars per million tokens → pico-dollars per token (at most six decimals).
pub fn per_million_to_pico_per_token(text: &str) -> Option<u64> {
    parse_decimal(text, PICO_DIGITS - 6)
}

/// Dollars → pico-dollars (at most twelve decimals).
pub fn usd_to_pico(text: &str) -> Option<u64> {
    parse_decimal(text, PICO_DIGITS)
}

fn amount(at: &str, raw: Option<&RawAmount>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.text();
    per_million_to_pico_per_token(&text).map(Some).ok_or_else(|| {
        ConfigError::new(
            at,
            format!("{text:?} is not a price in dollars per million tokens (e.g. 2.50, at most six decimals)"),
        )
    })
}

/// Validates one model's prices found at `at`.
pub fn validate_price(at: &str, raw: &RawPrice) -> Result<Price, ConfigError> {
    let required = |field: &str, value: Option<&RawAmount>| {
        amount(&format!("{at}.{field}"), value)?
            .ok_or_else(|| ConfigError::new(format!("{at}.{field}"), "is required"))
    };
    Ok(Price {
        input: required("input", raw.input.as_ref())?,
        output: required("output", raw.output.as_ref())?,
        cache_read: amount(&format!("{at}.cache_read"), raw.cache_read.as_ref())?,
        cache_write: amount(&format!("{at}.cache_write"), raw.cache_write.as_ref())?,
        reasoning: amount(&format!("{at}.reasoning"), raw.reasoning.as_ref())?,
    })
}

/// Validates `pricing:`; every scope must be a configured provider's name or a provider kind
/// (`is_scope`).
pub fn validate_pricing(
    raw: &RawPricing,
    is_scope: impl Fn(&str) -> bool,
) -> Result<Vec<PriceEntry>, ConfigError> {
    let mut entries = Vec::new();
    for (scope, models) in raw {
        if !is_scope(scope) {
            return Err(ConfigError::new(
                format!("pricing.{scope}"),
                "is neither a configured provider nor a provider kind",
            ));
        }
        for (model, price) in models {
            let price = validate_price(&format!("pricing.{scope}.{model}"), price)?;
            entries.push(PriceEntry { scope: scope.clone(), model: model.clone(), price });
        }
    }
    Ok(entries)
}

/// Validates a client key's budget found at `at`.
pub fn validate_budget(at: &str, raw: &RawBudget) -> Result<Budget, ConfigError> {
    let picousd = match &raw.usd {
        None => None,
        Some(amount) => {
            let text = amount.text();
            Some(usd_to_pico(&text).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.usd"),
                    format!("{text:?} is not an amount of dollars"),
                )
            })?)
        }
    };
    if picousd.is_none() && raw.tokens.is_none() {
        return Err(ConfigError::new(at, "needs usd, tokens or both"));
    }
    // Redis counts in signed 64-bit integers.
    if picousd.is_some_and(|p| p > i64::MAX as u64 / 2) {
        return Err(ConfigError::new(format!("{at}.usd"), "must be under $4,000,000 a window"));
    }
    if raw.tokens.is_some_and(|t| t > i64::MAX as u64 / 2) {
        return Err(ConfigError::new(format!("{at}.tokens"), "is too large"));
    }
    Ok(Budget { window: raw.window, picousd, tokens: raw.tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_become_exact_pico_dollars_per_token() {
        assert_eq!(per_million_to_pico_per_token("2.50"), Some(2_500_000));
        assert_eq!(per_million_to_pico_per_token("0.075"), Some(75_000));
        assert_eq!(per_million_to_pico_per_token("15"), Some(15_000_000));
        assert_eq!(per_million_to_pico_per_token(".5"), Some(500_000));
        assert_eq!(per_million_to_pico_per_token("0.000001"), Some(1));
        assert_eq!(per_million_to_pico_per_token("0.0000001"), None, "finer than a pico-dollar");
        assert_eq!(per_million_to_pico_per_token("0.10000000"), Some(100_000), "trailing zeros");
        for bad in ["", ".", "-1", "1e3", "1,5", "abc", "1.2.3"] {
            assert_eq!(per_million_to_pico_per_token(bad), None, "{bad:?}");
        }
        assert_eq!(usd_to_pico("1.5"), Some(1_500_000_000_000));
        assert_eq!(RawAmount::Number(0.075).text(), "0.075", "floats read back as written");
    }

    #[test]
    fn a_price_needs_input_and_output_and_names_its_field() {
        let raw: RawPrice = yaml_serde::from_str("{input: 3, cache_read: \"0.30\"}").unwrap();
        let err = validate_price("pricing.anthropic.m", &raw).unwrap_err();
        assert_eq!(err.path, "pricing.anthropic.m.output");
        let raw: RawPrice = yaml_serde::from_str("{input: 3, output: 1e-9}").unwrap();
        assert_eq!(validate_price("p", &raw).unwrap_err().path, "p.output");
    }

    #[test]
    fn a_budget_needs_an_amount() {
        let raw: RawBudget = yaml_serde::from_str("{window: day}").unwrap();
        assert_eq!(validate_budget("k.budget", &raw).unwrap_err().path, "k.budget");
        let raw: RawBudget = yaml_serde::from_str("{window: month, usd: 12.5}").unwrap();
        let budget = validate_budget("k", &raw).unwrap();
        assert_eq!(budget.picousd, Some(12_500_000_000_000));
        assert_eq!(budget.window, BudgetWindow::Month);
    }
}
