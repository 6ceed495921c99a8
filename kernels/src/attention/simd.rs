//! A span's attention ([`super::attend`]) in AVX2 or AVX-512 registers, one generic body over
//! the register width.
//!
//! Written for throughput rather than in the formula's order. Scores: each key is read once
//! for up to four query heads, two keys at a time, so that every register loaded feeds several
//! of eight independent chains of fused multiply-adds (one chain per dot product, as the
//! portable loop has, is bound by the adds' latency). Weighted sums: two registers' worth of a
//! head's dimensions for up to four heads are summed in registers over every position, so each
//! value row is read once per block of heads and the output is stored once. The cache's `f16`
//! are widened as they are loaded (F16C, or AVX-512 F's own conversion).

use std::arch::x86_64::*;

use half::f16;

use super::{Partial, softmax_rows};
use crate::Tier;

/// Head sizes each width handles: a multiple of two registers' floats.
pub(super) const AVX2_DIMS: usize = 2 * 8;
pub(super) const AVX512_DIMS: usize = 2 * 16;

/// How far ahead of the row being read the next rows are asked for.
const PREFETCH_ROWS: usize = 8;

/// The register operations the body needs, for one width.
///
/// # Safety
/// Every method only inside a function compiled with the width's target features; `load*` read
/// and `store` writes `WIDTH` values at the pointer given.
trait Lanes: Copy {
    const WIDTH: usize;
    unsafe fn zero() -> Self;
    /// `WIDTH` floats from `at`.
    unsafe fn load(at: *const f32) -> Self;
    /// `WIDTH` halves from `at`, widened.
    unsafe fn load_half(at: *const f16) -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// `a · b + c`.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn sum(self) -> f32;
    unsafe fn store(self, at: *mut f32);
}

#[derive(Clone, Copy)]
struct Avx2(__m256);

// Each method is one or two intrinsics whose only requirements are the trait's contract.
#[allow(unsafe_op_in_unsafe_fn)]
impl Lanes for Avx2 {
    const WIDTH: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        Avx2(_mm256_loadu_ps(at))
    }
    #[inline(always)]
    unsafe fn load_half(at: *const f16) -> Self {
        Avx2(_mm256_cvtph_ps(_mm_loadu_si128(at.cast())))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx2(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx2(_mm256_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        let four = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        _mm256_storeu_ps(at, self.0)
    }
}

#[derive(Clone, Copy)]
struct Avx512(__m512);

#[allow(unsafe_op_in_unsafe_fn)]
impl Lanes for Avx512 {
    const WIDTH: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        Avx512(_mm512_loadu_ps(at))
    }
    #[inline(always)]
    unsafe fn load_half(at: *const f16) -> Self {
        Avx512(_mm512_cvtph_ps(_mm256_loadu_si256(at.cast())))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx512(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx512(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        _mm512_reduce_add_ps(self.0)
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        _mm512_storeu_ps(at, self.0)
    }
}

/// [`super::attend`] in 256-bit registers, for head sizes that are a multiple of [`AVX2_DIMS`].
///
/// # Safety
/// Only where the CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn attend_avx2(
    queries: &[f32],
    keys: &[f16],
    values: &[f16],
    head_dim: usize,
    scale: f32,
) -> Partial {
    // SAFETY: this function's features are Avx2's.
    unsafe { attend::<Avx2>(queries, keys, values, head_dim, scale) }
}

/// [`super::attend`] in 512-bit registers, for head sizes that are a multiple of
/// [`AVX512_DIMS`].
///
/// # Safety
/// Only where the CPU has AVX-512 F (and AVX2, FMA and F16C).
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub(super) unsafe fn attend_avx512(
    queries: &[f32],
    keys: &[f16],
    values: &[f16],
    head_dim: usize,
    scale: f32,
) -> Partial {
    // SAFETY: this function's features are Avx512's.
    unsafe { attend::<Avx512>(queries, keys, values, head_dim, scale) }
}

/// # Safety
/// Only inside a function compiled with `V`'s features; `head_dim` a multiple of `2 · WIDTH`.
#[inline(always)]
unsafe fn attend<V: Lanes>(queries: &[f32], keys: &[f16], values: &[f16], head_dim: usize, scale: f32) -> Partial {
    let (group, len) = (queries.len() / head_dim, keys.len() / head_dim);
    assert!(head_dim.is_multiple_of(2 * V::WIDTH) && values.len() == keys.len());
    let mut partial = Partial::empty(group, head_dim);
    if len == 0 {
        return partial;
    }
    let mut scores = vec![0f32; group * len];
    for first in (0..group).step_by(4) {
        // SAFETY (both matches): the caller's promise; `first + count <= group`.
        unsafe {
            match group - first {
                1 => score_rows::<V, 1>(queries, first, keys, head_dim, scale, &mut scores),
                2 => score_rows::<V, 2>(queries, first, keys, head_dim, scale, &mut scores),
                3 => score_rows::<V, 3>(queries, first, keys, head_dim, scale, &mut scores),
                _ => score_rows::<V, 4>(queries, first, keys, head_dim, scale, &mut scores),
            }
        }
    }
    // The width's features include AVX2 and FMA, what the exponentials need.
    softmax_rows(Tier::Avx2, &mut scores, len, &mut partial);
    for first in (0..group).step_by(4) {
        let weighted = &mut partial.weighted;
        unsafe {
            match group - first {
                1 => weigh_values::<V, 1>(&scores, first, values, head_dim, weighted),
                2 => weigh_values::<V, 2>(&scores, first, values, head_dim, weighted),
                3 => weigh_values::<V, 3>(&scores, first, values, head_dim, weighted),
                _ => weigh_values::<V, 4>(&scores, first, values, head_dim, weighted),
            }
        }
    }
    partial
}

/// `R` query heads (rows of `queries` from `first`) against every key, two keys at a time:
/// `scores[r · len + j]`, scaled.
///
/// # Safety
/// As [`attend`].
#[inline(always)]
unsafe fn score_rows<V: Lanes, const R: usize>(
    queries: &[f32],
    first: usize,
    keys: &[f16],
    head_dim: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let len = keys.len() / head_dim;
    assert!(queries.len() >= (first + R) * head_dim && scores.len() >= (first + R) * len);
    let (q, k) = (queries.as_ptr(), keys.as_ptr());
    let mut j = 0;
    while j < len {
        let pair = len - j >= 2;
        // SAFETY: reads within `queries` (asserted) and key rows `j` and, when `pair`, `j + 1`;
        // writes within `scores` (asserted); `V`'s features (the caller's promise).
        unsafe {
            // The caches of a batch's sequences are read once a step, from memory rather than
            // cache: ask for the keys a few rows ahead (a hint; past the end it does nothing).
            for line in (0..2 * head_dim).step_by(32) {
                _mm_prefetch::<_MM_HINT_T0>(k.wrapping_add((j + PREFETCH_ROWS) * head_dim + line).cast());
            }
            let mut acc = [[V::zero(); 2]; R];
            for c in (0..head_dim).step_by(V::WIDTH) {
                let k0 = V::load_half(k.add(j * head_dim + c));
                let k1 = if pair { V::load_half(k.add((j + 1) * head_dim + c)) } else { k0 };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let query = V::load(q.add((first + r) * head_dim + c));
                    acc[0] = V::fma(query, k0, acc[0]);
                    acc[1] = V::fma(query, k1, acc[1]);
                }
            }
            for (r, acc) in acc.into_iter().enumerate() {
                *scores.get_unchecked_mut((first + r) * len + j) = acc[0].sum() * scale;
                if pair {
                    *scores.get_unchecked_mut((first + r) * len + j + 1) = acc[1].sum() * scale;
                }
            }
        }
        j += if pair { 2 } else { 1 };
    }
}

/// The weighted sums of `R` query heads (from `first`) over every value row, two registers of
/// the head's dimensions at a time, summed in registers across all the positions.
///
/// # Safety
/// As [`attend`].
#[inline(always)]
unsafe fn weigh_values<V: Lanes, const R: usize>(
    weights: &[f32],
    first: usize,
    values: &[f16],
    head_dim: usize,
    weighted: &mut [f32],
) {
    let len = values.len() / head_dim;
    assert!(weights.len() >= (first + R) * len && weighted.len() >= (first + R) * head_dim);
    let (w, v, out) = (weights.as_ptr(), values.as_ptr(), weighted.as_mut_ptr());
    for c in (0..head_dim).step_by(2 * V::WIDTH) {
        // SAFETY: reads within `weights` (asserted) and value rows `0..len` at dimensions
        // `c..c + 2 · WIDTH <= head_dim` (a multiple of that); writes within `weighted`
        // (asserted); `V`'s features (the caller's promise).
        unsafe {
            let mut acc = [[V::zero(); 2]; R];
            for j in 0..len {
                _mm_prefetch::<_MM_HINT_T0>(v.wrapping_add((j + PREFETCH_ROWS) * head_dim + c).cast());
                let row = v.add(j * head_dim + c);
                let (v0, v1) = (V::load_half(row), V::load_half(row.add(V::WIDTH)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let weight = V::splat(*w.add((first + r) * len + j));
                    acc[0] = V::fma(weight, v0, acc[0]);
                    acc[1] = V::fma(weight, v1, acc[1]);
                }
            }
            for (r, acc) in acc.into_iter().enumerate() {
                let at = out.add((first + r) * head_dim + c);
                acc[0].store(at);
                acc[1].store(at.add(V::WIDTH));
            }
        }
    }
}
