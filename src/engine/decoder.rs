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

use std::io::{Read, Seek};
use std::sync::Arc;

use bidder_kernels::attention::{self, Heads};
use bidder_kernels::{CpuMatrix, Tier, cpu_matrix_view};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, IndexOp, Module, Result, Storage, Tensor};

use crate::config::LoadOptions;

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

/// A weight matrix and how it is multiplied on this device.
enum Weights {
    /// On CPU, every quantised type through [`bidder_kernels`], which reads each weight once
    /// per forward pass. For Q8_0 on AVX-512 VNNI, multi-token passes (prefill) use candle's
    /// repacked tiles instead, about 3× faster than ours, at the price of candle's copy next to
    /// ours, unless `--lean-memory` says no.
    Cpu { matrix: Arc<dyn CpuMatrix>, prefill: Option<QMatMul> },
    /// On GPU (and float weights on CPU): candle's quantized matmul.
    Candle(QMatMul),
}

impl Weights {
    /// `repack`: whether candle may keep its repacked prefill copy (see [`Weights::Cpu`]);
    /// `tier`: the CPU kernels to multiply with.
    fn new(tensor: Arc<QTensor>, repack: bool, tier: Tier) -> Result<Self> {
        if tensor.device().is_cpu()
            && let Some(matrix) = cpu_matrix_view(&tensor, tier).map_err(kernel_error)?
        {
            let (rows, cols) = tensor.shape().dims2()?;
            let prefill = match repack && candle_repacks(tensor.dtype(), rows, cols, tier) {
                true => Some(QMatMul::from_arc(tensor)?),
                false => None,
            };
            return Ok(Self::Cpu { matrix: Arc::from(matrix), prefill });
        }
        Ok(Self::Candle(QMatMul::from_arc(tensor)?))
    }
}

/// Whether candle 0.11 multiplies a `rows × cols` matrix of `dtype` with its repacked kernels
/// on this CPU, using no instructions above `tier` (its own rules, in
/// `quantized::repack_x86::{level, select}`), and we leave its prefills to them: its AVX-512
/// VNNI tiles for Q8_0. Not for the K-quants: our sixteen-row kernels
/// (`bidder_kernels::k_rows16`) multiply them at least as fast at every tier and keep no second
/// copy.
fn candle_repacks(dtype: GgmlDType, rows: usize, cols: usize, tier: Tier) -> bool {
    let shape = rows.is_multiple_of(16) && cols.is_multiple_of(256);
    shape && dtype == GgmlDType::Q8_0 && tier.features().avx512_vnni && candle_x86_level() == Some(CandleLevel::Vnni)
}

/// The instructions candle's repacked x86 kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CandleLevel {
    /// AVX-512 VNNI or AVX-VNNI: above our AVX2 tier.
    Vnni,
    Avx2,
}

/// What `candle_core::quantized::repack_x86::level` picks on this CPU (not public in candle).
fn candle_x86_level() -> Option<CandleLevel> {
    #[cfg(target_arch = "x86_64")]
    {
        let forced = |name: &str| std::env::var(name).as_deref() == Ok("1");
        let (force_avx2, force_vnni) = (forced(CANDLE_FORCE_AVX2), forced("MISTRALRS_FORCE_AVXVNNI"));
        let avx512_vnni = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni");
        let avx_vnni = is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2");
        if !force_avx2 && (avx512_vnni || (avx_vnni || force_vnni) && is_x86_feature_detected!("avx2")) {
            return Some(CandleLevel::Vnni);
        }
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(CandleLevel::Avx2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The variable that holds candle's repacked kernels to AVX2.
pub const CANDLE_FORCE_AVX2: &str = "MISTRALRS_FORCE_AVX2";

fn kernel_error(e: bidder_kernels::ShapeError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

struct Linear {
    weights: Weights,
    bias: Option<Tensor>,
}

impl Linear {
    /// `x` is `[1, seq, inputs]`; the result `[1, seq, outputs]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weights {
            Weights::Cpu { prefill: Some(matmul), .. } if x.dim(1)? > 1 => matmul.forward(x)?,
            Weights::Cpu { matrix, .. } => {
                let (batch, seq, _) = x.dims3()?;
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let mut output = vec![0f32; batch * seq * matrix.rows()];
                matrix.matmul(&input, &mut output).map_err(kernel_error)?;
                Tensor::from_vec(output, (batch, seq, matrix.rows()), x.device())?
            }
            Weights::Candle(matmul) => matmul.forward(x)?,
        };
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// Token embeddings, kept quantised: a lookup dequantises only the rows it needs.
enum Embeddings {
    Cpu(Arc<dyn CpuMatrix>),
    Candle(Arc<QTensor>),
}

impl Embeddings {
    /// `[seq, hidden]` for `[seq]` token ids; an id outside the vocabulary is an error.
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Self::Cpu(matrix) => {
                let ids = ids.to_vec1::<u32>()?;
                let hidden = matrix.cols();
                let mut rows = vec![0f32; ids.len() * hidden];
                for (id, row) in ids.iter().zip(rows.chunks_exact_mut(hidden)) {
                    matrix.dequantize_row(*id as usize, row).map_err(kernel_error)?;
                }
                Tensor::from_vec(rows, (ids.len(), hidden), &Device::Cpu)
            }
            Self::Candle(tensor) => tensor.embedding(ids),
        }
    }
}

/// Rotary position embedding tables and which pairing of dimensions the file expects.
struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// llama GGUFs store q/k permuted for adjacent pairs (ggml's "normal" rope); qwen2 pairs
    /// dimension `i` with `i + head_dim / 2` ("neox").
    interleaved: bool,
}

impl Rope {
    fn new(
        head_dim: usize,
        base: f32,
        freq_factors: Option<Vec<f32>>,
        max_positions: usize,
        device: &Device,
    ) -> Result<Self> {
        let inverse_frequencies: Vec<f32> = (0..head_dim / 2)
            .map(|i| {
                let factor = freq_factors.as_ref().and_then(|f| f.get(i).copied()).unwrap_or(1.0);
                1.0 / (base.powf(2.0 * i as f32 / head_dim as f32) * factor)
            })
            .collect();
        let inverse_frequencies = Tensor::new(inverse_frequencies.as_slice(), device)?.unsqueeze(0)?;
        let positions = Tensor::arange(0, max_positions as u32, device)?.to_dtype(DType::F32)?.unsqueeze(1)?;
        let angles = positions.matmul(&inverse_frequencies)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()?, interleaved: false })
    }

    /// `x` is `[1, heads, seq, head_dim]`, its first token at `position`.
    fn apply(&self, x: &Tensor, position: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, position, seq)?;
        let sin = self.sin.narrow(0, position, seq)?;
        if self.interleaved {
            candle_nn::rotary_emb::rope_i(x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(x, &cos, &sin)
        }
    }
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
    cache: KvCache,
}

/// Keys and values of one layer, `[1, kv_heads, capacity, head_dim]` each, filled up to `len`.
///
/// The buffers grow by doubling up to the context size and are kept between sequences: a new
/// sequence only rewinds `len`. (candle-nn's cache drops its buffers on reset, so every request
/// would allocate and zero them again — and glibc then hands out heap pages that are touched,
/// not fresh zero pages, so a full-context cache per layer ends up resident.)
struct KvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
    max_len: usize,
}

/// Positions the cache starts with; it doubles when a longer sequence needs it (a handful of
/// copies over a long request) and keeps the size afterwards. Small, because every position is
/// resident memory in every layer: 1024 cost SmolLM2 12 MB of peak RSS over 256.
const KV_CACHE_INITIAL: usize = 256;

impl KvCache {
    fn new(max_len: usize) -> Self {
        Self { keys: None, values: None, len: 0, max_len }
    }

    fn rewind(&mut self) {
        self.len = 0;
    }

    /// Room for `positions` tokens (at most the context size), shaped like `like`
    /// (`[1, kv_heads, _, head_dim]`), keeping what the cache holds.
    fn reserve(&mut self, positions: usize, like: &Tensor) -> Result<()> {
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        let wanted = positions.min(self.max_len);
        if wanted > capacity {
            self.keys = Some(Self::grow(self.keys.take(), like, self.len, wanted)?);
            self.values = Some(Self::grow(self.values.take(), like, self.len, wanted)?);
        }
        Ok(())
    }

    /// Append `[1, kv_heads, seq, head_dim]` keys and values; the whole sequence so far back.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let seq = k.dim(2)?;
        let needed = self.len + seq;
        if needed > self.max_len {
            candle_core::bail!("{needed} positions exceed the {}-position KV cache", self.max_len);
        }
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        if needed > capacity {
            let grown = needed.max(capacity * 2).max(KV_CACHE_INITIAL).min(self.max_len);
            self.keys = Some(Self::grow(self.keys.take(), k, self.len, grown)?);
            self.values = Some(Self::grow(self.values.take(), v, self.len, grown)?);
        }
        let (keys, values) = (self.keys.as_ref().expect("allocated"), self.values.as_ref().expect("allocated"));
        keys.slice_set(k, 2, self.len)?;
        values.slice_set(v, 2, self.len)?;
        self.len = needed;
        Ok((keys.narrow(2, 0, self.len)?, values.narrow(2, 0, self.len)?))
    }

    /// A decode step's attention (see [`attention::decode_step`]) over what the cache holds,
    /// read in place from its CPU buffers.
    fn decode_attention(&self, shape: Heads, queries: &[f32]) -> Result<Vec<f32>> {
        let (Some(keys), Some(values)) = (&self.keys, &self.values) else {
            candle_core::bail!("attention over an empty KV cache");
        };
        let capacity = keys.dims()[2];
        let (key_storage, key_layout) = keys.storage_and_layout();
        let (value_storage, value_layout) = values.storage_and_layout();
        match (&*key_storage, &*value_storage) {
            (Storage::Cpu(CpuStorage::F32(k)), Storage::Cpu(CpuStorage::F32(v)))
                if key_layout.is_contiguous() && value_layout.is_contiguous() =>
            {
                let (k, v) = (&k[key_layout.start_offset()..], &v[value_layout.start_offset()..]);
                Ok(attention::decode_step(shape, queries, k, v, capacity, self.len))
            }
            _ => candle_core::bail!("the KV cache is not contiguous f32 CPU memory"),
        }
    }

    fn grow(old: Option<Tensor>, like: &Tensor, keep: usize, capacity: usize) -> Result<Tensor> {
        let (batch, heads, _, head_dim) = like.dims4()?;
        let buffer = Tensor::zeros((batch, heads, capacity, head_dim), like.dtype(), like.device())?;
        if let Some(old) = old.filter(|_| keep > 0) {
            buffer.slice_set(&old.narrow(2, 0, keep)?, 2, 0)?;
        }
        Ok(buffer)
    }
}

/// A llama-shaped decoder with its KV cache: one sequence at a time.
pub struct Decoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
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
            layers.push(Layer {
                attention_norm,
                q,
                k,
                v,
                output,
                ffn_norm,
                gate,
                up,
                down,
                cache: KvCache::new(max_positions),
            });
        }
        Ok(Self {
            embeddings,
            layers,
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

    /// Forget the previous sequence and size every layer's KV cache for a new one of
    /// `positions` tokens (see [`ModelWeights::reserve`](super::architecture::ModelWeights::reserve)).
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        self.clear_kv_cache();
        let like = Tensor::zeros((1, self.kv_heads, 1, self.head_dim), DType::F32, &self.device)?;
        for layer in &mut self.layers {
            layer.cache.reserve(positions, &like)?;
        }
        Ok(())
    }

    /// Forget the previous sequence.
    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.cache.rewind();
        }
    }

    /// Logits `[1, 1, vocab]` for the last of `input`'s tokens (`[1, seq]`), which start at
    /// `position`: 0 starts a new sequence, anything else must continue the cached one.
    pub fn forward(&mut self, input: &Tensor, position: usize) -> Result<Tensor> {
        let (_, seq) = input.dims2()?;
        if position + seq > self.max_positions {
            candle_core::bail!("{} tokens exceed the {}-token context", position + seq, self.max_positions);
        }
        if position == 0 {
            self.clear_kv_cache();
        }
        let cached = self.layers.first().map_or(0, |l| l.cache.len);
        if position != cached {
            candle_core::bail!("input at position {position}, but the KV cache holds {cached} tokens");
        }
        let hidden = self.embeddings.lookup(&input.flatten_all()?)?.unsqueeze(0)?;
        let mask = match seq {
            1 => None,
            _ => Some(causal_mask(seq, position, &self.device)?),
        };
        let mut x = hidden;
        for i in 0..self.layers.len() {
            let normed = candle_nn::ops::rms_norm(&x, &self.layers[i].attention_norm, self.rms_eps)?;
            let attended = self.attention(i, &normed, position, mask.as_ref())?;
            x = (x + attended)?;
            let layer = &self.layers[i];
            let normed = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.rms_eps)?;
            let (gate, up) = (layer.gate.forward(&normed)?, layer.up.forward(&normed)?);
            let activated = (candle_nn::ops::silu(&gate)? * up)?;
            x = (x + layer.down.forward(&activated)?)?;
        }
        let last = x.i((.., seq - 1.., ..))?.contiguous()?;
        let normed = candle_nn::ops::rms_norm(&last, &self.norm, self.rms_eps)?;
        self.output.forward(&normed)
    }

    fn attention(&mut self, layer: usize, x: &Tensor, position: usize, mask: Option<&Tensor>) -> Result<Tensor> {
        let (heads, kv_heads, head_dim) = (self.heads, self.kv_heads, self.head_dim);
        let (_, seq, _) = x.dims3()?;
        let layer = &mut self.layers[layer];
        let (q, k, v) = (layer.q.forward(x)?, layer.k.forward(x)?, layer.v.forward(x)?);
        let by_head = |t: Tensor, n: usize| t.reshape((1, seq, n, head_dim))?.transpose(1, 2)?.contiguous();
        let q = self.rope.apply(&by_head(q, heads)?, position)?;
        let k = self.rope.apply(&by_head(k, kv_heads)?, position)?;
        let v = by_head(v, kv_heads)?;
        let (k, v) = layer.cache.append(&k, &v)?;
        if seq == 1 && self.device.is_cpu() {
            let queries = q.flatten_all()?.to_vec1::<f32>()?;
            let attended = layer.cache.decode_attention(Heads { heads, kv_heads, head_dim }, &queries)?;
            return layer.output.forward(&Tensor::from_vec(attended, (1, 1, heads * head_dim), &self.device)?);
        }
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
        let attended =
            attended.reshape((1, heads, seq, head_dim))?.transpose(1, 2)?.reshape((1, seq, heads * head_dim))?;
        layer.output.forward(&attended)
    }
}

/// `[seq, position + seq]`: 0 where query `i` (at `position + i`) may see key `j`, -inf after.
fn causal_mask(seq: usize, position: usize, device: &Device) -> Result<Tensor> {
    let context = position + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..context).map(move |j| if j > position + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_slice(&mask, (seq, context), device)
}
