//! Embeddings on Cohere: `POST {base}/v2/embed`, the embed half of the Cohere adapter that the
//! call pipeline reaches through [`crate::provider::Provider::embed`].
//!
//! The request is `{model, texts, input_type, embedding_types: ["float"], truncate,
//! output_dimension?}`. `input_type` is `search_document` (the domain request does not say
//! what the text is for, and documents are what an index stores); `truncate` is `NONE`, so an
//! input longer than the model takes is refused by Cohere rather than silently cut, as OpenAI
//! does. The reply's `embeddings.float[i]` is the vector of input `i`, and the usage is
//! `meta.billed_units.input_tokens`. Cohere takes at most 96 texts a call: more are refused
//! before anything is sent.

use serde::{Deserialize, Serialize};

use super::{CohereProvider, count};
use crate::{
    chat::Usage,
    embed::{EmbedRequest, Embeddings},
    provider::ProviderError,
};

/// Most texts one `/v2/embed` call takes.
const MAX_TEXTS: usize = 96;

#[derive(Debug, Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    texts: &'a [String],
    input_type: &'static str,
    embedding_types: [&'static str; 1],
    truncate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct WireReply {
    embeddings: WireEmbeddings,
    #[serde(default)]
    meta: Option<WireMeta>,
}

#[derive(Debug, Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    float: Vec<Vec<f32>>,
}

#[derive(Debug, Deserialize)]
struct WireMeta {
    #[serde(default)]
    billed_units: Option<super::WireTokens>,
}

impl CohereProvider {
    /// The embeddings of `request` from `model`.
    pub(super) async fn embeddings(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        if request.inputs.len() > MAX_TEXTS {
            return Err(self.unsupported(
                "inputs",
                format!(
                    "Cohere embeds at most {MAX_TEXTS} texts a call, got {}",
                    request.inputs.len()
                ),
            ));
        }
        let body = WireRequest {
            model,
            texts: &request.inputs,
            input_type: "search_document",
            embedding_types: ["float"],
            truncate: "NONE",
            output_dimension: request.dimensions,
        };
        let response = self.send(self.post("/v2/embed", &body), false).await?;
        let reply: WireReply = self.upstream.json(response).await?;
        let vectors = reply.embeddings.float;
        self.upstream.check_vectors(&vectors, request.inputs.len())?;
        let billed = reply.meta.and_then(|m| m.billed_units).unwrap_or_default();
        Ok(Embeddings {
            vectors,
            provider_model: model.to_owned(),
            // No billed units: the pipeline estimates the usage.
            usage: Usage { input_tokens: count(billed.input_tokens), ..Usage::default() },
        })
    }
}
