//! The `Q4_K` and `Q6_K` kernels of [`crate::k_quants`] on 256-bit AVX2, for CPUs without
//! AVX-512 (and for testing that tier on those with it).
//!
//! Same arithmetic as the AVX-512 kernels, 32 weights per instruction instead of 64: the
//! unsigned quants meet the `i8` activations in one `vpmaddubsw`, and one `vpmaddwd` against
//! a register of the two 16-weight scales that half covers sums them to i32. Each block is
//! unpacked once for all `R` activation rows.

#[cfg(target_arch = "x86_64")]
use crate::ggml::sum_lanes;
use crate::k_quants::{ActivationBlock, BlockQ4K, BlockQ6K};

/// # Safety
/// Only where the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_q4k<const R: usize>(weights: &[BlockQ4K], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(weights.len(), row.len());
    }
    let low4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut minimums = [_mm256_setzero_ps(); R];
    for (b, w) in weights.iter().enumerate() {
        // SAFETY: a hint, on the CPU this kernel is built for.
        unsafe { crate::ggml::prefetch_ahead(std::slice::from_ref(w)) };
        let (scales, mins) = w.scales_and_mins();
        let scales = scales.to_le_bytes();
        let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
        let mins = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        let mut sum = [_mm256_setzero_si256(); R];
        for chunk in 0..4 {
            // SAFETY (loads): fixed-size arrays of the sizes loaded, unaligned loads; `b` is in
            // bounds of every activation row (asserted above).
            let packed = unsafe { _mm256_loadu_si256(w.qs.as_ptr().add(32 * chunk).cast()) };
            // Weights 64c..64c+32 (sub-block 2c) are the low nibbles, the next 32 the high ones.
            let low = _mm256_and_si256(packed, low4);
            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low4);
            let low_scale = _mm256_set1_epi16(scales[2 * chunk] as i16);
            let high_scale = _mm256_set1_epi16(scales[2 * chunk + 1] as i16);
            for r in 0..R {
                let a = unsafe { activations[r].get_unchecked(b) };
                let x_low = unsafe { _mm256_loadu_si256(a.qs.as_ptr().add(64 * chunk).cast()) };
                let x_high = unsafe { _mm256_loadu_si256(a.qs.as_ptr().add(64 * chunk + 32).cast()) };
                // 15 · 127 · 2 per pair fits i16; × a 6-bit scale and summed, i32.
                let p_low = _mm256_madd_epi16(_mm256_maddubs_epi16(low, x_low), low_scale);
                let p_high = _mm256_madd_epi16(_mm256_maddubs_epi16(high, x_high), high_scale);
                sum[r] = _mm256_add_epi32(sum[r], _mm256_add_epi32(p_low, p_high));
            }
        }
        let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
        for r in 0..R {
            let a = unsafe { activations[r].get_unchecked(b) };
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r]), _mm256_set1_ps(d * a.d), acc[r]);
            // dmin · min_j · (sum of the activations of sub-block j = two sums of 16).
            let sums = unsafe { _mm256_loadu_si256(a.sums.as_ptr().cast()) };
            let weighted = _mm256_madd_epi16(sums, mins);
            minimums[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(weighted), _mm256_set1_ps(-dmin * a.d), minimums[r]);
        }
    }
    // SAFETY: AVX2 is enabled for this function.
    std::array::from_fn(|r| unsafe { sum_lanes(_mm256_add_ps(acc[r], minimums[r])) })
}

/// # Safety
/// Only where the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_q6k<const R: usize>(weights: &[BlockQ6K], activations: [&[ActivationBlock]; R]) -> [f32; R] {
    use std::arch::x86_64::*;

    for row in &activations {
        assert_eq!(weights.len(), row.len());
    }
    let low4 = _mm256_set1_epi8(0x0F);
    let low2 = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut offsets = [_mm256_setzero_ps(); R];
    for (b, w) in weights.iter().enumerate() {
        // SAFETY: a hint, on the CPU this kernel is built for.
        unsafe { crate::ggml::prefetch_ahead(std::slice::from_ref(w)) };
        // SAFETY (all loads below): fixed-size arrays of the sizes loaded, unaligned loads;
        // `b` is in bounds of every activation row (asserted above).
        let scales = unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast())) };
        let mut sum = [_mm256_setzero_si256(); R];
        for half in 0..2 {
            let ql_first = unsafe { _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast()) };
            let ql_second = unsafe { _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast()) };
            let qh = unsafe { _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast()) };
            // Weight l + 32 j of the half: nibble j / 2 of ql[l + 32 (j % 2)], high bits 2j of
            // qh[l] (see `k_quants::q6_quant`), moved to bits 4-5.
            let high = [
                _mm256_slli_epi16::<4>(_mm256_and_si256(qh, low2)),
                _mm256_slli_epi16::<2>(_mm256_and_si256(qh, _mm256_slli_epi16::<2>(low2))),
                _mm256_and_si256(qh, _mm256_slli_epi16::<4>(low2)),
                _mm256_and_si256(_mm256_srli_epi16::<2>(qh), _mm256_slli_epi16::<4>(low2)),
            ];
            let quants = [
                _mm256_or_si256(_mm256_and_si256(ql_first, low4), high[0]),
                _mm256_or_si256(_mm256_and_si256(ql_second, low4), high[1]),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql_first), low4), high[2]),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql_second), low4), high[3]),
            ];
            for (j, q) in quants.into_iter().enumerate() {
                let group = 4 * half + j;
                // Pair sums 0..8 are weights 0..16 of the group (scale 2g), 8..16 the rest.
                let group_scales = _mm256_set_m128i(
                    _mm_set1_epi16(w.scales[2 * group + 1] as i16),
                    _mm_set1_epi16(w.scales[2 * group] as i16),
                );
                for r in 0..R {
                    let a = unsafe { activations[r].get_unchecked(b) };
                    let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().add(32 * group).cast()) };
                    // 63 · 127 · 2 per pair fits i16.
                    let pairs = _mm256_maddubs_epi16(q, x);
                    sum[r] = _mm256_add_epi32(sum[r], _mm256_madd_epi16(pairs, group_scales));
                }
            }
        }
        let d = w.d.to_f32();
        for r in 0..R {
            let a = unsafe { activations[r].get_unchecked(b) };
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r]), _mm256_set1_ps(d * a.d), acc[r]);
            // The "- 32" of every weight: 32 · Σ scale_s · (sum of the activations under s).
            let sums = unsafe { _mm256_loadu_si256(a.sums.as_ptr().cast()) };
            let scaled_sums = _mm256_madd_epi16(sums, scales);
            offsets[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(scaled_sums), _mm256_set1_ps(-32.0 * d * a.d), offsets[r]);
        }
    }
    // SAFETY: AVX2 is enabled for this function.
    std::array::from_fn(|r| unsafe { sum_lanes(_mm256_add_ps(acc[r], offsets[r])) })
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn dot_q6k<const R: usize>(_: &[BlockQ6K], _: [&[ActivationBlock]; R]) -> [f32; R] {
    unreachable!("a KMatrix is only made where the kernels are available")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn dot_q4k<const R: usize>(_: &[BlockQ4K], _: [&[ActivationBlock]; R]) -> [f32; R] {
    unreachable!("a KMatrix is only made where the kernels are available")
}
