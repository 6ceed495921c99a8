//! One decode step's attention on the CPU, computed straight over the KV cache's buffers.
//!
//! For a single query token, candle's path (a matmul of the queries with the cache's strided
//! keys, a softmax op, a matmul with the values, each allocating its result) spends more on
//! packing operands and on per-op overhead than on arithmetic: at 1024 tokens of context it
//! was a third of a SmolLM2 decode step. Here each key/value head is one task: its keys are
//! read once for all the query heads that share it (grouped-query attention), then its values
//! once, from the cache's own memory. The cache holds `f16` (as llama.cpp's does by default):
//! half the bytes a step reads, which a batch of sequences, each over its own cache, pays for
//! four times over. (It lives in this crate so that it is optimised in the test profile too.)

use half::f16;
use rayon::prelude::*;

use crate::Tier;

#[cfg(target_arch = "x86_64")]
mod simd;

/// The attention shape of a model.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Positions one task attends to at least: below this, handing out the work costs more than
/// it saves.
const MIN_SPAN: usize = 128;

/// Attention of one token's queries over the first `len` positions of the cache.
///
/// `queries` is `[heads, head_dim]` (rotary embedding applied); `keys` and `values` are the
/// cache's `f16` buffers, `[kv_heads, capacity, head_dim]`; query head `g * group + r` uses key/value
/// head `g`. Returns `[heads, head_dim]`, the layout the output projection takes.
///
/// Each key/value head's positions are split into spans, so that a model with fewer key/value
/// heads than twice the threads still keeps every thread busy (SmolLM2's three heads on two
/// cores left one idle a third of the time); each span's softmax is taken against its own
/// maximum, and the spans are combined by their maxima and sums (the log-sum-exp identity).
pub fn decode_step(
    shape: Heads,
    queries: &[f32],
    keys: &[f16],
    values: &[f16],
    capacity: usize,
    len: usize,
) -> Vec<f32> {
    decode_step_on(Tier::active(), shape, queries, keys, values, capacity, len)
}

/// [`decode_step`] with the kernels of `tier` (one this CPU runs).
fn decode_step_on(
    tier: Tier,
    shape: Heads,
    queries: &[f32],
    keys: &[f16],
    values: &[f16],
    capacity: usize,
    len: usize,
) -> Vec<f32> {
    let Heads { heads, kv_heads, head_dim } = shape;
    let group = heads / kv_heads;
    assert!(len > 0 && len <= capacity, "{len} positions in a cache of {capacity}");
    assert_eq!(queries.len(), heads * head_dim);
    assert!(keys.len() >= kv_heads * capacity * head_dim && values.len() >= kv_heads * capacity * head_dim);
    let scale = 1.0 / (head_dim as f32).sqrt();
    // Enough spans for two tasks a thread, none shorter than MIN_SPAN.
    let wanted = (2 * rayon::current_num_threads()).div_ceil(kv_heads);
    let spans = wanted.min(len.div_ceil(MIN_SPAN)).max(1);
    let span_len = len.div_ceil(spans);
    let partials: Vec<Partial> = (0..kv_heads * spans)
        .into_par_iter()
        .map(|task| {
            let (g, span) = (task / spans, task % spans);
            let positions = (span * span_len).min(len)..((span + 1) * span_len).min(len);
            let rows = (g * capacity + positions.start) * head_dim..(g * capacity + positions.end) * head_dim;
            let queries = &queries[g * group * head_dim..(g + 1) * group * head_dim];
            let (keys, values) = (&keys[rows.clone()], &values[rows]);
            // SAFETY (both): the features the tier says this CPU has.
            #[cfg(target_arch = "x86_64")]
            {
                let features = tier.features();
                if features.avx512 && head_dim.is_multiple_of(simd::AVX512_DIMS) {
                    return unsafe { simd::attend_avx512(queries, keys, values, head_dim, scale) };
                }
                if features.avx2 && head_dim.is_multiple_of(simd::AVX2_DIMS) {
                    return unsafe { simd::attend_avx2(queries, keys, values, head_dim, scale) };
                }
            }
            attend(queries, keys, values, head_dim, scale)
        })
        .collect();
    let mut out = vec![0f32; heads * head_dim];
    for (g, out) in out.chunks_exact_mut(group * head_dim).enumerate() {
        let parts = &partials[g * spans..(g + 1) * spans];
        for (r, out) in out.chunks_exact_mut(head_dim).enumerate() {
            let max = parts.iter().map(|p| p.max[r]).fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0;
            for part in parts.iter().filter(|p| p.total[r] > 0.0) {
                let weight = (part.max[r] - max).exp();
                total += weight * part.total[r];
                add_scaled(out, weight, &part.weighted[r * head_dim..(r + 1) * head_dim]);
            }
            let inverse = 1.0 / total;
            out.iter_mut().for_each(|x| *x *= inverse);
        }
    }
    out
}

/// One span's share of a key/value head's attention, per query head `r` of its group: the
/// largest score, the sum of `exp(score − max)`, and the values weighted by those.
pub(super) struct Partial {
    max: Vec<f32>,
    total: Vec<f32>,
    weighted: Vec<f32>,
}

impl Partial {
    /// Nothing yet, for `group` query heads of `head_dim`.
    fn empty(group: usize, head_dim: usize) -> Partial {
        Partial { max: vec![f32::NEG_INFINITY; group], total: vec![0.0; group], weighted: vec![0.0; group * head_dim] }
    }
}

/// The queries of one group against one span of its key/value head's positions (`keys` and
/// `values` are those positions' rows).
#[inline(always)]
pub(super) fn attend(queries: &[f32], keys: &[f16], values: &[f16], head_dim: usize, scale: f32) -> Partial {
    let (group, len) = (queries.len() / head_dim, keys.len() / head_dim);
    let mut partial = Partial::empty(group, head_dim);
    if len == 0 {
        return partial;
    }
    // scores[r * len + j]: query head r of the group against position j.
    let mut scores = vec![0f32; group * len];
    for (j, key) in keys.chunks_exact(head_dim).enumerate() {
        for (r, query) in queries.chunks_exact(head_dim).enumerate() {
            scores[r * len + j] = dot(query, key) * scale;
        }
    }
    softmax_rows(Tier::Generic, &mut scores, len, &mut partial);
    for (j, value) in values.chunks_exact(head_dim).enumerate() {
        for (r, out) in partial.weighted.chunks_exact_mut(head_dim).enumerate() {
            for (o, v) in out.iter_mut().zip(value) {
                *o += scores[r * len + j] * v.to_f32();
            }
        }
    }
    partial
}

/// Each query head's scores (`scores[r * len..][..len]`) turned into `exp(score − max)`, with the
/// maximum and the sum recorded in `partial` (the exponentials in `tier`'s registers).
#[inline(always)]
pub(super) fn softmax_rows(tier: Tier, scores: &mut [f32], len: usize, partial: &mut Partial) {
    for (r, row) in scores.chunks_exact_mut(len).enumerate() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        partial.max[r] = max;
        partial.total[r] = crate::activation::exp_shifted(tier, row, max);
    }
}

/// Eight lanes of partial sums, so the compiler keeps them in one vector register.
#[inline(always)]
fn dot(a: &[f32], b: &[f16]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y.to_f32()).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i].to_f32();
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn add_scaled(out: &mut [f32], weight: f32, value: &[f32]) {
    for (o, v) in out.iter_mut().zip(value) {
        *o += weight * v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook formula, one query head at a time.
    fn reference(shape: Heads, q: &[f32], k: &[f32], v: &[f32], capacity: usize, len: usize) -> Vec<f32> {
        let Heads { heads, kv_heads, head_dim } = shape;
        let group = heads / kv_heads;
        let mut out = Vec::new();
        for h in 0..heads {
            let g = h / group;
            let row = |t: &[f32], j: usize| t[(g * capacity + j) * head_dim..][..head_dim].to_vec();
            let query = &q[h * head_dim..][..head_dim];
            let scores: Vec<f64> = (0..len)
                .map(|j| {
                    let key = row(k, j);
                    query.iter().zip(&key).map(|(a, b)| (a * b) as f64).sum::<f64>() / (head_dim as f64).sqrt()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for d in 0..head_dim {
                out.push((0..len).map(|j| weights[j] / total * row(v, j)[d] as f64).sum::<f64>() as f32);
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_the_textbook_formula_for_grouped_heads_and_a_partly_filled_cache() {
        // Two threads or more, so that long contexts are split into spans even on one core.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(the_textbook_cases);
    }

    fn the_textbook_cases() {
        for (shape, capacity, len) in [
            (Heads { heads: 9, kv_heads: 3, head_dim: 64 }, 40, 37),
            (Heads { heads: 14, kv_heads: 2, head_dim: 64 }, 8, 1),
            (Heads { heads: 4, kv_heads: 4, head_dim: 12 }, 5, 5),
            // Long enough to be split into spans, and a last span shorter than the others.
            (Heads { heads: 9, kv_heads: 3, head_dim: 64 }, 1100, 1031),
            (Heads { heads: 2, kv_heads: 1, head_dim: 8 }, 300, 257),
            // Qwen2.5-1.5B's and -0.5B's groups (six and seven heads: blocks of four and the
            // rest), an odd number of positions.
            (Heads { heads: 12, kv_heads: 2, head_dim: 128 }, 400, 333),
            (Heads { heads: 14, kv_heads: 2, head_dim: 64 }, 64, 7),
        ] {
            let Heads { heads, kv_heads, head_dim } = shape;
            let q = values(heads * head_dim, 1);
            // Positions past `len` hold garbage that must not be read. The cache holds f16, so
            // the reference reads the same rounded values.
            let rounded = |x: Vec<f32>| x.into_iter().map(|x| f16::from_f32(x).to_f32()).collect::<Vec<_>>();
            let mut k = rounded(values(kv_heads * capacity * head_dim, 2));
            let mut v = rounded(values(kv_heads * capacity * head_dim, 3));
            for g in 0..kv_heads {
                for j in len..capacity {
                    k[(g * capacity + j) * head_dim..][..head_dim].fill(1e6);
                    v[(g * capacity + j) * head_dim..][..head_dim].fill(f32::NAN);
                }
            }
            let expected = reference(shape, &q, &k, &v, capacity, len);
            let half = |x: &[f32]| x.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>();
            let (k, v) = (half(&k), half(&v));
            for tier in Tier::supported() {
                let ours = decode_step_on(tier, shape, &q, &k, &v, capacity, len);
                for (a, b) in ours.iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-5, "{shape:?}, {tier}: {a} vs {b}");
                }
            }
        }
    }
}
