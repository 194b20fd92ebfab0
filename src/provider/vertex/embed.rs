//! Text embeddings on Vertex AI: `POST …/publishers/google/models/{model}:predict` with one
//! instance per input (`{content}`) and `parameters.outputDimensionality` for the caller's
//! dimensions. The reply's `predictions[i].embeddings.values` is the vector of input `i`, and
//! `predictions[i].embeddings.statistics.token_count` its input tokens, summed into usage.

use serde::{Deserialize, Serialize};

use super::VertexAccess;
use crate::{
    chat::Usage,
    embed::{EmbedRequest, Embeddings},
    provider::{ProviderError, http::Upstream},
};

#[derive(Debug, Serialize)]
struct WirePredict<'a> {
    instances: Vec<WireInstance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<WireParameters>,
}

#[derive(Debug, Serialize)]
struct WireInstance<'a> {
    content: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WireParameters {
    output_dimensionality: u32,
}

#[derive(Debug, Deserialize)]
struct WireReply {
    #[serde(default)]
    predictions: Vec<WirePrediction>,
}

#[derive(Debug, Deserialize)]
struct WirePrediction {
    embeddings: WireEmbedding,
}

#[derive(Debug, Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    values: Vec<f32>,
    #[serde(default)]
    statistics: Option<WireStatistics>,
}

#[derive(Debug, Deserialize)]
struct WireStatistics {
    #[serde(default)]
    token_count: f64,
}

/// The embeddings of `request` from `model`.
pub(super) async fn embeddings(
    upstream: &Upstream,
    access: &VertexAccess,
    model: &str,
    request: &EmbedRequest,
) -> Result<Embeddings, ProviderError> {
    let body = WirePredict {
        instances: request.inputs.iter().map(|content| WireInstance { content }).collect(),
        parameters: request.dimensions.map(|d| WireParameters { output_dimensionality: d }),
    };
    let builder = access.post(upstream, "google", model, "predict").await?;
    let response = upstream.send(builder.json(&body), false).await?;
    let reply: WireReply = upstream.json(response).await?;
    if reply.predictions.len() != request.inputs.len() {
        return Err(upstream.invalid(format!(
            "the reply has {} predictions for {} inputs",
            reply.predictions.len(),
            request.inputs.len()
        )));
    }
    if let Some(i) = reply.predictions.iter().position(|p| p.embeddings.values.is_empty()) {
        return Err(upstream.invalid(format!("prediction {i} has no values")));
    }
    // Google reports the count as a number that may be written as a float (`7.0`).
    let tokens: f64 = reply
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref())
        .map(|s| s.token_count.max(0.0))
        .sum();
    let reported = reply.predictions.iter().any(|p| p.embeddings.statistics.is_some());
    let usage = if reported {
        // A float to integer cast saturates; counts are whole numbers.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let input_tokens = tokens.round() as u32;
        Usage { input_tokens, ..Usage::default() }
    } else {
        Usage::default()
    };
    Ok(Embeddings {
        vectors: reply.predictions.into_iter().map(|p| p.embeddings.values).collect(),
        provider_model: model.to_owned(),
        usage,
    })
}
