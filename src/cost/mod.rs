//! The cost of a call: which price applies to the model that answered, and what its tokens
//! cost at that price, exactly.
//!
//! Where it sits in the request flow: when a call's usage is known (a unary answer, or the
//! usage event at the end of a stream) the pipeline ([`crate::call`]) asks [`Pricing::cost`]
//! with the provider that answered, the target's configured model, the model the reply
//! names and the [`Usage`]; the [`Cost`] goes into the call's [`crate::chat::Bill`], from
//! there to the caller, the budget ([`crate::limits::budget`]), the audit record and the
//! metrics ([`crate::call::record`]). Embeddings price their usage the same way.
//!
//! Which price: the target's own `price:`, then `pricing:` under the provider's name, then
//! under its kind, then the shipped list ([`defaults`]) for its kind (for Vertex AI, Gemini's
//! and Anthropic's); under each, the model
//! the reply names, then that name without a version suffix ([`base_model`]), then the
//! target's model and its base. The first found wins. None found: the cost is unknown
//! (`None`), never 0.
//!
//! Arithmetic: prices are integer pico-dollars per token, sums are 128-bit, and each token
//! class is billed once — plain input (input − cache reads − cache writes) at the input
//! price, cache reads and writes at theirs, output less reasoning at the output price and
//! reasoning at the reasoning price (the output price when the model has none). A class with
//! tokens but no price makes the cost unknown.

pub mod defaults;

use crate::fast_map::FastMap;

use crate::{
    chat::{Cost, Usage},
    config::{Config, Price, ProviderKind, ProviderSettings},
};

/// Every price the gateway knows; built from the config, swapped with it on reload.
#[derive(Clone, Debug, Default)]
pub struct Pricing {
    /// Provider name → its kind.
    kinds: FastMap<String, ProviderKind>,
    /// Provider name → model → the target's own price.
    targets: Scoped,
    /// Provider name or kind → model → a `pricing:` entry.
    configured: Scoped,
    /// kind → model → a shipped price.
    shipped: FastMap<ProviderKind, FastMap<&'static str, Price>>,
}

impl Pricing {
    /// The prices of `config` over the shipped ones.
    pub fn new(config: &Config) -> Pricing {
        let kinds = config
            .providers
            .iter()
            .map(|p| {
                let kind = match &p.settings {
                    ProviderSettings::Echo { .. } => ProviderKind::Echo,
                    ProviderSettings::OpenAi { kind, .. } => *kind,
                    ProviderSettings::AzureOpenAi { .. } => ProviderKind::AzureOpenAi,
                    ProviderSettings::Anthropic { .. } => ProviderKind::Anthropic,
                    ProviderSettings::Gemini { .. } => ProviderKind::Gemini,
                    ProviderSettings::Vertex { .. } => ProviderKind::Vertex,
                    ProviderSettings::Cohere { .. } => ProviderKind::Cohere,
                    ProviderSettings::Bedrock { .. } => ProviderKind::Bedrock,
                };
                (p.name.clone(), kind)
            })
            .collect();
        Pricing {
            kinds,
            targets: Scoped::new(&config.pricing.targets),
            configured: Scoped::new(&config.pricing.entries),
            shipped: defaults::table(),
        }
    }

    /// The price for a call `provider` answered as `reply_model`, sent as the target's
    /// `target_model`, and the name it is listed under; see the module docs for the order.
    pub fn price_of(
        &self,
        provider: &str,
        target_model: &str,
        reply_model: &str,
    ) -> Option<(&str, &Price)> {
        if let Some(found) = self.targets.get(provider, target_model) {
            return Some(found);
        }
        let mut models = Candidates::default();
        let kind = self.kinds.get(provider).copied();
        for scope in std::iter::once(provider).chain(kind.map(ProviderKind::name)) {
            let Some(prices) = self.configured.0.get(scope) else { continue };
            // The reply's own model first, the usual hit, before the other names are worked out.
            if let Some(found) = listed(prices, reply_model) {
                return Some(found);
            }
            for model in models.of(reply_model, target_model) {
                if let Some(found) = listed(prices, model) {
                    return Some(found);
                }
            }
        }
        let kind = kind?;
        if kind == ProviderKind::Echo {
            return Some((crate::config::ECHO, &FREE));
        }
        models.of(reply_model, target_model);
        // Vertex AI lists Google's and Anthropic's models at their own APIs' list prices, and
        // so does Bedrock for Claude, under its own ids (`us.anthropic.claude-…-v1:0`).
        let tables: &[ProviderKind] = match kind {
            ProviderKind::Vertex => &[ProviderKind::Gemini, ProviderKind::Anthropic],
            ProviderKind::Bedrock => {
                for model in [reply_model, target_model] {
                    let id = bedrock_model(model);
                    models.push(id);
                    models.push(base_model(id));
                }
                &[ProviderKind::Anthropic]
            }
            _ => std::slice::from_ref(&kind),
        };
        let models = models.names();
        tables.iter().filter_map(|k| self.shipped.get(k)).find_map(|shipped| {
            models
                .iter()
                .find_map(|model| shipped.get_key_value(*model).map(|(key, price)| (*key, price)))
        })
    }

    /// What `usage` cost, answered by `provider` as `reply_model` for the target's
    /// `target_model`; `None` when that is unknown.
    pub fn cost(
        &self,
        provider: &str,
        target_model: &str,
        reply_model: &str,
        usage: &Usage,
    ) -> Option<Cost> {
        let (model, price) = self.price_of(provider, target_model, reply_model)?;
        let picousd = picousd(price, usage)?;
        Some(Cost { picousd, estimated: usage.estimated, priced_as: model.into() })
    }
}

/// Prices by scope (a provider's name or kind), then model: looked up by `&str`, so that
/// pricing a call allocates nothing.
#[derive(Clone, Debug, Default)]
struct Scoped(FastMap<String, FastMap<String, Price>>);

impl Scoped {
    fn new(entries: &[crate::config::PriceEntry]) -> Scoped {
        let mut scoped = Scoped::default();
        for e in entries {
            scoped.0.entry(e.scope.clone()).or_default().insert(e.model.clone(), e.price);
        }
        scoped
    }

    /// The price of `model` under `scope`, and the model's name as listed.
    fn get(&self, scope: &str, model: &str) -> Option<(&str, &Price)> {
        listed(self.0.get(scope)?, model)
    }
}

/// The price of `model` in one scope's `prices`, and the model's name as listed.
fn listed<'p>(prices: &'p FastMap<String, Price>, model: &str) -> Option<(&'p str, &'p Price)> {
    let (name, price) = prices.get_key_value(model)?;
    Some((name.as_str(), price))
}

/// The names a model is looked up by, in order, each once and none empty: worked out only when
/// the reply's own name is not listed, and kept on the stack (pricing a call allocates
/// nothing). At most eight: the reply's and the target's names and bases, and for Bedrock the
/// model inside each id and its base.
#[derive(Default)]
struct Candidates<'a> {
    names: [&'a str; 8],
    len: usize,
    filled: bool,
}

impl<'a> Candidates<'a> {
    /// The reply's name, then its base, then the target's and its base.
    fn of(&mut self, reply_model: &'a str, target_model: &'a str) -> &[&'a str] {
        if !self.filled {
            self.filled = true;
            for name in
                [reply_model, base_model(reply_model), target_model, base_model(target_model)]
            {
                self.push(name);
            }
        }
        self.names()
    }

    fn push(&mut self, name: &'a str) {
        if !name.is_empty() && !self.names().contains(&name) && self.len < self.names.len() {
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    fn names(&self) -> &[&'a str] {
        &self.names[..self.len]
    }
}

/// The built-in echo provider costs nothing.
const FREE: Price =
    Price { input: 0, output: 0, cache_read: Some(0), cache_write: Some(0), reasoning: Some(0) };

/// The model name inside a Bedrock model id, inference profile or ARN:
/// `arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0`
/// → `claude-sonnet-4-20250514`.
pub fn bedrock_model(model: &str) -> &str {
    let id = model.rsplit('/').next().unwrap_or(model);
    // `-v1:0`: the version of the model on Bedrock.
    let id = match id.rsplit_once("-v") {
        Some((base, version))
            if !base.is_empty()
                && version
                    .split(':')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            base
        }
        _ => id,
    };
    // `us.`, `eu.`, `apac.`, `global.` (cross-region inference profiles), then the vendor.
    match id.split_once('.') {
        Some((first, rest)) if rest.contains('.') && first.len() <= 6 => {
            rest.split_once('.').map_or(rest, |(_, model)| model)
        }
        Some((_, model)) => model,
        None => id,
    }
}

/// `model` without a version suffix: a date (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`,
/// `claude-sonnet-4-5@20250929`) or a release number of three or four digits
/// (`gemini-1.5-flash-002`, `gpt-3.5-turbo-0125`); `model` itself when it has none.
pub fn base_model(model: &str) -> &str {
    if let Some((base, version)) = model.rsplit_once('@')
        && !base.is_empty()
        && !version.is_empty()
    {
        return base;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    let mut parts = model.rsplitn(4, '-');
    if let (Some(day), Some(month), Some(year), Some(base)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && digits(day)
        && day.len() == 2
        && digits(month)
        && month.len() == 2
        && digits(year)
        && year.len() == 4
        && !base.is_empty()
    {
        return base;
    }
    match model.rsplit_once('-') {
        Some((base, version))
            if !base.is_empty() && digits(version) && matches!(version.len(), 3 | 4 | 8) =>
        {
            base
        }
        _ => model,
    }
}

/// What `usage` costs at `price`, in pico-dollars; `None` when a token class it has lacks a
/// price. See the module docs for the arithmetic.
pub fn picousd(price: &Price, usage: &Usage) -> Option<u64> {
    let cached = u128::from(usage.cached_input_tokens);
    let written = u128::from(usage.cache_write_input_tokens);
    let reasoning = u128::from(usage.reasoning_tokens.min(usage.output_tokens));
    let plain_input = u128::from(usage.input_tokens).saturating_sub(cached + written);
    let plain_output = u128::from(usage.output_tokens) - reasoning;
    let class = |tokens: u128, price: Option<u64>| match (tokens, price) {
        (0, _) => Some(0),
        (n, Some(p)) => Some(n * u128::from(p)),
        (_, None) => None,
    };
    let total = plain_input * u128::from(price.input)
        + class(cached, price.cache_read)?
        + class(written, price.cache_write)?
        + plain_output * u128::from(price.output)
        + reasoning * u128::from(price.reasoning.unwrap_or(price.output));
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u32, cached: u32, written: u32, output: u32, reasoning: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_input_tokens: written,
            reasoning_tokens: reasoning,
            estimated: false,
        }
    }

    #[test]
    fn bedrock_ids_profiles_and_arns_are_priced_as_the_model_inside() {
        for (id, model) in [
            ("anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4-20250514"),
            ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
            ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
                "claude-opus-4-1-20250805",
            ),
            ("meta.llama3-1-70b-instruct-v1:0", "llama3-1-70b-instruct"),
            ("amazon.nova-pro-v1:0", "nova-pro"),
            ("claude-x", "claude-x"),
        ] {
            assert_eq!(bedrock_model(id), model, "{id}");
        }
        let pricing = Pricing {
            kinds: FastMap::from_iter([("b".to_owned(), ProviderKind::Bedrock)]),
            shipped: defaults::table(),
            ..Pricing::default()
        };
        let id = "us.anthropic.claude-sonnet-4-20250514-v1:0";
        assert_eq!(pricing.price_of("b", id, id).map(|(m, _)| m), Some("claude-sonnet-4"));
        assert!(pricing.price_of("b", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0").is_none());
    }

    #[test]
    fn the_first_price_found_wins_scope_by_scope_then_name_by_name() {
        let entry = |scope: &str, model: &str, input: u64| crate::config::PriceEntry {
            scope: scope.into(),
            model: model.into(),
            price: Price { input, ..FREE },
        };
        let pricing = Pricing {
            kinds: FastMap::from_iter([("p".to_owned(), ProviderKind::OpenAi)]),
            targets: Scoped::new(&[entry("p", "pinned", 1)]),
            configured: Scoped::new(&[
                entry("p", "target-model", 2),
                entry("p", "gpt-4o", 3),
                entry("openai", "gpt-4o-2024-08-06", 4),
                entry("openai", "kind-only", 5),
            ]),
            shipped: defaults::table(),
        };
        let price = |target: &str, reply: &str| {
            pricing.price_of("p", target, reply).map(|(m, p)| (m, p.input))
        };
        // A target's own price first, whatever the reply says.
        assert_eq!(price("pinned", "gpt-4o-2024-08-06"), Some(("pinned", 1)));
        // The provider's name before its kind: its base name of the reply wins over the kind's
        // exact name.
        assert_eq!(price("x", "gpt-4o-2024-08-06"), Some(("gpt-4o", 3)));
        // Under one scope: the reply, its base, then the target.
        assert_eq!(price("target-model", "gpt-4o"), Some(("gpt-4o", 3)));
        assert_eq!(price("target-model", "unlisted"), Some(("target-model", 2)));
        assert_eq!(price("target-model", ""), Some(("target-model", 2)));
        // The kind's entries, then the shipped list of the kind.
        assert_eq!(price("kind-only", "unlisted"), Some(("kind-only", 5)));
        assert!(price("x", "gpt-4o-mini").is_some_and(|(m, p)| m == "gpt-4o-mini" && p > 0));
        assert_eq!(price("x", "unlisted"), None);
    }

    #[test]
    fn vertex_models_take_the_shipped_prices_of_their_publisher() {
        let pricing = Pricing {
            kinds: FastMap::from_iter([("v".to_owned(), ProviderKind::Vertex)]),
            shipped: defaults::table(),
            ..Pricing::default()
        };
        for (model, priced_as) in [
            ("gemini-2.5-flash", "gemini-2.5-flash"),
            ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ] {
            assert_eq!(pricing.price_of("v", model, model).map(|(m, _)| m), Some(priced_as));
        }
        assert!(pricing.price_of("v", "text-bison", "text-bison").is_none());
    }

    #[test]
    fn version_suffixes_come_off() {
        for (model, base) in [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
            ("gemini-1.5-flash-002", "gemini-1.5-flash"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("o3-mini-2025-01-31", "o3-mini"),
            ("gpt-4o", "gpt-4o"),
            ("claude-3-5-haiku", "claude-3-5-haiku"),
            ("llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
            ("grok-3", "grok-3"),
        ] {
            assert_eq!(base_model(model), base, "{model}");
        }
    }

    #[test]
    fn each_class_is_billed_once() {
        // $3 input, $15 output, $0.30 cache read, $3.75 cache write per million.
        let price = Price {
            input: 3_000_000,
            output: 15_000_000,
            cache_read: Some(300_000),
            cache_write: Some(3_750_000),
            reasoning: None,
        };
        // 2,095 plain + 2,000 read + 100 written; 503 out:
        // 2095×3 + 2000×0.30 + 100×3.75 + 503×15 = 6285 + 600 + 375 + 7545 = $14,805 per million
        assert_eq!(picousd(&price, &usage(4195, 2000, 100, 503, 0)), Some(14_805_000_000));
        // A cache read without a cache-read price is unknown, not free.
        let no_cache = Price { cache_read: None, ..price };
        assert_eq!(picousd(&no_cache, &usage(4195, 2000, 100, 503, 0)), None);
        assert!(picousd(&no_cache, &usage(10, 0, 0, 1, 0)).is_some());
        // Reasoning at its own price when it has one.
        let reasoning = Price { reasoning: Some(20_000_000), ..price };
        let c = picousd(&reasoning, &usage(10, 0, 0, 100, 40)).unwrap();
        assert_eq!(c, 10 * 3_000_000 + 60 * 15_000_000 + 40 * 20_000_000);
    }
}
