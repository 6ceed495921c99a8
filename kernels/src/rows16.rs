//! `Q4_0`, `Q4_1` and `Q5_0` weights stored sixteen rows side by side, so that one vector
//! instruction multiplies sixteen weight rows at once.
//!
//! ggml keeps each row's blocks apart, so a kernel that reads them (like [`crate::block32`])
//! multiplies one row with one token per instruction, and per such pair spends as many
//! instructions turning the block's integer sum into a scaled float as on the products
//! themselves. Here a matrix is regrouped when it is loaded: for every 16 rows and every
//! 32-column block, lane `r` of a 512-bit register holds four consecutive weights of row `r`, so
//! `vpdpbusd` against four activation bytes broadcast to every lane gives sixteen rows' partial
//! sums, and the block's float work (scale, offset) is done once for all sixteen, in vectors.
//! The same bytes as ggml's (nibbles, the fifth bits of Q5_0, f16 scales and minimums), only in
//! another order, and the original is not kept: no more memory, and a decode step reads the
//! weights in one pass as before.
//!
//! A weight is `d · q + m` with `q` unsigned (0..16, or 0..32 with Q5_0's fifth bit): `m` is
//! Q4_1's minimum, or `−offset · d` for Q4_0 (offset 8) and Q5_0 (16). Against an activation
//! block (`i8` quants `x`, scale `d_a`, `s = d_a Σ x`) a block's dot product is
//! `d · d_a · Σ q x + m · s`.
//!
//! Layout of one 16-row block (`r` a row of the group, `j` in 0..4): four 64-byte lines of
//! nibbles, line `c` byte `4r + j` holding weight `8c + j` in its low nibble and `8c + 4 + j` in
//! its high one, so the low nibbles of line `c` are the weight quadruples `2c` and the high ones
//! `2c + 1`; for Q5_0 one line of fifth bits, byte `4r + j` bit `k` the fifth bit of weight
//! `4k + j`; then the sixteen f16 scales (and Q4_1's sixteen minimums).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use crate::ShapeError;
#[cfg(target_arch = "x86_64")]
use crate::ggml::prefetch_ahead;
use crate::ggml::{CpuMatrix, SharedOutput, check_block_bytes, check_row, check_shapes, run_in_parallel};
use crate::q4_1::{ActivationBlock, quantize_activations};
use crate::tier::{CpuFeatures, Tier};

const BLOCK: usize = 32;
/// Rows side by side: sixteen 32-bit lanes of a 512-bit register.
pub(crate) const GROUP: usize = 16;
/// Tokens multiplied per pass over a group's blocks (each unpacked weight block serves this
/// many): the most that keep weights, accumulators and temporaries in AVX-512's 32 registers,
/// and in AVX2's 16 for its half as many.
const TOKENS_VNNI: usize = 8;
const TOKENS_AVX2: usize = 4;

/// One 64-byte line, aligned so that a 512-bit load never splits a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Which of the three block types a matrix came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Q4_0,
    Q4_1,
    Q5_0,
}

impl Kind {
    fn of(dtype: GgmlDType) -> Option<Kind> {
        match dtype {
            GgmlDType::Q4_0 => Some(Kind::Q4_0),
            GgmlDType::Q4_1 => Some(Kind::Q4_1),
            GgmlDType::Q5_0 => Some(Kind::Q5_0),
            _ => None,
        }
    }

    /// Bytes of one ggml block.
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_0 => 18,
            Kind::Q4_1 => 20,
            Kind::Q5_0 => 22,
        }
    }

    /// `(d, Q4_1's minimum, quants)` of one ggml block.
    fn split(self, b: &[u8]) -> (f16, Option<f16>, [u8; BLOCK]) {
        let d = f16::from_le_bytes([b[0], b[1]]);
        let nibbles = |qs: &[u8]| -> [u8; BLOCK] {
            std::array::from_fn(|i| if i < BLOCK / 2 { qs[i] & 0x0F } else { qs[i - BLOCK / 2] >> 4 })
        };
        match self {
            Kind::Q4_0 => (d, None, nibbles(&b[2..18])),
            Kind::Q4_1 => (d, Some(f16::from_le_bytes([b[2], b[3]])), nibbles(&b[4..20])),
            Kind::Q5_0 => {
                let high = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let low = nibbles(&b[6..22]);
                (d, None, std::array::from_fn(|i| low[i] | (((high >> i) & 1) << 4) as u8))
            }
        }
    }

    /// The quants' offset (`m = −offset · d`), or `None` where the block stores its `m`.
    fn offset(self) -> Option<f32> {
        match self {
            Kind::Q4_0 => Some(8.0),
            Kind::Q4_1 => None,
            Kind::Q5_0 => Some(16.0),
        }
    }
}

/// A `rows × cols` Q4_0, Q4_1 or Q5_0 matrix, 16 rows side by side (see the module notes).
/// `rows` must be a multiple of 16 ([`Rows16Matrix::fits`]).
pub struct Rows16Matrix {
    kind: Kind,
    /// `[group][block][line]`, four lines per block.
    nibbles: Vec<Line>,
    /// Q5_0's fifth bits, `[group][block]`; empty for the others.
    fifth_bits: Vec<Line>,
    /// `[group][block]`: the sixteen rows' scales.
    scales: Vec<[f16; GROUP]>,
    /// `[group][block]`: Q4_1's sixteen minimums; empty for the others (`m = −offset · d`).
    minimums: Vec<[f16; GROUP]>,
    rows: usize,
    cols: usize,
    features: CpuFeatures,
}

impl Rows16Matrix {
    /// Whether a `rows × dtype` matrix can be held this way.
    pub(crate) fn fits(dtype: GgmlDType, rows: usize) -> bool {
        Kind::of(dtype).is_some() && rows > 0 && rows.is_multiple_of(GROUP)
    }

    /// Regroup the raw bytes of a GGUF tensor of `rows × cols`.
    pub(crate) fn from_ggml_bytes(
        dtype: GgmlDType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        tier: Tier,
    ) -> Result<Self, ShapeError> {
        let kind = Kind::of(dtype).ok_or_else(|| ShapeError(format!("{dtype:?} is not a 16-row type")))?;
        if !Self::fits(dtype, rows) {
            return Err(ShapeError(format!("{rows} rows are not a multiple of {GROUP}")));
        }
        check_block_bytes(dtype, bytes, rows, cols, BLOCK, kind.block_bytes())?;
        let blocks = cols / BLOCK;
        let groups = rows / GROUP;
        let mut matrix = Self {
            kind,
            nibbles: vec![Line([0; 64]); groups * blocks * 4],
            fifth_bits: match kind {
                Kind::Q5_0 => vec![Line([0; 64]); groups * blocks],
                _ => Vec::new(),
            },
            scales: vec![[f16::ZERO; GROUP]; groups * blocks],
            minimums: match kind {
                Kind::Q4_1 => vec![[f16::ZERO; GROUP]; groups * blocks],
                _ => Vec::new(),
            },
            rows,
            cols,
            features: tier.features(),
        };
        for (row, row_bytes) in bytes.chunks_exact(blocks * kind.block_bytes()).enumerate() {
            let (group, lane) = (row / GROUP, row % GROUP);
            for (b, block_bytes) in row_bytes.chunks_exact(kind.block_bytes()).enumerate() {
                let at = group * blocks + b;
                let (d, m, q) = kind.split(block_bytes);
                matrix.scales[at][lane] = d;
                if let Some(m) = m {
                    matrix.minimums[at][lane] = m;
                }
                for c in 0..4 {
                    for j in 0..4 {
                        let low = q[8 * c + j] & 0x0F;
                        let high = q[8 * c + 4 + j] & 0x0F;
                        matrix.nibbles[at * 4 + c].0[4 * lane + j] = low | (high << 4);
                    }
                }
                if kind == Kind::Q5_0 {
                    for j in 0..4 {
                        matrix.fifth_bits[at].0[4 * lane + j] = (0..8).map(|k| ((q[4 * k + j] >> 4) & 1) << k).sum();
                    }
                }
            }
        }
        Ok(matrix)
    }

    /// Regroup a candle tensor (whose storage can then be dropped).
    pub(crate) fn from_tensor(tensor: &Arc<QTensor>, tier: Tier) -> Result<Self, ShapeError> {
        let (rows, cols) = tensor.shape().dims2().map_err(|e| ShapeError(e.to_string()))?;
        let bytes = tensor.data().map_err(|e| ShapeError(e.to_string()))?;
        Self::from_ggml_bytes(tensor.dtype(), &bytes, rows, cols, tier)
    }

    fn blocks(&self) -> usize {
        self.cols / BLOCK
    }

    /// Quant `i` (0..32) of row `lane` of a group in block `at` (`[group][block]` index).
    fn quant(&self, at: usize, lane: usize, i: usize) -> u8 {
        let (quadruple, j) = (i / 4, i % 4);
        let byte = self.nibbles[at * 4 + quadruple / 2].0[4 * lane + j];
        let low = if quadruple % 2 == 0 { byte & 0x0F } else { byte >> 4 };
        match self.kind {
            Kind::Q5_0 => low | (((self.fifth_bits[at].0[4 * lane + j] >> quadruple) & 1) << 4),
            _ => low,
        }
    }

    /// `(d, m)` of row `lane` of a group in block `at`, as f32.
    fn scale_and_minimum(&self, at: usize, lane: usize) -> (f32, f32) {
        let d = self.scales[at][lane].to_f32();
        match self.kind.offset() {
            Some(offset) => (d, -offset * d),
            None => (d, self.minimums[at][lane].to_f32()),
        }
    }

    /// The sixteen rows of `group` against `T` tokens' activations, into `sums[t][lane]`.
    fn tile<const T: usize>(&self, group: usize, activations: [&[ActivationBlock]; T]) -> [[f32; GROUP]; T] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: each kernel only where the tier's features (a subset of the CPU's) have
            // its instructions.
            if self.features.avx512_vnni {
                return unsafe {
                    match self.kind {
                        Kind::Q5_0 => tile_vnni::<true, false, T>(self, group, activations),
                        Kind::Q4_1 => tile_vnni::<false, true, T>(self, group, activations),
                        Kind::Q4_0 => tile_vnni::<false, false, T>(self, group, activations),
                    }
                };
            }
            if self.features.avx2 {
                return unsafe {
                    match self.kind {
                        Kind::Q5_0 => tile_avx2::<true, false, T>(self, group, activations),
                        Kind::Q4_1 => tile_avx2::<false, true, T>(self, group, activations),
                        Kind::Q4_0 => tile_avx2::<false, false, T>(self, group, activations),
                    }
                };
            }
        }
        self.tile_portable(group, activations)
    }

    fn tile_portable<const T: usize>(&self, group: usize, activations: [&[ActivationBlock]; T]) -> [[f32; GROUP]; T] {
        let mut sums = [[0f32; GROUP]; T];
        for b in 0..self.blocks() {
            let at = group * self.blocks() + b;
            for (row, token_sums) in activations.iter().zip(sums.iter_mut()) {
                let a = &row[b];
                for (lane, sum) in token_sums.iter_mut().enumerate() {
                    let (d, m) = self.scale_and_minimum(at, lane);
                    let integer: i32 = (0..BLOCK).map(|i| self.quant(at, lane, i) as i32 * a.qs[i] as i32).sum();
                    *sum += d * a.d * integer as f32 + m * a.s;
                }
            }
        }
        sums
    }
}

impl CpuMatrix for Rows16Matrix {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let blocks = self.blocks();
        let activations = quantize_activations(x);
        let tokens = |t: usize| &activations[t * blocks..(t + 1) * blocks];
        let rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        let per_pass = if self.features.avx512_vnni { TOKENS_VNNI } else { TOKENS_AVX2 };
        run_in_parallel(rows / GROUP, m * self.cols * GROUP, |range| {
            for group in range {
                let mut t = 0;
                while t < m {
                    let n = (m - t).min(per_pass);
                    let write = |sums: &[[f32; GROUP]]| {
                        for (i, lanes) in sums.iter().enumerate() {
                            for (lane, sum) in lanes.iter().enumerate() {
                                // SAFETY: each group's rows, i.e. its output columns, belong to
                                // one call, and `t + i < m`: no overlap, inside `out`.
                                unsafe { out.write((t + i) * rows + group * GROUP + lane, *sum) };
                            }
                        }
                    };
                    let row = |i: usize| tokens(t + i);
                    match n {
                        8 => write(&self.tile::<8>(group, std::array::from_fn(row))),
                        7 => write(&self.tile::<7>(group, std::array::from_fn(row))),
                        6 => write(&self.tile::<6>(group, std::array::from_fn(row))),
                        5 => write(&self.tile::<5>(group, std::array::from_fn(row))),
                        4 => write(&self.tile::<4>(group, std::array::from_fn(row))),
                        3 => write(&self.tile::<3>(group, std::array::from_fn(row))),
                        2 => write(&self.tile::<2>(group, std::array::from_fn(row))),
                        _ => write(&self.tile::<1>(group, [row(0)])),
                    }
                    t += n;
                }
            }
        });
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_row(row, out, self.rows, self.cols)?;
        let (group, lane) = (row / GROUP, row % GROUP);
        for (b, values) in out.chunks_exact_mut(BLOCK).enumerate() {
            let at = group * self.blocks() + b;
            let d = self.scales[at][lane].to_f32();
            for (i, value) in values.iter_mut().enumerate() {
                let q = self.quant(at, lane, i) as f32;
                // ggml's own formulas, so a looked-up embedding is exactly candle's.
                *value = match self.kind.offset() {
                    Some(offset) => d * (q - offset),
                    None => d * q + self.minimums[at][lane].to_f32(),
                };
            }
        }
        Ok(())
    }
}

/// Four activation bytes, `x[4k..4k + 4]`, as one little-endian `i32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn quadruple(a: &ActivationBlock, k: usize) -> i32 {
    i32::from_le_bytes([a.qs[4 * k] as u8, a.qs[4 * k + 1] as u8, a.qs[4 * k + 2] as u8, a.qs[4 * k + 3] as u8])
}

/// Prefetch what block `at` of a group is followed by in each of the matrix's arrays (a decode
/// pass reads them as streams; see [`prefetch_ahead`]).
///
/// # Safety
/// `at` must be a block of the matrix.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_group_block(matrix: &Rows16Matrix, at: usize) {
    // SAFETY: `at` is in bounds of every array the matrix has (the caller's promise).
    unsafe {
        prefetch_ahead(matrix.nibbles.get_unchecked(at * 4..at * 4 + 4));
        prefetch_ahead(matrix.scales.get_unchecked(at..at + 1));
        if !matrix.fifth_bits.is_empty() {
            prefetch_ahead(matrix.fifth_bits.get_unchecked(at..at + 1));
        }
        if !matrix.minimums.is_empty() {
            prefetch_ahead(matrix.minimums.get_unchecked(at..at + 1));
        }
    }
}

/// Sixteen rows × `T` tokens with AVX-512 VNNI: per block the eight weight quadruples of all
/// sixteen rows are unpacked once into eight registers; per token, eight `vpdpbusd` (four
/// activation bytes broadcast) give the sixteen integer sums, and a conversion and three
/// multiply-adds put them, scaled, into the token's accumulator.
///
/// # Safety
/// Only where the CPU has AVX-512 F, BW, VL and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_vnni<const FIFTH: bool, const MIN: bool, const T: usize>(
    matrix: &Rows16Matrix,
    group: usize,
    activations: [&[ActivationBlock]; T],
) -> [[f32; GROUP]; T] {
    use std::arch::x86_64::*;

    let blocks = matrix.blocks();
    assert!(activations.iter().all(|row| row.len() == blocks));
    assert!((group + 1) * blocks * 4 <= matrix.nibbles.len());
    let low4 = _mm512_set1_epi8(0x0F);
    let bit4 = _mm512_set1_epi8(0x10);
    let negative_offset = _mm512_set1_ps(-matrix.kind.offset().unwrap_or(0.0));
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..blocks {
        let at = group * blocks + b;
        // SAFETY: `at < (group + 1) * blocks`, inside every array (asserted above, and the
        // arrays have one entry per block, four lines for the nibbles); 64-byte aligned lines.
        unsafe {
            prefetch_group_block(matrix, at);
            let mut w = [_mm512_setzero_si512(); 8];
            for c in 0..4 {
                let line = _mm512_load_si512(matrix.nibbles.get_unchecked(at * 4 + c).0.as_ptr().cast());
                w[2 * c] = _mm512_and_si512(line, low4);
                w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(line), low4);
            }
            if FIFTH {
                let bits = _mm512_load_si512(matrix.fifth_bits.get_unchecked(at).0.as_ptr().cast());
                // Bit k of each byte to bit 4, for quadruple k: w | (shifted & 0x10).
                let shifted = [
                    _mm512_slli_epi16::<4>(bits),
                    _mm512_slli_epi16::<3>(bits),
                    _mm512_slli_epi16::<2>(bits),
                    _mm512_slli_epi16::<1>(bits),
                    bits,
                    _mm512_srli_epi16::<1>(bits),
                    _mm512_srli_epi16::<2>(bits),
                    _mm512_srli_epi16::<3>(bits),
                ];
                for k in 0..8 {
                    w[k] = _mm512_ternarylogic_epi32::<0xF8>(w[k], shifted[k], bit4);
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(matrix.scales.get_unchecked(at).as_ptr().cast()));
            let m = match MIN {
                true => _mm512_cvtph_ps(_mm256_loadu_si256(matrix.minimums.get_unchecked(at).as_ptr().cast())),
                false => _mm512_mul_ps(d, negative_offset),
            };
            for t in 0..T {
                let a = activations[t].get_unchecked(b);
                let mut sum = _mm512_setzero_si512();
                for (k, quants) in w.iter().enumerate() {
                    sum = _mm512_dpbusd_epi32(sum, *quants, _mm512_set1_epi32(quadruple(a, k)));
                }
                let scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(a.d));
                acc[t] = _mm512_fmadd_ps(d, scaled, acc[t]);
                acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(a.s), acc[t]);
            }
        }
    }
    let mut sums = [[0f32; GROUP]; T];
    for (sum, acc) in sums.iter_mut().zip(acc) {
        // SAFETY: 16 floats into a 16-float array.
        unsafe { _mm512_storeu_ps(sum.as_mut_ptr(), acc) };
    }
    sums
}

/// The same on AVX2: each half of the group (eight rows, one 256-bit half of each line) in its
/// own pass, `vpmaddubsw` pairs summed as i16 before one `vpmaddwd` (four quadruples of Q5_0,
/// at most 4 · 2 · 31 · 127 = 31496, or all eight of a 4-bit type, 8 · 2 · 15 · 127 = 30480:
/// both fit in an i16).
///
/// # Safety
/// Only where the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<const FIFTH: bool, const MIN: bool, const T: usize>(
    matrix: &Rows16Matrix,
    group: usize,
    activations: [&[ActivationBlock]; T],
) -> [[f32; GROUP]; T] {
    use std::arch::x86_64::*;

    let blocks = matrix.blocks();
    assert!(activations.iter().all(|row| row.len() == blocks));
    assert!((group + 1) * blocks * 4 <= matrix.nibbles.len());
    let low4 = _mm256_set1_epi8(0x0F);
    let bit4 = _mm256_set1_epi8(0x10);
    let ones = _mm256_set1_epi16(1);
    let negative_offset = _mm256_set1_ps(-matrix.kind.offset().unwrap_or(0.0));
    let mut sums = [[0f32; GROUP]; T];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..blocks {
            let at = group * blocks + b;
            // SAFETY: as in `tile_vnni`; each half is the line's bytes 32 · half onwards.
            unsafe {
                prefetch_group_block(matrix, at);
                let mut w = [_mm256_setzero_si256(); 8];
                for c in 0..4 {
                    let line = matrix.nibbles.get_unchecked(at * 4 + c).0.as_ptr().add(32 * half);
                    let line = _mm256_load_si256(line.cast());
                    w[2 * c] = _mm256_and_si256(line, low4);
                    w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(line), low4);
                }
                if FIFTH {
                    let bits = matrix.fifth_bits.get_unchecked(at).0.as_ptr().add(32 * half);
                    let bits = _mm256_load_si256(bits.cast());
                    let shifted = [
                        _mm256_slli_epi16::<4>(bits),
                        _mm256_slli_epi16::<3>(bits),
                        _mm256_slli_epi16::<2>(bits),
                        _mm256_slli_epi16::<1>(bits),
                        bits,
                        _mm256_srli_epi16::<1>(bits),
                        _mm256_srli_epi16::<2>(bits),
                        _mm256_srli_epi16::<3>(bits),
                    ];
                    for k in 0..8 {
                        w[k] = _mm256_or_si256(w[k], _mm256_and_si256(shifted[k], bit4));
                    }
                }
                let scales = matrix.scales.get_unchecked(at).as_ptr().add(8 * half);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(scales.cast()));
                let m = match MIN {
                    true => {
                        let minimums = matrix.minimums.get_unchecked(at).as_ptr().add(8 * half);
                        _mm256_cvtph_ps(_mm_loadu_si128(minimums.cast()))
                    }
                    false => _mm256_mul_ps(d, negative_offset),
                };
                for t in 0..T {
                    let a = activations[t].get_unchecked(b);
                    let pairs = |k: usize| _mm256_maddubs_epi16(w[k], _mm256_set1_epi32(quadruple(a, k)));
                    let four = |k: usize| {
                        _mm256_add_epi16(
                            _mm256_add_epi16(pairs(k), pairs(k + 1)),
                            _mm256_add_epi16(pairs(k + 2), pairs(k + 3)),
                        )
                    };
                    let sum = match FIFTH {
                        true => _mm256_add_epi32(_mm256_madd_epi16(four(0), ones), _mm256_madd_epi16(four(4), ones)),
                        false => _mm256_madd_epi16(_mm256_add_epi16(four(0), four(4)), ones),
                    };
                    let scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(a.d));
                    acc[t] = _mm256_fmadd_ps(d, scaled, acc[t]);
                    acc[t] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.s), acc[t]);
                }
            }
        }
        for (sum, acc) in sums.iter_mut().zip(acc) {
            // SAFETY: 8 floats into the half of a 16-float array.
            unsafe { _mm256_storeu_ps(sum.as_mut_ptr().add(8 * half), acc) };
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::values;

    /// Every tier against the f32 product of the dequantised weights with the quantised
    /// activations (what the kernels compute, up to float rounding), for decode, every partial
    /// pass and several whole ones; dequantised rows against candle's.
    #[test]
    fn every_tier_matches_the_exact_product_and_candles_dequantisation() {
        let (rows, cols) = (48, 5 * BLOCK);
        let w = candle_core::Tensor::from_vec(values(rows * cols, 7), (rows, cols), &candle_core::Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0] {
            let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let dequantized = q.dequantize(&candle_core::Device::Cpu).unwrap().flatten_all().unwrap();
            let dequantized = dequantized.to_vec1::<f32>().unwrap();
            for tier in Tier::supported() {
                let matrix = Rows16Matrix::from_tensor(&q, tier).unwrap();
                let mut row = vec![0f32; cols];
                for r in 0..rows {
                    matrix.dequantize_row(r, &mut row).unwrap();
                    assert_eq!(row, dequantized[r * cols..(r + 1) * cols], "{dtype:?} row {r}");
                }
                for m in [1, 3, 4, 7, 8, 9, 21] {
                    let x = values(m * cols, 3 + m as u64);
                    let activations = quantize_activations(&x);
                    let mut out = vec![0f32; m * rows];
                    matrix.matmul(&x, &mut out).unwrap();
                    for t in 0..m {
                        for r in 0..rows {
                            let exact: f32 = (0..cols)
                                .map(|i| {
                                    let a = &activations[t * (cols / BLOCK) + i / BLOCK];
                                    dequantized[r * cols + i] * a.d * a.qs[i % BLOCK] as f32
                                })
                                .sum();
                            let got = out[t * rows + r];
                            assert!(
                                (got - exact).abs() <= 2e-3 * (1.0 + exact.abs()),
                                "{dtype:?} at {tier}, {m} tokens, token {t} row {r}: {got} vs {exact}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let bytes = vec![0u8; 8 * 22];
        assert!(Rows16Matrix::from_ggml_bytes(GgmlDType::Q5_0, &bytes, 8, 32, Tier::Generic).is_err());
        assert!(Rows16Matrix::from_ggml_bytes(GgmlDType::Q8_0, &bytes, 16, 32, Tier::Generic).is_err());
        assert!(Rows16Matrix::from_ggml_bytes(GgmlDType::Q5_0, &bytes[1..], 16, 16, Tier::Generic).is_err());
        assert!(!Rows16Matrix::fits(GgmlDType::Q5_0, 0));
    }
}
