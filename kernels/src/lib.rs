//! CPU matmul kernels for the GGUF quantisations of the catalog's files, on AVX2 or AVX-512
//! chosen at run time ([`Tier`]; `BIDDER_CPU_FEATURES` forces a lower one).
//!
//! candle 0.11 multiplies Q4_1 and Q5_0 with plain Rust loops and the other types one token at a
//! time: on SmolLM2-135M Q4_1 that loop is more than half of every decode step. Here Q4_0, Q4_1
//! and Q5_0 with a multiple of 16 rows are regrouped sixteen rows side by side ([`rows16`]), as
//! are Q4_K, Q5_K and Q6_K below AVX-512 VNNI ([`k_rows16`]), and Q8_0 and other row counts
//! ([`block32`], [`Q4_1Matrix`]), Q4_K and Q6_K at the AVX-512 tier ([`k_quants`]) have kernels
//! of their own on ggml's blocks, viewed in candle's storage where they can be (no second
//! copy; the regrouped ones replace the original). All multiply against activations quantised
//! to 8 bits, like ggml's dot products; rows of the weight matrix are shared out over rayon's
//! pool (the one candle's float ops use), and each unpacked weight block serves several
//! activation rows, so a prefill reads the weights once per pass of several tokens instead of
//! once per token.
//!
//! Beside the matmuls, the other work of a decode step that grows with the sequences in a batch:
//! one token's attention over an `f16` KV cache ([`attention`]) and the exponentials of the
//! feed-forward gate and the softmax ([`activation`]), in AVX2 or AVX-512 registers.
//!
//! This lives in its own crate so it is compiled optimised even in the test profile, where the
//! `bidder` crate itself stays at opt-level 0 for fast rebuilds.

pub mod activation;
pub mod attention;
mod block32;
mod ggml;
mod k_quants;
mod k_quants_avx2;
mod k_rows16;
mod q4_1;
mod rows16;
mod tier;

pub use ggml::{CpuMatrix, GgmlMatrix, cpu_matrix, cpu_matrix_view};
pub use q4_1::{Q4_1Matrix, ShapeError};
pub use tier::{CpuFeatures, TIER_VARIABLE, Tier, TierError};

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
