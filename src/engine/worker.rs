//! The inference worker: one dedicated OS thread owns the model (its KV cache makes `forward`
//! `&mut`) and serves jobs one at a time from a channel. Async callers get a future; dropping
//! it closes the reply channel, which the worker notices between tokens and stops.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::chat_template::ChatMessage;
use super::gguf::GgufModel;
use super::{EngineError, Generation, GenerationFuture, GenerationRequest, TextGenerator};
use crate::config::{EngineConfig, SamplingConfig};

struct Job {
    request: GenerationRequest,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Generation, EngineError>>,
}

/// The candle engine behind [`TextGenerator`].
pub struct LocalEngine {
    jobs: mpsc::UnboundedSender<Job>,
    model_name: String,
}

/// How long loading and warming up took, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub load: Duration,
    pub warm_up: Duration,
}

impl LocalEngine {
    /// Load the model, run a warm-up generation (the first forward repacks weights, which must
    /// not land on a real request), then start the worker thread. Blocking: call it from a
    /// blocking context.
    pub fn start(config: &EngineConfig) -> Result<(Self, LoadReport), EngineError> {
        let load_started = Instant::now();
        let mut model = GgufModel::load(&config.model_path)?;
        let load = load_started.elapsed();
        let warm_started = Instant::now();
        let warm_up = GenerationRequest {
            messages: vec![ChatMessage::user("Say hello.")],
            max_new_tokens: 2,
            min_new_tokens: 0,
            deadline: Instant::now() + Duration::from_secs(600),
            seed: 0,
        };
        model.generate(&warm_up, &config.sampling, &|| false)?;
        let warm_up = warm_started.elapsed();

        let model_name = model.name().to_string();
        let (jobs, queue) = mpsc::unbounded_channel();
        let sampling = config.sampling;
        std::thread::Builder::new()
            .name("bidder-engine".into())
            .spawn(move || run_worker(model, sampling, queue))
            .map_err(|e| EngineError::Load { path: config.model_path.display().to_string(), reason: e.to_string() })?;
        Ok((Self { jobs, model_name }, LoadReport { load, warm_up }))
    }
}

fn run_worker(mut model: GgufModel, sampling: SamplingConfig, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = queue.blocking_recv() {
        if job.reply.is_closed() {
            continue;
        }
        let queued = job.enqueued.elapsed();
        let reply = &job.reply;
        // A panic inside candle must cost one request, not the worker.
        let outcome = catch_unwind(AssertUnwindSafe(|| model.generate(&job.request, &sampling, &|| reply.is_closed())))
            .unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(%reason, "inference panicked");
                Err(EngineError::Inference(format!("panic: {reason}")))
            });
        let outcome = outcome.map(|mut generation| {
            generation.queued = queued;
            generation
        });
        if let Err(EngineError::Cancelled) = outcome {
            tracing::debug!("generation cancelled: the caller went away");
            continue;
        }
        let _ = job.reply.send(outcome);
    }
}

impl TextGenerator for LocalEngine {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        let (reply, answer) = oneshot::channel();
        let sent = self.jobs.send(Job { request, enqueued: Instant::now(), reply });
        Box::pin(async move {
            sent.map_err(|_| EngineError::WorkerGone)?;
            answer.await.map_err(|_| EngineError::WorkerGone)?
        })
    }
}
