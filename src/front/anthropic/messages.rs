//! The Messages dialect as this door reads it: a `POST /v1/messages` body into the domain
//! [`ChatRequest`]. The answer goes back through [`super::reply`].
//!
//! A body is read in two steps. [`MessagesRequest::parse`] reads the JSON strictly: an
//! unknown field is refused as Anthropic refuses it ("Extra inputs are not permitted"), and a
//! wrong type is named by its path (serde_path_to_error). The places that hold one of several
//! shapes (message content, `system`, `tools`, `tool_choice`) stay JSON values there and are
//! read by [`MessagesRequest::into_domain`], which dispatches on their `type`, checks what
//! [`crate::validate`] checks for the gRPC door (so both doors accept and refuse the same
//! requests), and lists every problem with its path at once.
//!
//! What the domain carries: `thinking` (`enabled` with `budget_tokens`, or `disabled`) as the
//! reasoning control; `thinking` and `redacted_thinking` blocks of assistant turns as signed
//! reasoning parts; `document` blocks (PDF as base64 or URL, plain text) as documents; and
//! `cache_control` (with its `ttl`) on system, text, image, document and tool_result blocks,
//! on tools, and at the top level (a breakpoint after the last block) as cache breakpoints.
//!
//! Anthropic's fields with no place in the domain are refused by name, never dropped; a
//! field that is `null` counts as absent, and a few values that ask for the default are
//! accepted: `service_tier: "auto"`, `is_error: false`, `disable_parallel_tool_use: false`, a
//! tool's `type: "custom"`, a text block's empty `citations`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::{
    chat::{
        CacheControl, CacheTtl, ChatRequest, ContentPart, Document, DocumentSource, Generation,
        Image, ImageSource, Message, Reasoning, ReasoningConfig, Role, Tool, ToolCall, ToolChoice,
    },
    error::Error,
    validate::{self, Violations},
};

/// The content block types this door translates.
const BLOCK_TYPES: &str =
    "text, image, document, thinking, redacted_thinking, tool_use and tool_result";

/// A `POST /v1/messages` body, read but not yet translated; see the module docs.
#[derive(Debug)]
pub struct MessagesRequest {
    wire: WireRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a Messages request object")]
struct WireRequest {
    model: String,
    messages: Vec<WireMessage>,
    max_tokens: Option<i64>,
    system: Option<Value>,
    metadata: Option<WireMetadata>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    thinking: Option<Value>,
    cache_control: Option<Value>,
    // Anthropic's own, with no place in the domain: refused unless absent, null or a default.
    service_tier: Option<Value>,
    container: Option<Value>,
    context_management: Option<Value>,
    diagnostics: Option<Value>,
    inference_geo: Option<Value>,
    mcp_servers: Option<Value>,
    output_config: Option<Value>,
    output_format: Option<Value>,
    speed: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a message object with role and content")]
struct WireMessage {
    role: WireRole,
    content: Value,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a metadata object")]
struct WireMetadata {
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBlock {
    text: String,
    cache_control: Option<Value>,
    citations: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBlock {
    source: Map<String, Value>,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentBlock {
    source: Map<String, Value>,
    title: Option<String>,
    context: Option<Value>,
    citations: Option<Value>,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThinkingBlock {
    thinking: String,
    signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedactedThinkingBlock {
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireThinking {
    budget_tokens: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCacheControl {
    ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Base64Source {
    media_type: String,
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlSource {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolUseBlock {
    id: String,
    name: String,
    input: Value,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolResultBlock {
    tool_use_id: String,
    content: Option<Value>,
    is_error: Option<bool>,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTool {
    name: String,
    description: Option<String>,
    input_schema: Value,
    strict: Option<bool>,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireToolChoice {
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

impl MessagesRequest {
    /// Reads `body` strictly; see the module docs.
    pub fn parse(body: &[u8]) -> Result<MessagesRequest, Error> {
        // A body that is no JSON object would otherwise be described in serde's words.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::MalformedRequest("the request body must be a JSON object".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let wire = match serde_path_to_error::deserialize::<_, WireRequest>(&mut de) {
            Ok(wire) => wire,
            Err(e) if e.inner().is_data() => {
                let (field, description) = described(&e.path().to_string(), e.inner());
                let field = if field.is_empty() { "body".to_owned() } else { field };
                return Err(Error::invalid(field, description));
            }
            Err(e) => return Err(malformed(e.inner())),
        };
        de.end().map_err(|e| malformed(&e))?;
        Ok(MessagesRequest { wire })
    }

    /// Whether the caller asked for a stream.
    pub fn stream(&self) -> bool {
        self.wire.stream == Some(true)
    }

    /// The model the caller asked for.
    pub fn model(&self) -> &str {
        &self.wire.model
    }

    /// How many messages the request carries.
    pub fn message_count(&self) -> usize {
        self.wire.messages.len()
    }

    /// The caller metadata for the call's record: `metadata.user_id` as `user_id`.
    pub fn caller_metadata(&self) -> HashMap<String, String> {
        let user = self.wire.metadata.as_ref().and_then(|m| m.user_id.clone());
        user.map(|id| ("user_id".to_owned(), id)).into_iter().collect()
    }

    /// The domain request, or INVALID_ARGUMENT listing every problem with its path.
    pub fn into_domain(self) -> Result<ChatRequest, Error> {
        let mut v = Violations::default();
        let metadata: BTreeMap<String, String> = self.caller_metadata().into_iter().collect();
        let w = self.wire;
        refuse_unsupported(&mut v, &w);

        let model = w.model.trim().to_owned();
        if model.is_empty() {
            v.add("model", "is required; GET /v1/models lists the models you can use");
        }

        let max_tokens = match w.max_tokens {
            None => {
                v.add("max_tokens", "Field required");
                None
            }
            Some(n) => validate::positive(&mut v, "max_tokens", Some(saturate(n))),
        };
        let temperature = validate::in_range(&mut v, "temperature", w.temperature, 0.0, 2.0);
        let top_p = validate::in_range(&mut v, "top_p", w.top_p, 0.0, 1.0);
        let top_k = validate::positive(&mut v, "top_k", w.top_k.map(saturate));
        let stop = w.stop_sequences.unwrap_or_default();
        if stop.len() > validate::MAX_STOP_SEQUENCES {
            v.add(
                "stop_sequences",
                format!(
                    "at most {} stop sequences, got {}",
                    validate::MAX_STOP_SEQUENCES,
                    stop.len()
                ),
            );
        }
        for (i, s) in stop.iter().enumerate() {
            if s.is_empty() {
                v.add(format!("stop_sequences[{i}]"), "must not be empty");
            }
        }

        let mut messages = system(&mut v, w.system);
        if w.messages.is_empty() {
            v.add("messages", "at least one message is required");
        }
        for (i, m) in w.messages.into_iter().enumerate() {
            let at = format!("messages[{i}]");
            match m.role {
                WireRole::User => user_turn(&mut v, &at, m.content, &mut messages),
                WireRole::Assistant => messages.extend(assistant_turn(&mut v, &at, m.content)),
            }
        }
        // Automatic caching: the breakpoint goes after the last block.
        if let Some(control) = cache_control(&mut v, "", w.cache_control)
            && let Some(last) = messages.last_mut()
        {
            last.content.push(ContentPart::CacheBreakpoint(control));
        }
        let reasoning = w.thinking.and_then(|t| thinking(&mut v, t));

        let tools = tools(&mut v, w.tools.unwrap_or_default());
        let (tool_choice, parallel_tool_calls) = match w.tool_choice {
            Some(choice) => tool_choice(&mut v, choice, &tools),
            None => (None, None),
        };
        validate::metadata(&mut v, "metadata", &metadata);

        v.finish(ChatRequest {
            model,
            messages,
            generation: Generation {
                temperature,
                top_p,
                top_k,
                max_tokens,
                stop,
                parallel_tool_calls,
                reasoning,
                ..Generation::default()
            },
            tools,
            tool_choice,
            metadata,
        })
    }
}

/// A JSON integer as the domain's `i32` checks take it: out-of-range values keep their sign,
/// so they fail or pass those checks as they would unclamped.
fn saturate(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// Notes each of Anthropic's top-level fields that the gateway cannot honour.
fn refuse_unsupported(v: &mut Violations, w: &WireRequest) {
    if let Some(tier) = &w.service_tier
        && tier.as_str() != Some("auto")
    {
        v.add("service_tier", "only \"auto\" is supported by this gateway");
    }
    let others = [
        ("container", w.container.is_some()),
        ("context_management", w.context_management.is_some()),
        ("diagnostics", w.diagnostics.is_some()),
        ("inference_geo", w.inference_geo.is_some()),
        ("mcp_servers", w.mcp_servers.is_some()),
        ("output_config", w.output_config.is_some()),
        ("output_format", w.output_format.is_some()),
        ("speed", w.speed.is_some()),
    ];
    for (field, _) in others.iter().filter(|(_, set)| *set) {
        v.add(*field, "is not supported by this gateway");
    }
}

/// `thinking`: `enabled` with its budget is the reasoning control; `disabled` asks for none.
fn thinking(v: &mut Violations, thinking: Value) -> Option<ReasoningConfig> {
    let (kind, rest) = typed_object(v, "thinking", thinking)?;
    match kind.as_str() {
        "enabled" => {
            let wire: WireThinking = read(v, "thinking", rest)?;
            let Some(budget) = wire.budget_tokens else {
                v.add("thinking.budget_tokens", "Field required");
                return None;
            };
            let budget = validate::positive(v, "thinking.budget_tokens", Some(saturate(budget)));
            validate::reasoning_config(v, "thinking", None, budget)
        }
        "disabled" => {
            if read::<Map<String, Value>>(v, "thinking", rest).is_some_and(|r| !r.is_empty()) {
                v.add("thinking", "a disabled thinking takes no other field");
            }
            None
        }
        other => {
            v.add(
                "thinking.type",
                format!("unknown thinking type {other:?}; use enabled or disabled"),
            );
            None
        }
    }
}

/// A `cache_control` at `at` as a cache breakpoint, when one is set.
fn cache_control(v: &mut Violations, at: &str, control: Option<Value>) -> Option<CacheControl> {
    let at = joined(at, "cache_control");
    let (kind, rest) = typed_object(v, &at, control?)?;
    if kind != "ephemeral" {
        v.add(format!("{at}.type"), format!("unknown cache_control type {kind:?}; use ephemeral"));
        return None;
    }
    let wire: WireCacheControl = read(v, &at, rest)?;
    let ttl = wire
        .ttl
        .and_then(|ttl| CacheTtl::parse(&ttl).map_err(|why| v.add(format!("{at}.ttl"), why)).ok());
    Some(CacheControl { ttl })
}

/// Pushes the parts of one block, and its cache breakpoint after them.
fn with_breakpoint(
    out: &mut Vec<ContentPart>,
    parts: impl IntoIterator<Item = ContentPart>,
    control: Option<CacheControl>,
) {
    out.extend(parts);
    out.extend(control.map(ContentPart::CacheBreakpoint));
}

fn malformed(e: &serde_json::Error) -> Error {
    Error::MalformedRequest(format!("the request body is not valid JSON: {e}"))
}

/// Joins a field path and a path inside it.
fn joined(at: &str, inner: &str) -> String {
    match (at, inner) {
        (_, "") => at.to_owned(),
        ("", _) => inner.to_owned(),
        (_, inner) if inner.starts_with('[') => format!("{at}{inner}"),
        _ => format!("{at}.{inner}"),
    }
}

/// A serde error at `path` as a field and a description: an unknown or missing field is named
/// in the path, in Anthropic's words.
fn described(path: &str, error: &impl std::fmt::Display) -> (String, String) {
    // serde_path_to_error writes the empty path as ".".
    let path = if path == "." { "" } else { path };
    let message = error.to_string();
    // The path of an unknown field ends with it already; a missing one's is its parent's.
    let named = |prefix: &str| {
        let (name, _) = message.strip_prefix(prefix)?.split_once('`')?;
        let last = path.rsplit(['.', ']']).next().unwrap_or_default();
        Some(if last == name { path.to_owned() } else { joined(path, name) })
    };
    if let Some(field) = named("unknown field `") {
        return (field, "Extra inputs are not permitted".to_owned());
    }
    if let Some(field) = named("missing field `") {
        return (field, "Field required".to_owned());
    }
    // serde_json adds where in the text the error is; the path says it better.
    let message = match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    };
    (path.to_owned(), message)
}

/// Reads `value` as a `T`, noting a problem at its path under `at`.
fn read<T: DeserializeOwned>(v: &mut Violations, at: &str, value: Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let (field, description) = described(&e.path().to_string(), e.inner());
            v.add(joined(at, &field), description);
            None
        }
    }
}

/// A content block's `type` and the rest of it, or a note that it is no typed object.
fn typed_object(v: &mut Violations, at: &str, value: Value) -> Option<(String, Value)> {
    let Value::Object(mut object) = value else {
        v.add(at, "must be an object with a type");
        return None;
    };
    match object.remove("type") {
        Some(Value::String(kind)) => Some((kind, Value::Object(object))),
        Some(_) => {
            v.add(format!("{at}.type"), "must be a string");
            None
        }
        None => {
            v.add(format!("{at}.type"), "Field required");
            None
        }
    }
}

/// The blocks of a content that is a string (one text block) or an array of blocks.
fn blocks(v: &mut Violations, at: &str, content: Value) -> Vec<(String, String, Value)> {
    match content {
        Value::String(text) => {
            vec![(at.to_owned(), "text".to_owned(), serde_json::json!({ "text": text }))]
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(j, item)| {
                let at = format!("{at}[{j}]");
                typed_object(v, &at, item).map(|(kind, rest)| (at, kind, rest))
            })
            .collect(),
        _ => {
            v.add(at, "must be a string or an array of content blocks");
            Vec::new()
        }
    }
}

/// A text block's text and its cache breakpoint.
fn text(v: &mut Violations, at: &str, block: Value) -> Option<(String, Option<CacheControl>)> {
    let block: TextBlock = read(v, at, block)?;
    let control = cache_control(v, at, block.cache_control);
    if block.citations.is_some_and(|c| !c.is_empty()) {
        v.add(format!("{at}.citations"), "citations are not supported by this gateway");
    }
    Some((block.text, control))
}

/// A text block as parts: the text, then its breakpoint.
fn text_parts(v: &mut Violations, at: &str, block: Value, out: &mut Vec<ContentPart>) {
    if let Some((text, control)) = text(v, at, block) {
        with_breakpoint(out, [ContentPart::Text(text)], control);
    }
}

fn image(v: &mut Violations, at: &str, block: Value, out: &mut Vec<ContentPart>) {
    let Some(block) = read::<ImageBlock>(v, at, block) else { return };
    let control = cache_control(v, at, block.cache_control);
    let image = image_source(v, at, block.source);
    with_breakpoint(out, image, control);
}

fn document(v: &mut Violations, at: &str, block: Value, out: &mut Vec<ContentPart>) {
    let Some(block) = read::<DocumentBlock>(v, at, block) else { return };
    let control = cache_control(v, at, block.cache_control);
    if block.context.is_some() {
        v.add(format!("{at}.context"), "document context is not supported by this gateway");
    }
    if block.citations.as_ref().is_some_and(|c| c.get("enabled") == Some(&Value::Bool(true))) {
        v.add(format!("{at}.citations"), "citations are not supported by this gateway");
    }
    let source_at = format!("{at}.source");
    let Some((kind, source)) = typed_object(v, &source_at, Value::Object(block.source)) else {
        return;
    };
    let (source, mime_type) = match kind.as_str() {
        "base64" => {
            let Some(source) = read::<Base64Source>(v, &source_at, source) else { return };
            if source.media_type != "application/pdf" {
                v.add(
                    format!("{source_at}.media_type"),
                    format!("{:?} is not application/pdf", source.media_type),
                );
            }
            let data = base64_data(v, &source_at, &source.data);
            (DocumentSource::Data(data.into()), Some(source.media_type))
        }
        "text" => {
            let Some(source) = read::<Base64Source>(v, &source_at, source) else { return };
            if source.media_type != "text/plain" {
                v.add(
                    format!("{source_at}.media_type"),
                    format!("{:?} is not text/plain", source.media_type),
                );
            }
            if source.data.is_empty() {
                v.add(format!("{source_at}.data"), "is empty");
            }
            (DocumentSource::Data(source.data.into_bytes().into()), Some(source.media_type))
        }
        "url" => {
            let Some(source) = read::<UrlSource>(v, &source_at, source) else { return };
            let lower = source.url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                v.add(format!("{source_at}.url"), "must be an http(s) URL");
            }
            (DocumentSource::Url(source.url), Some("application/pdf".to_owned()))
        }
        other => {
            v.add(
                format!("{source_at}.type"),
                format!("document sources of type {other:?} are not supported by this gateway (base64, text and url are)"),
            );
            return;
        }
    };
    let title = block.title.filter(|t| !t.is_empty());
    with_breakpoint(out, [ContentPart::Document(Document { source, mime_type, title })], control);
}

/// A `thinking` or `redacted_thinking` block as a reasoning part.
fn reasoning(v: &mut Violations, at: &str, kind: &str, block: Value) -> Option<ContentPart> {
    let part = if kind == "thinking" {
        let block: ThinkingBlock = read(v, at, block)?;
        // An empty signature is reasoning another provider gave unsigned; it stays unsigned.
        let signature = (!block.signature.is_empty()).then_some(block.signature);
        Reasoning { text: block.thinking, signature, redacted_data: None }
    } else {
        let block: RedactedThinkingBlock = read(v, at, block)?;
        if block.data.is_empty() {
            v.add(format!("{at}.data"), "is required; send the block back as it came");
        }
        Reasoning { redacted_data: Some(block.data), ..Reasoning::default() }
    };
    Some(ContentPart::Reasoning(part))
}

/// Base64 data, decoded; a problem is noted at `at.data`.
fn base64_data(v: &mut Violations, at: &str, data: &str) -> Vec<u8> {
    match base64::engine::general_purpose::STANDARD.decode(data) {
        Ok(data) if data.is_empty() => {
            v.add(format!("{at}.data"), "is empty");
            data
        }
        Ok(data) => data,
        Err(e) => {
            v.add(format!("{at}.data"), format!("is not valid base64: {e}"));
            Vec::new()
        }
    }
}

fn image_source(v: &mut Violations, at: &str, source: Map<String, Value>) -> Option<ContentPart> {
    let at = format!("{at}.source");
    let (kind, source) = typed_object(v, &at, Value::Object(source))?;
    let image = match kind.as_str() {
        "base64" => {
            let source: Base64Source = read(v, &at, source)?;
            if !validate::IMAGE_MIME_TYPES.contains(&source.media_type.as_str()) {
                v.add(
                    format!("{at}.media_type"),
                    format!(
                        "{:?} is not one of {}",
                        source.media_type,
                        validate::IMAGE_MIME_TYPES.join(", ")
                    ),
                );
            }
            let data = base64_data(v, &at, &source.data);
            Image {
                source: ImageSource::Data(data.into()),
                mime_type: Some(source.media_type),
                detail: None,
            }
        }
        "url" => {
            let source: UrlSource = read(v, &at, source)?;
            let lower = source.url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                v.add(format!("{at}.url"), "must be an http(s) URL");
            }
            Image { source: ImageSource::Url(source.url), mime_type: None, detail: None }
        }
        other => {
            v.add(
                format!("{at}.type"),
                format!("image sources of type {other:?} are not supported by this gateway (base64 and url are)"),
            );
            return None;
        }
    };
    Some(ContentPart::Image(image))
}

fn unsupported_block(v: &mut Violations, at: &str, kind: &str, role: &str) {
    let why = match kind {
        "text" | "image" | "document" | "thinking" | "redacted_thinking" | "tool_use"
        | "tool_result" => {
            format!("{kind} blocks are not allowed in {role} messages")
        }
        _ => format!(
            "content blocks of type {kind:?} are not supported by this gateway ({BLOCK_TYPES} are)"
        ),
    };
    v.add(format!("{at}.type"), why);
}

/// A user turn: its text and images become a user message, each `tool_result` block a tool
/// message, in the order they come.
fn user_turn(v: &mut Violations, at: &str, content: Value, out: &mut Vec<Message>) {
    let blocks = blocks(v, &format!("{at}.content"), content);
    if blocks.is_empty() {
        v.add(format!("{at}.content"), "is empty; a message needs text, an image or a tool result");
        return;
    }
    let mut parts: Vec<ContentPart> = Vec::new();
    let flush = |parts: &mut Vec<ContentPart>, out: &mut Vec<Message>, v: &mut Violations| {
        if parts.is_empty() {
            return;
        }
        let message =
            Message { content: std::mem::take(parts), ..Message::text(Role::User, String::new()) };
        if !has_content(&message.content) {
            v.add(format!("{at}.content"), "is empty; a message needs text or an image");
        }
        out.push(message);
    };
    for (at, kind, block) in blocks {
        match kind.as_str() {
            "text" => text_parts(v, &at, block, &mut parts),
            "image" => image(v, &at, block, &mut parts),
            "document" => document(v, &at, block, &mut parts),
            "tool_result" => {
                flush(&mut parts, out, v);
                out.extend(tool_result(v, &at, block));
            }
            other => unsupported_block(v, &at, other, "user"),
        }
    }
    flush(&mut parts, out, v);
}

fn has_content(parts: &[ContentPart]) -> bool {
    parts.iter().any(|p| match p {
        ContentPart::Text(t) => !t.is_empty(),
        ContentPart::Image(_) | ContentPart::Document(_) | ContentPart::Reasoning(_) => true,
        ContentPart::CacheBreakpoint(_) => false,
    })
}

/// A `tool_result` block as a tool message. The domain's tool messages carry no error flag:
/// `is_error: true` becomes an `Error: ` text before the result, which is how a tool's
/// failure reads in the OpenAI-shaped conversation the routes speak.
fn tool_result(v: &mut Violations, at: &str, block: Value) -> Option<Message> {
    let block: ToolResultBlock = read(v, at, block)?;
    let control = cache_control(v, at, block.cache_control);
    if block.tool_use_id.is_empty() {
        v.add(format!("{at}.tool_use_id"), "is required");
    }
    let content_at = format!("{at}.content");
    let mut content = Vec::new();
    for (at, kind, part) in blocks(v, &content_at, block.content.unwrap_or(Value::Array(vec![]))) {
        match kind.as_str() {
            "text" => text_parts(v, &at, part, &mut content),
            "image" => image(v, &at, part, &mut content),
            "document" => document(v, &at, part, &mut content),
            other => v.add(
                format!("{at}.type"),
                format!("a tool result holds text, image and document blocks, not {other:?}"),
            ),
        }
    }
    if !has_content(&content) {
        v.add(content_at, "is empty; a tool result needs text or an image");
    }
    if block.is_error == Some(true) {
        content.insert(0, ContentPart::Text("Error: ".to_owned()));
    }
    content.extend(control.map(ContentPart::CacheBreakpoint));
    Some(Message {
        role: Role::Tool,
        content,
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: Some(block.tool_use_id),
    })
}

/// An assistant turn: its text, and its `tool_use` blocks as tool calls.
fn assistant_turn(v: &mut Violations, at: &str, content: Value) -> Option<Message> {
    let blocks = blocks(v, &format!("{at}.content"), content);
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (at, kind, block) in blocks {
        match kind.as_str() {
            "text" => text_parts(v, &at, block, &mut parts),
            "thinking" | "redacted_thinking" => parts.extend(reasoning(v, &at, &kind, block)),
            "tool_use" => {
                let Some(call) = read::<ToolUseBlock>(v, &at, block) else { continue };
                if call.cache_control.is_some() {
                    v.add(
                        format!("{at}.cache_control"),
                        "a cache breakpoint on a tool_use block is not supported by this gateway; put it on a later block",
                    );
                }
                if call.id.is_empty() {
                    v.add(format!("{at}.id"), "is required");
                }
                if call.name.is_empty() {
                    v.add(format!("{at}.name"), "is required");
                }
                if !call.input.is_object() {
                    v.add(format!("{at}.input"), "must be an object");
                }
                tool_calls.push(ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments: call.input.to_string(),
                    signature: None,
                });
            }
            other => unsupported_block(v, &at, other, "assistant"),
        }
    }
    if !has_content(&parts) && tool_calls.is_empty() {
        v.add(format!("{at}.content"), "is empty; a message needs text or a tool use");
    }
    Some(Message {
        role: Role::Assistant,
        content: parts,
        name: None,
        tool_calls,
        tool_call_id: None,
    })
}

/// `system` as system messages: one per text block, empty ones left out, each with its cache
/// breakpoint.
fn system(v: &mut Violations, system: Option<Value>) -> Vec<Message> {
    let Some(system) = system else { return Vec::new() };
    let mut out = Vec::new();
    for (at, kind, block) in blocks(v, "system", system) {
        if kind != "text" {
            v.add(format!("{at}.type"), "a system prompt holds only text blocks");
            continue;
        }
        if let Some((text, control)) = text(v, &at, block).filter(|(t, _)| !t.is_empty()) {
            let mut message = Message::text(Role::System, text);
            message.content.extend(control.map(ContentPart::CacheBreakpoint));
            out.push(message);
        }
    }
    out
}

fn tools(v: &mut Violations, tools: Vec<Value>) -> Vec<Tool> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(mut tool) = tool else {
            v.add(at, "must be an object");
            continue;
        };
        match tool.remove("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind == "custom" => {}
            Some(kind) => {
                v.add(
                    format!("{at}.type"),
                    format!("server tools ({kind}) are not supported by this gateway; define client tools with name, description and input_schema"),
                );
                continue;
            }
        }
        let Some(tool) = read::<WireTool>(v, &at, Value::Object(tool)) else { continue };
        let cache_control = cache_control(v, &at, tool.cache_control);
        if !validate::valid_name(&tool.name) {
            v.add(format!("{at}.name"), "must be 1 to 64 of [a-zA-Z0-9_-]");
        } else if !seen.insert(tool.name.clone()) {
            v.add(format!("{at}.name"), format!("{:?} is defined twice", tool.name));
        }
        if !tool.input_schema.is_object() {
            v.add(format!("{at}.input_schema"), "must be a JSON Schema object");
        }
        out.push(Tool {
            name: tool.name,
            description: tool.description.filter(|d| !d.is_empty()),
            parameters: tool.input_schema,
            strict: tool.strict,
            cache_control,
        });
    }
    out
}

/// `tool_choice` as the domain's choice and whether parallel tool calls are allowed:
/// `disable_parallel_tool_use: true` forbids them; `false` is Anthropic's default, as unset.
fn tool_choice(
    v: &mut Violations,
    choice: Value,
    tools: &[Tool],
) -> (Option<ToolChoice>, Option<bool>) {
    const AT: &str = "tool_choice";
    let Some((kind, rest)) = typed_object(v, AT, choice) else { return (None, None) };
    let Some(wire) = read::<WireToolChoice>(v, AT, rest) else { return (None, None) };
    let parallel = (wire.disable_parallel_tool_use == Some(true)).then_some(false);
    let choice = match (kind.as_str(), wire.name) {
        ("auto", None) => ToolChoice::Auto,
        ("any", None) => ToolChoice::Required,
        ("none", None) if wire.disable_parallel_tool_use.is_none() => ToolChoice::None,
        ("tool", Some(name)) => {
            if !tools.iter().any(|t| t.name == name) {
                v.add(format!("{AT}.name"), format!("{name:?} is not one of the request's tools"));
            }
            ToolChoice::Tool(name)
        }
        ("tool", None) => {
            v.add(format!("{AT}.name"), "Field required");
            return (None, None);
        }
        ("auto" | "any" | "none", Some(_)) => {
            v.add(format!("{AT}.name"), "Extra inputs are not permitted");
            return (None, None);
        }
        ("none", _) => {
            v.add(format!("{AT}.disable_parallel_tool_use"), "Extra inputs are not permitted");
            return (None, None);
        }
        (other, _) => {
            v.add(
                format!("{AT}.type"),
                format!("unknown tool choice {other:?}; use auto, any, tool or none"),
            );
            return (None, None);
        }
    };
    if choice == ToolChoice::Required && tools.is_empty() {
        v.add(format!("{AT}.type"), "\"any\" needs at least one tool");
    }
    (Some(choice), parallel)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<ChatRequest, Error> {
        MessagesRequest::parse(body.to_string().as_bytes())?.into_domain()
    }

    fn fields(result: Result<ChatRequest, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidRequest(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not invalid: {other:?}"),
        }
    }

    fn descriptions(result: Result<ChatRequest, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidRequest(v)) => v.into_iter().map(|v| v.to_string()).collect(),
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn a_full_conversation_translates() {
        let request = parse(json!({
            "model": "claude",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "calling", "citations": null},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                    {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": true,
                     "content": [{"type": "text", "text": "boom"}]},
                    {"type": "text", "text": "and now?"},
                ]},
            ],
            "tools": [{"name": "f", "description": "does f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "temperature": 0.0,
            "top_k": 5,
            "metadata": {"user_id": "u-1"},
            "stream": false,
            "thinking": {"type": "disabled"},
            "service_tier": "auto",
            "container": null,
        }))
        .unwrap();
        let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "system", "user", "assistant", "tool", "tool", "user"]);
        assert_eq!(request.messages[1].joined_text(), "be kind");
        let image = &request.messages[2].content[1];
        assert!(
            matches!(image, ContentPart::Image(Image { source: ImageSource::Data(d), mime_type: Some(m), .. })
            if &d[..] == b"GIF89a" && m == "image/gif")
        );
        assert_eq!(request.messages[3].tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(request.messages[4].tool_call_id.as_deref(), Some("t1"));
        assert_eq!(request.messages[5].joined_text(), "Error: boom");
        assert_eq!(request.messages[6].joined_text(), "and now?");
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        let g = &request.generation;
        assert_eq!((g.max_tokens, g.temperature, g.top_k), (Some(100), Some(0.0), Some(5)));
        assert_eq!(g.parallel_tool_calls, Some(false));
        assert_eq!(g.stop, ["END"]);
        assert_eq!(request.metadata["user_id"], "u-1");
    }

    #[test]
    fn unknown_and_missing_fields_are_named_in_anthropics_words() {
        let err = parse(json!({"model": "m", "max_tokens": 1, "messages": [], "bogus": 1}));
        assert_eq!(descriptions(err), ["bogus: Extra inputs are not permitted"]);
        let err = parse(json!({"model": "m", "max_tokens": 1}));
        assert_eq!(descriptions(err), ["messages: Field required"]);
        let err = parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(descriptions(err), ["max_tokens: Field required"]);
        let err = parse(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]}]}));
        assert_eq!(
            descriptions(err),
            ["messages[0].content[0].extra: Extra inputs are not permitted"]
        );
    }

    #[test]
    fn wrong_types_are_named_by_their_path() {
        let err = parse(json!({"model": "m", "max_tokens": "ten", "messages": []}));
        assert_eq!(fields(err), ["max_tokens"]);
        let err = parse(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "system", "content": "x"}]}));
        assert_eq!(fields(err), ["messages[0].role"]);
        let err = parse(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}));
        assert_eq!(fields(err), ["messages[0].content[0].text"]);
        let err = parse(
            json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f", "input_schema": {}, "description": 3}],
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(fields(err), ["tools[0].description"]);
    }

    #[test]
    fn malformed_json_and_non_objects_are_malformed() {
        for body in [
            &b"{\"model\": "[..],
            b"[]",
            b"",
            b"null",
            br#"{"model": "m", "messages": []} trailing"#,
        ] {
            let err = MessagesRequest::parse(body).unwrap_err();
            assert!(matches!(err, Error::MalformedRequest(_)), "{body:?}: {err:?}");
        }
    }

    #[test]
    fn what_the_gateway_cannot_honour_is_refused_by_name() {
        let err = parse(json!({
            "model": "m", "max_tokens": 1,
            "thinking": {"type": "adaptive"},
            "cache_control": {"type": "persistent"},
            "service_tier": "standard_only",
            "mcp_servers": [],
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1d"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {"type": "content", "content": []}},
                    {"type": "image", "source": {"type": "file", "file_id": "f"}},
                    {"type": "text", "text": "x", "citations": [{"type": "char_location"}]},
                ]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]},
            ],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        }));
        assert_eq!(
            fields(err),
            [
                "service_tier",
                "mcp_servers",
                "system[0].cache_control.ttl",
                "messages[0].content[0].source.type",
                "messages[0].content[1].source.type",
                "messages[0].content[2].citations",
                "messages[1].content[0].signature",
                "messages[1].content",
                "cache_control.type",
                "thinking.type",
                "tools[0].type",
            ]
        );
    }

    #[test]
    fn the_domain_checks_apply_with_this_dialects_names() {
        let err = parse(json!({
            "model": " ", "max_tokens": 0, "temperature": 3.0, "top_p": -1, "top_k": -5,
            "stop_sequences": [""],
            "messages": [
                {"role": "user", "content": ""},
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "!!"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "", "name": "f", "input": [1]}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            ],
            "tools": [{"name": "bad name", "input_schema": {}}, {"name": "f", "input_schema": []}, {"name": "f", "input_schema": {}}],
            "tool_choice": {"type": "tool", "name": "g"},
            "metadata": {"user_id": "u".repeat(2000)},
        }));
        assert_eq!(
            fields(err),
            [
                "model",
                "max_tokens",
                "temperature",
                "top_p",
                "top_k",
                "stop_sequences[0]",
                "messages[0].content",
                "messages[1].content[0].source.media_type",
                "messages[1].content[0].source.data",
                "messages[2].content[0].id",
                "messages[2].content[0].input",
                "messages[3].content[0].content",
                "tools[0].name",
                "tools[1].input_schema",
                "tools[2].name",
                "tool_choice.name",
                "metadata[user_id]",
            ]
        );
    }

    #[test]
    fn tool_choices_translate() {
        let base = |choice: Value| {
            parse(
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}),
            )
        };
        let choice = |c: Value| base(c).unwrap().tool_choice;
        assert_eq!(choice(json!({"type": "auto"})), Some(ToolChoice::Auto));
        assert_eq!(choice(json!({"type": "none"})), Some(ToolChoice::None));
        assert_eq!(
            choice(json!({"type": "tool", "name": "f"})),
            Some(ToolChoice::Tool("f".into()))
        );
        let allowed = base(json!({"type": "auto", "disable_parallel_tool_use": false})).unwrap();
        assert_eq!(allowed.generation.parallel_tool_calls, None);
        assert_eq!(fields(base(json!({"type": "sometimes"}))), ["tool_choice.type"]);
        assert_eq!(fields(base(json!({"type": "auto", "name": "f"}))), ["tool_choice.name"]);
        assert_eq!(fields(base(json!({"type": "auto", "x": 1}))), ["tool_choice.x"]);
        assert_eq!(fields(base(json!("auto"))), ["tool_choice"]);
    }
}
