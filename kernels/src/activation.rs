//! Element-wise exponentials of a forward pass, eight lanes at a time: the feed-forward
//! network's SiLU gate times its up projection ([`silu_mul`]), and the shifted exponentials of
//! an attention softmax ([`exp_shifted`]).
//!
//! Both grow with the rows of a pass: a batch of four sequences has four rows of 8960 gate
//! values a Qwen2.5-1.5B layer and four sequences' scores, and libm's `expf`, one call a value,
//! was 2% of such a step (candle's SiLU, a multiply and their intermediate tensors as much
//! again). Here the exponential is a polynomial (Cephes' `expf`: `2ⁿ · p(r)` with `|r| ≤ ln2/2`,
//! within two units in the last place of libm's) in AVX2 registers, fused with what consumes it.

use rayon::prelude::*;

use crate::Tier;

/// `out[i] = silu(gate[i]) · up[i]`, where `silu(g) = g / (1 + e^(−g))`.
///
/// # Panics
/// If the three lengths differ.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && up.len() == out.len(), "silu_mul of unequal lengths");
    let tier = Tier::active();
    // A prefill's rows are worth sharing out over the pool; a decode step's few are not.
    if out.len() >= 2 * PARALLEL_CHUNK {
        out.par_chunks_mut(PARALLEL_CHUNK)
            .zip(gate.par_chunks(PARALLEL_CHUNK).zip(up.par_chunks(PARALLEL_CHUNK)))
            .for_each(|(out, (gate, up))| silu_mul_on(tier, gate, up, out));
    } else {
        silu_mul_on(tier, gate, up, out)
    }
}

/// Values a task of a parallel [`silu_mul`] takes.
const PARALLEL_CHUNK: usize = 1 << 16;

fn silu_mul_on(tier: Tier, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && up.len() == out.len(), "silu_mul of unequal lengths");
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if tier.features().avx2 {
        // SAFETY: the tier has AVX2 and FMA, so this CPU does.
        done = unsafe { avx2::silu_mul(gate, up, out) };
    }
    for ((o, g), u) in out[done..].iter_mut().zip(&gate[done..]).zip(&up[done..]) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// `x[i] = e^(x[i] − shift)` for every value, and their sum. Values that are `−∞` (or shifted
/// below about −87) become 0 or a value too small to count.
pub(crate) fn exp_shifted(tier: Tier, x: &mut [f32], shift: f32) -> f32 {
    let (mut done, mut total) = (0, 0.0);
    #[cfg(target_arch = "x86_64")]
    if tier.features().avx2 {
        // SAFETY: the tier has AVX2 and FMA, so this CPU does.
        (done, total) = unsafe { avx2::exp_shifted(x, shift) };
    }
    for v in &mut x[done..] {
        *v = (*v - shift).exp();
        total += *v;
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `e^x` in each lane, for `x` in about [−87.3, 88.7] (clamped there).
    ///
    /// # Safety
    /// Only inside a function compiled with AVX2 and FMA.
    #[inline(always)]
    unsafe fn exp(x: __m256) -> __m256 {
        // SAFETY: the caller's promise.
        unsafe {
            let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3)), _mm256_set1_ps(88.7));
            // n = round(x / ln 2); r = x − n ln 2, in two parts so that r keeps its low bits.
            let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
                x,
                _mm256_set1_ps(std::f32::consts::LOG2_E),
            ));
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
            let mut p = _mm256_set1_ps(1.987_569_1e-4);
            for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
                p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
            }
            let y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
            // 2ⁿ: n + 127 in a float's exponent bits.
            let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
            _mm256_mul_ps(y, _mm256_castsi256_ps(scale))
        }
    }

    /// [`super::silu_mul`] over whole registers; returns how many values it did.
    ///
    /// # Safety
    /// Only where the CPU has AVX2 and FMA; equal lengths (the caller checks).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> usize {
        let whole = gate.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <=` each length; this function's features.
            unsafe {
                let g = _mm256_loadu_ps(gate.as_ptr().add(i));
                let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), g));
                let silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0), e));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(silu, _mm256_loadu_ps(up.as_ptr().add(i))));
            }
        }
        whole
    }

    /// [`super::exp_shifted`] over whole registers; returns how many values it did and their
    /// sum.
    ///
    /// # Safety
    /// Only where the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_shifted(x: &mut [f32], shift: f32) -> (usize, f32) {
        let whole = x.len() / 8 * 8;
        let mut sum = _mm256_setzero_ps();
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <= x.len()`; this function's features.
            unsafe {
                let at = x.as_mut_ptr().add(i);
                let e = exp(_mm256_sub_ps(_mm256_loadu_ps(at), _mm256_set1_ps(shift)));
                _mm256_storeu_ps(at, e);
                sum = _mm256_add_ps(sum, e);
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: eight floats into an eight-float array.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        (whole, lanes.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::values;

    #[test]
    fn silu_mul_matches_the_formula_at_every_tier() {
        // Lengths that leave a tail past the last register, and gates far into both tails.
        let mut gate = values(1003, 1);
        gate.iter_mut().step_by(50).for_each(|g| *g *= 40.0);
        gate[7] = -120.0;
        gate[8] = 120.0;
        let up = values(1003, 2);
        let expected: Vec<f64> =
            gate.iter().zip(&up).map(|(&g, &u)| g as f64 / (1.0 + (-(g as f64)).exp()) * u as f64).collect();
        for tier in Tier::supported() {
            let mut out = vec![0f32; gate.len()];
            silu_mul_on(tier, &gate, &up, &mut out);
            for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
                assert!((*o as f64 - e).abs() <= 1e-6 * e.abs().max(1.0), "{tier} [{i}] g {}: {o} vs {e}", gate[i]);
            }
        }
    }

    #[test]
    fn exp_shifted_matches_the_formula_and_sums_at_every_tier() {
        let scores: Vec<f32> = values(517, 3).iter().map(|x| x * 30.0).collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut with_masked = scores.clone();
        with_masked[3] = f32::NEG_INFINITY;
        for tier in Tier::supported() {
            for input in [&scores, &with_masked] {
                let mut x = input.clone();
                let total = exp_shifted(tier, &mut x, max);
                let mut expected_total = 0.0;
                for (v, s) in x.iter().zip(input.iter()) {
                    let e = ((*s - max) as f64).exp();
                    expected_total += e;
                    // Below about e^-87 (and for −∞) a value may be 1e-38 rather than 0: nothing a sum notices.
                    assert!((*v as f64 - e).abs() <= 2e-7 * e + 1e-37, "{tier}: e^({s} - {max}) = {v} vs {e}");
                }
                assert!(
                    (total as f64 - expected_total).abs() <= 1e-5 * expected_total,
                    "{tier}: {total} vs {expected_total}"
                );
            }
        }
    }
}
