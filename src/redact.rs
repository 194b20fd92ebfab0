//! The redactor: every log line, audit record and error message passes through [`redact`]
//! before it leaves the process.
//!
//! It removes two kinds of thing:
//! - every secret the process holds: a [`crate::secret::Secret`] registers its value here when
//!   it is made, so a provider key is caught wherever it turns up, whatever its shape;
//! - text that looks like a credential: `sk-…` keys, `Bearer …` tokens, `x-api-key: …` and
//!   similar header lines, `key=…` in URLs, and the patterns configured in
//!   `log.redact_patterns`.
//!
//! Each is replaced by `***`. Logs get it from the log layer (`telemetry::lines`), which
//! redacts each line whole before writing it.

use std::{
    borrow::Cow,
    cell::RefCell,
    ops::Range,
    sync::{OnceLock, RwLock},
};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// What a redacted value becomes.
pub const MASK: &str = "***";

/// Secrets shorter than this are not matched literally (too likely to match by chance).
const MIN_SECRET_LEN: usize = 8;

/// Built-in credential shapes. A pattern with a capture group keeps group 1 (the label) and
/// masks the rest of the match.
const BUILT_IN: &[&str] = &[
    r"(?i)((?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{4,}",
    r#"(?i)((?:x-api-key|api-key|x-goog-api-key)["']?\s*[:=]\s*["']?)[^\s"',;}]+"#,
    r#"(?i)([?&](?:key|api_key|api-key|apikey|access_token|token)=)[^&\s"']+"#,
    r"\bsk-[A-Za-z0-9_\-]{8,}",
    r"\bAIza[0-9A-Za-z_\-]{20,}",
    r"\bgsk_[A-Za-z0-9]{16,}",
    r"\bxai-[A-Za-z0-9]{16,}",
];

/// Words of which every match of a [`BUILT_IN`] pattern contains one, ignoring ASCII case: the
/// label alternatives (`x-api-key` and `x-goog-api-key` contain `api-key`; `api_key=`,
/// `apikey=` and `key=` contain `key=`; `access_token=` contains `token=`) and the key
/// prefixes. A text with none of them cannot match, so the seven scans are skipped: most log
/// lines and audit records. A non-ASCII text is always scanned (Unicode case folding matches
/// `K` as `k`, which ASCII case folding does not).
const TRIGGERS: &[&str] =
    &["bearer", "basic", "api-key", "key=", "token=", "sk-", "aiza", "gsk_", "xai-"];

/// The registered secrets and the searchers that find them; rebuilt on each registration
/// (a handful at start-up), read by every redaction.
struct Secrets {
    values: Vec<String>,
    /// Every secret, case-sensitive, matches overlapping: masks exactly what they cover. None
    /// when there is none (or it could not be built: then `values` are replaced one by one).
    exact: Option<AhoCorasick>,
    /// The trigger words and every secret in ASCII lower case, searched for in the text's
    /// ASCII lower case: one pass says whether anything at all might need masking (a superset
    /// of both: a hit is checked by `exact` and the patterns).
    screen: Screen,
}

/// The one-pass search of [`Secrets::screen`]: a SIMD searcher of many short literals (Teddy)
/// where the CPU has one, an automaton otherwise, every text scanned in full if neither builds.
/// (An automaton asked to ignore ASCII case itself found no fast prefilter for these short
/// words: twice the instructions of nine `memmem` scans.)
enum Screen {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
    Everything,
}

impl Secrets {
    fn new(values: Vec<String>) -> Secrets {
        let exact = if values.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new().match_kind(MatchKind::Standard).build(&values).ok()
        };
        let words: Vec<String> = TRIGGERS
            .iter()
            .copied()
            .chain(values.iter().map(String::as_str))
            .map(str::to_ascii_lowercase)
            .collect();
        let screen = match aho_corasick::packed::Config::new().builder().extend(&words).build() {
            Some(packed) => Screen::Packed(packed),
            None => AhoCorasick::new(&words).map_or(Screen::Everything, Screen::Automaton),
        };
        Secrets { values, exact, screen }
    }

    /// Whether `text` might hold a secret or a trigger word; false only when it cannot. ASCII
    /// lower case maps byte to byte, so a text holding a word holds it in lower case after.
    fn screen(&self, text: &str) -> bool {
        let search = |lower: &mut Vec<u8>| {
            lower.clear();
            lower.extend_from_slice(text.as_bytes());
            lower.make_ascii_lowercase();
            match &self.screen {
                Screen::Packed(packed) => packed.find(&lower[..]).is_some(),
                Screen::Automaton(automaton) => automaton.is_match(&lower[..]),
                Screen::Everything => true,
            }
        };
        LOWER
            .try_with(|lower| match lower.try_borrow_mut() {
                Ok(mut lower) => {
                    let hit = search(&mut lower);
                    if lower.capacity() > MAX_KEPT_BUFFER {
                        *lower = Vec::new();
                    }
                    hit
                }
                Err(_) => search(&mut Vec::new()),
            })
            .unwrap_or_else(|_| search(&mut Vec::new()))
    }
}

/// The most the lower-case buffer keeps between texts, in bytes.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The text being screened in ASCII lower case, reused by every redaction of the thread.
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct Redactor {
    built_in: Vec<Regex>,
    /// `log.redact_patterns`: always scanned.
    configured: RwLock<Vec<Regex>>,
    secrets: RwLock<Secrets>,
}

impl Redactor {
    /// Whether a built-in pattern might match `text`; false only when none can.
    #[cfg(test)]
    fn might_match_built_in(&self, text: &str) -> bool {
        !text.is_ascii() || self.secrets.read().unwrap_or_else(|e| e.into_inner()).screen(text)
    }
}

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| Redactor {
        built_in: BUILT_IN.iter().filter_map(|p| Regex::new(p).ok()).collect(),
        configured: RwLock::new(Vec::new()),
        secrets: RwLock::new(Secrets::new(Vec::new())),
    })
}

/// Remembers `value` as a secret to mask wherever it appears.
pub fn register_secret(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = redactor().secrets.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.values.iter().any(|s| s == value) {
        let mut values = std::mem::take(&mut secrets.values);
        values.push(value.to_owned());
        *secrets = Secrets::new(values);
    }
}

/// Adds configured patterns; each must be a valid regular expression.
pub fn add_patterns(patterns: &[String]) -> Result<(), String> {
    let compiled: Result<Vec<Regex>, String> =
        patterns.iter().map(|p| Regex::new(p).map_err(|e| format!("{p:?}: {e}"))).collect();
    redactor().configured.write().unwrap_or_else(|e| e.into_inner()).extend(compiled?);
    Ok(())
}

/// `text` with every secret and credential-shaped substring masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let r = redactor();
    let mut out = Cow::Borrowed(text);
    let secrets = r.secrets.read().unwrap_or_else(|e| e.into_inner());
    // One pass decides for the common case: no secret and no trigger word, ASCII.
    let screened = secrets.screen(text);
    if screened {
        match &secrets.exact {
            Some(exact) => out = mask_secrets(exact, out),
            // Not built (never in practice): each secret replaced in turn, longest first.
            None => {
                let mut values: Vec<&String> = secrets.values.iter().collect();
                values.sort_by_key(|s| std::cmp::Reverse(s.len()));
                for secret in values {
                    if out.contains(secret.as_str()) {
                        out = Cow::Owned(out.replace(secret.as_str(), MASK));
                    }
                }
            }
        }
    }
    drop(secrets);
    if screened || !text.is_ascii() {
        for pattern in &r.built_in {
            out = mask(pattern, out);
        }
    }
    for pattern in r.configured.read().unwrap_or_else(|e| e.into_inner()).iter() {
        out = mask(pattern, out);
    }
    out
}

/// `text` with every byte any secret covers masked: overlapping matches are merged into one
/// mask, so no part of a secret survives because another one matched first.
fn mask_secrets<'a>(exact: &AhoCorasick, text: Cow<'a, str>) -> Cow<'a, str> {
    // Overlapping matches come in the order they end: sorted by start, then merged.
    let mut matches: Vec<Range<usize>> =
        exact.find_overlapping_iter(text.as_ref()).map(|m| m.range()).collect();
    if matches.is_empty() {
        return text;
    }
    matches.sort_unstable_by_key(|m| m.start);
    let mut covered: Vec<Range<usize>> = Vec::with_capacity(matches.len());
    for m in matches {
        match covered.last_mut() {
            Some(last) if m.start <= last.end => last.end = last.end.max(m.end),
            _ => covered.push(m),
        }
    }
    let mut masked = String::with_capacity(text.len());
    let mut at = 0;
    for range in covered {
        masked.push_str(&text[at..range.start]);
        masked.push_str(MASK);
        at = range.end;
    }
    masked.push_str(&text[at..]);
    Cow::Owned(masked)
}

/// `text` with every match of `pattern` masked (its group 1, the label, kept).
fn mask<'a>(pattern: &Regex, text: Cow<'a, str>) -> Cow<'a, str> {
    if !pattern.is_match(&text) {
        return text;
    }
    let replaced = pattern.replace_all(&text, |caps: &regex::Captures<'_>| match caps.get(1) {
        Some(label) => format!("{}{MASK}", label.as_str()),
        None => MASK.to_owned(),
    });
    Cow::Owned(replaced.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credential_shapes() {
        let cases = [
            ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
            ("bearer eyJhbGciOi", "bearer ***"),
            ("x-api-key: sk-ant-api03-abcdefgh", "x-api-key: ***"),
            (r#"{"api-key":"0123456789abcdef"}"#, r#"{"api-key":"***"}"#),
            (
                "GET /v1/models?key=AIzaSyA1234567890abcdefghij&alt=sse",
                "GET /v1/models?key=***&alt=sse",
            ),
            ("token sk-proj-1234567890abcdef leaked", "token *** leaked"),
            ("nothing to see", "nothing to see"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    /// The trigger words are a sound prefilter: every built-in pattern's match, in any ASCII
    /// case, contains one, and a non-ASCII text is scanned whatever it holds.
    #[test]
    fn the_prefilter_lets_every_credential_shape_through() {
        let r = redactor();
        let shapes = [
            "BEARER abcd1234",
            "Basic dXNlcjpwYXNz",
            "X-Api-Key: k1234",
            "API-KEY=v",
            "x-goog-api-key: v",
            "?Key=v",
            "&API_KEY=v",
            "&ApiKey=v",
            "?api-key=v",
            "?Access_Token=v",
            "&token=v",
            "sk-abcdefgh12",
            "AIzaSyA1234567890abcdefghij",
            "gsk_abcdefghijklmnop",
            "xai-abcdefghijklmnop",
        ];
        for shape in shapes {
            let text = format!("{{\"note\":\"{shape}\"}}");
            assert!(r.built_in.iter().any(|p| p.is_match(&text)), "{shape}: a built-in matches");
            assert!(r.might_match_built_in(&text), "{shape}: the prefilter lets it through");
            assert_ne!(redact(&text), text, "{shape}");
        }
        // Unicode case folding: the Kelvin sign is a `k` to `(?i)`.
        let kelvin = "x-api-\u{212A}ey: secret-value";
        assert!(r.might_match_built_in(kelvin));
        assert_eq!(redact(kelvin), "x-api-\u{212A}ey: ***");
        let plain = r#"{"request_id":"r-1","route":"bench","code":"OK","metadata":{}}"#;
        assert!(!r.might_match_built_in(plain));
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn masks_registered_secrets_of_any_shape() {
        register_secret("plain-looking-value-42");
        assert_eq!(
            redact("upstream said plain-looking-value-42 twice: plain-looking-value-42"),
            "upstream said *** twice: ***"
        );
        register_secret("short");
        assert_eq!(redact("short"), "short", "too short to match safely");
    }

    /// Secrets that overlap or contain one another leave no part of either in the text,
    /// whichever was registered first; a secret in another case is another text.
    #[test]
    fn overlapping_and_nested_secrets_are_masked_whole() {
        register_secret("0abcdefg-overlap");
        register_secret("defg-overlap-tail-99");
        register_secret("outer-secret-inner-part-xyz");
        register_secret("inner-part");
        register_secret("caf\u{e9}-secret-\u{1f511}");
        let cases = [
            // The two overlap: their union is masked as one.
            ("k=0abcdefg-overlap-tail-99!", "k=***!"),
            ("a defg-overlap-tail-99 b 0abcdefg-overlap c", "a *** b *** c"),
            ("[outer-secret-inner-part-xyz] (inner-part)", "[***] (***)"),
            ("\u{e9}t\u{e9} caf\u{e9}-secret-\u{1f511}.", "\u{e9}t\u{e9} ***."),
            ("OUTER-SECRET-INNER-PART-XYZ", "OUTER-SECRET-INNER-PART-XYZ"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    /// The screen is the SIMD searcher on this architecture (every x86-64 CPU since 2006 has
    /// the SSSE3 it needs), not the much slower fallback.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_screen_is_a_simd_searcher() {
        let secrets = redactor().secrets.read().unwrap();
        assert!(matches!(secrets.screen, Screen::Packed(_)));
    }

    #[test]
    fn configured_patterns_are_applied() {
        add_patterns(&["corp-[0-9]{6}".to_owned()]).unwrap();
        assert_eq!(redact("id corp-123456"), "id ***");
        assert!(add_patterns(&["(".to_owned()]).is_err());
    }
}
