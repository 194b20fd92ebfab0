//! The request of `POST /v1/chat/completions`: OpenAI's JSON read strictly into typed structs
//! ([`read`]), then translated into the domain [`ChatRequest`] ([`CompletionRequest::translate`])
//! with the checks the gRPC door makes ([`crate::validate`]), each problem named by its OpenAI
//! field path (`messages[1].content[0].image_url.url`).
//!
//! What is refused and what is ignored:
//! - an unknown top-level argument is refused as OpenAI refuses it ("Unrecognized request
//!   argument supplied"); unknown members of nested objects are refused with their path;
//! - a field the domain has no place for is refused by name when it is set to anything but its
//!   default (`logprobs: true`, `verbosity`, `audio`, …), so that nobody gets an answer that
//!   silently ignored what they asked for;
//! - `reasoning_effort` is the reasoning control; an assistant message's `reasoning_content`
//!   and `reasoning_details`, and a tool call's `extra_content.google.thought_signature`, carry
//!   reasoning back ([`super::reasoning`]); a `file` part with PDF `file_data` is a document;
//!   `cache_control` on a content part (as OpenRouter and LiteLLM take it) is a cache
//!   breakpoint;
//! - hints for OpenAI's own infrastructure that change no answer (`safety_identifier`,
//!   `prompt_cache_key`, `prompt_cache_retention`, `prompt_cache_options`,
//!   `stream_options.include_obfuscation`, an assistant message's `annotations`) are accepted
//!   and dropped.
//!
//! docs/http-apis.md lists the same for callers.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    marker::PhantomData,
};

use base64::Engine as _;
use bytes::Bytes;
use serde::{
    Deserialize, Deserializer,
    de::{
        self, IgnoredAny, MapAccess, SeqAccess, Visitor,
        value::{MapAccessDeserializer, SeqAccessDeserializer},
    },
};
use serde_json::Value;

use super::reasoning::{ExtraContent, ReasoningDetail};
use crate::{
    chat::{
        CacheControl, CacheTtl, ChatRequest, ContentPart, Document, DocumentSource, Generation,
        Image, ImageDetail, ImageSource, JsonSchema, Message, ReasoningEffort, ResponseFormat,
        Role, Tool, ToolCall, ToolChoice,
    },
    error::{Error, FieldViolation},
    validate::{self, Violations},
};

/// A `POST /v1/chat/completions` body as OpenAI defines it; see the module docs for what
/// becomes of each field.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompletionRequest {
    model: String,
    messages: Vec<Object<WireMessage>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    stop: Option<StringOr<Vec<String>>>,
    seed: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<Object<StreamOptions>>,
    tools: Option<Vec<Object<WireTool>>>,
    tool_choice: Option<StringOr<Object<NamedToolChoice>>>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<Object<WireResponseFormat>>,
    metadata: Option<HashMap<String, String>>,
    user: Option<String>,
    // Accepted and dropped: hints for OpenAI's own infrastructure.
    safety_identifier: Option<String>,
    prompt_cache_key: Option<String>,
    prompt_cache_retention: Option<String>,
    prompt_cache_options: Option<IgnoredAny>,
    // Refused unless absent, null or their default.
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
    logit_bias: Option<BTreeMap<String, f64>>,
    store: Option<bool>,
    service_tier: Option<String>,
    modalities: Option<Vec<String>>,
    reasoning_effort: Option<String>,
    verbosity: Option<String>,
    audio: Option<IgnoredAny>,
    prediction: Option<IgnoredAny>,
    web_search_options: Option<IgnoredAny>,
    moderation: Option<IgnoredAny>,
    functions: Option<IgnoredAny>,
    function_call: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireMessage {
    role: String,
    content: Option<StringOr<Vec<Object<WirePart>>>>,
    name: Option<String>,
    tool_calls: Option<Vec<Object<WireToolCall>>>,
    tool_call_id: Option<String>,
    // Reasoning of an earlier reply, sent back.
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    reasoning_details: Option<Vec<ReasoningDetail>>,
    // What an assistant message returned by OpenAI carries, when a caller sends it back.
    refusal: Option<String>,
    annotations: Option<IgnoredAny>,
    audio: Option<IgnoredAny>,
    function_call: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WirePart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    image_url: Option<Object<WireImageUrl>>,
    refusal: Option<IgnoredAny>,
    input_audio: Option<IgnoredAny>,
    file: Option<Object<WireFile>>,
    cache_control: Option<Object<WireCacheControl>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireFile {
    file_data: Option<String>,
    file_id: Option<String>,
    filename: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireCacheControl {
    #[serde(rename = "type")]
    kind: String,
    ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireImageUrl {
    url: String,
    detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<Object<WireFunctionCall>>,
    custom: Option<IgnoredAny>,
    extra_content: Option<ExtraContent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireFunctionCall {
    name: String,
    arguments: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireTool {
    #[serde(rename = "type")]
    kind: String,
    function: Option<Object<WireFunction>>,
    custom: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NamedToolChoice {
    #[serde(rename = "type")]
    kind: String,
    function: Option<Object<ToolName>>,
    custom: Option<IgnoredAny>,
    allowed_tools: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ToolName {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<Object<WireJsonSchema>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireJsonSchema {
    name: String,
    description: Option<String>,
    schema: Option<Value>,
    strict: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StreamOptions {
    include_usage: Option<bool>,
    /// OpenAI pads its chunks against side channels; the gateway never does, so either value
    /// is honoured.
    include_obfuscation: Option<bool>,
}

/// A JSON object read as a `T`. A serde-derived struct also takes an array of its fields in
/// order, which OpenAI's API does not.
#[derive(Debug, Default)]
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Members<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(Members(PhantomData)).map(Object)
    }
}

/// A field OpenAI takes either as a string or as something richer (an array, an object).
#[derive(Debug)]
enum StringOr<T> {
    String(String),
    Other(T),
}

/// What the richer form of a [`StringOr`] is, for the message when a value is neither.
trait Expected {
    const EXPECTED: &'static str;
}

impl Expected for Vec<String> {
    const EXPECTED: &'static str = "a string or an array of strings";
}

impl Expected for Vec<Object<WirePart>> {
    const EXPECTED: &'static str = "a string or an array of content parts";
}

impl Expected for Object<NamedToolChoice> {
    const EXPECTED: &'static str =
        r#""none", "auto", "required" or {"type": "function", "function": {"name": ...}}"#;
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Expected> Visitor<'de> for Either<T> {
            type Value = StringOr<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOr::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StringOr::String(v))
            }

            // The richer form is read through the same access, so the field path of an error
            // inside it stays whole.
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                T::deserialize(SeqAccessDeserializer::new(seq)).map(StringOr::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(StringOr::Other)
            }
        }

        deserializer.deserialize_any(Either(PhantomData))
    }
}

/// Reads a request body: malformed JSON is `MALFORMED_REQUEST`; a value of the wrong type, a
/// missing member or an unknown one is `INVALID_REQUEST` naming the field by its path.
pub fn read(body: &[u8]) -> Result<CompletionRequest, Error> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let Object(request) = serde_path_to_error::deserialize(&mut json).map_err(understand_serde)?;
    json.end()
        .map_err(|e| Error::MalformedRequest(format!("the body is not one JSON value: {e}")))?;
    Ok(request)
}

/// A serde failure as the caller should read it.
pub(super) fn understand_serde(error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    // The path of an unknown member ends with it; that of a wrong type names the value.
    let path = error.path().to_string();
    let depth = error.path().iter().count();
    let error = error.into_inner();
    if !error.is_data() {
        return Error::MalformedRequest(format!("the body is not valid JSON: {error}"));
    }
    let message = without_position(&error);
    if depth == 0 {
        return Error::MalformedRequest(format!("the body must be a JSON object: {message}"));
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((_, expected)) = rest.split_once('`')
    {
        return if depth == 1 {
            Error::invalid(path, "unrecognized request argument supplied")
        } else {
            let expected = expected.trim_start_matches(", ");
            Error::invalid(path, format!("is not a member of this object ({expected})"))
        };
    }
    Error::InvalidRequest(vec![FieldViolation::new(path, message)])
}

/// serde_json's message without its " at line L column C": the field path says where.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).map_or_else(|| text.clone(), str::to_owned)
}

/// A request translated into the domain, with how the caller wants the answer.
#[derive(Debug)]
pub struct Translated {
    /// The domain request.
    pub request: ChatRequest,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// Whether a stream ends with a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl CompletionRequest {
    /// The model the caller asked for, as sent.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// How many messages it carries.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Whether the caller asked for a stream.
    pub fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The caller metadata for the audit record: `metadata`, and the end-user id `user` as
    /// `user` unless `metadata` names one itself.
    pub fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = self.metadata.clone().unwrap_or_default();
        if let Some(user) = self.user.as_ref().filter(|u| !u.is_empty()) {
            metadata.entry("user".to_owned()).or_insert_with(|| user.clone());
        }
        metadata
    }

    /// The domain request, or INVALID_ARGUMENT listing every problem.
    pub fn translate(self) -> Result<Translated, Error> {
        let mut v = Violations::default();
        self.refuse_unsupported(&mut v);
        if let Some(n) = self.n.filter(|&n| n != 1) {
            v.add("n", format!("only 1 choice per request is supported, got {n}"));
        }
        let stream = self.stream();
        let include_usage = match &self.stream_options {
            Some(_) if !stream => {
                v.add("stream_options", "is allowed only when stream is true");
                false
            }
            Some(Object(options)) => options.include_usage == Some(true),
            None => false,
        };

        let metadata = self.metadata();
        validate::metadata(&mut v, "metadata", self.metadata.iter().flatten());
        if let Some(user) = &self.user
            && user.len() > validate::MAX_METADATA_VALUE
        {
            v.add("user", format!("longer than {} bytes", validate::MAX_METADATA_VALUE));
        }

        let model = validate::model_and_messages(
            &mut v,
            &self.model,
            self.messages.len(),
            "GET /v1/models",
        );
        let mut at = String::with_capacity(32);
        let messages: Vec<Message> = self
            .messages
            .into_iter()
            .enumerate()
            .filter_map(|(i, Object(m))| {
                validate::at_index(&mut at, "messages", i, |at| message(&mut v, at, m))
            })
            .collect();

        let max_tokens = match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) if a != b => {
                v.add("max_completion_tokens", "differs from max_tokens; give only one of them");
                None
            }
            (_, Some(b)) => token_count(&mut v, "max_completion_tokens", b),
            (Some(a), None) => token_count(&mut v, "max_tokens", a),
            (None, None) => None,
        };
        let stop = match self.stop {
            None => Vec::new(),
            Some(StringOr::String(s)) => {
                if s.is_empty() {
                    v.add("stop", "must not be empty");
                }
                vec![s]
            }
            Some(StringOr::Other(list)) => {
                validate::stop_sequences(&mut v, "stop", &list);
                list
            }
        };
        let generation = Generation {
            temperature: validate::in_range(&mut v, "temperature", self.temperature, 0.0, 2.0),
            top_p: validate::in_range(&mut v, "top_p", self.top_p, 0.0, 1.0),
            top_k: None,
            max_tokens,
            presence_penalty: validate::in_range(
                &mut v,
                "presence_penalty",
                self.presence_penalty,
                -2.0,
                2.0,
            ),
            frequency_penalty: validate::in_range(
                &mut v,
                "frequency_penalty",
                self.frequency_penalty,
                -2.0,
                2.0,
            ),
            stop,
            seed: self.seed,
            response_format: self
                .response_format
                .map(|Object(f)| response_format(&mut v, f))
                .unwrap_or_default(),
            parallel_tool_calls: self.parallel_tool_calls,
            reasoning: self.reasoning_effort.as_deref().and_then(|effort| {
                let effort = match effort {
                    "minimal" => ReasoningEffort::Minimal,
                    "low" => ReasoningEffort::Low,
                    "medium" => ReasoningEffort::Medium,
                    "high" => ReasoningEffort::High,
                    other => {
                        v.add(
                            "reasoning_effort",
                            format!("unknown effort {other:?}; use minimal, low, medium or high"),
                        );
                        return None;
                    }
                };
                validate::reasoning_config(&mut v, "reasoning_effort", Some(effort), None)
            }),
        };
        let tools = tools(&mut v, self.tools.unwrap_or_default());
        let tool_choice = self.tool_choice.and_then(|c| tool_choice(&mut v, c, &tools));

        v.finish(Translated {
            request: ChatRequest {
                model,
                messages,
                generation,
                tools,
                tool_choice,
                metadata: metadata.into_iter().collect(),
            },
            stream,
            include_usage,
        })
    }

    /// Notes every field set to something the gateway cannot do.
    fn refuse_unsupported(&self, v: &mut Violations) {
        let mut refuse = |field: &str, why: &str| {
            v.add(field, format!("is not supported by this gateway: {why}"));
        };
        if self.logprobs == Some(true) || self.top_logprobs.is_some() {
            let field = if self.logprobs == Some(true) { "logprobs" } else { "top_logprobs" };
            refuse(field, "answers carry no log probabilities");
        }
        if self.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
            refuse("logit_bias", "token biases do not translate across providers");
        }
        if self.store == Some(true) {
            refuse("store", "the gateway stores no completions");
        }
        if let Some(tier) =
            self.service_tier.as_deref().filter(|t| !matches!(*t, "auto" | "default"))
        {
            refuse("service_tier", &format!("{tier:?} cannot be chosen through it; leave it out"));
        }
        if self.modalities.as_ref().is_some_and(|m| m.iter().any(|m| m != "text")) {
            refuse("modalities", "text is the only output");
        }
        if self.verbosity.is_some() {
            refuse("verbosity", "configure it on the route's target instead");
        }
        for (field, set, why) in [
            ("audio", self.audio.is_some(), "text is the only output"),
            ("prediction", self.prediction.is_some(), "predicted outputs are not forwarded"),
            ("web_search_options", self.web_search_options.is_some(), "no web search"),
            ("moderation", self.moderation.is_some(), "no moderation policies"),
            ("functions", self.functions.is_some(), "deprecated by OpenAI; use tools"),
            (
                "function_call",
                self.function_call.is_some(),
                "deprecated by OpenAI; use tool_choice",
            ),
        ] {
            if set {
                refuse(field, why);
            }
        }
    }
}

/// A token count: positive, and within what the gRPC API can carry.
fn token_count(v: &mut Violations, field: &str, value: i64) -> Option<u32> {
    match i32::try_from(value) {
        Ok(n) => validate::positive(v, field, Some(n)),
        Err(_) => {
            v.add(field, format!("must be between 1 and {}, got {value}", i32::MAX));
            None
        }
    }
}

/// One message, at the path `at` (`messages[i]`), which its parts' paths extend in place and
/// leave as they found it.
fn message(v: &mut Violations, at: &mut String, m: WireMessage) -> Option<Message> {
    let role = match m.role.as_str() {
        "system" | "developer" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        "tool" => Some(Role::Tool),
        "" => {
            v.add(format!("{at}.role"), "is required (system, developer, user, assistant or tool)");
            None
        }
        "function" => {
            v.add(
                format!("{at}.role"),
                "the function role is deprecated by OpenAI and not supported; use tool",
            );
            None
        }
        other => {
            v.add(
                format!("{at}.role"),
                format!("unknown role {other:?}; use system, developer, user, assistant or tool"),
            );
            None
        }
    };
    let mut content: Vec<ContentPart> =
        reasoning_parts(v, at, m.reasoning_details, m.reasoning_content.or(m.reasoning));
    match m.content {
        None => {}
        Some(StringOr::String(text)) if text.is_empty() => {}
        Some(StringOr::String(text)) => content.push(ContentPart::Text(text)),
        Some(StringOr::Other(parts)) => {
            for (j, Object(p)) in parts.into_iter().enumerate() {
                validate::at_index(at, ".content", j, |at| content_part(v, at, p, &mut content));
            }
        }
    }
    let at = &*at;
    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, Object(call))| tool_call(v, &format!("{at}.tool_calls[{j}]"), call))
        .collect();
    if m.refusal.is_some() {
        v.add(format!("{at}.refusal"), "is not supported by this gateway; leave it out");
    }
    if m.audio.is_some() {
        v.add(format!("{at}.audio"), "is not supported by this gateway: text is the only output");
    }
    if m.function_call.is_some() {
        v.add(format!("{at}.function_call"), "is deprecated by OpenAI; use tool_calls");
    }

    let role = role?;
    let tool_call_id = m.tool_call_id.filter(|id| !id.is_empty());
    validate::message_shape(v, at, role, &content, &tool_calls, tool_call_id.is_some());
    Some(Message {
        role,
        content,
        name: m.name.filter(|n| !n.is_empty()),
        tool_calls,
        tool_call_id,
    })
}

/// The reasoning of an assistant message sent back: its `reasoning_details` when it has them
/// (they keep signatures and redacted reasoning), else its reasoning text as one unsigned part.
fn reasoning_parts(
    v: &mut Violations,
    at: &str,
    details: Option<Vec<ReasoningDetail>>,
    text: Option<String>,
) -> Vec<ContentPart> {
    match details.filter(|d| !d.is_empty()) {
        Some(details) => details
            .into_iter()
            .enumerate()
            .filter_map(|(k, detail)| {
                let at = format!("{at}.reasoning_details[{k}]");
                match detail.part() {
                    Ok(part) => {
                        Some(ContentPart::Reasoning(validate::reasoning_part(v, &at, part)))
                    }
                    Err(why) => {
                        v.add(format!("{at}.type"), why);
                        None
                    }
                }
            })
            .collect(),
        None => text
            .filter(|t| !t.is_empty())
            .map(|text| {
                ContentPart::Reasoning(crate::chat::Reasoning { text, ..Default::default() })
            })
            .into_iter()
            .collect(),
    }
}

/// One content part, pushed onto `out` with the cache breakpoint after it when it has one.
fn content_part(v: &mut Violations, at: &str, mut part: WirePart, out: &mut Vec<ContentPart>) {
    let control = part.cache_control.take().map(|Object(c)| cache_control(v, at, c));
    out.extend(content_part_itself(v, at, part));
    out.extend(control.map(ContentPart::CacheBreakpoint));
}

fn cache_control(v: &mut Violations, at: &str, control: WireCacheControl) -> CacheControl {
    if control.kind != "ephemeral" {
        v.add(format!("{at}.cache_control.type"), "must be \"ephemeral\"");
    }
    let ttl = control.ttl.and_then(|ttl| {
        CacheTtl::parse(&ttl).map_err(|why| v.add(format!("{at}.cache_control.ttl"), why)).ok()
    });
    CacheControl { ttl }
}

/// A `file` part: a document given as `file_data`, a data: URL.
fn file(v: &mut Violations, at: &str, file: WireFile) -> Option<ContentPart> {
    if file.file_id.is_some() {
        v.add(
            format!("{at}.file_id"),
            "is not supported by this gateway: it has no Files API; send file_data",
        );
        return None;
    }
    let Some(url) = file.file_data else {
        v.add(format!("{at}.file_data"), "is required in a file part");
        return None;
    };
    let field = format!("{at}.file_data");
    match data_url(&url) {
        Ok((mime, data)) => {
            if data.is_empty() {
                v.add(&field, "holds no document data");
            }
            validate::document_mime_type(v, &field, Some(&mime));
            Some(ContentPart::Document(Document {
                source: DocumentSource::Data(data),
                mime_type: Some(mime),
                title: file.filename.filter(|f| !f.is_empty()),
            }))
        }
        Err(why) => {
            v.add(field, why);
            None
        }
    }
}

fn content_part_itself(v: &mut Violations, at: &str, part: WirePart) -> Option<ContentPart> {
    match part.kind.as_str() {
        "text" => match part.text {
            Some(text) => Some(ContentPart::Text(text)),
            None => {
                v.add(format!("{at}.text"), "is required in a text part");
                None
            }
        },
        "image_url" => match part.image_url {
            Some(Object(image)) => self::image(v, &format!("{at}.image_url"), image),
            None => {
                v.add(format!("{at}.image_url"), "is required in an image_url part");
                None
            }
        },
        "file" => match part.file {
            Some(Object(f)) => file(v, &format!("{at}.file"), f),
            None => {
                v.add(format!("{at}.file"), "is required in a file part");
                None
            }
        },
        kind @ ("refusal" | "input_audio") => {
            v.add(
                format!("{at}.type"),
                format!(
                    "{kind} parts are not supported by this gateway; use text, image_url or file"
                ),
            );
            None
        }
        "" => {
            v.add(format!("{at}.type"), "is required (text, image_url or file)");
            None
        }
        other => {
            v.add(
                format!("{at}.type"),
                format!("unknown part type {other:?}; use text, image_url or file"),
            );
            None
        }
    }
}

fn image(v: &mut Violations, at: &str, image: WireImageUrl) -> Option<ContentPart> {
    let detail = match image.detail.as_deref() {
        None => None,
        Some("auto") => Some(ImageDetail::Auto),
        Some("low") => Some(ImageDetail::Low),
        Some("high") => Some(ImageDetail::High),
        Some(other) => {
            v.add(
                format!("{at}.detail"),
                format!("unknown detail {other:?}; use auto, low or high"),
            );
            None
        }
    };
    let url = image.url;
    let scheme = |s: &str| url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s));
    let (source, mime_type) = if scheme("data:") {
        match data_url(&url) {
            Ok((mime, data)) => {
                let url = format!("{at}.url");
                validate::image_data(v, &[url.clone(), url], &data, Some(&mime));
                (ImageSource::Data(data), Some(mime))
            }
            Err(why) => {
                v.add(format!("{at}.url"), why);
                return None;
            }
        }
    } else if scheme("https://") || scheme("http://") {
        (ImageSource::Url(url), None)
    } else {
        v.add(format!("{at}.url"), "must be an http(s) URL or a base64 data: URL");
        return None;
    };
    Some(ContentPart::Image(Image { source, mime_type, detail }))
}

/// The MIME type and bytes of a `data:<mime>;base64,<data>` URL.
fn data_url(url: &str) -> Result<(String, Bytes), &'static str> {
    let rest = url.get("data:".len()..).unwrap_or_default();
    let (header, data) = rest.split_once(',').ok_or("a data: URL needs a comma before its data")?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err("must be a base64 data: URL (data:image/png;base64,...)");
    }
    // Padding is optional: encoders differ, and the bytes are the same.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes =
        engine.decode(data.trim()).map_err(|_| "the data of the data: URL is not base64")?;
    Ok((mime, Bytes::from(bytes)))
}

fn tool_call(v: &mut Violations, at: &str, call: WireToolCall) -> ToolCall {
    match call.kind.as_deref() {
        None | Some("function") if call.custom.is_none() => {}
        _ => v.add(format!("{at}.type"), "only function tool calls are supported"),
    }
    let Object(function) = call.function.unwrap_or_else(|| {
        v.add(format!("{at}.function"), "is required");
        Object::default()
    });
    let fields =
        [format!("{at}.id"), format!("{at}.function.name"), format!("{at}.function.arguments")];
    let call = ToolCall {
        id: call.id,
        name: function.name,
        arguments: function.arguments,
        signature: call.extra_content.and_then(ExtraContent::signature),
    };
    validate::tool_call(v, &fields, call)
}

fn response_format(v: &mut Violations, format: WireResponseFormat) -> ResponseFormat {
    const AT: &str = "response_format";
    match format.kind.as_str() {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => {
            let Some(Object(s)) = format.json_schema else {
                v.add(format!("{AT}.json_schema"), "is required when type is json_schema");
                return ResponseFormat::Text;
            };
            if !validate::valid_name(&s.name) {
                v.add(format!("{AT}.json_schema.name"), "must be 1 to 64 of [a-zA-Z0-9_-]");
            }
            let schema = validate::schema_object(v, &format!("{AT}.json_schema.schema"), s.schema);
            ResponseFormat::JsonSchema(JsonSchema {
                name: s.name,
                description: s.description.filter(|d| !d.is_empty()),
                schema,
                strict: s.strict,
            })
        }
        "" => {
            v.add(format!("{AT}.type"), "is required (text, json_object or json_schema)");
            ResponseFormat::Text
        }
        other => {
            v.add(
                format!("{AT}.type"),
                format!("unknown type {other:?}; use text, json_object or json_schema"),
            );
            ResponseFormat::Text
        }
    }
}

fn tools(v: &mut Violations, tools: Vec<Object<WireTool>>) -> Vec<Tool> {
    let mut seen = BTreeSet::new();
    tools
        .into_iter()
        .enumerate()
        .filter_map(|(i, Object(t))| {
            let at = format!("tools[{i}]");
            match t.kind.as_str() {
                "function" if t.custom.is_none() => {}
                "" => v.add(format!("{at}.type"), "is required (function)"),
                _ => v.add(format!("{at}.type"), "only function tools are supported"),
            }
            let Some(Object(f)) = t.function else {
                v.add(format!("{at}.function"), "is required");
                return None;
            };
            validate::tool_name(v, &format!("{at}.function.name"), &f.name, &mut seen);
            let parameters = match f.parameters {
                None => validate::empty_schema(),
                Some(p) => {
                    validate::schema_object(v, &format!("{at}.function.parameters"), Some(p))
                }
            };
            Some(Tool {
                name: f.name,
                description: f.description.filter(|d| !d.is_empty()),
                parameters,
                strict: f.strict,
                cache_control: None,
            })
        })
        .collect()
}

fn tool_choice(
    v: &mut Violations,
    choice: StringOr<Object<NamedToolChoice>>,
    tools: &[Tool],
) -> Option<ToolChoice> {
    const AT: &str = "tool_choice";
    let choice = match choice {
        StringOr::String(mode) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                v.add(
                    AT,
                    format!("unknown mode {other:?}; use none, auto, required or a function"),
                );
                return None;
            }
        },
        StringOr::Other(Object(named)) => {
            if named.kind != "function" || named.custom.is_some() || named.allowed_tools.is_some() {
                v.add(format!("{AT}.type"), "only a function can be named");
                return None;
            }
            let Some(Object(function)) = named.function else {
                v.add(format!("{AT}.function"), "is required");
                return None;
            };
            ToolChoice::Tool(function.name)
        }
    };
    validate::tool_choice_fits(v, &["tool_choice.function.name", AT], &choice, tools);
    Some(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Translated, Error> {
        read(json.as_bytes())?.translate()
    }

    fn fields(result: Result<Translated, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidRequest(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn a_full_request_translates() {
        let t = parse(
            r#"{"model": " gpt ", "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
                ], "name": "ann"},
                {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a cat"}]}
            ],
            "temperature": 0, "top_p": 0.5, "max_completion_tokens": 9, "stop": "END", "seed": -3,
            "presence_penalty": 1, "frequency_penalty": -1, "n": 1, "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "look", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": true}},
            "metadata": {"team": "x"}, "user": "u-1", "stream": true,
            "stream_options": {"include_usage": true, "include_obfuscation": false},
            "logprobs": false, "store": false, "service_tier": "auto", "modalities": ["text"],
            "prompt_cache_key": "k", "safety_identifier": "s", "logit_bias": {}
            }"#,
        )
        .unwrap();
        assert!(t.stream && t.include_usage);
        let r = t.request;
        assert_eq!(r.model, "gpt");
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.messages[1].name.as_deref(), Some("ann"));
        let ContentPart::Image(png) = &r.messages[1].content[1] else { panic!() };
        assert_eq!(png.mime_type.as_deref(), Some("image/png"));
        assert_eq!(png.source, ImageSource::Data(Bytes::from_static(b"\x89PNG\r\n\x1a\n")));
        assert_eq!(png.detail, Some(ImageDetail::Low));
        let ContentPart::Image(jpg) = &r.messages[1].content[2] else { panic!() };
        assert_eq!(jpg.source, ImageSource::Url("https://example.com/a.jpg".into()));
        assert!(r.messages[2].content.is_empty());
        assert_eq!(r.messages[2].tool_calls[0].arguments, r#"{"q":1}"#);
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("c1"));
        let g = &r.generation;
        assert_eq!((g.temperature, g.max_tokens, g.seed), (Some(0.0), Some(9), Some(-3)));
        assert_eq!(g.stop, ["END"]);
        assert_eq!(g.parallel_tool_calls, Some(false));
        assert!(
            matches!(&g.response_format, ResponseFormat::JsonSchema(s) if s.strict == Some(true))
        );
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("look".into())));
        assert_eq!(r.tools[0].strict, Some(true));
        assert_eq!(r.metadata.get("user").map(String::as_str), Some("u-1"));
        assert_eq!(r.metadata.get("team").map(String::as_str), Some("x"));
    }

    #[test]
    fn unset_stays_unset() {
        let t = parse(r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": null}"#)
            .unwrap();
        assert!(!t.stream && !t.include_usage);
        assert_eq!(t.request.generation, Generation::default());
        assert_eq!(t.request.tool_choice, None);
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let err =
            read(br#"{"model": "m", "messages": [{"role": "user", "content": 5}]}"#).unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "messages[0].content");
        assert_eq!(
            v[0].description,
            "invalid type: integer `5`, expected a string or an array of content parts"
        );

        let err = read(br#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}"#)
            .unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "messages[0].content[0].text");

        let err = read(br#"{"model": "m", "temperature": "hot"}"#).unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "temperature");

        // An object's members in an array are no object.
        let err = read(br#"{"messages": [["user", "hi"]]}"#).unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "messages[0]");
        assert_eq!(v[0].description, "invalid type: sequence, expected a JSON object");
    }

    #[test]
    fn unknown_members_are_refused_by_name() {
        let err = read(br#"{"model": "m", "messages": [], "temprature": 1}"#).unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "temprature");
        assert_eq!(v[0].description, "unrecognized request argument supplied");

        let err =
            read(br#"{"messages": [{"role": "user", "content": "x", "colour": 1}]}"#).unwrap_err();
        let Error::InvalidRequest(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].field, "messages[0].colour");
        assert!(v[0].description.starts_with("is not a member of this object (expected one of"));
    }

    #[test]
    fn bad_json_is_malformed() {
        for body in [&b"{"[..], b"{\"model\": }", b"[1]", b"\"x\"", b"{} {}", b"", b"\xff"] {
            let err = read(body).unwrap_err();
            assert!(matches!(err, Error::MalformedRequest(_)), "{body:?}: {err:?}");
        }
    }

    #[test]
    fn every_problem_is_listed_with_its_openai_path() {
        let got = fields(parse(
            r#"{"model": "", "n": 2, "logprobs": true, "reasoning_effort": "high", "audio": {},
            "stream_options": {"include_usage": true}, "temperature": 3, "max_tokens": 0,
            "stop": ["", "x"],
            "messages": [
                {"role": "robot", "content": "x"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}},
                                             {"type": "image_url", "image_url": {"url": "ftp://x"}},
                                             {"type": "input_audio", "input_audio": {}}]},
                {"role": "tool", "content": "42"},
                {"role": "user", "content": ""},
                {"role": "assistant", "tool_calls": [{"id": "", "function": {"name": "f", "arguments": "{"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}},
                      {"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
            "response_format": {"type": "json_schema"}
            }"#,
        ));
        assert_eq!(
            got,
            [
                "logprobs",
                "audio",
                "n",
                "stream_options",
                "model",
                "messages[0].role",
                "messages[1].content[0].image_url.url",
                "messages[1].content[1].image_url.url",
                "messages[1].content[2].type",
                "messages[2].tool_call_id",
                "messages[3].content",
                "messages[4].tool_calls[0].id",
                "messages[4].tool_calls[0].function.arguments",
                "max_tokens",
                "stop[0]",
                "temperature",
                "response_format.json_schema",
                "tools[0].function.parameters",
                "tools[1].function.name",
                "tool_choice.function.name",
            ]
        );
    }

    #[test]
    fn data_urls_must_be_base64_images() {
        assert!(data_url("data:image/png;base64,iVBORw0KGgo=").is_ok());
        assert!(data_url("data:image/png,plain").is_err());
        assert!(data_url("data:image/png;base64").is_err());
        assert!(data_url("data:image/png;base64,!!").is_err());
    }
}
