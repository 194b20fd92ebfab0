//! JSON and timestamps written by hand for the two lines every call leaves — the log line
//! ([`crate::telemetry`]'s layer) and the audit record ([`crate::audit`]) — where serde's
//! serializer machinery and the formatting machinery cost more than the text itself. Strings are escaped exactly as
//! `serde_json` escapes them, numbers written through `itoa` and `zmij` as it writes them, so a
//! line reads back the same and looks the same as one serde_json would write.

use std::{
    fmt::{self, Write as _},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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

/// `s` escaped for the inside of a JSON string. Eight bytes at a time are skipped while none
/// of them needs escaping (most of a line), the table consulted byte by byte only where one
/// does.
pub fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes[i..].first_chunk::<8>()
            && !may_need_escape(u64::from_le_bytes(*word))
        {
            i += 8;
            continue;
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let escape = ESCAPE[usize::from(b)];
            if escape != 0 {
                // `i` is at an ASCII byte and `plain` just past one: both char boundaries.
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
            i += 1;
        }
    }
    out.push_str(&s[plain..]);
}

/// Whether any of the eight bytes of `word` might need escaping: one below 0x20, a `"` or a
/// `\`. Never false when one does (a byte after a true one may be flagged as well, which only
/// sends the word through the table).
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGH != 0
}

/// Writes what it is given escaped for the inside of a JSON string (for `Debug` values).
struct Escaped<'a>(&'a mut String);

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

/// Fractional digits of [`push_rfc3339`].
#[derive(Clone, Copy, Debug)]
pub enum Fraction {
    /// Three: the audit record's `time`.
    Millis,
    /// Six: the log line's timestamp.
    Micros,
}

/// `time` in RFC 3339, UTC, with the given fraction: `2026-11-30T12:00:00.123456Z`, exactly as
/// humantime's `format_rfc3339_millis`/`_micros` write it. A clock before 1970 (which humantime
/// refuses with a panic) writes 1970-01-01T00:00:00Z; one past 9999, the last instant of 9999.
pub fn push_rfc3339(out: &mut String, time: SystemTime, fraction: Fraction) {
    const LAST: Duration = Duration::new(253_402_300_799, 999_999_999);
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default().min(LAST);
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3600);
    put_digits(&mut text[14..16], of_day / 60 % 60);
    put_digits(&mut text[17..19], of_day % 60);
    let micros = u64::from(since.subsec_micros());
    let end = match fraction {
        Fraction::Millis => {
            put_digits(&mut text[20..23], micros / 1000);
            text[23] = b'Z';
            24
        }
        Fraction::Micros => {
            put_digits(&mut text[20..26], micros);
            27
        }
    };
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&text[..end]).unwrap_or_default());
}

/// Writes `value`'s last `digits.len()` decimal digits into `digits`, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of the day `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days from the epoch on).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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

    /// Longer texts, where whole words are skipped: escapes at every offset within a word,
    /// next to non-ASCII text, against serde_json.
    #[test]
    fn long_strings_are_escaped_as_serde_json_escapes_them() {
        const PIECES: [&str; 9] =
            ["a", "abcdefgh", "\"", "\\", "\n", "\u{1}\u{1f}", "\u{e9}", "\u{1f600}", " ~\u{7f}"];
        let mut rng = fastrand::Rng::with_seed(8);
        for _ in 0..5000 {
            let s: String =
                (0..rng.usize(0..24)).map(|_| PIECES[rng.usize(..PIECES.len())]).collect();
            let mut ours = String::new();
            push_str(&mut ours, &s);
            assert_eq!(ours, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
        for offset in 0..16 {
            for special in ["\"", "\\", "\u{0}", "\u{1f}", " ", "\u{7f}", "\u{80}"] {
                let s = format!("{}{special}{}", "x".repeat(offset), "y".repeat(9));
                let mut ours = String::new();
                push_str(&mut ours, &s);
                assert_eq!(ours, serde_json::to_string(&s).unwrap(), "{s:?}");
            }
        }
    }

    /// Every day from 1970 to 2400 at a random time of it, the edges of the range, and
    /// times outside it: what humantime writes, in both precisions.
    #[test]
    fn timestamps_are_what_humantime_writes() {
        let mut rng = fastrand::Rng::with_seed(3339);
        let day = 86_400u64;
        let mut times: Vec<SystemTime> = (0..(430 * 366))
            .map(|d| UNIX_EPOCH + Duration::new(d * day + rng.u64(..day), rng.u32(..1_000_000_000)))
            .collect();
        times.extend([
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999),
            UNIX_EPOCH + Duration::new(951_782_400, 0), // 2000-02-29
            UNIX_EPOCH + Duration::new(4_107_542_400, 0), // 2100-03-01
            SystemTime::now(),
        ]);
        for time in times {
            for (fraction, theirs) in [
                (Fraction::Millis, humantime::format_rfc3339_millis(time).to_string()),
                (Fraction::Micros, humantime::format_rfc3339_micros(time).to_string()),
            ] {
                let mut ours = String::new();
                push_rfc3339(&mut ours, time, fraction);
                assert_eq!(ours, theirs, "{time:?}");
            }
        }
        let mut ours = String::new();
        push_rfc3339(&mut ours, UNIX_EPOCH - Duration::from_secs(1), Fraction::Millis);
        push_rfc3339(&mut ours, UNIX_EPOCH + Duration::from_secs(1 << 40), Fraction::Micros);
        assert_eq!(ours, "1970-01-01T00:00:00.000Z9999-12-31T23:59:59.999999Z");
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
