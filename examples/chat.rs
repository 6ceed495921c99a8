//! Prompt experiments: `cargo run --example chat -- MODEL.gguf "system" "user" [max_tokens] [temperature]`
//! prints what the model answers to one system + user message pair, with its timings.
use std::time::{Duration, Instant};

use bidder::config::{EngineConfig, SamplingConfig};
use bidder::engine::{ChatMessage, GenerationRequest, LocalEngine, TextGenerator};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, system, user, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: chat MODEL.gguf SYSTEM USER [MAX_TOKENS] [TEMPERATURE]");
    };
    let max_new_tokens = rest.first().map_or(Ok(400), |s| s.parse())?;
    let temperature = rest.get(1).map_or(Ok(0.4), |s| s.parse())?;
    let config = EngineConfig {
        model_path: model.into(),
        device: bidder::config::DeviceChoice::Cpu,
        threads: std::thread::available_parallelism()?.get(),
        workers: 1,
        queue_capacity: 1,
        max_batch: 1,
        kv_cache_bytes: 1 << 30,
        capability: None,
        sampling: SamplingConfig { temperature, ..SamplingConfig::default() },
        load: Default::default(),
    };
    let (engine, _) = LocalEngine::start(&config)?;
    let started = Instant::now();
    let mut messages = vec![ChatMessage::user(user.as_str())];
    if !system.is_empty() {
        messages.insert(0, ChatMessage::system(system.as_str()));
    }
    let generation = tokio::runtime::Runtime::new()?.block_on(engine.generate(GenerationRequest {
        messages,
        max_new_tokens,
        min_new_tokens: 8,
        deadline: Instant::now() + Duration::from_secs(120),
        seed: 42,
        response_prefix: String::new(),
        repetition: bidder::engine::Repetition::Controlled,
    }))?;
    println!(
        "{}\n---\n{:?} in {:?}: {} prompt tokens, {} new",
        generation.text,
        generation.finish,
        started.elapsed(),
        generation.input_tokens,
        generation.output_tokens
    );
    Ok(())
}
