//! Several answers at once on the real engine (SmolLM2, the real candle worker): requests that
//! arrive together are decoded together instead of queueing behind each other, each caller
//! gets its own answer, and a call that repeats the previous one's opening (the system prompt
//! and the brief of one task's calls) starts after the prefix the cache already holds. The
//! logits themselves are held to single-sequence runs in `decoder_parity.rs`. Needs
//! `scripts/fetch-models.sh --all`.

mod common;

use std::time::{Duration, Instant};

use bidder::config::{DeviceChoice, EngineConfig, SamplingConfig};
use bidder::engine::{ChatMessage, GenerationRequest, LocalEngine, TextGenerator};

fn engine(max_batch: usize) -> LocalEngine {
    let model_path = common::repo_path("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model_path.is_file(), "run scripts/fetch-models.sh --all first");
    let config = EngineConfig {
        model_path,
        device: DeviceChoice::Cpu,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        workers: 1,
        queue_capacity: 8,
        max_batch,
        kv_cache_bytes: 256 << 20,
        capability: None,
        sampling: SamplingConfig { temperature: 0.0, ..SamplingConfig::default() },
        load: Default::default(),
    };
    LocalEngine::start(&config).expect("the model loads").0
}

fn request(system: &str, user: &str, tokens: usize) -> GenerationRequest {
    let messages = vec![ChatMessage::system(system), ChatMessage::user(user)];
    let mut request = GenerationRequest::new(messages, tokens, Instant::now() + Duration::from_secs(120), 7);
    request.min_new_tokens = tokens;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_arrive_together_are_decoded_together_each_with_its_own_answer() {
    let engine = engine(4);
    assert_eq!(engine.concurrency(), 4, "one worker, four sequences at once");
    let users = ["Name a colour.", "Name a fruit and say why it is sweet.", "Count to five.", "Say hello to Ana."];
    let asks = users.map(|user| engine.generate(request("You are brief.", user, 40)));
    let answers: Vec<_> = futures_util::future::join_all(asks).await.into_iter().map(|a| a.unwrap()).collect();
    for (user, answer) in users.iter().zip(&answers) {
        assert_eq!(answer.output_tokens, 40, "{user}: every sequence is decoded to its own length");
        assert!(!answer.text.trim().is_empty(), "{user}");
        // Admitted at once beside the others, not after them: nobody waited for a whole answer.
        assert!(
            answer.queued < answers.iter().map(|a| a.compute_time()).min().unwrap(),
            "{user} waited {:?} in the queue",
            answer.queued
        );
    }
    // (Which caller gets which answer is held by the worker's own tests; the texts themselves
    // may differ from a lone run's by the rounding of a different pass, which a 135M model's
    // greedy choice can amplify: decoder_parity.rs holds the logits.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_repeats_the_last_ones_opening_starts_after_it() {
    let engine = engine(1);
    let system = "You write short product texts for an online shop that sells tea, cups and kettles. \
                  Keep every sentence plain and concrete, name the product, and never invent prices.";
    let first = engine.generate(request(system, "Write one sentence about green tea.", 8)).await.unwrap();
    // The warm-up's prompt shares at most the chat template's opening with it.
    assert!(first.reused_tokens < 10, "{} tokens reused by the first call", first.reused_tokens);
    let second = engine.generate(request(system, "Write one sentence about a kettle.", 8)).await.unwrap();
    assert!(
        second.reused_tokens >= first.reused_tokens + 30 && second.reused_tokens < second.input_tokens,
        "the shared system prompt is taken from the cache: {} of {} prompt tokens",
        second.reused_tokens,
        second.input_tokens
    );
    assert_eq!(second.output_tokens, 8);
}
