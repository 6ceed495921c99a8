//! The candle engine for one model: `workers` dedicated OS threads, each owning its own copy of
//! the model (the KV cache makes `forward` `&mut`), serving jobs earliest-deadline-first from an
//! [`AdmissionQueue`]. Async callers get a future; dropping it closes the reply channel, which
//! the worker notices between forward passes and stops.
//!
//! On a CPU, one worker is right: candle runs every forward pass on one global thread pool that
//! already uses all the cores, so a second worker only interleaves with the first (each job
//! slower, none sooner). On CUDA each worker loads and runs its model on its own thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::admission::{AdmissionQueue, Job, Speed};
use super::chat_template::ChatMessage;
use super::gguf::{GgufModel, PromptEncoder};
use super::{EngineError, Generation, GenerationFuture, GenerationRequest, TextGenerator};
use crate::config::{EngineConfig, SamplingConfig};

/// A prompt of about a hundred tokens: long enough for a first speed measurement that admission
/// can trust, short enough to keep start-up quick.
const WARM_UP_PROMPT: &str = "Write one short sentence about the sea. The sea is wide and deep, blue and green, \
calm in summer and wild in winter; ships cross it, fish live in it, and people have written about \
it for thousands of years in every language. Keep the sentence simple and clear.";
const WARM_UP_NEW_TOKENS: usize = 8;

/// The candle engine behind [`TextGenerator`].
pub struct LocalEngine {
    queue: Arc<AdmissionQueue>,
    encoder: Arc<PromptEncoder>,
    model_name: String,
}

/// How long loading and warming up took, and the speed measured while warming up.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub load: Duration,
    pub warm_up: Duration,
    pub speed: Speed,
}

impl LocalEngine {
    /// Load the model once per worker, warm each copy up (the first forward repacks weights,
    /// which must not land on a real request, and gives the first speed measurement), then
    /// start the workers. Blocking: call it from a blocking context.
    pub fn start(config: &EngineConfig) -> Result<(Self, LoadReport), EngineError> {
        let load_started = Instant::now();
        let mut models = Vec::with_capacity(config.workers);
        for _ in 0..config.workers.max(1) {
            models.push(GgufModel::load(&config.model_path)?);
        }
        let load = load_started.elapsed();

        let warm_started = Instant::now();
        let mut speed = None;
        for model in &mut models {
            let measured = warm_up(model, &config.sampling)?;
            speed.get_or_insert(measured);
        }
        let speed = speed.expect("at least one worker");
        let warm_up = warm_started.elapsed();

        let model_name = models[0].name().to_string();
        let encoder = models[0].encoder().clone();
        let queue = Arc::new(AdmissionQueue::new(&model_name, config.queue_capacity, models.len(), speed));
        for (index, model) in models.into_iter().enumerate() {
            let (queue, sampling) = (queue.clone(), config.sampling);
            std::thread::Builder::new()
                .name(format!("bidder-engine-{index}"))
                .spawn(move || run_worker(model, sampling, &queue))
                .map_err(|e| EngineError::Load {
                    path: config.model_path.display().to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok((Self { queue, encoder, model_name }, LoadReport { load, warm_up, speed }))
    }
}

fn warm_up(model: &mut GgufModel, sampling: &SamplingConfig) -> Result<Speed, EngineError> {
    let request = GenerationRequest {
        messages: vec![ChatMessage::user(WARM_UP_PROMPT)],
        max_new_tokens: WARM_UP_NEW_TOKENS,
        min_new_tokens: WARM_UP_NEW_TOKENS,
        deadline: Instant::now() + Duration::from_secs(600),
        seed: 0,
    };
    let prompt = model.encoder().encode(&request.messages)?;
    // The first pass pays for repacking the weights; the second measures.
    model.generate(prompt.clone(), &request, sampling, &|| false)?;
    let measured = model.generate(prompt, &request, sampling, &|| false)?;
    let per_second = |tokens: usize, time: Duration| tokens as f64 / time.as_secs_f64().max(1e-6);
    Ok(Speed {
        prefill_tps: per_second(measured.input_tokens, measured.prefill),
        decode_tps: per_second(measured.output_tokens.max(1), measured.decode),
    })
}

fn run_worker(mut model: GgufModel, sampling: SamplingConfig, queue: &AdmissionQueue) {
    while let Some((ticket, job)) = queue.next() {
        if job.reply.is_closed() {
            queue.finished(ticket, None);
            continue;
        }
        let queued = job.enqueued.elapsed();
        let reply = &job.reply;
        // A panic inside candle must cost one request, not the worker.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            model.generate(job.prompt, &job.request, &sampling, &|| reply.is_closed())
        }))
        .unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%reason, "inference panicked");
            Err(EngineError::Inference(format!("panic: {reason}")))
        });
        queue.finished(ticket, outcome.as_ref().ok());
        match outcome {
            Err(EngineError::Cancelled) => tracing::debug!("generation cancelled: the caller went away"),
            outcome => {
                let _ = job.reply.send(outcome.map(|generation| Generation { queued, ..generation }));
            }
        }
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl TextGenerator for LocalEngine {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        let (reply, answer) = oneshot::channel();
        let submitted = self
            .encoder
            .encode(&request.messages)
            .and_then(|prompt| self.queue.submit(Job { prompt, request, enqueued: Instant::now(), reply }));
        Box::pin(async move {
            submitted?;
            answer.await.map_err(|_| EngineError::WorkerGone)?
        })
    }
}
