//! A Chat Completions stream chunk read without serde's machinery, when it has the shape nearly
//! every chunk has: an object whose `id`, `model` and `choices` (each a `delta` of text and a
//! `finish_reason`) are read, every other field skipped. Parsing each chunk with serde's derive
//! was about half of what the gateway itself spent on a streamed chunk (4.8k of ~10.5k
//! instructions); this reads one in a single pass over its bytes.
//!
//! It is exact by construction: it accepts only what serde would accept and reads it as serde
//! would, and anything else — tool calls, usage, an error, a key or value of another type, an
//! escaped key, a duplicate field, a lone surrogate, deep nesting, invalid JSON — makes it give
//! up, and [`parse`] hands the text to serde, whose result (or error) stands. A test holds the
//! two to the same result over random and mutated chunks.

use std::borrow::Cow;

use super::{WireChunk, WireChunkChoice, WireDelta};

/// `data`, a chunk's JSON, read as serde reads it: by the fast path when it can, else serde.
pub(super) fn parse(data: &str) -> Result<WireChunk<'_>, serde_json::Error> {
    match Scan::new(data).chunk() {
        Some(chunk) => Ok(chunk),
        None => serde_json::from_str(data),
    }
}

/// Deeper than this, the fast path gives up (serde's own limit is 128).
const MAX_DEPTH: u32 = 64;

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Scan { text, bytes: text.as_bytes(), at: 0 }
    }

    /// The chunk, then nothing but whitespace.
    fn chunk(mut self) -> Option<WireChunk<'a>> {
        let mut chunk = WireChunk {
            id: None,
            model: None,
            choices: Vec::new(),
            usage: None,
            error: None,
            x_groq: None,
        };
        let (mut id, mut model, mut choices) = (false, false, false);
        let mut others = [false; 3];
        self.object(|scan, key| {
            match key {
                "id" => chunk.id = scan.once(&mut id)?.optional(Scan::string)?,
                "model" => chunk.model = scan.once(&mut model)?.optional(Scan::string)?,
                "choices" => {
                    scan.once(&mut choices)?;
                    scan.array(|scan| {
                        chunk.choices.push(scan.choice()?);
                        Some(())
                    })?;
                }
                // Present and not null: serde's to read.
                "usage" => scan.once(&mut others[0])?.null()?,
                "error" => scan.once(&mut others[1])?.null()?,
                "x_groq" => scan.once(&mut others[2])?.null()?,
                _ => scan.skip(1)?,
            }
            Some(())
        })?;
        self.space();
        (self.at == self.bytes.len()).then_some(chunk)
    }

    fn choice(&mut self) -> Option<WireChunkChoice<'a>> {
        let mut choice = WireChunkChoice { delta: None, finish_reason: None };
        let (mut delta, mut finish) = (false, false);
        self.object(|scan, key| {
            match key {
                "delta" => choice.delta = scan.once(&mut delta)?.optional(Scan::delta)?,
                "finish_reason" => {
                    choice.finish_reason = scan.once(&mut finish)?.optional(Scan::string)?;
                }
                _ => scan.skip(2)?,
            }
            Some(())
        })?;
        Some(choice)
    }

    fn delta(&mut self) -> Option<WireDelta> {
        let mut delta = WireDelta {
            content: None,
            refusal: None,
            tool_calls: Vec::new(),
            reasoning_content: None,
            reasoning: None,
        };
        let mut seen = [false; 5];
        self.object(|scan, key| {
            let (slot, field) = match key {
                "content" => (0, &mut delta.content),
                "refusal" => (1, &mut delta.refusal),
                "reasoning_content" => (2, &mut delta.reasoning_content),
                "reasoning" => (3, &mut delta.reasoning),
                // An empty list is the only kind read here.
                "tool_calls" => {
                    scan.once(&mut seen[4])?;
                    return scan.array(|_| None);
                }
                _ => return scan.skip(3),
            };
            *field = scan.once(&mut seen[slot])?.optional(|s| s.string().map(Cow::into_owned))?;
            Some(())
        })?;
        Some(delta)
    }

    /// Marks a field seen; a second one (serde: "duplicate field") makes the fast path give up.
    fn once(&mut self, seen: &mut bool) -> Option<&mut Self> {
        if std::mem::replace(seen, true) {
            return None;
        }
        Some(self)
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.space();
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    /// `null` as `None`, or a value read by `read`.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.null()?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// An object, each member's value read by `member` given its key (an escaped key makes the
    /// fast path give up: serde would match its unescaped text).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let Cow::Borrowed(key) = self.string()? else { return None };
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, each element read by `element`.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string, borrowed from the text unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    let text = self.text.get(start..self.at)?;
                    self.at += 1;
                    return Some(Cow::Borrowed(text));
                }
                b'\\' => {
                    let mut owned = String::with_capacity(self.at - start + 16);
                    owned.push_str(self.text.get(start..self.at)?);
                    return self.escaped(owned).map(Cow::Owned);
                }
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
    }

    /// The rest of a string from its first escape, unescaped into `out`.
    fn escaped(&mut self, mut out: String) -> Option<String> {
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    let escape = *self.bytes.get(self.at + 1)?;
                    self.at += 2;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    });
                }
                byte if byte < 0x20 => return None,
                _ => {
                    let run = self.at;
                    while let Some(&byte) = self.bytes.get(self.at) {
                        if byte == b'"' || byte == b'\\' || byte < 0x20 {
                            break;
                        }
                        self.at += 1;
                    }
                    out.push_str(self.text.get(run..self.at)?);
                }
            }
        }
    }

    /// The character of a `\u` escape (its `\u` read), a surrogate pair whole; a lone
    /// surrogate makes the fast path give up.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if !(0xD800..0xDC00).contains(&first) {
            return char::from_u32(first);
        }
        if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
            return None;
        }
        self.at += 2;
        let second = self.hex4()?;
        if !(0xDC00..0xE000).contains(&second) {
            return None;
        }
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut value = 0;
        for &digit in digits {
            value = value * 16 + char::from(digit).to_digit(16)?;
        }
        self.at += 4;
        Some(value)
    }

    /// Any JSON value, checked as strictly as serde checks what it ignores, and dropped.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|scan, _| scan.skip(depth + 1)),
            b'[' => self.array(|scan| scan.skip(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.null(),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A number as JSON writes them: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match *self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.at_least_one_digit()?;
        }
        Some(())
    }

    fn at_least_one_digit(&mut self) -> Option<()> {
        self.bytes.get(self.at)?.is_ascii_digit().then(|| self.digits())
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use fastrand::Rng;

    use super::*;

    /// Both readings of `data`: the fast path's when it takes it, and serde's.
    fn both(data: &str) -> (Option<String>, Result<String, String>) {
        let fast = Scan::new(data).chunk().map(|c| format!("{c:?}"));
        let serde = serde_json::from_str::<WireChunk>(data)
            .map(|c| format!("{c:?}"))
            .map_err(|e| e.to_string());
        (fast, serde)
    }

    /// The fast path reads what serde reads, or gives up.
    fn agrees(data: &str) -> bool {
        match both(data) {
            (None, _) => true,
            (Some(fast), Ok(serde)) => fast == serde,
            (Some(_), Err(_)) => false,
        }
    }

    #[test]
    fn the_chunks_every_api_sends_take_the_fast_path_and_read_as_serde_reads_them() {
        for data in [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1731000000,"model":"m","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hel\"lo\n\u00e9\ud83d\ude00 /\/"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1"}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","choices":[],"x_groq":null,"error":null}"#,
            r#" { "id" : null , "model" : "m" , "choices" : [ { "delta" : null } ] } "#,
            r#"{"choices":[{"delta":{"reasoning_content":"think","reasoning":null,"refusal":"no","tool_calls":[]},"finish_reason":"length"}],"extra":{"a":[1,-2.5e+3,true,false,null,{"b":"\u0041"}]}}"#,
        ] {
            let (fast, serde) = both(data);
            assert!(fast.is_some(), "the fast path gave up on {data}");
            assert_eq!(fast.unwrap(), serde.unwrap(), "{data}");
        }
    }

    #[test]
    fn what_only_serde_reads_goes_to_serde_with_the_same_result() {
        for data in [
            // Tool calls, usage, an error: serde's to read.
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":20,"total_tokens":29}}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            // serde's errors stand: duplicates, wrong types, bad JSON, trailing text.
            r#"{"id":"a","id":"b","choices":[]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"id":7}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":null}}]}"#,
            r#"{"id":"a",}"#,
            r#"{"id":"a"} x"#,
            r#"{"id":"\ud800"}"#,
            r#"{"id":"\x"}"#,
            r#"{"n":01}"#,
            r#"{"n":1.}"#,
            r#"{"n":-}"#,
            "{\"id\":\"a\u{1}b\"}",
            r#"{"\u0069d":"escaped key"}"#,
            r#"[]"#,
            "",
        ] {
            let (fast, serde) = both(data);
            assert!(fast.is_none(), "the fast path read {data}");
            assert_eq!(
                parse(data).map(|c| format!("{c:?}")).map_err(|e| e.to_string()),
                serde,
                "{data}"
            );
        }
    }

    fn text(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a",
            "tok ",
            "é",
            "😀",
            "\\n",
            "\\\"",
            "\\\\",
            "\\/",
            "\\u00e9",
            "\\ud83d\\ude00",
            " ",
            "\\t",
        ];
        (0..rng.usize(0..6)).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
    }

    fn value(rng: &mut Rng, depth: u32) -> String {
        match rng.usize(0..if depth > 2 { 4 } else { 6 }) {
            0 => format!("\"{}\"", text(rng)),
            1 => ["0", "-1", "12", "3.25", "-0.5e-3", "1E+9"][rng.usize(..6)].to_owned(),
            2 => ["true", "false"][rng.usize(..2)].to_owned(),
            3 => "null".to_owned(),
            4 => format!(
                "[{}]",
                (0..rng.usize(0..3)).map(|_| value(rng, depth + 1)).collect::<Vec<_>>().join(",")
            ),
            _ => format!(
                "{{{}}}",
                (0..rng.usize(0..3))
                    .map(|i| format!("\"k{i}\":{}", value(rng, depth + 1)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    fn string_or_null(rng: &mut Rng) -> String {
        if rng.u8(..5) == 0 { "null".into() } else { format!("\"{}\"", text(rng)) }
    }

    fn object(rng: &mut Rng, mut members: Vec<String>) -> String {
        // Now and then a member twice: serde refuses a known field's duplicate.
        if !members.is_empty() && rng.u8(..20) == 0 {
            members.push(members[rng.usize(..members.len())].clone());
        }
        rng.shuffle(&mut members);
        let space = [" ", "", "\n", ""][rng.usize(..4)];
        format!("{{{space}{}{space}}}", members.join(&format!(",{space}")))
    }

    fn chunk(rng: &mut Rng) -> String {
        let mut members = Vec::new();
        for key in ["id", "model"] {
            if rng.bool() {
                members.push(format!("\"{key}\":{}", string_or_null(rng)));
            }
        }
        for key in ["object", "created", "system_fingerprint", "service_tier", "obfuscation"] {
            if rng.u8(..3) == 0 {
                members.push(format!("\"{key}\":{}", value(rng, 0)));
            }
        }
        if rng.u8(..4) == 0 {
            members
                .push(format!("\"usage\":{}", ["null", r#"{"prompt_tokens":1}"#][rng.usize(..2)]));
        }
        let choices: Vec<String> = (0..rng.usize(0..3))
            .map(|_| {
                let mut delta = Vec::new();
                for key in ["content", "refusal", "reasoning_content", "reasoning"] {
                    if rng.u8(..3) == 0 {
                        delta.push(format!("\"{key}\":{}", string_or_null(rng)));
                    }
                }
                if rng.u8(..4) == 0 {
                    delta.push(format!("\"role\":{}", value(rng, 1)));
                }
                if rng.u8(..6) == 0 {
                    delta.push("\"tool_calls\":[]".into());
                }
                let mut choice = vec![format!("\"index\":{}", rng.u8(..3))];
                if rng.u8(..5) != 0 {
                    choice.push(format!("\"delta\":{}", object(rng, delta)));
                }
                if rng.bool() {
                    choice.push(format!("\"finish_reason\":{}", string_or_null(rng)));
                }
                object(rng, choice)
            })
            .collect();
        if rng.u8(..8) != 0 {
            members.push(format!("\"choices\":[{}]", choices.join(",")));
        }
        object(rng, members)
    }

    #[test]
    fn random_chunks_read_the_same_both_ways_and_most_take_the_fast_path() {
        let mut rng = Rng::with_seed(424_242);
        let mut fast = 0;
        for _ in 0..20_000 {
            let data = chunk(&mut rng);
            assert!(agrees(&data), "{data}: {:?}", both(&data));
            fast += usize::from(Scan::new(&data).chunk().is_some());
        }
        assert!(fast > 15_000, "only {fast} of 20,000 took the fast path");
    }

    #[test]
    fn mutated_chunks_never_read_otherwise_than_serde_reads_them() {
        let mut rng = Rng::with_seed(7);
        const BYTES: &[u8] = b"{}[]\",:\\ \nu0eE.-+9nul";
        for _ in 0..20_000 {
            let mut data = chunk(&mut rng).into_bytes();
            for _ in 0..rng.usize(1..4) {
                if data.is_empty() {
                    break;
                }
                let at = rng.usize(..data.len());
                match rng.u8(..3) {
                    0 => data[at] = BYTES[rng.usize(..BYTES.len())],
                    1 => data.insert(at, BYTES[rng.usize(..BYTES.len())]),
                    _ => {
                        data.remove(at);
                    }
                }
            }
            let Ok(data) = String::from_utf8(data) else { continue };
            assert!(agrees(&data), "{data}: {:?}", both(&data));
        }
    }
}
