//! `POST /v1/embeddings` in OpenAI's shape: `input` as a string or an array of strings,
//! `model`, `dimensions`, `encoding_format` (`float` or `base64`, the little-endian `f32`
//! bytes the `openai` SDKs ask for by default and decode), and `user` (to the audit record's
//! metadata). The answer is `{"object": "list", "data": [{"object": "embedding", "index",
//! "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`; errors are OpenAI's
//! error objects ([`super::error_response`]).
//!
//! Token arrays (`input` as integers, or arrays of them) are refused with a clear 400: the
//! gateway routes to providers with different tokenizers, so it takes text only.

use std::collections::HashMap;

use axum::{
    Extension, Json,
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
};
use base64::Engine;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::understand_serde;
use crate::{
    call::Call,
    embed::{self, EmbedRequest, Embedded, EmbeddingEncoding},
    error::Error,
    front::{grpc::Arrival, http::HttpState},
    metrics::Method,
    validate::Violations,
};

/// The body of `POST /v1/embeddings`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WireRequest {
    model: String,
    input: Option<Value>,
    dimensions: Option<i64>,
    encoding_format: Option<String>,
    user: Option<String>,
}

/// OpenAI's embeddings list.
#[derive(Debug, Serialize)]
struct EmbeddingList {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: String,
    usage: UsageOut,
}

#[derive(Debug, Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: VectorOut,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum VectorOut {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize)]
struct UsageOut {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// The handler of `POST /v1/embeddings`.
pub(super) async fn embeddings(
    State(state): State<HttpState>,
    headers: HeaderMap,
    arrival: Option<Extension<Arrival>>,
    body: Body,
) -> Response {
    let state = &state;
    super::serve(state, Method::Embed, &headers, arrival, |call, _| async move {
        answer(state, call, body).await
    })
    .await
}

async fn answer(state: &HttpState, call: Call, body: Body) -> Result<Response, Error> {
    let (call, request) = understand(state, call, body).await?;
    // Answers name the model as the caller asked for it, as OpenAI does.
    let model = request.model.clone();
    let encoding = request.encoding;
    let embedded = state.pipeline.embed(call, request).await?;
    let bill = embedded.bill.clone();
    Ok(crate::front::http::with_bill(Json(list(embedded, model, encoding)).into_response(), &bill))
}

/// The body read and translated, or the call refused.
async fn understand(
    state: &HttpState,
    mut call: Call,
    body: Body,
) -> Result<(Call, EmbedRequest), Error> {
    let translated = async {
        let bytes = state.read_body(body).await?;
        let wire = read(&bytes)?;
        let inputs = match &wire.input {
            Some(Value::Array(items)) => items.len(),
            Some(_) => 1,
            None => 0,
        };
        let mut metadata = HashMap::new();
        if let Some(user) = wire.user.as_ref().filter(|u| !u.is_empty()) {
            metadata.insert("user".to_owned(), user.clone());
        }
        call.asked_inputs(&wire.model, inputs, &metadata);
        translate(wire, metadata)
    }
    .await;
    match translated {
        Ok(request) => Ok((call, request)),
        Err(error) => Err(call.refuse(error)),
    }
}

fn read(body: &[u8]) -> Result<WireRequest, Error> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: WireRequest =
        serde_path_to_error::deserialize(&mut json).map_err(understand_serde)?;
    json.end()
        .map_err(|e| Error::MalformedRequest(format!("the body is not one JSON value: {e}")))?;
    Ok(request)
}

/// The domain request, or INVALID_ARGUMENT naming every problem by its OpenAI field name.
fn translate(wire: WireRequest, metadata: HashMap<String, String>) -> Result<EmbedRequest, Error> {
    let mut v = Violations::default();
    let model = embed::checked_model(&mut v, &wire.model);
    // `None` when `input` is of the wrong kind (already named); else its texts, checked.
    let inputs = match wire.input {
        None | Some(Value::Null) => {
            v.add("input", "is required: a string or an array of strings");
            None
        }
        Some(Value::String(text)) => Some(vec![text]),
        Some(Value::Array(items)) => texts(&mut v, items),
        Some(Value::Number(_)) => {
            v.add("input", TOKENS_REFUSED);
            None
        }
        Some(_) => {
            v.add("input", "must be a string or an array of strings");
            None
        }
    };
    if let Some(inputs) = &inputs {
        embed::check_inputs(&mut v, "input", inputs);
    }
    let inputs = inputs.unwrap_or_default();
    let dimensions =
        wire.dimensions.and_then(|d| embed::checked_dimensions(&mut v, "dimensions", d));
    let encoding = match wire.encoding_format.as_deref() {
        None | Some("float") => EmbeddingEncoding::Float,
        Some("base64") => EmbeddingEncoding::Bytes,
        Some(other) => {
            v.add("encoding_format", format!("unknown format {other:?}; use float or base64"));
            EmbeddingEncoding::Float
        }
    };
    crate::validate::metadata(&mut v, "user", &metadata);
    v.finish(EmbedRequest {
        model,
        inputs,
        dimensions,
        encoding,
        metadata: metadata.into_iter().collect(),
    })
}

const TOKENS_REFUSED: &str = "token arrays are not supported: this gateway routes to \
    providers with different tokenizers, so send the text (a string or an array of strings)";

/// The strings of an `input` array; `None` for token arrays or values that are no strings.
fn texts(v: &mut Violations, items: Vec<Value>) -> Option<Vec<String>> {
    if items.first().is_some_and(|i| i.is_number() || i.is_array()) {
        v.add("input", TOKENS_REFUSED);
        return None;
    }
    let mut texts = Vec::with_capacity(items.len());
    let mut all_text = true;
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) => texts.push(text),
            _ => {
                v.add(format!("input[{i}]"), "must be a string");
                all_text = false;
            }
        }
    }
    all_text.then_some(texts)
}

/// The answer in OpenAI's shape, the vectors as numbers or base64.
fn list(embedded: Embedded, model: String, encoding: EmbeddingEncoding) -> EmbeddingList {
    let data = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, values)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: match encoding {
                EmbeddingEncoding::Float => VectorOut::Floats(values),
                EmbeddingEncoding::Bytes => VectorOut::Base64(
                    base64::engine::general_purpose::STANDARD.encode(embed::to_le_bytes(&values)),
                ),
            },
        })
        .collect();
    let tokens = embedded.usage.input_tokens;
    EmbeddingList {
        object: "list",
        data,
        model,
        usage: UsageOut { prompt_tokens: tokens, total_tokens: tokens },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<String> {
        let wire = read(body.as_bytes()).unwrap();
        match translate(wire, HashMap::new()).unwrap_err() {
            Error::InvalidRequest(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_string_or_strings_translate() {
        let one =
            translate(read(br#"{"model":"m","input":"hi"}"#).unwrap(), HashMap::new()).unwrap();
        assert_eq!(one.inputs, ["hi"]);
        let many = translate(
            read(br#"{"model":"m","input":["a","b"],"dimensions":4,"encoding_format":"base64"}"#)
                .unwrap(),
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(many.inputs, ["a", "b"]);
        assert_eq!((many.dimensions, many.encoding), (Some(4), EmbeddingEncoding::Bytes));
    }

    #[test]
    fn problems_are_named_by_openai_field() {
        assert_eq!(fields(r#"{"model":"m","input":[1,2,3]}"#), ["input"]);
        assert_eq!(fields(r#"{"model":"m","input":[[1,2]]}"#), ["input"]);
        assert_eq!(fields(r#"{"model":"m","input":["a",""]}"#), ["input[1]"]);
        assert_eq!(fields(r#"{"model":"m","input":["a",3]}"#), ["input[1]"]);
        assert_eq!(fields(r#"{"model":"m","input":[]}"#), ["input"]);
        assert_eq!(fields(r#"{"input":"a","dimensions":0}"#), ["model", "dimensions"]);
        assert_eq!(
            fields(r#"{"model":"m","input":"a","encoding_format":"int8"}"#),
            ["encoding_format"]
        );
        assert_eq!(fields(r#"{"model":"m"}"#), ["input"]);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let embedded = Embedded { vectors: vec![vec![1.0, -0.5]], ..Embedded::default() };
        let out =
            serde_json::to_value(list(embedded, "m".into(), EmbeddingEncoding::Bytes)).unwrap();
        assert_eq!(out["data"][0]["embedding"], "AACAPwAAAL8=");
        assert_eq!(out["object"], "list");
        assert_eq!(out["data"][0]["object"], "embedding");
    }
}
