//! Rotary position embeddings: the cos/sin tables for every position of the context.

use candle_core::{DType, Device, Result, Tensor};

/// Rotary position embedding tables and which pairing of dimensions the file expects.
pub(super) struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// llama GGUFs store q/k permuted for adjacent pairs (ggml's "normal" rope); qwen2 pairs
    /// dimension `i` with `i + head_dim / 2` ("neox").
    pub(super) interleaved: bool,
}

impl Rope {
    pub(super) fn new(
        head_dim: usize,
        base: f32,
        freq_factors: Option<Vec<f32>>,
        max_positions: usize,
        device: &Device,
    ) -> Result<Self> {
        let inverse_frequencies: Vec<f32> = (0..head_dim / 2)
            .map(|i| {
                let factor = freq_factors.as_ref().and_then(|f| f.get(i).copied()).unwrap_or(1.0);
                1.0 / (base.powf(2.0 * i as f32 / head_dim as f32) * factor)
            })
            .collect();
        let inverse_frequencies = Tensor::new(inverse_frequencies.as_slice(), device)?.unsqueeze(0)?;
        let positions = Tensor::arange(0, max_positions as u32, device)?.to_dtype(DType::F32)?.unsqueeze(1)?;
        let angles = positions.matmul(&inverse_frequencies)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()?, interleaved: false })
    }

    /// `x` is `[1, heads, seq, head_dim]`, its first token at `position`.
    pub(super) fn apply(&self, x: &Tensor, position: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, position, seq)?;
        let sin = self.sin.narrow(0, position, seq)?;
        self.rotate(x, &cos, &sin)
    }

    /// `x` is `[n, heads, 1, head_dim]`: one token of each of `n` sequences, token `i` at
    /// `positions[i]` (a batch of decode steps, rotated in one operation).
    pub(super) fn apply_rows(&self, x: &Tensor, positions: &[u32]) -> Result<Tensor> {
        let rows = Tensor::from_slice(positions, positions.len(), x.device())?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&rows, 0)?.reshape((positions.len(), 1, half))?;
        let sin = self.sin.index_select(&rows, 0)?.reshape((positions.len(), 1, half))?;
        self.rotate(x, &cos, &sin)
    }

    fn rotate(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.interleaved {
            candle_nn::rotary_emb::rope_i(x, cos, sin)
        } else {
            candle_nn::rotary_emb::rope(x, cos, sin)
        }
    }
}
