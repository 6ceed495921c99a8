//! Synthetic GGUF models: the shapes of real models (Llama-3.1-8B, Qwen2.5-7B, -14B and -32B,
//! and a tiny one for tests) with random weights, a byte-level vocabulary padded to the real
//! vocabulary's size, and the tensor types of llama.cpp's Q4_K_M or Q8_0. Speed does not depend
//! on the weights' values, so these files measure a GPU where no real model can be fetched
//! (design.md §3: no network there, and 64 MiB of our tree travels); the tests write tiny ones of
//! every family, including those we have no small real file of.
//!
//! [`plan`] decides every tensor (name, shape, type) and metadata entry; [`write`] streams the
//! file from it (see `writer` for why that takes seconds, not minutes, at 8B).

mod vocabulary;
mod writer;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;

pub use writer::{WriteReport, encode_header, write};

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("there is no {shape} {arch} here: real-sized shapes are llama and qwen2 (every family has tiny)")]
    NoSuchShape { arch: &'static str, shape: &'static str },
    #[error("{tensor}: rows of {columns} values are not whole {dtype:?} blocks")]
    PartialBlock { tensor: String, columns: usize, dtype: GgmlDType },
    #[error("quantizing the random rows of {tensor}: {reason}")]
    Quantize { tensor: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// A model family, as `general.architecture` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthArch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl SynthArch {
    pub fn name(self) -> &'static str {
        match self {
            SynthArch::Llama => "llama",
            SynthArch::Qwen2 => "qwen2",
            SynthArch::Qwen3 => "qwen3",
            SynthArch::Gemma3 => "gemma3",
            SynthArch::Phi3 => "phi3",
        }
    }
}

/// Which real model's dimensions to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthShape {
    /// Two layers of 256 dimensions and a 512-token vocabulary: for tests, any family.
    Tiny,
    /// llama: Llama-3.1-8B; qwen2: Qwen2.5-7B.
    #[value(name = "8b")]
    B8,
    /// qwen2: Qwen2.5-14B; llama: the same body with Llama 3's vocabulary (no real llama has it).
    #[value(name = "14b")]
    B14,
    /// qwen2: Qwen2.5-32B; llama: the same body with Llama 3's vocabulary.
    #[value(name = "32b")]
    B32,
}

impl SynthShape {
    pub fn name(self) -> &'static str {
        match self {
            SynthShape::Tiny => "tiny",
            SynthShape::B8 => "8b",
            SynthShape::B14 => "14b",
            SynthShape::B32 => "32b",
        }
    }
}

/// The tensor types of the file, as llama.cpp's quantize names its mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthQuant {
    /// Mostly Q4_K; Q6_K for the output matrix and for attn_v and ffn_down in half the layers.
    #[value(name = "q4_k_m")]
    Q4KM,
    /// Every matrix Q8_0.
    #[value(name = "q8_0")]
    Q8_0,
    /// Every matrix F32 (tiny models; a real shape would be four bytes a weight).
    F32,
}

impl SynthQuant {
    pub fn name(self) -> &'static str {
        match self {
            SynthQuant::Q4KM => "q4_k_m",
            SynthQuant::Q8_0 => "q8_0",
            SynthQuant::F32 => "f32",
        }
    }

    /// llama.cpp's `general.file_type` for the mix.
    fn file_type(self) -> u32 {
        match self {
            SynthQuant::Q4KM => 15,
            SynthQuant::Q8_0 => 7,
            SynthQuant::F32 => 0,
        }
    }
}

/// The dimensions of a model, as its `config.json` gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    /// The real model these numbers are taken from.
    pub mirrors: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    /// What the file advertises (our engine caps what it allocates for).
    pub context: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    /// Llama 3.1's rotary scaling, which llama.cpp stores as a `rope_freqs` tensor.
    pub llama3_rope: bool,
}

impl ModelShape {
    /// The shape of `shape` for `arch`. Numbers from the models' own `config.json` on the hub.
    pub fn of(arch: SynthArch, shape: SynthShape) -> Result<Self, SynthError> {
        let qwen_body = |mirrors, hidden, layers, heads, ffn| ModelShape {
            mirrors,
            hidden,
            layers,
            heads,
            kv_heads: 8,
            head_dim: 128,
            ffn,
            vocab: 152_064,
            context: 32_768,
            rope_theta: 1_000_000.0,
            rms_eps: 1e-6,
            llama3_rope: false,
        };
        // A llama of Qwen's body: Llama 3's vocabulary, rotary base and scaling.
        let as_llama = |qwen: ModelShape, mirrors| ModelShape {
            mirrors,
            vocab: 128_256,
            context: 131_072,
            rope_theta: 500_000.0,
            rms_eps: 1e-5,
            llama3_rope: true,
            ..qwen
        };
        let qwen14 = || qwen_body("Qwen2.5-14B", 5120, 48, 40, 13_824);
        let qwen32 = || qwen_body("Qwen2.5-32B", 5120, 64, 40, 27_648);
        Ok(match (arch, shape) {
            (_, SynthShape::Tiny) => ModelShape {
                mirrors: "tiny",
                hidden: 256,
                layers: 2,
                heads: 4,
                kv_heads: 2,
                head_dim: 64,
                ffn: 512,
                vocab: 512,
                context: 4096,
                rope_theta: 10_000.0,
                rms_eps: 1e-6,
                llama3_rope: false,
            },
            (SynthArch::Llama, SynthShape::B8) => ModelShape {
                mirrors: "Llama-3.1-8B",
                hidden: 4096,
                layers: 32,
                heads: 32,
                kv_heads: 8,
                head_dim: 128,
                ffn: 14_336,
                vocab: 128_256,
                context: 131_072,
                rope_theta: 500_000.0,
                rms_eps: 1e-5,
                llama3_rope: true,
            },
            (SynthArch::Llama, SynthShape::B14) => as_llama(qwen14(), "Qwen2.5-14B body, Llama 3 vocabulary"),
            (SynthArch::Llama, SynthShape::B32) => as_llama(qwen32(), "Qwen2.5-32B body, Llama 3 vocabulary"),
            (SynthArch::Qwen2, SynthShape::B8) => {
                ModelShape { kv_heads: 4, ..qwen_body("Qwen2.5-7B", 3584, 28, 28, 18_944) }
            }
            (SynthArch::Qwen2, SynthShape::B14) => qwen14(),
            (SynthArch::Qwen2, SynthShape::B32) => qwen32(),
            (arch, shape) => return Err(SynthError::NoSuchShape { arch: arch.name(), shape: shape.name() }),
        })
    }
}

/// What a tensor's values are.
#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    /// Random rows, scaled so that a matrix keeps its input's magnitude (see `writer`).
    Random,
    /// All ones (norm weights: random ones would only rescale).
    Ones,
    /// These values (Llama 3.1's rotary frequency factors).
    Values(Vec<f32>),
}

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    /// Outermost first, as candle reads it: a matrix is `[rows, columns]`.
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
    pub fill: Fill,
}

impl TensorPlan {
    fn new(name: String, dims: Vec<usize>, dtype: GgmlDType, fill: Fill) -> Self {
        Self { name, dims, dtype, fill }
    }

    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The length of a row: what a block of the type must divide.
    pub fn columns(&self) -> usize {
        *self.dims.last().expect("a tensor has a dimension")
    }

    pub fn bytes(&self) -> usize {
        self.elements() / self.dtype.block_size() * self.dtype.type_size()
    }
}

/// Everything a synthetic file holds but the weights' values.
#[derive(Debug, Clone)]
pub struct SynthPlan {
    pub arch: SynthArch,
    pub shape_name: SynthShape,
    pub quant: SynthQuant,
    pub shape: ModelShape,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorPlan>,
}

impl SynthPlan {
    /// Weights in the model, as a model card counts them (every tensor but `rope_freqs`, which
    /// is a table, not a weight).
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().filter(|t| t.name != "rope_freqs.weight").map(|t| t.elements() as u64).sum()
    }

    /// Bytes of tensor data, without the header and alignment.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes() as u64).sum()
    }
}

/// llama.cpp's `use_more_bits`: the layers its Q4_K_M gives Q6_K in attn_v and ffn_down — the
/// first and last eighth, and every third one between.
fn use_more_bits(layer: usize, layers: usize) -> bool {
    let (layer, layers) = (layer as i64, layers as i64);
    layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
}

/// The type of a weight matrix under `quant`; `layer` is `Some` inside the blocks.
fn matrix_type(quant: SynthQuant, name: &str, layer: Option<(usize, usize)>) -> GgmlDType {
    match quant {
        SynthQuant::F32 => GgmlDType::F32,
        SynthQuant::Q8_0 => GgmlDType::Q8_0,
        SynthQuant::Q4KM => {
            let promoted = matches!(name, "attn_v" | "ffn_down") && layer.is_some_and(|(i, n)| use_more_bits(i, n));
            if name == "output" || promoted { GgmlDType::Q6K } else { GgmlDType::Q4K }
        }
    }
}

/// Llama 3.1's rotary frequency factors (factor 8 over an 8192-token original context, low and
/// high frequency factors 1 and 4), one per pair of dimensions, as llama.cpp's converter writes
/// them: long wavelengths are stretched by the factor, short ones kept, those between blended.
fn llama3_rope_factors(head_dim: usize, theta: f32) -> Vec<f32> {
    let (factor, low, high, original) = (8.0f64, 1.0f64, 4.0f64, 8192.0f64);
    (0..head_dim / 2)
        .map(|i| {
            let frequency = 1.0 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64);
            let wavelength = 2.0 * std::f64::consts::PI / frequency;
            let factor = if wavelength < original / high {
                1.0
            } else if wavelength > original / low {
                factor
            } else {
                let smooth = (original / wavelength - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            factor as f32
        })
        .collect()
}

/// Every tensor and metadata entry of a synthetic `arch` model of `shape` under `quant`.
pub fn plan(arch: SynthArch, shape_name: SynthShape, quant: SynthQuant) -> Result<SynthPlan, SynthError> {
    plan_for(arch, shape_name, quant, ModelShape::of(arch, shape_name)?)
}

/// [`plan`] for dimensions of the caller's own (`shape_name` only labels the file).
pub fn plan_for(
    arch: SynthArch,
    shape_name: SynthShape,
    quant: SynthQuant,
    shape: ModelShape,
) -> Result<SynthPlan, SynthError> {
    let s = &shape;
    let (q_width, kv_width) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let mut tensors = Vec::new();
    let matrix = |name: &str, prefix: &str, layer, dims: Vec<usize>| {
        TensorPlan::new(format!("{prefix}{name}.weight"), dims, matrix_type(quant, name, layer), Fill::Random)
    };
    let norm = |name: String, len: usize| TensorPlan::new(name, vec![len], GgmlDType::F32, Fill::Ones);

    tensors.push(matrix("token_embd", "", None, vec![s.vocab, s.hidden]));
    if s.llama3_rope {
        let factors = llama3_rope_factors(s.head_dim, s.rope_theta);
        tensors.push(TensorPlan::new(
            "rope_freqs.weight".into(),
            vec![s.head_dim / 2],
            GgmlDType::F32,
            Fill::Values(factors),
        ));
    }
    for i in 0..s.layers {
        let prefix = format!("blk.{i}.");
        let layer = Some((i, s.layers));
        tensors.push(norm(format!("{prefix}attn_norm.weight"), s.hidden));
        if arch == SynthArch::Phi3 {
            // phi3 keeps q, k and v in one matrix, and gate and up in another.
            tensors.push(matrix("attn_qkv", &prefix, layer, vec![q_width + 2 * kv_width, s.hidden]));
        } else {
            tensors.push(matrix("attn_q", &prefix, layer, vec![q_width, s.hidden]));
            tensors.push(matrix("attn_k", &prefix, layer, vec![kv_width, s.hidden]));
            tensors.push(matrix("attn_v", &prefix, layer, vec![kv_width, s.hidden]));
        }
        if arch == SynthArch::Qwen2 {
            for (name, len) in [("attn_q", q_width), ("attn_k", kv_width), ("attn_v", kv_width)] {
                tensors.push(TensorPlan::new(format!("{prefix}{name}.bias"), vec![len], GgmlDType::F32, Fill::Random));
            }
        }
        if matches!(arch, SynthArch::Qwen3 | SynthArch::Gemma3) {
            tensors.push(norm(format!("{prefix}attn_q_norm.weight"), s.head_dim));
            tensors.push(norm(format!("{prefix}attn_k_norm.weight"), s.head_dim));
        }
        tensors.push(matrix("attn_output", &prefix, layer, vec![s.hidden, q_width]));
        if arch == SynthArch::Gemma3 {
            tensors.push(norm(format!("{prefix}post_attention_norm.weight"), s.hidden));
            tensors.push(norm(format!("{prefix}post_ffw_norm.weight"), s.hidden));
        }
        tensors.push(norm(format!("{prefix}ffn_norm.weight"), s.hidden));
        if arch == SynthArch::Phi3 {
            tensors.push(matrix("ffn_up", &prefix, layer, vec![2 * s.ffn, s.hidden]));
        } else {
            tensors.push(matrix("ffn_gate", &prefix, layer, vec![s.ffn, s.hidden]));
            tensors.push(matrix("ffn_up", &prefix, layer, vec![s.ffn, s.hidden]));
        }
        tensors.push(matrix("ffn_down", &prefix, layer, vec![s.hidden, s.ffn]));
    }
    tensors.push(norm("output_norm.weight".into(), s.hidden));
    tensors.push(matrix("output", "", None, vec![s.vocab, s.hidden]));
    for tensor in &tensors {
        if tensor.columns() % tensor.dtype.block_size() != 0 {
            let (tensor, columns, dtype) = (tensor.name.clone(), tensor.columns(), tensor.dtype);
            return Err(SynthError::PartialBlock { tensor, columns, dtype });
        }
    }
    let metadata = metadata(arch, shape_name, quant, s);
    Ok(SynthPlan { arch, shape_name, quant, shape, metadata, tensors })
}

fn metadata(arch: SynthArch, shape_name: SynthShape, quant: SynthQuant, s: &ModelShape) -> Vec<(String, Value)> {
    let name = arch.name();
    let key = |k: &str| format!("{name}.{k}");
    let u32_of = |n: usize| Value::U32(n as u32);
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::String(name.into())),
        (
            "general.name".to_string(),
            Value::String(format!("synthetic {name} {} ({}), random weights", shape_name.name(), s.mirrors)),
        ),
        ("general.file_type".to_string(), Value::U32(quant.file_type())),
        (key("vocab_size"), u32_of(s.vocab)),
        (key("context_length"), u32_of(s.context)),
        (key("embedding_length"), u32_of(s.hidden)),
        (key("block_count"), u32_of(s.layers)),
        (key("feed_forward_length"), u32_of(s.ffn)),
        (key("attention.head_count"), u32_of(s.heads)),
        (key("attention.head_count_kv"), u32_of(s.kv_heads)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(s.rms_eps)),
        (key("rope.freq_base"), Value::F32(s.rope_theta)),
        (key("rope.dimension_count"), u32_of(s.head_dim)),
    ];
    // phi3 has no key_length: its head size is embedding_length / head_count.
    if arch != SynthArch::Phi3 {
        metadata.push((key("attention.key_length"), u32_of(s.head_dim)));
        metadata.push((key("attention.value_length"), u32_of(s.head_dim)));
    }
    if arch == SynthArch::Gemma3 {
        metadata.push((key("attention.sliding_window"), Value::U32(64)));
    }
    let flavour = match arch {
        SynthArch::Llama => vocabulary::Flavour::Llama3,
        _ => vocabulary::Flavour::ChatMl,
    };
    metadata.extend(vocabulary::metadata(flavour, s.vocab));
    metadata
}

#[cfg(test)]
mod tests;
