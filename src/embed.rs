//! Embeddings: the validated domain form of `aiservice.v1.EmbedService.Embed` and what a
//! provider answers to it.
//!
//! A front door turns its wire request into an [`EmbedRequest`] ([`embed_request`] for gRPC,
//! the OpenAI door its own translation with the same checks), the call pipeline routes it like
//! a chat call ([`crate::call::Pipeline::embed`]), and a provider adapter answers with
//! [`Embeddings`] ([`crate::provider::Provider::embed`]). Vectors are `f32` throughout: that
//! is what every provider computes and what OpenAI's base64 encoding carries, so the
//! `BYTES` encoding ([`to_le_bytes`]) loses nothing.

use std::collections::BTreeMap;

use crate::{
    chat::Usage,
    error::Error,
    proto::v1 as pb,
    validate::{self, Violations},
};

/// Most inputs one request may carry (OpenAI's own limit per `/v1/embeddings` call).
pub const MAX_INPUTS: usize = 2048;
/// Most dimensions a caller may ask for.
pub const MAX_DIMENSIONS: u32 = 65_536;

/// How the vectors go back to the caller; the vectors themselves are the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmbeddingEncoding {
    /// As numbers.
    #[default]
    Float,
    /// As little-endian `f32` bytes (OpenAI's `base64` once decoded).
    Bytes,
}

/// A validated embeddings request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmbedRequest {
    /// The route or `provider/model` asked for, trimmed.
    pub model: String,
    /// The texts, at least one, none empty.
    pub inputs: Vec<String>,
    /// The vectors' length, for models that can shorten them.
    pub dimensions: Option<u32>,
    /// How the caller wants the vectors.
    pub encoding: EmbeddingEncoding,
    /// Caller metadata, for the audit record only.
    pub metadata: BTreeMap<String, String>,
}

impl EmbedRequest {
    /// The bytes of text to embed, for a usage estimate.
    pub fn input_bytes(&self) -> usize {
        self.inputs.iter().map(String::len).sum()
    }

    /// Usage estimated at about four bytes a token, for a provider that reports none.
    pub fn estimate_usage(&self) -> Usage {
        Usage {
            input_tokens: crate::provider::estimate_tokens(self.input_bytes()),
            estimated: true,
            ..Usage::default()
        }
    }
}

/// A provider's answer: one vector per input, in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embeddings {
    /// The vectors, `vectors[i]` for `inputs[i]`.
    pub vectors: Vec<Vec<f32>>,
    /// The upstream model that made them, as the provider names it.
    pub provider_model: String,
    /// Input tokens (embeddings have no output tokens); zero when the provider gave none.
    pub usage: Usage,
}

/// The answer of an `Embed` call, as the pipeline gives it to a front door.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embedded {
    /// The route that was called.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The upstream model.
    pub provider_model: String,
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, estimated when the provider reported none.
    pub usage: Usage,
    /// What the call cost and what its key has left ([`crate::call`]'s bill).
    pub bill: crate::chat::Bill,
}

/// Validates `request` and converts it to the domain type; every problem is a field
/// violation (`inputs[2]`, `dimensions`, `encoding`, …).
pub fn embed_request(request: pb::EmbedRequest) -> Result<EmbedRequest, Error> {
    let mut v = Violations::default();
    let model = checked_model(&mut v, &request.model);
    check_inputs(&mut v, "inputs", &request.inputs);
    let dimensions =
        request.dimensions.and_then(|d| checked_dimensions(&mut v, "dimensions", i64::from(d)));
    let encoding = match pb::EmbeddingEncoding::try_from(request.encoding) {
        Ok(pb::EmbeddingEncoding::Unspecified | pb::EmbeddingEncoding::Float) => {
            EmbeddingEncoding::Float
        }
        Ok(pb::EmbeddingEncoding::Bytes) => EmbeddingEncoding::Bytes,
        Err(_) => {
            v.add("encoding", format!("unknown encoding {}; use FLOAT or BYTES", request.encoding));
            EmbeddingEncoding::Float
        }
    };
    validate::metadata(&mut v, "metadata", &request.metadata);
    v.finish(EmbedRequest {
        model,
        inputs: request.inputs,
        dimensions,
        encoding,
        metadata: request.metadata.into_iter().collect(),
    })
}

/// The model, trimmed; it must be named.
pub(crate) fn checked_model(v: &mut Violations, model: &str) -> String {
    let model = model.trim();
    if model.is_empty() {
        v.add("model", "is required; ListModels lists the models you can use");
    }
    model.to_owned()
}

/// At least one input, at most [`MAX_INPUTS`], none empty; `at` names the field.
pub(crate) fn check_inputs(v: &mut Violations, at: &str, inputs: &[String]) {
    if inputs.is_empty() {
        v.add(at, "at least one input is required");
    }
    if inputs.len() > MAX_INPUTS {
        v.add(at, format!("at most {MAX_INPUTS} inputs per request, got {}", inputs.len()));
    }
    for (i, input) in inputs.iter().enumerate() {
        if input.is_empty() {
            v.add(format!("{at}[{i}]"), "must not be empty");
        }
    }
}

/// A positive number of dimensions up to [`MAX_DIMENSIONS`].
pub(crate) fn checked_dimensions(v: &mut Violations, at: &str, value: i64) -> Option<u32> {
    match u32::try_from(value) {
        Ok(d) if d > 0 && d <= MAX_DIMENSIONS => Some(d),
        _ => {
            v.add(at, format!("must be between 1 and {MAX_DIMENSIONS}, got {value}"));
            None
        }
    }
}

/// A vector as little-endian `f32` bytes.
pub fn to_le_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian `f32` bytes as a vector; `None` when the length is no multiple of four.
pub fn from_le_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(inputs: &[&str]) -> pb::EmbedRequest {
        pb::EmbedRequest {
            model: "embed".into(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn fields(error: Error) -> Vec<String> {
        match error {
            Error::InvalidRequest(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("not a field violation: {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_converts() {
        let mut r = request(&["a", "b"]);
        r.model = "  embed ".into();
        r.dimensions = Some(256);
        r.encoding = pb::EmbeddingEncoding::Bytes as i32;
        let r = embed_request(r).unwrap();
        assert_eq!(r.model, "embed");
        assert_eq!(r.inputs, ["a", "b"]);
        assert_eq!(r.dimensions, Some(256));
        assert_eq!(r.encoding, EmbeddingEncoding::Bytes);
        let unset = embed_request(request(&["a"])).unwrap();
        assert_eq!((unset.dimensions, unset.encoding), (None, EmbeddingEncoding::Float));
    }

    #[test]
    fn every_problem_is_named() {
        let mut r = request(&["a", "b", ""]);
        r.model = " ".into();
        r.dimensions = Some(0);
        r.encoding = 7;
        assert_eq!(
            fields(embed_request(r).unwrap_err()),
            ["model", "inputs[2]", "dimensions", "encoding"]
        );
        assert_eq!(fields(embed_request(request(&[])).unwrap_err()), ["inputs"]);
        let mut negative = request(&["a"]);
        negative.dimensions = Some(-3);
        assert_eq!(fields(embed_request(negative).unwrap_err()), ["dimensions"]);
        let many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        assert_eq!(fields(embed_request(request(&many)).unwrap_err()), ["inputs"]);
    }

    #[test]
    fn bytes_round_trip_little_endian() {
        let v = [1.0f32, -0.5, 0.25];
        let bytes = to_le_bytes(&v);
        assert_eq!(&bytes[..4], &[0, 0, 0x80, 0x3f]);
        assert_eq!(from_le_bytes(&bytes).unwrap(), v);
        assert_eq!(from_le_bytes(&bytes[..5]), None);
    }

    #[test]
    fn usage_is_estimated_from_the_inputs() {
        let r = embed_request(request(&["abcd", "abcdefgh"])).unwrap();
        let usage = r.estimate_usage();
        assert_eq!((usage.input_tokens, usage.output_tokens, usage.estimated), (3, 0, true));
    }
}
