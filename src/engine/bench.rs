//! `bidder bench-model`: the engine's own speed on one GGUF, measured the way a request uses it
//! (chunked prefill of an N-token prompt, then M decoded tokens with sampling), so it can be
//! set beside llama.cpp's `llama-bench` on the same file and threads.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::gguf::GgufModel;
use super::sequence::Sequence;
use super::{ChatMessage, EngineError, GenerationRequest};
use crate::config::{LoadOptions, SamplingConfig};

const FILLER: &str = "The quick brown fox jumps over the lazy dog while the bidder measures how fast \
it reads a prompt and writes an answer, one token at a time, on this machine. ";

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub engine: &'static str,
    pub model: String,
    pub architecture: String,
    /// Where the model ran: `cpu`, `cuda:0`.
    pub device: String,
    pub threads: usize,
    /// The CPU kernel tier the matmuls ran with (`avx512`, `avx2`, `generic`).
    pub cpu_tier: &'static str,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub load_s: f64,
    pub warm_up_s: f64,
    pub prefill_tps: f64,
    pub decode_tps: f64,
    /// Sequences decoded together in the batched run (`--concurrency`), if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Their prompts' tokens per second, all together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_prefill_tps: Option<f64>,
    /// Their new tokens per second, all together (compare with `decode_tps`, one alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_decode_tps: Option<f64>,
    /// Peak resident memory of the process (VmHWM), in MiB.
    pub rss_mb: f64,
}

/// What one benchmark runs: the request's size, how often, and how many sequences together.
#[derive(Debug, Clone, Copy)]
pub struct BenchWorkload {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// Timed repetitions; the mean is reported.
    pub repetitions: usize,
    /// Sequences decoded together in the batched run (1: no batched run).
    pub concurrency: usize,
}

pub fn bench_model(
    path: &Path,
    device: &candle_core::Device,
    threads: usize,
    workload: BenchWorkload,
    options: LoadOptions,
) -> Result<BenchReport, EngineError> {
    let BenchWorkload { prompt_tokens, gen_tokens, repetitions, concurrency } = workload;
    let load_started = Instant::now();
    let mut model = GgufModel::load_with(path, device, options)?;
    let load = load_started.elapsed();

    let mut prompt = Vec::with_capacity(prompt_tokens);
    let filler = model.encoder().encode(&[ChatMessage::user(FILLER.repeat(8))])?;
    while prompt.len() < prompt_tokens {
        prompt.extend_from_slice(&filler[..filler.len().min(prompt_tokens - prompt.len())]);
    }
    // Greedy, no penalty: the speed of the model, not of a sampling setting.
    let sampling = SamplingConfig {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        repeat_penalty: 1.0,
        repeat_last_n: 0,
        no_repeat_ngram: 0,
    };
    let request = GenerationRequest {
        messages: Vec::new(),
        max_new_tokens: gen_tokens,
        min_new_tokens: gen_tokens,
        deadline: Instant::now() + Duration::from_secs(24 * 3600),
        seed: 0,
        response_prefix: String::new(),
        repetition: super::Repetition::Controlled,
    };
    let warm_started = Instant::now();
    model.forget_prefixes();
    model.generate(
        prompt.clone(),
        &GenerationRequest { max_new_tokens: 2, min_new_tokens: 2, ..request.clone() },
        &sampling,
        &|| false,
    )?;
    let warm_up = warm_started.elapsed();

    let (mut prefill, mut decode, mut decoded) = (Duration::ZERO, Duration::ZERO, 0);
    for _ in 0..repetitions.max(1) {
        // Each repetition reads the whole prompt, not the prefix the last one left cached.
        model.forget_prefixes();
        let run = model.generate(prompt.clone(), &request, &sampling, &|| false)?;
        prefill += run.prefill;
        decode += run.decode;
        decoded += run.output_tokens;
    }
    let runs = repetitions.max(1) as f64;
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let batched = match concurrency > 1 {
        true => Some(batched_run(&mut model, &prompt, &request, &sampling, concurrency, repetitions.max(1))?),
        false => None,
    };
    Ok(BenchReport {
        engine: "bidder",
        model: path.display().to_string(),
        architecture: model.architecture().to_string(),
        device: super::device_name(device),
        threads,
        cpu_tier: bidder_kernels::Tier::active().name(),
        prompt_tokens: prompt.len(),
        gen_tokens,
        load_s: (load.as_secs_f64() * 1000.0).round() / 1000.0,
        warm_up_s: (warm_up.as_secs_f64() * 1000.0).round() / 1000.0,
        prefill_tps: round1(prompt.len() as f64 * runs / prefill.as_secs_f64()),
        decode_tps: round1(decoded as f64 / decode.as_secs_f64()),
        concurrency: batched.map(|_| concurrency),
        aggregate_prefill_tps: batched.map(|(prefill, _)| round1(prefill)),
        aggregate_decode_tps: batched.map(|(_, decode)| round1(decode)),
        rss_mb: round1(peak_rss_mib()),
    })
}

/// `sequences` copies of the request decoded together, `repetitions` times: their prompts'
/// tokens per second and their new tokens per second, all together. Each sequence's prompt
/// differs from the others' in its first token, so none reuses another's cached prefix.
fn batched_run(
    model: &mut GgufModel,
    prompt: &[u32],
    request: &GenerationRequest,
    sampling: &SamplingConfig,
    sequences: usize,
    repetitions: usize,
) -> Result<(f64, f64), EngineError> {
    if model.set_slots(sequences) < sequences {
        return Err(EngineError::Inference(format!(
            "{} runs one sequence per forward pass; --concurrency needs llama or qwen2",
            model.architecture()
        )));
    }
    let (mut prefill, mut decode, mut prompt_tokens, mut decoded) = (Duration::ZERO, Duration::ZERO, 0, 0);
    for _ in 0..repetitions {
        model.forget_prefixes();
        let mut running: Vec<Sequence> = (0..sequences)
            .map(|i| {
                let mut prompt = prompt.to_vec();
                prompt[0] = prompt[0].wrapping_add(i as u32 + 1) % 1000 + 10;
                model.sequence(prompt, request, sampling)
            })
            .collect();
        for (slot, sequence) in running.iter_mut().enumerate() {
            model.begin(slot, sequence)?;
            prompt_tokens += sequence.prompt().len();
        }
        let started = Instant::now();
        let mut batch: Vec<(usize, &mut Sequence)> = running.iter_mut().enumerate().collect();
        while batch.iter().any(|(_, s)| s.is_prefilling()) {
            model.run_on_pool(|model| model.step(&mut batch, usize::MAX))?;
        }
        prefill += started.elapsed();
        let started = Instant::now();
        while batch.iter().any(|(_, s)| !s.is_done()) {
            model.run_on_pool(|model| model.step(&mut batch, usize::MAX))?;
        }
        decode += started.elapsed();
        drop(batch);
        for sequence in running {
            decoded += sequence.finish(model.encoder())?.output_tokens;
        }
    }
    model.set_slots(1);
    Ok((prompt_tokens as f64 / prefill.as_secs_f64(), decoded as f64 / decode.as_secs_f64()))
}

/// VmHWM from /proc/self/status (0 where there is no such file).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
