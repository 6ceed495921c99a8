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

use super::admission::{AdmissionQueue, Job, Speed, Ticket};
use super::chat_template::ChatMessage;
use super::gguf::{GgufModel, PromptEncoder, model_name};
use super::sequence::Sequence;
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
    /// Jobs that run at once: workers × the sequences each decodes together.
    lanes: usize,
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
    /// Sequences the worker decodes together.
    slots: usize,
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
        // (Lanes: one per worker until the workers say how many sequences each runs at once.)
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
        queue.set_lanes(workers * first.slots);
        let capability = config.capability.unwrap_or_else(|| Capability::from_parameters(first.parameters));
        let report = LoadReport {
            load: first.load,
            warm_up: first.warm_up,
            speed: first.speed,
            parameters: first.parameters,
            capability,
        };
        let lanes = workers * first.slots;
        Ok((Self { queue, encoder: first.encoder, model_name: first.name, capability, lanes }, report))
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
    let slots = model.set_slots(config.max_batch);
    model.set_kv_cache_budget(config.kv_cache_bytes);
    let warm_started = Instant::now();
    let speed = warm_up(&mut model, &config.sampling)?;
    let ready = WorkerReady {
        name: model.name().to_string(),
        encoder: model.encoder().clone(),
        load,
        warm_up: warm_started.elapsed(),
        speed,
        parameters: model.parameters(),
        slots,
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
    // The first pass pays for repacking the weights; the second measures (the whole prompt:
    // not the prefix the first left in the cache).
    model.generate(prompt.clone(), &request, sampling, &|| false)?;
    model.forget_prefixes();
    let measured = model.generate(prompt, &request, sampling, &|| false)?;
    let per_second = |tokens: usize, time: Duration| tokens as f64 / time.as_secs_f64().max(1e-6);
    Ok(Speed {
        prefill_tps: per_second(measured.input_tokens, measured.prefill),
        decode_tps: per_second(measured.output_tokens.max(1), measured.decode),
    })
}

/// What a worker runs jobs on: the GGUF model, or in tests a stand-in that can misbehave.
trait WorkerModel {
    /// One job in progress.
    type Running;
    /// Sequences one forward pass may carry.
    fn slots(&self) -> usize;
    /// Whether `job` fits beside `running` ones (KV cache memory).
    fn fits(&self, job: &Job, running: &[&Self::Running]) -> bool;
    /// Take `job` into one of the `free` slots.
    fn admit(
        &mut self,
        job: &Job,
        free: &[usize],
        sampling: &SamplingConfig,
    ) -> Result<(usize, Self::Running), EngineError>;
    /// One forward pass for every job of `batch` (slot, job) that is not done.
    fn step(&mut self, batch: &mut [(usize, &mut Self::Running)]) -> Result<(), EngineError>;
    fn is_done(&self, running: &Self::Running) -> bool;
    fn finish(&self, running: Self::Running) -> Result<Generation, EngineError>;
}

/// Prompt tokens one forward pass takes in all, beside the decode tokens of the sequences
/// already answering: a long prompt joining the batch slows their next tokens by one chunk at
/// most per pass.
const PREFILL_TOKENS_PER_PASS: usize = 128;

impl WorkerModel for GgufModel {
    type Running = Sequence;

    fn slots(&self) -> usize {
        GgufModel::slots(self)
    }

    fn fits(&self, job: &Job, running: &[&Sequence]) -> bool {
        let held: usize = running.iter().map(|s| s.positions_needed()).sum();
        let positions = self.positions_for(job.prompt.len(), job.request.max_new_tokens);
        // One sequence always runs, however long: a budget must not refuse everything.
        running.is_empty() || (held + positions) * self.kv_bytes_per_position() <= self.kv_cache_bytes()
    }

    fn admit(
        &mut self,
        job: &Job,
        free: &[usize],
        sampling: &SamplingConfig,
    ) -> Result<(usize, Sequence), EngineError> {
        let slot = self.best_slot(free.iter().copied(), &job.prompt).ok_or(EngineError::WorkerGone)?;
        let mut sequence = self.sequence(job.prompt.clone(), &job.request, sampling);
        self.begin(slot, &mut sequence)?;
        Ok((slot, sequence))
    }

    fn step(&mut self, batch: &mut [(usize, &mut Sequence)]) -> Result<(), EngineError> {
        self.run_on_pool(|model| GgufModel::step(model, batch, PREFILL_TOKENS_PER_PASS))
    }

    fn is_done(&self, running: &Sequence) -> bool {
        running.is_done()
    }

    fn finish(&self, running: Sequence) -> Result<Generation, EngineError> {
        running.finish(self.encoder())
    }
}

/// A job on the worker: its queue ticket, its caller, its KV cache slot and its progress.
struct Active<R> {
    ticket: Ticket,
    reply: tokio::sync::oneshot::Sender<Result<Generation, EngineError>>,
    queued: Duration,
    slot: usize,
    running: R,
}

/// Serve jobs until the queue closes, several at once: a job joins the running ones at the next
/// forward pass (while a slot and KV cache memory are free) and leaves when it is done (stop
/// token, length, deadline) or its caller goes away. A pass that fails fails the jobs in it. A
/// panic during a pass costs the jobs in it (their callers get an inference error at once) and
/// the model it happened in: a forward pass stopped half-way may leave caches or buffers in any
/// state, so the worker loads a fresh copy with `reload` before taking more. If that fails the
/// worker stops.
fn run_worker<M: WorkerModel>(
    mut model: M,
    sampling: SamplingConfig,
    queue: &AdmissionQueue,
    reload: &dyn Fn() -> Result<M, EngineError>,
) {
    let mut active: Vec<Active<M::Running>> = Vec::new();
    loop {
        // Take jobs while there is room; wait for one only when nothing runs.
        while active.len() < model.slots() {
            let next = match active.is_empty() {
                true => queue.next(),
                false => {
                    let running: Vec<&M::Running> = active.iter().map(|a| &a.running).collect();
                    queue.try_next(|job| model.fits(job, &running))
                }
            };
            let Some((ticket, job)) = next else {
                if active.is_empty() {
                    return; // closed, and nothing left to finish
                }
                break;
            };
            if job.reply.is_closed() {
                queue.finished(ticket, None);
                continue;
            }
            let free: Vec<usize> = (0..model.slots()).filter(|slot| active.iter().all(|a| a.slot != *slot)).collect();
            match model.admit(&job, &free, &sampling) {
                Ok((slot, running)) => {
                    let queued = job.enqueued.elapsed();
                    active.push(Active { ticket, reply: job.reply, queued, slot, running });
                }
                Err(err) => {
                    queue.finished(ticket, None);
                    let _ = job.reply.send(Err(err));
                }
            }
        }
        // Callers that went away: their jobs stop here.
        let (gone, staying): (Vec<_>, Vec<_>) = active.drain(..).partition(|a| a.reply.is_closed());
        active = staying;
        for job in gone {
            tracing::debug!("generation cancelled: the caller went away");
            queue.finished(job.ticket, None);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut batch: Vec<(usize, &mut M::Running)> =
                active.iter_mut().filter(|a| !model.is_done(&a.running)).map(|a| (a.slot, &mut a.running)).collect();
            match batch.is_empty() {
                true => Ok(()),
                false => model.step(&mut batch),
            }
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(%err, jobs = active.len(), "a forward pass failed");
                for job in active.drain(..) {
                    queue.finished(job.ticket, None);
                    let _ = job.reply.send(Err(EngineError::Inference(err.to_string())));
                }
            }
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(%reason, jobs = active.len(), "inference panicked; replacing this worker's model");
                for job in active.drain(..) {
                    queue.finished(job.ticket, None);
                    let _ = job.reply.send(Err(EngineError::Inference(format!("panic: {reason}"))));
                }
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
        // Jobs that are done leave, and their callers get their answers.
        let (done, running): (Vec<_>, Vec<_>) = active.drain(..).partition(|a| model.is_done(&a.running));
        active = running;
        for job in done {
            let outcome = model.finish(job.running).map(|generation| Generation { queued: job.queued, ..generation });
            queue.finished(job.ticket, outcome.as_ref().ok());
            let _ = job.reply.send(outcome);
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

    fn concurrency(&self) -> usize {
        self.lanes
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

    /// Answers with its own generation number after as many passes as its prompt's token says,
    /// two jobs at a time; panics on the prompt `[PANIC]`.
    struct Stand {
        generation: usize,
        passes: Arc<AtomicUsize>,
    }

    /// A job on the stand-in: its prompt and the passes it still needs.
    struct StandJob {
        prompt: Vec<u32>,
        passes_left: usize,
    }

    const PANIC: u32 = 666;

    impl WorkerModel for Stand {
        type Running = StandJob;

        fn slots(&self) -> usize {
            2
        }

        fn fits(&self, _: &Job, _: &[&StandJob]) -> bool {
            true
        }

        fn admit(&mut self, job: &Job, free: &[usize], _: &SamplingConfig) -> Result<(usize, StandJob), EngineError> {
            let passes_left = job.prompt[0].clamp(1, 100) as usize;
            Ok((free[0], StandJob { prompt: job.prompt.clone(), passes_left }))
        }

        fn step(&mut self, batch: &mut [(usize, &mut StandJob)]) -> Result<(), EngineError> {
            // A pass takes a moment, as a real one does, so that a job submitted while others
            // run finds them running.
            std::thread::sleep(Duration::from_millis(1));
            self.passes.fetch_add(1, Ordering::SeqCst);
            for (_, job) in batch.iter_mut() {
                assert!(job.prompt != [PANIC], "a kernel bug, half-way through a forward pass");
                job.passes_left -= 1;
            }
            Ok(())
        }

        fn is_done(&self, running: &StandJob) -> bool {
            running.passes_left == 0
        }

        fn finish(&self, running: StandJob) -> Result<Generation, EngineError> {
            Ok(Generation {
                text: format!("model {} for {}", self.generation, running.prompt[0]),
                input_tokens: running.prompt.len(),
                reused_tokens: 0,
                output_tokens: 1,
                finish: FinishReason::Eos,
                queued: Duration::ZERO,
                prefill: Duration::ZERO,
                decode: Duration::ZERO,
            })
        }
    }

    fn submit(queue: &AdmissionQueue, prompt: u32) -> Answer {
        let (reply, answer) = oneshot::channel();
        let request = GenerationRequest::new(Vec::new(), 4, Instant::now() + Duration::from_secs(30), 0);
        queue.submit(Job { prompt: vec![prompt], request, enqueued: Instant::now(), reply }).unwrap();
        answer
    }

    type Answer = oneshot::Receiver<Result<Generation, EngineError>>;

    /// A worker on the stand-in, started after the jobs `waiting` (their prompts) are queued.
    fn start_with(
        reload_works: bool,
        waiting: &[u32],
    ) -> (Arc<AdmissionQueue>, std::thread::JoinHandle<()>, Arc<AtomicUsize>, Vec<Answer>) {
        let fast = Speed { prefill_tps: 1e6, decode_tps: 1e6 };
        let queue = Arc::new(AdmissionQueue::new("stand", 8, 2, fast));
        let answers = waiting.iter().map(|&prompt| submit(&queue, prompt)).collect();
        let passes = Arc::new(AtomicUsize::new(0));
        let (worker_queue, worker_passes) = (queue.clone(), passes.clone());
        let worker = std::thread::spawn(move || {
            let reloads = AtomicUsize::new(0);
            let reload = || match reload_works {
                true => {
                    Ok(Stand { generation: reloads.fetch_add(1, Ordering::SeqCst) + 1, passes: worker_passes.clone() })
                }
                false => Err(EngineError::Load { path: "stand.gguf".into(), reason: "gone".into() }),
            };
            let first = Stand { generation: 0, passes: worker_passes.clone() };
            run_worker(first, SamplingConfig::default(), &worker_queue, &reload);
        });
        (queue, worker, passes, answers)
    }

    fn start(reload_works: bool) -> (Arc<AdmissionQueue>, std::thread::JoinHandle<()>, Arc<AtomicUsize>) {
        let (queue, worker, passes, _) = start_with(reload_works, &[]);
        (queue, worker, passes)
    }

    #[test]
    fn jobs_share_passes_and_each_leaves_when_it_is_done() {
        // Queued before the worker starts: a 30-pass job and a 3-pass one run side by side, and
        // the short one is answered first, while the long one still runs.
        let (queue, worker, passes, answers) = start_with(true, &[30, 3]);
        let [long, short]: [Answer; 2] = answers.try_into().unwrap();
        assert_eq!(short.blocking_recv().unwrap().unwrap().text, "model 0 for 3", "each caller gets its own answer");
        let after_short = passes.load(Ordering::SeqCst);
        assert!(after_short < 30, "the short job waited for the long one: {after_short} passes");
        // A third joins the running long one at a later pass.
        let third = submit(&queue, 2);
        assert_eq!(third.blocking_recv().unwrap().unwrap().text, "model 0 for 2");
        assert_eq!(long.blocking_recv().unwrap().unwrap().text, "model 0 for 30");
        let total = passes.load(Ordering::SeqCst);
        assert!(total < 30 + 3 + 2, "{total} passes: the jobs did not share them");
        queue.close();
        worker.join().unwrap();
    }

    #[test]
    fn a_panic_costs_one_job_and_the_worker_goes_on_with_a_fresh_model() {
        let (queue, worker, _) = start(true);
        let before = submit(&queue, 1).blocking_recv().unwrap().unwrap();
        assert_eq!(before.text, "model 0 for 1");
        let failed = submit(&queue, PANIC).blocking_recv().unwrap();
        assert!(matches!(&failed, Err(EngineError::Inference(reason)) if reason.contains("kernel bug")), "{failed:?}");
        let after = submit(&queue, 1).blocking_recv().unwrap().unwrap();
        assert_eq!(after.text, "model 1 for 1", "the next job runs on a reloaded model");
        queue.close();
        worker.join().unwrap();
    }

    #[test]
    fn a_worker_that_cannot_reload_stops_and_nothing_is_left_waiting() {
        let (queue, worker, _) = start(false);
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
