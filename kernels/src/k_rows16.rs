//! `Q4_K`, `Q5_K` and `Q6_K` weights stored sixteen rows side by side, for the AVX2 tier: the
//! K-quant counterpart of [`crate::rows16`].
//!
//! ggml keeps each row's 256-weight blocks apart ([`crate::k_quants`] multiplies them as they
//! are), so a prefill kernel on them turns every (row, token) pair's integer sum into a scaled
//! float on its own. candle's AVX2 prefill tiles regroup the rows, but keep a second copy of the
//! weights beside ggml's (6 bits a Q4_K weight, 10 a Q6_K one, with float scales) and widen
//! every `vpmaddubsw` with its own `vpmaddwd`. Here a matrix is regrouped once, when it is
//! loaded, and the original is dropped: for every 16 rows and every 32 weights ("chunk": a
//! `Q4_K`/`Q5_K` sub-block, two of `Q6_K`'s), four 64-byte lines of nibbles, line `c` byte
//! `4r + j` holding weight `8c + j` of row `r` in its low nibble and `8c + 4 + j` in its high one
//! (the layout of [`crate::rows16`]), then the high bits (`Q5_K`: one line, byte `4r + j` bit `k`
//! the fifth bit of weight `4k + j`; `Q6_K`: two lines, line `e` byte `4r + j` bits `2i, 2i + 1`
//! the top bits of weight `4(4e + i) + j`), the 6- or 8-bit scales per row, `Q4_K`/`Q5_K`'s
//! minimums in pairs of sub-blocks per row, and the f16 `d` (and `dmin`) of the sixteen rows.
//! Every bit of ggml's block is kept and nothing is added: the matrix takes the bytes the file
//! does (2.8% more for `Q4_K`, whose scales are unpacked from 6 bits to 8).
//!
//! A weight is `d · sc · q − dmin · m` (`Q4_K`, `Q5_K`) or `d · sc · (q − 32)` (`Q6_K`), `q`
//! unsigned. Against a block of 256 activations quantised to `i8` with one scale `d_a`
//! ([`ActivationBlock`]), the integer `Σ sc Σ q x` of a whole block is summed in `i32` lanes, one
//! per row: `vpmaddubsw` multiplies a row's four quants with four activation bytes broadcast to
//! every lane, several of those are added as `i16` (as many as cannot overflow), and one
//! `vpmaddwd` against the rows' scales widens them. The minimums (or `Q6_K`'s `− 32`) meet the
//! activations' sums of 16 in one more `vpmaddwd` per pair of sub-blocks, and the block's float
//! work is done once per 8 rows. Each unpacked line serves [`TOKENS`] tokens.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use crate::ShapeError;
use crate::ggml::{CpuMatrix, SharedOutput, check_block_bytes, check_row, check_shapes, run_in_parallel};
use crate::k_quants::{ActivationBlock, QUANTIZE_BLOCKS_PER_TASK, quantize};
use crate::tier::{CpuFeatures, Tier};

/// Weights of a ggml K-quant block.
const QK: usize = 256;
/// Weights of a chunk: four lines of nibbles.
const CHUNK: usize = 32;
const CHUNKS: usize = QK / CHUNK;
/// Rows side by side: eight 32-bit lanes in each half of a pair of 256-bit registers.
pub(crate) const GROUP: usize = 16;
/// Tokens multiplied per pass over a group's blocks: with four, the accumulators, one unpacked
/// line and the temporaries fit in AVX2's sixteen registers.
const TOKENS: usize = 4;

/// One 64-byte line, aligned so that no load splits a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Which K-quant a matrix came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Q4K,
    Q5K,
    Q6K,
}

impl Kind {
    fn of(dtype: GgmlDType) -> Option<Kind> {
        match dtype {
            GgmlDType::Q4K => Some(Kind::Q4K),
            GgmlDType::Q5K => Some(Kind::Q5K),
            GgmlDType::Q6K => Some(Kind::Q6K),
            _ => None,
        }
    }

    #[cfg(test)]
    fn dtype(self) -> GgmlDType {
        match self {
            Kind::Q4K => GgmlDType::Q4K,
            Kind::Q5K => GgmlDType::Q5K,
            Kind::Q6K => GgmlDType::Q6K,
        }
    }

    /// Bytes of one ggml block.
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4K => 144,
            Kind::Q5K => 176,
            Kind::Q6K => 210,
        }
    }

    /// Lines of high bits per chunk.
    fn high_lines(self) -> usize {
        match self {
            Kind::Q4K => 0,
            Kind::Q5K => 1,
            Kind::Q6K => 2,
        }
    }

    /// Weights that share one scale.
    fn sub_block(self) -> usize {
        match self {
            Kind::Q6K => 16,
            _ => 32,
        }
    }

    /// One row's block, unpacked from ggml's bytes.
    fn decode(self, b: &[u8]) -> Decoded {
        let f16_at = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]);
        let mut block = Decoded { d: f16::ZERO, dmin: f16::ZERO, scales: [0; 16], mins: [0; 8], q: [0; QK] };
        match self {
            Kind::Q4K | Kind::Q5K => {
                block.d = f16_at(0);
                block.dmin = f16_at(2);
                let packed: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
                for sub in 0..8 {
                    let (scale, min) = scale_and_min(sub, packed);
                    block.scales[sub] = scale;
                    block.mins[sub] = min;
                }
                let (high, qs) = match self {
                    Kind::Q5K => (Some(&b[16..48]), &b[48..176]),
                    _ => (None, &b[16..144]),
                };
                for (i, q) in block.q.iter_mut().enumerate() {
                    // 64 weights per 32 bytes: the first 32 in the low nibbles.
                    let byte = qs[32 * (i / 64) + i % 32];
                    let low = if i % 64 < 32 { byte & 0x0F } else { byte >> 4 };
                    let fifth = high.map_or(0, |high| (high[i % 32] >> (i / 32)) & 1);
                    *q = low | fifth << 4;
                }
            }
            Kind::Q6K => {
                let (ql, qh) = (&b[0..128], &b[128..192]);
                block.scales = b[192..208].try_into().expect("16 bytes");
                block.d = f16_at(208);
                for (i, q) in block.q.iter_mut().enumerate() {
                    // Each half of 128 weights: 64 bytes of low nibbles, 32 of top bits.
                    let (half, within) = (i / 128, i % 128);
                    let (j, l) = (within / 32, within % 32);
                    let low = ql[64 * half + l + 32 * (j % 2)] >> (4 * (j / 2)) & 0x0F;
                    let high = qh[32 * half + l] >> (2 * j) & 0x03;
                    *q = low | high << 4;
                }
            }
        }
        block
    }
}

/// ggml's `get_scale_min_k4`: sub-block `j`'s 6-bit scale and minimum from the 12 packed bytes.
fn scale_and_min(j: usize, packed: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        ((packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4), (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4))
    }
}

/// One row's block of 256 weights, unpacked.
struct Decoded {
    d: f16,
    dmin: f16,
    /// Per sub-block: `Q4_K`/`Q5_K` eight unsigned 6-bit scales, `Q6_K` sixteen `i8` ones.
    scales: [u8; 16],
    mins: [u8; 8],
    q: [u8; QK],
}

/// Whether a `dtype` matrix is best held this way at `tier`: wherever the tier has AVX2 but not
/// AVX-512 VNNI, where candle's repacked VNNI (and AMX) tiles multiply `Q4_K` and `Q6_K`
/// prefills faster still and [`crate::k_quants`] their decode steps; `Q5_K`, which candle has no
/// tiles for, wherever the tier has AVX2.
pub(crate) fn preferred(dtype: GgmlDType, tier: Tier) -> bool {
    let features = tier.features();
    features.avx2 && (dtype == GgmlDType::Q5K || !features.avx512_vnni)
}

/// A `rows × cols` `Q4_K`, `Q5_K` or `Q6_K` matrix, 16 rows side by side (see the module notes).
pub struct KRows16Matrix {
    kind: Kind,
    /// `[group][block][chunk][line]`, four lines per chunk.
    nibbles: Vec<Line>,
    /// `[group][block][chunk][line]`, [`Kind::high_lines`] per chunk.
    high_bits: Vec<Line>,
    /// `[group][block][sub-block]`: the sixteen rows' scales (`i8` for `Q6_K`).
    scales: Vec<[u8; GROUP]>,
    /// `[group][block][pair of sub-blocks]`: byte `2r + i` is row `r`'s minimum of sub-block
    /// `2p + i` (`Q4_K`, `Q5_K`).
    mins: Vec<[u8; 2 * GROUP]>,
    /// `[group][block]`: the sixteen rows' `d`.
    d: Vec<[f16; GROUP]>,
    /// `[group][block]`: the sixteen rows' `dmin` (`Q4_K`, `Q5_K`).
    dmin: Vec<[f16; GROUP]>,
    rows: usize,
    cols: usize,
    features: CpuFeatures,
}

impl KRows16Matrix {
    /// Whether a `rows`-row matrix of `dtype` can be held this way.
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
        let kind = Kind::of(dtype).ok_or_else(|| ShapeError(format!("{dtype:?} is not a K-quant")))?;
        if !Self::fits(dtype, rows) {
            return Err(ShapeError(format!("{rows} rows are not a multiple of {GROUP}")));
        }
        check_block_bytes(dtype, bytes, rows, cols, QK, kind.block_bytes())?;
        let blocks = cols / QK;
        let entries = rows / GROUP * blocks;
        let mut matrix = Self {
            kind,
            nibbles: vec![Line([0; 64]); entries * CHUNKS * 4],
            high_bits: vec![Line([0; 64]); entries * CHUNKS * kind.high_lines()],
            scales: vec![[0; GROUP]; entries * (QK / kind.sub_block())],
            mins: vec![[0; 2 * GROUP]; if kind == Kind::Q6K { 0 } else { entries * 4 }],
            d: vec![[f16::ZERO; GROUP]; entries],
            dmin: vec![[f16::ZERO; GROUP]; if kind == Kind::Q6K { 0 } else { entries }],
            rows,
            cols,
            features: tier.features(),
        };
        for (row, row_bytes) in bytes.chunks_exact(blocks * kind.block_bytes()).enumerate() {
            let (group, lane) = (row / GROUP, row % GROUP);
            for (b, block_bytes) in row_bytes.chunks_exact(kind.block_bytes()).enumerate() {
                matrix.place(group * blocks + b, lane, &kind.decode(block_bytes));
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

    /// Write one row's block into lane `lane` of entry `at` (`[group][block]`).
    fn place(&mut self, at: usize, lane: usize, block: &Decoded) {
        let q = &block.q;
        for n in 0..CHUNKS {
            let chunk = &q[CHUNK * n..CHUNK * (n + 1)];
            for c in 0..4 {
                for j in 0..4 {
                    let (low, high) = (chunk[8 * c + j] & 0x0F, chunk[8 * c + 4 + j] & 0x0F);
                    self.nibbles[(at * CHUNKS + n) * 4 + c].0[4 * lane + j] = low | high << 4;
                }
            }
            for j in 0..4 {
                match self.kind {
                    Kind::Q4K => {}
                    Kind::Q5K => {
                        let bits = (0..8).map(|k| ((chunk[4 * k + j] >> 4) & 1) << k).sum();
                        self.high_bits[at * CHUNKS + n].0[4 * lane + j] = bits;
                    }
                    Kind::Q6K => {
                        for e in 0..2 {
                            let bits = (0..4).map(|i| ((chunk[4 * (4 * e + i) + j] >> 4) & 3) << (2 * i)).sum();
                            self.high_bits[(at * CHUNKS + n) * 2 + e].0[4 * lane + j] = bits;
                        }
                    }
                }
            }
        }
        let subs = QK / self.kind.sub_block();
        for s in 0..subs {
            self.scales[at * subs + s][lane] = block.scales[s];
        }
        self.d[at][lane] = block.d;
        if self.kind != Kind::Q6K {
            self.dmin[at][lane] = block.dmin;
            for p in 0..4 {
                self.mins[at * 4 + p][2 * lane] = block.mins[2 * p];
                self.mins[at * 4 + p][2 * lane + 1] = block.mins[2 * p + 1];
            }
        }
    }

    fn blocks(&self) -> usize {
        self.cols / QK
    }

    /// Quant `i` (0..256) of row `lane` in entry `at`, unsigned.
    fn quant(&self, at: usize, lane: usize, i: usize) -> u8 {
        let (n, k, j) = (i / CHUNK, i % CHUNK / 4, i % 4);
        let byte = self.nibbles[(at * CHUNKS + n) * 4 + k / 2].0[4 * lane + j];
        let low = if k % 2 == 0 { byte & 0x0F } else { byte >> 4 };
        match self.kind {
            Kind::Q4K => low,
            Kind::Q5K => low | ((self.high_bits[at * CHUNKS + n].0[4 * lane + j] >> k) & 1) << 4,
            Kind::Q6K => {
                let bits = self.high_bits[(at * CHUNKS + n) * 2 + k / 4].0[4 * lane + j];
                low | ((bits >> (2 * (k % 4))) & 3) << 4
            }
        }
    }

    /// Weight `i` of row `lane` in entry `at`, by ggml's own formulas (so a looked-up
    /// embedding is exactly candle's).
    fn weight(&self, at: usize, lane: usize, i: usize) -> f32 {
        let d = self.d[at][lane].to_f32();
        let q = self.quant(at, lane, i) as f32;
        match self.kind {
            Kind::Q6K => d * self.scales[at * 16 + i / 16][lane] as i8 as f32 * (q - 32.0),
            Kind::Q4K | Kind::Q5K => {
                let sub = i / 32;
                let min = self.mins[at * 4 + sub / 2][2 * lane + sub % 2];
                d * self.scales[at * 8 + sub][lane] as f32 * q - self.dmin[at][lane].to_f32() * min as f32
            }
        }
    }

    /// The sixteen rows of `group` against `T` tokens' activations, into `sums[t][lane]`.
    fn tile<const T: usize>(&self, group: usize, activations: [&[ActivationBlock]; T]) -> [[f32; GROUP]; T] {
        #[cfg(target_arch = "x86_64")]
        if self.features.avx2 {
            // SAFETY: the tier's features (a subset of the CPU's) have AVX2, FMA and F16C.
            return unsafe {
                match self.kind {
                    Kind::Q4K => tile_avx2::<4, T>(self, group, activations),
                    Kind::Q5K => tile_avx2::<5, T>(self, group, activations),
                    Kind::Q6K => tile_avx2::<6, T>(self, group, activations),
                }
            };
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
                    let dot: f32 = (0..QK).map(|i| self.weight(at, lane, i) * a.qs[i] as f32).sum();
                    *sum += dot * a.d;
                }
            }
        }
        sums
    }
}

impl CpuMatrix for KRows16Matrix {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let blocks = self.blocks();
        let activations: Vec<ActivationBlock> =
            x.par_chunks_exact(QK).with_min_len(QUANTIZE_BLOCKS_PER_TASK).map(quantize).collect();
        let tokens = |t: usize| &activations[t * blocks..(t + 1) * blocks];
        let rows = self.rows;
        let out = SharedOutput(out.as_mut_ptr());
        run_in_parallel(rows / GROUP, m * self.cols * GROUP, |range| {
            for group in range {
                let mut t = 0;
                while t < m {
                    let n = (m - t).min(TOKENS);
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
        for (b, values) in out.chunks_exact_mut(QK).enumerate() {
            let at = group * self.blocks() + b;
            for (i, value) in values.iter_mut().enumerate() {
                *value = self.weight(at, lane, i);
            }
        }
        Ok(())
    }
}

/// Four activation bytes, `x[4k..4k + 4]`, broadcast to every 32-bit lane.
///
/// # Safety
/// Only where the CPU has AVX; `k < 64`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn quadruple(a: &ActivationBlock, k: usize) -> std::arch::x86_64::__m256i {
    // SAFETY: `4k + 4 <= 256` (the caller's promise), an unaligned read of four bytes.
    unsafe { std::arch::x86_64::_mm256_set1_epi32(a.qs.as_ptr().add(4 * k).cast::<i32>().read_unaligned()) }
}

/// Bits `2i, 2i + 1` of each byte of `bits` moved to bits 4 and 5 (the rest cleared): `Q6_K`'s
/// top bits of quadruple `i` of a line.
///
/// # Safety
/// Only where the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn top_two_bits(bits: std::arch::x86_64::__m256i, i: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: the caller has AVX2. 16-bit shifts: whatever crosses into the neighbouring byte
    // is masked away.
    unsafe {
        let moved = match i {
            0 => _mm256_slli_epi16::<4>(bits),
            1 => _mm256_slli_epi16::<2>(bits),
            2 => bits,
            _ => _mm256_srli_epi16::<2>(bits),
        };
        _mm256_and_si256(moved, _mm256_set1_epi8(0x30))
    }
}

/// Bit `k` of each byte of `bits` moved to bit 4 (the rest cleared): `Q5_K`'s fifth bit of
/// quadruple `k` of a chunk.
///
/// # Safety
/// Only where the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fifth_bit(bits: std::arch::x86_64::__m256i, k: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: the caller has AVX2.
    unsafe {
        let moved = match k {
            0 => _mm256_slli_epi16::<4>(bits),
            1 => _mm256_slli_epi16::<3>(bits),
            2 => _mm256_slli_epi16::<2>(bits),
            3 => _mm256_slli_epi16::<1>(bits),
            4 => bits,
            5 => _mm256_srli_epi16::<1>(bits),
            6 => _mm256_srli_epi16::<2>(bits),
            _ => _mm256_srli_epi16::<3>(bits),
        };
        _mm256_and_si256(moved, _mm256_set1_epi8(0x10))
    }
}

/// Eight rows' scales (bytes, `i8` where `SIGNED`) as `i16` pairs, row `r`'s in both halves of
/// lane `r`: the second operand of a `vpmaddwd` that scales and widens a row's `i16` pairs.
///
/// # Safety
/// Only where the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scale_pairs<const SIGNED: bool>(scales: &[u8]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    assert!(scales.len() >= 8);
    // SAFETY: eight bytes, checked above; the caller has AVX2.
    unsafe {
        let bytes = _mm_loadl_epi64(scales.as_ptr().cast());
        let wide = match SIGNED {
            true => _mm256_cvtepi8_epi32(bytes),
            false => _mm256_cvtepu8_epi32(bytes),
        };
        _mm256_blend_epi16::<0xAA>(wide, _mm256_slli_epi32::<16>(wide))
    }
}

/// Sixteen rows × `T` tokens with AVX2; `BITS` is 4 (`Q4_K`), 5 (`Q5_K`) or 6 (`Q6_K`). Per
/// block and half of the group (eight rows), per chunk: each nibble line is unpacked once into
/// two registers of quadruples (with their high bits), which meet every token's broadcast
/// activations in `vpmaddubsw`; the `i16` pairs are summed as long as they cannot overflow
/// (`Q4_K` a whole chunk, 8 · 2 · 15 · 127 = 30480; `Q5_K` half of one, 4 · 2 · 31 · 127 =
/// 31496; `Q6_K` one line, 2 · 2 · 63 · 127 = 32004) and then scaled and widened to i32 by one
/// `vpmaddwd`. The block's minimums (or `Q6_K`'s `− 32`) and float scales follow once per
/// block.
///
/// # Safety
/// Only where the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<const BITS: u8, const T: usize>(
    matrix: &KRows16Matrix,
    group: usize,
    activations: [&[ActivationBlock]; T],
) -> [[f32; GROUP]; T] {
    use std::arch::x86_64::*;

    let blocks = matrix.blocks();
    assert!(activations.iter().all(|row| row.len() == blocks));
    let entries = (group + 1) * blocks;
    assert!(entries * CHUNKS * 4 <= matrix.nibbles.len() && entries <= matrix.d.len());
    assert!(entries * CHUNKS * matrix.kind.high_lines() <= matrix.high_bits.len());
    assert!(entries * (QK / matrix.kind.sub_block()) <= matrix.scales.len());
    assert!(BITS == 6 || (entries * 4 <= matrix.mins.len() && entries <= matrix.dmin.len()));
    let low4 = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..blocks {
        let at = group * blocks + b;
        // SAFETY (every access below): `at < entries`, so each array index is in bounds
        // (asserted above); activation rows hold `blocks` blocks (asserted); lines are 64-byte
        // aligned and each half is 32 bytes of one.
        unsafe {
            // A decode step streams the weights from memory; a prefill pass finds them in the
            // cache, where the hints would only take load slots.
            if T == 1 {
                crate::ggml::prefetch_ahead(matrix.nibbles.get_unchecked(at * CHUNKS * 4..(at + 1) * CHUNKS * 4));
                let high_lines = CHUNKS * matrix.kind.high_lines();
                crate::ggml::prefetch_ahead(matrix.high_bits.get_unchecked(at * high_lines..(at + 1) * high_lines));
            }
            // Per token, the activation sums of the block's pairs of 32-weight sub-blocks as
            // i16 pairs in one i32: the words [0, 1, 4, 5] of `packs(Σ16 + Σ16)`.
            let mut pair_sums = [[0i32; 8]; T];
            if BITS != 6 {
                for (t, words) in pair_sums.iter_mut().enumerate() {
                    let sums = _mm256_load_si256(activations[t].get_unchecked(b).sums.as_ptr().cast());
                    let by_32 = _mm256_madd_epi16(sums, ones);
                    _mm256_storeu_si256(words.as_mut_ptr().cast(), _mm256_packs_epi32(by_32, by_32));
                }
            }
            for half in 0..2 {
                let mut integer = [_mm256_setzero_si256(); T];
                for n in 0..CHUNKS {
                    let chunk = at * CHUNKS + n;
                    // The chunk's eight weight quadruples of eight rows, unpacked once.
                    let mut w = [_mm256_setzero_si256(); 8];
                    for c in 0..4 {
                        let line = matrix.nibbles.get_unchecked(chunk * 4 + c).0.as_ptr().add(32 * half);
                        let line = _mm256_load_si256(line.cast());
                        w[2 * c] = _mm256_and_si256(line, low4);
                        w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(line), low4);
                    }
                    if BITS == 5 {
                        let bits = matrix.high_bits.get_unchecked(chunk).0.as_ptr().add(32 * half);
                        let bits = _mm256_load_si256(bits.cast());
                        for (k, w) in w.iter_mut().enumerate() {
                            *w = _mm256_or_si256(*w, fifth_bit(bits, k));
                        }
                    }
                    if BITS == 6 {
                        for e in 0..2 {
                            let bits = matrix.high_bits.get_unchecked(chunk * 2 + e).0.as_ptr().add(32 * half);
                            let bits = _mm256_load_si256(bits.cast());
                            for i in 0..4 {
                                w[4 * e + i] = _mm256_or_si256(w[4 * e + i], top_two_bits(bits, i));
                            }
                        }
                    }
                    // Quadruples summed as i16 before one widening `vpmaddwd`: as many as
                    // cannot overflow, each run with its scale.
                    let run = match BITS {
                        4 => 8,
                        5 => 4,
                        _ => 2,
                    };
                    let scales: [__m256i; 2] = match BITS {
                        6 => std::array::from_fn(|e| {
                            scale_pairs::<true>(&matrix.scales.get_unchecked(at * 16 + 2 * n + e)[8 * half..])
                        }),
                        _ => [scale_pairs::<false>(&matrix.scales.get_unchecked(at * 8 + n)[8 * half..]); 2],
                    };
                    for t in 0..T {
                        let a = activations[t].get_unchecked(b);
                        let product = |k: usize| _mm256_maddubs_epi16(w[k], quadruple(a, 8 * n + k));
                        for first in (0..8).step_by(run) {
                            let pairs = (first + 1..first + run)
                                .fold(product(first), |sum, k| _mm256_add_epi16(sum, product(k)));
                            let scaled = _mm256_madd_epi16(pairs, scales[first / 4]);
                            integer[t] = _mm256_add_epi32(integer[t], scaled);
                        }
                    }
                    if BITS == 6 {
                        // Σ sc (q − 32) x = Σ sc q x − 32 Σ sc Σx, per pair of 16-weight blocks.
                        let scales = matrix.scales.get_unchecked(at * 16 + 2 * n..at * 16 + 2 * n + 2);
                        let first = _mm256_cvtepi8_epi32(_mm_loadl_epi64(scales[0][8 * half..].as_ptr().cast()));
                        let second = _mm256_cvtepi8_epi32(_mm_loadl_epi64(scales[1][8 * half..].as_ptr().cast()));
                        let scale = _mm256_blend_epi16::<0xAA>(first, _mm256_slli_epi32::<16>(second));
                        for t in 0..T {
                            let sums = activations[t].get_unchecked(b).sums.as_ptr().add(2 * n);
                            let sums = _mm256_set1_epi32(sums.cast::<i32>().read_unaligned());
                            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(scale, sums));
                            integer[t] = _mm256_sub_epi32(integer[t], offset);
                        }
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(matrix.d.get_unchecked(at).as_ptr().add(8 * half).cast()));
                if BITS == 6 {
                    for t in 0..T {
                        let a_d = _mm256_set1_ps(activations[t].get_unchecked(b).d);
                        let scaled = _mm256_mul_ps(d, _mm256_cvtepi32_ps(integer[t]));
                        acc[t][half] = _mm256_fmadd_ps(scaled, a_d, acc[t][half]);
                    }
                } else {
                    let dmin = matrix.dmin.get_unchecked(at).as_ptr().add(8 * half);
                    let dmin = _mm256_cvtph_ps(_mm_loadu_si128(dmin.cast()));
                    let mins: [__m256i; 4] = std::array::from_fn(|p| {
                        let pair = matrix.mins.get_unchecked(at * 4 + p).as_ptr().add(16 * half);
                        _mm256_cvtepu8_epi16(_mm_loadu_si128(pair.cast()))
                    });
                    for t in 0..T {
                        let words = &pair_sums[t];
                        let mut offset = _mm256_madd_epi16(mins[0], _mm256_set1_epi32(words[0]));
                        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(mins[1], _mm256_set1_epi32(words[1])));
                        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(mins[2], _mm256_set1_epi32(words[4])));
                        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(mins[3], _mm256_set1_epi32(words[5])));
                        let scaled = _mm256_mul_ps(d, _mm256_cvtepi32_ps(integer[t]));
                        let scaled = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(offset), scaled);
                        let a_d = _mm256_set1_ps(activations[t].get_unchecked(b).d);
                        acc[t][half] = _mm256_fmadd_ps(scaled, a_d, acc[t][half]);
                    }
                }
            }
        }
    }
    let mut sums = [[0f32; GROUP]; T];
    for (sum, acc) in sums.iter_mut().zip(acc) {
        // SAFETY: two times 8 floats into a 16-float array.
        unsafe {
            _mm256_storeu_ps(sum.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(sum.as_mut_ptr().add(8), acc[1]);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::test_support::values;

    /// Every tier against the f32 product of the dequantised weights with the quantised
    /// activations (what the kernels compute, up to float rounding), for decode, every partial
    /// pass and several whole ones; dequantised rows against candle's, bit for bit.
    #[test]
    fn every_tier_matches_the_exact_product_and_candles_dequantisation() {
        let (rows, cols) = (48, 2 * QK);
        let w = Tensor::from_vec(values(rows * cols, 11), (rows, cols), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
            let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let dequantized = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let dequantized = dequantized.to_vec1::<f32>().unwrap();
            for tier in Tier::supported() {
                let matrix = KRows16Matrix::from_tensor(&q, tier).unwrap();
                let mut row = vec![0f32; cols];
                for r in 0..rows {
                    matrix.dequantize_row(r, &mut row).unwrap();
                    assert_eq!(row, dequantized[r * cols..(r + 1) * cols], "{dtype:?} row {r}");
                }
                for m in [1, 2, 3, 4, 5, 9] {
                    let x = values(m * cols, 3 + m as u64);
                    let activations: Vec<ActivationBlock> = x.chunks_exact(QK).map(quantize).collect();
                    let mut out = vec![0f32; m * rows];
                    matrix.matmul(&x, &mut out).unwrap();
                    for t in 0..m {
                        for r in 0..rows {
                            let exact: f32 = (0..cols)
                                .map(|i| {
                                    let a = &activations[t * (cols / QK) + i / QK];
                                    dequantized[r * cols + i] * a.d * a.qs[i % QK] as f32
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

    /// The extremes of every field (largest quants and scales, most negative `Q6_K` scales,
    /// activations at ±127) hold without an `i16` overflow: the kernels agree with the
    /// portable loop on weights made to reach them.
    #[test]
    fn the_largest_quants_scales_and_activations_do_not_overflow() {
        let (rows, cols) = (16, QK);
        for kind in [Kind::Q4K, Kind::Q5K, Kind::Q6K] {
            let mut block = vec![0xFFu8; kind.block_bytes()];
            if kind == Kind::Q6K {
                block[192..208].fill(0x80); // every scale −128
            }
            // d and dmin: 1.0 as f16.
            let one = f16::ONE.to_le_bytes();
            match kind {
                Kind::Q6K => block[208..210].copy_from_slice(&one),
                _ => {
                    block[0..2].copy_from_slice(&one);
                    block[2..4].copy_from_slice(&one);
                }
            }
            let bytes = block.repeat(rows);
            // All +1, all −1 (every product at its largest, both signs), and two mixes.
            let x: Vec<f32> = (0..4 * cols)
                .map(|i| match i / cols {
                    0 => 1.0,
                    1 => -1.0,
                    2 => {
                        if i % 3 == 0 {
                            -1.0
                        } else {
                            1.0
                        }
                    }
                    _ => {
                        if i % 2 == 0 {
                            -1.0
                        } else {
                            0.5
                        }
                    }
                })
                .collect();
            let activations: Vec<ActivationBlock> = x.chunks_exact(QK).map(quantize).collect();
            let portable = KRows16Matrix::from_ggml_bytes(kind.dtype(), &bytes, rows, cols, Tier::Generic).unwrap();
            let expected = portable.tile_portable::<4>(0, std::array::from_fn(|t| &activations[t..t + 1]));
            for tier in Tier::supported() {
                let matrix = KRows16Matrix::from_ggml_bytes(kind.dtype(), &bytes, rows, cols, tier).unwrap();
                let mut out = vec![0f32; 4 * rows];
                matrix.matmul(&x, &mut out).unwrap();
                for t in 0..4 {
                    for r in 0..rows {
                        let want = expected[t][r];
                        assert!(
                            (out[t * rows + r] - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{kind:?} at {tier}, token {t} row {r}: {} vs {want}",
                            out[t * rows + r]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let bytes = vec![0u8; 8 * 144];
        assert!(KRows16Matrix::from_ggml_bytes(GgmlDType::Q4K, &bytes, 8, QK, Tier::Generic).is_err());
        assert!(KRows16Matrix::from_ggml_bytes(GgmlDType::Q4_0, &bytes, 16, QK, Tier::Generic).is_err());
        assert!(KRows16Matrix::from_ggml_bytes(GgmlDType::Q4K, &bytes[1..], 16, QK / 2, Tier::Generic).is_err());
        assert!(KRows16Matrix::from_ggml_bytes(GgmlDType::Q4K, &bytes, 16, QK, Tier::Generic).is_err());
        assert!(!KRows16Matrix::fits(GgmlDType::Q6K, 0));
    }
}
