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
//! work is done once per 8 (AVX2) or 16 (AVX-512) rows. Each unpacked chunk serves several tokens.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use crate::ShapeError;
use crate::ggml::{CpuMatrix, SharedOutput, check_block_bytes, check_row, check_shapes, run_in_parallel};
use crate::k_quants::{ActivationBlock, QUANTIZE_BLOCKS_PER_TASK, quantize};
use crate::tier::{CpuFeatures, Tier};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Weights of a ggml K-quant block.
const QK: usize = 256;
/// Weights of a chunk: four lines of nibbles.
const CHUNK: usize = 32;
const CHUNKS: usize = QK / CHUNK;
/// Rows side by side: eight 32-bit lanes in each half of a pair of 256-bit registers.
pub(crate) const GROUP: usize = 16;
/// Tokens multiplied per pass over a group's blocks (each unpacked chunk serves this many): the
/// most that keep the chunk's quadruples, the accumulators and the temporaries in AVX2's sixteen
/// registers, and in AVX-512's thirty-two.
const TOKENS_AVX2: usize = 4;
const TOKENS_VNNI: usize = 8;

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

/// Whether matrices are held this way at `tier`: wherever it has AVX2 (below that, candle's
/// dot products on ggml's blocks are as good as a portable loop here).
pub(crate) fn available(tier: Tier) -> bool {
    tier.features().avx2
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

    /// Ask for the lines of `chunk` (`[group][block][chunk]` index) a prefetch distance ahead,
    /// in each of the weight arrays. Issued chunk by chunk between the products rather than a
    /// block's worth at once, so that the requests never wait for free fill buffers in a
    /// burst (a whole block's 32 at once took a third of a batched decode step's samples).
    ///
    /// # Safety
    /// Only where the CPU has SSE (every x86-64 CPU); `chunk` a chunk of the matrix.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn prefetch_chunk(&self, chunk: usize) {
        let high = self.kind.high_lines();
        // SAFETY: `chunk` is in bounds (the caller's promise), so are its lines.
        unsafe {
            crate::ggml::prefetch_ahead(self.nibbles.get_unchecked(chunk * 4..chunk * 4 + 4));
            crate::ggml::prefetch_ahead(self.high_bits.get_unchecked(chunk * high..(chunk + 1) * high));
        }
    }

    /// The same for block `at`'s scales, minimums and `d`s, once a block.
    ///
    /// # Safety
    /// As [`prefetch_chunk`](Self::prefetch_chunk); `at` a block of the matrix.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn prefetch_block_scales(&self, at: usize) {
        let subs = QK / self.kind.sub_block();
        // SAFETY: `at` is in bounds (the caller's promise); the minimums and `dmin` of `Q6_K`
        // are empty, and an empty slice prefetches nothing.
        unsafe {
            crate::ggml::prefetch_ahead(self.scales.get_unchecked(at * subs..(at + 1) * subs));
            crate::ggml::prefetch_ahead(self.d.get_unchecked(at..at + 1));
            if self.kind != Kind::Q6K {
                crate::ggml::prefetch_ahead(self.mins.get_unchecked(at * 4..at * 4 + 4));
                crate::ggml::prefetch_ahead(self.dmin.get_unchecked(at..at + 1));
            }
        }
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
    /// `stream`: the first pass over the group, which reads its weights from memory.
    fn tile<const T: usize>(
        &self,
        group: usize,
        activations: [&[ActivationBlock]; T],
        stream: bool,
    ) -> [[f32; GROUP]; T] {
        #[cfg(target_arch = "x86_64")]
        if self.features.avx512_vnni {
            // SAFETY: the tier's features (a subset of the CPU's) have AVX-512 F/BW/VL/VNNI.
            return unsafe {
                match self.kind {
                    Kind::Q4K => avx512::tile::<4, T>(self, group, activations, stream),
                    Kind::Q5K => avx512::tile::<5, T>(self, group, activations, stream),
                    Kind::Q6K => avx512::tile::<6, T>(self, group, activations, stream),
                }
            };
        }
        #[cfg(target_arch = "x86_64")]
        if self.features.avx2 {
            // SAFETY: the tier's features (a subset of the CPU's) have AVX2, FMA and F16C.
            return unsafe {
                match self.kind {
                    Kind::Q4K => avx2::tile::<4, T>(self, group, activations, stream),
                    Kind::Q5K => avx2::tile::<5, T>(self, group, activations, stream),
                    Kind::Q6K => avx2::tile::<6, T>(self, group, activations, stream),
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
                        8 => write(&self.tile::<8>(group, std::array::from_fn(row), t == 0)),
                        7 => write(&self.tile::<7>(group, std::array::from_fn(row), t == 0)),
                        6 => write(&self.tile::<6>(group, std::array::from_fn(row), t == 0)),
                        5 => write(&self.tile::<5>(group, std::array::from_fn(row), t == 0)),
                        4 => write(&self.tile::<4>(group, std::array::from_fn(row), t == 0)),
                        3 => write(&self.tile::<3>(group, std::array::from_fn(row), t == 0)),
                        2 => write(&self.tile::<2>(group, std::array::from_fn(row), t == 0)),
                        _ => write(&self.tile::<1>(group, [row(0)], t == 0)),
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
