//! The decoder's weight matrices and token embeddings, and how each is multiplied on the device
//! it lives on: our CPU kernels (`bidder-kernels`), or candle's quantized matmul.

use std::sync::Arc;

use bidder_kernels::{CpuMatrix, Tier, cpu_matrix_view};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor};

/// A weight matrix and how it is multiplied on this device.
pub(super) enum Weights {
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
    pub(super) fn new(tensor: Arc<QTensor>, repack: bool, tier: Tier) -> Result<Self> {
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

pub(super) struct Linear {
    pub(super) weights: Weights,
    pub(super) bias: Option<Tensor>,
}

impl Linear {
    /// `x` is `[1, seq, inputs]`; the result `[1, seq, outputs]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
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
pub(super) enum Embeddings {
    Cpu(Arc<dyn CpuMatrix>),
    Candle(Arc<QTensor>),
}

impl Embeddings {
    /// `[seq, hidden]` for `[seq]` token ids; an id outside the vocabulary is an error.
    pub(super) fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
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
