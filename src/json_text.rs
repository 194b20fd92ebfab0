//! JSON written by hand for the two lines every call leaves — the log line
//! ([`crate::telemetry`]'s layer) and the audit record ([`crate::audit`]) — where serde's
//! serializer machinery cost more than the text itself. Strings are escaped exactly as
//! `serde_json` escapes them, numbers written through `itoa` and `zmij` as it writes them, so a
//! line reads back the same and looks the same as one serde_json would write.

use std::fmt::{self, Write as _};

/// Which bytes a JSON string escapes, and how: 0 none, `u` as `\u00XX`, else `\` and the
/// byte (serde_json's table: `\b`, `\f`, `\n`, `\r`, `\t`, `\"`, `\\`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `s` as a quoted JSON string.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// `s` escaped for the inside of a JSON string.
pub fn push_escaped(out: &mut String, s: &str) {
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.push_str(&s[plain..i]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(escape));
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
}

/// Writes what it is given escaped for the inside of a JSON string (for `Debug` values).
pub struct Escaped<'a>(pub &'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

/// `{v:?}` as a quoted JSON string.
pub fn push_debug(out: &mut String, v: &dyn fmt::Debug) {
    out.push('"');
    let _ = write!(Escaped(out), "{v:?}");
    out.push('"');
}

/// An unsigned integer.
pub fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// A signed integer.
pub fn push_i64(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// A float as serde_json writes one (through the same `zmij`): shortest round-trip form
/// (`2.0`, `0.25`, `1.5e+300`), a non-finite value as `null`.
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(v));
    } else {
        out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte below 0x80 and a few beyond, alone and between text: escaped as serde_json
    /// escapes it, byte for byte.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> =
            (0u8..0x80).map(|b| format!("a{}b", char::from(b))).collect();
        samples.extend(
            ["", "plain", "\u{e9}t\u{e9} \u{1f600}", "\u{7f}\u{80}\u{2028}", "\"\\\"\\"]
                .map(String::from),
        );
        for s in samples {
            let mut ours = String::new();
            push_str(&mut ours, &s);
            assert_eq!(ours, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for v in [0.0, -0.0, 2.0, 0.1, 1e-7, 1.5e300, 123_456.789, f64::MIN_POSITIVE] {
            let mut ours = String::new();
            push_f64(&mut ours, v);
            assert_eq!(ours, serde_json::to_string(&v).unwrap(), "{v}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut ours = String::new();
            push_f64(&mut ours, v);
            assert_eq!(ours, "null");
        }
        let mut ours = String::new();
        push_u64(&mut ours, u64::MAX);
        ours.push(',');
        push_i64(&mut ours, i64::MIN);
        assert_eq!(ours, format!("{},{}", u64::MAX, i64::MIN));
    }
}
