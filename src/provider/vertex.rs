//! Google Vertex AI: Gemini and Claude models in a Google Cloud project, behind one provider.
//!
//! Vertex speaks the wire formats the Gemini and Anthropic adapters already translate, so this
//! adapter reuses them and only supplies what differs ([`VertexAccess`]): the URL
//! `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}`
//! and an OAuth bearer token ([`auth`]) instead of an API key. The publisher follows the model
//! name: `claude-*` models are Anthropic's (`:rawPredict`, `:streamRawPredict`; the Anthropic
//! adapter then puts `anthropic_version` in the body and leaves `model` out), every other
//! model is Google's (`:generateContent`, `:streamGenerateContent?alt=sse`). Embeddings use
//! Google's text-embedding models through `:predict` ([`embed`]).
//!
//! Errors map as for the Gemini and Anthropic APIs (429 fails over, 5xx is unavailable); a
//! 401 or 403 says that Vertex AI refused the credentials.

mod auth;
mod embed;

use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderValue};

use super::{
    AnthropicProvider, ChatStream, GeminiProvider, Provider, ProviderError, ProviderErrorKind,
    http::Upstream, openai::path_segment, transport::UpstreamRequest,
};
use crate::{
    chat::{ChatRequest, ChatResponse},
    config::{ConnectionSettings, ProviderKind, VertexSettings},
    embed::{EmbedRequest, Embeddings},
};

/// Where a Vertex call goes and the token it carries; shared by the adapters of one provider.
#[derive(Debug)]
pub(crate) struct VertexAccess {
    project: String,
    location: String,
    auth: auth::VertexAuth,
}

impl VertexAccess {
    /// A POST of `method` on `publisher`'s `model`, with a bearer token.
    pub(crate) async fn post(
        &self,
        upstream: &Upstream,
        publisher: &str,
        model: &str,
        method: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        let token = self.auth.token(&upstream.name).await?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| upstream.invalid("the access token is not a valid header value"))?;
        // Kept out of HTTP-level debug logs.
        bearer.set_sensitive(true);
        let url = format!(
            "{}/v1/projects/{}/locations/{}/publishers/{publisher}/models/{}:{method}",
            upstream.base_url,
            path_segment(&self.project),
            path_segment(&self.location),
            model_segment(model),
        );
        Ok(upstream.post(&url).header(AUTHORIZATION, bearer))
    }
}

/// A model id as a path segment; `@` (Claude's `claude-sonnet-4@20250514`) stays as Google
/// writes it.
fn model_segment(model: &str) -> String {
    path_segment(model).replace("%40", "@")
}

/// The Vertex AI provider.
#[derive(Debug)]
pub struct VertexProvider {
    upstream: Upstream,
    access: Arc<VertexAccess>,
    gemini: GeminiProvider,
    claude: AnthropicProvider,
}

impl VertexProvider {
    /// A Vertex provider; a service-account key is loaded now.
    pub fn new(
        name: &str,
        connection: &ConnectionSettings,
        settings: &VertexSettings,
    ) -> Result<Self, ProviderError> {
        let upstream = Upstream::new(name, connection)?;
        let access = Arc::new(VertexAccess {
            project: settings.project.clone(),
            location: settings.location.clone(),
            auth: auth::VertexAuth::new(name, &settings.credentials)?,
        });
        Ok(VertexProvider {
            gemini: GeminiProvider::on_vertex(upstream.clone(), access.clone()),
            claude: AnthropicProvider::on_vertex(
                upstream.clone(),
                access.clone(),
                &settings.anthropic_version,
                settings.default_max_tokens,
            ),
            upstream,
            access,
        })
    }

    fn is_claude(model: &str) -> bool {
        model.starts_with("claude-")
    }

    /// A refused credential says so, naming Vertex AI; other errors pass unchanged.
    fn explain(&self, mut err: ProviderError) -> ProviderError {
        if err.kind == ProviderErrorKind::Auth {
            err.message = format!(
                "Vertex AI refused the credentials (project {}; the account needs roles/aiplatform.user): {}",
                self.access.project, err.message
            );
        }
        err
    }
}

#[async_trait::async_trait]
impl Provider for VertexProvider {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn system(&self) -> &'static str {
        ProviderKind::Vertex.gen_ai_provider()
    }

    fn upstream(&self) -> Option<&Upstream> {
        Some(&self.upstream)
    }

    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let reply = if Self::is_claude(model) {
            self.claude.chat(model, request).await
        } else {
            self.gemini.chat(model, request).await
        };
        reply.map_err(|e| self.explain(e))
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let stream = if Self::is_claude(model) {
            self.claude.stream(model, request).await
        } else {
            self.gemini.stream(model, request).await
        };
        stream.map_err(|e| self.explain(e))
    }

    async fn embed(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        embed::embeddings(&self.upstream, &self.access, model, request)
            .await
            .map_err(|e| self.explain(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_follows_the_model_name_and_at_signs_stay() {
        assert!(VertexProvider::is_claude("claude-sonnet-4@20250514"));
        assert!(!VertexProvider::is_claude("gemini-2.5-flash"));
        assert_eq!(model_segment("claude-sonnet-4@20250514"), "claude-sonnet-4@20250514");
        assert_eq!(model_segment("a/b:c"), "a%2Fb%3Ac");
    }
}
