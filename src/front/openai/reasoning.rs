//! Reasoning in the OpenAI dialect, which has no field of its own for it in Chat Completions:
//! the fields the OpenAI-compatible world settled on, read and written by both directions of
//! the door.
//!
//! - `reasoning_content` (DeepSeek, vLLM, llama.cpp): the reasoning text, on a reply's
//!   message, on a stream's delta, and on an assistant message sent back;
//! - `reasoning_details` (OpenRouter): the reasoning parts with what must survive a round trip,
//!   `{"type": "reasoning.text", "text", "signature"}` and `{"type": "reasoning.encrypted",
//!   "data"}` for redacted reasoning. Written only when a part carries a signature or redacted
//!   data; read in preference to `reasoning_content` when an assistant message has both;
//! - `extra_content.google.thought_signature` on a tool call (Gemini's OpenAI-compatible API):
//!   the signature of the reasoning behind the call.

use serde::{Deserialize, Serialize};

use crate::chat::{ContentPart, Reasoning, ReasoningDelta};

/// One entry of `reasoning_details`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasoningDetail {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// OpenRouter's provenance hints; accepted and dropped.
    #[serde(default, skip_serializing, rename = "format")]
    _format: Option<serde::de::IgnoredAny>,
    #[serde(default, skip_serializing, rename = "id")]
    _id: Option<serde::de::IgnoredAny>,
    #[serde(default, skip_serializing, rename = "index")]
    _index: Option<serde::de::IgnoredAny>,
}

/// The `reasoning.text` type.
pub(super) const TEXT: &str = "reasoning.text";
/// The `reasoning.encrypted` type.
pub(super) const ENCRYPTED: &str = "reasoning.encrypted";

impl ReasoningDetail {
    /// The entry of one reasoning part.
    pub fn of(part: &Reasoning) -> ReasoningDetail {
        match &part.redacted_data {
            Some(data) => ReasoningDetail {
                kind: ENCRYPTED.into(),
                data: Some(data.clone()),
                ..ReasoningDetail::default()
            },
            None => ReasoningDetail {
                kind: TEXT.into(),
                text: Some(part.text.clone()),
                signature: part.signature.clone(),
                ..ReasoningDetail::default()
            },
        }
    }

    /// The entry of one stream delta.
    pub fn of_delta(delta: &ReasoningDelta) -> ReasoningDetail {
        ReasoningDetail::of(&Reasoning {
            text: delta.text.clone(),
            signature: delta.signature.clone(),
            redacted_data: delta.redacted_data.clone(),
        })
    }

    /// The reasoning part of this entry, or why it has none.
    pub fn part(self) -> Result<Reasoning, String> {
        match self.kind.as_str() {
            TEXT => Ok(Reasoning {
                text: self.text.unwrap_or_default(),
                signature: self.signature,
                redacted_data: None,
            }),
            ENCRYPTED => match self.data {
                Some(data) => Ok(Reasoning { redacted_data: Some(data), ..Reasoning::default() }),
                None => Err("a reasoning.encrypted entry needs its data".into()),
            },
            // A summary is a digest written for people; it cannot stand for the reasoning.
            other => Err(format!("unknown type {other:?}; use {TEXT} or {ENCRYPTED}")),
        }
    }
}

/// What a reply's or a stream's reasoning shows in this dialect: the text joined, and the
/// details when any part has something the text alone would lose.
pub(super) fn fields(parts: &[ContentPart]) -> (Option<String>, Option<Vec<ReasoningDetail>>) {
    let reasoning: Vec<&Reasoning> = parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Reasoning(r) => Some(r),
            _ => None,
        })
        .collect();
    if reasoning.is_empty() {
        return (None, None);
    }
    let text: String = reasoning.iter().map(|r| r.text.as_str()).collect();
    let signed = reasoning.iter().any(|r| r.signature.is_some() || r.redacted_data.is_some());
    let details = signed.then(|| reasoning.iter().map(|r| ReasoningDetail::of(r)).collect());
    (Some(text), details)
}

/// `extra_content` of a tool call: Gemini's thought signature.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtraContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleExtra>,
}

/// `extra_content.google`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct GoogleExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl ExtraContent {
    /// The extra content carrying `signature`, if there is one.
    pub fn signed(signature: Option<String>) -> Option<ExtraContent> {
        signature.map(|s| ExtraContent { google: Some(GoogleExtra { thought_signature: Some(s) }) })
    }

    /// The signature it carries.
    pub fn signature(self) -> Option<String> {
        self.google.and_then(|g| g.thought_signature).filter(|s| !s.is_empty())
    }
}
