//! Flags of the commands that check a machine rather than serve it: `synth-model` writes a
//! model of a real shape with random weights, `parity-check` compares a device's logits with the
//! CPU's. `scripts/gpu-check.sh` runs both on a GPU box that has the binary and nothing else.

use std::path::PathBuf;

use clap::Args;

use super::{DEFAULT_MODEL_PATH, DeviceChoice, parse_device};
use crate::engine::synth::{SynthArch, SynthQuant, SynthShape};

#[derive(Debug, Clone, Args)]
pub struct SynthModelArgs {
    /// Model family (`general.architecture`). Real-sized shapes are llama and qwen2; every
    /// family has `tiny`.
    #[arg(long, env = "BIDDER_SYNTH_ARCH", value_enum, default_value_t = SynthArch::Llama)]
    pub arch: SynthArch,
    /// Whose dimensions: `8b` (llama: Llama-3.1-8B; qwen2: Qwen2.5-7B), `14b` and `32b`
    /// (Qwen2.5-14B and -32B; a llama gets the same body with Llama 3's vocabulary), or `tiny`.
    #[arg(long, env = "BIDDER_SYNTH_SHAPE", value_enum, default_value_t = SynthShape::Tiny)]
    pub shape: SynthShape,
    /// Tensor types: `q4_k_m` (llama.cpp's mix: Q4_K, with Q6_K for the output and for attn_v
    /// and ffn_down in half the layers), `q8_0`, or `f32` (tiny models).
    #[arg(long, env = "BIDDER_SYNTH_QUANT", value_enum, default_value_t = SynthQuant::Q4KM)]
    pub quant: SynthQuant,
    /// The GGUF file to write (replaced if it exists).
    #[arg(long, env = "BIDDER_SYNTH_OUT")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ParityCheckArgs {
    /// The GGUF to run on both (a tiny synthetic one is enough: `bidder synth-model`).
    #[arg(long, env = "BIDDER_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// The device compared with the CPU: `cuda` or `cuda:N` (`cpu` runs the CPU against
    /// itself, a dry run of the check).
    #[arg(long, env = "BIDDER_DEVICE", default_value = "cuda", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Decode steps after the prompts.
    #[arg(long, env = "BIDDER_PARITY_STEPS", default_value_t = 8)]
    pub steps: usize,
    /// Largest accepted difference of a logit between the devices, as a share of the largest
    /// CPU logit of the same pass. Both quantize activations, each in its own way.
    #[arg(long, env = "BIDDER_PARITY_TOLERANCE", default_value_t = 0.05)]
    pub tolerance: f64,
    /// CPU threads (default: all available cores).
    #[arg(long, env = "BIDDER_THREADS")]
    pub threads: Option<usize>,
}
