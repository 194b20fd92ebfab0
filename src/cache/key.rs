//! The cache key: SHA-256 of a canonical encoding of what decides an answer.
//!
//! Normalisation, so that equal requests get equal keys and different ones different keys:
//! - included: the route's configured name (so aliases share entries, and the caller's own
//!   model string does not matter), every message (role, name, content parts in order,
//!   tool calls, tool-call id), every generation parameter, the tools and the tool choice;
//! - unset optional fields encode as `null`, distinct from zero or `false`;
//! - JSON values (tool parameters, response schemas) encode with their object keys sorted,
//!   so key order in the caller's JSON does not matter; text is taken byte for byte (no
//!   trimming or case folding: an exact-match cache);
//! - stop sequences are sorted, as their order does not change an answer;
//! - image bytes enter as their SHA-256, image URLs as written;
//! - never included: the caller's credentials, its metadata (`metadata` map, headers,
//!   request ids, `x-ai-cache`), deadlines.
//!
//! The encoding starts with a version tag; changing what enters the key bumps it, so old
//! entries simply stop matching.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    chat::{
        ChatRequest, ContentPart, DocumentSource, ImageDetail, ImageSource, Message,
        ResponseFormat, ToolChoice,
    },
    embed::EmbedRequest,
};

/// The version of the key encoding.
const KEY_VERSION: u64 = 1;

/// A cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of `request` on the route named `route`.
    pub fn of(route: &str, request: &ChatRequest) -> CacheKey {
        let g = &request.generation;
        let mut stop = g.stop.clone();
        stop.sort();
        let response_format = match &g.response_format {
            ResponseFormat::Text => json!("text"),
            ResponseFormat::JsonObject => json!("json_object"),
            ResponseFormat::JsonSchema(s) => json!({
                "name": s.name, "description": s.description, "schema": s.schema, "strict": s.strict,
            }),
        };
        let tool_choice = match &request.tool_choice {
            None => Value::Null,
            Some(ToolChoice::Auto) => json!("auto"),
            Some(ToolChoice::None) => json!("none"),
            Some(ToolChoice::Required) => json!("required"),
            Some(ToolChoice::Tool(name)) => json!({ "tool": name }),
        };
        let document = json!({
            "v": KEY_VERSION,
            "route": route,
            "messages": request.messages.iter().map(message).collect::<Vec<_>>(),
            "generation": {
                "temperature": g.temperature,
                "top_p": g.top_p,
                "top_k": g.top_k,
                "max_tokens": g.max_tokens,
                "presence_penalty": g.presence_penalty,
                "frequency_penalty": g.frequency_penalty,
                "stop": stop,
                "seed": g.seed,
                "response_format": response_format,
                "parallel_tool_calls": g.parallel_tool_calls,
            },
            "tools": request.tools.iter().map(|t| json!({
                "name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict,
            })).collect::<Vec<_>>(),
            "tool_choice": tool_choice,
        });
        let mut document = document;
        // Added only when set, so the keys of requests without reasoning stay what they were.
        if let (Some(r), Some(generation)) = (&g.reasoning, document.get_mut("generation")) {
            generation["reasoning"] = json!({
                "effort": r.effort.map(|e| e.as_str()), "budget_tokens": r.budget_tokens,
            });
        }
        let mut canonical = String::new();
        write_canonical(&document, &mut canonical);
        CacheKey(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The key of the embeddings `request` on the route named `route`: the inputs in order,
    /// byte for byte, and the dimensions (unset is not a number); never the encoding, which
    /// only changes how the same vectors travel, nor metadata.
    pub fn of_embeddings(route: &str, request: &EmbedRequest) -> CacheKey {
        let document = json!({
            "v": KEY_VERSION,
            "kind": "embeddings",
            "route": route,
            "inputs": request.inputs,
            "dimensions": request.dimensions,
        });
        let mut canonical = String::new();
        write_canonical(&document, &mut canonical);
        CacheKey(Sha256::digest(canonical.as_bytes()).into())
    }

    /// Lower-case hex, as stored in Redis.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// A message as it enters the key. Cache breakpoints are left out: they change what the
/// provider keeps in its prompt cache, not the answer.
fn message(m: &Message) -> Value {
    let content: Vec<Value> = m
        .content
        .iter()
        .filter(|part| !matches!(part, ContentPart::CacheBreakpoint(_)))
        .map(|part| match part {
            ContentPart::Text(text) => json!({ "text": text }),
            ContentPart::Image(image) => {
                let source = match &image.source {
                    ImageSource::Url(url) => json!({ "url": url }),
                    ImageSource::Data(data) => {
                        let digest: [u8; 32] = Sha256::digest(data).into();
                        json!({ "sha256": CacheKey(digest).hex() })
                    }
                };
                let detail = image.detail.map(|d| match d {
                    ImageDetail::Auto => "auto",
                    ImageDetail::Low => "low",
                    ImageDetail::High => "high",
                });
                json!({ "image": source, "mime_type": image.mime_type, "detail": detail })
            }
            ContentPart::Document(document) => {
                let source = match &document.source {
                    DocumentSource::Url(url) => json!({ "url": url }),
                    DocumentSource::Data(data) => {
                        let digest: [u8; 32] = Sha256::digest(data).into();
                        json!({ "sha256": CacheKey(digest).hex() })
                    }
                };
                json!({ "document": source, "mime_type": document.mime_type, "title": document.title })
            }
            ContentPart::Reasoning(r) => {
                json!({ "reasoning": [r.text, r.signature, r.redacted_data] })
            }
            ContentPart::CacheBreakpoint(_) => Value::Null,
        })
        .collect();
    json!({
        "role": m.role.as_str(),
        "name": m.name,
        "content": content,
        "tool_calls": m.tool_calls.iter().map(|c| match &c.signature {
            None => json!([c.id, c.name, c.arguments]),
            Some(signature) => json!([c.id, c.name, c.arguments, signature]),
        }).collect::<Vec<_>>(),
        "tool_call_id": m.tool_call_id,
    })
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        chat::{Role, Tool},
        embed::EmbeddingEncoding,
    };

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "alias".into(),
            messages: vec![Message::text(Role::User, text)],
            ..Default::default()
        }
    }

    #[test]
    fn metadata_and_the_model_string_do_not_enter_the_key() {
        let a = request("hi");
        let mut b = request("hi");
        b.model = "other-alias".into();
        b.metadata = BTreeMap::from([("x-user-id".to_owned(), "u1".to_owned())]);
        assert_eq!(CacheKey::of("r", &a), CacheKey::of("r", &b));
    }

    #[test]
    fn what_decides_the_answer_changes_the_key() {
        let base = CacheKey::of("r", &request("hi"));
        assert_ne!(base, CacheKey::of("other-route", &request("hi")));
        assert_ne!(base, CacheKey::of("r", &request("hi ")));
        let mut zero = request("hi");
        zero.generation.temperature = Some(0.0);
        assert_ne!(base, CacheKey::of("r", &zero), "unset is not zero");
        let mut tools = request("hi");
        tools.tools = vec![Tool {
            name: "search".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
            cache_control: None,
        }];
        assert_ne!(base, CacheKey::of("r", &tools));
        let mut choice = tools.clone();
        choice.tool_choice = Some(ToolChoice::Required);
        assert_ne!(CacheKey::of("r", &tools), CacheKey::of("r", &choice));
    }

    #[test]
    fn json_key_order_and_stop_order_do_not_matter() {
        let tool = |parameters: Value| Tool {
            name: "t".into(),
            description: None,
            parameters,
            strict: None,
            cache_control: None,
        };
        let mut a = request("hi");
        a.tools = vec![tool(
            serde_json::from_str(r#"{"type":"object","properties":{"b":{},"a":{}}}"#).unwrap(),
        )];
        a.generation.stop = vec!["x".into(), "y".into()];
        let mut b = request("hi");
        b.tools = vec![tool(
            serde_json::from_str(r#"{"properties":{"a":{},"b":{}},"type":"object"}"#).unwrap(),
        )];
        b.generation.stop = vec!["y".into(), "x".into()];
        assert_eq!(CacheKey::of("r", &a), CacheKey::of("r", &b));
    }

    #[test]
    fn embedding_keys_follow_inputs_and_dimensions_not_encoding() {
        let request = |inputs: &[&str], dimensions| EmbedRequest {
            model: "alias".into(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            dimensions,
            ..Default::default()
        };
        let base = CacheKey::of_embeddings("r", &request(&["a", "b"], None));
        let mut bytes = request(&["a", "b"], None);
        bytes.encoding = EmbeddingEncoding::Bytes;
        bytes.model = "other".into();
        assert_eq!(base, CacheKey::of_embeddings("r", &bytes));
        assert_ne!(base, CacheKey::of_embeddings("r", &request(&["b", "a"], None)));
        assert_ne!(base, CacheKey::of_embeddings("r", &request(&["a", "b"], Some(8))));
        assert_ne!(base, CacheKey::of_embeddings("s", &request(&["a", "b"], None)));
        assert_ne!(base, CacheKey::of("r", &super::tests::request("a")));
    }

    #[test]
    fn keys_print_as_hex() {
        let hex = CacheKey::of("r", &request("hi")).hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
