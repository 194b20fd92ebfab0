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
    sync::{OnceLock, RwLock},
};

use memchr::memmem::Finder;
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

/// Words of which every match of a [`BUILT_IN`] pattern contains one, in ASCII lower case: the
/// label alternatives (`x-api-key` and `x-goog-api-key` contain `api-key`; `api_key=`,
/// `apikey=` and `key=` contain `key=`; `access_token=` contains `token=`) and the key
/// prefixes. A text with none of them (ignoring ASCII case) cannot match, so the seven
/// scans are skipped: most log lines and audit records. A non-ASCII text is always scanned
/// (Unicode case folding matches `K` as `k`).
const TRIGGERS: &[&str] =
    &["bearer", "basic", "api-key", "key=", "token=", "sk-", "aiza", "gsk_", "xai-"];

struct Redactor {
    built_in: Vec<Regex>,
    triggers: Vec<Finder<'static>>,
    /// `log.redact_patterns`: always scanned.
    configured: RwLock<Vec<Regex>>,
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    /// Whether a built-in pattern might match `text`; false only when none can.
    fn might_match_built_in(&self, text: &str) -> bool {
        if !text.is_ascii() {
            return true;
        }
        let lower = text.to_ascii_lowercase();
        self.triggers.iter().any(|t| t.find(lower.as_bytes()).is_some())
    }
}

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| Redactor {
        built_in: BUILT_IN.iter().filter_map(|p| Regex::new(p).ok()).collect(),
        triggers: TRIGGERS.iter().map(|t| Finder::new(t.as_bytes()).into_owned()).collect(),
        configured: RwLock::new(Vec::new()),
        secrets: RwLock::new(Vec::new()),
    })
}

/// Remembers `value` as a secret to mask wherever it appears.
pub fn register_secret(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = redactor().secrets.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_owned());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
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
    for secret in r.secrets.read().unwrap_or_else(|e| e.into_inner()).iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    if r.might_match_built_in(&out) {
        for pattern in &r.built_in {
            out = mask(pattern, out);
        }
    }
    for pattern in r.configured.read().unwrap_or_else(|e| e.into_inner()).iter() {
        out = mask(pattern, out);
    }
    out
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

    #[test]
    fn configured_patterns_are_applied() {
        add_patterns(&["corp-[0-9]{6}".to_owned()]).unwrap();
        assert_eq!(redact("id corp-123456"), "id ***");
        assert!(add_patterns(&["(".to_owned()]).is_err());
    }
}
