//! An OpenAI-compatible stream's chunks, read one `data:` event at a time into the gateway's
//! events ([`Chunks`]), with the state a stream carries from chunk to chunk: its id and model,
//! how it finished, its usage.
//!
//! Most chunks of a stream are one shape with other text: `{"id":"c","object":…,"created":…,
//! "model":"m","choices":[{"index":0,"delta":{"content":"…"},"finish_reason":null}]}`. Parsing
//! each in full cost about half of what the gateway spent on a chunk. After a chunk whose only
//! effect was its content, the next is first compared with it ([`Repeat`]): when everything
//! around the content's string is the same text, only that string is read. The result is the
//! one a full parse would give (see [`Repeat`] for why); anything else is parsed in full.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{WireFunction, WireToolCall, WireUsage, finish_reason};
use crate::chat::{ChatEvent, FinishReason, ReasoningDelta, ToolCallDelta, Usage};

/// What a chunk said about the stream's end.
#[derive(Debug, PartialEq)]
pub(super) enum Read {
    /// More chunks follow.
    More,
    /// `[DONE]`: the stream is complete.
    Done,
}

/// A chunk that ends the stream with an error.
#[derive(Debug)]
pub(super) enum ChunkError {
    /// It is no JSON chunk.
    Malformed(serde_json::Error),
    /// It carries the upstream's `{"error": …}`.
    Upstream(Value),
}

/// A stream's chunks read so far.
#[derive(Debug)]
pub(super) struct Chunks {
    id: String,
    provider_model: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// The shape of the last chunk, when content was all it carried.
    repeat: Option<Repeat>,
    /// Chunks parsed in full (the others were read as a repeat).
    #[cfg(test)]
    parsed: usize,
    /// Never read a chunk as a repeat: the reference the tests compare with.
    #[cfg(test)]
    full_only: bool,
}

impl Chunks {
    /// A stream of `provider_model` (until a chunk names another).
    pub fn new(provider_model: String) -> Chunks {
        Chunks {
            id: String::new(),
            provider_model,
            finish: None,
            usage: None,
            repeat: None,
            #[cfg(test)]
            parsed: 0,
            #[cfg(test)]
            full_only: false,
        }
    }

    /// Reads the `data` of one event, adding the events it carries to `out` (in order, also
    /// when it then fails).
    pub fn read(&mut self, data: &str, out: &mut Vec<ChatEvent>) -> Result<Read, ChunkError> {
        if data.trim() == "[DONE]" {
            if let Some(usage) = self.usage {
                out.push(ChatEvent::Usage(usage));
            }
            out.push(ChatEvent::Finish {
                reason: self.finish.unwrap_or(FinishReason::Stop),
                id: std::mem::take(&mut self.id),
                provider_model: std::mem::take(&mut self.provider_model),
            });
            return Ok(Read::Done);
        }
        if let Some(text) = self.repeat.as_ref().and_then(|r| r.content(data)) {
            if !text.is_empty() {
                out.push(ChatEvent::ContentDelta(text.into_owned()));
            }
            return Ok(Read::More);
        }
        #[cfg(test)]
        {
            self.parsed += 1;
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(ChunkError::Malformed)?;
        self.repeat = Repeat::of(data, &chunk);
        #[cfg(test)]
        if self.full_only {
            self.repeat = None;
        }
        if let Some(error) = chunk.error {
            return Err(ChunkError::Upstream(error));
        }
        if let Some(chunk_id) = chunk.id.filter(|s| !s.is_empty() && **s != *self.id) {
            self.id = chunk_id.into_owned();
        }
        if let Some(m) = chunk.model.filter(|s| !s.is_empty() && **s != *self.provider_model) {
            self.provider_model = m.into_owned();
        }
        if let Some(u) = chunk.usage.or(chunk.x_groq.and_then(|g| g.usage)) {
            self.usage = Some(u.into());
        }
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finish = Some(finish_reason(reason));
            }
            let Some(delta) = choice.delta else { continue };
            if let Some(text) =
                delta.reasoning_content.or(delta.reasoning).filter(|r| !r.is_empty())
            {
                out.push(ChatEvent::ReasoningDelta(ReasoningDelta {
                    text,
                    ..ReasoningDelta::default()
                }));
            }
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    out.push(ChatEvent::ContentDelta(text));
                }
            }
            for (n, call) in delta.tool_calls.into_iter().enumerate() {
                let function =
                    call.function.unwrap_or(WireFunction { name: None, arguments: None });
                out.push(ChatEvent::ToolCallDelta(ToolCallDelta {
                    index: call.index.unwrap_or(u32::try_from(n).unwrap_or(0)),
                    id: call.id.filter(|s| !s.is_empty()),
                    name: function.name.filter(|s| !s.is_empty()),
                    arguments: function.arguments.unwrap_or_default(),
                    signature: None,
                }));
            }
        }
        Ok(Read::More)
    }
}

/// A chunk seen as the last one with other content: the text before the content string's
/// body (up to its opening quote) and after it (from its closing quote).
///
/// Why a chunk that matches reads as a full parse would read it: the last chunk `P` parsed,
/// and carried content only (one choice, a `delta` with `content` and nothing else that has an
/// effect; its id and model are now the stream's). Its text holds `"content"` exactly once,
/// followed by `:"`, and no backslash outside the content's body — so no key is written with
/// escapes, and that one `"content"` is the key the parser read `delta.content` from (the
/// body read by [`string_body`] is the value it gave, checked). A new chunk `N` that is that
/// prefix, then a body [`string_body`] reads (no unescaped quote, no control character, no
/// escape left open), then that suffix, is the same sequence of JSON tokens as `P` but for
/// that one string's value. So it parses to what `P` did with that content, and has the same
/// effect: the content, as a delta; its id and model are already the stream's.
#[derive(Debug)]
struct Repeat {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Repeat {
    /// The shape of `data`, when `chunk` (its parse) carried content only.
    fn of(data: &str, chunk: &WireChunk<'_>) -> Option<Repeat> {
        const KEY: &str = "\"content\"";
        let only_content = chunk.error.is_none()
            && chunk.usage.is_none()
            && chunk.x_groq.is_none()
            && chunk.choices.len() == 1;
        let choice = chunk.choices.first().filter(|_| only_content)?;
        let delta = choice.delta.as_ref().filter(|_| choice.finish_reason.is_none())?;
        let content = delta.content.as_deref().filter(|_| {
            delta.refusal.is_none()
                && delta.reasoning_content.is_none()
                && delta.reasoning.is_none()
                && delta.tool_calls.is_empty()
        })?;
        let at = data.find(KEY)?;
        let after_key = data.get(at + KEY.len()..)?;
        if after_key.contains(KEY) {
            return None;
        }
        let body_and_rest = after_key.strip_prefix(":\"")?;
        let start = data.len() - body_and_rest.len();
        let end = start + closing_quote(body_and_rest)?;
        let (prefix, body, suffix) = (data.get(..start)?, data.get(start..end)?, data.get(end..)?);
        if prefix.contains('\\') || suffix.contains('\\') || string_body(body)? != content {
            return None;
        }
        Some(Repeat { prefix: prefix.into(), suffix: suffix.into() })
    }

    /// The content of `data` when it is this shape with other content.
    fn content<'a>(&self, data: &'a str) -> Option<Cow<'a, str>> {
        string_body(data.strip_prefix(&*self.prefix)?.strip_suffix(&*self.suffix)?)
    }
}

/// Where the string whose body `text` begins with ends: the offset of its closing quote.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The value of a JSON string whose body (the text between its quotes) is `body`, or `None`
/// when this cannot tell: an unescaped quote or control character, an escape left open or
/// unknown, and `\u` escapes (left to the full parser, as everything it refuses).
fn string_body(body: &str) -> Option<Cow<'_, str>> {
    let bytes = body.as_bytes();
    let needs = |b: u8| b == b'\\' || b == b'"' || b < 0x20;
    let Some(first) = bytes.iter().position(|&b| needs(b)) else {
        return Some(Cow::Borrowed(body));
    };
    let mut out = String::with_capacity(body.len());
    let (mut plain, mut i) = (0, first);
    while let Some(&b) = bytes.get(i) {
        if !needs(b) {
            i += 1;
            continue;
        }
        if b != b'\\' {
            return None;
        }
        out.push_str(body.get(plain..i)?);
        out.push(match bytes.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        i += 2;
        plain = i;
    }
    out.push_str(body.get(plain..)?);
    Some(Cow::Owned(out))
}

/// One streamed chunk. Its id and model come again in every chunk: borrowed from the event
/// (`Cow`: owned only when escaped), so that a chunk costs no allocation for them.
#[derive(Debug, Deserialize)]
struct WireChunk<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<WireChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
    /// Groq reports stream usage here.
    #[serde(default)]
    x_groq: Option<WireGroq>,
}

#[derive(Debug, Deserialize)]
struct WireGroq {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChunkChoice<'a> {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    finish_reason: Option<Cow<'a, str>>,
}

/// A string or null, borrowed from the event's text unless it has escapes. serde's own
/// `Option<Cow<str>>` always copies (its `borrow` reaches only a `Cow` that is the field
/// itself), which cost every chunk three allocations.
fn borrowed<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }
    deserializer.deserialize_option(Text)
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reading `chunks` gives, chunk by chunk: the events, then how it ended (an error
    /// as its `Debug` text).
    fn read_all(reader: &mut Chunks, chunks: &[String]) -> Vec<(Vec<ChatEvent>, String)> {
        chunks
            .iter()
            .map(|data| {
                let mut out = Vec::new();
                let read = reader.read(data, &mut out);
                (out, format!("{read:?}"))
            })
            .collect()
    }

    fn content_chunk(id: &str, model: &str, text: &str) -> String {
        format!(
            r#"{{"id":"{id}","object":"chat.completion.chunk","created":1,"model":"{model}","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}]}}"#,
            serde_json::to_string(text).unwrap()
        )
    }

    #[test]
    fn chunks_of_one_shape_after_the_first_are_read_as_repeats() {
        let mut chunks = vec![
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.to_owned(),
        ];
        let texts = ["Hello", " wor\"ld\"", "\n\ttab\\", "", "é😀/", "tok "];
        chunks.extend(texts.iter().map(|t| content_chunk("c", "m", t)));
        chunks.push(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#.to_owned());
        chunks.push(
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6}}"#
                .to_owned(),
        );
        chunks.push("[DONE]".to_owned());
        let mut reader = Chunks::new("asked".to_owned());
        let got: Vec<ChatEvent> =
            read_all(&mut reader, &chunks).into_iter().flat_map(|(events, _)| events).collect();
        let mut want: Vec<ChatEvent> = texts
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| ChatEvent::ContentDelta((*t).to_owned()))
            .collect();
        want.push(ChatEvent::Usage(Usage {
            input_tokens: 9,
            output_tokens: 6,
            ..Usage::default()
        }));
        want.push(ChatEvent::Finish {
            reason: FinishReason::Length,
            id: "c".into(),
            provider_model: "m".into(),
        });
        assert_eq!(got, want);
        // The role chunk, the first of the content chunks, the finish and the usage: the
        // other five content chunks were repeats of the first.
        assert_eq!(reader.parsed, 4);
    }

    #[test]
    fn a_shape_that_could_mislead_is_never_a_repeat() {
        let shapes = [
            // A second "content" key (in a field the chunk does not read).
            r#"{"id":"c","choices":[{"delta":{"content":"a"},"logprobs":{"content":"a"}}]}"#,
            // The delta's key written with an escape, a literal "content" elsewhere.
            r#"{"id":"c","x":{"content":"a"},"choices":[{"delta":{"cont\u0065nt":"a"}}]}"#,
            // Space after the colon; an escape in the id; a \u escape in the content.
            r#"{"id":"c","choices":[{"delta":{"content": "a"}}]}"#,
            r#"{"id":"c\/d","choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","choices":[{"delta":{"content":"\u0041"}}]}"#,
            // More than content: a finish, a refusal, two choices, usage.
            r#"{"id":"c","choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","choices":[{"delta":{"content":"a","refusal":"no"}}]}"#,
            r#"{"id":"c","choices":[{"delta":{"content":"a"}},{"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}"#,
        ];
        for shape in shapes {
            let mut reader = Chunks::new("m".to_owned());
            reader.read(shape, &mut Vec::new()).unwrap();
            assert!(reader.repeat.is_none(), "{shape}");
        }
    }

    #[test]
    fn string_bodies_read_as_serde_json_reads_them() {
        let mut rng = fastrand::Rng::with_seed(21);
        let pieces = [
            "a", " ", "\"", "\\", "/", "\n", "\t", "\r", "\u{8}", "\u{c}", "\u{1}", "é", "😀",
            "\u{7f}",
        ];
        for _ in 0..5_000 {
            let text: String =
                (0..rng.usize(0..8)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            let quoted = serde_json::to_string(&text).unwrap();
            let body = &quoted[1..quoted.len() - 1];
            match string_body(body) {
                Some(read) => assert_eq!(read, text),
                // Only what serde_json writes with \u (control characters but the five).
                None => assert!(body.contains("\\u"), "{body:?}"),
            }
        }
        for refused in ["a\"b", "a\\", "\\x", "\\u0041", "a\u{1}", "tab\there"] {
            assert_eq!(string_body(refused), None, "{refused:?}");
        }
        assert_eq!(closing_quote(r#"ab\"c\\"rest"#), Some(7));
        assert_eq!(closing_quote(r#"ab\""#), None);
    }

    /// Random streams, read with repeats and parsed in full, give the same events chunk by
    /// chunk, errors included.
    #[test]
    fn repeats_read_every_stream_as_parsing_every_chunk_does() {
        let mut rng = fastrand::Rng::with_seed(7);
        let pieces =
            ["tok", " ", "\"", "\\", "\\\\", "\\n", "\\u0041", "\\x", "\n", "é", "/", "\\/"];
        let raw = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(0..5)).map(|_| pieces[rng.usize(..pieces.len())]).collect()
        };
        let mut repeats = 0;
        for _ in 0..400 {
            let mut chunks = Vec::new();
            for _ in 0..rng.usize(1..40) {
                let id = ["c", "c", "c", "d"][rng.usize(..4)];
                let model = ["m", "m", "m", "n"][rng.usize(..4)];
                let text = raw(&mut rng);
                chunks.push(match rng.usize(..14) {
                    // Well-formed content chunks, most of the stream.
                    0..=4 => content_chunk(id, model, &text),
                    // Content written raw: escapes as given, quotes and newlines unescaped.
                    5..=7 => format!(
                        r#"{{"id":"{id}","model":"{model}","choices":[{{"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
                    ),
                    8 => format!(r#"{{"id":"{id}","choices":[{{"delta":{{"content":"a"}},"logprobs":{{"content":"{text}"}}}}]}}"#),
                    9 => format!(r#"{{"id":"{id}","choices":[{{"delta":{{"reasoning_content":"r","content":"{text}"}}}}]}}"#),
                    // A "content" the chunk does not read, before the delta's, often the same.
                    10 => {
                        let (x, y) = (["a", "b"][rng.usize(..2)], ["a", "b"][rng.usize(..2)]);
                        format!(r#"{{"id":"{id}","x":{{"content":"{x}"}},"choices":[{{"delta":{{"content":"{y}"}}}}]}}"#)
                    }
                    // The same with the delta's key escaped.
                    11 => {
                        let (x, y) = (["a", "b"][rng.usize(..2)], ["a", "b"][rng.usize(..2)]);
                        format!(r#"{{"id":"{id}","x":{{"content":"{x}"}},"choices":[{{"delta":{{"cont\u0065nt":"{y}"}}}}]}}"#)
                    }
                    12 => r#"{"id":"c","choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#.to_owned(),
                    _ => r#"{"error":{"message":"overloaded"}}"#.to_owned(),
                });
            }
            chunks.push("[DONE]".to_owned());
            let mut fast = Chunks::new("asked".to_owned());
            let mut full = Chunks::new("asked".to_owned());
            full.full_only = true;
            let (a, b) = (read_all(&mut fast, &chunks), read_all(&mut full, &chunks));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert_eq!(x, y, "chunk {i}: {}", chunks[i]);
            }
            repeats += full.parsed - fast.parsed;
        }
        // The comparison covered repeats, not only full parses.
        assert!(repeats > 300, "{repeats}");
    }

    #[test]
    fn a_chunks_id_model_and_finish_reason_are_borrowed_unless_escaped() {
        let data = r#"{"id":"c-1","model":"m\/1","choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}"#;
        let chunk: WireChunk = serde_json::from_str(data).unwrap();
        assert!(matches!(chunk.id, Some(Cow::Borrowed("c-1"))));
        assert!(matches!(chunk.model.as_deref(), Some("m/1")));
        assert!(matches!(chunk.model, Some(Cow::Owned(_))));
        assert!(matches!(chunk.choices[0].finish_reason, Some(Cow::Borrowed("stop"))));
        let data = r#"{"id":null,"choices":[{"delta":{},"finish_reason":null}]}"#;
        let chunk: WireChunk = serde_json::from_str(data).unwrap();
        assert!(chunk.id.is_none() && chunk.model.is_none());
        assert!(chunk.choices[0].finish_reason.is_none());
        let e = serde_json::from_str::<WireChunk>(r#"{"id":7}"#).unwrap_err();
        assert!(e.to_string().contains("a string or null"), "{e}");
    }
}
