//! The sixteen-row K-quant tile on AVX2 (256 bits: each half of the group in its own pass).

use super::{ActivationBlock, CHUNKS, GROUP, KRows16Matrix, QK};

/// Four activation bytes, `x[4k..4k + 4]`, broadcast to every 32-bit lane.
///
/// # Safety
/// Only where the CPU has AVX; `k < 64`.
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
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<const BITS: u8, const T: usize>(
    matrix: &KRows16Matrix,
    group: usize,
    activations: [&[ActivationBlock]; T],
    stream: bool,
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
            // The first pass over a group streams its weights from memory; later passes (more
            // tokens of a prefill) find them in the cache, where the hints only take load slots.
            if stream {
                matrix.prefetch_block_scales(at);
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
                    if stream && half == 0 {
                        matrix.prefetch_chunk(chunk);
                    }
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
