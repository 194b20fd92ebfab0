//! The OpenAI door's request reader and its translation into the domain over any bytes
//! (malformed JSON, wrong types, deep nesting, odd data: URLs, huge numbers): a request is
//! accepted or refused with an error, never a panic.
#![no_main]

use ai_service::front::openai::request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = request::read(data) {
        let _ = (request.model(), request.message_count(), request.stream(), request.metadata());
        let _ = request.translate();
    }
});
