//! The log lines: one line per event, as text or JSON, each passed through the redactor and
//! written whole with one write.
//!
//! This is the layer [`super::subscriber`] logs with instead of tracing-subscriber's `fmt`
//! layer, whose lines look the same but cost more than the rest of a call: it keeps each
//! span's fields as formatted text, so every `span.record` formats the field again, and its
//! JSON formatter parses that text back into a map and serializes it whole on every record
//! and again for every event (about 210,000 instructions for the `rpc` span and its line, the
//! floor's whole call twice over; text with colours, about 55,000). Here a span's fields are
//! kept as values, a record replaces one in place, and an event is formatted once into a
//! reused buffer.
//!
//! The lines:
//! - text: `2026-11-30T12:00:00.123456Z  INFO rpc{request_id=… method="Chat" …}: target: message
//!   key=value …`, as the `fmt` layer writes them (strings quoted, `%`-recorded values not),
//!   without colour codes.
//! - JSON: `{"timestamp":…,"level":"INFO","message":…,<event fields>,"target":…,
//!   "span":{<fields>,"name":"rpc"},"spans":[{…},…]}`: the `fmt` layer's JSON with the event
//!   flattened, the current span and the list of spans from the root.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    io::Write as _,
    time::SystemTime,
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{Layer, fmt::MakeWriter, layer::Context, registry::LookupSpan};

use crate::{
    config::LogFormat,
    json_text::{self, push_str as json_str},
    redact::redact,
};

/// The layer writing log lines to the writers `W` makes.
pub struct LogLines<W> {
    format: LogFormat,
    writer: W,
}

impl<W> LogLines<W> {
    /// Lines in `format`, written to `writer`.
    pub fn new(format: LogFormat, writer: W) -> LogLines<W> {
        LogLines { format, writer }
    }
}

/// A recorded value; text lives in its span's [`SpanFields::text`].
#[derive(Clone, Copy, Debug)]
enum Value {
    /// Recorded as a string: quoted in text.
    Str(Text),
    /// Recorded with `Debug` or `Display` (`?x`, `%x`), kept as it rendered: bare in text.
    Shown(Text),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// Where a value's text is in [`SpanFields::text`].
#[derive(Clone, Copy, Debug)]
struct Text {
    start: u32,
    end: u32,
}

/// A span's fields, in the order they were first set. A field recorded again replaces its
/// value, so every field appears once. Their text is kept in one buffer (one allocation for a
/// span's strings, not one each); a replaced value's old text stays there until the buffer
/// holds more dead text than [`MAX_DEAD_TEXT`].
#[derive(Debug, Default)]
struct SpanFields {
    fields: Vec<(&'static str, Value)>,
    text: String,
    /// Bytes of `text` no field refers to any more.
    dead: usize,
}

/// The most text of replaced values a span's fields keep before they are compacted.
const MAX_DEAD_TEXT: usize = 4 * 1024;

impl SpanFields {
    fn with_capacity(fields: usize) -> SpanFields {
        SpanFields { fields: Vec::with_capacity(fields), text: String::with_capacity(128), dead: 0 }
    }

    fn set(&mut self, name: &'static str, value: Value) {
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => {
                if let Value::Str(t) | Value::Shown(t) = *old {
                    self.dead += (t.end - t.start) as usize;
                }
                *old = value;
                if self.dead > MAX_DEAD_TEXT {
                    self.compact();
                }
            }
            None => self.fields.push((name, value)),
        }
    }

    /// `text` kept in the buffer.
    fn keep(&mut self, text: &str) -> Text {
        let start = self.text.len();
        self.text.push_str(text);
        Text { start: offset(start), end: offset(self.text.len()) }
    }

    /// `value` (`Debug`) rendered into the buffer.
    fn keep_shown(&mut self, value: &dyn fmt::Debug) -> Text {
        let start = self.text.len();
        // Formatting into a String cannot fail.
        let _ = write!(self.text, "{value:?}");
        Text { start: offset(start), end: offset(self.text.len()) }
    }

    fn str(&self, text: Text) -> &str {
        self.text.get(text.start as usize..text.end as usize).unwrap_or_default()
    }

    /// The fields, each with its value.
    fn iter(&self) -> impl Iterator<Item = (&'static str, ValueRef<'_>)> {
        self.fields.iter().map(|(name, value)| {
            let value = match *value {
                Value::Str(t) => ValueRef::Str(self.str(t)),
                Value::Shown(t) => ValueRef::Shown(self.str(t)),
                Value::I64(v) => ValueRef::I64(v),
                Value::U64(v) => ValueRef::U64(v),
                Value::F64(v) => ValueRef::F64(v),
                Value::Bool(v) => ValueRef::Bool(v),
            };
            (*name, value)
        })
    }

    /// Drops the text of replaced values.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.text);
        let mut kept = SpanFields {
            fields: Vec::new(),
            text: String::with_capacity(old.len() - self.dead),
            dead: 0,
        };
        for (_, value) in &mut self.fields {
            let moved = |t: Text, kept: &mut SpanFields| {
                kept.keep(old.get(t.start as usize..t.end as usize).unwrap_or_default())
            };
            *value = match *value {
                Value::Str(t) => Value::Str(moved(t, &mut kept)),
                Value::Shown(t) => Value::Shown(moved(t, &mut kept)),
                other => other,
            };
        }
        self.text = kept.text;
        self.dead = 0;
    }
}

/// A buffer offset as kept: a span's text past 4 GiB is cut (never in practice).
fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Fields from `log` records (`log.target`, `log.file`, …), which name what the event's
/// normalized metadata already says.
fn is_log_field(field: &Field) -> bool {
    field.name().starts_with("log.")
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let text = self.keep(value);
        self.set(field.name(), Value::Str(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = self.keep_shown(value);
        self.set(field.name(), Value::Shown(text));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
}

/// The most a thread's line buffer keeps between lines, in bytes.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The line being formatted, reused by every event of the thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S, W> Layer<S> for LogLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len());
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A `log` record's event names the record's level and target in its fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let write = |line: &mut String| {
            line.clear();
            // Formatting into a String cannot fail.
            let _ = match self.format {
                LogFormat::Text => text_line(line, meta, event, &ctx),
                LogFormat::Json => json_line(line, meta, event, &ctx),
            };
            // Logging must never fail the caller; a closed stream loses the line.
            let _ =
                self.writer.make_writer_for(event.metadata()).write_all(redact(line).as_bytes());
        };
        // A line logged while one is being written (by the writer, say), or while the thread
        // is being torn down (its buffer already gone), gets a buffer of its own.
        let reused = LINE.try_with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                write(&mut line);
                // One very long line (a large debug dump) does not keep its buffer for good.
                if line.capacity() > MAX_KEPT_BUFFER {
                    *line = String::with_capacity(512);
                }
                true
            }
            Err(_) => false,
        });
        if reused != Ok(true) {
            write(&mut String::new());
        }
    }
}

fn timestamp(out: &mut String) {
    json_text::push_rfc3339(out, SystemTime::now(), json_text::Fraction::Micros);
}

/// The level as the lines name it (`{level}` without the formatting machinery).
fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARN",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// Writes an event's fields: the message alone, or every other field.
struct EventFields<'a> {
    out: &'a mut String,
    json: bool,
    message: bool,
}

impl EventFields<'_> {
    fn field(&mut self, field: &Field, value: ValueRef<'_>) {
        if (field.name() == "message") != self.message || is_log_field(field) {
            return;
        }
        if self.message {
            // The message is written bare in text and as the "message" string in JSON.
            if self.json {
                self.out.push_str("\"message\":");
                json_value(self.out, value);
                self.out.push(',');
            } else {
                let _ = value.text_bare(self.out);
            }
            return;
        }
        if self.json {
            json_str(self.out, field.name());
            self.out.push(':');
            json_value(self.out, value);
            self.out.push(',');
        } else {
            self.out.push(' ');
            self.out.push_str(field.name());
            self.out.push('=');
            let _ = value.text(self.out);
        }
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, ValueRef::Str(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, ValueRef::Debug(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, ValueRef::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, ValueRef::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, ValueRef::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, ValueRef::Bool(value));
    }
}

/// A value being written: an event's, borrowed, or a span's, kept.
#[derive(Clone, Copy)]
enum ValueRef<'a> {
    Str(&'a str),
    Debug(&'a dyn fmt::Debug),
    Shown(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl ValueRef<'_> {
    /// As a field's value in text: strings quoted.
    fn text(self, out: &mut String) -> fmt::Result {
        match self {
            // Printable ASCII without quotes or backslashes reads the same through Debug.
            ValueRef::Str(s)
                if s.bytes().all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\') =>
            {
                out.push('"');
                out.push_str(s);
                out.push('"');
                Ok(())
            }
            ValueRef::Str(s) => write!(out, "{s:?}"),
            other => other.text_bare(out),
        }
    }

    /// As the message in text: strings bare.
    fn text_bare(self, out: &mut String) -> fmt::Result {
        match self {
            ValueRef::Str(s) | ValueRef::Shown(s) => {
                out.push_str(s);
                Ok(())
            }
            ValueRef::Debug(v) => write!(out, "{v:?}"),
            // `NaN`, `inf`: JSON would write null.
            ValueRef::F64(v) if !v.is_finite() => write!(out, "{v}"),
            ValueRef::I64(_) | ValueRef::U64(_) | ValueRef::F64(_) | ValueRef::Bool(_) => {
                json_value(out, self);
                Ok(())
            }
        }
    }
}

/// A finite float in its shortest form that reads back the same (`1.5`, `2` for 2.0, `1e-7`),
/// without the formatting machinery: a call's line carries three of them.
fn push_f64(out: &mut String, v: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(v);
    out.push_str(text.strip_suffix(".0").unwrap_or(text));
}

/// A JSON value: numbers and booleans as such (a non-finite float as `null`), everything else
/// as a string.
fn json_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Str(s) | ValueRef::Shown(s) => json_str(out, s),
        ValueRef::Debug(v) => json_text::push_debug(out, v),
        ValueRef::I64(v) => json_text::push_i64(out, v),
        ValueRef::U64(v) => json_text::push_u64(out, v),
        ValueRef::F64(v) if v.is_finite() => push_f64(out, v),
        ValueRef::F64(_) => out.push_str("null"),
        ValueRef::Bool(v) => out.push_str(if v { "true" } else { "false" }),
    }
}

/// A span's fields as a JSON object, its name last.
fn json_span(out: &mut String, name: &str, fields: Option<&SpanFields>) {
    out.push('{');
    for (field, value) in fields.into_iter().flat_map(SpanFields::iter) {
        json_str(out, field);
        out.push(':');
        json_value(out, value);
        out.push(',');
    }
    out.push_str("\"name\":");
    json_str(out, name);
    out.push('}');
}

fn json_line<S>(
    out: &mut String,
    meta: &Metadata<'_>,
    event: &Event<'_>,
    ctx: &Context<'_, S>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (level, target) = (meta.level(), meta.target());
    out.push_str("{\"timestamp\":\"");
    timestamp(out);
    out.push_str("\",\"level\":\"");
    out.push_str(level_name(level));
    out.push_str("\",");
    event.record(&mut EventFields { out, json: true, message: true });
    event.record(&mut EventFields { out, json: true, message: false });
    out.push_str("\"target\":");
    json_str(out, target);
    if let (Some(current), Some(scope)) = (ctx.event_span(event), ctx.event_scope(event)) {
        out.push_str(",\"span\":");
        let start = out.len();
        json_span(out, current.name(), current.extensions().get::<SpanFields>());
        let end = out.len();
        out.push_str(",\"spans\":[");
        let mut spans = scope.from_root().peekable();
        while let Some(span) = spans.next() {
            if spans.peek().is_none() {
                // The current span is the list's last: the same object again.
                out.extend_from_within(start..end);
            } else {
                json_span(out, span.name(), span.extensions().get::<SpanFields>());
                out.push(',');
            }
        }
        out.push(']');
    }
    out.push_str("}\n");
    Ok(())
}

fn text_line<S>(
    out: &mut String,
    meta: &Metadata<'_>,
    event: &Event<'_>,
    ctx: &Context<'_, S>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (level, target) = (meta.level(), meta.target());
    timestamp(out);
    write!(out, " {:>5} ", level_name(level))?;
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            out.push_str(span.name());
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<SpanFields>().filter(|f| !f.fields.is_empty()) {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(name);
                    out.push('=');
                    value.text(out)?;
                }
                out.push('}');
            }
            out.push(':');
        }
        out.push(' ');
    }
    out.push_str(target);
    out.push_str(": ");
    event.record(&mut EventFields { out, json: false, message: true });
    event.record(&mut EventFields { out, json: false, message: false });
    out.push('\n');
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::field::Empty;
    use tracing_subscriber::{Registry, layer::SubscriberExt};

    use super::*;

    /// Log lines written into memory (the telemetry module's tests write into it too).
    #[derive(Clone, Default)]
    pub(in crate::telemetry) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub(in crate::telemetry) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Runs `f` under a subscriber with only this layer, in `format`; returns what it wrote.
    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = Registry::default().with(LogLines::new(format, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        captured.text()
    }

    fn a_call() {
        let span = tracing::info_span!(
            "rpc",
            request_id = %"req-1",
            method = "Chat",
            route = Empty,
            provider = Empty,
            input_tokens = Empty,
            error = Empty,
        );
        span.record("route", "fast");
        span.record("provider", "a");
        // Failed over: recorded again, logged once with the last value.
        span.record("provider", "b");
        span.record("input_tokens", 12_i64);
        span.record("error", "quote \" backslash \\ newline \n tab \t bell \u{7} é");
        span.in_scope(|| {
            tracing::info!(latency_ms = 1.5, ttft_ms = f64::NAN, streamed = true, "rpc finished");
        });
    }

    #[test]
    fn json_lines_carry_the_current_span_and_the_span_list() {
        let text = logged(LogFormat::Json, a_call);
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "rpc finished");
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["ttft_ms"], serde_json::Value::Null);
        assert_eq!(line["streamed"], true);
        assert_eq!(line["target"], module_path!());
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        let span = &line["span"];
        assert_eq!(span["name"], "rpc");
        assert_eq!(span["request_id"], "req-1");
        assert_eq!(span["method"], "Chat");
        assert_eq!(span["route"], "fast");
        assert_eq!(span["provider"], "b");
        assert_eq!(span["input_tokens"], 12);
        assert_eq!(span["error"], "quote \" backslash \\ newline \n tab \t bell \u{7} é");
        assert_eq!(line["spans"], serde_json::json!([span]));
        // Recorded twice, written once: no duplicate key for a stricter parser to refuse.
        assert_eq!(text.matches("\"provider\"").count(), 2, "span and spans: {text}");
    }

    #[test]
    fn nested_spans_are_listed_from_the_root_with_the_current_one_last() {
        let text = logged(LogFormat::Json, || {
            let outer = tracing::info_span!("rpc", request_id = %"req-2", route = Empty);
            outer.record("route", "fast");
            outer.in_scope(|| {
                let inner = tracing::info_span!("attempt", provider = "a", attempt = 1_u64);
                inner.in_scope(|| tracing::info!("sent"));
            });
        });
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        let outer = serde_json::json!({"request_id": "req-2", "route": "fast", "name": "rpc"});
        let inner = serde_json::json!({"provider": "a", "attempt": 1, "name": "attempt"});
        assert_eq!(line["span"], inner, "{text}");
        assert_eq!(line["spans"], serde_json::json!([outer, inner]), "{text}");
    }

    #[test]
    fn a_field_recorded_over_and_over_keeps_its_last_value_and_bounded_text() {
        let big = "y".repeat(100_000);
        let text = logged(LogFormat::Json, || {
            let span = tracing::info_span!(
                "rpc",
                request_id = %"req-3",
                route = Empty,
                n = Empty,
                error = Empty
            );
            // A large value that stays: only replaced text counts towards a compaction.
            span.record("error", big.as_str());
            for i in 0..5_000_u64 {
                span.record(
                    "route",
                    format!("route-{i}-{}", "x".repeat(usize::try_from(i % 50).unwrap())).as_str(),
                );
                span.record("n", i);
                if i % 1_000 == 0 {
                    span.with_subscriber(|(id, dispatch)| {
                        let registry = dispatch.downcast_ref::<Registry>().unwrap();
                        let data = registry.span(id).unwrap();
                        let extensions = data.extensions();
                        let fields = extensions.get::<SpanFields>().unwrap();
                        assert!(fields.dead <= MAX_DEAD_TEXT, "{}", fields.dead);
                        let bound = big.len() + MAX_DEAD_TEXT + 256;
                        assert!(fields.text.len() <= bound, "{}", fields.text.len());
                    });
                }
            }
            span.in_scope(|| tracing::info!("done"));
        });
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["span"]["request_id"], "req-3");
        assert_eq!(line["span"]["route"], format!("route-4999-{}", "x".repeat(49)));
        assert_eq!(line["span"]["n"], 4999);
        assert_eq!(line["span"]["error"], big.as_str());
    }

    #[test]
    fn text_lines_read_like_the_fmt_layers_without_colour() {
        let text = logged(LogFormat::Text, a_call);
        let line = text.strip_suffix('\n').unwrap();
        assert!(!line.contains('\u{1b}'), "no escape codes: {line:?}");
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        assert!(
            rest.starts_with(
                " INFO rpc{request_id=req-1 method=\"Chat\" route=\"fast\" provider=\"b\" \
                 input_tokens=12 error=\"quote \\\" backslash \\\\ newline \\n tab \\t bell \\u{7} é\"}: "
            ),
            "{rest}"
        );
        assert!(
            rest.ends_with(&format!(
                "}}: {}: rpc finished latency_ms=1.5 ttft_ms=NaN streamed=true",
                module_path!()
            )),
            "{rest}"
        );
    }

    #[test]
    fn an_event_outside_a_span_has_no_span_and_debug_values_are_strings() {
        let json = logged(LogFormat::Json, || {
            tracing::warn!(peer = ?("127.0.0.1", 9), count = 3_u64, "listening");
        });
        let line: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["peer"], "(\"127.0.0.1\", 9)");
        assert_eq!(line["count"], 3);
        assert!(line.get("span").is_none() && line.get("spans").is_none(), "{line}");
        let text = logged(LogFormat::Text, || tracing::warn!(count = 3_u64, "listening"));
        assert!(
            text.ends_with(&format!("  WARN {}: listening count=3\n", module_path!())),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_written_in_their_shortest_form_and_read_back_the_same() {
        let numbers = || {
            tracing::info!(
                a = 2.0,
                b = 0.523161,
                c = -17.25,
                d = 1e-7,
                e = i64::MIN,
                f = u64::MAX,
                g = f64::INFINITY,
                "numbers"
            );
        };
        let json = logged(LogFormat::Json, numbers);
        assert!(json.contains(r#""a":2,"b":0.523161,"c":-17.25,"d":1e-7,"#), "{json}");
        assert!(json.contains(r#""e":-9223372036854775808,"f":18446744073709551615,"g":null"#));
        let line: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!((line["b"].as_f64(), line["d"].as_f64()), (Some(0.523161), Some(1e-7)));
        let text = logged(LogFormat::Text, numbers);
        assert!(
            text.ends_with(" numbers a=2 b=0.523161 c=-17.25 d=1e-7 e=-9223372036854775808 f=18446744073709551615 g=inf\n"),
            "{text}"
        );
    }

    #[test]
    fn a_very_long_line_is_written_whole_and_its_buffer_not_kept() {
        let long = "x".repeat(200 * 1024);
        let text = logged(LogFormat::Json, || tracing::warn!(dump = long.as_str(), "debug dump"));
        assert!(text.contains(&long), "written whole");
        assert!(LINE.with(|line| line.borrow().capacity()) <= MAX_KEPT_BUFFER);
    }

    #[test]
    fn lines_are_redacted() {
        let text = logged(LogFormat::Json, || {
            tracing::warn!(header = "Authorization: Bearer abcdefghijkl", "upstream said");
        });
        assert!(!text.contains("abcdefghijkl"), "{text}");
        assert!(text.contains("Bearer ***"), "{text}");
    }
}
