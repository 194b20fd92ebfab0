//! Echo's embeddings: deterministic unit vectors hashed from each input's text, so tests and
//! a gateway without keys can call `Embed`. The same text always gives the same vector
//! (whatever the model or the call), different texts different ones; `dimensions` sets the
//! length ([`DEFAULT_DIMENSIONS`] when unset). A "token" is a word, as for echo's chat.

use sha2::{Digest, Sha256};

use super::{EchoProvider, saturate, word_count};
use crate::{
    chat::Usage,
    embed::{EmbedRequest, Embeddings},
};

/// The length of an echo vector when the caller asks for none.
pub const DEFAULT_DIMENSIONS: u32 = 8;

impl EchoProvider {
    /// The embeddings of `request`.
    pub(super) fn embeddings(model: &str, request: &EmbedRequest) -> Embeddings {
        let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
        let words: usize = request.inputs.iter().map(|t| word_count(t)).sum();
        Embeddings {
            vectors: request.inputs.iter().map(|t| vector(t, dimensions)).collect(),
            provider_model: model.to_owned(),
            usage: Usage { input_tokens: saturate(words), ..Usage::default() },
        }
    }
}

/// A unit vector of `dimensions` numbers from SHA-256 of `text` and a block counter.
pub fn vector(text: &str, dimensions: u32) -> Vec<f32> {
    let mut values = Vec::with_capacity(usize::try_from(dimensions).unwrap_or(0));
    let mut block = 0u32;
    while values.len() < values.capacity() {
        let digest = Sha256::new().chain_update(block.to_le_bytes()).chain_update(text).finalize();
        for pair in digest.chunks_exact(2) {
            if values.len() == values.capacity() {
                break;
            }
            // -1..1 from 16 bits.
            let n = u16::from_le_bytes([pair[0], pair[1]]);
            values.push(f32::from(n) / 32_767.5 - 1.0);
        }
        block += 1;
    }
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|x| *x /= norm);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors_of_the_asked_length() {
        let a = vector("hello", 8);
        assert_eq!(a, vector("hello", 8));
        assert_ne!(a, vector("hello!", 8));
        assert_eq!(vector("hello", 100).len(), 100);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn dimensions_default_and_usage_counts_words() {
        let request = EmbedRequest {
            inputs: vec!["one two".into(), "three".into()],
            ..EmbedRequest::default()
        };
        let e = EchoProvider::embeddings("m", &request);
        assert_eq!(e.vectors.len(), 2);
        assert!(e.vectors.iter().all(|v| v.len() == DEFAULT_DIMENSIONS as usize));
        assert_eq!(e.usage.input_tokens, 3);
        assert_eq!(e.provider_model, "m");
    }
}
