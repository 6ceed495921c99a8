//! Writing a [`SynthPlan`] as a GGUF file, fast enough for an 8B model at the start of a GPU
//! check. Quantizing billions of random values would take minutes and gigabytes of f32, and
//! speed does not depend on the values: so each (row length, type) gets a few random rows,
//! quantized once (and checked: every block's scales finite), and every tensor of that kind is
//! those bytes repeated to its size. The file is streamed — header, then each tensor from a
//! buffer of repeated rows — so memory stays at a few tens of MiB whatever the model's size, and
//! the time is the disk's.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::{Fill, SynthError, SynthPlan, TensorPlan};

/// GGUF's default alignment of tensor data, which candle and llama.cpp read without a
/// `general.alignment` entry.
const ALIGNMENT: usize = 32;

/// Distinct random rows per (row length, type): enough that neighbouring output logits differ.
const PATTERN_ROWS: usize = 64;

/// Bytes of repeated rows handed to the file at once.
const CHUNK_BYTES: usize = 16 << 20;

/// What [`write`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub path: PathBuf,
    pub architecture: &'static str,
    pub shape: &'static str,
    pub mirrors: &'static str,
    pub quant: &'static str,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Write `plan` to `path`, through a `.partial` file renamed at the end, so an interrupted
/// write never leaves a file that looks whole.
pub fn write(plan: &SynthPlan, path: &Path) -> Result<WriteReport, SynthError> {
    let started = Instant::now();
    let partial = path.with_extension("gguf.partial");
    let io = |target: &Path| {
        let target = target.display().to_string();
        move |source| SynthError::Io { path: target.clone(), source }
    };
    let mut file = BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(io(&partial))?);
    let header = encode_header(plan);
    file.write_all(&header).map_err(io(&partial))?;
    let mut written = header.len() as u64;
    let mut chunks = Chunks::default();
    for tensor in &plan.tensors {
        written += write_tensor(&mut file, tensor, &mut chunks).map_err(|e| match e {
            WriteError::Io(source) => io(&partial)(source),
            WriteError::Synth(e) => e,
        })?;
    }
    file.flush().map_err(io(&partial))?;
    drop(file);
    std::fs::rename(&partial, path).map_err(io(path))?;
    Ok(WriteReport {
        path: path.to_path_buf(),
        architecture: plan.arch.name(),
        shape: plan.shape_name.name(),
        mirrors: plan.shape.mirrors,
        quant: plan.quant.name(),
        tensors: plan.tensors.len(),
        parameters: plan.parameters(),
        bytes: written,
        seconds: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
}

enum WriteError {
    Io(std::io::Error),
    Synth(SynthError),
}

impl From<std::io::Error> for WriteError {
    fn from(err: std::io::Error) -> Self {
        WriteError::Io(err)
    }
}

fn padding(len: usize) -> usize {
    len.next_multiple_of(ALIGNMENT) - len
}

/// The file up to its first tensor's data: metadata, tensor infos, padding. On its own it is
/// what a header check reads (candle's reader does not look past it).
pub fn encode_header(plan: &SynthPlan) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 << 20);
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(plan.tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(plan.metadata.len() as u64).to_le_bytes());
    for (key, value) in &plan.metadata {
        encode_string(&mut out, key);
        out.extend_from_slice(&value_type(value).to_le_bytes());
        encode_value(&mut out, value);
    }
    let mut offset = 0usize;
    for tensor in &plan.tensors {
        encode_string(&mut out, &tensor.name);
        out.extend_from_slice(&(tensor.dims.len() as u32).to_le_bytes());
        // GGUF lists dimensions innermost first.
        for &dim in tensor.dims.iter().rev() {
            out.extend_from_slice(&(dim as u64).to_le_bytes());
        }
        out.extend_from_slice(&ggml_type_id(tensor.dtype).to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += tensor.bytes() + padding(tensor.bytes());
    }
    out.resize(out.len() + padding(out.len()), 0);
    out
}

/// The ids of the types a plan uses (candle keeps its own mapping private).
fn ggml_type_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q4K => 12,
        GgmlDType::Q6K => 14,
        other => unreachable!("synthetic plans use F32, Q8_0, Q4_K and Q6_K, not {other:?}"),
    }
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(value: &Value) -> u32 {
    match value {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(v) => encode_string(out, v),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Array(items) => {
            // An empty array's element type is never read; the plan's arrays are all one type.
            let element = items.first().map_or(value_type(&Value::U32(0)), value_type);
            out.extend_from_slice(&element.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|item| encode_value(out, item));
        }
    }
}

/// Buffers of repeated quantized random rows, one per (row length, type), built on first use.
#[derive(Default)]
struct Chunks {
    by_kind: HashMap<(usize, GgmlDType), Vec<u8>>,
    seed: u64,
}

impl Chunks {
    /// Whole rows of `tensor`'s kind, at least [`CHUNK_BYTES`] of them.
    fn for_tensor(&mut self, tensor: &TensorPlan) -> Result<&[u8], SynthError> {
        let columns = tensor.columns();
        let key = (columns, tensor.dtype);
        if !self.by_kind.contains_key(&key) {
            self.seed += 1;
            let pattern = random_rows(tensor, PATTERN_ROWS, self.seed)?;
            let repeats = CHUNK_BYTES.div_ceil(pattern.len()).max(1);
            self.by_kind.insert(key, pattern.repeat(repeats));
        }
        Ok(&self.by_kind[&key])
    }
}

/// Write `tensor`'s data and its padding; returns the bytes written.
fn write_tensor(file: &mut impl Write, tensor: &TensorPlan, chunks: &mut Chunks) -> Result<u64, WriteError> {
    let size = tensor.bytes();
    match &tensor.fill {
        Fill::Random => {
            let chunk = chunks.for_tensor(tensor).map_err(WriteError::Synth)?;
            // A chunk is whole rows and so is the tensor: what is left after whole chunks is a
            // prefix of one, still whole rows.
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                file.write_all(&chunk[..n])?;
                left -= n;
            }
        }
        Fill::Ones => file.write_all(&f32_bytes(&vec![1.0; tensor.elements()]))?,
        Fill::Values(values) => file.write_all(&f32_bytes(values))?,
    }
    file.write_all(&vec![0u8; padding(size)])?;
    Ok((size + padding(size)) as u64)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `rows` rows of normal values of `tensor`'s row length with standard deviation
/// 1/sqrt(row length) — so a matrix keeps its input's magnitude and activations neither vanish
/// nor overflow through the layers — quantized to its type. Fails if a block came out unusable.
fn random_rows(tensor: &TensorPlan, rows: usize, seed: u64) -> Result<Vec<u8>, SynthError> {
    let columns = tensor.columns();
    let scale = 1.0 / (columns as f64).sqrt();
    let mut rng = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ columns as u64);
    let values: Vec<f32> = (0..rows * columns).map(|_| (rng.normal() * scale) as f32).collect();
    let failed = |reason: String| SynthError::Quantize { tensor: tensor.name.clone(), reason };
    let matrix = Tensor::from_vec(values, (rows, columns), &Device::Cpu).map_err(|e| failed(e.to_string()))?;
    let quantized = QTensor::quantize(&matrix, tensor.dtype).map_err(|e| failed(e.to_string()))?;
    // A block with an infinite or NaN scale would poison every activation it touches; the
    // dequantized rows show it.
    let back = quantized.dequantize(&Device::Cpu).and_then(|t| t.flatten_all()?.to_vec1::<f32>());
    match back {
        Ok(values) if values.iter().all(|v| v.is_finite()) => {}
        Ok(_) => return Err(failed("a block's scale is not finite".into())),
        Err(e) => return Err(failed(e.to_string())),
    }
    quantized.data().map(|data| data.into_owned()).map_err(|e| failed(e.to_string()))
}

/// A small deterministic generator (SplitMix64): the same plan writes the same file.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
