//! Embeddings on Bedrock through `InvokeModel` (`POST {base}/model/{modelId}/invoke`): the embed
//! half of the Bedrock adapter that the call pipeline reaches through
//! [`crate::provider::Provider::embed`]. Converse has no embeddings, so the body is the model
//! family's own:
//!
//! - Amazon Titan Text Embeddings (`amazon.titan-embed-text-v1`, `-v2:0`): one text a call,
//!   `{inputText, dimensions?, normalize}` → `{embedding, inputTextTokenCount}`; several inputs
//!   are sent as concurrent calls (at most four at a time) and come back in input order.
//! - Cohere Embed on Bedrock (`cohere.embed-english-v3`, `-multilingual-v3`, `embed-v4`): up to
//!   96 texts a call, `{texts, input_type: search_document, truncate: NONE}` → `{embeddings}`
//!   (a list of vectors, or `{float: […]}` by type).
//!
//! `dimensions` goes to Titan v2 and Cohere v4, and is refused for the models without it; any
//! other model is refused by name before anything is sent. Usage is Bedrock's
//! `X-Amzn-Bedrock-Input-Token-Count` header, or the body's count.

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::BedrockProvider;
use crate::{
    chat::Usage,
    embed::{EmbedRequest, Embeddings},
    provider::ProviderError,
};

/// Most texts one Cohere call takes.
const COHERE_MAX_TEXTS: usize = 96;
/// Titan calls in flight at once for one request.
const TITAN_CONCURRENCY: usize = 4;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanReply {
    embedding: Vec<f32>,
    #[serde(default)]
    input_text_token_count: Option<u32>,
}

#[derive(Debug, Serialize)]
struct CohereRequest<'a> {
    texts: &'a [String],
    input_type: &'static str,
    truncate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct CohereReply {
    embeddings: CohereEmbeddings,
}

/// `embeddings_floats` (a list) or `embeddings_by_type` (`{float: …}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

/// The embedding model families Bedrock serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    TitanV1,
    TitanV2,
    Cohere { dimensions: bool },
}

fn family(model: &str) -> Option<Family> {
    if model.contains("amazon.titan-embed-text-v1") || model.contains("amazon.titan-embed-g1-text")
    {
        Some(Family::TitanV1)
    } else if model.contains("amazon.titan-embed-text-v2") {
        Some(Family::TitanV2)
    } else if model.contains("cohere.embed-v4") {
        Some(Family::Cohere { dimensions: true })
    } else if model.contains("cohere.embed-") {
        Some(Family::Cohere { dimensions: false })
    } else {
        None
    }
}

impl BedrockProvider {
    /// The embeddings of `request` from `model`.
    pub(super) async fn embeddings(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        let Some(family) = family(model) else {
            return Err(self.unsupported(
                "model",
                format!(
                    "{model:?} is not an embedding model this gateway knows on Bedrock (amazon.titan-embed-text-*, cohere.embed-*)"
                ),
            ));
        };
        let dimensions = match (family, request.dimensions) {
            (Family::TitanV1 | Family::Cohere { dimensions: false }, Some(_)) => {
                return Err(self.unsupported(
                    "dimensions",
                    format!("{model} has a fixed number of dimensions"),
                ));
            }
            (_, dimensions) => dimensions,
        };
        let (vectors, tokens) = match family {
            Family::Cohere { .. } => self.cohere(model, request, dimensions).await?,
            Family::TitanV1 | Family::TitanV2 => {
                let v2 = family == Family::TitanV2;
                // Collected first: a lazy `map` closure trips the Send check of async-trait.
                let mut calls = Vec::with_capacity(request.inputs.len());
                for text in &request.inputs {
                    calls.push(self.titan(model, text, dimensions, v2));
                }
                let replies: Vec<(Vec<f32>, Option<u32>)> =
                    futures::stream::iter(calls).buffered(TITAN_CONCURRENCY).try_collect().await?;
                let tokens = replies.iter().map(|(_, t)| *t).sum::<Option<u32>>();
                (replies.into_iter().map(|(v, _)| v).collect(), tokens)
            }
        };
        self.upstream.check_vectors(&vectors, request.inputs.len())?;
        Ok(Embeddings {
            vectors,
            provider_model: model.to_owned(),
            // No count: the pipeline estimates the usage.
            usage: Usage { input_tokens: tokens.unwrap_or(0), ..Usage::default() },
        })
    }

    async fn titan(
        &self,
        model: &str,
        text: &str,
        dimensions: Option<u32>,
        v2: bool,
    ) -> Result<(Vec<f32>, Option<u32>), ProviderError> {
        let body = TitanRequest { input_text: text, dimensions, normalize: v2.then_some(true) };
        let response = self.post(model, "invoke", &body, "application/json", false).await?;
        let tokens = input_tokens(response.headers());
        let reply: TitanReply = self.upstream.json(response).await?;
        Ok((reply.embedding, tokens.or(reply.input_text_token_count)))
    }

    async fn cohere(
        &self,
        model: &str,
        request: &EmbedRequest,
        dimensions: Option<u32>,
    ) -> Result<(Vec<Vec<f32>>, Option<u32>), ProviderError> {
        if request.inputs.len() > COHERE_MAX_TEXTS {
            return Err(self.unsupported(
                "inputs",
                format!(
                    "Cohere on Bedrock embeds at most {COHERE_MAX_TEXTS} texts a call, got {}",
                    request.inputs.len()
                ),
            ));
        }
        let body = CohereRequest {
            texts: &request.inputs,
            input_type: "search_document",
            truncate: "NONE",
            output_dimension: dimensions,
        };
        let response = self.post(model, "invoke", &body, "application/json", false).await?;
        let tokens = input_tokens(response.headers());
        let reply: CohereReply = self.upstream.json(response).await?;
        let vectors = match reply.embeddings {
            CohereEmbeddings::Floats(v) | CohereEmbeddings::ByType { float: v } => v,
        };
        Ok((vectors, tokens))
    }
}

/// Bedrock's count of the input tokens it billed.
fn input_tokens(headers: &http::header::HeaderMap) -> Option<u32> {
    headers.get("x-amzn-bedrock-input-token-count")?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_follows_the_model_id_profile_or_arn() {
        assert_eq!(family("amazon.titan-embed-text-v2:0"), Some(Family::TitanV2));
        assert_eq!(family("amazon.titan-embed-text-v1"), Some(Family::TitanV1));
        assert_eq!(family("cohere.embed-english-v3"), Some(Family::Cohere { dimensions: false }));
        assert_eq!(family("us.cohere.embed-v4:0"), Some(Family::Cohere { dimensions: true }));
        assert_eq!(family("anthropic.claude-sonnet-4-20250514-v1:0"), None);
    }
}
