//! The sixteen-row K-quant tile on AVX-512 VNNI: a whole group (a 64-byte line) per register.
//!
//! `vpdpbusd` multiplies a line's sixteen rows of four unsigned quants with four activation
//! bytes broadcast and adds the four products into each row's `i32` lane, so there is no `i16`
//! stage to keep from overflowing: eight of them give a chunk's integer dot product, and one
//! `vpmulld` by the rows' scales (two for `Q6_K`'s two scales a chunk) adds it to the block's.

use std::arch::x86_64::*;

use super::{ActivationBlock, CHUNKS, GROUP, KRows16Matrix, QK};

/// Four activation bytes, `x[4k..4k + 4]`, broadcast to every 32-bit lane.
///
/// # Safety
/// Only where the CPU has AVX-512 F; `k < 64`.
#[inline(always)]
unsafe fn quadruple(a: &ActivationBlock, k: usize) -> __m512i {
    // SAFETY: `4k + 4 <= 256` (the caller's promise), an unaligned read of four bytes.
    unsafe { _mm512_set1_epi32(a.qs.as_ptr().add(4 * k).cast::<i32>().read_unaligned()) }
}

/// Sixteen bytes of scales (`i8` where `SIGNED`) widened to sixteen `i32` lanes.
///
/// # Safety
/// Only where the CPU has AVX-512 F.
#[inline(always)]
unsafe fn widened<const SIGNED: bool>(scales: &[u8; GROUP]) -> __m512i {
    // SAFETY: sixteen bytes; the caller has AVX-512 F.
    unsafe {
        let bytes = _mm_loadu_si128(scales.as_ptr().cast());
        match SIGNED {
            true => _mm512_cvtepi8_epi32(bytes),
            false => _mm512_cvtepu8_epi32(bytes),
        }
    }
}

/// Sixteen rows × `T` tokens with AVX-512 VNNI; `BITS` is 4 (`Q4_K`), 5 (`Q5_K`) or 6 (`Q6_K`).
///
/// # Safety
/// Only where the CPU has AVX-512 F, BW, VL and VNNI (and AVX2, FMA, F16C).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile<const BITS: u8, const T: usize>(
    matrix: &KRows16Matrix,
    group: usize,
    activations: [&[ActivationBlock]; T],
    stream: bool,
) -> [[f32; GROUP]; T] {
    let blocks = matrix.blocks();
    assert!(activations.iter().all(|row| row.len() == blocks));
    let entries = (group + 1) * blocks;
    assert!(entries * CHUNKS * 4 <= matrix.nibbles.len() && entries <= matrix.d.len());
    assert!(entries * CHUNKS * matrix.kind.high_lines() <= matrix.high_bits.len());
    assert!(entries * (QK / matrix.kind.sub_block()) <= matrix.scales.len());
    assert!(BITS == 6 || (entries * 4 <= matrix.mins.len() && entries <= matrix.dmin.len()));
    let low4 = _mm512_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..blocks {
        let at = group * blocks + b;
        // SAFETY (every access below): `at < entries`, so each array index is in bounds
        // (asserted above); activation rows hold `blocks` blocks (asserted); lines are 64-byte
        // aligned.
        unsafe {
            // The first pass over a group streams its weights from memory (see the AVX2 tile).
            if stream {
                matrix.prefetch_block_scales(at);
            }
            // As in the AVX2 tile: per token, the activation sums of the pairs of sub-blocks.
            let mut pair_sums = [[0i32; 8]; T];
            if BITS != 6 {
                for (t, words) in pair_sums.iter_mut().enumerate() {
                    let sums = _mm256_load_si256(activations[t].get_unchecked(b).sums.as_ptr().cast());
                    let by_32 = _mm256_madd_epi16(sums, ones);
                    _mm256_storeu_si256(words.as_mut_ptr().cast(), _mm256_packs_epi32(by_32, by_32));
                }
            }
            // Per token: Σ sc Σ q x of the block so far, and (`Q6_K`) Σ sc Σx.
            let mut scaled = [_mm512_setzero_ps(); T];
            let mut offsets = [_mm512_setzero_si512(); T];
            for n in 0..CHUNKS {
                let chunk = at * CHUNKS + n;
                if stream {
                    matrix.prefetch_chunk(chunk);
                }
                let mut w = [_mm512_setzero_si512(); 8];
                for c in 0..4 {
                    let line = _mm512_load_si512(matrix.nibbles.get_unchecked(chunk * 4 + c).0.as_ptr().cast());
                    w[2 * c] = _mm512_and_si512(line, low4);
                    w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(line), low4);
                }
                if BITS == 5 {
                    let bits = _mm512_load_si512(matrix.high_bits.get_unchecked(chunk).0.as_ptr().cast());
                    let bit4 = _mm512_set1_epi8(0x10);
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
                    for (w, shifted) in w.iter_mut().zip(shifted) {
                        // w | (shifted & 0x10)
                        *w = _mm512_ternarylogic_epi32::<0xF8>(*w, shifted, bit4);
                    }
                }
                if BITS == 6 {
                    let bits45 = _mm512_set1_epi8(0x30);
                    for e in 0..2 {
                        let bits = _mm512_load_si512(matrix.high_bits.get_unchecked(chunk * 2 + e).0.as_ptr().cast());
                        let shifted = [
                            _mm512_slli_epi16::<4>(bits),
                            _mm512_slli_epi16::<2>(bits),
                            bits,
                            _mm512_srli_epi16::<2>(bits),
                        ];
                        for (i, shifted) in shifted.into_iter().enumerate() {
                            w[4 * e + i] = _mm512_ternarylogic_epi32::<0xF8>(w[4 * e + i], shifted, bits45);
                        }
                    }
                }
                // The rows' scales as floats: a chunk's integer dot product is scaled in float
                // (a conversion and a fused multiply-add, which share two ports) rather than by
                // `vpmulld` (two micro-ops on the port every `vpdpbusd` needs).
                let scales: [__m512i; 2] = match BITS {
                    6 => std::array::from_fn(|e| widened::<true>(matrix.scales.get_unchecked(at * 16 + 2 * n + e))),
                    _ => [widened::<false>(matrix.scales.get_unchecked(at * 8 + n)); 2],
                };
                let float_scales = scales.map(|s| _mm512_cvtepi32_ps(s));
                for t in 0..T {
                    let a = activations[t].get_unchecked(b);
                    // Two chains of four, so that a token's products do not wait on each other.
                    let dot = |first: usize| {
                        (first..first + 4).fold(_mm512_setzero_si512(), |sum, k| {
                            _mm512_dpbusd_epi32(sum, w[k], quadruple(a, 8 * n + k))
                        })
                    };
                    let (first, second) = (dot(0), dot(4));
                    scaled[t] = match BITS {
                        6 => _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(second),
                            float_scales[1],
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(first), float_scales[0], scaled[t]),
                        ),
                        _ => _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(_mm512_add_epi32(first, second)),
                            float_scales[0],
                            scaled[t],
                        ),
                    };
                }
                if BITS == 6 {
                    // Σ sc (q − 32) x = Σ sc q x − 32 Σ sc Σx: the chunk's two scales as i16
                    // pairs against the two sums of 16 activations, times 32 at the block's end.
                    let scale = _mm512_mask_blend_epi16(0xAAAA_AAAA, scales[0], _mm512_slli_epi32::<16>(scales[1]));
                    for t in 0..T {
                        let sums = activations[t].get_unchecked(b).sums.as_ptr().add(2 * n);
                        let sums = _mm512_set1_epi32(sums.cast::<i32>().read_unaligned());
                        offsets[t] = _mm512_add_epi32(offsets[t], _mm512_madd_epi16(scale, sums));
                    }
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(matrix.d.get_unchecked(at).as_ptr().cast()));
            if BITS == 6 {
                for t in 0..T {
                    let a_d = _mm512_set1_ps(activations[t].get_unchecked(b).d);
                    let offset = _mm512_cvtepi32_ps(_mm512_slli_epi32::<5>(offsets[t]));
                    let block = _mm512_mul_ps(d, _mm512_sub_ps(scaled[t], offset));
                    acc[t] = _mm512_fmadd_ps(block, a_d, acc[t]);
                }
            } else {
                let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(matrix.dmin.get_unchecked(at).as_ptr().cast()));
                let mins: [__m512i; 4] = std::array::from_fn(|p| {
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(matrix.mins.get_unchecked(at * 4 + p).as_ptr().cast()))
                });
                for t in 0..T {
                    let words = &pair_sums[t];
                    let mut offset = _mm512_madd_epi16(mins[0], _mm512_set1_epi32(words[0]));
                    offset = _mm512_add_epi32(offset, _mm512_madd_epi16(mins[1], _mm512_set1_epi32(words[1])));
                    offset = _mm512_add_epi32(offset, _mm512_madd_epi16(mins[2], _mm512_set1_epi32(words[4])));
                    offset = _mm512_add_epi32(offset, _mm512_madd_epi16(mins[3], _mm512_set1_epi32(words[5])));
                    let scaled = _mm512_mul_ps(d, scaled[t]);
                    let scaled = _mm512_fnmadd_ps(dmin, _mm512_cvtepi32_ps(offset), scaled);
                    let a_d = _mm512_set1_ps(activations[t].get_unchecked(b).d);
                    acc[t] = _mm512_fmadd_ps(scaled, a_d, acc[t]);
                }
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
