//! The translation of domain requests into Bedrock's Converse wire format, field by field.

use serde_json::json;

use super::*;
use crate::{
    chat::{Generation, Reasoning, ReasoningConfig, Tool, ToolCall},
    config::{AwsCredentials, BedrockSettings, ConnectionSettings},
};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";

fn provider() -> BedrockProvider {
    BedrockProvider::new(
        "bedrock",
        &ConnectionSettings::for_tests("http://127.0.0.1:1"),
        &BedrockSettings {
            region: "us-east-1".into(),
            credentials: AwsCredentials::Chain { profile: None },
        },
    )
    .unwrap()
}

fn body(model: &str, request: &ChatRequest) -> Result<Value, ProviderError> {
    provider().converse_request(model, request).map(|b| serde_json::to_value(b).unwrap())
}

fn user(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![Message::text(Role::User, text)], ..ChatRequest::default() }
}

#[test]
fn system_turns_tools_and_results_map_to_converse() {
    let mut assistant = Message::text(Role::Assistant, "Let me check.");
    assistant.content.insert(
        0,
        ContentPart::Reasoning(Reasoning {
            text: "Need weather.".into(),
            signature: Some("sig-1".into()),
            redacted_data: None,
        }),
    );
    assistant.content.push(ContentPart::Reasoning(Reasoning {
        text: "from elsewhere, unsigned".into(),
        ..Reasoning::default()
    }));
    assistant.tool_calls = vec![
        ToolCall {
            id: "t1".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
            signature: None,
        },
        ToolCall {
            id: "t2".into(),
            name: "weather".into(),
            arguments: String::new(),
            signature: None,
        },
    ];
    let mut r1 = Message::text(Role::Tool, "sunny");
    r1.tool_call_id = Some("t1".into());
    let mut r2 = Message::text(Role::Tool, "rain");
    r2.tool_call_id = Some("t2".into());
    let mut system = Message::text(Role::System, "Be brief.");
    system.content.push(ContentPart::CacheBreakpoint(CacheControl { ttl: None }));
    let request = ChatRequest {
        messages: vec![system, Message::text(Role::User, "Weather?"), assistant, r1, r2],
        generation: Generation {
            max_tokens: Some(300),
            temperature: Some(0.2),
            top_p: Some(0.9),
            stop: vec!["END".into()],
            ..Generation::default()
        },
        tools: vec![Tool {
            name: "weather".into(),
            description: Some("Weather by city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            strict: None,
            cache_control: Some(CacheControl { ttl: Some(CacheTtl::FiveMinutes) }),
        }],
        tool_choice: Some(ToolChoice::Tool("weather".into())),
        ..ChatRequest::default()
    };
    let body = body(CLAUDE, &request).unwrap();
    assert_eq!(
        body,
        json!({
            "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [{"text": "Weather?"}]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Need weather.", "signature": "sig-1"}}},
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "t2", "name": "weather", "input": {}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                    {"toolResult": {"toolUseId": "t2", "content": [{"text": "rain"}]}}
                ]}
            ],
            "inferenceConfig": {"maxTokens": 300, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [
                    {"toolSpec": {"name": "weather", "description": "Weather by city",
                                  "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                    {"cachePoint": {"type": "default"}}
                ],
                "toolChoice": {"tool": {"name": "weather"}}
            }
        })
    );
}

#[test]
fn images_documents_and_cache_points_are_blocks() {
    let mut request = user("Read these.");
    let content = &mut request.messages[0].content;
    content.push(ContentPart::Image(Image {
        source: ImageSource::Url("data:image/jpeg;base64,/9j/4AA=".into()),
        mime_type: None,
        detail: None,
    }));
    content.push(ContentPart::Document(Document {
        source: DocumentSource::Data(bytes::Bytes::from_static(b"%PDF-1.7")),
        mime_type: Some("application/pdf".into()),
        title: Some("Q3 report: final!".into()),
    }));
    content.push(ContentPart::CacheBreakpoint(CacheControl { ttl: None }));
    content.push(ContentPart::Document(Document {
        source: DocumentSource::Data(bytes::Bytes::from_static(b"plain")),
        mime_type: None,
        title: None,
    }));
    let body = body(NOVA, &request).unwrap();
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"text": "Read these."},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AA="}}},
            {"document": {"format": "pdf", "name": "Q3 report final", "source": {"bytes": "JVBERi0xLjc="}}},
            {"cachePoint": {"type": "default"}},
            {"document": {"format": "txt", "name": "document-2", "source": {"bytes": "cGxhaW4="}}}
        ])
    );
    assert!(body.get("inferenceConfig").is_none() && body.get("toolConfig").is_none());
}

#[test]
fn claude_reasoning_and_top_k_go_in_the_additional_fields() {
    let mut request = user("Think.");
    request.generation.reasoning =
        Some(ReasoningConfig { budget_tokens: Some(2048), effort: None });
    request.generation.top_k = Some(5);
    let body = body(CLAUDE, &request).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 2048 + 4096}));
    // The same on an ARN of an inference profile.
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0";
    assert!(is_claude(arn));

    request.generation.max_tokens = Some(1000);
    let err = provider().converse_request(CLAUDE, &request).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("generation.max_tokens"));
}

#[test]
fn what_converse_cannot_take_is_refused_by_field() {
    type Change = Box<dyn Fn(&mut ChatRequest)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (NOVA, Box::new(|r| r.generation.top_k = Some(3)), "generation.top_k"),
        (
            NOVA,
            Box::new(|r| {
                r.generation.reasoning =
                    Some(ReasoningConfig { budget_tokens: Some(1024), effort: None })
            }),
            "generation.reasoning",
        ),
        (CLAUDE, Box::new(|r| r.generation.seed = Some(1)), "generation.seed"),
        (
            CLAUDE,
            Box::new(|r| r.generation.presence_penalty = Some(0.1)),
            "generation.presence_penalty",
        ),
        (
            CLAUDE,
            Box::new(|r| r.generation.response_format = ResponseFormat::JsonObject),
            "generation.response_format",
        ),
        (
            CLAUDE,
            Box::new(|r| r.generation.parallel_tool_calls = Some(false)),
            "generation.parallel_tool_calls",
        ),
        (CLAUDE, Box::new(|r| r.messages[0].name = Some("bob".into())), "messages[0].name"),
        (
            CLAUDE,
            Box::new(|r| {
                r.messages[0].content.push(ContentPart::Image(Image {
                    source: ImageSource::Url("https://example.com/cat.png".into()),
                    mime_type: None,
                    detail: None,
                }))
            }),
            "messages[0].content[1].image.url",
        ),
        (
            CLAUDE,
            Box::new(|r| {
                r.messages[0].content.push(ContentPart::Image(Image {
                    source: ImageSource::Data(bytes::Bytes::from_static(b"x")),
                    mime_type: Some("image/tiff".into()),
                    detail: None,
                }))
            }),
            "messages[0].content[1].image.mime_type",
        ),
        (
            CLAUDE,
            Box::new(|r| {
                r.messages[0].content.push(ContentPart::Document(Document {
                    source: DocumentSource::Url("https://example.com/a.pdf".into()),
                    mime_type: None,
                    title: None,
                }))
            }),
            "messages[0].content[1].document.url",
        ),
        (
            CLAUDE,
            Box::new(|r| {
                r.messages[0].content.push(ContentPart::CacheBreakpoint(CacheControl {
                    ttl: Some(CacheTtl::OneHour),
                }))
            }),
            "messages[0].content[1].cache_control.ttl",
        ),
        (
            CLAUDE,
            Box::new(|r| {
                r.messages[0]
                    .content
                    .insert(0, ContentPart::CacheBreakpoint(CacheControl { ttl: None }))
            }),
            "messages[0].content[0].cache_control",
        ),
        (CLAUDE, Box::new(|r| r.tool_choice = Some(ToolChoice::Required)), "tool_choice"),
    ];
    for (model, change, field) in cases {
        let mut request = user("hi");
        change(&mut request);
        let err = provider().converse_request(model, &request).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{err:?}");
    }
}

#[test]
fn document_names_keep_only_what_bedrock_accepts() {
    assert_eq!(document_name(Some("  a//b  (v2) [x]  "), 1), "a b (v2) [x]");
    assert_eq!(document_name(Some("!!!"), 3), "document-3");
    assert_eq!(document_name(None, 1), "document-1");
}
