//! The Anthropic door's request reader over arbitrary bytes: the strict JSON read, then the
//! translation into the domain request (content blocks, tools, tool choice, images in
//! base64). Whatever the body, it is accepted or refused with an error, never a panic.
#![no_main]

use ai_service::front::anthropic::MessagesRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = MessagesRequest::parse(data) {
        let _ = (request.stream(), request.model(), request.message_count());
        let _ = request.caller_metadata();
        let _ = request.into_domain();
    }
});
