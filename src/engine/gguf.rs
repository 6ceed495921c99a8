//! One GGUF model in memory, of any supported architecture — weights, tokenizer, chat template, stop tokens — and the
//! prefill/decode loop that turns a [`GenerationRequest`] into a [`Generation`], honouring the
//! deadline and cancellation between forward passes.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aho_corasick::{AhoCorasick, MatchKind};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use tokenizers::Tokenizer;

use super::architecture::{self, ModelWeights};
use super::chat_template::{ChatMessage, ChatTemplate};
use super::decoder::Step;
use super::sequence::Sequence;
use super::{EngineError, Generation, GenerationRequest, tokenizer};
use crate::config::{LoadOptions, SamplingConfig};

/// Names of end-of-turn tokens across families; whichever exist in the vocabulary stop decoding.
const END_OF_TURN_TOKENS: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>"];

/// Put inside the text of a special token found in message content, so the tokenizer reads it
/// as the plain characters it is: invisible, and no tokenizer strips it before matching.
const SPECIAL_TOKEN_BREAK: char = '\u{200B}';

/// Text to token ids and back for one model: its tokenizer and chat template. Shared between
/// the caller's side (admission needs the prompt length) and the workers.
pub struct PromptEncoder {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    bos_to_prepend: Option<u32>,
    /// Finds the text of the vocabulary's special tokens (`<|im_end|>`, `</s>`, …) in content.
    special_tokens: Option<AhoCorasick>,
}

impl PromptEncoder {
    /// The tokenizer and chat template of a GGUF's metadata.
    fn from_metadata(path: &Path, md: &HashMap<String, Value>) -> Result<Self, EngineError> {
        let tokenizer = tokenizer::for_gguf(path, md).map_err(|e| load_error(path, e))?;
        let token_text = |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id)).unwrap_or_default();
        let bos_id = metadata_u32(md, "tokenizer.ggml.bos_token_id");
        let eos_id = metadata_u32(md, "tokenizer.ggml.eos_token_id");
        let template_source = md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok());
        let template = ChatTemplate::new(template_source.map(String::as_str), &token_text(bos_id), &token_text(eos_id))
            .map_err(|e| load_error(path, e))?;
        let specials: Vec<String> =
            tokenizer.get_added_tokens_decoder().into_values().filter(|t| t.special).map(|t| t.content).collect();
        let special_tokens = match specials.is_empty() {
            true => None,
            false => Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&specials)
                    .map_err(|e| load_error(path, format!("indexing the special tokens: {e}")))?,
            ),
        };
        let bos_to_prepend = bos_id.filter(|_| tokenizer::adds_bos(md));
        Ok(Self { tokenizer, template, bos_to_prepend, special_tokens })
    }

    /// The encoder of a GGUF file, without loading its weights.
    pub fn from_gguf(path: &Path) -> Result<Self, EngineError> {
        let (content, _) = read_content(path)?;
        Self::from_metadata(path, &content.metadata)
    }

    /// The prompt's token ids: the rendered chat template, special tokens matched whole.
    pub fn encode(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        self.encode_with_prefix(messages, "")
    }

    /// As [`encode`](Self::encode), with the assistant's answer already begun by
    /// `response_prefix` (tokenized together with the template, so the seam splits the way
    /// the model saw in training). Only the template makes special tokens: in the messages and
    /// the prefix — where the buyer's words go — their text is [`defused`](Self::defuse).
    pub fn encode_with_prefix(&self, messages: &[ChatMessage], response_prefix: &str) -> Result<Vec<u32>, EngineError> {
        let messages: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage { role: m.role.clone(), content: self.defuse(&m.content).into_owned() })
            .collect();
        let mut text = self.template.render(&messages)?;
        text.push_str(&self.defuse(response_prefix));
        let encoding =
            self.tokenizer.encode(text.as_str(), false).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some(bos) = self.bos_to_prepend
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    pub(crate) fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.tokenizer.decode(ids, true).map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// `text` with every special token's text broken by [`SPECIAL_TOKEN_BREAK`] after its first
    /// character, so that `<|im_end|><|im_start|>system` in a brief stays words, never a turn.
    fn defuse<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(specials) = &self.special_tokens else { return text.into() };
        let mut found = specials.find_iter(text).peekable();
        if found.peek().is_none() {
            return text.into();
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut copied = 0;
        for special in found {
            let first_char = text[special.start()..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&text[copied..special.start() + first_char]);
            out.push(SPECIAL_TOKEN_BREAK);
            copied = special.start() + first_char;
        }
        out.push_str(&text[copied..]);
        out.into()
    }
}

pub struct GgufModel {
    weights: ModelWeights,
    encoder: Arc<PromptEncoder>,
    stop_tokens: Vec<u32>,
    context_len: usize,
    name: String,
    architecture: String,
    parameters: u64,
    device: Device,
    /// What each KV cache slot holds (the tokens fed to it), so that a new sequence can start
    /// after the prefix it shares with the last one there: the calls for one brief repeat the
    /// system prompt and the brief.
    slot_tokens: Vec<Vec<u32>>,
    /// Bytes the KV caches of the sequences run together may take (`--kv-cache-mb`).
    kv_cache_bytes: usize,
}

/// The KV cache budget until one is set: enough for a few long requests of a small model.
const DEFAULT_KV_CACHE_BYTES: usize = 1 << 30;

fn load_error(path: &Path, reason: impl ToString) -> EngineError {
    EngineError::Load { path: path.display().to_string(), reason: reason.to_string() }
}

fn read_content(path: &Path) -> Result<(Content, BufReader<File>), EngineError> {
    let file = File::open(path).map_err(|e| load_error(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| load_error(path, format!("not a readable GGUF file: {e}")))?;
    Ok((content, reader))
}

/// The tokenizer alone, without loading the weights (for `bidder tokenize`).
pub fn load_gguf_tokenizer(path: &Path) -> Result<Tokenizer, EngineError> {
    let (content, _) = read_content(path)?;
    tokenizer::for_gguf(path, &content.metadata)
}

/// What a model is called in metadata, logs and metrics: its file name without `.gguf`.
pub fn model_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

fn metadata_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

impl GgufModel {
    /// Load weights, tokenizer and template from one GGUF file onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, EngineError> {
        Self::load_with(path, device, LoadOptions::default())
    }

    /// [`GgufModel::load`], with a say in how the weights are held.
    pub fn load_with(path: &Path, device: &Device, options: LoadOptions) -> Result<Self, EngineError> {
        let (content, mut reader) = read_content(path)?;
        let md = &content.metadata;
        let architecture = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| load_error(path, "GGUF metadata lacks general.architecture"))?;
        architecture::ensure_supported(&architecture).map_err(|e| load_error(path, e))?;
        let encoder = PromptEncoder::from_metadata(path, md)?;
        let mut stop_tokens: Vec<u32> = metadata_u32(md, "tokenizer.ggml.eos_token_id").into_iter().collect();
        stop_tokens.extend(END_OF_TURN_TOKENS.iter().filter_map(|t| encoder.tokenizer.token_to_id(t)));
        stop_tokens.sort_unstable();
        stop_tokens.dedup();

        let parameters = content.tensor_infos.values().map(|t| t.shape.elem_count() as u64).sum();
        let context_len = ModelWeights::context_length(&architecture, &content);
        let weights = ModelWeights::load(&architecture, content, &mut reader, context_len, device, options)
            .map_err(|e| load_error(path, e))?;
        let name = model_name(path);
        Ok(Self {
            weights,
            encoder: Arc::new(encoder),
            stop_tokens,
            context_len,
            name,
            architecture,
            parameters,
            device: device.clone(),
            slot_tokens: vec![Vec::new()],
            kv_cache_bytes: DEFAULT_KV_CACHE_BYTES,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many weights the model has (every tensor's elements), which sets its default
    /// [`Capability`](super::Capability).
    pub fn parameters(&self) -> u64 {
        self.parameters
    }

    /// `general.architecture` of the file, e.g. `llama` or `qwen2`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    pub fn encoder(&self) -> &Arc<PromptEncoder> {
        &self.encoder
    }

    /// One forward pass over `tokens` at `position` in slot 0 (0 starts a new sequence): the
    /// logits of the last token, over the vocabulary.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Tensor, EngineError> {
        if position == 0 {
            self.weights.start_sequence(tokens.len())?;
        }
        let mut logits = self.weights.forward_batch(&[Step { slot: 0, tokens, position }], &self.device)?;
        let slot = &mut self.slot_tokens[0];
        slot.truncate(position);
        slot.extend_from_slice(tokens);
        Ok(logits.pop().expect("one step, one result"))
    }

    /// How many sequences one forward pass may carry (see [`GgufModel::set_slots`]).
    pub fn slots(&self) -> usize {
        self.slot_tokens.len()
    }

    /// Ask for KV caches for `slots` sequences at once; returns how many the model holds (one
    /// for the families candle-transformers runs).
    pub fn set_slots(&mut self, slots: usize) -> usize {
        let held = self.weights.set_slots(slots);
        self.slot_tokens.resize_with(held, Vec::new);
        held
    }

    /// KV cache positions a request for `prompt_tokens` and at most `max_new_tokens` may fill
    /// (what its [`Sequence::positions_needed`] will be: never past the context).
    pub(crate) fn positions_for(&self, prompt_tokens: usize, max_new_tokens: usize) -> usize {
        (prompt_tokens + max_new_tokens).min(self.context_len)
    }

    /// Bytes of KV cache one position of one sequence takes.
    pub fn kv_bytes_per_position(&self) -> usize {
        self.weights.kv_bytes_per_position()
    }

    /// The memory the KV caches of the sequences run together may take.
    pub fn kv_cache_bytes(&self) -> usize {
        self.kv_cache_bytes
    }

    pub fn set_kv_cache_budget(&mut self, bytes: usize) {
        self.kv_cache_bytes = bytes;
    }

    /// Forget which prefixes the caches hold, so that the next sequences compute their whole
    /// prompt (warm-up and benchmarks measure prefill with it).
    pub fn forget_prefixes(&mut self) {
        self.slot_tokens.iter_mut().for_each(Vec::clear);
    }

    /// Of the `free` slots, the one whose cache shares the longest prefix with `prompt`.
    pub(crate) fn best_slot(&self, free: impl IntoIterator<Item = usize>, prompt: &[u32]) -> Option<usize> {
        free.into_iter().max_by_key(|&slot| (shared_prefix(&self.slot_tokens[slot], prompt), std::cmp::Reverse(slot)))
    }

    /// A sequence for `prompt` under `request`, not yet begun.
    pub(crate) fn sequence(
        &self,
        prompt: Vec<u32>,
        request: &GenerationRequest,
        sampling: &SamplingConfig,
    ) -> Sequence {
        Sequence::new(prompt, request, sampling, self.context_len, self.weights.supports_chunked_prefill())
    }

    /// Begin `sequence` in `slot`: it starts after the prefix the slot's cache shares with its
    /// prompt (our decoder's caches only), and the cache is sized for it.
    pub(crate) fn begin(&mut self, slot: usize, sequence: &mut Sequence) -> Result<(), EngineError> {
        if matches!(self.weights, ModelWeights::Decoder(_)) {
            sequence.reuse_prefix(shared_prefix(&self.slot_tokens[slot], sequence.prompt()));
        }
        self.weights.start_slot(slot, sequence.position(), sequence.positions_needed())?;
        self.slot_tokens[slot].truncate(sequence.position());
        Ok(())
    }

    /// One forward pass for every sequence of `batch` (each in its own slot) that is not done:
    /// a decode token each, and prompt chunks of at most `prefill_budget` tokens in all (a
    /// sequence whose prompt does not fit waits for a later pass; the first always gets one).
    /// A sequence that reaches its deadline before its pass is done without one.
    pub(crate) fn step(
        &mut self,
        batch: &mut [(usize, &mut Sequence)],
        prefill_budget: usize,
    ) -> Result<(), EngineError> {
        let mut budget = prefill_budget.max(1);
        let mut inputs: Vec<(usize, usize, Vec<u32>)> = Vec::with_capacity(batch.len());
        for (i, (_, sequence)) in batch.iter_mut().enumerate() {
            let prefilling = sequence.is_prefilling();
            if prefilling && budget == 0 {
                continue;
            }
            let position = sequence.position();
            if let Some(tokens) = sequence.next_input(budget) {
                if prefilling {
                    budget = budget.saturating_sub(tokens.len());
                }
                inputs.push((i, position, tokens));
            }
        }
        if inputs.is_empty() {
            return Ok(());
        }
        let steps: Vec<Step> = inputs
            .iter()
            .map(|(i, position, tokens)| Step { slot: batch[*i].0, tokens, position: *position })
            .collect();
        let started = Instant::now();
        let logits = self.weights.forward_batch(&steps, &self.device)?;
        let took = started.elapsed();
        metrics::histogram!("bidder_batch_sequences").record(steps.len() as f64);
        for (i, position, tokens) in &inputs {
            let cached = &mut self.slot_tokens[batch[*i].0];
            cached.truncate(*position);
            cached.extend_from_slice(tokens);
        }
        // Each sequence samples from its logits; with a temperature that is a softmax and a
        // top-p cut over the whole vocabulary, so the sequences sample side by side.
        let mut fed = inputs.iter().map(|(i, _, tokens)| (*i, tokens.len())).peekable();
        let mut accepting = Vec::with_capacity(inputs.len());
        for (i, (_, sequence)) in batch.iter_mut().enumerate() {
            if let Some((_, count)) = fed.next_if(|(index, _)| *index == i) {
                accepting.push((&mut **sequence, count));
            }
        }
        let stop_tokens = &self.stop_tokens;
        accepting
            .into_par_iter()
            .zip(logits.par_iter())
            .try_for_each(|((sequence, count), logits)| sequence.accept(count, logits, took, stop_tokens))
    }

    /// Run one request (its `prompt` already encoded) to completion, to the deadline, or until
    /// `cancelled()` says the caller is gone, in slot 0.
    pub fn generate(
        &mut self,
        prompt: Vec<u32>,
        request: &GenerationRequest,
        sampling: &SamplingConfig,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Generation, EngineError> {
        self.run_on_pool(|model| {
            let mut sequence = model.sequence(prompt, request, sampling);
            model.begin(0, &mut sequence)?;
            while !sequence.is_done() {
                if cancelled() {
                    return Err(EngineError::Cancelled);
                }
                model.step(&mut [(0, &mut sequence)], usize::MAX)?;
            }
            sequence.finish(&model.encoder)
        })
    }

    /// Run `work` where the forward passes are fastest. On CPU every matmul is split over
    /// rayon's pool, a few hundred times per token. Run from outside the pool, each split wakes
    /// a worker and puts this thread to sleep until the workers finish; run on a pool thread,
    /// this thread does its share and at most one other is woken. That difference was a third
    /// of a SmolLM2 decode step.
    pub(crate) fn run_on_pool<T: Send>(&mut self, work: impl FnOnce(&mut Self) -> T + Send) -> T {
        if !self.device.is_cpu() {
            return work(self);
        }
        rayon::scope(|_| work(self))
    }
}

/// How many leading tokens `a` and `b` share.
fn shared_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::gguf_file;

    use super::*;

    fn gguf_with_metadata(metadata: &[(&str, &Value)]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
        gguf_file::write(file.as_file_mut(), metadata, &[]).unwrap();
        file
    }

    #[test]
    fn an_unsupported_architecture_is_named_with_the_file() {
        let file = gguf_with_metadata(&[("general.architecture", &Value::String("mamba".into()))]);
        let err = GgufModel::load(file.path(), &Device::Cpu).err().expect("mamba is not supported").to_string();
        assert!(
            err.contains("mamba") && err.contains("qwen2") && err.contains(&file.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_gguf_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"definitely not a model").unwrap();
        let err = GgufModel::load(file.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("not a readable GGUF file"), "{err}");
    }
}
