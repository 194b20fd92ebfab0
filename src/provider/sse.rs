//! A small Server-Sent Events parser, as the WHATWG spec describes the format: what the
//! OpenAI, Anthropic and Gemini adapters read their streams with.
//!
//! Bytes go in as they arrive ([`SseParser::push`]), complete events come out. Lines end in
//! LF, CRLF or a lone CR (a CR at the end of a read waits for the next one, in case an LF
//! follows); a line is decoded only once it is complete, so a UTF-8 character split across
//! reads is never mangled. Comments (`: keep-alive`) are skipped, several `data:` lines of one
//! event are joined with `\n`, the one space after the colon is optional. An event still open
//! when the input ends is dropped, as the spec says: adapters detect a cut stream by the
//! missing end marker of their wire format, never by a half event.
//!
//! The parser is plain synchronous code with a bounded buffer, so it can be fuzzed directly.

/// The longest line accepted, in bytes; a longer one is an error rather than unbounded memory.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty means the default type, `message`.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` field seen, if any.
    pub id: Option<String>,
}

/// The input broke the parser's limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than [`MAX_LINE`].
    #[error("an SSE line is longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes not yet split into lines.
    buffer: Vec<u8>,
    /// The event being built.
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// Whether the first line has been seen (a leading BOM is stripped from it).
    started: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds `bytes`, returning the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        self.push_into(bytes, &mut events)?;
        Ok(events)
    }

    /// Feeds `bytes`, appending the events they complete to `events` (a stream reuses one
    /// buffer for every read).
    pub fn push_into(&mut self, bytes: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // The common read holds whole lines: parsed straight from it, without copying it into
        // the buffer first.
        if self.buffer.is_empty() {
            let start = self.lines(bytes, events);
            self.buffer.extend_from_slice(&bytes[start..]);
        } else {
            self.buffer.extend_from_slice(bytes);
            // Lines are read in place (borrowed, not copied into a String each), so the buffer
            // is taken out of `self` while they are.
            let mut buffer = std::mem::take(&mut self.buffer);
            let start = self.lines(&buffer, events);
            buffer.drain(..start);
            self.buffer = buffer;
        }
        if self.buffer.len() > MAX_LINE {
            self.buffer.clear();
            return Err(SseError::LineTooLong);
        }
        Ok(())
    }

    /// Reads the complete lines of `buffer`, appending the events they complete; returns where
    /// the incomplete rest begins.
    fn lines(&mut self, buffer: &[u8], events: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', &buffer[start..]) {
            let rest = &buffer[start..];
            let terminator = if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A CR at the end of what we have: an LF may follow in the next read.
                    None => break,
                }
            } else {
                1
            };
            let raw = &rest[..end];
            let line = std::str::from_utf8(raw)
                .map_or_else(|_| String::from_utf8_lossy(raw), std::borrow::Cow::Borrowed);
            start += end + terminator;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        start
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        let line = if self.started {
            line
        } else {
            self.started = true;
            line.strip_prefix('\u{feff}').unwrap_or(line)
        };
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // An id with NUL is ignored, as the spec says.
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent { event, data, id: self.id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            out.extend(parser.push(chunk).unwrap());
        }
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn several_data_lines_join_with_newlines() {
        let events = parse_in_pieces(b"data: a\ndata: b\ndata:\n\n", 100);
        assert_eq!(data(&events), ["a\nb\n"]);
    }

    #[test]
    fn the_space_after_the_colon_is_optional_and_only_one_is_stripped() {
        let events = parse_in_pieces(b"data:x\n\ndata:  y\n\nevent:ping\ndata\n\n", 100);
        assert_eq!(data(&events), ["x", " y", ""]);
        assert_eq!(events[2].event, "ping");
    }

    #[test]
    fn comments_and_keep_alives_are_skipped() {
        let input = b": keep-alive\n\n:\n\nevent: message_start\n: inside\ndata: {}\n\n";
        let events = parse_in_pieces(input, 100);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "message_start");
        assert_eq!(events[0].data, "{}");
    }

    #[test]
    fn a_utf8_character_split_across_reads_survives() {
        let input = "data: h\u{e9}llo \u{1f600}\n\n".as_bytes();
        for piece in 1..input.len() {
            let events = parse_in_pieces(input, piece);
            assert_eq!(data(&events), ["h\u{e9}llo \u{1f600}"], "piece size {piece}");
        }
    }

    #[test]
    fn crlf_and_lone_cr_end_lines_even_when_split() {
        let input = b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\rdata: 3\n\n";
        for piece in 1..input.len() {
            let events = parse_in_pieces(input, piece);
            assert_eq!(data(&events), ["1", "2", "3"], "piece size {piece}");
            assert_eq!(events[0].event, "a");
            assert_eq!(events[1].event, "");
        }
    }

    #[test]
    fn an_event_without_its_blank_line_is_not_dispatched() {
        let events = parse_in_pieces(b"data: done\n\ndata: half", 3);
        assert_eq!(data(&events), ["done"]);
        let events = parse_in_pieces(b"data: done\n\ndata: half\n", 3);
        assert_eq!(data(&events), ["done"]);
    }

    #[test]
    fn ids_carry_over_and_a_bom_is_stripped() {
        let events = parse_in_pieces(b"\xef\xbb\xbfid: 7\ndata: a\n\ndata: b\n\n", 2);
        assert_eq!(data(&events), ["a", "b"]);
        assert_eq!(events[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn events_with_no_data_are_not_dispatched() {
        let events = parse_in_pieces(b"event: x\n\nretry: 10\n\n", 5);
        assert!(events.is_empty());
    }
}
