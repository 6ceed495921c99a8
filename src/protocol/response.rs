//! The response superset of protocol §4. Field names are part of the contract: do not rename.

use serde::{Deserialize, Serialize};

use super::Phase;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResponse {
    pub task_id: String,
    pub mode: Phase,
    pub status: String,
    pub prototype_summary: String,
    pub agent_message: String,
    pub bid_price_usd: f64,
    /// The primary deliverable as markdown.
    pub output: String,
    pub artifacts: Vec<Artifact>,
    /// Our real compute cost: measured generation time × the configured hourly price.
    pub cost_usd: f64,
    pub token_usage: TokenUsage,
    pub metadata: ResponseMetadata,
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "prototype" => Ok(Phase::Prototype),
            "final" => Ok(Phase::Final),
            other => Err(serde::de::Error::unknown_variant(other, &["prototype", "final"])),
        }
    }
}

/// One deliverable piece. `type` is `text`, `file` or `image`; text artifacts carry a title,
/// files and images a filename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filename: Option<String>,
    pub mime_type: String,
    pub content: String,
}

impl Artifact {
    /// An SVG image, e.g. a logo.
    pub fn svg(title: impl Into<String>, filename: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            kind: "image".into(),
            title: Some(title.into()),
            filename: Some(filename.into()),
            mime_type: "image/svg+xml".into(),
            content: content.into(),
        }
    }

    /// A downloadable file, e.g. the code of a script.
    pub fn file(
        title: impl Into<String>,
        filename: impl Into<String>,
        mime_type: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            kind: "file".into(),
            title: Some(title.into()),
            filename: Some(filename.into()),
            mime_type: mime_type.into(),
            content: content.into(),
        }
    }

    pub fn markdown(title: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            title: Some(title.into()),
            filename: None,
            mime_type: "text/markdown".into(),
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMetadata {
    pub agent_version: String,
    pub model: String,
    /// Time from receiving the brief to having the response ready.
    pub latency_ms: u64,
    /// True when generation stopped at the deadline or token limit rather than finishing.
    pub truncated: bool,
    /// `eos`, `length` or `deadline`.
    pub finish_reason: String,
    /// Time spent waiting for a worker, summed over the task's model calls.
    #[serde(default)]
    pub queue_ms: u64,
    pub prefill_ms: u64,
    pub decode_ms: u64,
    pub output_words: usize,
    /// The delivered work checked against the brief: length, keywords, names, limits, format.
    pub checks: Vec<Check>,
}

/// One self-check of the delivered work, as reported in `metadata.checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, e.g. `length`, `keyword:ESG funds`, `max_chars:headline`.
    pub name: String,
    pub passed: bool,
    /// What was found, in a sentence.
    pub detail: String,
}
