//! Embeddings on the OpenAI wire: `POST {base}/embeddings` for OpenAI and the compatible
//! family (Ollama, vLLM, llama.cpp and the hosted ones serve the same `/v1/embeddings`), and
//! `{base}/openai/deployments/{deployment}/embeddings?api-version=…` with an `api-key` header
//! for Azure OpenAI, reusing the adapter's connection, key and flavor.
//!
//! The request is `{model, input: [..], dimensions?, encoding_format}`: `base64` when the
//! caller wants bytes (a quarter of the JSON's size; decoded here), `float` otherwise. A
//! server that ignores `encoding_format` and sends numbers anyway is read too. Vectors are put
//! in input order by their `index`; a reply without one vector per input is invalid.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Flavor, OpenAiProvider};
use crate::{
    chat::Usage,
    embed::{EmbedRequest, EmbeddingEncoding, Embeddings, from_le_bytes},
    provider::{ProviderError, transport::UpstreamRequest},
};

/// The request body.
#[derive(Debug, Serialize)]
struct WireRequest<'a> {
    /// Absent for Azure, whose deployment in the URL is the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    encoding_format: &'static str,
}

/// The reply: `{"object": "list", "data": [...], "model", "usage"}`.
#[derive(Debug, Deserialize)]
struct WireReply {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: Option<usize>,
    embedding: WireVector,
}

/// Numbers, or base64 of little-endian `f32`s.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireVector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    total_tokens: Option<u32>,
}

impl OpenAiProvider {
    fn embeddings_request(&self, model: &str, body: &WireRequest<'_>) -> UpstreamRequest {
        self.post(model, "embeddings", None).json(body)
    }

    /// The embeddings of `request` from `model`.
    pub(super) async fn embeddings(
        &self,
        model: &str,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        let body = WireRequest {
            model: matches!(self.flavor, Flavor::OpenAi { .. }).then_some(model),
            input: &request.inputs,
            dimensions: request.dimensions,
            encoding_format: match request.encoding {
                EmbeddingEncoding::Float => "float",
                EmbeddingEncoding::Bytes => "base64",
            },
        };
        let response = self.upstream.send(self.embeddings_request(model, &body), false).await?;
        let reply: WireReply = self.upstream.json(response).await?;
        let vectors =
            in_order(reply.data, request.inputs.len()).map_err(|why| self.upstream.invalid(why))?;
        let usage = reply.usage.map_or_else(Usage::default, |u| Usage {
            input_tokens: u.prompt_tokens.or(u.total_tokens).unwrap_or(0),
            ..Usage::default()
        });
        Ok(Embeddings {
            vectors,
            provider_model: reply.model.unwrap_or_else(|| model.to_owned()),
            usage,
        })
    }
}

/// The vectors of `data` in input order, decoded; an error says what is wrong with the reply.
fn in_order(data: Vec<WireEmbedding>, inputs: usize) -> Result<Vec<Vec<f32>>, String> {
    if data.len() != inputs {
        return Err(format!("the reply has {} embeddings for {inputs} inputs", data.len()));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for (position, item) in data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let vector = match item.embedding {
            WireVector::Floats(values) => values,
            WireVector::Base64(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .ok()
                .and_then(|bytes| from_le_bytes(&bytes))
                .ok_or_else(|| format!("embedding {index} is not base64 of f32 values"))?,
        };
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector),
            Some(Some(_)) => return Err(format!("the reply has embedding {index} twice")),
            None => return Err(format!("the reply has an embedding at index {index} of {inputs}")),
        }
    }
    slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "the reply misses an embedding".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_in_input_order_from_either_encoding() {
        let data: Vec<WireEmbedding> = serde_json::from_str(
            r#"[{"index": 1, "embedding": "AACAPwAAAL8="}, {"index": 0, "embedding": [0.5, 2]}]"#,
        )
        .unwrap();
        assert_eq!(in_order(data, 2).unwrap(), vec![vec![0.5, 2.0], vec![1.0, -0.5]]);
    }

    #[test]
    fn a_reply_that_does_not_match_the_inputs_is_refused() {
        let parse = |json: &str| serde_json::from_str::<Vec<WireEmbedding>>(json).unwrap();
        assert!(in_order(parse(r#"[{"index": 0, "embedding": [1]}]"#), 2).is_err());
        assert!(
            in_order(
                parse(r#"[{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [1]}]"#),
                2
            )
            .is_err()
        );
        assert!(in_order(parse(r#"[{"index": 5, "embedding": [1]}]"#), 1).is_err());
        assert!(in_order(parse(r#"[{"index": 0, "embedding": "AAA"}]"#), 1).is_err());
    }
}
