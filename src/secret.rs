//! Secrets: provider keys and client keys live in [`Secret`], whose `Debug` and `Display`
//! print `***`, so no log line, error or `{:?}` of a config can show one by accident.

use std::fmt;

/// A string that never prints. Read it with [`Secret::expose`], only where it is sent.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`; surrounding whitespace (a trailing newline in a key file) is dropped.
    /// The value is also registered with the redactor, so it is masked wherever it appears.
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        let trimmed = value.trim();
        let secret =
            if trimmed.len() == value.len() { Secret(value) } else { Secret(trimmed.to_owned()) };
        crate::redact::register_secret(&secret.0);
        secret
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-test-1234567890\n");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "sk-test-1234567890");
    }
}
