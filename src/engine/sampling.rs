//! Choosing the next token: repeat penalty over the recent context, n-gram blocking over the
//! answer so far, then temperature, top-k and nucleus (top-p) sampling, with stop tokens held
//! back until the answer has a minimum length.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use super::Repetition;
use crate::config::SamplingConfig;

/// The repeat penalty code gets at most: a light one, as code models ship with (Qwen2.5-Coder's
/// own is 1.05). Prose's 1.15 makes a model rename its variables and drop closing brackets; none
/// at all lets a suite of tests loop on one test.
const CODE_REPEAT_PENALTY: f32 = 1.05;

pub struct Sampler {
    processor: LogitsProcessor,
    repeat_penalty: f32,
    repeat_last_n: usize,
    no_repeat_ngram: usize,
}

impl Sampler {
    /// `repetition` says whether the configured repeat penalty and n-gram blocking apply.
    pub fn new(config: &SamplingConfig, seed: u64, repetition: Repetition) -> Self {
        let (temperature, p, k) = (config.temperature, config.top_p, config.top_k);
        let sampling = match (temperature <= 0.0, k) {
            (true, _) => Sampling::ArgMax,
            (false, 0) => Sampling::TopP { p, temperature },
            (false, k) => Sampling::TopKThenTopP { k, p, temperature },
        };
        Self {
            processor: LogitsProcessor::from_sampling(seed, sampling),
            repeat_penalty: match repetition {
                Repetition::Controlled => config.repeat_penalty,
                Repetition::Allowed => config.repeat_penalty.min(CODE_REPEAT_PENALTY),
            },
            repeat_last_n: config.repeat_last_n,
            no_repeat_ngram: match repetition {
                Repetition::Controlled => config.no_repeat_ngram,
                Repetition::Allowed => 0,
            },
        }
    }

    /// Pick the next token from `logits` (one row over the vocabulary). `context` is every token
    /// so far, `answer` the generated part of it; `suppressed` tokens cannot be picked.
    pub fn next_token(
        &mut self,
        logits: &Tensor,
        context: &[u32],
        answer: &[u32],
        suppressed: &[u32],
    ) -> candle_core::Result<u32> {
        let mut logits = logits.squeeze(0)?;
        if logits.rank() != 1 {
            logits = logits.flatten_all()?;
        }
        if self.repeat_penalty > 1.0 && self.repeat_last_n > 0 {
            let recent = &context[context.len().saturating_sub(self.repeat_last_n)..];
            logits = apply_repeat_penalty(&logits, self.repeat_penalty, recent)?;
        }
        let mut banned = repeating_tokens(answer, self.no_repeat_ngram);
        banned.extend_from_slice(suppressed);
        if !banned.is_empty() {
            let mut values = logits.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            let allowed_before = values.iter().filter(|v| v.is_finite()).count();
            for &id in &banned {
                if let Some(v) = values.get_mut(id as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
            // Blocking never leaves the model without a choice: if it would, sample unblocked.
            if banned.len() < allowed_before {
                let len = values.len();
                logits = Tensor::from_vec(values, len, logits.device())?;
            }
        }
        self.processor.sample(&logits)
    }
}

/// Tokens that would complete a run of `n` tokens already present in `answer`: wherever the
/// answer's last `n - 1` tokens occurred before, the token that followed them then.
fn repeating_tokens(answer: &[u32], n: usize) -> Vec<u32> {
    if n < 2 || answer.len() < n {
        return Vec::new();
    }
    let tail = &answer[answer.len() - (n - 1)..];
    answer.windows(n).filter(|window| &window[..n - 1] == tail).map(|window| window[n - 1]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(no_repeat_ngram: usize) -> SamplingConfig {
        SamplingConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            no_repeat_ngram,
        }
    }

    #[test]
    fn the_token_that_would_repeat_a_run_is_found() {
        // "a b c d a b c" -> with n = 4 the next "d" would repeat "a b c d".
        assert_eq!(repeating_tokens(&[1, 2, 3, 4, 1, 2, 3], 4), vec![4]);
        assert_eq!(repeating_tokens(&[1, 2, 3, 4, 1, 2, 9], 4), Vec::<u32>::new());
        assert_eq!(repeating_tokens(&[1, 2, 3], 4), Vec::<u32>::new());
        assert_eq!(repeating_tokens(&[1, 2, 1, 2, 1, 2], 0), Vec::<u32>::new());
    }

    #[test]
    fn a_loop_the_model_prefers_is_broken() {
        // Logits that always prefer token 4, then 3: greedy decoding after "1 2 3 4 1 2 3" would
        // say 4 again; blocking makes it pick the runner-up.
        let logits = Tensor::new(&[[0.0f32, 0.1, 0.2, 0.5, 0.9]], &candle_core::Device::Cpu).unwrap();
        let answer = [1, 2, 3, 4, 1, 2, 3];
        let mut blocked = Sampler::new(&config(4), 0, Repetition::Controlled);
        assert_eq!(blocked.next_token(&logits, &answer, &answer, &[]).unwrap(), 3);
        let mut free = Sampler::new(&config(4), 0, Repetition::Allowed);
        assert_eq!(free.next_token(&logits, &answer, &answer, &[]).unwrap(), 4);
    }

    #[test]
    fn code_gets_only_a_light_repeat_penalty() {
        // Token 4 leads and was just used: a penalty of 2 halves it below token 3; code's light
        // one leaves it first.
        let logits = Tensor::new(&[[0.0f32, 0.1, 0.2, 0.5, 0.9]], &candle_core::Device::Cpu).unwrap();
        let penalised = SamplingConfig { repeat_penalty: 2.0, repeat_last_n: 8, ..config(0) };
        let context = [4];
        let mut prose = Sampler::new(&penalised, 0, Repetition::Controlled);
        assert_eq!(prose.next_token(&logits, &context, &[], &[]).unwrap(), 3);
        let mut code = Sampler::new(&penalised, 0, Repetition::Allowed);
        assert_eq!(code.next_token(&logits, &context, &[], &[]).unwrap(), 4);
    }
}
