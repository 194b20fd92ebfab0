//! Budgets per client key: dollars and tokens a key may spend in a UTC calendar day or month,
//! counted in this process (one replica) or in the shared Redis (every replica adds to the
//! same counters, so a budget holds for the fleet), the same store the rate limits use
//! (`limits.backend`).
//!
//! Where it sits in the request flow: admission ([`crate::call::admission`]) asks
//! [`Budgets::check`] after the key's rate limit; a key whose spending has reached a budget
//! is refused with [`Error::BudgetExhausted`] (RESOURCE_EXHAUSTED, `BUDGET_EXHAUSTED`, a
//! `QuotaFailure`). A call's size is unknown before it runs, so the call that crosses the
//! line runs to its end; a stream already running is never cut. When the call's usage is
//! known (a unary answer, a stream's end) [`Budgets::charge`] adds its cost and tokens and
//! returns what is left, which the caller sees in `x-ai-budget-remaining-*`.
//!
//! Counters: one per key, window and budget, in pico-dollars and tokens (integers, so the sum
//! over replicas is exact). In Redis `<prefix>budget:{<key hash>}:<window>:usd|tokens`, both
//! updated by one Lua script and expiring a day after their window ends.
//!
//! Redis down: as the rate limits, budgets fail open — the call goes through uncounted,
//! `ai_service_budget_errors_total` counts it and a rate-limited warning is logged.

use std::{
    sync::{Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

use crate::{
    chat::{BudgetLeft, Cost},
    config::{Budget, BudgetWindow, ClientKey},
    error::{BudgetRefusal, Error},
    fast_map::FastMap,
    metrics::Recorder,
    redis_store::{RedisStore, RedisUnavailable},
};

/// KEYS[1] dollars, KEYS[2] tokens; ARGV[1] pico-dollars, ARGV[2] tokens, ARGV[3] expiry
/// (unix seconds). Returns the new totals.
const CHARGE: &str = r"
local usd = redis.call('INCRBY', KEYS[1], ARGV[1])
local tokens = redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('EXPIREAT', KEYS[2], ARGV[3])
return {usd, tokens}
";

/// Seconds counters outlive their window, for charges of calls that began in it.
const EXPIRY_SLACK_SECS: u64 = 86_400;

/// One window of a budget: which, its civil date and when it ends. Cheap to make: its name
/// is written out only where a Redis key needs it, not for every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    window: BudgetWindow,
    year: i64,
    month: u32,
    day: u32,
    /// Its end, in unix seconds.
    pub ends: u64,
}

impl Span {
    /// Its name in the counters' keys: `d2025-01-31` or `m2025-01`.
    pub fn id(&self) -> String {
        let Span { year, month, day, .. } = *self;
        match self.window {
            BudgetWindow::Day => format!("d{year:04}-{month:02}-{day:02}"),
            BudgetWindow::Month => format!("m{year:04}-{month:02}"),
        }
    }
}

/// The civil date (year, month 1–12, day 1–31) of `days` since 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The window of `window` that `now` falls in.
pub fn span(window: BudgetWindow, now: SystemTime) -> Span {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (year, month, day) = civil(days);
    let end_day = match window {
        BudgetWindow::Day => days + 1,
        BudgetWindow::Month => {
            let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
            days_from_civil(ny, nm, 1)
        }
    };
    let day = if window == BudgetWindow::Day { day } else { 1 };
    Span { window, year, month, day, ends: u64::try_from(end_day).unwrap_or(0) * 86_400 }
}

/// `unix` seconds as RFC 3339 UTC (whole seconds).
pub fn rfc3339(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let (year, month, day) = civil(days);
    let s = unix % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Pico-dollars as dollars, `$12.3456` (no trailing zeros, at least two decimals).
pub fn format_usd(picousd: u64) -> String {
    let text = crate::chat::usd_text(picousd);
    let decimals = text.find('.').map_or(0, |dot| text.len() - dot - 1);
    match decimals {
        0 => format!("${text}.00"),
        1 => format!("${text}0"),
        _ => format!("${text}"),
    }
}

/// What a key spent in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Spent {
    picousd: u64,
    tokens: u64,
}

impl Spent {
    fn left(self, budget: &Budget) -> BudgetLeft {
        BudgetLeft {
            picousd: budget.picousd.map(|limit| limit.saturating_sub(self.picousd)),
            tokens: budget.tokens.map(|limit| limit.saturating_sub(self.tokens)),
        }
    }
}

/// Where the counters live.
#[derive(Debug)]
enum Store {
    /// Client key id → the window its counts are for, and the counts.
    Memory(Mutex<FastMap<String, (Span, Spent)>>),
    Redis {
        redis: RedisStore,
        charge: redis::Script,
    },
}

/// The budget counters of a gateway; shared by every call.
#[derive(Debug)]
pub struct Budgets {
    store: Store,
    metrics: Recorder,
}

impl Budgets {
    /// The counters `config.limits.backend` asks for: Redis when configured and connectable,
    /// as the rate limits.
    pub fn from_config(
        config: &crate::config::Config,
        redis: Option<&RedisStore>,
        metrics: Recorder,
    ) -> Budgets {
        match (config.limits.backend, redis) {
            (crate::config::Backend::Redis, Some(redis)) => Budgets::redis(redis.clone(), metrics),
            _ => Budgets::memory(metrics),
        }
    }

    /// Counters in this process.
    pub fn memory(metrics: Recorder) -> Budgets {
        Budgets { store: Store::Memory(Mutex::default()), metrics }
    }

    /// Counters in `redis`, shared by every gateway on the same server and key prefix.
    pub fn redis(redis: RedisStore, metrics: Recorder) -> Budgets {
        Budgets { store: Store::Redis { redis, charge: redis::Script::new(CHARGE) }, metrics }
    }

    fn key(redis: &RedisStore, client: &str, span: &Span, budget: &str) -> String {
        let digest = Sha256::digest(client.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        redis.key(&format!("budget:{{{hex}}}:{}:{budget}", span.id()))
    }

    async fn spent(&self, client: &str, span: &Span) -> Result<Spent, RedisUnavailable> {
        match &self.store {
            Store::Memory(map) => {
                let map = map.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(map
                    .get(client)
                    .filter(|(window, _)| window == span)
                    .map(|e| e.1)
                    .unwrap_or_default())
            }
            Store::Redis { redis, .. } => {
                let mut command = redis::cmd("MGET");
                command
                    .arg(Self::key(redis, client, span, "usd"))
                    .arg(Self::key(redis, client, span, "tokens"));
                let (usd, tokens): (Option<i64>, Option<i64>) = redis.query(&command).await?;
                let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                Ok(Spent { picousd: count(usd), tokens: count(tokens) })
            }
        }
    }

    fn failed(&self, operation: &'static str, error: &RedisUnavailable) {
        self.metrics.budget_error(operation);
        if let Store::Redis { redis, .. } = &self.store {
            redis.warn("budget update failed, letting the call through", error);
        }
    }

    /// Refuses a call of `key` when it has spent a budget in the current window; what is
    /// left otherwise (`None` for a key without budgets, or when Redis could not answer).
    pub async fn check(&self, key: &ClientKey) -> Result<Option<BudgetLeft>, Error> {
        let Some(budget) = &key.budget else { return Ok(None) };
        let span = span(budget.window, SystemTime::now());
        let spent = match self.spent(&key.id, &span).await {
            Ok(spent) => spent,
            Err(error) => {
                self.failed("check", &error);
                return Ok(None);
            }
        };
        let over = |limit: Option<u64>, spent: u64| limit.filter(|&limit| spent >= limit);
        let refusal = if let Some(limit) = over(budget.picousd, spent.picousd) {
            Some(("usd", format_usd(spent.picousd), format_usd(limit)))
        } else {
            over(budget.tokens, spent.tokens)
                .map(|limit| ("tokens", spent.tokens.to_string(), limit.to_string()))
        };
        if let Some((which, spent, limit)) = refusal {
            self.metrics.budget_exhausted(which);
            return Err(Error::BudgetExhausted(Box::new(BudgetRefusal {
                key: key.id.clone(),
                budget: which,
                window: budget.window.as_str(),
                spent,
                limit,
                renews: rfc3339(span.ends),
            })));
        }
        Ok(Some(spent.left(budget)))
    }

    /// Adds a finished call's `cost` (an unknown cost adds no dollars) and `tokens` to `key`'s
    /// window; what is left after it, `None` for a key without budgets or when Redis failed.
    pub async fn charge(
        &self,
        key: &ClientKey,
        cost: Option<&Cost>,
        tokens: u64,
    ) -> Option<BudgetLeft> {
        let budget = key.budget.as_ref()?;
        let span = span(budget.window, SystemTime::now());
        let picousd = cost.map_or(0, |c| c.picousd);
        let spent = match &self.store {
            Store::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let add = |spent: &mut Spent| {
                    spent.picousd = spent.picousd.saturating_add(picousd);
                    spent.tokens = spent.tokens.saturating_add(tokens);
                    *spent
                };
                // The key's entry is there after its first call: its id is copied only then.
                if let Some((window, spent)) = map.get_mut(&key.id) {
                    if *window != span {
                        (*window, *spent) = (span, Spent::default());
                    }
                    add(spent)
                } else {
                    let mut spent = Spent::default();
                    let total = add(&mut spent);
                    map.insert(key.id.clone(), (span, spent));
                    total
                }
            }
            Store::Redis { redis, charge } => {
                let mut invocation = charge.prepare_invoke();
                invocation
                    .key(Self::key(redis, &key.id, &span, "usd"))
                    .key(Self::key(redis, &key.id, &span, "tokens"))
                    .arg(picousd)
                    .arg(tokens)
                    .arg(span.ends.saturating_add(EXPIRY_SLACK_SECS));
                match redis.run_script::<(i64, i64)>(&invocation).await {
                    Ok((usd, tokens)) => Spent {
                        picousd: u64::try_from(usd).unwrap_or(0),
                        tokens: u64::try_from(tokens).unwrap_or(0),
                    },
                    Err(error) => {
                        self.failed("charge", &error);
                        return None;
                    }
                }
            }
        };
        let left = spent.left(budget);
        self.metrics.budget_left(&key.id, budget.window.as_str(), left.picousd, left.tokens);
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn windows_are_utc_calendar_days_and_months() {
        // 2024-02-29T23:59:59Z, a leap day.
        let t = at(1_709_251_199);
        let day = span(BudgetWindow::Day, t);
        assert_eq!((day.id().as_str(), day.ends), ("d2024-02-29", 1_709_251_200));
        // The same day, a second later in it: the same window.
        assert_eq!(span(BudgetWindow::Day, at(1_709_251_198)), day);
        assert_eq!(span(BudgetWindow::Month, t).id(), "m2024-02");
        assert_eq!(rfc3339(span(BudgetWindow::Month, t).ends), "2024-03-01T00:00:00Z");
        // December rolls into the next year.
        let dec = at(1_735_603_200); // 2024-12-31T00:00:00Z
        assert_eq!(rfc3339(span(BudgetWindow::Month, dec).ends), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn dollars_show_exactly() {
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(1_500_000_000_000), "$1.50");
        assert_eq!(format_usd(14_805_000_000), "$0.014805");
        assert_eq!(format_usd(1), "$0.000000000001");
        assert_eq!(format_usd(2_100_000_000_000), "$2.10");
    }

    fn key(usd: &str, tokens: Option<u64>) -> ClientKey {
        ClientKey {
            id: "team".into(),
            name: None,
            sha256: [0; 32],
            routes: Vec::new(),
            requests_per_minute: None,
            tokens_per_minute: None,
            budget: Some(Budget {
                window: BudgetWindow::Day,
                picousd: crate::config::pricing::usd_to_pico(usd),
                tokens,
            }),
        }
    }

    #[tokio::test]
    async fn a_key_is_refused_once_a_budget_is_spent_and_the_crossing_call_counts() {
        let budgets = Budgets::memory(Recorder::default());
        let k = key("0.01", Some(1000));
        let cost = |pico| Some(Cost { picousd: pico, ..Cost::default() });
        assert!(budgets.check(&k).await.unwrap().is_some());
        let left = budgets.charge(&k, cost(6_000_000_000).as_ref(), 100).await.unwrap();
        assert_eq!(left, BudgetLeft { picousd: Some(4_000_000_000), tokens: Some(900) });
        budgets.check(&k).await.unwrap();
        // This call crosses the line: it is counted in full, and what is left is 0.
        let left = budgets.charge(&k, cost(6_000_000_000).as_ref(), 100).await.unwrap();
        assert_eq!(left.picousd, Some(0));
        let Error::BudgetExhausted(refusal) = budgets.check(&k).await.unwrap_err() else {
            panic!("not a budget refusal");
        };
        let BudgetRefusal { budget, spent, limit, .. } = *refusal;
        assert_eq!((budget, spent.as_str(), limit.as_str()), ("usd", "$0.012", "$0.01"));
        // An unknown cost adds tokens only.
        let other = key("1", Some(150));
        budgets.charge(&ClientKey { id: "other".into(), ..other.clone() }, None, 150).await;
        let refused = budgets.check(&ClientKey { id: "other".into(), ..other }).await.unwrap_err();
        assert_eq!(refused.reason(), "BUDGET_EXHAUSTED");
    }
}
