//! `Q4_0`, `Q5_0` and `Q8_0` weights × f32 activations, on AVX2 (the kernel every x86-64-v3
//! CPU runs, AVX-512 ones included) or a portable loop.
//!
//! These are the 32-weight block types of the catalog's files: Qwen2.5-0.5B's Q4_K_M is
//! mostly Q5_0 (896 columns are not whole 256-weight K-quant blocks) with a Q8_0 embedding that
//! is also its 151936-row output projection. candle multiplies Q5_0 with a scalar loop and the
//! others one token at a time. Here, as for Q4_1 ([`crate::Q4_1Matrix`]), activations are
//! quantised per 32 to `i8` with a scale and `d · Σq`, and each weight block is unpacked once
//! for up to four activation rows.
//!
//! A weight is `d · (q − offset)`: `q` in 0..16 with offset 8 (Q4_0), `q` in 0..32 with offset
//! 16 (Q5_0, the fifth bit in `qh`), or a signed `q` with none (Q8_0). A block's dot product is
//! `d_w · d_a · Σ q_w q_a − offset · d_w · (d_a Σ q_a)`: one `vpmaddubsw` (unsigned × signed
//! pairs to i16; Q8_0 moves its signs onto the activations first) and one `vpmaddwd` per block,
//! or one `vpdpbusd` where the CPU has AVX-512 VNNI.
//!
//! A decode step (one token) walks each weight row with four accumulators in registers; a
//! prefill chunk goes in tiles of weight rows × four tokens, so that each activation block
//! loaded serves several weight rows as each unpacked weight block serves several tokens (on
//! Qwen2.5-0.5B's Q5_0 that took a 332-token prefill from 157 to about 210 tokens/s).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use crate::ShapeError;
#[cfg(target_arch = "x86_64")]
use crate::ggml::prefetch_ahead;
#[cfg(target_arch = "x86_64")]
use crate::ggml::sum_lanes;
use crate::ggml::{
    Blocks, CpuMatrix, ROW_GROUP, SharedOutput, TokenDots, check_block_bytes, check_row, check_shapes, dot_every_token,
    run_in_parallel,
};
use crate::q4_1::{ActivationBlock, quantize_activations};
use crate::tier::{CpuFeatures, Tier};

const BLOCK: usize = 32;

/// ggml's `block_q4_0`, byte for byte.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4_0 {
    d: f16,
    qs: [u8; BLOCK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// ggml's `block_q5_0`, byte for byte: bit `j` of `qh` is the fifth bit of weight `j`.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ5_0 {
    d: f16,
    qh: [u8; 4],
    qs: [u8; BLOCK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// ggml's `block_q8_0`, byte for byte.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ8_0 {
    d: f16,
    qs: [i8; BLOCK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// A 32-weight block type with a kernel here.
pub(crate) trait Block32: Copy + Send + Sync + 'static {
    const DTYPE: GgmlDType;
    /// What every quant is offset by (a weight is `d · (q − OFFSET)`).
    const OFFSET: f32;
    /// Whether the quants are signed bytes (else unsigned).
    const SIGNED: bool;
    fn d(&self) -> f32;
    /// The 32 quants, weight 0 first.
    fn quants(&self) -> [i32; BLOCK];
    /// The same, unpacked into one 256-bit register.
    ///
    /// # Safety
    /// Only where the CPU has AVX2.
    #[cfg(target_arch = "x86_64")]
    unsafe fn unpack(&self) -> std::arch::x86_64::__m256i;
}

/// ggml's nibble order: low nibbles are weights 0..16, high nibbles 16..32.
fn nibbles(qs: &[u8; BLOCK / 2]) -> [i32; BLOCK] {
    std::array::from_fn(|j| if j < BLOCK / 2 { (qs[j] & 0x0F) as i32 } else { (qs[j - BLOCK / 2] >> 4) as i32 })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unpack_nibbles(qs: &[u8; BLOCK / 2]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: 16 bytes, unaligned load.
    let packed = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let low4 = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(packed), low4), _mm_and_si128(packed, low4))
}

impl Block32 for BlockQ4_0 {
    const DTYPE: GgmlDType = GgmlDType::Q4_0;
    const OFFSET: f32 = 8.0;
    const SIGNED: bool = false;

    fn d(&self) -> f32 {
        self.d.to_f32()
    }

    fn quants(&self) -> [i32; BLOCK] {
        nibbles(&self.qs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn unpack(&self) -> std::arch::x86_64::__m256i {
        unpack_nibbles(&self.qs)
    }
}

impl Block32 for BlockQ5_0 {
    const DTYPE: GgmlDType = GgmlDType::Q5_0;
    const OFFSET: f32 = 16.0;
    const SIGNED: bool = false;

    fn d(&self) -> f32 {
        self.d.to_f32()
    }

    fn quants(&self) -> [i32; BLOCK] {
        let high = u32::from_le_bytes(self.qh);
        let low = nibbles(&self.qs);
        std::array::from_fn(|j| low[j] | (((high >> j) & 1) << 4) as i32)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn unpack(&self) -> std::arch::x86_64::__m256i {
        unpack_q5_0(self)
    }
}

/// Spreads the 32 bits of `qh` over 32 bytes (byte `j` takes byte `j / 8` of `qh`, and is all
/// ones exactly where every bit but bit `j % 8` is forced on and the result is all ones), then
/// puts each as 16 beside its nibble.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unpack_q5_0(block: &BlockQ5_0) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let qh = _mm256_set1_epi32(u32::from_le_bytes(block.qh) as i32);
    let spread = _mm256_shuffle_epi8(
        qh,
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    let others = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1));
    _mm256_or_si256(unpack_nibbles(&block.qs), _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}

impl Block32 for BlockQ8_0 {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const OFFSET: f32 = 0.0;
    const SIGNED: bool = true;

    fn d(&self) -> f32 {
        self.d.to_f32()
    }

    fn quants(&self) -> [i32; BLOCK] {
        self.qs.map(i32::from)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn unpack(&self) -> std::arch::x86_64::__m256i {
        // SAFETY: 32 bytes, unaligned load; the caller has checked for AVX2.
        unsafe { std::arch::x86_64::_mm256_loadu_si256(self.qs.as_ptr().cast()) }
    }
}

/// A matrix of 32-weight blocks, viewed in place or copied from bytes.
pub struct Block32Matrix<B: Block32> {
    blocks: Blocks<B>,
    rows: usize,
    cols: usize,
    features: CpuFeatures,
}

impl<B: Block32> Block32Matrix<B> {
    pub(crate) fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize, tier: Tier) -> Result<Self, ShapeError> {
        let count = check_block_bytes(B::DTYPE, bytes, rows, cols, BLOCK, std::mem::size_of::<B>())?;
        let blocks = bytes
            .chunks_exact(std::mem::size_of::<B>())
            // SAFETY: each chunk is one block's bytes; the blocks are plain `repr(C)` data
            // (f16s and byte arrays) and the read is unaligned.
            .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<B>()) })
            .collect::<Vec<_>>();
        debug_assert_eq!(blocks.len(), count);
        Ok(Self { blocks: Blocks::Owned(blocks), rows, cols, features: tier.features() })
    }

    pub(crate) fn view(tensor: Arc<QTensor>, tier: Tier) -> Result<Self, ShapeError> {
        let (rows, cols) = tensor.shape().dims2().map_err(|e| ShapeError(e.to_string()))?;
        if !cols.is_multiple_of(BLOCK) {
            return Err(ShapeError(format!("{:?} rows must be a multiple of {BLOCK} wide", B::DTYPE)));
        }
        let blocks = Blocks::view(tensor, B::DTYPE, rows * cols / BLOCK)?;
        Ok(Self { blocks, rows, cols, features: tier.features() })
    }

    fn row(&self, row: usize) -> &[B] {
        let per_row = self.cols / BLOCK;
        &self.blocks.as_slice()[row * per_row..(row + 1) * per_row]
    }
}

impl<B: Block32> CpuMatrix for Block32Matrix<B> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let per_row = self.cols / BLOCK;
        let activations = quantize_activations(x);
        let rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        let one_row = |row: usize| {
            let dots = RowDots { weights: self.row(row), activations: &activations, per_row, features: self.features };
            // SAFETY: each call owns its weight rows, i.e. its own output columns, and `t < m`:
            // writes never overlap and stay inside `out`.
            dot_every_token(m, &dots, |t, value| unsafe { out.write(t * rows + row, value) });
        };
        if m == 1 {
            // A decode step: one weight row at a time, four accumulator chains (`dot_avx2`),
            // measured faster than a tile of rows for this memory-bound case.
            run_in_parallel(rows, self.cols, |range| range.for_each(one_row));
            return Ok(());
        }
        // Several tokens (a prefill chunk): tiles of TILE_ROWS weight rows × up to four tokens,
        // so each activation load serves two weight rows as well as each unpacked weight block
        // serving four tokens.
        let tokens = |t: usize| &activations[t * per_row..(t + 1) * per_row];
        run_in_parallel(rows.div_ceil(TILE_ROWS), m * self.cols * TILE_ROWS, |range| {
            for tile_index in range {
                let first = tile_index * TILE_ROWS;
                if first + TILE_ROWS > rows {
                    (first..rows).for_each(one_row);
                    continue;
                }
                let weights = std::array::from_fn(|i| self.row(first + i));
                let mut t = 0;
                while t < m {
                    let group = (m - t).min(ROW_GROUP);
                    let mut sums = [[0f32; ROW_GROUP]; TILE_ROWS];
                    let features = self.features;
                    match group {
                        4 => sums = tile::<B, 4>(features, weights, std::array::from_fn(|i| tokens(t + i))),
                        3 => fill(&mut sums, tile::<B, 3>(features, weights, std::array::from_fn(|i| tokens(t + i)))),
                        2 => fill(&mut sums, tile::<B, 2>(features, weights, std::array::from_fn(|i| tokens(t + i)))),
                        _ => fill(&mut sums, tile::<B, 1>(features, weights, [tokens(t)])),
                    }
                    for (i, row_sums) in sums.iter().enumerate() {
                        for (j, sum) in row_sums[..group].iter().enumerate() {
                            // SAFETY: as in `one_row`: this tile's rows are its own.
                            unsafe { out.write((t + j) * rows + first + i, *sum) };
                        }
                    }
                    t += group;
                }
            }
        });
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_row(row, out, self.rows, self.cols)?;
        for (block, values) in self.row(row).iter().zip(out.chunks_exact_mut(BLOCK)) {
            let d = block.d();
            for (value, q) in values.iter_mut().zip(block.quants()) {
                *value = d * (q as f32 - B::OFFSET);
            }
        }
        Ok(())
    }
}

struct RowDots<'a, B> {
    weights: &'a [B],
    activations: &'a [ActivationBlock],
    per_row: usize,
    features: CpuFeatures,
}

impl<B: Block32> TokenDots for RowDots<'_, B> {
    fn dots<const R: usize>(&self, first: usize) -> [f32; R] {
        let rows =
            std::array::from_fn(|i| &self.activations[(first + i) * self.per_row..(first + i + 1) * self.per_row]);
        dot(self.features, self.weights, rows)
    }
}

/// Dot products of one weight row with `R` activation rows.
pub(crate) fn dot<B: Block32, const R: usize>(
    features: CpuFeatures,
    weights: &[B],
    activations: [&[ActivationBlock]; R],
) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a feature is in the tier's features only where the CPU has it.
        if R == 1 && features.avx512_vnni {
            return std::array::from_fn(|_| unsafe { dot_one_vnni(weights, activations[0]) });
        }
        if R == 1 && features.avx2 {
            return std::array::from_fn(|_| unsafe { dot_one_avx2(weights, activations[0]) });
        }
        if features.avx2 {
            return unsafe { dot_avx2(weights, activations) };
        }
    }
    let _ = features;
    dot_portable(weights, activations)
}

/// Blocks in flight in a decode step's dot product: four accumulators, so that consecutive
/// blocks do not wait on each other's multiply-add (or on the memory behind them).
const CHAINS: usize = 4;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_one_avx2<B: Block32>(weights: &[B], activations: &[ActivationBlock]) -> f32 {
    // SAFETY: AVX2 and FMA are enabled here.
    unsafe { dot_one_body::<B, false>(weights, activations) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn dot_one_vnni<B: Block32>(weights: &[B], activations: &[ActivationBlock]) -> f32 {
    // SAFETY: AVX2, FMA and AVX-512 VNNI (with VL) are enabled here.
    unsafe { dot_one_body::<B, true>(weights, activations) }
}

/// One weight row · one activation row (a decode step), [`CHAINS`] blocks at a time, each
/// chain its own register: the loop is unrolled over a fixed-size group so that no
/// accumulator has to live in memory.
///
/// # Safety
/// Only inlined into a function with AVX2 and FMA, and AVX-512 VNNI + VL where `VNNI`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_one_body<B: Block32, const VNNI: bool>(weights: &[B], activations: &[ActivationBlock]) -> f32 {
    // SAFETY: the caller has the instructions (see above); every load is of a whole block.
    unsafe {
        use std::arch::x86_64::*;

        assert_eq!(weights.len(), activations.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        let mut offsets = [0f32; CHAINS];
        let mut block = |chain: usize, w: &B, a: &ActivationBlock, acc: &mut [__m256; CHAINS]| {
            let quants = w.unpack();
            let x = _mm256_loadu_si256(a.qs.as_ptr().cast());
            let (magnitudes, x) = match B::SIGNED {
                true => (_mm256_sign_epi8(quants, quants), _mm256_sign_epi8(x, quants)),
                false => (quants, x),
            };
            let products = match VNNI {
                true => _mm256_dpbusd_epi32(_mm256_setzero_si256(), magnitudes, x),
                false => _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, x), ones),
            };
            let d = w.d();
            acc[chain] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), _mm256_set1_ps(d * a.d), acc[chain]);
            offsets[chain] += d * a.s;
        };
        let (whole, rest) = (weights.len() / CHAINS * CHAINS, weights.len() % CHAINS);
        for (w, a) in weights[..whole].chunks_exact(CHAINS).zip(activations[..whole].chunks_exact(CHAINS)) {
            prefetch_ahead(w);
            for chain in 0..CHAINS {
                block(chain, &w[chain], &a[chain], &mut acc);
            }
        }
        for i in 0..rest {
            block(i, &weights[whole + i], &activations[whole + i], &mut acc);
        }
        let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        sum_lanes(total) - B::OFFSET * offsets.iter().sum::<f32>()
    }
}

fn dot_portable<B: Block32, const R: usize>(weights: &[B], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    let mut sums = [0f32; R];
    for (i, w) in weights.iter().enumerate() {
        let (d, quants) = (w.d(), w.quants());
        for (sum, row) in sums.iter_mut().zip(&activations) {
            let a = &row[i];
            let integer: i32 = quants.iter().zip(&a.qs).map(|(q, x)| q * *x as i32).sum();
            *sum += d * a.d * integer as f32 - B::OFFSET * d * a.s;
        }
    }
    sums
}

/// Weight rows in one prefill tile: with AVX2's sixteen registers two rows × four tokens
/// (eight accumulators); with AVX-512's thirty-two, four rows × four tokens.
const TILE_ROWS_AVX2: usize = 4;
const TILE_ROWS_VNNI: usize = 4;
/// The most weight rows any tile takes (the tile the matmul hands out).
const TILE_ROWS: usize = TILE_ROWS_VNNI;

fn fill<const R: usize>(sums: &mut [[f32; ROW_GROUP]; TILE_ROWS], tile: [[f32; R]; TILE_ROWS]) {
    for (row, values) in sums.iter_mut().zip(tile) {
        row[..R].copy_from_slice(&values);
    }
}

/// Dot products of [`TILE_ROWS`] weight rows with `R` activation rows each.
fn tile<B: Block32, const R: usize>(
    features: CpuFeatures,
    weights: [&[B]; TILE_ROWS],
    activations: [&[ActivationBlock]; R],
) -> [[f32; R]; TILE_ROWS] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each kernel only where the tier's features (a subset of the CPU's) have its
        // instructions.
        if features.avx512_vnni {
            return unsafe { tile_vnni(weights, activations) };
        }
        if features.avx2 {
            let mut sums = [[0f32; R]; TILE_ROWS];
            for (part, rows) in sums.chunks_exact_mut(TILE_ROWS_AVX2).zip(weights.chunks_exact(TILE_ROWS_AVX2)) {
                let rows = std::array::from_fn(|i| rows[i]);
                part.copy_from_slice(&unsafe { tile_avx2(rows, activations) });
            }
            return sums;
        }
    }
    weights.map(|row| dot_portable(row, activations))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<B: Block32, const R: usize>(
    weights: [&[B]; TILE_ROWS_AVX2],
    activations: [&[ActivationBlock]; R],
) -> [[f32; R]; TILE_ROWS_AVX2] {
    // SAFETY: AVX2 and FMA are enabled here.
    unsafe { tile_body::<B, R, TILE_ROWS_AVX2, false>(weights, activations) }
}

/// The same with `vpdpbusd` (one instruction for `vpmaddubsw` + `vpmaddwd`), 256 bits wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn tile_vnni<B: Block32, const R: usize>(
    weights: [&[B]; TILE_ROWS_VNNI],
    activations: [&[ActivationBlock]; R],
) -> [[f32; R]; TILE_ROWS_VNNI] {
    // SAFETY: AVX2, FMA and AVX-512 VNNI (with VL) are enabled here.
    unsafe { tile_body::<B, R, TILE_ROWS_VNNI, true>(weights, activations) }
}

/// `W` weight rows × `R` tokens. Per block, what depends on one token only (its scale, and
/// `offset · Σ x` lane by lane, which turns the unsigned quants back into `q − offset`) is
/// computed once for all `W` rows, and what depends on one weight row only (its unpacked
/// quants and scale) once for all `R` tokens; per pair there are the products, their
/// conversion to float and one multiply-add.
///
/// # Safety
/// Only inlined into a function with AVX2 and FMA, and AVX-512 VNNI + VL where `VNNI`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_body<B: Block32, const R: usize, const W: usize, const VNNI: bool>(
    weights: [&[B]; W],
    activations: [&[ActivationBlock]; R],
) -> [[f32; R]; W] {
    // SAFETY: the caller has the instructions (see above); loads stay in bounds (below).
    unsafe {
        use std::arch::x86_64::*;

        let blocks = weights[0].len();
        assert!(weights.iter().all(|row| row.len() == blocks) && activations.iter().all(|row| row.len() == blocks));
        let ones = _mm256_set1_epi16(1);
        let offset = _mm256_set1_epi8(B::OFFSET as i8);
        // u8 × i8 summed by four to i32 (VNNI), or by pairs to i16 (at most 128 · 127 · 2, see
        // `dot_avx2`) and then to i32, added to `to`.
        let products = |to: __m256i, u: __m256i, x: __m256i| match VNNI {
            true => _mm256_dpbusd_epi32(to, u, x),
            false => _mm256_add_epi32(to, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones)),
        };
        let mut acc = [[_mm256_setzero_ps(); R]; W];
        for b in 0..blocks {
            // `b < blocks`, the length of every row (asserted above).
            let w: [&B; W] = std::array::from_fn(|i| weights[i].get_unchecked(b));
            let quants = w.map(|block| block.unpack());
            let magnitudes = quants.map(|q| if B::SIGNED { _mm256_sign_epi8(q, q) } else { q });
            let d = w.map(|block| _mm256_set1_ps(block.d()));
            for r in 0..R {
                let a = activations[r].get_unchecked(b);
                let x = _mm256_loadu_si256(a.qs.as_ptr().cast());
                let token_scale = _mm256_set1_ps(a.d);
                // −offset · (the activations of each lane's four, or two, weights).
                let start = match B::OFFSET == 0.0 {
                    true => _mm256_setzero_si256(),
                    false => _mm256_sub_epi32(_mm256_setzero_si256(), products(_mm256_setzero_si256(), offset, x)),
                };
                for i in 0..W {
                    let x = if B::SIGNED { _mm256_sign_epi8(x, quants[i]) } else { x };
                    let sum = products(start, magnitudes[i], x);
                    let scale = _mm256_mul_ps(d[i], token_scale);
                    acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[i][r]);
                }
            }
        }
        std::array::from_fn(|i| std::array::from_fn(|r| sum_lanes(acc[i][r])))
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2<B: Block32, const R: usize>(weights: &[B], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(row.len(), weights.len());
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut offsets = [0f32; R];
    for (i, w) in weights.iter().enumerate() {
        // SAFETY: AVX2 is enabled for this function.
        let quants = unsafe { w.unpack() };
        let magnitudes = if B::SIGNED { _mm256_sign_epi8(quants, quants) } else { quants };
        let d = w.d();
        for r in 0..R {
            // SAFETY: every activation row has as many blocks as the weight row (asserted above).
            let a = unsafe { activations[r].get_unchecked(i) };
            let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            // u8 × i8 pairs to i16: at most 31 · 127 · 2, or 128 · 127 · 2 for Q8_0 with its
            // signs moved onto the activations; both fit.
            let x = if B::SIGNED { _mm256_sign_epi8(x, quants) } else { x };
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, x), ones);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), _mm256_set1_ps(d * a.d), acc[r]);
            offsets[r] += B::OFFSET * d * a.s;
        }
    }
    // SAFETY: AVX2 is enabled for this function.
    std::array::from_fn(|r| unsafe { sum_lanes(acc[r]) } - offsets[r])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::values;

    fn check<B: Block32>() {
        let (rows, cols) = (6, 7 * BLOCK);
        let w =
            candle_core::Tensor::from_vec(values(rows * cols, 21), (rows, cols), &candle_core::Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, B::DTYPE).unwrap();
        let matrix = Block32Matrix::<B>::from_ggml_bytes(&q.data().unwrap(), rows, cols, Tier::Generic).unwrap();
        let activations = quantize_activations(&values(5 * cols, 4));
        let per_row = cols / BLOCK;
        let rows_of = |t: usize| &activations[t * per_row..(t + 1) * per_row];
        for row in 0..rows {
            let weights = matrix.row(row);
            let portable = dot_portable(weights, [rows_of(0), rows_of(1), rows_of(2)]);
            for tier in Tier::supported() {
                let three = dot(tier.features(), weights, [rows_of(0), rows_of(1), rows_of(2)]);
                let one = dot(tier.features(), weights, [rows_of(0)]);
                // A prefill tile: this row and the ones after it (wrapping round), three tokens.
                let tile_rows: [&[B]; TILE_ROWS] = std::array::from_fn(|i| matrix.row((row + i) % rows));
                let tiled = tile(tier.features(), tile_rows, [rows_of(0), rows_of(1), rows_of(2)]);
                let each = tile_rows.map(|w| dot_portable(w, [rows_of(0), rows_of(1), rows_of(2)]));
                let got = three.iter().chain(&one).chain(tiled.iter().flatten());
                let expected = portable.iter().chain(&portable[..1]).chain(each.iter().flatten());
                for (a, b) in got.zip(expected) {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{:?} at {tier}: {a} vs {b}", B::DTYPE);
                }
            }
        }
    }

    #[test]
    fn every_tier_computes_what_the_portable_loop_does() {
        check::<BlockQ4_0>();
        check::<BlockQ5_0>();
        check::<BlockQ8_0>();
    }
}
