//! `Q4_1` weights × f32 activations.
//!
//! A ggml `block_q4_1` holds 32 weights as `d * q + m` with `q` in 0..16: two f16s and 16 bytes
//! of nibbles (low nibbles are weights 0..16, high nibbles 16..32). Activations are quantised per
//! block of 32 to `i8` with a scale `d` and the block's `d * Σq`, so one block's dot product is
//! `d_w * d_a * Σ q_w q_a + m_w * (d_a Σ q_a)`: integer multiply-adds and two float terms.

use std::fmt;

use half::f16;

use crate::ggml::{CpuMatrix, SharedOutput, check_row, check_shapes, run_in_parallel};

/// Weights per block, in ggml's Q4_1 and in our 8-bit activation blocks alike.
const BLOCK: usize = 32;
/// Bytes of one ggml `block_q4_1`: f16 scale, f16 minimum, 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;
/// Activation rows that share one unpacked weight block.
const ROW_GROUP: usize = 4;

#[derive(Clone, Copy)]
#[repr(C)]
struct WeightBlock {
    d: f16,
    m: f16,
    qs: [u8; BLOCK / 2],
}

#[derive(Clone, Copy)]
#[repr(C)]
struct ActivationBlock {
    qs: [i8; BLOCK],
    d: f32,
    /// `d * Σ qs`: what the weights' minimum multiplies.
    s: f32,
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
}

impl Q4_1Matrix {
    /// Take a matrix from the raw bytes of a GGUF `Q4_1` tensor of `rows × cols`.
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(ShapeError(format!("Q4_1 rows must be a positive multiple of {BLOCK} wide, not {cols}")));
        }
        let expected = rows * cols / BLOCK * BLOCK_BYTES;
        if bytes.len() != expected {
            return Err(ShapeError(format!(
                "a {rows}×{cols} Q4_1 matrix is {expected} bytes, but {} were given",
                bytes.len()
            )));
        }
        let blocks = bytes
            .chunks_exact(BLOCK_BYTES)
            .map(|b| WeightBlock {
                d: f16::from_le_bytes([b[0], b[1]]),
                m: f16::from_le_bytes([b[2], b[3]]),
                qs: b[4..].try_into().expect("16 bytes of nibbles"),
            })
            .collect();
        Ok(Self { blocks, rows, cols })
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
        let use_avx2 = avx2_available();
        let out_rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        let row_products = |rows: std::ops::Range<usize>| {
            for row in rows {
                let weights = &self.blocks[row * blocks_per_row..(row + 1) * blocks_per_row];
                let mut t = 0;
                while t < m {
                    let group = (m - t).min(ROW_GROUP);
                    let mut sums = [0f32; ROW_GROUP];
                    match group {
                        4 => sums = dot(use_avx2, weights, [0, 1, 2, 3].map(|i| activation_row(t + i))),
                        3 => {
                            sums[..3].copy_from_slice(&dot(use_avx2, weights, [0, 1, 2].map(|i| activation_row(t + i))))
                        }
                        2 => sums[..2].copy_from_slice(&dot(use_avx2, weights, [0, 1].map(|i| activation_row(t + i)))),
                        _ => sums[..1].copy_from_slice(&dot(use_avx2, weights, [activation_row(t)])),
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

fn quantize_activations(x: &[f32]) -> Vec<ActivationBlock> {
    x.chunks_exact(BLOCK)
        .map(|values| {
            let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
            let mut qs = [0i8; BLOCK];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(values) {
                *q = (v * inverse).round() as i8;
                sum += *q as i32;
            }
            ActivationBlock { qs, d, s: d * sum as f32 }
        })
        .collect()
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot products of one weight row with `R` activation rows.
fn dot<const R: usize>(use_avx2: bool, weights: &[WeightBlock], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    if use_avx2 {
        // SAFETY: the caller checked that the CPU has AVX2 and FMA.
        return unsafe { dot_avx2(weights, activations) };
    }
    let _ = use_avx2;
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn dot_avx2<const R: usize>(weights: &[WeightBlock], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(row.len(), weights.len());
    }
    let low_nibbles = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); CHAINS]; R];
    let mut minimum_terms = [[0f32; CHAINS]; R];
    for (i, w) in weights.iter().enumerate() {
        let chain = i % CHAINS;
        // SAFETY: `qs` is 16 bytes; unaligned loads.
        let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
        let low = _mm_and_si128(packed, low_nibbles);
        let high = _mm_and_si128(_mm_srli_epi16::<4>(packed), low_nibbles);
        let unpacked = _mm256_set_m128i(high, low);
        let (d, m) = (w.d.to_f32(), w.m.to_f32());
        for r in 0..R {
            // SAFETY: every activation row has as many blocks as the weight row (asserted above).
            let a = unsafe { activations[r].get_unchecked(i) };
            let quants = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            // u8 × i8 pairs summed to i16 (15·127·2 fits), then pairs of those to i32.
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(unpacked, quants), ones);
            acc[r][chain] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), _mm256_set1_ps(d * a.d), acc[r][chain]);
            minimum_terms[r][chain] += m * a.s;
        }
    }
    let mut sums = [0f32; R];
    for r in 0..R {
        let [a, b, c, e] = acc[r];
        let total = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e));
        let halves = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps::<1>(total));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        let single = _mm_add_ss(pairs, _mm_movehdup_ps(pairs));
        sums[r] = _mm_cvtss_f32(single) + minimum_terms[r].iter().sum::<f32>();
    }
    sums
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;
    use crate::test_support::{rms_error, values};

    fn quantized(rows: usize, cols: usize, seed: u64) -> (QTensor, Q4_1Matrix) {
        let w = Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let ours = Q4_1Matrix::from_ggml_bytes(&q.data().unwrap(), rows, cols).unwrap();
        (q, ours)
    }

    /// Against the exact product with the dequantised weights, compared with candle's own
    /// Q4_1 × Q8_1 path (the same arithmetic in a scalar loop, with f16 activation scales): at
    /// least as accurate, for every shape a prefill chunk or a decode step produces and for
    /// row counts that are not a multiple of four.
    #[test]
    fn as_accurate_as_candle_for_decode_and_prefill_shapes() {
        for (rows, cols) in [(192, 576), (576, 576), (1536, 576), (576, 1536), (35, 64)] {
            let (q, ours) = quantized(rows, cols, rows as u64 * 31 + cols as u64);
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
                    "{rows}×{cols}, m={m}: error {our_error} vs candle's {candle_error} (outputs ~{scale})"
                );
            }
        }
    }

    #[test]
    fn the_portable_loop_agrees_with_the_simd_one() {
        let (_, ours) = quantized(8, 256, 7);
        let activations = quantize_activations(&values(3 * 256, 9));
        let rows: [&[ActivationBlock]; 3] = [0, 1, 2].map(|t| &activations[t * 8..(t + 1) * 8]);
        for row in 0..8 {
            let weights = &ours.blocks[row * 8..(row + 1) * 8];
            let simd = dot(avx2_available(), weights, rows);
            let portable = dot_portable(weights, rows);
            for (a, b) in simd.iter().zip(portable) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_errors_not_panics() {
        assert!(Q4_1Matrix::from_ggml_bytes(&[0; 20], 1, 33).is_err());
        assert!(Q4_1Matrix::from_ggml_bytes(&[0; 19], 1, 32).is_err());
        let m = Q4_1Matrix::from_ggml_bytes(&[0; 40], 2, 32).unwrap();
        assert!(m.matmul(&[0.0; 31], &mut [0.0; 2]).is_err());
        assert!(m.matmul(&[0.0; 32], &mut [0.0; 3]).is_err());
        let mut out = [1.0; 2];
        m.matmul(&[0.0; 32], &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
    }
}
