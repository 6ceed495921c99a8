//! Our own forward pass for the llama-shaped decoders — `llama` (Llama 2/3, Mistral, SmolLM)
//! and `qwen2` — on candle's tensors and quantized types.
//!
//! candle-transformers' versions of these models leave speed and memory on the table that
//! matter on a small CPU box (design.md §3): they expand the token embeddings to f32 (+113 MB
//! on SmolLM2-135M, +933 MB on Qwen2.5-1.5B), grow the KV cache with a `Tensor::cat` per token,
//! copy keys and values once per query head for grouped-query attention, and multiply Q4_1
//! weights with a scalar loop. Here the embeddings stay quantized and are looked up row by row,
//! the KV cache is preallocated and kept between requests, grouped-query
//! attention multiplies each key/value head with its group of query heads at once, and on CPU
//! quantised matmuls go through [`bidder_kernels`] (weights read once per prefill chunk rather
//! than once per token, a SIMD kernel for Q4_1 where candle has a scalar loop) except Q8_0
//! prefill on AVX-512 VNNI, where candle's repacked tiles are faster.

mod kv_cache;
mod rope;
mod weights;

use std::io::{Read, Seek};
use std::sync::Arc;

use bidder_kernels::Tier;
use bidder_kernels::attention::Heads;
use candle_core::quantized::QMatMul;
use candle_core::quantized::gguf_file::Content;
use candle_core::{CpuStorage, DType, Device, IndexOp, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::config::LoadOptions;
use kv_cache::KvCache;
use rope::Rope;
pub use weights::CANDLE_FORCE_AVX2;
use weights::{Embeddings, Linear, Weights};

/// Whether this forward pass runs a GGUF of `architecture` (llama-family files with mixture of
/// experts stay on candle-transformers' implementation).
pub fn handles(architecture: &str, content: &Content) -> bool {
    match architecture {
        "qwen2" => true,
        "llama" => metadata_u32(content, "llama.expert_count").unwrap_or(0) <= 1,
        _ => false,
    }
}

fn metadata_u32(content: &Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn metadata_f32(content: &Content, key: &str) -> Option<f32> {
    content.metadata.get(key).and_then(|v| v.to_f32().ok())
}

struct Layer {
    attention_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    output: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// One sequence's part of a batched forward pass: its new tokens, the KV cache slot that holds
/// what came before them, and the position of the first (0 starts the slot afresh).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub slot: usize,
    pub tokens: &'a [u32],
    pub position: usize,
}

/// A llama-shaped decoder with KV caches for several sequences ("slots"), each at its own
/// position: one forward pass takes a prefill chunk or a decode token of each of several
/// sequences, multiplies every weight matrix once for all their rows, and attends each sequence
/// over its own cache.
pub struct Decoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// `[slot][layer]`.
    slots: Vec<Vec<KvCache>>,
    norm: Tensor,
    output: Linear,
    rope: Rope,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rms_eps: f32,
    max_positions: usize,
    device: Device,
}

impl Decoder {
    /// Load a `llama` or `qwen2` GGUF, with room for `max_positions` tokens of context.
    pub fn load<R: Read + Seek>(
        architecture: &str,
        content: &Content,
        reader: &mut R,
        max_positions: usize,
        device: &Device,
        options: LoadOptions,
    ) -> Result<Self> {
        let repack = !options.lean_memory;
        let tier = options.tier.unwrap_or_else(Tier::active);
        let key = |name: &str| format!("{architecture}.{name}");
        let required = |name: &str| {
            metadata_u32(content, &key(name))
                .map(|v| v as usize)
                .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata lacks {}", key(name))))
        };
        let block_count = required("block_count")?;
        let hidden = required("embedding_length")?;
        let heads = required("attention.head_count")?;
        let kv_heads = metadata_u32(content, &key("attention.head_count_kv")).map_or(heads, |v| v as usize);
        let head_dim =
            metadata_u32(content, &key("attention.key_length")).map_or(hidden / heads.max(1), |v| v as usize);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || head_dim % 2 == 1 {
            candle_core::bail!(
                "unusable attention shape: {heads} heads, {kv_heads} key/value heads, head size {head_dim}"
            );
        }
        let rope_dim = metadata_u32(content, &key("rope.dimension_count")).map_or(head_dim, |v| v as usize);
        if rope_dim != head_dim {
            candle_core::bail!("partial rotary embeddings ({rope_dim} of {head_dim} dimensions) are not supported");
        }
        let rms_eps = metadata_f32(content, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5);
        let rope_base = metadata_f32(content, &key("rope.freq_base")).unwrap_or(10_000.0);

        let mut tensor = |name: &str| content.tensor(reader, name, device);
        let freq_factors = match content.tensor_infos.contains_key("rope_freqs.weight") {
            true => Some(tensor("rope_freqs.weight")?.dequantize(&Device::Cpu)?.to_vec1::<f32>()?),
            false => None,
        };
        let mut rope = Rope::new(head_dim, rope_base, freq_factors, max_positions, device)?;
        rope.interleaved = architecture == "llama";

        // Embeddings are looked up, and only the last position reaches the output projection:
        // neither is ever a prefill matmul, so neither needs candle's repacked copy.
        let token_embd = Arc::new(tensor("token_embd.weight")?);
        let token_weights = Weights::new(token_embd.clone(), false, tier)?;
        let norm = tensor("output_norm.weight")?.dequantize(device)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Weights::new(Arc::new(tensor("output.weight")?), false, tier)?,
            // Tied embeddings: the output projection is the embedding matrix itself, in memory once.
            false => match &token_weights {
                Weights::Cpu { matrix, .. } => Weights::Cpu { matrix: matrix.clone(), prefill: None },
                Weights::Candle(_) => Weights::Candle(QMatMul::from_arc(token_embd.clone())?),
            },
        };
        let output = Linear { weights: output, bias: None };
        let embeddings = match token_weights {
            Weights::Cpu { matrix, .. } => Embeddings::Cpu(matrix),
            Weights::Candle(_) => Embeddings::Candle(token_embd),
        };
        let mut layers = Vec::with_capacity(block_count);
        for i in 0..block_count {
            let name = |part: &str| format!("blk.{i}.{part}");
            let has = |part: &str| content.tensor_infos.contains_key(&name(part));
            let mut linear = |part: &str| -> Result<Linear> {
                let weights = Weights::new(
                    Arc::new(content.tensor(reader, &name(&format!("{part}.weight")), device)?),
                    repack,
                    tier,
                )?;
                let bias = match has(&format!("{part}.bias")) {
                    true => Some(content.tensor(reader, &name(&format!("{part}.bias")), device)?.dequantize(device)?),
                    false => None,
                };
                Ok(Linear { weights, bias })
            };
            let q = linear("attn_q")?;
            let k = linear("attn_k")?;
            let v = linear("attn_v")?;
            let output = linear("attn_output")?;
            let gate = linear("ffn_gate")?;
            let up = linear("ffn_up")?;
            let down = linear("ffn_down")?;
            let attention_norm = content.tensor(reader, &name("attn_norm.weight"), device)?.dequantize(device)?;
            let ffn_norm = content.tensor(reader, &name("ffn_norm.weight"), device)?.dequantize(device)?;
            layers.push(Layer { attention_norm, q, k, v, output, ffn_norm, gate, up, down });
        }
        let slots = vec![(0..block_count).map(|_| KvCache::new(max_positions, device)).collect()];
        Ok(Self {
            embeddings,
            layers,
            slots,
            norm,
            output,
            rope,
            heads,
            kv_heads,
            head_dim,
            rms_eps,
            max_positions,
            device: device.clone(),
        })
    }

    /// How many sequences the decoder holds caches for.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Hold caches for `slots` sequences (at least one). A cache takes memory only as its
    /// sequence fills it.
    pub fn set_slots(&mut self, slots: usize) {
        let (layers, max_positions, device) = (self.layers.len(), self.max_positions, &self.device);
        self.slots.resize_with(slots.max(1), || (0..layers).map(|_| KvCache::new(max_positions, device)).collect());
    }

    /// Bytes of KV cache one position of one sequence takes: keys and values, every layer
    /// (f16 on the CPU, f32 elsewhere; see [`KvCache`]).
    pub fn kv_bytes_per_position(&self) -> usize {
        let value_bytes = if self.device.is_cpu() { 2 } else { 4 };
        self.layers.len() * 2 * self.kv_heads * self.head_dim * value_bytes
    }

    /// Positions `slot`'s cache holds.
    pub fn slot_len(&self, slot: usize) -> usize {
        self.slots.get(slot).and_then(|layers| layers.first()).map_or(0, |cache| cache.len)
    }

    /// Keep only the first `len` positions of `slot`'s cache (a prefix the next sequence
    /// shares), and make room for `positions` in all: the cache is sized once for the request
    /// instead of doubling on the way (a doubling copies it and, for a moment, holds both).
    pub fn start_slot(&mut self, slot: usize, len: usize, positions: usize) -> Result<()> {
        let like = Tensor::zeros((1, self.kv_heads, 1, self.head_dim), DType::F32, &self.device)?;
        let Some(caches) = self.slots.get_mut(slot) else {
            candle_core::bail!("slot {slot} of {}", self.slots.len());
        };
        for cache in caches {
            cache.len = cache.len.min(len);
            cache.reserve(positions, &like)?;
        }
        Ok(())
    }

    /// Forget the previous sequence and size slot 0's cache for a new one of `positions` tokens.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        self.start_slot(0, 0, positions)
    }

    /// Logits `[1, 1, vocab]` for the last of `input`'s tokens (`[1, seq]`) in slot 0, which
    /// start at `position`: 0 starts a new sequence, anything else must continue the cached one.
    pub fn forward(&mut self, input: &Tensor, position: usize) -> Result<Tensor> {
        let tokens = input.flatten_all()?.to_vec1::<u32>()?;
        let mut logits = self.forward_batch(&[Step { slot: 0, tokens: &tokens, position }])?;
        logits.pop().expect("one step, one result").unsqueeze(0)?.unsqueeze(0)
    }

    /// One forward pass over several sequences: for each step, the logits (`[vocab]`) of its
    /// last token. Each step's slot must hold exactly `position` tokens (0 clears it), and no
    /// slot may appear twice.
    pub fn forward_batch(&mut self, steps: &[Step]) -> Result<Vec<Tensor>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        for (i, step) in steps.iter().enumerate() {
            if step.tokens.is_empty() {
                candle_core::bail!("a step with no tokens");
            }
            if step.slot >= self.slots.len() || steps[..i].iter().any(|other| other.slot == step.slot) {
                candle_core::bail!("slot {} is not one of {} free for this pass", step.slot, self.slots.len());
            }
            if step.position + step.tokens.len() > self.max_positions {
                let end = step.position + step.tokens.len();
                candle_core::bail!("{end} tokens exceed the {}-token context", self.max_positions);
            }
            let cached = self.slot_len(step.slot);
            if step.position != 0 && step.position != cached {
                candle_core::bail!("input at position {}, but the KV cache holds {cached} tokens", step.position);
            }
        }
        for step in steps.iter().filter(|step| step.position == 0) {
            self.slots[step.slot].iter_mut().for_each(KvCache::rewind);
        }
        let ids: Vec<u32> = steps.iter().flat_map(|step| step.tokens.iter().copied()).collect();
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, &self.device)?;
        let mut x = self.embeddings.lookup(&ids)?.unsqueeze(0)?;
        let masks = steps
            .iter()
            .map(|step| match step.tokens.len() {
                1 => Ok(None),
                seq => causal_mask(seq, step.position, &self.device).map(Some),
            })
            .collect::<Result<Vec<_>>>()?;
        for i in 0..self.layers.len() {
            let normed = candle_nn::ops::rms_norm(&x, &self.layers[i].attention_norm, self.rms_eps)?;
            let attended = self.attention(i, &normed, steps, &masks)?;
            x = (x + attended)?;
            let layer = &self.layers[i];
            let normed = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.rms_eps)?;
            let (gate, up) = (layer.gate.forward(&normed)?, layer.up.forward(&normed)?);
            let activated = silu_times(&gate, &up)?;
            x = (x + layer.down.forward(&activated)?)?;
        }
        // Only each sequence's last position reaches the output projection, all in one matmul.
        let last = match total == steps.len() {
            true => x,
            false => {
                let mut end = 0;
                let mut last = Vec::with_capacity(steps.len());
                for step in steps {
                    end += step.tokens.len();
                    last.push(x.i((.., end - 1..end, ..))?);
                }
                Tensor::cat(&last, 1)?.contiguous()?
            }
        };
        let normed = candle_nn::ops::rms_norm(&last, &self.norm, self.rms_eps)?;
        let logits = self.output.forward(&normed)?.squeeze(0)?;
        (0..steps.len()).map(|i| logits.get(i)).collect()
    }

    /// Layer `layer`'s attention for every step's rows of `x` (`[1, rows, hidden]`): the
    /// projections over all rows at once, then each sequence over its own cache.
    fn attention(&mut self, layer: usize, x: &Tensor, steps: &[Step], masks: &[Option<Tensor>]) -> Result<Tensor> {
        let shape = Heads { heads: self.heads, kv_heads: self.kv_heads, head_dim: self.head_dim };
        let weights = &self.layers[layer];
        let (q, k, v) = (weights.q.forward(x)?, weights.k.forward(x)?, weights.v.forward(x)?);
        if self.device.is_cpu() && steps.iter().all(|step| step.tokens.len() == 1) {
            let attended = self.decode_attention(layer, steps, shape, &q, &k, &v)?;
            return self.layers[layer].output.forward(&attended);
        }
        // Each sequence's new keys and values into its cache, and its queries rotated.
        let mut queries = Vec::with_capacity(steps.len());
        let mut start = 0;
        for step in steps {
            let seq = step.tokens.len();
            let rows = |t: &Tensor, n: usize| -> Result<Tensor> {
                t.narrow(1, start, seq)?.reshape((1, seq, n, shape.head_dim))?.transpose(1, 2)?.contiguous()
            };
            let k = self.rope.apply(&rows(&k, shape.kv_heads)?, step.position)?;
            self.slots[step.slot][layer].append(&k, &rows(&v, shape.kv_heads)?)?;
            queries.push(self.rope.apply(&rows(&q, shape.heads)?, step.position)?);
            start += seq;
        }
        // Then every sequence's attention over its own cache, all in one parallel region (a
        // batch of decode steps is several small tasks each).
        let (slots, device) = (&self.slots, &self.device);
        let attended = steps
            .par_iter()
            .zip(queries.par_iter().zip(masks))
            .map(|(step, (q, mask))| attend(&slots[step.slot][layer], shape, q, mask.as_ref(), device))
            .collect::<Result<Vec<_>>>()?;
        let attended = Tensor::cat(&attended, 1)?;
        self.layers[layer].output.forward(&attended)
    }

    /// A pass of decode steps only, on CPU (the steady state of a batch): one token a sequence,
    /// so each row's heads are already laid out as its cache wants them, all rows are rotated
    /// in one operation, and each sequence's attention reads its queries and cache in place. A
    /// handful of tensor operations a layer instead of a dozen a sequence. `q`, `k`, `v`:
    /// `[1, rows, heads * head_dim]` (and `kv_heads`); returns `[1, rows, heads * head_dim]`.
    fn decode_attention(
        &mut self,
        layer: usize,
        steps: &[Step],
        shape: Heads,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<Tensor> {
        let Heads { heads, kv_heads, head_dim } = shape;
        let rows = steps.len();
        let positions: Vec<u32> = steps.iter().map(|step| step.position as u32).collect();
        let q = self.rope.apply_rows(&q.reshape((rows, heads, 1, head_dim))?, &positions)?;
        let k = self.rope.apply_rows(&k.reshape((rows, kv_heads, 1, head_dim))?, &positions)?;
        let v = v.reshape((rows, kv_heads, 1, head_dim))?;
        for (i, step) in steps.iter().enumerate() {
            self.slots[step.slot][layer].append(&k.narrow(0, i, 1)?, &v.narrow(0, i, 1)?)?;
        }
        let queries = q.flatten_all()?.to_vec1::<f32>()?;
        let width = heads * head_dim;
        let slots = &self.slots;
        let attended = steps
            .par_iter()
            .zip(queries.par_chunks_exact(width))
            .map(|(step, queries)| slots[step.slot][layer].decode_attention(shape, queries))
            .collect::<Result<Vec<_>>>()?;
        Tensor::from_vec(attended.concat(), (1, rows, width), &self.device)
    }
}

/// One sequence's attention in one layer: its queries `q` (`[1, heads, seq, head_dim]`,
/// rotated) over everything its `cache` holds, its own new keys and values included. Returns
/// `[1, seq, heads * head_dim]`.
fn attend(cache: &KvCache, shape: Heads, q: &Tensor, mask: Option<&Tensor>, device: &Device) -> Result<Tensor> {
    let Heads { heads, kv_heads, head_dim } = shape;
    let seq = q.dim(2)?;
    if seq == 1 && device.is_cpu() {
        let queries = q.flatten_all()?.to_vec1::<f32>()?;
        let attended = cache.decode_attention(shape, &queries)?;
        return Tensor::from_vec(attended, (1, 1, heads * head_dim), device);
    }
    let (k, v) = cache.keys_and_values()?;
    let context = k.dim(2)?;

    // Query heads h = g * group + r share key/value head g, so the queries regroup as
    // [kv_heads, group * seq, head_dim] and each key/value head is used where it lies.
    let group = heads / kv_heads;
    let q = q.reshape((kv_heads, group * seq, head_dim))?;
    let (k, v) = (k.squeeze(0)?, v.squeeze(0)?);
    // The cache's views are strided (a prefix of a longer buffer). candle's CPU matmul takes
    // them as they are; its GPU matmul is not promised to, so there they are copied first.
    let (k, v) = match k.device().is_cpu() {
        true => (k, v),
        false => (k.contiguous()?, v.contiguous()?),
    };
    let scores = (q.matmul(&k.t()?)? * (1.0 / (head_dim as f64).sqrt()))?;
    let scores = match mask {
        Some(mask) => scores.reshape((kv_heads, group, seq, context))?.broadcast_add(mask)?.reshape((
            kv_heads,
            group * seq,
            context,
        ))?,
        None => scores,
    };
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    let attended = weights.matmul(&v)?;
    attended.reshape((1, heads, seq, head_dim))?.transpose(1, 2)?.reshape((1, seq, heads * head_dim))
}

/// `silu(gate) · up`, the feed-forward network's gated activation: on the CPU in one pass with
/// vectorised exponentials ([`bidder_kernels::activation::silu_mul`]; candle's SiLU calls libm
/// once a value and leaves a tensor for the multiply), elsewhere with candle's ops.
fn silu_times(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let (gate_storage, gate_layout) = gate.storage_and_layout();
    let (up_storage, up_layout) = up.storage_and_layout();
    if let (Storage::Cpu(CpuStorage::F32(g)), Storage::Cpu(CpuStorage::F32(u))) = (&*gate_storage, &*up_storage)
        && let (Some((g_start, g_end)), Some((u_start, u_end))) =
            (gate_layout.contiguous_offsets(), up_layout.contiguous_offsets())
        && gate.shape() == up.shape()
    {
        let mut out = vec![0f32; g_end - g_start];
        bidder_kernels::activation::silu_mul(&g[g_start..g_end], &u[u_start..u_end], &mut out);
        return Tensor::from_vec(out, gate.shape(), gate.device());
    }
    drop((gate_storage, up_storage));
    candle_nn::ops::silu(gate)? * up
}

/// `[seq, position + seq]`: 0 where query `i` (at `position + i`) may see key `j`, -inf after.
fn causal_mask(seq: usize, position: usize, device: &Device) -> Result<Tensor> {
    let context = position + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..context).map(move |j| if j > position + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_slice(&mask, (seq, context), device)
}
