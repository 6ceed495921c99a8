//! Choosing the next token: repeat penalty over the recent context, then temperature, top-k and
//! nucleus (top-p) sampling, with stop tokens held back until the answer has a minimum length.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use crate::config::SamplingConfig;

pub struct Sampler {
    processor: LogitsProcessor,
    repeat_penalty: f32,
    repeat_last_n: usize,
}

impl Sampler {
    pub fn new(config: &SamplingConfig, seed: u64) -> Self {
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
        }
    }

    /// Pick the next token from `logits` (one row over the vocabulary). `context` is every token
    /// so far; `suppressed` tokens cannot be picked.
    pub fn next_token(&mut self, logits: &Tensor, context: &[u32], suppressed: &[u32]) -> candle_core::Result<u32> {
        let mut logits = logits.squeeze(0)?;
        if logits.rank() != 1 {
            logits = logits.flatten_all()?;
        }
        if self.repeat_penalty > 1.0 && self.repeat_last_n > 0 {
            let recent = &context[context.len().saturating_sub(self.repeat_last_n)..];
            logits = apply_repeat_penalty(&logits, self.repeat_penalty, recent)?;
        }
        if !suppressed.is_empty() {
            let mut values = logits.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            for &id in suppressed {
                if let Some(v) = values.get_mut(id as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
            let len = values.len();
            logits = Tensor::from_vec(values, len, logits.device())?;
        }
        self.processor.sample(&logits)
    }
}
