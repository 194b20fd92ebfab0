//! The subset of proto/aiservice/v1/chat.proto that the benchmark's tools send and read, with
//! the same field numbers; unknown fields in what they receive are skipped. Shared by the load
//! generator and the null proxy (`#[path]` module: the tools are separate binaries).

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChatRequest {
    #[prost(string, tag = "1")]
    pub model: String,
    #[prost(message, repeated, tag = "2")]
    pub messages: Vec<Message>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(int32, tag = "1")]
    pub role: i32,
    #[prost(message, repeated, tag = "2")]
    pub content: Vec<ContentPart>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContentPart {
    #[prost(string, optional, tag = "1")]
    pub text: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChatResponse {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "5")]
    pub message: Option<Message>,
    #[prost(int32, tag = "6")]
    pub finish_reason: i32,
}

/// The `event` oneof of the proto, as two optional fields: only one is ever set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamChatResponse {
    #[prost(message, optional, tag = "1")]
    pub content_delta: Option<ContentDelta>,
    #[prost(message, optional, tag = "4")]
    pub finish: Option<Finish>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContentDelta {
    #[prost(string, tag = "1")]
    pub text: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Finish {
    #[prost(int32, tag = "1")]
    pub reason: i32,
}
