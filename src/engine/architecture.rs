//! One interface over the GGUF model families we run, chosen by `general.architecture`: llama
//! (Llama 2/3, Mistral, SmolLM) and qwen2 on our own [`Decoder`], mixture-of-experts llama,
//! qwen3, gemma3 and phi3 on candle-transformers. It hides their differences — how the KV cache
//! is reset between requests, how long a context each supports, what shape the logits come back
//! in.

use std::io::{Read, Seek};

pub use super::decoder::Step;
use super::decoder::{self, Decoder};
use crate::config::LoadOptions;
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};

/// Longest context we allocate for, whatever a model advertises: the KV cache grows with it and
/// briefs plus answers fit well inside.
const MAX_CONTEXT: usize = 8192;

/// The architectures this engine runs, as named in `general.architecture`.
pub const SUPPORTED: &[&str] = &["llama", "qwen2", "qwen3", "gemma3", "phi3"];

/// Whether this engine runs `architecture`; the error is a sentence naming what it does run.
pub fn ensure_supported(architecture: &str) -> Result<(), String> {
    if SUPPORTED.contains(&architecture) { Ok(()) } else { Err(unsupported(architecture)) }
}

fn unsupported(architecture: &str) -> String {
    format!("architecture {architecture:?} is not supported (supported: {})", SUPPORTED.join(", "))
}

pub enum ModelWeights {
    /// llama (without mixture of experts) and qwen2: our own forward pass.
    Decoder(Decoder),
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

impl ModelWeights {
    /// Load the weights of `architecture` from an opened GGUF. Errors are plain sentences for
    /// the caller to attach to the file name.
    pub fn load<R: Read + Seek>(
        architecture: &str,
        content: Content,
        reader: &mut R,
        context_length: usize,
        device: &Device,
        options: LoadOptions,
    ) -> Result<Self, String> {
        if decoder::handles(architecture, &content) {
            return Decoder::load(architecture, &content, reader, context_length, device, options)
                .map(Self::Decoder)
                .map_err(|e| format!("reading {architecture} weights: {e}"));
        }
        Self::load_candle_transformers(architecture, content, reader, device)
    }

    /// candle-transformers' implementation of `architecture`: what runs the families our own
    /// decoder does not cover, and the reference the decoder is tested against.
    pub fn load_candle_transformers<R: Read + Seek>(
        architecture: &str,
        content: Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self, String> {
        let loaded = match architecture {
            "llama" => quantized_llama::ModelWeights::from_gguf(content, reader, device).map(Self::Llama),
            "qwen2" => quantized_qwen2::ModelWeights::from_gguf(content, reader, device).map(Self::Qwen2),
            "qwen3" => quantized_qwen3::ModelWeights::from_gguf(content, reader, device).map(Self::Qwen3),
            "gemma3" => quantized_gemma3::ModelWeights::from_gguf(content, reader, device).map(Self::Gemma3),
            "phi3" => quantized_phi3::ModelWeights::from_gguf(false, content, reader, device).map(Self::Phi3),
            other => return Err(unsupported(other)),
        };
        loaded.map_err(|e| format!("reading {architecture} weights: {e}"))
    }

    /// The context window to plan with: the model's own, capped by what its rotary table holds
    /// and by [`MAX_CONTEXT`].
    pub fn context_length(architecture: &str, content: &Content) -> usize {
        let advertised = content
            .metadata
            .get(&format!("{architecture}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_CONTEXT, |n| n as usize);
        let table_limit = match architecture {
            "llama" => quantized_llama::MAX_SEQ_LEN,
            _ => MAX_CONTEXT,
        };
        advertised.min(table_limit).min(MAX_CONTEXT)
    }

    /// Forget the previous request, and make room for the next one's `positions` tokens (our
    /// own decoder sizes its KV cache once for the request instead of doubling it on the way: a
    /// doubling copies the cache and, for a moment, holds both copies). Most families restart
    /// their cache at position 0 by themselves; qwen3 appends unless cleared.
    pub fn start_sequence(&mut self, positions: usize) -> candle_core::Result<()> {
        match self {
            Self::Decoder(m) => m.reserve(positions)?,
            Self::Llama(m) => m.clear_kv_cache(),
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Qwen3(m) => m.clear_kv_cache(),
            Self::Gemma3(_) | Self::Phi3(_) => {}
        }
        Ok(())
    }

    /// How many sequences one forward pass may carry: our decoder's KV cache slots (see
    /// [`set_slots`](Self::set_slots)); one for candle-transformers' models.
    pub fn slots(&self) -> usize {
        match self {
            Self::Decoder(m) => m.slots(),
            _ => 1,
        }
    }

    /// Ask for KV caches for `slots` sequences; the answer is how many the model holds (always
    /// one for candle-transformers' models, whose cache is a single sequence's).
    pub fn set_slots(&mut self, slots: usize) -> usize {
        if let Self::Decoder(m) = self {
            m.set_slots(slots);
        }
        self.slots()
    }

    /// Before a new sequence in `slot`: keep the first `keep` positions its cache holds (a
    /// prefix it shares with the last one there; only our decoder keeps them) and make room for
    /// `positions`.
    pub fn start_slot(&mut self, slot: usize, keep: usize, positions: usize) -> candle_core::Result<()> {
        match self {
            Self::Decoder(m) => m.start_slot(slot, keep, positions),
            _ if slot == 0 && keep == 0 => self.start_sequence(positions),
            _ => candle_core::bail!("{} keeps one sequence and no prefix", self.family()),
        }
    }

    /// One forward pass over several sequences (see [`Decoder::forward_batch`]): the logits of
    /// each step's last token, as `[vocab]`. `device` is the one the model is on.
    pub fn forward_batch(&mut self, steps: &[Step], device: &Device) -> candle_core::Result<Vec<Tensor>> {
        match (self, steps) {
            (Self::Decoder(m), _) => m.forward_batch(steps),
            (other, [step]) if step.slot == 0 => {
                let input = Tensor::new(step.tokens, device)?.unsqueeze(0)?;
                Ok(vec![other.forward(&input, step.position)?])
            }
            (other, _) => candle_core::bail!("{} runs one sequence per pass", other.family()),
        }
    }

    /// Bytes of KV cache one position of one sequence takes (our decoder's; candle-transformers'
    /// models run one sequence, so theirs never has to be budgeted and reads 0).
    pub fn kv_bytes_per_position(&self) -> usize {
        match self {
            Self::Decoder(m) => m.kv_bytes_per_position(),
            _ => 0,
        }
    }

    fn family(&self) -> &'static str {
        match self {
            Self::Decoder(_) => "our decoder",
            Self::Llama(_) => "candle's llama",
            Self::Qwen2(_) => "candle's qwen2",
            Self::Qwen3(_) => "candle's qwen3",
            Self::Gemma3(_) => "candle's gemma3",
            Self::Phi3(_) => "candle's phi3",
        }
    }

    /// Whether a prompt may be fed in several forward passes. candle's gemma3 builds a wrong
    /// mask (and fails on a dtype mismatch) for a multi-token pass after position 0, so its
    /// prompts go in one pass.
    pub fn supports_chunked_prefill(&self) -> bool {
        !matches!(self, Self::Gemma3(_))
    }

    /// Logits for the last position of `input` (`[1, seq_len]` token ids at `position`), as a
    /// `[vocab]` vector.
    pub fn forward(&mut self, input: &Tensor, position: usize) -> candle_core::Result<Tensor> {
        let logits = match self {
            Self::Decoder(m) => m.forward(input, position)?,
            Self::Llama(m) => m.forward(input, position)?,
            Self::Qwen2(m) => m.forward(input, position)?,
            Self::Qwen3(m) => m.forward(input, position)?,
            Self::Gemma3(m) => m.forward(input, position)?,
            Self::Phi3(m) => m.forward(input, position)?,
        };
        logits.flatten_all()
    }
}
