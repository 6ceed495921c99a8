//! `bidder parity-check`: one model run on the CPU and on another device through the same
//! forward passes, and every pass's logits compared. The passes are the worker's: two sequences
//! in KV cache slots of their own, a prefill chunk beside a whole prompt, then a prefill chunk
//! beside a decode token, then decode steps together, each decode token the CPU's choice so
//! both devices read the same text. It is what `tests/decoder_parity.rs` checks with cargo, for
//! a machine that has none: a GPU box gets the binary and a tiny synthetic model.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::architecture::{ModelWeights, Step};
use super::{ChatMessage, EngineError, PromptEncoder};
use crate::config::LoadOptions;

/// Prompt tokens the first sequence is fed per pass: several passes of prefill, the later ones
/// beside the second sequence's decode steps.
const PREFILL_CHUNK: usize = 16;

const PROMPTS: [&str; 2] =
    ["Write three short slogans for a bakery called Crumb & Co that sells sourdough bread.", "Name one colour."];

/// What a parity check found.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    pub model: String,
    pub architecture: String,
    pub device: String,
    /// Sequences run together (one for the families candle-transformers runs).
    pub sequences: usize,
    pub forward_passes: usize,
    /// Logit vectors compared (one per sequence per pass).
    pub compared: usize,
    pub max_abs_diff: f64,
    /// The largest logit magnitude on the CPU: the scale the difference is judged against.
    pub max_abs_logit: f64,
    /// Over every compared vector, its largest difference over its largest CPU logit.
    pub relative_diff: f64,
    pub min_cosine: f64,
    /// Share of compared vectors whose best token is the same on both devices (near-ties may
    /// fall either way, so it is reported, not judged).
    pub argmax_agreement: f64,
    /// Whether either device produced a NaN or infinite logit.
    pub non_finite: bool,
    pub tolerance: f64,
    pub passed: bool,
}

/// Run `path` on the CPU and on `device` for a prompt each and `decode_steps` decode steps, and
/// compare. `passed` holds when every logit is finite and `relative_diff` is within `tolerance`.
pub fn parity_check(
    path: &Path,
    device: &Device,
    decode_steps: usize,
    tolerance: f64,
    options: LoadOptions,
) -> Result<ParityReport, EngineError> {
    let encoder = PromptEncoder::from_gguf(path)?;
    let (architecture, context, mut cpu) = load(path, &Device::Cpu, options)?;
    let (_, _, mut other) = load(path, device, options)?;
    let sequences = cpu.set_slots(PROMPTS.len()).min(other.set_slots(PROMPTS.len()));
    let mut lanes = Vec::with_capacity(sequences);
    for (slot, text) in PROMPTS.iter().take(sequences).enumerate() {
        let prompt = encoder.encode(&[ChatMessage::user(*text)])?;
        let positions = prompt.len() + decode_steps + 1;
        if positions > context {
            return Err(EngineError::Inference(format!("{positions} positions exceed the {context}-token context")));
        }
        cpu.start_slot(slot, 0, positions)?;
        other.start_slot(slot, 0, positions)?;
        // The first sequence is prefilled a chunk at a time, the second all at once.
        let chunk = if slot == 0 { PREFILL_CHUNK } else { prompt.len() };
        lanes.push(Lane { slot, prompt, chunk, position: 0, next: None, decoded: 0 });
    }
    let mut comparison = Comparison::default();
    let mut passes = 0;
    while lanes.iter().any(|lane| lane.decoded < decode_steps) {
        let inputs: Vec<(usize, Vec<u32>)> = lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| lane.decoded < decode_steps)
            .map(|(i, l)| (i, l.input()))
            .collect();
        let steps: Vec<Step> = inputs
            .iter()
            .map(|(i, tokens)| Step { slot: lanes[*i].slot, tokens, position: lanes[*i].position })
            .collect();
        let expected = cpu.forward_batch(&steps, &Device::Cpu)?;
        let actual = other.forward_batch(&steps, device)?;
        passes += 1;
        for ((i, tokens), (expected, actual)) in inputs.iter().zip(expected.iter().zip(&actual)) {
            let expected = logits(expected)?;
            comparison.add(&expected, &logits(actual)?);
            lanes[*i].advance(tokens.len(), argmax(&expected));
        }
    }
    let relative_diff = comparison.relative_diff;
    Ok(ParityReport {
        model: path.display().to_string(),
        architecture,
        device: super::device_name(device),
        sequences,
        forward_passes: passes,
        compared: comparison.compared,
        max_abs_diff: comparison.max_abs_diff,
        max_abs_logit: comparison.max_abs_logit,
        relative_diff,
        min_cosine: comparison.min_cosine,
        argmax_agreement: comparison.agreeing as f64 / comparison.compared.max(1) as f64,
        non_finite: comparison.non_finite,
        tolerance,
        passed: !comparison.non_finite && comparison.compared > 0 && relative_diff <= tolerance,
    })
}

/// One sequence's progress: its prompt fed a chunk at a time, then the CPU's choices.
struct Lane {
    slot: usize,
    prompt: Vec<u32>,
    chunk: usize,
    /// Tokens its slot's cache holds.
    position: usize,
    next: Option<u32>,
    decoded: usize,
}

impl Lane {
    fn input(&self) -> Vec<u32> {
        match self.next {
            Some(token) => vec![token],
            None => self.prompt[self.position..(self.position + self.chunk).min(self.prompt.len())].to_vec(),
        }
    }

    /// `fed` tokens went in and `best` is the CPU's choice after them.
    fn advance(&mut self, fed: usize, best: u32) {
        if self.next.is_some() {
            self.decoded += 1;
        }
        self.position += fed;
        if self.position >= self.prompt.len() {
            self.next = Some(best);
        }
    }
}

fn load(path: &Path, device: &Device, options: LoadOptions) -> Result<(String, usize, ModelWeights), EngineError> {
    let failed = |reason: String| EngineError::Load { path: path.display().to_string(), reason };
    let mut reader = BufReader::new(File::open(path).map_err(|e| failed(e.to_string()))?);
    let content = Content::read(&mut reader).map_err(|e| failed(format!("not a readable GGUF file: {e}")))?;
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| failed("GGUF metadata lacks general.architecture".into()))?;
    let context = ModelWeights::context_length(&architecture, &content);
    let weights = ModelWeights::load(&architecture, content, &mut reader, context, device, options).map_err(failed)?;
    Ok((architecture, context, weights))
}

fn logits(t: &Tensor) -> Result<Vec<f32>, EngineError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
}

#[derive(Debug)]
struct Comparison {
    compared: usize,
    max_abs_diff: f64,
    max_abs_logit: f64,
    relative_diff: f64,
    min_cosine: f64,
    agreeing: usize,
    non_finite: bool,
}

impl Default for Comparison {
    fn default() -> Self {
        Self {
            compared: 0,
            max_abs_diff: 0.0,
            max_abs_logit: 0.0,
            relative_diff: 0.0,
            min_cosine: 1.0,
            agreeing: 0,
            non_finite: false,
        }
    }
}

impl Comparison {
    fn add(&mut self, expected: &[f32], actual: &[f32]) {
        self.compared += 1;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if expected.len() != actual.len() || !finite(expected) || !finite(actual) {
            self.non_finite = true;
            return;
        }
        let scale = expected.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
        let diff = expected.iter().zip(actual).fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
        let dot: f64 = expected.iter().zip(actual).map(|(&a, &b)| a as f64 * b as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        let cosine = dot / (norm(expected) * norm(actual)).max(f64::MIN_POSITIVE);
        self.max_abs_diff = self.max_abs_diff.max(diff);
        self.max_abs_logit = self.max_abs_logit.max(scale);
        self.relative_diff = self.relative_diff.max(diff / scale.max(f64::MIN_POSITIVE));
        self.min_cosine = self.min_cosine.min(cosine);
        self.agreeing += usize::from(argmax(expected) == argmax(actual));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_judged_against_the_logits_scale() {
        let mut c = Comparison::default();
        c.add(&[10.0, -20.0, 5.0], &[10.5, -20.0, 5.0]);
        assert_eq!((c.max_abs_diff, c.max_abs_logit, c.relative_diff), (0.5, 20.0, 0.025));
        assert_eq!(c.agreeing, 1);
        c.add(&[1.0, 2.0], &[f32::NAN, 2.0]);
        assert!(c.non_finite);
    }

    #[test]
    fn a_lane_prefills_in_chunks_then_decodes_the_cpus_choice() {
        let mut lane = Lane { slot: 0, prompt: (0..20).collect(), chunk: 16, position: 0, next: None, decoded: 0 };
        assert_eq!(lane.input().len(), 16);
        lane.advance(16, 7);
        assert_eq!((lane.input(), lane.decoded), ((16..20).collect(), 0));
        lane.advance(4, 9);
        assert_eq!((lane.input(), lane.decoded), (vec![9], 0));
        lane.advance(1, 11);
        assert_eq!((lane.input(), lane.decoded, lane.position), (vec![11], 1, 21));
    }
}
