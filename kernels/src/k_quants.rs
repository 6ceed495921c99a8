//! `Q4_K` and `Q6_K` weights × f32 activations with AVX-512 BW or AVX2, for decode steps (and
//! prefill where candle's repacked kernels are not used).
//!
//! These are the two types of ggml's "K_M" mixes (Q4_K for most matrices; Q6_K for the
//! largest of all, the output projection — 151936 × 1536 on Qwen2.5-1.5B — and half the down
//! projections). candle's AVX2 dot products for them were 31% and 46% of a Qwen decode step.
//! Both types hold 256 weights per block; activations are quantised per 256 to `i8` with one
//! scale and the sums of each 16, and 64 weights at a time go through one 512-bit `vpmaddubsw`
//! (unsigned quant × signed activation, pairs to i16) and one `vpmaddwd` against the block's
//! scales (pairs to i32); the AVX2 kernels ([`crate::k_quants_avx2`]) do the same 32 at a time.
//!
//! * `block_q6_k`: 4 low bits in `ql`, 2 high bits in `qh`, one signed 8-bit scale per 16
//!   weights and an f16 `d`; a weight is `d * scale * (q - 32)` with `q` in 0..64. The `- 32`
//!   becomes one small dot product of the activation sums with the scales.
//! * `block_q4_k`: f16 `d` and `dmin`, eight 6-bit scales and eight 6-bit minimums packed in 12
//!   bytes, 4-bit quants; a weight is `d * scale * q - dmin * min` for its 32-weight sub-block.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use crate::ShapeError;
use crate::ggml::{
    Blocks, CpuMatrix, SharedOutput, TokenDots, check_row, check_shapes, dot_every_token, run_in_parallel,
};
use crate::tier::{CpuFeatures, Tier};

const QK: usize = 256;
/// Blocks of activations one thread quantises before sharing the rest out (a prefill chunk's
/// inputs are worth splitting, a decode step's are not).
pub(crate) const QUANTIZE_BLOCKS_PER_TASK: usize = 64;

/// ggml's `block_q6_k`, byte for byte (candle's `BlockQ6K` has the same layout).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ6K {
    pub(crate) ql: [u8; QK / 2],
    pub(crate) qh: [u8; QK / 4],
    pub(crate) scales: [i8; QK / 16],
    pub(crate) d: half::f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// 256 activations as `i8` with one scale, and the sum of each 16.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct ActivationBlock {
    pub(crate) qs: [i8; QK],
    pub(crate) sums: [i16; QK / 16],
    pub(crate) d: f32,
}

/// Whether the kernels run at `tier` on this CPU (else callers use candle's dot products).
pub fn available(tier: Tier) -> bool {
    tier.features().avx2
}

/// A block type with a kernel here.
pub(crate) trait KBlock: Copy + Send + Sync + 'static {
    const DTYPE: GgmlDType;
    /// Dot products of one weight row with up to [`crate::ggml::ROW_GROUP`] activation rows: `R` rows, each
    /// as long as `weights`; the block is unpacked once for all of them.
    ///
    /// # Safety
    /// Only where `features` has AVX2 (and it is the CPU's).
    unsafe fn dot<const R: usize>(
        features: CpuFeatures,
        weights: &[Self],
        activations: [&[ActivationBlock]; R],
    ) -> [f32; R];
    fn dequantize(&self, out: &mut [f32]);
}

pub struct KMatrix<B: KBlock> {
    blocks: Blocks<B>,
    rows: usize,
    cols: usize,
    features: CpuFeatures,
}

/// A view of a 2-D Q4_K or Q6_K CPU tensor with the kernels of `tier`, where [`available`].
pub fn view(tensor: &Arc<QTensor>, tier: Tier) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
    if !available(tier) {
        return Ok(None);
    }
    match tensor.dtype() {
        GgmlDType::Q4K => Ok(Some(Box::new(KMatrix::<BlockQ4K>::view(tensor.clone(), tier)?))),
        GgmlDType::Q6K => Ok(Some(Box::new(KMatrix::<BlockQ6K>::view(tensor.clone(), tier)?))),
        _ => Ok(None),
    }
}

impl<B: KBlock> KMatrix<B> {
    fn view(tensor: Arc<QTensor>, tier: Tier) -> Result<Self, ShapeError> {
        let (rows, cols) = tensor.shape().dims2().map_err(|e| ShapeError(e.to_string()))?;
        if !cols.is_multiple_of(QK) {
            return Err(ShapeError(format!("{:?} rows must be a multiple of {QK} wide, not {cols}", B::DTYPE)));
        }
        let blocks = Blocks::view(tensor, B::DTYPE, rows * cols / QK)?;
        Ok(Self { blocks, rows, cols, features: tier.features() })
    }

    fn row(&self, row: usize) -> &[B] {
        let per_row = self.cols / QK;
        &self.blocks.as_slice()[row * per_row..(row + 1) * per_row]
    }
}

impl<B: KBlock> CpuMatrix for KMatrix<B> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let per_row = self.cols / QK;
        let activations: Vec<ActivationBlock> =
            x.par_chunks_exact(QK).with_min_len(QUANTIZE_BLOCKS_PER_TASK).map(quantize).collect();
        let rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        run_in_parallel(rows, m * self.cols, |range| {
            for row in range {
                let dots =
                    RowDots { weights: self.row(row), activations: &activations, per_row, features: self.features };
                // SAFETY: each call owns its weight rows, i.e. its own output columns, and
                // `t < m`: writes never overlap and stay inside `out`.
                dot_every_token(m, &dots, |t, value| unsafe { out.write(t * rows + row, value) });
            }
        });
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_row(row, out, self.rows, self.cols)?;
        for (block, values) in self.row(row).iter().zip(out.chunks_exact_mut(QK)) {
            block.dequantize(values);
        }
        Ok(())
    }
}

/// One weight row of a [`KMatrix`] and the quantised activations it meets.
struct RowDots<'a, B> {
    weights: &'a [B],
    activations: &'a [ActivationBlock],
    per_row: usize,
    features: CpuFeatures,
}

impl<B: KBlock> TokenDots for RowDots<'_, B> {
    fn dots<const R: usize>(&self, first: usize) -> [f32; R] {
        let rows =
            std::array::from_fn(|i| &self.activations[(first + i) * self.per_row..(first + i + 1) * self.per_row]);
        // SAFETY: a `KMatrix` is only made where `available()`: its features include AVX2.
        unsafe { B::dot::<R>(self.features, self.weights, rows) }
    }
}

impl KBlock for BlockQ6K {
    const DTYPE: GgmlDType = GgmlDType::Q6K;

    unsafe fn dot<const R: usize>(
        features: CpuFeatures,
        weights: &[Self],
        activations: [&[ActivationBlock]; R],
    ) -> [f32; R] {
        // SAFETY: passed on from the caller; AVX-512 only where the tier's features have it.
        unsafe {
            match features.avx512 {
                true => dot_q6k(weights, activations),
                false => crate::k_quants_avx2::dot_q6k(weights, activations),
            }
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (i, value) in out.iter_mut().enumerate() {
            *value = d * self.scales[i / 16] as f32 * (q6_quant(self, i) as f32 - 32.0);
        }
    }
}

/// ggml's `block_q4_k`, byte for byte (candle's `BlockQ4K` has the same layout).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4K {
    pub(crate) d: half::f16,
    pub(crate) dmin: half::f16,
    pub(crate) scales: [u8; 12],
    pub(crate) qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

impl BlockQ4K {
    /// The eight 6-bit scales and the eight 6-bit minimums, unpacked to one byte each (packed
    /// little-endian in a `u64`, so the kernel takes them from registers, not through memory).
    /// The 12 bytes hold, for sub-blocks 0..4, scale and minimum in the low 6 bits of bytes
    /// `j` and `j + 4`; for sub-blocks 4..8, their low 4 bits in the two nibbles of byte
    /// `j + 8` and their high 2 bits in the top bits of bytes `j` and `j + 4`.
    pub(crate) fn scales_and_mins(&self) -> (u64, u64) {
        let word = |i: usize| u32::from_le_bytes(self.scales[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let (a, b, c) = (word(0), word(1), word(2));
        let scales_low = a & 0x3F3F_3F3F;
        let mins_low = b & 0x3F3F_3F3F;
        let scales_high = (c & 0x0F0F_0F0F) | (((a >> 6) & 0x0303_0303) << 4);
        let mins_high = ((c >> 4) & 0x0F0F_0F0F) | (((b >> 6) & 0x0303_0303) << 4);
        (scales_low as u64 | (scales_high as u64) << 32, mins_low as u64 | (mins_high as u64) << 32)
    }
}

impl KBlock for BlockQ4K {
    const DTYPE: GgmlDType = GgmlDType::Q4K;

    unsafe fn dot<const R: usize>(
        features: CpuFeatures,
        weights: &[Self],
        activations: [&[ActivationBlock]; R],
    ) -> [f32; R] {
        // SAFETY: passed on from the caller; AVX-512 only where the tier's features have it.
        unsafe {
            match features.avx512 {
                true => dot_q4k(weights, activations),
                false => crate::k_quants_avx2::dot_q4k(weights, activations),
            }
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        let (scales, mins) = self.scales_and_mins();
        let (scales, mins) = (scales.to_le_bytes(), mins.to_le_bytes());
        for (i, value) in out.iter_mut().enumerate() {
            let (chunk, within) = (i / 64, i % 64);
            let byte = self.qs[32 * chunk + within % 32];
            let q = if within < 32 { byte & 0x0F } else { byte >> 4 };
            let sub = i / 32;
            *value = d * scales[sub] as f32 * q as f32 - dmin * mins[sub] as f32;
        }
    }
}

/// The 6-bit quant of weight `i` (0..256) of a block, in ggml's layout: each half of 128
/// weights takes 64 bytes of `ql` and 32 of `qh`; weight `l + 32 j` of a half has its low bits
/// in nibble `j / 2` of `ql[l + 32 (j % 2)]` and its high bits at `2 j` in `qh[l]`.
fn q6_quant(block: &BlockQ6K, i: usize) -> u8 {
    let (half, within) = (i / 128, i % 128);
    let (j, l) = (within / 32, within % 32);
    let low = block.ql[64 * half + l + 32 * (j % 2)] >> (4 * (j / 2)) & 0x0F;
    let high = block.qh[32 * half + l] >> (2 * j) & 0x03;
    low | high << 4
}

/// 256 activations (one block of a token's row) to `i8` with one scale, rounding to the
/// nearest (ties to even, as ggml does), and the sums of each 16. Every matmul quantises each
/// token's row once, so on AVX2 this is vectorised: a scalar loop cost a batched decode step
/// of four tokens several milliseconds on Qwen2.5-1.5B. Both ways give the same bytes.
pub(crate) fn quantize(values: &[f32]) -> ActivationBlock {
    assert_eq!(values.len(), QK, "one block of activations");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { quantize_avx2(values) };
    }
    quantize_portable(values)
}

fn quantize_portable(values: &[f32]) -> ActivationBlock {
    let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
    let (d, inverse) = scale_of(amax);
    let mut block = ActivationBlock { qs: [0; QK], sums: [0; QK / 16], d };
    for (q, v) in block.qs.iter_mut().zip(values) {
        *q = (v * inverse).round_ties_even() as i8;
    }
    add_sums(&mut block);
    block
}

/// The block's scale and its inverse for the largest magnitude `amax`.
fn scale_of(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    (d, if d == 0.0 { 0.0 } else { 1.0 / d })
}

fn add_sums(block: &mut ActivationBlock) {
    for (sum, sixteen) in block.sums.iter_mut().zip(block.qs.chunks_exact(16)) {
        *sum = sixteen.iter().map(|&q| q as i16).sum();
    }
}

/// # Safety
/// Only where the CPU has AVX2; `values` holds `QK` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(values: &[f32]) -> ActivationBlock {
    use std::arch::x86_64::*;
    // SAFETY (the loads and stores): `values` holds QK floats (asserted by the caller), `qs`
    // QK bytes; every access is an unaligned one inside them.
    unsafe {
        let magnitude = _mm256_set1_ps(f32::from_bits(0x7FFF_FFFF));
        let mut largest = _mm256_setzero_ps();
        for eight in values.chunks_exact(8) {
            largest = _mm256_max_ps(largest, _mm256_and_ps(_mm256_loadu_ps(eight.as_ptr()), magnitude));
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), largest);
        let (d, inverse) = scale_of(lanes.iter().fold(0f32, |a, &v| a.max(v)));
        let mut block = ActivationBlock { qs: [0; QK], sums: [0; QK / 16], d };
        let inverse = _mm256_set1_ps(inverse);
        // The packs interleave the 128-bit halves; this puts the 32 bytes back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (thirty_two, out) in values.chunks_exact(32).zip(block.qs.chunks_exact_mut(32)) {
            // Round to nearest, ties to even (the default rounding mode).
            let ints: [__m256i; 4] = std::array::from_fn(|i| {
                _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(thirty_two.as_ptr().add(8 * i)), inverse))
            });
            let words = [_mm256_packs_epi32(ints[0], ints[1]), _mm256_packs_epi32(ints[2], ints[3])];
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words[0], words[1]), order);
            _mm256_storeu_si256(out.as_mut_ptr().cast(), bytes);
        }
        add_sums(&mut block);
        block
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dot_q4k<const R: usize>(weights: &[BlockQ4K], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(weights.len(), row.len());
    }
    let low4 = _mm256_set1_epi8(0x0F);
    // Scale index for each i16 lane of a 64-weight chunk: lanes 0..16 hold weights 0..32 of
    // the chunk (sub-block 2c), lanes 16..32 the rest (sub-block 2c + 1).
    let scale_lanes: [__m512i; 4] = std::array::from_fn(|c| {
        let mut idx = [0i16; 32];
        for (p, v) in idx.iter_mut().enumerate() {
            *v = (2 * c + p / 16) as i16;
        }
        // SAFETY: 32 i16 are 64 bytes.
        unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
    });
    let mut acc = [_mm512_setzero_ps(); R];
    let mut minimums = [_mm256_setzero_ps(); R];
    for (b, w) in weights.iter().enumerate() {
        // SAFETY: a hint, on the CPU this kernel is built for.
        unsafe { crate::ggml::prefetch_ahead(std::slice::from_ref(w)) };
        let (scales, mins) = w.scales_and_mins();
        let scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(scales as i64)));
        let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
        let mins = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        let mut sum = [_mm512_setzero_si512(); R];
        for (chunk, lanes) in scale_lanes.iter().enumerate() {
            // SAFETY (loads): fixed-size arrays of the sizes loaded, unaligned loads.
            let packed = unsafe { _mm256_loadu_si256(w.qs.as_ptr().add(32 * chunk).cast()) };
            let low = _mm256_and_si256(packed, low4);
            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low4);
            let quants = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high);
            let lane_scales = _mm512_permutexvar_epi16(*lanes, scales);
            for r in 0..R {
                // SAFETY: `b` is in bounds of every row (asserted above).
                let a = unsafe { activations[r].get_unchecked(b) };
                let x = unsafe { _mm512_loadu_si512(a.qs.as_ptr().add(64 * chunk).cast()) };
                let pairs = _mm512_maddubs_epi16(quants, x);
                sum[r] = _mm512_add_epi32(sum[r], _mm512_madd_epi16(pairs, lane_scales));
            }
        }
        let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
        for r in 0..R {
            let a = unsafe { activations[r].get_unchecked(b) };
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r]), _mm512_set1_ps(d * a.d), acc[r]);
            // dmin · min_j · (sum of the activations of sub-block j = two sums of 16).
            let sums = unsafe { _mm256_loadu_si256(a.sums.as_ptr().cast()) };
            let weighted = _mm256_madd_epi16(sums, mins);
            minimums[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(weighted), _mm256_set1_ps(-dmin * a.d), minimums[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) + _mm512_reduce_add_ps(_mm512_castps256_ps512(minimums[r])))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dot_q6k<const R: usize>(weights: &[BlockQ6K], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(weights.len(), row.len());
    }
    let low4 = _mm512_set1_epi8(0x0F);
    let low2 = _mm512_set1_epi8(0x03);
    // Scale index for each i16 lane of a 64-weight group: lane p holds weights 2p and 2p+1,
    // so lanes 8s..8s+8 belong to scale s of the group's four.
    let scale_lanes: [__m512i; 4] = std::array::from_fn(|g| {
        let mut idx = [0i16; 32];
        for (p, v) in idx.iter_mut().enumerate() {
            *v = (4 * g + p / 8) as i16;
        }
        // SAFETY: 32 i16 are 64 bytes.
        unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
    });
    let mut acc = [_mm512_setzero_ps(); R];
    let mut offsets = [_mm256_setzero_ps(); R];
    for (b, w) in weights.iter().enumerate() {
        // SAFETY: a hint, on the CPU this kernel is built for.
        unsafe { crate::ggml::prefetch_ahead(std::slice::from_ref(w)) };
        // SAFETY (all loads below): fixed-size arrays of the sizes loaded, unaligned loads;
        // `b` is in bounds of every activation row (asserted above).
        let scales = unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast())) };
        let scales = _mm512_castsi256_si512(scales);
        let mut sum = [_mm512_setzero_si512(); R];
        for half in 0..2 {
            let ql = unsafe { _mm512_loadu_si512(w.ql.as_ptr().add(64 * half).cast()) };
            let qh = unsafe { _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast()) };
            // High bits for weights 0..64 of the half (qh bits 0-1, then 2-3) and 64..128
            // (bits 4-5, then 6-7), each moved to bits 4-5 of a byte.
            let qh_first = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
            let qh_second = _mm512_srli_epi16::<4>(qh_first);
            let first =
                _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16::<4>(_mm512_and_si512(qh_first, low2)));
            let second = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low4),
                _mm512_slli_epi16::<4>(_mm512_and_si512(qh_second, low2)),
            );
            for (g, quants) in [first, second].into_iter().enumerate() {
                let group = 2 * half + g;
                let lane_scales = _mm512_permutexvar_epi16(scale_lanes[group], scales);
                for r in 0..R {
                    let a = unsafe { activations[r].get_unchecked(b) };
                    let x = unsafe { _mm512_loadu_si512(a.qs.as_ptr().add(64 * group).cast()) };
                    let pairs = _mm512_maddubs_epi16(quants, x);
                    sum[r] = _mm512_add_epi32(sum[r], _mm512_madd_epi16(pairs, lane_scales));
                }
            }
        }
        let d = w.d.to_f32();
        for r in 0..R {
            let a = unsafe { activations[r].get_unchecked(b) };
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r]), _mm512_set1_ps(d * a.d), acc[r]);
            // The "- 32" of every weight: 32 · Σ scale_s · (sum of the activations under s).
            let sums = unsafe { _mm256_loadu_si256(a.sums.as_ptr().cast()) };
            let scaled_sums = _mm256_madd_epi16(sums, _mm512_castsi512_si256(scales));
            offsets[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(scaled_sums), _mm256_set1_ps(-32.0 * d * a.d), offsets[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) + _mm512_reduce_add_ps(_mm512_castps256_ps512(offsets[r])))
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_q6k<const R: usize>(_: &[BlockQ6K], _: [&[ActivationBlock]; R]) -> [f32; R] {
    unreachable!("a KMatrix is only made where the kernels are available")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_q4k<const R: usize>(_: &[BlockQ4K], _: [&[ActivationBlock]; R]) -> [f32; R] {
    unreachable!("a KMatrix is only made where the kernels are available")
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module, Tensor};

    use super::*;
    use crate::test_support::{rms_error, values};

    #[test]
    fn dequantises_like_candle_and_multiplies_at_least_as_accurately_on_every_tier() {
        let tiers: Vec<Tier> = Tier::supported().filter(|tier| available(*tier)).collect();
        if tiers.is_empty() {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        let shapes = [(64, 512), (7, 256), (96, 1536)];
        for (dtype, (rows, cols), tier) in [GgmlDType::Q4K, GgmlDType::Q6K]
            .into_iter()
            .flat_map(|dtype| shapes.map(|shape| (dtype, shape)))
            .flat_map(|(dtype, shape)| tiers.iter().map(move |tier| (dtype, shape, *tier)))
        {
            let w = Tensor::from_vec(values(rows * cols, 5), (rows, cols), &Device::Cpu).unwrap();
            let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let ours = view(&q, tier).unwrap().unwrap();
            let dequantized = q.dequantize(&Device::Cpu).unwrap();
            let mut row = vec![0f32; cols];
            ours.dequantize_row(rows - 1, &mut row).unwrap();
            assert_eq!(row, flat(dequantized.get(rows - 1).unwrap()), "{dtype:?}");
            let candle = QMatMul::from_arc(q).unwrap();
            for m in [1, 2, 3, 4, 5, 9] {
                let x = values(m * cols, m as u64 + 1);
                let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
                let exact = flat(xt.matmul(&dequantized.t().unwrap()).unwrap());
                let candle_error = rms_error(&flat(candle.forward(&xt).unwrap()), &exact);
                let mut got = vec![0f32; m * rows];
                ours.matmul(&x, &mut got).unwrap();
                let error = rms_error(&got, &exact);
                let scale = rms_error(&exact, &vec![0.0; exact.len()]);
                assert!(
                    error <= candle_error * 1.25 + 1e-5 * scale && error < 0.02 * scale,
                    "{dtype:?} at {tier} {rows}×{cols} m={m}: error {error} vs candle's {candle_error}, outputs ~{scale}"
                );
            }
        }
    }

    /// The vectorised quantisation gives the portable loop's bytes, ties and extremes included.
    #[test]
    fn both_quantisations_agree() {
        let mut values: Vec<f32> = (0..QK).map(|i| ((i * 7919) % 509) as f32 / 4.0 - 63.0).collect();
        // The largest magnitude 127 makes the scale exactly 1, so these are exact ties.
        values[..5].copy_from_slice(&[-127.0, 2.5, -3.5, 0.5, -0.5]);
        let portable = quantize_portable(&values);
        assert_eq!(portable.qs[..5], [-127, 2, -4, 0, 0], "ties go to even, as in ggml");
        for block in [values.clone(), vec![0.0; QK], values.iter().map(|v| v * 1e-30).collect()] {
            let portable = quantize_portable(&block);
            let fast = quantize(&block);
            assert_eq!((portable.qs, portable.sums, portable.d), (fast.qs, fast.sums, fast.d));
        }
    }
}
