//! How a brief becomes work: what the brief asks for, read into one typed plan
//! ([`requirements`]), what to ask the model for in each phase ([`prompt`]), how much of it
//! ([`GenerationPlan`]), how to clean what it wrote ([`clean`]), how to check it against the brief
//! ([`checks`]), how to present it to the buyer ([`presentation`]) and what to bid ([`pricing`]).
//! Knows the brief and the engine's trait, not candle.
//!
//! A model trusted with a kind of piece (its [`Capability`]) writes it whole from the whole brief
//! ([`capable`], through the one [`whole_piece`] loop of ask, check, repair). Otherwise it is led
//! a part at a time by its family's strategy ([`write`] dispatches): [`longform`], [`shortform`],
//! [`translation`], [`code`], [`business`], [`data`] and [`logo`], with [`general`] for the
//! rest. They ask the model a part at a time through [`compose::Writer`], which keeps one
//! deadline for all the calls, and share [`prose`] for paragraphs, lists and what a small model
//! must not be trusted with (numbers and names the brief never gave). Logos are built rather than
//! generated, and data figures are computed in Rust.

pub mod business;
pub mod capable;
pub mod checks;
pub mod clean;
pub mod code;
pub mod compose;
pub mod data;
pub mod general;
pub mod lists;
pub mod logo;
pub mod longform;
pub mod markdown;
pub mod posts;
pub mod presentation;
pub mod pricing;
pub mod prompt;
pub mod prose;
pub mod python_names;
pub mod requirements;
pub mod shortform;
pub mod translation;
pub mod whole_piece;
pub mod words;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::StrategyConfig;
use crate::engine::{Capability, EngineError};
use crate::protocol::{Brief, Phase};
use compose::{Draft, Writer};
use requirements::{Requirements, TaskFamily};

/// Prototypes of long pieces are a strong opening of this many words at most.
const PROTOTYPE_MAX_WORDS: u64 = 450;
/// Without a stated length, a prototype and a final aim for these.
const DEFAULT_PROTOTYPE_WORDS: u64 = 250;
const DEFAULT_FINAL_WORDS: u64 = 600;
/// Markdown, headings and sub-word pieces: tokens per English word, with headroom.
const TOKENS_PER_WORD: f64 = 1.6;
const MAX_PROTOTYPE_TOKENS: usize = 1024;
const MAX_FINAL_TOKENS: usize = 3072;
/// An answer shorter than this is no answer: stop tokens are held back until then.
const MIN_NEW_TOKENS: usize = 24;

/// Everything the engine needs to know about one generation, decided from the brief alone.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPlan {
    /// The length the buyer asked for, if any.
    pub requested_words: Option<u64>,
    /// The length this phase aims for.
    pub target_words: u64,
    pub max_new_tokens: usize,
    pub min_new_tokens: usize,
    /// Wall-clock budget for the whole request, from its arrival.
    pub time_budget: Duration,
    pub seed: u64,
    /// What the brief asks for, read once.
    pub requirements: Requirements,
    /// For a logo: the SVG built for it, with its rationale; the model is not asked.
    pub wordmark: Option<logo::Wordmark>,
    /// For data with a table in the brief: the figures computed from it (the model writes around
    /// them; the response carries them as tables).
    pub analysis: Option<data::Analysis>,
    /// Where code may be run, or why it may not (from `--code-exec` and this machine).
    pub code_exec: crate::sandbox::Availability,
}

/// Plan the generation for `brief` in its phase.
pub fn plan(brief: &Brief, config: &StrategyConfig) -> GenerationPlan {
    let requirements = Requirements::from_brief(brief);
    if requirements.family == TaskFamily::Logo {
        return plan_logo(brief, config, requirements);
    }
    let requested_words = requirements.target_words;
    let translate_into = requirements.translate_into();
    let analysis = match requirements.family {
        TaskFamily::Data => data::find_table(&brief.description).map(|table| data::analyse(&table)),
        _ => None,
    };
    let target_words = match (brief.phase, requested_words) {
        // A translation is as long as its source, whatever the phase.
        (_, None) if translate_into.is_some() => (clean::word_count(&brief.description) as u64).max(20),
        (Phase::Prototype, Some(n)) if n > PROTOTYPE_MAX_WORDS => PROTOTYPE_MAX_WORDS,
        (_, Some(n)) => n,
        (Phase::Prototype, None) => DEFAULT_PROTOTYPE_WORDS,
        (Phase::Final, None) => DEFAULT_FINAL_WORDS,
    };
    let token_cap = match brief.phase {
        Phase::Prototype => MAX_PROTOTYPE_TOKENS,
        Phase::Final => MAX_FINAL_TOKENS,
    };
    // Other languages split into more tokens per word than English.
    let tokens_per_word = if translate_into.is_some() { 3.0 } else { TOKENS_PER_WORD };
    let max_new_tokens = ((target_words as f64 * tokens_per_word) as usize + 64).min(token_cap);
    GenerationPlan {
        requested_words,
        target_words,
        max_new_tokens,
        min_new_tokens: MIN_NEW_TOKENS,
        time_budget: time_budget(brief, config),
        seed: seed(brief),
        requirements,
        wordmark: None,
        analysis,
        code_exec: config.code_exec.clone(),
    }
}

impl GenerationPlan {
    /// How big the work is, in words or their equivalent, for pricing: the length asked for,
    /// or what the listed items add up to, or the length this phase aims for.
    pub fn size_words(&self) -> u64 {
        // Saturating: the counts are the buyer's numbers, and a huge one must not overflow.
        let items: u64 = self
            .requirements
            .items
            .iter()
            .map(|i| i.count.saturating_mul(i.max_chars.map_or(12, |c| (c / 6).max(2))))
            .fold(0, u64::saturating_add);
        self.requested_words.or((items > 0).then_some(items)).unwrap_or(self.target_words.max(DEFAULT_PROTOTYPE_WORDS))
    }
}

/// Write the deliverable for `brief` by the strategy of its family.
pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    match (plan.requirements.family, &plan.wordmark, &plan.analysis) {
        (_, Some(mark), _) => Ok(logo::draft(brief, mark)),
        (_, _, Some(analysis)) => data::write(brief, plan, analysis, writer).await,
        (family, ..) if writes_whole(writer.capability(), family) => capable::write(brief, plan, writer).await,
        (TaskFamily::LongForm, ..) => longform::write(brief, plan, writer).await,
        (TaskFamily::ShortForm, ..) => shortform::write(brief, plan, writer).await,
        (TaskFamily::Translation, ..) => translation::write(brief, plan, writer).await,
        (TaskFamily::Code, ..) => code::write(brief, plan, writer).await,
        (TaskFamily::Business, ..) => business::write(brief, plan, writer).await,
        _ => general::write(brief, plan, writer).await,
    }
}

/// Whether a model of `capability` writes a piece of `family` whole (see [`Capability`]): what
/// the judge measured better for each level.
fn writes_whole(capability: Capability, family: TaskFamily) -> bool {
    match capability {
        Capability::Full => true,
        Capability::Prose => matches!(family, TaskFamily::LongForm | TaskFamily::Generic),
        Capability::Basic => false,
    }
}

/// A logo: the wordmark and its rationale are built here (see [`logo`]).
fn plan_logo(brief: &Brief, config: &StrategyConfig, requirements: Requirements) -> GenerationPlan {
    let wordmark = logo::wordmark(brief, &requirements);
    GenerationPlan {
        requested_words: None,
        target_words: 0,
        max_new_tokens: 0,
        min_new_tokens: 0,
        time_budget: time_budget(brief, config),
        seed: seed(brief),
        requirements,
        wordmark: Some(wordmark),
        analysis: None,
        code_exec: config.code_exec.clone(),
    }
}

/// The configured budget for the phase, tightened by the platform's own limit when it sends one.
pub fn time_budget(brief: &Brief, config: &StrategyConfig) -> Duration {
    let configured = match brief.phase {
        Phase::Prototype => config.prototype_deadline,
        Phase::Final => config.final_deadline,
    };
    match brief.execution_timeout_seconds {
        // Leave the platform a tenth of its own limit for the round trip. Saturating: the limit
        // is the platform's number, and a huge one must not overflow.
        Some(secs) if secs > 0 => configured.min(Duration::from_secs(secs).saturating_mul(9) / 10),
        _ => configured,
    }
}

/// The same task and phase always sample the same way, so a retried brief reads the same.
fn seed(brief: &Brief) -> u64 {
    let digest = Sha256::new().chain_update(brief.task_id.as_bytes()).chain_update(brief.phase.as_str()).finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    fn fixture(name: &str, phase: &str) -> Brief {
        let path = format!("{}/tests/fixtures/briefs/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        value["mode"] = phase.into();
        parse_brief(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn long_pieces_get_a_shorter_prototype_and_a_full_final() {
        let config = StrategyConfig::default();
        let proto = plan(&fixture("blog-post-sustainable-investing", "prototype"), &config);
        let fin = plan(&fixture("blog-post-sustainable-investing", "final"), &config);
        assert_eq!(proto.requested_words, Some(1500));
        assert!(proto.target_words < 1500 && proto.target_words >= 300, "{}", proto.target_words);
        assert_eq!(fin.target_words, 1500);
        assert!(fin.max_new_tokens > proto.max_new_tokens);
        assert!(fin.max_new_tokens >= 1500, "a 1500-word final needs room: {}", fin.max_new_tokens);
        assert_eq!(proto.time_budget, config.prototype_deadline);
        assert_eq!(fin.time_budget, config.final_deadline);
    }

    #[test]
    fn short_pieces_are_complete_even_as_prototypes() {
        let proto = plan(&fixture("product-description-bottle", "prototype"), &StrategyConfig::default());
        assert_eq!(proto.target_words, 150);
    }

    #[test]
    fn the_platforms_timeout_tightens_the_budget() {
        let mut brief = fixture("minimal-brief", "final");
        brief.execution_timeout_seconds = Some(100);
        assert_eq!(plan(&brief, &StrategyConfig::default()).time_budget, Duration::from_secs(90));
    }

    #[test]
    fn the_seed_is_stable_per_task_and_phase() {
        let a = plan(&fixture("minimal-brief", "prototype"), &StrategyConfig::default());
        let b = plan(&fixture("minimal-brief", "prototype"), &StrategyConfig::default());
        let c = plan(&fixture("minimal-brief", "final"), &StrategyConfig::default());
        assert_eq!(a.seed, b.seed);
        assert_ne!(a.seed, c.seed);
    }
}
