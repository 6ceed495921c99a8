//! Choosing the next token: repeat penalty over the recent context, n-gram blocking over the
//! answer so far, then temperature, top-k and nucleus (top-p) sampling, with stop tokens held
//! back until the answer has a minimum length.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use crate::config::SamplingConfig;

pub struct Sampler {
    processor: LogitsProcessor,
    repeat_penalty: f32,
    repeat_last_n: usize,
    no_repeat_ngram: usize,
}

impl Sampler {
    /// `no_repeat_ngram` overrides the configured n-gram length for this answer.
    pub fn new(config: &SamplingConfig, seed: u64, no_repeat_ngram: Option<usize>) -> Self {
        let (temperature, p, k) = (config.temperature, config.top_p, config.top_k);
        let sampling = match (temperature <= 0.0, k) {
            (true, _) => Sampling::ArgMax,
            (false, 0) => Sampling::TopP { p, temperature },
            (false, k) => Sampling::TopKThenTopP { k, p, temperature },
        };
        Self {
            processor: LogitsProcessor::from_sampling(seed, sampling),
            repeat_penalty: config.repeat_penalty,
            repeat_last_n: config.repeat_last_n,
            no_repeat_ngram: no_repeat_ngram.unwrap_or(config.no_repeat_ngram),
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
        let mut blocked = Sampler::new(&config(4), 0, None);
        assert_eq!(blocked.next_token(&logits, &answer, &answer, &[]).unwrap(), 3);
        let mut free = Sampler::new(&config(4), 0, Some(0));
        assert_eq!(free.next_token(&logits, &answer, &answer, &[]).unwrap(), 4);
    }
}
