//! Embeddings on Gemini: `POST {base}/models/{model}:batchEmbedContents` with the key in
//! `x-goog-api-key`, one `EmbedContentRequest` per input (`model: "models/{model}"`, the
//! text as the one part of `content`, `outputDimensionality` for the caller's dimensions).
//! The reply's `embeddings[i].values` is the vector of input `i`. Gemini reports no token
//! usage for embeddings, so the pipeline estimates it (`estimated: true`). Gemini has no
//! byte encoding: the vectors come as numbers and the front door encodes them if asked.

use serde::{Deserialize, Serialize};

use super::GeminiProvider;
use crate::{
    embed::{EmbedRequest, Embeddings},
    provider::{ProviderError, openai::path_segment},
};

#[derive(Debug, Serialize)]
struct WireBatch<'a> {
    requests: Vec<WireRequest<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    model: &'a str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Debug, Serialize)]
struct WireContent<'a> {
    parts: [WirePart<'a>; 1],
}

#[derive(Debug, Serialize)]
struct WirePart<'a> {
    text: &'a str,
}

#[derive(Debug, Deserialize)]
struct WireReply {
    #[serde(default)]
    embeddings: Vec<WireEmbedding>,
}

#[derive(Debug, Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    values: Vec<f32>,
}

impl GeminiProvider {
    /// The embeddings of `request` from `model`.
    pub(super) async fn embeddings(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        let bare = model.strip_prefix("models/").unwrap_or(model);
        let qualified = format!("models/{bare}");
        let body = WireBatch {
            requests: request
                .inputs
                .iter()
                .map(|text| WireRequest {
                    model: &qualified,
                    content: WireContent { parts: [WirePart { text }] },
                    output_dimensionality: request.dimensions,
                })
                .collect(),
        };
        let url =
            format!("{}/models/{}:batchEmbedContents", self.upstream.base_url, path_segment(bare));
        let builder = self.upstream.post(&url);
        let builder = match self.upstream.key() {
            Some(key) => builder.header("x-goog-api-key", key.expose()),
            None => builder,
        };
        let response = self.upstream.send(builder.json(&body), false).await?;
        let reply: WireReply = self.upstream.json(response).await?;
        let vectors: Vec<Vec<f32>> = reply.embeddings.into_iter().map(|e| e.values).collect();
        self.upstream.check_vectors(&vectors, request.inputs.len())?;
        Ok(Embeddings {
            vectors,
            provider_model: bare.to_owned(),
            usage: crate::chat::Usage::default(),
        })
    }
}
