//! One layer's keys and values for one sequence, kept between requests.

use bidder_kernels::attention::{self, Heads};
use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};

/// Keys and values of one layer, `[1, kv_heads, capacity, head_dim]` each, filled up to `len`.
///
/// On the CPU they are kept as `f16` (llama.cpp's default too): a decode step reads every
/// cached position of every layer, and a batch of sequences reads one cache each, so half the
/// bytes is a faster step. The attention kernel widens them as it reads. Elsewhere (CUDA) the
/// cache keeps the model's `f32`, which candle's attention there takes as it is.
///
/// The buffers grow by doubling up to the context size and are kept between sequences: a new
/// sequence only rewinds `len`. (candle-nn's cache drops its buffers on reset, so every request
/// would allocate and zero them again — and glibc then hands out heap pages that are touched,
/// not fresh zero pages, so a full-context cache per layer ends up resident.)
pub(super) struct KvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    pub(super) len: usize,
    max_len: usize,
    dtype: DType,
}

/// Positions the cache starts with; it doubles when a longer sequence needs it (a handful of
/// copies over a long request) and keeps the size afterwards. Small, because every position is
/// resident memory in every layer: 1024 cost SmolLM2 12 MB of peak RSS over 256.
const KV_CACHE_INITIAL: usize = 256;

impl KvCache {
    pub(super) fn new(max_len: usize, device: &Device) -> Self {
        let dtype = if device.is_cpu() { DType::F16 } else { DType::F32 };
        Self { keys: None, values: None, len: 0, max_len, dtype }
    }

    pub(super) fn rewind(&mut self) {
        self.len = 0;
    }

    /// Room for `positions` tokens (at most the context size), shaped like `like`
    /// (`[1, kv_heads, _, head_dim]`), keeping what the cache holds.
    pub(super) fn reserve(&mut self, positions: usize, like: &Tensor) -> Result<()> {
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        let wanted = positions.min(self.max_len);
        if wanted > capacity {
            let old = self.keys.take();
            self.keys = Some(self.grow(old, like, wanted)?);
            let old = self.values.take();
            self.values = Some(self.grow(old, like, wanted)?);
        }
        Ok(())
    }

    /// The keys and values of the whole sequence so far, `[1, kv_heads, len, head_dim]` each,
    /// as `f32`: views of the cache's buffers where it keeps `f32`, widened copies where `f16`.
    pub(super) fn keys_and_values(&self) -> Result<(Tensor, Tensor)> {
        let (Some(keys), Some(values)) = (&self.keys, &self.values) else {
            candle_core::bail!("attention over an empty KV cache");
        };
        let (keys, values) = (keys.narrow(2, 0, self.len)?, values.narrow(2, 0, self.len)?);
        Ok((keys.to_dtype(DType::F32)?, values.to_dtype(DType::F32)?))
    }

    /// Append `[1, kv_heads, seq, head_dim]` keys and values.
    pub(super) fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let seq = k.dim(2)?;
        let needed = self.len + seq;
        if needed > self.max_len {
            candle_core::bail!("{needed} positions exceed the {}-position KV cache", self.max_len);
        }
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        if needed > capacity {
            let grown = needed.max(capacity * 2).max(KV_CACHE_INITIAL).min(self.max_len);
            let old = self.keys.take();
            self.keys = Some(self.grow(old, k, grown)?);
            let old = self.values.take();
            self.values = Some(self.grow(old, v, grown)?);
        }
        let (keys, values) = (self.keys.as_ref().expect("allocated"), self.values.as_ref().expect("allocated"));
        // slice_set copies only contiguous tensors of the buffer's type.
        keys.slice_set(&k.to_dtype(self.dtype)?.contiguous()?, 2, self.len)?;
        values.slice_set(&v.to_dtype(self.dtype)?.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok(())
    }

    /// A decode step's attention (see [`attention::decode_step`]) over what the cache holds,
    /// read in place from its CPU buffers.
    pub(super) fn decode_attention(&self, shape: Heads, queries: &[f32]) -> Result<Vec<f32>> {
        let (Some(keys), Some(values)) = (&self.keys, &self.values) else {
            candle_core::bail!("attention over an empty KV cache");
        };
        let capacity = keys.dims()[2];
        let (key_storage, key_layout) = keys.storage_and_layout();
        let (value_storage, value_layout) = values.storage_and_layout();
        match (&*key_storage, &*value_storage) {
            (Storage::Cpu(CpuStorage::F16(k)), Storage::Cpu(CpuStorage::F16(v)))
                if key_layout.is_contiguous() && value_layout.is_contiguous() =>
            {
                let (k, v) = (&k[key_layout.start_offset()..], &v[value_layout.start_offset()..]);
                Ok(attention::decode_step(shape, queries, k, v, capacity, self.len))
            }
            _ => candle_core::bail!("the KV cache is not contiguous f16 CPU memory"),
        }
    }

    /// A buffer of `capacity` positions shaped like `like`, holding the first `len` of `old`.
    fn grow(&self, old: Option<Tensor>, like: &Tensor, capacity: usize) -> Result<Tensor> {
        let (batch, heads, _, head_dim) = like.dims4()?;
        let buffer = Tensor::zeros((batch, heads, capacity, head_dim), self.dtype, like.device())?;
        let keep = self.len;
        if let Some(old) = old.filter(|_| keep > 0) {
            // A prefix of a longer buffer is strided; slice_set copies only contiguous tensors.
            buffer.slice_set(&old.narrow(2, 0, keep)?.contiguous()?, 2, 0)?;
        }
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn positions(from: usize, n: usize) -> Tensor {
        // [1, 2 heads, n positions, 3]: each value names its position.
        let values: Vec<f32> = (0..2).flat_map(|_| (from..from + n).flat_map(|p| [p as f32; 3])).collect();
        Tensor::from_vec(values, (1, 2, n, 3), &Device::Cpu).unwrap()
    }

    /// A later request that keeps a prefix and needs more room than the buffers have keeps the
    /// prefix's keys and values where they were.
    #[test]
    fn growing_keeps_the_prefix_that_a_later_request_reuses() {
        let mut cache = KvCache::new(4096, &Device::Cpu);
        cache.reserve(8, &positions(0, 1)).unwrap();
        cache.append(&positions(0, 5), &positions(0, 5)).unwrap();
        cache.len = 3; // the next request reuses three positions
        cache.reserve(600, &positions(0, 1)).unwrap();
        cache.append(&positions(3, 2), &positions(3, 2)).unwrap();
        let (keys, values) = cache.keys_and_values().unwrap();
        let expected = positions(0, 5).squeeze(0).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(keys.squeeze(0).unwrap().to_vec3::<f32>().unwrap(), expected);
        assert_eq!(values.squeeze(0).unwrap().to_vec3::<f32>().unwrap(), expected);
        assert!(cache.append(&positions(5, 4092), &positions(5, 4092)).is_err(), "past the context size");
    }
}
