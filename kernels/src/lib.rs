//! CPU matmul kernels for GGUF quantisations that candle multiplies with a scalar loop.
//!
//! candle 0.11 has SIMD (and repacked AVX-512 VNNI) kernels for Q4_0, Q8_0 and the K-quants,
//! but a Q4_1 weight goes through a plain Rust loop: on SmolLM2-135M Q4_1 that loop is more than
//! half of every decode step. [`Q4_1Matrix`] keeps the weights in ggml's own 20-byte blocks (no
//! repack, so no second copy in memory) and multiplies them against activations quantised to
//! 8 bits per block, like ggml's `q4_1 × q8_1` dot product: AVX2 where the CPU has it, a
//! portable loop elsewhere. Rows of the weight matrix are shared out over rayon's pool (the one
//! candle's float ops use), and each weight block is unpacked once for up to four activation rows, so a
//! prefill reads the weights once per four tokens instead of once per token.
//!
//! This lives in its own crate so it is compiled optimised even in the test profile, where the
//! `bidder` crate itself stays at opt-level 0 for fast rebuilds.

mod ggml;
mod k_quants;
mod q4_1;

pub use ggml::{CpuMatrix, GgmlMatrix, cpu_matrix, cpu_matrix_view};
pub use q4_1::{Q4_1Matrix, ShapeError};

#[cfg(test)]
mod test_support {
    /// Deterministic values in about [-1, 1] with some larger outliers, like real weights.
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let unit = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                if i % 97 == 0 { unit * 4.0 } else { unit }
            })
            .collect()
    }

    /// Root-mean-square difference of two equally long vectors.
    pub fn rms_error(a: &[f32], b: &[f32]) -> f32 {
        (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.len() as f32).sqrt()
    }
}
