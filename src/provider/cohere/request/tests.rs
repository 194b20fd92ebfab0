//! The translation of domain requests into Cohere's v2 chat wire format, field by field.

use serde_json::json;

use super::*;
use crate::{
    chat::{Generation, Reasoning, ReasoningConfig, Tool, ToolCall},
    config::ConnectionSettings,
};

fn provider() -> CohereProvider {
    CohereProvider::new("cohere", &ConnectionSettings::for_tests("http://127.0.0.1:1")).unwrap()
}

fn tool(strict: Option<bool>) -> Tool {
    Tool {
        name: "weather".into(),
        description: Some("Weather".into()),
        parameters: json!({"type": "object"}),
        strict,
        cache_control: None,
    }
}

fn body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let p = provider();
    p.body("command-a-03-2025", request, false).map(|b| serde_json::to_value(b).unwrap())
}

#[test]
fn roles_tool_calls_plans_and_sampling_map_to_the_wire() {
    let mut assistant = Message::text(Role::Assistant, "");
    assistant.content.push(ContentPart::Reasoning(Reasoning {
        text: "I will look it up.".into(),
        ..Reasoning::default()
    }));
    assistant.tool_calls = vec![ToolCall {
        id: "weather_1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Paris"}"#.into(),
        signature: None,
    }];
    let mut result = Message::text(Role::Tool, "sunny");
    result.tool_call_id = Some("weather_1".into());
    let request = ChatRequest {
        messages: vec![
            Message::text(Role::System, "sys"),
            Message::text(Role::User, "hi"),
            assistant,
            result,
        ],
        generation: Generation {
            top_p: Some(0.5),
            top_k: Some(3),
            seed: Some(7),
            reasoning: Some(ReasoningConfig { budget_tokens: Some(512), effort: None }),
            response_format: ResponseFormat::JsonObject,
            ..Default::default()
        },
        tools: vec![tool(Some(true))],
        tool_choice: Some(ToolChoice::Required),
        ..Default::default()
    };
    let body = body(&request).unwrap();
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "sys"}));
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": [{"type": "text", "text": "hi"}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
            {"id": "weather_1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "weather_1",
               "content": [{"type": "text", "text": "sunny"}]})
    );
    assert_eq!(
        (body["p"].clone(), body["k"].clone(), body["seed"].clone()),
        (json!(0.5), json!(3), json!(7))
    );
    assert_eq!(body["thinking"], json!({"type": "enabled", "token_budget": 512}));
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["strict_tools"], true);
    assert_eq!(body["tool_choice"], "REQUIRED");
    assert_eq!(body["tools"][0]["function"]["name"], "weather");
    assert!(body.get("stream").is_none());
}

#[test]
fn text_documents_go_beside_the_messages_and_others_are_refused() {
    let doc = |mime: Option<&str>, source: DocumentSource| Document {
        source,
        mime_type: mime.map(str::to_owned),
        title: Some("Notes".into()),
    };
    let mut user = Message::text(Role::User, "summarise");
    user.content.push(ContentPart::Document(doc(
        Some("text/plain"),
        DocumentSource::Data("the notes".into()),
    )));
    let request = ChatRequest { messages: vec![user.clone()], ..Default::default() };
    let wire = body(&request).unwrap();
    assert_eq!(
        wire["documents"],
        json!([{"id": "doc_0", "data": {"title": "Notes", "text": "the notes"}}])
    );
    assert_eq!(wire["messages"][0]["content"].as_array().unwrap().len(), 1);

    let cases = [
        (doc(Some("application/pdf"), DocumentSource::Data("%PDF".into())), "mime_type"),
        (doc(None, DocumentSource::Url("https://x/a.txt".into())), "url"),
        (doc(None, DocumentSource::Data(vec![0xff, 0xfe].into())), "data"),
    ];
    for (document, field) in cases {
        user.content[1] = ContentPart::Document(document);
        let request = ChatRequest { messages: vec![user.clone()], ..Default::default() };
        let err = body(&request).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some(format!("messages[0].content[1].document.{field}").as_str())
        );
    }
}

#[test]
fn what_cohere_cannot_take_is_refused_by_field() {
    let with = |f: &dyn Fn(&mut ChatRequest)| {
        let mut request = ChatRequest {
            messages: vec![Message::text(Role::User, "hi")],
            tools: vec![tool(None)],
            ..Default::default()
        };
        f(&mut request);
        body(&request).unwrap_err().field.unwrap()
    };
    assert_eq!(with(&|r| r.tool_choice = Some(ToolChoice::Tool("weather".into()))), "tool_choice");
    assert_eq!(
        with(&|r| r.generation.parallel_tool_calls = Some(false)),
        "generation.parallel_tool_calls"
    );
    assert_eq!(with(&|r| r.tools.push(tool(Some(true)))), "tools[0].strict");
    assert_eq!(with(&|r| r.messages[0].name = Some("ann".into())), "messages[0].name");
}
