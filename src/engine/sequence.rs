//! One request's way through the model, as a state machine: which tokens go into the next
//! forward pass (a prompt chunk, or the last sampled token), and what the logits that come back
//! mean (sample, stop at a stop token, the token limit, the context or the deadline).
//!
//! Keeping this apart from the forward pass lets one request run alone
//! ([`GgufModel::generate`](super::GgufModel::generate)) or beside others in a batch that
//! decodes several sequences per pass (the worker's scheduler) with the same rules.

use std::time::{Duration, Instant};

use candle_core::Tensor;

use super::sampling::Sampler;
use super::{EngineError, FinishReason, Generation, GenerationRequest, PromptEncoder};
use crate::config::SamplingConfig;

/// Prompt tokens per forward pass during prefill: large enough to batch well, small enough that
/// the deadline and cancellation are checked every fraction of a second.
pub(crate) const PREFILL_CHUNK: usize = 128;

/// Tokens at the start of an over-long prompt that are always kept (the system message).
const PROMPT_HEAD_KEEP: usize = 96;

/// Where a sequence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Feeding the prompt (up to `position` so far).
    Prefill,
    /// The token to feed next has been sampled.
    Decode(u32),
    Done(FinishReason),
}

/// One request in progress (see the module notes).
pub(crate) struct Sequence {
    prompt: Vec<u32>,
    /// Prompt tokens whose keys and values the cache already held when the sequence started
    /// (a shared prefix of an earlier request): prefill starts after them.
    reused: usize,
    max_new_tokens: usize,
    min_new_tokens: usize,
    deadline: Instant,
    context_len: usize,
    /// Whether the prompt may be fed in several passes; if not, it is fed whole, whatever the
    /// pass's budget (a model family whose forward pass cannot continue a prompt).
    chunked: bool,
    sampler: Sampler,
    /// The prompt and what was generated so far (what repetition control looks at).
    context: Vec<u32>,
    generated: Vec<u32>,
    /// Tokens fed to the model: the next pass starts at this position.
    position: usize,
    phase: Phase,
    started: Instant,
    prefill: Duration,
    decode_started: Option<Instant>,
    seconds_per_prompt_token: f64,
    last_step: Duration,
}

impl Sequence {
    /// A sequence for `prompt` (already encoded), cut in its middle if it leaves too little of
    /// the `context_len`-token context for the answer, whose first `reused` tokens are in the
    /// cache already. `chunked`: whether the prompt may be fed in several passes.
    pub(crate) fn new(
        mut prompt: Vec<u32>,
        request: &GenerationRequest,
        sampling: &SamplingConfig,
        context_len: usize,
        chunked: bool,
    ) -> Self {
        let min_new = request.min_new_tokens.min(request.max_new_tokens);
        // Room for the answer comes first: a prompt that leaves too little is cut in the
        // middle (the system message at the head and the instructions at the tail survive).
        let reserve = request.max_new_tokens.min(context_len / 2).max(min_new).max(1);
        let max_prompt = context_len.saturating_sub(reserve);
        if prompt.len() > max_prompt {
            tracing::warn!(
                prompt_tokens = prompt.len(),
                max_prompt,
                "prompt too long for the context; cutting its middle"
            );
            let tail = max_prompt - PROMPT_HEAD_KEEP.min(max_prompt);
            let cut_from = PROMPT_HEAD_KEEP.min(max_prompt);
            prompt.drain(cut_from..prompt.len() - tail);
        }
        Self {
            context: prompt.clone(),
            prompt,
            reused: 0,
            max_new_tokens: request.max_new_tokens,
            min_new_tokens: min_new,
            deadline: request.deadline,
            context_len,
            chunked,
            sampler: Sampler::new(sampling, request.seed, request.repetition),
            generated: Vec::new(),
            position: 0,
            phase: Phase::Prefill,
            started: Instant::now(),
            prefill: Duration::ZERO,
            decode_started: None,
            seconds_per_prompt_token: 0.0,
            last_step: Duration::ZERO,
        }
    }

    /// The prompt the sequence feeds (after any cut).
    pub(crate) fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// Start after the first `reused` prompt tokens, whose keys and values the cache holds.
    /// At least the last prompt token is always fed, for its logits.
    pub(crate) fn reuse_prefix(&mut self, reused: usize) {
        let reused = reused.min(self.prompt.len().saturating_sub(1));
        self.reused = reused;
        self.position = reused;
    }

    /// Positions the sequence may fill: its prompt and the most it may generate.
    pub(crate) fn positions_needed(&self) -> usize {
        (self.prompt.len() + self.max_new_tokens).min(self.context_len)
    }

    /// The position the next pass starts at.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    /// Whether the sequence is still reading its prompt.
    pub(crate) fn is_prefilling(&self) -> bool {
        self.phase == Phase::Prefill
    }

    /// The tokens of the next forward pass, at most `budget` of a prompt that may be fed in
    /// chunks (a decode step is one token whatever the budget), or `None` when the sequence is
    /// done: it ends at the deadline here, before a pass that would end after it (judged by the
    /// time the previous pass took).
    pub(crate) fn next_input(&mut self, budget: usize) -> Option<Vec<u32>> {
        match self.phase {
            Phase::Done(_) => None,
            Phase::Prefill if self.prompt.is_empty() => {
                self.end_prefill();
                self.phase = Phase::Done(FinishReason::Length);
                None
            }
            Phase::Prefill => {
                let left = self.prompt.len() - self.position;
                let len = match self.chunked {
                    true => left.min(PREFILL_CHUNK).min(budget.max(1)),
                    false => left,
                };
                let projected = Duration::from_secs_f64(self.seconds_per_prompt_token * len as f64);
                if Instant::now() + projected >= self.deadline {
                    // The deadline passed before the prompt was even read.
                    self.end_prefill();
                    self.phase = Phase::Done(FinishReason::Deadline);
                    return None;
                }
                Some(self.prompt[self.position..self.position + len].to_vec())
            }
            Phase::Decode(token) => Some(vec![token]),
        }
    }

    /// The logits of the last token of the pass that fed `fed` tokens and took `took`.
    pub(crate) fn accept(
        &mut self,
        fed: usize,
        logits: &Tensor,
        took: Duration,
        stop_tokens: &[u32],
    ) -> Result<(), EngineError> {
        self.position += fed;
        match self.phase {
            Phase::Done(_) => return Ok(()),
            Phase::Prefill => {
                self.seconds_per_prompt_token = took.as_secs_f64() / fed.max(1) as f64;
                if self.position < self.prompt.len() {
                    return Ok(());
                }
                self.end_prefill();
            }
            Phase::Decode(_) => self.last_step = took,
        }
        self.sample(logits, stop_tokens)
    }

    fn end_prefill(&mut self) {
        self.prefill = self.started.elapsed();
        self.decode_started = Some(Instant::now());
    }

    /// The next token from `logits`, or the end of the sequence.
    fn sample(&mut self, logits: &Tensor, stop_tokens: &[u32]) -> Result<(), EngineError> {
        let suppressed = if self.generated.len() < self.min_new_tokens { stop_tokens } else { &[] };
        let token = self.sampler.next_token(logits, &self.context, &self.generated, suppressed)?;
        self.phase = if stop_tokens.contains(&token) {
            Phase::Done(FinishReason::Eos)
        } else {
            self.generated.push(token);
            self.context.push(token);
            if self.generated.len() >= self.max_new_tokens || self.position + 1 >= self.context_len {
                Phase::Done(FinishReason::Length)
            } else if Instant::now() + self.last_step >= self.deadline {
                Phase::Done(FinishReason::Deadline)
            } else {
                Phase::Decode(token)
            }
        };
        Ok(())
    }

    /// What the sequence produced (its text decoded by `encoder`).
    pub(crate) fn finish(self, encoder: &PromptEncoder) -> Result<Generation, EngineError> {
        let finish = match self.phase {
            Phase::Done(finish) => finish,
            // Stopped from outside before it was done (not reached by the loops here).
            _ => FinishReason::Deadline,
        };
        let text = encoder.decode(&self.generated)?;
        Ok(Generation {
            text,
            input_tokens: self.prompt.len(),
            reused_tokens: self.reused,
            output_tokens: self.generated.len(),
            finish,
            queued: Duration::ZERO,
            prefill: self.prefill,
            decode: self.decode_started.map_or(Duration::ZERO, |started| started.elapsed()),
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    const VOCAB: usize = 8;
    const STOP: u32 = 7;

    fn request(max_new_tokens: usize) -> GenerationRequest {
        GenerationRequest::new(Vec::new(), max_new_tokens, Instant::now() + Duration::from_secs(60), 1)
    }

    /// Logits that any sampler turns into `token`.
    fn certain(token: u32) -> Tensor {
        let logits: Vec<f32> = (0..VOCAB as u32).map(|t| if t == token { 50.0 } else { -50.0 }).collect();
        Tensor::from_vec(logits, VOCAB, &Device::Cpu).unwrap()
    }

    fn sequence(prompt_len: usize, max_new: usize, chunked: bool) -> Sequence {
        let prompt = (0..prompt_len as u32).map(|t| t % 5).collect();
        Sequence::new(prompt, &request(max_new), &SamplingConfig::default(), 4096, chunked)
    }

    #[test]
    fn a_prompt_is_fed_in_chunks_within_each_passs_budget_then_one_token_a_pass() {
        let mut seq = sequence(300, 4, true);
        let mut fed = Vec::new();
        while seq.is_prefilling() {
            let input = seq.next_input(100).unwrap();
            fed.push(input.len());
            seq.accept(input.len(), &certain(3), Duration::from_millis(1), &[STOP]).unwrap();
        }
        assert_eq!(fed, [100, 100, 100]);
        assert_eq!(seq.next_input(100), Some(vec![3]), "the sampled token is fed next");
        assert_eq!(seq.position(), 300);
    }

    #[test]
    fn a_family_that_cannot_continue_a_prompt_gets_it_whole_whatever_the_budget() {
        let mut seq = sequence(300, 4, false);
        assert_eq!(seq.next_input(16).map(|input| input.len()), Some(300));
    }

    #[test]
    fn a_reused_prefix_is_skipped_but_the_last_prompt_token_is_always_fed() {
        let mut seq = sequence(10, 4, true);
        seq.reuse_prefix(6);
        assert_eq!(seq.next_input(128).unwrap().len(), 4);
        let mut whole = sequence(10, 4, true);
        whole.reuse_prefix(10);
        assert_eq!(whole.next_input(128).unwrap().len(), 1, "the logits of the last token are needed");
    }

    #[test]
    fn a_sequence_ends_at_its_stop_token_or_its_length() {
        let mut stops = sequence(3, 10, true);
        let input = stops.next_input(128).unwrap();
        stops.accept(input.len(), &certain(2), Duration::ZERO, &[STOP]).unwrap();
        stops.accept(1, &certain(STOP), Duration::ZERO, &[STOP]).unwrap();
        assert!(stops.is_done());
        assert_eq!(stops.next_input(128), None);

        let mut long = sequence(3, 2, true);
        let input = long.next_input(128).unwrap();
        long.accept(input.len(), &certain(2), Duration::ZERO, &[STOP]).unwrap();
        assert!(!long.is_done());
        long.accept(1, &certain(4), Duration::ZERO, &[STOP]).unwrap();
        assert!(long.is_done(), "two tokens were the most it could write");
    }
}
