//! The engine on the default model (SmolLM2-135M Q4_1): prefill of a 332-token prompt, one
//! decode step after it, and a whole prototype through the pipeline. Needs
//! `scripts/fetch-models.sh`. For the comparison with llama.cpp use scripts/bench-vs-llama.sh.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bidder::config::{DeviceChoice, EngineConfig, SamplingConfig, StrategyConfig};
use bidder::engine::{ChatMessage, GgufModel, LocalEngine};
use bidder::pipeline::{PhaseRoutes, Pipeline};
use bidder::protocol::parse_brief;
use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group};

const PROMPT_TOKENS: usize = 332;

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(bidder::config::DEFAULT_MODEL_PATH)
}

fn pin_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: benches run one at a time on the main thread; candle reads these on use.
        unsafe { bidder::engine::set_cpu_environment(threads, None) };
    }
}

fn prompt(model: &GgufModel) -> Vec<u32> {
    let text = "The quick brown fox jumps over the lazy dog while the bidder reads its prompt. ".repeat(40);
    let mut ids = model.encoder().encode(&[ChatMessage::user(text)]).unwrap();
    ids.truncate(PROMPT_TOKENS);
    ids
}

fn prefill_and_decode(c: &mut Criterion) {
    pin_threads();
    let mut model = GgufModel::load(&model_path(), &Device::Cpu).expect("run scripts/fetch-models.sh first");
    let prompt = prompt(&model);
    model.forward(&prompt, 0).unwrap(); // the first pass repacks the weights

    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PROMPT_TOKENS as u64));
    // Forward passes run on a rayon thread, as `GgufModel::generate` runs them.
    group.bench_function("prefill_332_tokens", |b| b.iter(|| rayon::scope(|_| model.forward(&prompt, 0).unwrap())));

    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.bench_function("decode_step_after_332", |b| {
        b.iter_custom(|iterations| {
            rayon::scope(|_| {
                let mut elapsed = Duration::ZERO;
                let mut position = usize::MAX;
                for _ in 0..iterations {
                    // Keep the context near the benchmark's depth: re-read the prompt (untimed).
                    if position >= PROMPT_TOKENS + 256 {
                        model.forward(&prompt, 0).unwrap();
                        position = PROMPT_TOKENS;
                    }
                    let started = Instant::now();
                    model.forward(&[42], position).unwrap();
                    elapsed += started.elapsed();
                    position += 1;
                }
                elapsed
            })
        })
    });
    group.finish();
}

fn whole_prototype(c: &mut Criterion) {
    pin_threads();
    let config = EngineConfig {
        model_path: model_path(),
        device: DeviceChoice::Cpu,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        workers: 1,
        queue_capacity: 4,
        max_batch: 4,
        kv_cache_bytes: 1 << 30,
        capability: None,
        sampling: SamplingConfig::default(),
        load: Default::default(),
    };
    let (engine, _) = LocalEngine::start(&config).expect("run scripts/fetch-models.sh first");
    let pipeline = Pipeline::new(PhaseRoutes::single(Arc::new(engine)), StrategyConfig::default());
    let brief = parse_brief(include_bytes!("../tests/fixtures/briefs/minimal-brief.json")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.bench_function("prototype_minimal_brief", |b| {
        b.iter(|| runtime.block_on(pipeline.execute(&brief, Instant::now())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, prefill_and_decode, whole_prototype);
