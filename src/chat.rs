//! The domain types of a chat call, shared by the handler, the router and every provider
//! adapter. They are the validated form of the protobuf messages: a value of these types has
//! passed [`crate::validate`], so adapters translate it without checking it again.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A validated chat request, whatever RPC it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatRequest {
    /// The route or model name the caller asked for.
    pub model: String,
    /// The conversation, oldest first; never empty.
    pub messages: Vec<Message>,
    /// Sampling and output controls.
    pub generation: Generation,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// Whether and which tool the model must call; `None` means the provider's default.
    pub tool_choice: Option<ToolChoice>,
    /// Caller metadata for the audit record; never sent upstream.
    pub metadata: BTreeMap<String, String>,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The lower-case name used by most wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and images.
    pub content: Vec<ContentPart>,
    /// Optional participant name.
    pub name: Option<String>,
    /// Tool calls made by the assistant.
    pub tool_calls: Vec<ToolCall>,
    /// The tool call a `Role::Tool` message answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message made of one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: vec![ContentPart::Text(text.into())],
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The message's text parts joined, images left out.
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text(text) = part {
                out.push_str(text);
            }
        }
        out
    }

    /// The bytes a model generated for it, text and tool-call arguments, as a stream counts
    /// them for a usage estimate.
    pub fn output_bytes(&self) -> usize {
        let text: usize = self
            .content
            .iter()
            .map(|part| match part {
                ContentPart::Text(text) => text.len(),
                ContentPart::Reasoning(reasoning) => reasoning.text.len(),
                ContentPart::Image(_)
                | ContentPart::Document(_)
                | ContentPart::CacheBreakpoint(_) => 0,
            })
            .sum();
        text + self.tool_calls.iter().map(|c| c.arguments.len()).sum::<usize>()
    }
}

/// One piece of a message's content.
#[derive(Clone, Debug, PartialEq)]
pub enum ContentPart {
    /// Plain text.
    Text(String),
    /// An image.
    Image(Image),
    /// A document, such as a PDF.
    Document(Document),
    /// The model's reasoning, as a reply gave it (assistant messages only).
    Reasoning(Reasoning),
    /// A prompt-cache breakpoint: the prompt up to and including the part before it is a
    /// cacheable prefix. Adapters of providers that cache explicitly (Anthropic) put it on
    /// that part; the others skip it. It never comes first in a message.
    CacheBreakpoint(CacheControl),
}

/// A document, by URL or by its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where the document comes from.
    pub source: DocumentSource,
    /// MIME type, e.g. `application/pdf`; always set for `DocumentSource::Data`.
    pub mime_type: Option<String>,
    /// A title or file name.
    pub title: Option<String>,
}

/// Where a document comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DocumentSource {
    /// An http(s) URL.
    Url(String),
    /// The document's bytes.
    Data(Bytes),
}

/// A reasoning part: text with the provider's signature, or redacted reasoning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reasoning {
    /// The reasoning text; empty for redacted reasoning or a bare signature.
    pub text: String,
    /// The provider's opaque signature of it.
    pub signature: Option<String>,
    /// Opaque data standing for reasoning the provider withheld.
    pub redacted_data: Option<String>,
}

/// A prompt-cache breakpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// How long the cached prefix should live; `None` is the provider's default.
    pub ttl: Option<CacheTtl>,
}

/// The lifetime of a prompt-cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheTtl {
    /// Five minutes.
    FiveMinutes,
    /// One hour.
    OneHour,
}

impl CacheTtl {
    /// The TTL Anthropic's `"5m"` or `"1h"` names; the error says what is taken.
    pub fn parse(ttl: &str) -> Result<CacheTtl, String> {
        match ttl {
            "5m" => Ok(CacheTtl::FiveMinutes),
            "1h" => Ok(CacheTtl::OneHour),
            other => Err(format!("unknown TTL {other:?}; use 5m or 1h")),
        }
    }

    /// The TTL as Anthropic writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }
}

/// An image, by URL or by its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Where the image comes from.
    pub source: ImageSource,
    /// MIME type; always set for `ImageSource::Data`.
    pub mime_type: Option<String>,
    /// The resolution to look at it with, when the caller chose one.
    pub detail: Option<ImageDetail>,
}

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageSource {
    /// An http(s) or data: URL.
    Url(String),
    /// The encoded image.
    Data(Bytes),
}

/// The resolution at which a model looks at an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageDetail {
    /// The provider chooses.
    Auto,
    /// Low resolution.
    Low,
    /// High resolution.
    High,
}

/// Sampling and output controls; `None` means the provider's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generation {
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Maximum tokens to generate.
    pub max_tokens: Option<u32>,
    /// Presence penalty, -2 to 2.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2 to 2.
    pub frequency_penalty: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// The format of the answer.
    pub response_format: ResponseFormat,
    /// Whether several tools may be called in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// How much the model may reason, when the caller asked.
    pub reasoning: Option<ReasoningConfig>,
}

/// A request to reason before answering: by effort, by a token budget, or both (at least one
/// is set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReasoningConfig {
    /// How hard to think.
    pub effort: Option<ReasoningEffort>,
    /// The most tokens to spend on reasoning.
    pub budget_tokens: Option<u32>,
}

/// How hard a model should think.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningEffort {
    /// As little as the model allows.
    Minimal,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl ReasoningEffort {
    /// The effort as OpenAI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }

    /// A token budget for providers that take only a budget (Anthropic, Gemini): the
    /// documented mapping of docs/reasoning.md.
    pub fn budget_tokens(self) -> u32 {
        match self {
            ReasoningEffort::Minimal => 1024,
            ReasoningEffort::Low => 2048,
            ReasoningEffort::Medium => 8192,
            ReasoningEffort::High => 24576,
        }
    }
}

impl ReasoningConfig {
    /// The budget to send a provider that takes a budget: the caller's, or the effort's.
    pub fn budget(&self) -> Option<u32> {
        self.budget_tokens.or(self.effort.map(ReasoningEffort::budget_tokens))
    }
}

/// The format the answer must take.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema(JsonSchema),
}

/// A named JSON Schema for the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchema {
    /// The schema's name.
    pub name: String,
    /// What it describes.
    pub description: Option<String>,
    /// The schema, a JSON object.
    pub schema: serde_json::Value,
    /// Whether it must be followed exactly.
    pub strict: Option<bool>,
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments (a JSON object; `{"type":"object"}` when none was given).
    pub parameters: serde_json::Value,
    /// Whether the arguments must follow the schema exactly.
    pub strict: Option<bool>,
    /// A prompt-cache breakpoint after this tool's declaration.
    pub cache_control: Option<CacheControl>,
}

/// How freely the model may call tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// A call of this tool.
    Tool(String),
}

/// A tool call made by the assistant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, JSON object text.
    pub arguments: String,
    /// The provider's signature of the reasoning behind the call (Gemini's thoughtSignature).
    pub signature: Option<String>,
}

/// Why generation stopped, normalised across providers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FinishReason {
    /// The model finished or hit a stop sequence.
    #[default]
    Stop,
    /// `max_tokens` or the model's limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider's safety filter withheld content.
    ContentFilter,
    /// Anything else.
    Other,
}

/// Token usage of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
    /// Prompt tokens served from the provider's cache (part of `input_tokens`).
    pub cached_input_tokens: u32,
    /// Prompt tokens written to the provider's cache (part of `input_tokens`; Anthropic
    /// reports them, and bills them above plain input).
    pub cache_write_input_tokens: u32,
    /// Generated tokens spent on reasoning (part of `output_tokens`).
    pub reasoning_tokens: u32,
    /// True when the gateway estimated the figures because the provider gave none.
    pub estimated: bool,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u32 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A complete answer from a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    /// The completion's id.
    pub id: String,
    /// The upstream model that answered.
    pub provider_model: String,
    /// The assistant's message.
    pub message: Message,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token usage.
    pub usage: Usage,
}

/// One event of a streamed answer, as a provider adapter yields it. An adapter's stream ends
/// with `Finish`; `Usage` may come before it (the gateway estimates usage when it does not).
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    /// Text to append.
    ContentDelta(String),
    /// A piece of the model's reasoning.
    ReasoningDelta(ReasoningDelta),
    /// A piece of a tool call.
    ToolCallDelta(ToolCallDelta),
    /// Token usage of the whole call.
    Usage(Usage),
    /// The end of the answer.
    Finish {
        /// Why generation stopped.
        reason: FinishReason,
        /// The completion's id.
        id: String,
        /// The upstream model that answered.
        provider_model: String,
    },
}

/// A piece of one tool call in a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Position of the call in the reply.
    pub index: u32,
    /// The call's id, on its first delta.
    pub id: Option<String>,
    /// The tool's name, on its first delta.
    pub name: Option<String>,
    /// A piece of the JSON arguments.
    pub arguments: String,
    /// The provider's signature of the reasoning behind the call, on one of its deltas.
    pub signature: Option<String>,
}

/// A piece of the model's reasoning in a stream. Text appends to the current reasoning part; a
/// signature closes it; redacted data is a whole part of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasoningDelta {
    /// Reasoning text to append.
    pub text: String,
    /// The signature that closes the current reasoning part.
    pub signature: Option<String>,
    /// A whole redacted reasoning part.
    pub redacted_data: Option<String>,
}

/// A complete answer as the call pipeline hands it to a front door: the provider's answer and
/// where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The completion's id: the provider's, or one the gateway made.
    pub id: String,
    /// The route that answered, as callers name it.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The upstream model that answered.
    pub provider_model: String,
    /// The assistant's message.
    pub message: Message,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token usage, estimated when the provider reported none.
    pub usage: Usage,
    /// What the call cost and what is left of the key's budget.
    pub bill: Bill,
}

/// One event of a streamed answer as the call pipeline relays it to a front door: content and
/// tool-call deltas, then exactly one `Usage`, then `Finish`. A stream that fails ends with an
/// error instead, never without its `Finish`.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyEvent {
    /// Text to append.
    ContentDelta(String),
    /// A piece of the model's reasoning.
    ReasoningDelta(ReasoningDelta),
    /// A piece of a tool call.
    ToolCallDelta(ToolCallDelta),
    /// Token usage of the whole call, estimated when the provider reported none.
    Usage(Usage),
    /// The end of the answer (boxed: the largest variant by far, and every event of a stream
    /// is moved through each layer of the pipeline).
    Finish(Box<Finish>),
}

/// How a streamed answer ended, and where it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finish {
    /// Why generation stopped.
    pub reason: FinishReason,
    /// The completion's id.
    pub id: String,
    /// The route that answered, as callers name it.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The upstream model that answered.
    pub provider_model: String,
    /// What the call cost and what is left of the key's budget.
    pub bill: Bill,
}

/// What a call cost, exactly: pico-dollars (10⁻¹² USD), so sums never round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// The price of the call's tokens, in pico-dollars.
    pub picousd: u64,
    /// True when the usage it was priced from was estimated.
    pub estimated: bool,
    /// The model name the price is listed under (a bounded name, for the metrics).
    pub priced_as: std::sync::Arc<str>,
}

impl Cost {
    /// Pico-dollars in a dollar.
    pub const PICO_PER_USD: u64 = 1_000_000_000_000;

    /// The cost in US dollars, for the edges (responses, records, metrics) only.
    #[allow(clippy::cast_precision_loss)] // exact below 2^53 pico-dollars (about $9,000)
    pub fn usd(&self) -> f64 {
        self.picousd as f64 / Self::PICO_PER_USD as f64
    }
}

/// `picousd` as a decimal number of dollars, exactly and in the shortest form (`1500000` →
/// `0.0000015`, `2000000000000` → `2`): what the bill's headers and trailers carry. The same
/// text as `Cost::usd`'s `Display` up to 15 significant digits (below $1,000), exact beyond,
/// and made with integer arithmetic instead of formatting a float.
pub fn usd_text(picousd: u64) -> String {
    let whole = picousd / Cost::PICO_PER_USD;
    let mut fraction = picousd % Cost::PICO_PER_USD;
    let mut whole_digits = itoa::Buffer::new();
    let whole = whole_digits.format(whole);
    if fraction == 0 {
        return whole.to_owned();
    }
    let mut places = 12;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        places -= 1;
    }
    let mut fraction_digits = itoa::Buffer::new();
    let fraction = fraction_digits.format(fraction);
    // One allocation, no formatting machinery: the text is read on every billed call.
    let mut text = String::with_capacity(whole.len() + 1 + places);
    text.push_str(whole);
    text.push('.');
    text.extend(std::iter::repeat_n('0', places - fraction.len()));
    text.push_str(fraction);
    text
}

/// What is left of a client key's budgets after a call; a budget the key does not have is
/// `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetLeft {
    /// Dollars left in the window, in pico-dollars (0 when spent or overspent).
    pub picousd: Option<u64>,
    /// Tokens left in the window (0 when spent or overspent).
    pub tokens: Option<u64>,
}

/// The bill of a call: its cost (`None` when the price of its model is unknown, never 0 for
/// unknown) and what its key has left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bill {
    /// What the call cost; `None`: unknown.
    pub cost: Option<Cost>,
    /// What the key has left, when it has budgets.
    pub left: Option<BudgetLeft>,
}

/// Folds one reasoning delta into the reasoning parts assembled so far: text appends to the
/// open part (one with neither a signature nor redacted data) or opens one, a signature
/// closes the open part (or stands alone), and redacted data is a part of its own. Rebuilds
/// from a stream the parts a unary reply would have carried.
pub fn fold_reasoning(parts: &mut Vec<Reasoning>, delta: &ReasoningDelta) {
    if let Some(data) = &delta.redacted_data {
        parts.push(Reasoning { redacted_data: Some(data.clone()), ..Reasoning::default() });
        return;
    }
    let open = parts.last().is_some_and(|p| p.signature.is_none() && p.redacted_data.is_none());
    if !open && (!delta.text.is_empty() || delta.signature.is_some()) {
        parts.push(Reasoning::default());
    }
    if let Some(part) = parts.last_mut() {
        part.text.push_str(&delta.text);
        if delta.signature.is_some() {
            part.signature.clone_from(&delta.signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_written_exactly_and_as_a_float_would_print_them() {
        let usd = |picousd| Cost { picousd, ..Cost::default() }.usd().to_string();
        for (picousd, text) in [
            (0, "0"),
            (1, "0.000000000001"),
            (1_500_000, "0.0000015"),
            (450_000_000, "0.00045"),
            (2_000_000_000_000, "2"),
            (12_345_678_901_234, "12.345678901234"),
            (999_999_999_999_999, "999.999999999999"),
        ] {
            assert_eq!(usd_text(picousd), text);
            assert_eq!(usd(picousd), text, "{picousd}");
        }
        // Past 15 significant digits the float rounds; the text stays exact.
        assert_eq!(usd_text(9_007_199_254_740_991), "9007.199254740991");
        assert_eq!(usd(9_007_199_254_740_991), "9007.199254740992");
        let mut rng = fastrand::Rng::with_seed(21);
        for _ in 0..10_000 {
            let picousd = rng.u64(..1_000_000_000_000_000) >> rng.u32(0..50);
            assert_eq!(usd_text(picousd), usd(picousd), "{picousd}");
        }
    }

    fn delta(text: &str, signature: Option<&str>, redacted: Option<&str>) -> ReasoningDelta {
        ReasoningDelta {
            text: text.into(),
            signature: signature.map(Into::into),
            redacted_data: redacted.map(Into::into),
        }
    }

    #[test]
    fn reasoning_deltas_fold_into_the_parts_a_reply_carries() {
        let mut parts = Vec::new();
        for d in [
            delta("Let me ", None, None),
            delta("think.", None, None),
            delta("", Some("sig-1"), None),
            delta("", None, Some("opaque")),
            delta("More.", Some("sig-2"), None),
            delta("", Some("sig-3"), None),
        ] {
            fold_reasoning(&mut parts, &d);
        }
        assert_eq!(
            parts,
            vec![
                Reasoning {
                    text: "Let me think.".into(),
                    signature: Some("sig-1".into()),
                    ..Default::default()
                },
                Reasoning { redacted_data: Some("opaque".into()), ..Default::default() },
                Reasoning {
                    text: "More.".into(),
                    signature: Some("sig-2".into()),
                    ..Default::default()
                },
                Reasoning { signature: Some("sig-3".into()), ..Default::default() },
            ]
        );
    }
}
