//! Provider adapters: one trait, one file per provider.
//!
//! An adapter only translates: a validated [`ChatRequest`] into the provider's wire request,
//! and the provider's reply (JSON or SSE) into [`ChatResponse`] or a stream of [`ChatEvent`]s.
//! Routing, retries, failover and metrics live outside, in [`crate::router`] and the handler.

mod anthropic;
mod bedrock;
mod cohere;
mod echo;
mod gemini;
pub mod http;
mod openai;
pub mod roots;
pub mod sse;
pub mod transport;
mod vertex;

use std::{fmt, pin::Pin, sync::Arc, time::Duration};

use futures::Stream;

pub use anthropic::AnthropicProvider;
pub use bedrock::BedrockProvider;
pub use cohere::CohereProvider;
pub use echo::EchoProvider;
pub use gemini::GeminiProvider;
pub use openai::OpenAiProvider;
pub use vertex::VertexProvider;

use crate::{
    chat::{ChatEvent, ChatRequest, ChatResponse, Usage},
    config::{ProviderConfig, ProviderSettings},
    embed::{EmbedRequest, Embeddings},
};

/// Builds the adapter of one configured provider, with its own pooled HTTP client.
pub fn build(config: &ProviderConfig) -> Result<SharedProvider, ProviderError> {
    let name = config.name.as_str();
    Ok(match &config.settings {
        ProviderSettings::Echo { chunk_delay } => Arc::new(EchoProvider::new(name, *chunk_delay)),
        ProviderSettings::OpenAi { kind, connection } => {
            Arc::new(OpenAiProvider::new(name, *kind, connection)?)
        }
        ProviderSettings::AzureOpenAi { connection, api_version } => {
            Arc::new(OpenAiProvider::azure(name, connection, api_version)?)
        }
        ProviderSettings::Anthropic { connection, version, default_max_tokens } => {
            Arc::new(AnthropicProvider::new(name, connection, version, *default_max_tokens)?)
        }
        ProviderSettings::Gemini { connection } => Arc::new(GeminiProvider::new(name, connection)?),
        ProviderSettings::Vertex { connection, vertex } => {
            Arc::new(VertexProvider::new(name, connection, vertex)?)
        }
        ProviderSettings::Cohere { connection } => Arc::new(CohereProvider::new(name, connection)?),
        ProviderSettings::Bedrock { connection, bedrock } => {
            Arc::new(BedrockProvider::new(name, connection, bedrock)?)
        }
    })
}

/// A tool as the wire formats declare it: its name, its description when there is one, and its
/// argument schema under `schema_key` (`parameters`, `input_schema`, `parametersJsonSchema`).
pub(crate) fn tool_declaration(
    tool: &crate::chat::Tool,
    schema_key: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut declaration = serde_json::Map::new();
    declaration.insert("name".into(), serde_json::Value::String(tool.name.clone()));
    if let Some(description) = &tool.description {
        declaration.insert("description".into(), serde_json::Value::String(description.clone()));
    }
    declaration.insert(schema_key.into(), tool.parameters.clone());
    declaration
}

/// Refuses a system message holding anything but text and cache breakpoints, for the APIs
/// whose system prompt is text blocks (Anthropic, Bedrock).
pub(crate) fn system_text_only(
    provider: &str,
    at: &str,
    message: &crate::chat::Message,
) -> Result<(), ProviderError> {
    use crate::chat::ContentPart;
    if message
        .content
        .iter()
        .any(|p| !matches!(p, ContentPart::Text(_) | ContentPart::CacheBreakpoint(_)))
    {
        return Err(ProviderError::unsupported(
            provider,
            format!("{at}.content"),
            "a system prompt can hold only text",
        ));
    }
    Ok(())
}

/// Usage estimated at about four bytes a token, for providers that report none.
pub fn estimate_usage(request: &ChatRequest, output_bytes: usize) -> Usage {
    let input: usize = request.messages.iter().map(|m| m.joined_text().len()).sum();
    Usage {
        input_tokens: estimate_tokens(input),
        output_tokens: estimate_tokens(output_bytes),
        estimated: true,
        ..Usage::default()
    }
}

/// A rough token count for `bytes` of text: about four bytes a token.
pub fn estimate_tokens(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX)
}

/// A stream of events from a provider; it ends after `ChatEvent::Finish`, or with an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ProviderError>> + Send>>;

/// A provider adapter.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + fmt::Debug + 'static {
    /// The provider's configured name, e.g. `openai`; used in errors, metrics and audit.
    fn name(&self) -> &str;

    /// The kind of provider as OpenTelemetry's GenAI conventions name it
    /// (`gen_ai.provider.name`), e.g. `openai`, `anthropic`, `gcp.gemini`.
    fn system(&self) -> &'static str;

    /// One complete answer from `model`.
    async fn chat(&self, model: &str, request: &ChatRequest)
    -> Result<ChatResponse, ProviderError>;

    /// A streamed answer from `model`. The returned stream owns everything it needs: dropping
    /// it drops the upstream request.
    async fn stream(&self, model: &str, request: &ChatRequest)
    -> Result<ChatStream, ProviderError>;

    /// The embeddings of `request`'s inputs from `model`, one vector per input in input order.
    /// A provider without an embeddings API keeps this default: refused before anything is
    /// sent, as INVALID_ARGUMENT naming `model`.
    async fn embed(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        let _ = (model, request);
        Err(ProviderError::unsupported(
            self.name(),
            "model",
            format!(
                "provider {:?} has no embeddings API; route this model to one that has",
                self.name()
            ),
        ))
    }

    /// The HTTP connection of an adapter that has one (every provider but echo).
    fn upstream(&self) -> Option<&http::Upstream> {
        None
    }

    /// An active health probe of the endpoint this adapter is bound to; an adapter without an
    /// HTTP connection (echo) is always up.
    async fn probe(&self, timeout: std::time::Duration) -> Result<(), ProviderError> {
        match self.upstream() {
            Some(upstream) => upstream.probe(timeout).await,
            None => Ok(()),
        }
    }

    /// The handle its key is read through on every call, so a rotation can swap it; `None`
    /// for a provider without a key.
    fn key_handle(&self) -> Option<Arc<arc_swap::ArcSwap<crate::secret::Secret>>> {
        self.upstream().and_then(http::Upstream::key_handle)
    }
}

/// A shared provider adapter.
pub type SharedProvider = Arc<dyn Provider>;

/// What kind of failure a provider call had; decides the gRPC code and whether a retry or
/// failover may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// The connection could not be made.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// 429: rate limit or quota.
    RateLimited,
    /// 5xx.
    Server,
    /// The provider is overloaded (e.g. Anthropic's 529).
    Overloaded,
    /// A reply that does not parse, or lacks what the wire format promises.
    InvalidResponse,
    /// A stream that ended before its end marker.
    StreamCut,
    /// The provider rejected the request's content (400, 422).
    Rejected,
    /// The provider rejected the gateway's credential (401, 403).
    Auth,
    /// The provider does not know the model (404).
    NotFound,
    /// The request uses a field this provider cannot honour.
    Unsupported,
}

impl ProviderErrorKind {
    /// Every kind.
    pub const ALL: [ProviderErrorKind; 11] = {
        use ProviderErrorKind as K;
        [
            K::Connect,
            K::Timeout,
            K::RateLimited,
            K::Server,
            K::Overloaded,
            K::InvalidResponse,
            K::StreamCut,
            K::Rejected,
            K::Auth,
            K::NotFound,
            K::Unsupported,
        ]
    };

    /// Whether another attempt (another endpoint or target) may succeed.
    pub fn is_retryable(self) -> bool {
        use ProviderErrorKind as K;
        matches!(
            self,
            K::Connect
                | K::Timeout
                | K::RateLimited
                | K::Server
                | K::Overloaded
                | K::InvalidResponse
                | K::StreamCut
        )
    }

    /// The `ErrorInfo.reason` for this kind.
    pub fn reason(self) -> &'static str {
        use ProviderErrorKind as K;
        match self {
            K::Connect => "UPSTREAM_CONNECT_FAILED",
            K::Timeout => "UPSTREAM_TIMEOUT",
            K::RateLimited => "UPSTREAM_RATE_LIMITED",
            K::Server => "UPSTREAM_SERVER_ERROR",
            K::Overloaded => "UPSTREAM_OVERLOADED",
            K::InvalidResponse => "UPSTREAM_INVALID_RESPONSE",
            K::StreamCut => "UPSTREAM_STREAM_CUT",
            K::Rejected => "UPSTREAM_REJECTED",
            K::Auth => "UPSTREAM_AUTH_FAILED",
            K::NotFound => "UPSTREAM_MODEL_NOT_FOUND",
            K::Unsupported => "UNSUPPORTED_BY_PROVIDER",
        }
    }
}

/// A failed provider call. It never carries a key: adapters build the message from the
/// provider's error text and status, never from the request they sent.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    /// The provider's configured name.
    pub provider: String,
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// The provider's own message, or ours.
    pub message: String,
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    /// How long the provider asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The request field an `Unsupported` error is about.
    pub field: Option<String>,
}

impl ProviderError {
    /// A new error of `kind`.
    pub fn new(
        provider: impl Into<String>,
        kind: ProviderErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ProviderError {
            provider: provider.into(),
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            field: None,
        }
    }

    /// A request field this provider cannot honour.
    pub fn unsupported(
        provider: impl Into<String>,
        field: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        let mut err = ProviderError::new(provider, ProviderErrorKind::Unsupported, why);
        err.field = Some(field.into());
        err
    }

    /// With the upstream HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With the provider's `Retry-After`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}
