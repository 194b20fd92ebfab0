//! The request validator over any protobuf that decodes as a `ChatRequest` (unknown enum
//! values, huge counts, odd strings): it accepts or lists violations, never panics.
#![no_main]

use ai_service::{proto::v1 as pb, validate};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = pb::ChatRequest::decode(data) {
        let _ = validate::chat_request(request);
    }
    if let Ok(request) = pb::StreamChatRequest::decode(data) {
        let _ = validate::chat_request(request.into());
    }
});
