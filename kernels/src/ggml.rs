//! Any ggml quantisation candle knows, multiplied without a second copy of the weights.
//!
//! candle's own CPU matmul loops over activation rows on the outside, so a prefill chunk of
//! `m` tokens streams every weight from memory `m` times; its AVX-512 path avoids that by
//! repacking weights into tiles on first use, and keeps both copies (about 2.3× the file for
//! Q4_K). [`GgmlMatrix`] keeps only ggml's blocks and puts the weight rows on the outside: a
//! group of four weight rows is read once and multiplied against every activation row while it
//! sits in L1, using candle's SIMD dot products (`GgmlType::vec_dot_4`).

use std::sync::Arc;

use candle_core::quantized::k_quants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5_1, BlockQ5K, BlockQ6K, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use crate::block32::{self, Block32, Block32Matrix};
use crate::k_rows16::{self, KRows16Matrix};
use crate::rows16::Rows16Matrix;
use crate::tier::Tier;
use crate::{Q4_1Matrix, ShapeError};

/// A quantised `rows × cols` weight matrix on the CPU (rows are outputs, as in a linear layer).
pub trait CpuMatrix: Send + Sync {
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;
    /// `out = x · Wᵀ` for `x` of `m × cols` (row-major), `out` of `m × rows`.
    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError>;
    /// Row `row` as f32 (an embedding lookup), into `out` of `cols` values.
    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError>;
}

/// The matrix for a GGUF tensor's raw bytes, multiplied with the kernels of `tier`, or `None`
/// for a type without a kernel here (floats, which candle multiplies well itself).
pub fn cpu_matrix(
    dtype: GgmlDType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    tier: Tier,
) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
    fn boxed<T: GgmlType + 'static>(
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
        Ok(Some(Box::new(GgmlMatrix::<T>::from_ggml_bytes(bytes, rows, cols)?)))
    }
    fn block32<B: Block32>(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        tier: Tier,
    ) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
        Ok(Some(Box::new(Block32Matrix::<B>::from_ggml_bytes(bytes, rows, cols, tier)?)))
    }
    match dtype {
        // Sixteen rows side by side wherever the row count allows (all of the catalog's).
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 if Rows16Matrix::fits(dtype, rows) => {
            Ok(Some(Box::new(Rows16Matrix::from_ggml_bytes(dtype, bytes, rows, cols, tier)?)))
        }
        GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K
            if k_rows16::available(tier) && KRows16Matrix::fits(dtype, rows) =>
        {
            Ok(Some(Box::new(KRows16Matrix::from_ggml_bytes(dtype, bytes, rows, cols, tier)?)))
        }
        GgmlDType::Q4_1 => Ok(Some(Box::new(Q4_1Matrix::from_ggml_bytes(bytes, rows, cols, tier)?))),
        GgmlDType::Q4_0 => block32::<block32::BlockQ4_0>(bytes, rows, cols, tier),
        GgmlDType::Q5_0 => block32::<block32::BlockQ5_0>(bytes, rows, cols, tier),
        GgmlDType::Q8_0 => block32::<block32::BlockQ8_0>(bytes, rows, cols, tier),
        GgmlDType::Q5_1 => boxed::<BlockQ5_1>(bytes, rows, cols),
        GgmlDType::Q2K => boxed::<BlockQ2K>(bytes, rows, cols),
        GgmlDType::Q3K => boxed::<BlockQ3K>(bytes, rows, cols),
        GgmlDType::Q4K => boxed::<BlockQ4K>(bytes, rows, cols),
        GgmlDType::Q5K => boxed::<BlockQ5K>(bytes, rows, cols),
        GgmlDType::Q6K => boxed::<BlockQ6K>(bytes, rows, cols),
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 | GgmlDType::Q8_1 | GgmlDType::Q8K => Ok(None),
    }
}

/// Like [`cpu_matrix`], but viewing `tensor`'s storage instead of copying it where the block
/// type allows (every type but Q4_1, whose kernel keeps its own copy, and the Q4_0/Q4_1/Q5_0
/// matrices regrouped sixteen rows side by side, which replace candle's).
pub fn cpu_matrix_view(tensor: &Arc<QTensor>, tier: Tier) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
    fn viewed<T: GgmlType + 'static>(tensor: &Arc<QTensor>) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
        Ok(Some(Box::new(GgmlMatrix::<T>::view(tensor.clone())?)))
    }
    fn block32<B: Block32>(tensor: &Arc<QTensor>, tier: Tier) -> Result<Option<Box<dyn CpuMatrix>>, ShapeError> {
        Ok(Some(Box::new(Block32Matrix::<B>::view(tensor.clone(), tier)?)))
    }
    let rows = tensor.shape().dims2().map_or(0, |(rows, _)| rows);
    match tensor.dtype() {
        // K-quants sixteen rows side by side (a copy, after which candle's tensor is dropped).
        dtype @ (GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K)
            if k_rows16::available(tier) && KRows16Matrix::fits(dtype, rows) =>
        {
            Ok(Some(Box::new(KRows16Matrix::from_tensor(tensor, tier)?)))
        }
        // Row counts that are not a multiple of 16: kernels on ggml's blocks.
        GgmlDType::Q4K | GgmlDType::Q6K if crate::k_quants::available(tier) => crate::k_quants::view(tensor, tier),
        // Regrouped sixteen rows side by side: a copy, after which candle's tensor is dropped.
        dtype @ (GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0) if Rows16Matrix::fits(dtype, rows) => {
            Ok(Some(Box::new(Rows16Matrix::from_tensor(tensor, tier)?)))
        }
        GgmlDType::Q4_0 => block32::<block32::BlockQ4_0>(tensor, tier),
        GgmlDType::Q5_0 => block32::<block32::BlockQ5_0>(tensor, tier),
        GgmlDType::Q8_0 => block32::<block32::BlockQ8_0>(tensor, tier),
        GgmlDType::Q5_1 => viewed::<BlockQ5_1>(tensor),
        GgmlDType::Q2K => viewed::<BlockQ2K>(tensor),
        GgmlDType::Q3K => viewed::<BlockQ3K>(tensor),
        GgmlDType::Q4K => viewed::<BlockQ4K>(tensor),
        GgmlDType::Q5K => viewed::<BlockQ5K>(tensor),
        GgmlDType::Q6K => viewed::<BlockQ6K>(tensor),
        dtype => {
            let (rows, cols) = tensor.shape().dims2().map_err(|e| ShapeError(e.to_string()))?;
            cpu_matrix(dtype, &tensor.data().map_err(|e| ShapeError(e.to_string()))?, rows, cols, tier)
        }
    }
}

/// Rows handled together: here four weight rows share each activation load (`vec_dot_4`); in
/// our own kernels four activation rows share each unpacked weight block ([`dot_every_token`]).
pub(crate) const ROW_GROUP: usize = 4;
/// Roughly how many weight values one unit of parallel work multiplies, so that small matrices
/// are not split into pieces that cost more to hand out than to compute.
pub(crate) const VALUES_PER_UNIT: usize = 128 * 1024;

pub struct GgmlMatrix<T: GgmlType> {
    blocks: Blocks<T>,
    rows: usize,
    cols: usize,
}

/// ggml blocks, either our own copy or a view of a candle tensor's storage (so a matrix that
/// candle also multiplies is in memory once).
pub(crate) enum Blocks<T> {
    Owned(Vec<T>),
    /// `_tensor` owns the storage `start` points into.
    Viewed {
        _tensor: Arc<QTensor>,
        start: *const T,
        len: usize,
    },
}

// SAFETY: a viewed tensor is immutable and kept alive by the `Arc` beside the pointer; the
// blocks themselves are plain data.
unsafe impl<T: Send + Sync> Send for Blocks<T> {}
unsafe impl<T: Send + Sync> Sync for Blocks<T> {}

impl<T> Blocks<T> {
    /// The storage of a CPU tensor of `dtype`, as `len` blocks of `T` (ggml's layout for it).
    pub(crate) fn view(tensor: Arc<QTensor>, dtype: GgmlDType, len: usize) -> Result<Self, ShapeError> {
        if tensor.dtype() != dtype || !tensor.device().is_cpu() {
            return Err(ShapeError(format!("a {dtype:?} CPU matrix cannot view a {:?} tensor", tensor.dtype())));
        }
        let data = tensor.data().map_err(|e| ShapeError(e.to_string()))?;
        let std::borrow::Cow::Borrowed(bytes) = data else {
            return Err(ShapeError("candle copied the tensor's data instead of lending it".into()));
        };
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>());
        if bytes.len() != len * std::mem::size_of::<T>() || !aligned {
            return Err(ShapeError(format!("the tensor's storage is not {len} aligned {dtype:?} blocks")));
        }
        let start = bytes.as_ptr().cast::<T>();
        Ok(Self::Viewed { _tensor: tensor.clone(), start, len })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Owned(blocks) => blocks,
            // SAFETY: `start..start + len` is the CPU storage of `tensor`, checked to be that
            // many `T` blocks when the view was made, and `tensor` lives as long as `self`.
            Self::Viewed { _tensor: _, start, len } => unsafe { std::slice::from_raw_parts(*start, *len) },
        }
    }
}

impl<T: GgmlType> GgmlMatrix<T> {
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        let count = check_block_bytes(T::DTYPE, bytes, rows, cols, T::BLCK_SIZE, std::mem::size_of::<T>())?;
        let mut blocks = vec![T::zeros(); count];
        // SAFETY: ggml blocks are plain `repr(C)` data (f16s and byte arrays, as candle's own
        // loader reads them), `blocks` has exactly `bytes.len()` bytes, and the regions are
        // distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), blocks.as_mut_ptr().cast::<u8>(), bytes.len()) };
        Ok(Self { blocks: Blocks::Owned(blocks), rows, cols })
    }

    /// A view of a 2-D CPU tensor of this block type, without copying it.
    pub fn view(tensor: Arc<QTensor>) -> Result<Self, ShapeError> {
        let (rows, cols) = tensor.shape().dims2().map_err(|e| ShapeError(e.to_string()))?;
        if !cols.is_multiple_of(T::BLCK_SIZE) {
            return Err(ShapeError(format!("{:?} rows must be a multiple of {} wide", T::DTYPE, T::BLCK_SIZE)));
        }
        let blocks = Blocks::view(tensor, T::DTYPE, rows * cols / T::BLCK_SIZE)?;
        Ok(Self { blocks, rows, cols })
    }

    fn row(&self, row: usize) -> &[T] {
        let per_row = self.cols / T::BLCK_SIZE;
        &self.blocks.as_slice()[row * per_row..(row + 1) * per_row]
    }
}

impl<T: GgmlType> CpuMatrix for GgmlMatrix<T> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matmul(&self, x: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
        let m = check_shapes(x, out, self.rows, self.cols)?;
        let per_row = self.cols / T::VecDotType::BLCK_SIZE;
        let mut activations = vec![T::VecDotType::zeros(); m * per_row];
        for (values, blocks) in x.chunks_exact(self.cols).zip(activations.chunks_exact_mut(per_row)) {
            T::VecDotType::from_float(values, blocks);
        }
        let (k, rows) = (self.cols, self.rows);
        let out = SharedOutput(out.as_mut_ptr());
        let groups = |range: std::ops::Range<usize>| {
            for group in range {
                let first = group * ROW_GROUP;
                let written = |t: usize, i: usize, value: f32| {
                    // SAFETY: each call owns its weight rows, i.e. its own output columns, and
                    // `t < m`: writes never overlap and stay inside `out`.
                    unsafe { out.write(t * rows + first + i, value) }
                };
                if first + ROW_GROUP <= rows {
                    let w = [0, 1, 2, 3].map(|i| self.row(first + i));
                    for (t, a) in activations.chunks_exact(per_row).enumerate() {
                        let (d0, d1, d2, d3) = T::vec_dot_4(k, w[0], w[1], w[2], w[3], a);
                        for (i, d) in [d0, d1, d2, d3].into_iter().enumerate() {
                            written(t, i, d);
                        }
                    }
                } else {
                    for i in 0..rows - first {
                        for (t, a) in activations.chunks_exact(per_row).enumerate() {
                            written(t, i, T::vec_dot(k, self.row(first + i), a));
                        }
                    }
                }
            }
        };
        run_in_parallel(rows.div_ceil(ROW_GROUP), m * ROW_GROUP * k, groups);
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_row(row, out, self.rows, self.cols)?;
        T::to_float(self.row(row), out);
        Ok(())
    }
}

/// The number of activation rows in `x`, after checking `x` and `out` fit the matrix.
pub(crate) fn check_shapes(x: &[f32], out: &[f32], rows: usize, cols: usize) -> Result<usize, ShapeError> {
    if !x.len().is_multiple_of(cols) {
        return Err(ShapeError(format!("{} activations are not rows of {cols}", x.len())));
    }
    let m = x.len() / cols;
    if out.len() != m * rows {
        return Err(ShapeError(format!("output holds {} values, {} needed", out.len(), m * rows)));
    }
    Ok(m)
}

/// The number of `block`-wide blocks in a `rows × cols` matrix of `dtype`, after checking that
/// rows are whole blocks and `bytes` holds exactly that many `block_bytes`-byte blocks.
pub(crate) fn check_block_bytes(
    dtype: GgmlDType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    block: usize,
    block_bytes: usize,
) -> Result<usize, ShapeError> {
    if cols == 0 || !cols.is_multiple_of(block) {
        return Err(ShapeError(format!("{dtype:?} rows must be a positive multiple of {block} wide, not {cols}")));
    }
    let count = rows * cols / block;
    let expected = count * block_bytes;
    if bytes.len() != expected {
        return Err(ShapeError(format!(
            "a {rows}×{cols} {dtype:?} matrix is {expected} bytes, but {} were given",
            bytes.len()
        )));
    }
    Ok(count)
}

/// Dot products of one weight row with `R` consecutive activation rows, from `first` on.
pub(crate) trait TokenDots {
    fn dots<const R: usize>(&self, first: usize) -> [f32; R];
}

/// One weight row against every activation row `0..m`, [`ROW_GROUP`] at a time so that each
/// unpacked weight block serves several tokens; each result goes to `write(token, value)`.
pub(crate) fn dot_every_token(m: usize, dots: &impl TokenDots, mut write: impl FnMut(usize, f32)) {
    let mut t = 0;
    while t < m {
        let group = (m - t).min(ROW_GROUP);
        let mut sums = [0f32; ROW_GROUP];
        match group {
            4 => sums = dots.dots::<4>(t),
            3 => sums[..3].copy_from_slice(&dots.dots::<3>(t)),
            2 => sums[..2].copy_from_slice(&dots.dots::<2>(t)),
            _ => sums[..1].copy_from_slice(&dots.dots::<1>(t)),
        }
        for (i, sum) in sums[..group].iter().enumerate() {
            write(t + i, *sum);
        }
        t += group;
    }
}

pub(crate) fn check_row(row: usize, out: &[f32], rows: usize, cols: usize) -> Result<(), ShapeError> {
    if row >= rows {
        return Err(ShapeError(format!("row {row} of a {rows}-row matrix")));
    }
    if out.len() != cols {
        return Err(ShapeError(format!("a row has {cols} values, not {}", out.len())));
    }
    Ok(())
}

/// Run `work` over `0..units` on rayon's pool (the one candle's float ops use), or inline when all
/// of it (`values_per_unit` weight values per unit) is too little to be worth waking threads for.
///
/// Not candle's spinning barrier pool: a barrier waits for its slowest thread, so when another
/// process takes a core for a few milliseconds every matmul waits that long (we measured decode
/// falling from 75 to 3 tokens/s during a compile); rayon's work stealing lets the threads that
/// do run take over the work.
pub(crate) fn run_in_parallel(units: usize, values_per_unit: usize, work: impl Fn(std::ops::Range<usize>) + Sync) {
    let units_per_piece = (VALUES_PER_UNIT / values_per_unit.max(1)).max(1);
    if units_per_piece >= units {
        work(0..units);
        return;
    }
    let pieces = units.div_ceil(units_per_piece);
    (0..pieces).into_par_iter().for_each(|piece| {
        work(piece * units_per_piece..((piece + 1) * units_per_piece).min(units));
    });
}

/// An output slice written by several threads at disjoint indices.
#[derive(Clone, Copy)]
pub(crate) struct SharedOutput(pub(crate) *mut f32);

// SAFETY: threads write disjoint elements (each matmul hands out distinct weight rows), and the
// slice outlives the parallel loop.
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// # Safety
    /// `index` must be in bounds and written by no other thread.
    pub(crate) unsafe fn write(self, index: usize, value: f32) {
        unsafe { *self.0.add(index) = value };
    }
}

/// How far ahead of the block being multiplied a decode loop asks for weights: 1 KiB, about
/// seven Q4_K blocks.
///
/// A one-token pass is bound by reading the weights once, as a stream. The hardware
/// prefetchers alone left the loads waiting on memory (perf put half of Q4_K's decode time on
/// the instructions just after its weight loads) and do not cross a 4 KiB page, which is what
/// the weights live in; a software prefetch this far ahead took Qwen2.5-1.5B's decode from 12
/// to 19 tokens/s on a 2-core Xeon with AVX-512 (2 KiB measured no better).
const PREFETCH_BYTES: usize = 1024;

/// Ask for the cache lines `PREFETCH_BYTES` after those of `blocks`, the weights a decode loop
/// is about to multiply (a hint: it never faults, also past the end of the matrix).
///
/// # Safety
/// Only where the CPU has SSE (every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_ahead<T>(blocks: &[T]) {
    use std::arch::x86_64::*;
    let ahead = blocks.as_ptr().cast::<i8>().wrapping_add(PREFETCH_BYTES);
    let mut line = 0;
    while line < size_of_val(blocks) {
        // SAFETY: a prefetch reads nothing the program sees and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line)) };
        line += 64;
    }
}

/// The sum of a register's eight floats.
///
/// # Safety
/// Only where the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn sum_lanes(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller has AVX.
    unsafe {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;
    use crate::test_support::{rms_error, values};

    /// Every quantisation the GGUFs we meet use, on every tier this CPU runs, for a decode
    /// step, a few rows and a prefill chunk, and row counts not a multiple of four: measured
    /// against the exact product with the dequantised weights, at least as accurate as candle's
    /// own matmul of the same blocks (which on AVX-512 machines quantises activations more
    /// coarsely, per 256 values).
    #[test]
    fn as_accurate_as_candle_for_every_quantisation_on_every_tier() {
        let dtypes = [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ];
        let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        for (dtype, tier) in dtypes.into_iter().flat_map(|dtype| Tier::supported().map(move |tier| (dtype, tier))) {
            for (rows, cols) in [(256, 512), (35, 256)] {
                let w = Tensor::from_vec(values(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
                let q = QTensor::quantize(&w, dtype).unwrap();
                let q = Arc::new(q);
                let ours = cpu_matrix(dtype, &q.data().unwrap(), rows, cols, tier).unwrap().unwrap();
                let viewed = cpu_matrix_view(&q, tier).unwrap().unwrap();
                let dequantized = q.dequantize(&Device::Cpu).unwrap();
                let mut row = vec![0f32; cols];
                ours.dequantize_row(rows - 1, &mut row).unwrap();
                assert_eq!(row, flat(dequantized.get(rows - 1).unwrap()), "{dtype:?} at {tier}: dequantised row");
                let candle = QMatMul::from_arc(q).unwrap();
                for m in [1, 3, 64] {
                    let x = values(m * cols, m as u64 + 11);
                    let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
                    let exact = flat(xt.matmul(&dequantized.t().unwrap()).unwrap());
                    let candle_error = rms_error(&flat(candle.forward(&xt).unwrap()), &exact);
                    let mut got = vec![0f32; m * rows];
                    ours.matmul(&x, &mut got).unwrap();
                    let mut got_viewed = vec![0f32; m * rows];
                    viewed.matmul(&x, &mut got_viewed).unwrap();
                    let error = rms_error(&got, &exact);
                    let scale = rms_error(&exact, &vec![0.0; exact.len()]);
                    // A view may pick a kernel of its own (Q6_K on AVX-512): the same sums in
                    // another order.
                    let apart = rms_error(&got, &got_viewed);
                    assert!(apart <= 1e-5 * scale, "{dtype:?} at {tier}: a view multiplies like a copy ({apart})");
                    assert!(
                        error <= candle_error * 1.25 + 1e-5 * scale && error < 0.05 * scale,
                        "{dtype:?} at {tier} {rows}×{cols} m={m}: error {error} vs candle's {candle_error}, outputs ~{scale}"
                    );
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_and_rows_are_errors_not_panics() {
        let bytes = vec![0u8; 2 * 34];
        let tier = Tier::active();
        assert!(cpu_matrix(GgmlDType::Q8_0, &bytes, 2, 33, tier).is_err());
        assert!(cpu_matrix(GgmlDType::Q8_0, &bytes[1..], 2, 32, tier).is_err());
        let m = cpu_matrix(GgmlDType::Q8_0, &bytes, 2, 32, tier).unwrap().unwrap();
        assert!(m.matmul(&[0.0; 31], &mut [0.0; 2]).is_err());
        assert!(m.dequantize_row(2, &mut [0.0; 32]).is_err());
        assert!(m.dequantize_row(0, &mut [0.0; 31]).is_err());
        assert!(cpu_matrix(GgmlDType::F32, &[0; 8], 1, 2, tier).unwrap().is_none());
    }
}
