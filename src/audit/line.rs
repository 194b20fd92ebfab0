//! An [`AuditRecord`] as its JSON line, written by hand: the writer task formats one per call,
//! and serde's derived serializer (a state machine per field, every key escaped again each
//! time) cost twice what the text does. The keys are written pre-quoted, in the record's field
//! order, with the same fields left out as its `serde` attributes leave out, so the line is
//! byte for byte what `serde_json::to_string(&record)` gives (a test holds the two together).

use std::collections::BTreeMap;

use super::AuditRecord;
use crate::json_text::{push_f64, push_str, push_u64};

/// Appends `record` as one JSON object (no newline) to `out`.
pub fn write(out: &mut String, record: &AuditRecord) {
    out.push_str("{\"time\":");
    push_str(out, &record.time);
    out.push_str(",\"request_id\":");
    push_str(out, &record.request_id);
    out.push_str(",\"front_door\":");
    push_str(out, record.front_door);
    out.push_str(",\"method\":");
    push_str(out, record.method);
    out.push_str(",\"client_id\":");
    opt_str(out, record.client_id.as_deref());
    if !record.caller.is_empty() {
        out.push_str(",\"caller\":");
        map(out, &record.caller);
    }
    if !record.metadata.is_empty() {
        out.push_str(",\"metadata\":");
        map(out, &record.metadata);
    }
    out.push_str(",\"model\":");
    opt_str(out, record.model.as_deref());
    out.push_str(",\"route\":");
    opt_str(out, record.route.as_deref());
    out.push_str(",\"provider\":");
    opt_str(out, record.provider.as_deref());
    out.push_str(",\"provider_model\":");
    opt_str(out, record.provider_model.as_deref());
    out.push_str(",\"endpoint\":");
    opt_str(out, record.endpoint.as_deref());
    out.push_str(",\"attempts\":");
    push_u64(out, u64::from(record.attempts));
    out.push_str(",\"message_count\":");
    push_u64(out, record.message_count as u64);
    out.push_str(",\"input_tokens\":");
    opt_u32(out, record.input_tokens);
    out.push_str(",\"output_tokens\":");
    opt_u32(out, record.output_tokens);
    if let Some(v) = record.cached_input_tokens {
        out.push_str(",\"cached_input_tokens\":");
        push_u64(out, u64::from(v));
    }
    if let Some(v) = record.cache_write_input_tokens {
        out.push_str(",\"cache_write_input_tokens\":");
        push_u64(out, u64::from(v));
    }
    if let Some(v) = record.reasoning_tokens {
        out.push_str(",\"reasoning_tokens\":");
        push_u64(out, u64::from(v));
    }
    if let Some(v) = record.cost_usd {
        out.push_str(",\"cost_usd\":");
        push_f64(out, v);
    }
    if record.cost_estimated {
        out.push_str(",\"cost_estimated\":true");
    }
    if let Some(hit) = record.cache_hit {
        out.push_str(if hit { ",\"cache_hit\":true" } else { ",\"cache_hit\":false" });
    }
    out.push_str(",\"latency_ms\":");
    push_f64(out, record.latency_ms);
    out.push_str(",\"ttft_ms\":");
    match record.ttft_ms {
        Some(v) => push_f64(out, v),
        None => out.push_str("null"),
    }
    out.push_str(",\"code\":");
    push_str(out, record.code);
    out.push_str(",\"error\":");
    opt_str(out, record.error.as_deref());
    if let Some(content) = &record.content {
        out.push_str(",\"content\":");
        // Only with `audit.include_content`; a Value always serializes.
        out.push_str(&serde_json::to_string(content).unwrap_or_else(|_| "null".to_owned()));
    }
    out.push('}');
}

fn opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

fn opt_u32(out: &mut String, value: Option<u32>) {
    match value {
        Some(v) => push_u64(out, u64::from(v)),
        None => out.push_str("null"),
    }
}

fn map(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, key);
        out.push(':');
        push_str(out, value);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use fastrand::Rng;

    use super::*;

    fn text(rng: &mut Rng) -> String {
        const PIECES: [&str; 8] =
            ["a", "route-1", "\"", "\\", "\n\t\u{1}", "\u{e9}", "\u{1f600}", " "];
        (0..rng.usize(0..6)).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
    }

    fn some<T>(rng: &mut Rng, make: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        if rng.bool() { Some(make(rng)) } else { None }
    }

    fn float(rng: &mut Rng) -> f64 {
        match rng.u8(0..5) {
            0 => f64::from(rng.u32(0..1000)),
            1 => rng.f64() * 1e-6,
            2 => f64::NAN,
            3 => rng.f64() * 1e9,
            _ => rng.f64(),
        }
    }

    fn map(rng: &mut Rng) -> BTreeMap<String, String> {
        (0..rng.usize(0..3)).map(|_| (text(rng), text(rng))).collect()
    }

    fn record(rng: &mut Rng) -> AuditRecord {
        AuditRecord {
            time: text(rng),
            request_id: text(rng),
            front_door: ["grpc", "openai", "anthropic", "grpc_web"][rng.usize(..4)],
            method: ["Chat", "StreamChat"][rng.usize(..2)],
            client_id: some(rng, text),
            caller: map(rng),
            metadata: map(rng),
            model: some(rng, text),
            route: some(rng, text),
            provider: some(rng, text),
            provider_model: some(rng, text),
            endpoint: some(rng, text),
            attempts: rng.u32(..),
            message_count: rng.usize(..),
            input_tokens: some(rng, |r| r.u32(..)),
            output_tokens: some(rng, |r| r.u32(..)),
            cached_input_tokens: some(rng, |r| r.u32(..)),
            cache_write_input_tokens: some(rng, |r| r.u32(..)),
            reasoning_tokens: some(rng, |r| r.u32(..)),
            cost_usd: some(rng, float),
            cost_estimated: rng.bool(),
            cache_hit: some(rng, Rng::bool),
            latency_ms: float(rng),
            ttft_ms: some(rng, float),
            code: ["OK", "UNAVAILABLE"][rng.usize(..2)],
            error: some(rng, text),
            content: some(
                rng,
                |r| serde_json::json!([{"role": "user", "text": text(r), "n": 1.5}]),
            ),
        }
    }

    /// The hand-written line is byte for byte serde's, over records of every shape: fields
    /// present and absent, escapes, non-ASCII text, odd floats.
    #[test]
    fn the_line_is_what_serde_json_writes() {
        let mut rng = Rng::with_seed(21);
        let mut out = String::new();
        for _ in 0..2000 {
            let record = record(&mut rng);
            out.clear();
            write(&mut out, &record);
            assert_eq!(out, serde_json::to_string(&record).unwrap());
        }
        out.clear();
        write(&mut out, &AuditRecord::default());
        assert_eq!(out, serde_json::to_string(&AuditRecord::default()).unwrap());
    }
}
