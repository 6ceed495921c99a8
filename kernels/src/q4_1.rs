//! `Q4_1` weights × f32 activations.
//!
//! A ggml `block_q4_1` holds 32 weights as `d * q + m` with `q` in 0..16: two f16s and 16 bytes
//! of nibbles (low nibbles are weights 0..16, high nibbles 16..32). Activations are quantised per
//! block of 32 to `i8` with a scale `d` and the block's `d * Σq`, so one block's dot product is
//! `d_w * d_a * Σ q_w q_a + m_w * (d_a Σ q_a)`: integer multiply-adds and two float terms.

use std::fmt;

use candle_core::quantized::GgmlDType;
use half::f16;
use rayon::prelude::*;

use crate::ggml::{CpuMatrix, ROW_GROUP, SharedOutput, check_block_bytes, check_row, check_shapes, run_in_parallel};
use crate::tier::{CpuFeatures, Tier};

/// Weights per block, in ggml's Q4_1 and in our 8-bit activation blocks alike.
const BLOCK: usize = 32;
/// Bytes of one ggml `block_q4_1`: f16 scale, f16 minimum, 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;

#[derive(Clone, Copy)]
#[repr(C)]
struct WeightBlock {
    d: f16,
    m: f16,
    qs: [u8; BLOCK / 2],
}

/// 32 activations quantised to `i8` (also the activations of [`crate::block32`]'s kernels).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct ActivationBlock {
    pub(crate) qs: [i8; BLOCK],
    pub(crate) d: f32,
    /// `d * Σ qs`: what the weights' minimum (or offset) multiplies.
    pub(crate) s: f32,
}

/// The bytes or the shape given for a matrix do not fit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub(crate) String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// A `rows × cols` Q4_1 weight matrix (ggml layout: row-major, each row `cols / 32` blocks),
/// as a linear layer stores it: `rows` outputs, `cols` inputs.
pub struct Q4_1Matrix {
    blocks: Vec<WeightBlock>,
    rows: usize,
    cols: usize,
    /// What the kernels may use: the tier's instructions on this CPU.
    features: CpuFeatures,
}

impl Q4_1Matrix {
    /// Take a matrix from the raw bytes of a GGUF `Q4_1` tensor of `rows × cols`, for the
    /// kernels of `tier`.
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize, tier: Tier) -> Result<Self, ShapeError> {
        check_block_bytes(GgmlDType::Q4_1, bytes, rows, cols, BLOCK, BLOCK_BYTES)?;
        let blocks = bytes
            .chunks_exact(BLOCK_BYTES)
            .map(|b| WeightBlock {
                d: f16::from_le_bytes([b[0], b[1]]),
                m: f16::from_le_bytes([b[2], b[3]]),
                qs: b[4..].try_into().expect("16 bytes of nibbles"),
            })
            .collect();
        Ok(Self { blocks, rows, cols, features: tier.features() })
    }
}

impl CpuMatrix for Q4_1Matrix {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let blocks_per_row = self.cols / BLOCK;
        let activations = quantize_activations(x);
        let activation_row = |t: usize| &activations[t * blocks_per_row..(t + 1) * blocks_per_row];
        let features = self.features;
        let out_rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        let row_products = |rows: std::ops::Range<usize>| {
            // Not `ggml::dot_every_token`: routed through it, this loop measured 30% slower on a
            // SmolLM2 prefill (614 -> 410 tokens/s), for reasons the generated code did not show.
            for row in rows {
                let weights = &self.blocks[row * blocks_per_row..(row + 1) * blocks_per_row];
                let mut t = 0;
                while t < m {
                    let group = (m - t).min(ROW_GROUP);
                    let mut sums = [0f32; ROW_GROUP];
                    let rows = |i: usize| activation_row(t + i);
                    match group {
                        4 => sums = dot::<4>(features, weights, std::array::from_fn(rows)),
                        3 => sums[..3].copy_from_slice(&dot::<3>(features, weights, std::array::from_fn(rows))),
                        2 => sums[..2].copy_from_slice(&dot::<2>(features, weights, std::array::from_fn(rows))),
                        _ => sums[..1].copy_from_slice(&dot::<1>(features, weights, std::array::from_fn(rows))),
                    }
                    for (i, sum) in sums[..group].iter().enumerate() {
                        // SAFETY: each call owns its weight rows, i.e. its own output columns,
                        // and `t + i < m`: writes never overlap and stay inside `out`.
                        unsafe { out.write((t + i) * out_rows + row, *sum) };
                    }
                    t += group;
                }
            }
        };
        run_in_parallel(self.rows, m * self.cols, row_products);
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_row(row, out, self.rows, self.cols)?;
        let blocks_per_row = self.cols / BLOCK;
        let weights = &self.blocks[row * blocks_per_row..(row + 1) * blocks_per_row];
        for (w, values) in weights.iter().zip(out.chunks_exact_mut(BLOCK)) {
            let (d, m) = (w.d.to_f32(), w.m.to_f32());
            for j in 0..BLOCK / 2 {
                values[j] = d * (w.qs[j] & 0x0F) as f32 + m;
                values[j + BLOCK / 2] = d * (w.qs[j] >> 4) as f32 + m;
            }
        }
        Ok(())
    }
}

/// Blocks of activations one thread quantises before sharing the rest out: a prefill chunk's
/// inputs (128 × 1536 values) are worth splitting, a decode step's are not.
const QUANTIZE_BLOCKS_PER_TASK: usize = 512;

pub(crate) fn quantize_activations(x: &[f32]) -> Vec<ActivationBlock> {
    #[cfg(target_arch = "x86_64")]
    let vectorised = is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let vectorised = false;
    x.par_chunks_exact(BLOCK)
        .with_min_len(QUANTIZE_BLOCKS_PER_TASK)
        .map(|values| {
            #[cfg(target_arch = "x86_64")]
            if vectorised {
                // SAFETY: the CPU has AVX2 (checked above).
                return unsafe { quantize_block_avx2(values) };
            }
            quantize_block(values)
        })
        .collect()
}

/// One block to `i8`, rounding to the nearest (ties to even, as ggml does).
#[inline(always)]
fn quantize_block(values: &[f32]) -> ActivationBlock {
    let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut qs = [0i8; BLOCK];
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(values) {
        *q = (v * inverse).round_ties_even() as i8;
        sum += *q as i32;
    }
    ActivationBlock { qs, d, s: d * sum as f32 }
}

/// The same loop compiled for AVX2, where the rounding is one vector instruction rather than
/// a library call per value (the same bytes).
///
/// # Safety
/// Only where the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(values: &[f32]) -> ActivationBlock {
    quantize_block(values)
}

/// Dot products of one weight row with `R` activation rows, one block at a time.
fn dot<const R: usize>(
    features: CpuFeatures,
    weights: &[WeightBlock],
    activations: [&[ActivationBlock]; R],
) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each kernel only where the tier's features include its instructions.
        if features.avx512_vnni {
            return unsafe { dot_avx512_vnni(weights, activations) };
        }
        if features.avx_vnni {
            return unsafe { dot_avx_vnni(weights, activations) };
        }
        if features.avx2 {
            return unsafe { dot_avx2(weights, activations) };
        }
    }
    let _ = features;
    dot_portable(weights, activations)
}

fn dot_portable<const R: usize>(weights: &[WeightBlock], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    let mut sums = [0f32; R];
    for (i, w) in weights.iter().enumerate() {
        let (d, m) = (w.d.to_f32(), w.m.to_f32());
        for (sum, row) in sums.iter_mut().zip(&activations) {
            let a = &row[i];
            let mut integer = 0i32;
            for j in 0..BLOCK / 2 {
                integer += (w.qs[j] & 0x0F) as i32 * a.qs[j] as i32;
                integer += (w.qs[j] >> 4) as i32 * a.qs[j + BLOCK / 2] as i32;
            }
            *sum += d * a.d * integer as f32 + m * a.s;
        }
    }
    sums
}

/// Independent accumulators per activation row, so consecutive blocks do not wait on one
/// another's fused multiply-add (4 cycles of latency each): with one row, a single chain would
/// cap a decode step at a quarter of what the core can issue.
const CHAINS: usize = 4;

/// The 256-bit Q4_1 kernel, for `R` activation rows, given the target features it is compiled
/// for and how it multiplies 32 unpacked weights (`u8`) with 32 quants (`i8`) into eight `i32`
/// sums of four products.
macro_rules! dot_256 {
    ($(#[$doc:meta])* $name:ident, $features:literal, |$unpacked:ident, $quants:ident| $products:expr) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize>(weights: &[WeightBlock], activations: [&[ActivationBlock]; R]) -> [f32; R] {
            use std::arch::x86_64::*;

            for row in &activations {
                assert_eq!(row.len(), weights.len());
            }
            let low_nibbles = _mm_set1_epi8(0x0F);
            // Several tokens are independent chains already; one token needs its own. Blocks
            // go `chains` at a time with the chain as a constant-bounded inner loop, so the
            // compiler unrolls it and every accumulator stays in a register (indexed by
            // `i % chains`, they lived on the stack and each block waited on a store).
            let chains = if R == 1 { CHAINS } else { 1 };
            let mut acc = [[_mm256_setzero_ps(); CHAINS]; R];
            let mut minimum_terms = [[0f32; CHAINS]; R];
            let mut block = |i: usize, chain: usize| {
                let w = &weights[i];
                // SAFETY: `qs` is 16 bytes; unaligned loads.
                let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
                let low = _mm_and_si128(packed, low_nibbles);
                let high = _mm_and_si128(_mm_srli_epi16::<4>(packed), low_nibbles);
                let $unpacked = _mm256_set_m128i(high, low);
                let (d, m) = (w.d.to_f32(), w.m.to_f32());
                for r in 0..R {
                    // SAFETY: every activation row has as many blocks as the weight row (asserted above).
                    let a = unsafe { activations[r].get_unchecked(i) };
                    let $quants = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
                    let products = $products;
                    acc[r][chain] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), _mm256_set1_ps(d * a.d), acc[r][chain]);
                    minimum_terms[r][chain] += m * a.s;
                }
            };
            let whole = weights.len() / chains * chains;
            for base in (0..whole).step_by(chains) {
                for chain in 0..chains {
                    block(base + chain, chain);
                }
            }
            for i in whole..weights.len() {
                block(i, 0);
            }
            let mut sums = [0f32; R];
            for r in 0..R {
                let [a, b, c, e] = acc[r];
                let total = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e));
                // SAFETY: AVX is enabled for this function.
                sums[r] = unsafe { crate::ggml::sum_lanes(total) } + minimum_terms[r].iter().sum::<f32>();
            }
            sums
        }
    };
}

dot_256!(
    /// AVX2: u8 × i8 pairs summed to i16 (15·127·2 fits), then pairs of those to i32.
    dot_avx2,
    "avx2,fma",
    |unpacked, quants| _mm256_madd_epi16(_mm256_maddubs_epi16(unpacked, quants), _mm256_set1_epi16(1))
);

dot_256!(
    /// AVX-512 VNNI on 256-bit registers: `vpdpbusd` sums four u8 × i8 products straight to
    /// i32. (A 512-bit kernel taking two blocks per register measured slower for a decode step
    /// than this one, and for a prefill too.)
    dot_avx512_vnni,
    "avx2,fma,avx512f,avx512vl,avx512vnni",
    |unpacked, quants| _mm256_dpbusd_epi32(_mm256_setzero_si256(), unpacked, quants)
);

dot_256!(
    /// AVX-VNNI (the VEX form, on CPUs without AVX-512): the same instruction.
    dot_avx_vnni,
    "avx2,fma,avxvnni",
    |unpacked, quants| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), unpacked, quants)
);

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;
    use crate::test_support::{rms_error, values};

    fn quantized(rows: usize, cols: usize, seed: u64, tier: Tier) -> (QTensor, Q4_1Matrix) {
        let w = Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let ours = Q4_1Matrix::from_ggml_bytes(&q.data().unwrap(), rows, cols, tier).unwrap();
        (q, ours)
    }

    /// Against the exact product with the dequantised weights, compared with candle's own
    /// Q4_1 × Q8_1 path (the same arithmetic in a scalar loop, with f16 activation scales): at
    /// least as accurate, for every shape a prefill chunk or a decode step produces and for
    /// row counts that are not a multiple of four, on every tier this CPU runs.
    #[test]
    fn as_accurate_as_candle_for_decode_and_prefill_shapes() {
        let shapes = [(192, 576), (576, 576), (1536, 576), (576, 1536), (35, 64)];
        for ((rows, cols), tier) in shapes.into_iter().flat_map(|shape| Tier::supported().map(move |t| (shape, t))) {
            let (q, ours) = quantized(rows, cols, rows as u64 * 31 + cols as u64, tier);
            let dequantized = q.dequantize(&Device::Cpu).unwrap();
            let candle = QMatMul::from_qtensor(q).unwrap();
            for m in [1, 2, 3, 4, 5, 9, 128] {
                let x = values(m * cols, m as u64);
                let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
                let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
                let exact = flat(xt.matmul(&dequantized.t().unwrap()).unwrap());
                let candle_error = rms_error(&flat(candle.forward(&xt).unwrap()), &exact);
                let mut got = vec![0f32; m * rows];
                ours.matmul(&x, &mut got).unwrap();
                let our_error = rms_error(&got, &exact);
                let scale = rms_error(&exact, &vec![0.0; exact.len()]);
                assert!(
                    our_error <= candle_error * 1.25 + 1e-6 * scale && our_error < 0.02 * scale,
                    "{tier}: {rows}×{cols}, m={m}: error {our_error} vs candle's {candle_error} (outputs ~{scale})"
                );
            }
        }
    }

    #[test]
    fn the_portable_loop_agrees_with_the_simd_one() {
        let (_, ours) = quantized(8, 256, 7, Tier::Generic);
        let activations = quantize_activations(&values(3 * 256, 9));
        let rows: [&[ActivationBlock]; 3] = [0, 1, 2].map(|t| &activations[t * 8..(t + 1) * 8]);
        for row in 0..8 {
            let weights = &ours.blocks[row * 8..(row + 1) * 8];
            let portable = dot_portable(weights, rows);
            let features = CpuFeatures::detected();
            // Each tier, and the VEX AVX-VNNI kernel where the CPU also has AVX-512 VNNI (which
            // the avx512 tier prefers), and one row at a time (a decode step's kernel).
            let variants =
                Tier::supported().map(Tier::features).chain([CpuFeatures { avx512_vnni: false, ..features }]);
            for variant in variants {
                let one = dot(variant, weights, [rows[0]]);
                for (a, b) in dot(variant, weights, rows).iter().chain(&one).zip(portable.iter().chain(&portable[..1]))
                {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{variant:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_errors_not_panics() {
        assert!(Q4_1Matrix::from_ggml_bytes(&[0; 20], 1, 33, Tier::Generic).is_err());
        assert!(Q4_1Matrix::from_ggml_bytes(&[0; 19], 1, 32, Tier::Generic).is_err());
        let m = Q4_1Matrix::from_ggml_bytes(&[0; 40], 2, 32, Tier::Generic).unwrap();
        assert!(m.matmul(&[0.0; 31], &mut [0.0; 2]).is_err());
        assert!(m.matmul(&[0.0; 32], &mut [0.0; 3]).is_err());
        let mut out = [1.0; 2];
        m.matmul(&[0.0; 32], &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
    }
}
