//! The request validator: turns a protobuf request into the domain [`ChatRequest`], or into
//! an [`Error::InvalidRequest`] that lists every problem with its field path
//! (`messages[2].content[0].image.mime_type`), so a caller can fix them all at once.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::{
    chat::{
        CacheControl, CacheTtl, ChatRequest, ContentPart, Document, DocumentSource, Generation,
        Image, ImageDetail, ImageSource, JsonSchema, Message, Reasoning, ReasoningConfig,
        ReasoningEffort, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    },
    error::{Error, FieldViolation},
    proto::v1 as pb,
};

/// Metadata entries a request may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE: usize = 1024;
/// The smallest reasoning budget, in tokens (Anthropic's minimum `budget_tokens`).
pub const MIN_REASONING_BUDGET: u32 = 1024;
/// Most stop sequences a request may carry.
pub const MAX_STOP_SEQUENCES: usize = 16;
/// MIME types accepted for inline image data.
pub const IMAGE_MIME_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// MIME types accepted for documents: PDF, and text (`text/plain`, `text/csv`, ...), which not
/// every provider takes (see docs/documents.md).
pub const DOCUMENT_MIME_TYPES: &str = "application/pdf or text/*";

impl From<pb::StreamChatRequest> for pb::ChatRequest {
    fn from(r: pb::StreamChatRequest) -> Self {
        pb::ChatRequest {
            model: r.model,
            messages: r.messages,
            generation: r.generation,
            tools: r.tools,
            tool_choice: r.tool_choice,
            metadata: r.metadata,
        }
    }
}

/// Collects violations while a request is converted; the HTTP front doors use it and the
/// checks below with their own field names.
#[derive(Default)]
pub(crate) struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Notes a problem with `field`.
    pub(crate) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// `value`, or INVALID_ARGUMENT listing every problem noted.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.0.is_empty() { Ok(value) } else { Err(Error::InvalidRequest(self.0)) }
    }
}

/// Validates `request` and converts it to the domain type.
pub fn chat_request(request: pb::ChatRequest) -> Result<ChatRequest, Error> {
    let mut v = Violations::default();

    let model = model_and_messages(&mut v, &request.model, request.messages.len(), "ListModels");
    // Each message's path is written into one buffer, not formatted anew for every message.
    let mut at = String::with_capacity(32);
    let messages: Vec<Message> = request
        .messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| at_index(&mut at, "messages", i, |at| message(&mut v, at, m)))
        .collect();

    let generation = generation(&mut v, request.generation.unwrap_or_default());
    let tools = tools(&mut v, request.tools);
    let tool_choice = request.tool_choice.and_then(|c| tool_choice(&mut v, c, &tools));

    metadata(&mut v, "metadata", &request.metadata);

    v.finish(ChatRequest {
        model,
        messages,
        generation,
        tools,
        tool_choice,
        metadata: request.metadata.into_iter().collect(),
    })
}

/// The model asked for, trimmed, which must be named, and the count of messages, of which
/// there must be one at least; `listing` is where the caller finds the models it may use.
pub(crate) fn model_and_messages(
    v: &mut Violations,
    model: &str,
    messages: usize,
    listing: &str,
) -> String {
    let model = model.trim();
    if model.is_empty() {
        v.add("model", format!("is required; {listing} lists the models you can use"));
    }
    if messages == 0 {
        v.add("messages", "at least one message is required");
    }
    model.to_owned()
}

/// The caller metadata limits: entries, key and value lengths.
pub(crate) fn metadata<'a>(
    v: &mut Violations,
    at: &str,
    metadata: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
) {
    let count = metadata.clone().into_iter().count();
    if count > MAX_METADATA_ENTRIES {
        v.add(at, format!("at most {MAX_METADATA_ENTRIES} entries, got {count}"));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY {
            v.add(at, format!("keys must be 1 to {MAX_METADATA_KEY} bytes long"));
        }
        if value.len() > MAX_METADATA_VALUE {
            v.add(format!("{at}[{key}]"), format!("longer than {MAX_METADATA_VALUE} bytes"));
        }
    }
}

fn role(v: &mut Violations, at: &str, value: i32) -> Option<Role> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::System) => Some(Role::System),
        Ok(pb::Role::User) => Some(Role::User),
        Ok(pb::Role::Assistant) => Some(Role::Assistant),
        Ok(pb::Role::Tool) => Some(Role::Tool),
        Ok(pb::Role::Unspecified) => {
            v.add(format!("{at}.role"), "is required (SYSTEM, USER, ASSISTANT or TOOL)");
            None
        }
        Err(_) => {
            v.add(
                format!("{at}.role"),
                format!("unknown role {value}; use SYSTEM, USER, ASSISTANT or TOOL"),
            );
            None
        }
    }
}

/// Runs `f` on `path` with `name[index]` appended, then takes it off again: the field paths
/// of list items written in place (the front doors' converters too), not formatted anew for
/// each item of every request.
pub(crate) fn at_index<R>(
    path: &mut String,
    name: &str,
    index: usize,
    f: impl FnOnce(&mut String) -> R,
) -> R {
    let outer = path.len();
    path.push_str(name);
    path.push('[');
    path.push_str(itoa::Buffer::new().format(index));
    path.push(']');
    let result = f(path);
    path.truncate(outer);
    result
}

/// One message, at the path `at` (`messages[i]`), which its parts' paths extend in place and
/// leave as they found it.
fn message(v: &mut Violations, at: &mut String, m: pb::Message) -> Option<Message> {
    let role = role(v, at, m.role);
    let mut content = Vec::with_capacity(m.content.len());
    for (j, part) in m.content.into_iter().enumerate() {
        at_index(at, ".content", j, |at| content_part(v, at, part, &mut content));
    }
    let at = &*at;

    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(j, call)| {
            let at = format!("{at}.tool_calls[{j}]");
            let call = ToolCall {
                id: call.id,
                name: call.name,
                arguments: call.arguments_json,
                signature: (!call.signature.is_empty()).then_some(call.signature),
            };
            let fields = [format!("{at}.id"), format!("{at}.name"), format!("{at}.arguments_json")];
            tool_call(v, &fields, call)
        })
        .collect();

    let role = role?;
    let tool_call_id = (!m.tool_call_id.is_empty()).then_some(m.tool_call_id);
    message_shape(v, at, role, &content, &tool_calls, tool_call_id.is_some());
    Some(Message {
        role,
        content,
        name: (!m.name.is_empty()).then_some(m.name),
        tool_calls,
        tool_call_id,
    })
}

/// A tool call of an assistant message, checked: an id, a name, and JSON arguments (none is
/// `{}`). `fields` names the id, the name and the arguments in the caller's wire format.
pub(crate) fn tool_call(v: &mut Violations, fields: &[String; 3], mut call: ToolCall) -> ToolCall {
    let [id, name, arguments] = fields;
    if call.id.is_empty() {
        v.add(id, "is required");
    }
    if call.name.is_empty() {
        v.add(name, "is required");
    }
    if call.arguments.trim().is_empty() {
        call.arguments = "{}".to_owned();
    }
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&call.arguments) {
        v.add(arguments, format!("is not valid JSON: {e}"));
    }
    call
}

/// What a message of `role` must and may carry: tool calls only from the assistant, a tool
/// call id on tool results and nowhere else, and some content.
pub(crate) fn message_shape(
    v: &mut Violations,
    at: &str,
    role: Role,
    content: &[ContentPart],
    tool_calls: &[ToolCall],
    has_tool_call_id: bool,
) {
    if !tool_calls.is_empty() && role != Role::Assistant {
        v.add(format!("{at}.tool_calls"), "only assistant messages may carry tool calls");
    }
    match role {
        Role::Tool if !has_tool_call_id => {
            v.add(format!("{at}.tool_call_id"), "is required on tool messages");
        }
        Role::Tool => {}
        _ if has_tool_call_id => {
            v.add(format!("{at}.tool_call_id"), "is allowed only on tool messages");
        }
        _ => {}
    }
    let has_text = content.iter().any(|p| match p {
        ContentPart::Text(t) => !t.is_empty(),
        ContentPart::Image(_) | ContentPart::Document(_) | ContentPart::Reasoning(_) => true,
        ContentPart::CacheBreakpoint(_) => false,
    });
    if !has_text && tool_calls.is_empty() {
        v.add(format!("{at}.content"), "is empty; a message needs text, an image or a tool call");
    }
    if role != Role::Assistant && content.iter().any(|p| matches!(p, ContentPart::Reasoning(_))) {
        v.add(format!("{at}.content"), "reasoning parts are allowed only in assistant messages");
    }
}

/// One content part, pushed onto `out`, followed by its cache breakpoint when it has one.
fn content_part(v: &mut Violations, at: &str, part: pb::ContentPart, out: &mut Vec<ContentPart>) {
    use pb::content_part::Part;
    let converted = match part.part {
        Some(Part::Text(text)) => Some(ContentPart::Text(text)),
        Some(Part::Image(image)) => self::image(v, &format!("{at}.image"), image),
        Some(Part::Document(document)) => self::document(v, &format!("{at}.document"), document),
        Some(Part::Reasoning(r)) => Some(ContentPart::Reasoning(reasoning_part(
            v,
            &format!("{at}.reasoning"),
            Reasoning {
                text: r.text,
                signature: (!r.signature.is_empty()).then_some(r.signature),
                redacted_data: (!r.redacted_data.is_empty()).then_some(r.redacted_data),
            },
        ))),
        None => {
            v.add(at.to_owned(), "is empty; set text, image, document or reasoning");
            None
        }
    };
    out.extend(converted);
    if let Some(control) = part.cache_control {
        out.push(ContentPart::CacheBreakpoint(cache_control(
            v,
            &format!("{at}.cache_control.ttl"),
            control,
        )));
    }
}

/// A reasoning part: text (with or without a signature), a bare signature, or redacted data
/// alone.
pub(crate) fn reasoning_part(v: &mut Violations, at: &str, r: Reasoning) -> Reasoning {
    if r.redacted_data.is_some() && (!r.text.is_empty() || r.signature.is_some()) {
        v.add(format!("{at}.redacted_data"), "redacted reasoning carries no text or signature");
    }
    if r.text.is_empty() && r.signature.is_none() && r.redacted_data.is_none() {
        v.add(at.to_owned(), "is empty; set text, signature or redacted_data");
    }
    r
}

/// A cache breakpoint's TTL.
fn cache_control(v: &mut Violations, at: &str, control: pb::CacheControl) -> CacheControl {
    let ttl = match pb::CacheTtl::try_from(control.ttl) {
        Ok(pb::CacheTtl::Unspecified) => None,
        Ok(pb::CacheTtl::CacheTtl5Minutes) => Some(CacheTtl::FiveMinutes),
        Ok(pb::CacheTtl::CacheTtl1Hour) => Some(CacheTtl::OneHour),
        Err(_) => {
            v.add(at, format!("unknown cache TTL {}", control.ttl));
            None
        }
    };
    CacheControl { ttl }
}

fn document(v: &mut Violations, at: &str, document: pb::Document) -> Option<ContentPart> {
    let mime_type = (!document.mime_type.is_empty()).then_some(document.mime_type);
    let source = match document.source {
        Some(pb::document::Source::Url(url)) => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                v.add(format!("{at}.url"), "must be an http(s) URL");
            }
            DocumentSource::Url(url)
        }
        Some(pb::document::Source::Data(data)) => {
            if data.is_empty() {
                v.add(format!("{at}.data"), "holds no document data");
            }
            if mime_type.is_none() {
                v.add(format!("{at}.mime_type"), "a MIME type is required with document data");
            }
            DocumentSource::Data(Bytes::from(data))
        }
        None => {
            v.add(at.to_owned(), "set url or data");
            return None;
        }
    };
    document_mime_type(v, &format!("{at}.mime_type"), mime_type.as_deref());
    let title = (!document.title.is_empty()).then_some(document.title);
    Some(ContentPart::Document(Document { source, mime_type, title }))
}

/// A document's MIME type, when given: PDF or text.
pub(crate) fn document_mime_type(v: &mut Violations, field: &str, mime_type: Option<&str>) {
    if let Some(m) = mime_type
        && !(m == "application/pdf" || m.starts_with("text/"))
    {
        v.add(
            field,
            format!("{m:?} is not a document type this gateway takes ({DOCUMENT_MIME_TYPES})"),
        );
    }
}

fn image(v: &mut Violations, at: &str, image: pb::Image) -> Option<ContentPart> {
    let detail = match pb::ImageDetail::try_from(image.detail) {
        Ok(pb::ImageDetail::Unspecified) => None,
        Ok(pb::ImageDetail::Auto) => Some(ImageDetail::Auto),
        Ok(pb::ImageDetail::Low) => Some(ImageDetail::Low),
        Ok(pb::ImageDetail::High) => Some(ImageDetail::High),
        Err(_) => {
            v.add(format!("{at}.detail"), format!("unknown image detail {}", image.detail));
            None
        }
    };
    let mime_type = (!image.mime_type.is_empty()).then_some(image.mime_type);
    let source = match image.source {
        Some(pb::image::Source::Url(url)) => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://")
                || lower.starts_with("http://")
                || lower.starts_with("data:"))
            {
                v.add(format!("{at}.url"), "must be an http(s) or data: URL");
            }
            ImageSource::Url(url)
        }
        Some(pb::image::Source::Data(data)) => {
            let fields = [format!("{at}.data"), format!("{at}.mime_type")];
            image_data(v, &fields, &data, mime_type.as_deref());
            ImageSource::Data(Bytes::from(data))
        }
        None => {
            v.add(at.to_owned(), "set url or data");
            return None;
        }
    };
    Some(ContentPart::Image(Image { source, mime_type, detail }))
}

/// Inline image bytes and their MIME type, one of [`IMAGE_MIME_TYPES`]; `fields` names the
/// data and the MIME type in the caller's wire format (the same field for a data: URL).
pub(crate) fn image_data(
    v: &mut Violations,
    fields: &[String; 2],
    data: &[u8],
    mime_type: Option<&str>,
) {
    let [data_field, mime_field] = fields;
    if data.is_empty() {
        v.add(data_field, "holds no image data");
    }
    match mime_type {
        None => v.add(mime_field, "a MIME type is required with image data"),
        Some(m) if !IMAGE_MIME_TYPES.contains(&m) => {
            v.add(mime_field, format!("{m:?} is not one of {}", IMAGE_MIME_TYPES.join(", ")))
        }
        Some(_) => {}
    }
}

pub(crate) fn in_range(
    v: &mut Violations,
    field: &str,
    value: Option<f64>,
    lo: f64,
    hi: f64,
) -> Option<f64> {
    let x = value?;
    if !x.is_finite() || x < lo || x > hi {
        v.add(field, format!("must be between {lo} and {hi}, got {x}"));
    }
    Some(x)
}

pub(crate) fn positive(v: &mut Violations, field: &str, value: Option<i32>) -> Option<u32> {
    let x = value?;
    match u32::try_from(x) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            v.add(field, format!("must be positive, got {x}"));
            None
        }
    }
}

fn generation(v: &mut Violations, g: pb::GenerationConfig) -> Generation {
    let temperature = in_range(v, "generation.temperature", g.temperature, 0.0, 2.0);
    let top_p = in_range(v, "generation.top_p", g.top_p, 0.0, 1.0);
    let presence_penalty =
        in_range(v, "generation.presence_penalty", g.presence_penalty, -2.0, 2.0);
    let frequency_penalty =
        in_range(v, "generation.frequency_penalty", g.frequency_penalty, -2.0, 2.0);
    let top_k = positive(v, "generation.top_k", g.top_k);
    let max_tokens = positive(v, "generation.max_tokens", g.max_tokens);
    stop_sequences(v, "generation.stop", &g.stop);
    let response_format = g.response_format.map(|f| response_format(v, f)).unwrap_or_default();
    let reasoning = g.reasoning.and_then(|r| {
        let effort = match pb::ReasoningEffort::try_from(r.effort) {
            Ok(pb::ReasoningEffort::Unspecified) => None,
            Ok(pb::ReasoningEffort::Minimal) => Some(ReasoningEffort::Minimal),
            Ok(pb::ReasoningEffort::Low) => Some(ReasoningEffort::Low),
            Ok(pb::ReasoningEffort::Medium) => Some(ReasoningEffort::Medium),
            Ok(pb::ReasoningEffort::High) => Some(ReasoningEffort::High),
            Err(_) => {
                v.add("generation.reasoning.effort", format!("unknown effort {}", r.effort));
                None
            }
        };
        let budget_tokens = positive(v, "generation.reasoning.budget_tokens", r.budget_tokens);
        reasoning_config(v, "generation.reasoning", effort, budget_tokens)
    });
    Generation {
        temperature,
        top_p,
        top_k,
        max_tokens,
        presence_penalty,
        frequency_penalty,
        stop: g.stop,
        seed: g.seed,
        response_format,
        parallel_tool_calls: g.parallel_tool_calls,
        reasoning,
    }
}

/// A reasoning request: `None` when neither an effort nor a budget is set (nothing was
/// asked); a budget below Anthropic's floor of 1,024 tokens is refused here, for every
/// provider, so a request means the same wherever it is routed.
pub(crate) fn reasoning_config(
    v: &mut Violations,
    at: &str,
    effort: Option<ReasoningEffort>,
    budget_tokens: Option<u32>,
) -> Option<ReasoningConfig> {
    if let Some(budget) = budget_tokens
        && budget < MIN_REASONING_BUDGET
    {
        v.add(
            format!("{at}.budget_tokens"),
            format!("must be at least {MIN_REASONING_BUDGET}, got {budget}"),
        );
    }
    (effort.is_some() || budget_tokens.is_some())
        .then_some(ReasoningConfig { effort, budget_tokens })
}

/// At most [`MAX_STOP_SEQUENCES`], none of them empty.
pub(crate) fn stop_sequences(v: &mut Violations, field: &str, stop: &[String]) {
    if stop.len() > MAX_STOP_SEQUENCES {
        v.add(field, format!("at most {MAX_STOP_SEQUENCES} stop sequences, got {}", stop.len()));
    }
    for (i, s) in stop.iter().enumerate() {
        if s.is_empty() {
            v.add(format!("{field}[{i}]"), "must not be empty");
        }
    }
}

fn response_format(v: &mut Violations, f: pb::ResponseFormat) -> ResponseFormat {
    const AT: &str = "generation.response_format";
    match pb::ResponseFormatType::try_from(f.r#type) {
        Ok(pb::ResponseFormatType::Unspecified | pb::ResponseFormatType::Text) => {
            ResponseFormat::Text
        }
        Ok(pb::ResponseFormatType::JsonObject) => ResponseFormat::JsonObject,
        Ok(pb::ResponseFormatType::JsonSchema) => {
            let Some(s) = f.json_schema else {
                v.add(format!("{AT}.json_schema"), "is required when type is JSON_SCHEMA");
                return ResponseFormat::Text;
            };
            if !valid_name(&s.name) {
                v.add(format!("{AT}.json_schema.name"), "must be 1 to 64 of [a-zA-Z0-9_-]");
            }
            let schema =
                json_object(v, &format!("{AT}.json_schema.schema_json"), &s.schema_json, false);
            ResponseFormat::JsonSchema(JsonSchema {
                name: s.name,
                description: (!s.description.is_empty()).then_some(s.description),
                schema,
                strict: s.strict,
            })
        }
        Err(_) => {
            v.add(format!("{AT}.type"), format!("unknown response format type {}", f.r#type));
            ResponseFormat::Text
        }
    }
}

/// Parses `text` as a JSON object; empty text is [`empty_schema`] when `empty_ok`.
pub(crate) fn json_object(
    v: &mut Violations,
    field: &str,
    text: &str,
    empty_ok: bool,
) -> serde_json::Value {
    if text.trim().is_empty() && empty_ok {
        return empty_schema();
    }
    if text.trim().is_empty() {
        return schema_object(v, field, None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => schema_object(v, field, Some(value)),
        Err(e) => {
            v.add(field, format!("is not valid JSON: {e}"));
            serde_json::Value::Null
        }
    }
}

/// A JSON Schema that must be given, as a JSON object.
pub(crate) fn schema_object(
    v: &mut Violations,
    field: &str,
    value: Option<serde_json::Value>,
) -> serde_json::Value {
    match value {
        Some(value @ serde_json::Value::Object(_)) => value,
        Some(_) => {
            v.add(field, "must be a JSON object");
            serde_json::Value::Null
        }
        None => {
            v.add(field, "is required");
            empty_schema()
        }
    }
}

/// The arguments schema of a tool that takes none.
pub(crate) fn empty_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn tools(v: &mut Violations, tools: Vec<pb::Tool>) -> Vec<Tool> {
    let mut seen = BTreeSet::new();
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            tool_name(v, &format!("{at}.name"), &t.name, &mut seen);
            let parameters =
                json_object(v, &format!("{at}.parameters_json"), &t.parameters_json, true);
            let cache_control =
                t.cache_control.map(|c| cache_control(v, &format!("{at}.cache_control.ttl"), c));
            Tool {
                name: t.name,
                description: (!t.description.is_empty()).then_some(t.description),
                parameters,
                strict: t.strict,
                cache_control,
            }
        })
        .collect()
}

/// A tool's name: valid, and not one `seen` before in the request.
pub(crate) fn tool_name(v: &mut Violations, field: &str, name: &str, seen: &mut BTreeSet<String>) {
    if !valid_name(name) {
        v.add(field, "must be 1 to 64 of [a-zA-Z0-9_-]");
    } else if !seen.insert(name.to_owned()) {
        v.add(field, format!("{name:?} is defined twice"));
    }
}

/// A tool choice the request's `tools` can satisfy: a named tool among them, at least one
/// when a call is required. `fields` names the tool's name and the mode.
pub(crate) fn tool_choice_fits(
    v: &mut Violations,
    fields: &[&str; 2],
    choice: &ToolChoice,
    tools: &[Tool],
) {
    let [name_field, mode_field] = fields;
    match choice {
        ToolChoice::Tool(name) if !tools.iter().any(|t| &t.name == name) => {
            v.add(*name_field, format!("{name:?} is not one of the request's tools"));
        }
        ToolChoice::Required if tools.is_empty() => {
            v.add(*mode_field, "required needs at least one tool");
        }
        _ => {}
    }
}

fn tool_choice(v: &mut Violations, c: pb::ToolChoice, tools: &[Tool]) -> Option<ToolChoice> {
    const AT: &str = "tool_choice";
    let choice = match c.choice? {
        pb::tool_choice::Choice::Mode(mode) => match pb::ToolChoiceMode::try_from(mode) {
            Ok(pb::ToolChoiceMode::Unspecified) => return None,
            Ok(pb::ToolChoiceMode::Auto) => ToolChoice::Auto,
            Ok(pb::ToolChoiceMode::None) => ToolChoice::None,
            Ok(pb::ToolChoiceMode::Required) => ToolChoice::Required,
            Err(_) => {
                v.add(format!("{AT}.mode"), format!("unknown tool choice mode {mode}"));
                return None;
            }
        },
        pb::tool_choice::Choice::ToolName(name) => ToolChoice::Tool(name),
    };
    tool_choice_fits(v, &["tool_choice.tool_name", "tool_choice.mode"], &choice, tools);
    Some(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(role: pb::Role, text: &str) -> pb::Message {
        pb::Message {
            role: role as i32,
            content: vec![pb::ContentPart {
                part: Some(pb::content_part::Part::Text(text.into())),
                cache_control: None,
            }],
            ..Default::default()
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidRequest(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not invalid: {other}"),
        }
    }

    #[test]
    fn a_plain_request_converts() {
        let req = pb::ChatRequest {
            model: "echo".into(),
            messages: vec![text(pb::Role::System, "be brief"), text(pb::Role::User, "hi")],
            generation: Some(pb::GenerationConfig { temperature: Some(0.0), ..Default::default() }),
            ..Default::default()
        };
        let req = chat_request(req).unwrap();
        assert_eq!(req.messages[1].role, Role::User);
        // Explicit zero is kept, unset stays unset.
        assert_eq!(req.generation.temperature, Some(0.0));
        assert_eq!(req.generation.top_p, None);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut bad_image = pb::Message {
            role: pb::Role::User as i32,
            content: vec![pb::ContentPart {
                part: Some(pb::content_part::Part::Image(pb::Image {
                    source: Some(pb::image::Source::Data(vec![1, 2, 3])),
                    ..Default::default()
                })),
                cache_control: None,
            }],
            ..Default::default()
        };
        bad_image.tool_call_id = "x".into();
        let req = pb::ChatRequest {
            model: String::new(),
            messages: vec![
                pb::Message { role: 99, ..text(pb::Role::User, "hi") },
                text(pb::Role::Unspecified, "hi"),
                bad_image,
                text(pb::Role::Tool, "42"),
                text(pb::Role::User, ""),
            ],
            generation: Some(pb::GenerationConfig {
                max_tokens: Some(-1),
                temperature: Some(f64::NAN),
                response_format: Some(pb::ResponseFormat { r#type: 3, json_schema: None }),
                ..Default::default()
            }),
            tool_choice: Some(pb::ToolChoice {
                choice: Some(pb::tool_choice::Choice::ToolName("nope".into())),
            }),
            ..Default::default()
        };
        let got = fields(chat_request(req).unwrap_err());
        assert_eq!(
            got,
            [
                "model",
                "messages[0].role",
                "messages[1].role",
                "messages[2].content[0].image.mime_type",
                "messages[2].tool_call_id",
                "messages[3].tool_call_id",
                "messages[4].content",
                "generation.temperature",
                "generation.max_tokens",
                "generation.response_format.json_schema",
                "tool_choice.tool_name",
            ]
        );
    }

    #[test]
    fn no_messages_is_invalid() {
        let req = pb::ChatRequest { model: "echo".into(), ..Default::default() };
        assert_eq!(fields(chat_request(req).unwrap_err()), ["messages"]);
    }

    #[test]
    fn tool_schemas_must_be_json_objects() {
        let req = pb::ChatRequest {
            model: "m".into(),
            messages: vec![text(pb::Role::User, "hi")],
            tools: vec![
                pb::Tool { name: "ok".into(), ..Default::default() },
                pb::Tool {
                    name: "bad".into(),
                    parameters_json: "[1]".into(),
                    ..Default::default()
                },
                pb::Tool { name: "ok".into(), parameters_json: "{".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        assert_eq!(
            fields(chat_request(req).unwrap_err()),
            ["tools[1].parameters_json", "tools[2].name", "tools[2].parameters_json"]
        );
    }
}
