//! The candle engine for one model: `workers` dedicated OS threads, each owning its own copy of
//! the model (the KV cache makes `forward` `&mut`), serving jobs earliest-deadline-first from an
//! [`AdmissionQueue`]. Async callers get a future; dropping it closes the reply channel, which
//! the worker notices between forward passes and stops.
//!
//! On a CPU, one worker is right: every matmul of a forward pass is split over one global rayon
//! pool that already uses all the cores, so a second worker only interleaves with the first
//! (each job slower, none sooner). On CUDA each worker loads and runs its model on its own thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::admission::{AdmissionQueue, Job, Speed};
use super::chat_template::ChatMessage;
use super::gguf::{GgufModel, PromptEncoder, model_name};
use super::{Capability, EngineError, Generation, GenerationFuture, GenerationRequest, TextGenerator};
use candle_core::Device;

use crate::config::{DeviceChoice, EngineConfig, SamplingConfig};

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
    capability: Capability,
}

/// How long loading and warming up took, and the speed measured while warming up.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub load: Duration,
    pub warm_up: Duration,
    pub speed: Speed,
    /// The model's weights, counted at load.
    pub parameters: u64,
    /// What the strategies trust it with: configured, or from `parameters`.
    pub capability: Capability,
}

/// What a worker reports once its model is loaded and warm.
struct WorkerReady {
    name: String,
    encoder: Arc<PromptEncoder>,
    load: Duration,
    warm_up: Duration,
    speed: Speed,
    parameters: u64,
}

impl LocalEngine {
    /// Start `config.workers` threads; each loads its own copy of the model onto the configured
    /// device and warms it up (the first forward repacks weights, which must not land on a real
    /// request, and gives the first speed measurement) before taking jobs. Returns once every
    /// worker is warm, or with the first failure. Blocking: call it from a blocking context.
    pub fn start(config: &EngineConfig) -> Result<(Self, LoadReport), EngineError> {
        let workers = config.workers.max(1);
        // Admission learns the real speed from the first warm-up, before any job can arrive.
        let provisional = Speed { prefill_tps: 1.0, decode_tps: 1.0 };
        let queue =
            Arc::new(AdmissionQueue::new(&model_name(&config.model_path), config.queue_capacity, workers, provisional));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<WorkerReady, EngineError>>();
        let alive = Arc::new(AtomicUsize::new(workers));
        for index in 0..workers {
            let (worker_queue, worker_config, ready) = (queue.clone(), config.clone(), ready_tx.clone());
            let alive = alive.clone();
            let spawned = std::thread::Builder::new().name(format!("bidder-engine-{index}")).spawn(move || {
                match load_and_warm(&worker_config) {
                    Ok((model, report)) => {
                        let _ = ready.send(Ok(report));
                        let reload = || load_and_warm(&worker_config).map(|(model, _)| model);
                        run_worker(model, worker_config.sampling, &worker_queue, &reload);
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                    }
                }
                // The last worker to go closes the queue, so nothing waits for a worker that
                // will never come.
                if alive.fetch_sub(1, Ordering::SeqCst) == 1 {
                    worker_queue.close();
                }
            });
            if let Err(e) = spawned {
                queue.close();
                return Err(EngineError::Load { path: config.model_path.display().to_string(), reason: e.to_string() });
            }
        }
        drop(ready_tx);
        let mut first: Option<WorkerReady> = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(ready)) => {
                    first.get_or_insert(ready);
                }
                Ok(Err(err)) => {
                    queue.close();
                    return Err(err);
                }
                Err(_) => {
                    queue.close();
                    return Err(EngineError::WorkerGone);
                }
            }
        }
        let first = first.expect("at least one worker reported");
        queue.set_speed(first.speed);
        let capability = config.capability.unwrap_or_else(|| Capability::from_parameters(first.parameters));
        let report = LoadReport {
            load: first.load,
            warm_up: first.warm_up,
            speed: first.speed,
            parameters: first.parameters,
            capability,
        };
        Ok((Self { queue, encoder: first.encoder, model_name: first.name, capability }, report))
    }
}

fn load_and_warm(config: &EngineConfig) -> Result<(GgufModel, WorkerReady), EngineError> {
    let device = match config.device {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| EngineError::Load {
            path: config.model_path.display().to_string(),
            reason: format!("cannot open CUDA device {ordinal}: {e}"),
        })?,
    };
    let load_started = Instant::now();
    let mut model = GgufModel::load_with(&config.model_path, &device, config.load)?;
    let load = load_started.elapsed();
    let warm_started = Instant::now();
    let speed = warm_up(&mut model, &config.sampling)?;
    let ready = WorkerReady {
        name: model.name().to_string(),
        encoder: model.encoder().clone(),
        load,
        warm_up: warm_started.elapsed(),
        speed,
        parameters: model.parameters(),
    };
    Ok((model, ready))
}

fn warm_up(model: &mut GgufModel, sampling: &SamplingConfig) -> Result<Speed, EngineError> {
    let request = GenerationRequest {
        messages: vec![ChatMessage::user(WARM_UP_PROMPT)],
        max_new_tokens: WARM_UP_NEW_TOKENS,
        min_new_tokens: WARM_UP_NEW_TOKENS,
        deadline: Instant::now() + Duration::from_secs(600),
        seed: 0,
        response_prefix: String::new(),
        repetition: crate::engine::Repetition::Controlled,
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

/// What a worker runs jobs on: the GGUF model, or in tests a stand-in that can misbehave.
trait WorkerModel {
    fn generate(
        &mut self,
        prompt: Vec<u32>,
        request: &GenerationRequest,
        sampling: &SamplingConfig,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Generation, EngineError>;
}

impl WorkerModel for GgufModel {
    fn generate(
        &mut self,
        prompt: Vec<u32>,
        request: &GenerationRequest,
        sampling: &SamplingConfig,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Generation, EngineError> {
        GgufModel::generate(self, prompt, request, sampling, cancelled)
    }
}

/// Serve jobs until the queue closes. A panic during a job costs that job (its caller gets an
/// inference error at once) and the model it happened in: a forward pass stopped half-way may
/// leave caches or buffers in any state, so the worker loads a fresh copy with `reload` before
/// taking the next job. If that fails the worker stops.
fn run_worker<M: WorkerModel>(
    mut model: M,
    sampling: SamplingConfig,
    queue: &AdmissionQueue,
    reload: &dyn Fn() -> Result<M, EngineError>,
) {
    while let Some((ticket, job)) = queue.next() {
        if job.reply.is_closed() {
            queue.finished(ticket, None);
            continue;
        }
        let queued = job.enqueued.elapsed();
        let reply = &job.reply;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            model.generate(job.prompt, &job.request, &sampling, &|| reply.is_closed())
        }));
        queue.finished(ticket, outcome.as_ref().ok().and_then(|o| o.as_ref().ok()));
        match outcome {
            Ok(Err(EngineError::Cancelled)) => tracing::debug!("generation cancelled: the caller went away"),
            Ok(outcome) => {
                let _ = job.reply.send(outcome.map(|generation| Generation { queued, ..generation }));
            }
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(%reason, "inference panicked; replacing this worker's model");
                let _ = job.reply.send(Err(EngineError::Inference(format!("panic: {reason}"))));
                metrics::counter!("bidder_worker_restarts_total").increment(1);
                match reload() {
                    Ok(fresh) => {
                        model = fresh;
                        tracing::info!("worker model replaced");
                    }
                    Err(err) => {
                        tracing::error!(%err, "the worker could not reload its model and stops");
                        return;
                    }
                }
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

    fn capability(&self) -> Capability {
        self.capability
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        let (reply, answer) = oneshot::channel();
        let submitted = self
            .encoder
            .encode_with_prefix(&request.messages, &request.response_prefix)
            .and_then(|prompt| self.queue.submit(Job { prompt, request, enqueued: Instant::now(), reply }));
        Box::pin(async move {
            submitted?;
            answer.await.map_err(|_| EngineError::WorkerGone)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FinishReason;

    /// Answers with its own generation number; panics on the prompt `[PANIC]`.
    struct Stand {
        generation: usize,
    }

    const PANIC: u32 = 666;

    impl WorkerModel for Stand {
        fn generate(
            &mut self,
            prompt: Vec<u32>,
            _: &GenerationRequest,
            _: &SamplingConfig,
            _: &(dyn Fn() -> bool + Sync),
        ) -> Result<Generation, EngineError> {
            assert!(prompt != [PANIC], "a kernel bug, half-way through a forward pass");
            Ok(Generation {
                text: format!("model {}", self.generation),
                input_tokens: prompt.len(),
                output_tokens: 1,
                finish: FinishReason::Eos,
                queued: Duration::ZERO,
                prefill: Duration::ZERO,
                decode: Duration::ZERO,
            })
        }
    }

    fn submit(queue: &AdmissionQueue, prompt: u32) -> oneshot::Receiver<Result<Generation, EngineError>> {
        let (reply, answer) = oneshot::channel();
        let request = GenerationRequest::new(Vec::new(), 4, Instant::now() + Duration::from_secs(30), 0);
        queue.submit(Job { prompt: vec![prompt], request, enqueued: Instant::now(), reply }).unwrap();
        answer
    }

    fn start(reload_works: bool) -> (Arc<AdmissionQueue>, std::thread::JoinHandle<()>) {
        let fast = Speed { prefill_tps: 1e6, decode_tps: 1e6 };
        let queue = Arc::new(AdmissionQueue::new("stand", 8, 1, fast));
        let worker_queue = queue.clone();
        let worker = std::thread::spawn(move || {
            let reloads = AtomicUsize::new(0);
            let reload = || match reload_works {
                true => Ok(Stand { generation: reloads.fetch_add(1, Ordering::SeqCst) + 1 }),
                false => Err(EngineError::Load { path: "stand.gguf".into(), reason: "gone".into() }),
            };
            run_worker(Stand { generation: 0 }, SamplingConfig::default(), &worker_queue, &reload);
        });
        (queue, worker)
    }

    #[test]
    fn a_panic_costs_one_job_and_the_worker_goes_on_with_a_fresh_model() {
        let (queue, worker) = start(true);
        let before = submit(&queue, 1).blocking_recv().unwrap().unwrap();
        assert_eq!(before.text, "model 0");
        let failed = submit(&queue, PANIC).blocking_recv().unwrap();
        assert!(matches!(&failed, Err(EngineError::Inference(reason)) if reason.contains("kernel bug")), "{failed:?}");
        let after = submit(&queue, 1).blocking_recv().unwrap().unwrap();
        assert_eq!(after.text, "model 1", "the next job runs on a reloaded model");
        queue.close();
        worker.join().unwrap();
    }

    #[test]
    fn a_worker_that_cannot_reload_stops_and_nothing_is_left_waiting() {
        let (queue, worker) = start(false);
        assert!(submit(&queue, PANIC).blocking_recv().unwrap().is_err());
        worker.join().unwrap();
        // LocalEngine closes the queue when its last worker stops; a closed queue refuses work
        // at once instead of holding it for a worker that will never come.
        queue.close();
        let (reply, _answer) = oneshot::channel();
        let request = GenerationRequest::new(Vec::new(), 4, Instant::now() + Duration::from_secs(30), 0);
        let refused = queue.submit(Job { prompt: vec![1], request, enqueued: Instant::now(), reply });
        assert!(matches!(refused, Err(EngineError::WorkerGone)), "{refused:?}");
    }
}
