//! Prompt lab: try prompts on a model, several seeds each, as the strategies would send them.
//! `cargo run --release --example ask -- MODEL PROMPTS.json`, where PROMPTS.json is
//! `[[system, user, optional_response_prefix], ...]`; `N` seeds per prompt, `T` temperature.
use std::time::{Duration, Instant};

use bidder::config::SamplingConfig;
use bidder::engine::{ChatMessage, GenerationRequest, GgufModel};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut model = GgufModel::load(std::path::Path::new(&args[1]), &candle_core::Device::Cpu).unwrap();
    let prompts: Vec<Vec<String>> = serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
    let temperature: f64 = std::env::var("T").ok().and_then(|t| t.parse().ok()).unwrap_or(0.4);
    let sampling = SamplingConfig { temperature, ..SamplingConfig::default() };
    for (i, p) in prompts.iter().enumerate() {
        for seed in 0..std::env::var("N").ok().and_then(|t| t.parse().ok()).unwrap_or(1u64) {
            let mut messages = vec![];
            if !p[0].is_empty() {
                messages.push(ChatMessage::system(p[0].clone()));
            }
            messages.push(ChatMessage::user(p[1].clone()));
            let request = GenerationRequest {
                messages,
                max_new_tokens: 300,
                min_new_tokens: 2,
                deadline: Instant::now() + Duration::from_secs(60),
                seed,
                response_prefix: p.get(2).cloned().unwrap_or_default(),
                repetition: bidder::engine::Repetition::Controlled,
            };
            let prompt = model.encoder().encode_with_prefix(&request.messages, &request.response_prefix).unwrap();
            let g = model.generate(prompt, &request, &sampling, &|| false).unwrap();
            println!("=== {i}/{seed}\n{}\n", g.text);
        }
    }
}
