//! The SSE parser over arbitrary bytes, fed in arbitrary pieces: it must never panic, and the
//! events must not depend on how the input was split into reads.
#![no_main]

use ai_service::provider::sse::{SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

fn parse(pieces: &[&[u8]]) -> Result<Vec<SseEvent>, ()> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        events.extend(parser.push(piece).map_err(|_| ())?);
    }
    Ok(events)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, the rest is the stream.
    let Some((&size, input)) = data.split_first() else { return };
    let whole = parse(&[input]);
    let pieces: Vec<&[u8]> = input.chunks(usize::from(size).max(1)).collect();
    let split = parse(&pieces);
    assert_eq!(whole, split, "events depend on how the input was split");
});
