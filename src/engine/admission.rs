//! Admission to a model's workers: a bounded queue served earliest-deadline-first, which turns
//! work away at once — rather than accept it and be late — when the queue is full or when the
//! model's measured speed says the job cannot produce a useful answer before its deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{EngineError, Generation, GenerationRequest};

/// Weight of the newest measurement in the running speed estimates.
const SPEED_SMOOTHING: f64 = 0.3;
/// Measurements over fewer tokens than this say more about overhead than speed.
const MIN_TOKENS_TO_MEASURE: usize = 8;
/// Speed measurements are noisy (a machine busy during warm-up reads slow), and refusing work
/// that could have been done loses a bid for certain while a tight answer is still an answer:
/// only work that would be late even at this multiple of the estimated time is refused.
const REFUSAL_TIME_FACTOR: f64 = 0.75;

/// One generation waiting for, or held by, a worker.
pub struct Job {
    pub prompt: Vec<u32>,
    pub request: GenerationRequest,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Generation, EngineError>>,
}

/// Why a job was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    QueueFull,
    DeadlineUnmeetable,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue_full",
            RejectReason::DeadlineUnmeetable => "deadline_unmeetable",
        }
    }
}

/// Measured throughput of the model behind this queue, in tokens per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    pub prefill_tps: f64,
    pub decode_tps: f64,
}

impl Speed {
    fn seconds(&self, prompt_tokens: usize, new_tokens: usize) -> f64 {
        prompt_tokens as f64 / self.prefill_tps.max(1e-3) + new_tokens as f64 / self.decode_tps.max(1e-3)
    }

    /// How long `job` is expected to hold a worker if it starts at `start`: its full length at
    /// this speed, but never past its deadline (generation stops there).
    fn expected_hold(&self, job: &Job, start: Instant) -> Duration {
        let full = Duration::from_secs_f64(self.seconds(job.prompt.len(), job.request.max_new_tokens));
        full.min(job.request.deadline.saturating_duration_since(start))
    }
}

struct Waiting {
    deadline: Instant,
    sequence: u64,
    job: Job,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.sequence) == (other.deadline, other.sequence)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

struct State {
    waiting: BinaryHeap<Reverse<Waiting>>,
    /// When each job now on a worker is expected to be done (it stops at its deadline at the
    /// latest), by ticket.
    running: Vec<(u64, Instant)>,
    /// Jobs that run at once: workers times the sequences each decodes together.
    lanes: usize,
    speed: Speed,
    sequence: u64,
    closed: bool,
}

pub struct AdmissionQueue {
    state: Mutex<State>,
    job_ready: Condvar,
    capacity: usize,
    model: String,
}

/// Held by a worker while it runs a job; hand it back with [`AdmissionQueue::finished`].
pub struct Ticket(u64);

impl AdmissionQueue {
    /// A queue of `capacity` for `lanes` jobs running at once (workers × batch size), at
    /// `speed` per job until measured.
    pub fn new(model: &str, capacity: usize, lanes: usize, speed: Speed) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: BinaryHeap::new(),
                running: Vec::new(),
                lanes: lanes.max(1),
                speed,
                sequence: 0,
                closed: false,
            }),
            job_ready: Condvar::new(),
            capacity: capacity.max(1),
            model: model.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queue `job`, or say at once why not and when to try again.
    pub fn submit(&self, job: Job) -> Result<(), EngineError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            // No worker will ever take it: say so now rather than leave the caller waiting.
            return Err(EngineError::WorkerGone);
        }
        let deadline = job.request.deadline;
        // Work that will hold the lanes before this job starts: everything running, and what
        // waits with an earlier deadline (EDF serves it first). Speeds are measured per job as
        // it ran beside the others, so a lane's time is a job's time.
        let running: Duration = state.running.iter().map(|(_, end)| end.saturating_duration_since(now)).sum();
        let hold = |w: &Reverse<Waiting>| state.speed.expected_hold(&w.0.job, now);
        let ahead: Duration = state.waiting.iter().filter(|w| w.0.deadline <= deadline).map(hold).sum();
        let lanes = state.lanes as u32;
        let wait = (running + ahead) / lanes;

        if state.waiting.len() >= self.capacity {
            let everything: Duration = running + state.waiting.iter().map(hold).sum::<Duration>();
            return Err(self.reject(RejectReason::QueueFull, everything / lanes));
        }
        let useful = Duration::from_secs_f64(state.speed.seconds(job.prompt.len(), job.request.min_new_tokens.max(1)));
        if now + (wait + useful).mul_f64(REFUSAL_TIME_FACTOR) > deadline {
            return Err(self.reject(RejectReason::DeadlineUnmeetable, wait));
        }
        state.sequence += 1;
        let sequence = state.sequence;
        state.waiting.push(Reverse(Waiting { deadline, sequence, job }));
        self.publish_depth(&state);
        drop(state);
        self.job_ready.notify_one();
        Ok(())
    }

    fn publish_depth(&self, state: &State) {
        metrics::gauge!("bidder_queue_depth", "model" => self.model.clone()).set(state.waiting.len() as f64);
    }

    fn reject(&self, reason: RejectReason, retry_after: Duration) -> EngineError {
        metrics::counter!("bidder_rejections_total", "model" => self.model.clone(), "reason" => reason.as_str())
            .increment(1);
        tracing::info!(reason = reason.as_str(), retry_after_ms = retry_after.as_millis() as u64, "job turned away");
        EngineError::Overloaded { reason, retry_after }
    }

    /// The waiting job with the earliest deadline; blocks while there is none. `None` once the
    /// queue is closed.
    pub fn next(&self) -> Option<(Ticket, Job)> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if !state.waiting.is_empty() {
                return Some(self.take_first(&mut state));
            }
            state = self.job_ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The waiting job with the earliest deadline if there is one and `fits(job)` says the
    /// worker has room for it; never blocks. A job that does not fit stays first in line
    /// (taking a later one past it could keep it waiting for ever). `None` also once closed.
    pub fn try_next(&self, fits: impl FnOnce(&Job) -> bool) -> Option<(Ticket, Job)> {
        let mut state = self.lock();
        if state.closed || !state.waiting.peek().is_some_and(|w| fits(&w.0.job)) {
            return None;
        }
        Some(self.take_first(&mut state))
    }

    /// Pop the earliest deadline and count it as running.
    fn take_first(&self, state: &mut State) -> (Ticket, Job) {
        let Reverse(waiting) = state.waiting.pop().expect("a waiting job");
        let job = waiting.job;
        let expected = Duration::from_secs_f64(state.speed.seconds(job.prompt.len(), job.request.max_new_tokens));
        let end = (Instant::now() + expected).min(job.request.deadline);
        state.running.push((waiting.sequence, end));
        self.publish_depth(state);
        (Ticket(waiting.sequence), job)
    }

    /// A worker is done with a job; learn from how fast it went.
    pub fn finished(&self, ticket: Ticket, measured: Option<&Generation>) {
        let mut state = self.lock();
        state.running.retain(|(sequence, _)| *sequence != ticket.0);
        if let Some(g) = measured {
            let blend = |old: f64, new: f64| old * (1.0 - SPEED_SMOOTHING) + new * SPEED_SMOOTHING;
            // Only the prompt tokens actually computed: a prefix taken from the cache is free.
            let computed = g.input_tokens.saturating_sub(g.reused_tokens);
            if computed >= MIN_TOKENS_TO_MEASURE && !g.prefill.is_zero() {
                state.speed.prefill_tps = blend(state.speed.prefill_tps, computed as f64 / g.prefill.as_secs_f64());
            }
            if g.output_tokens >= MIN_TOKENS_TO_MEASURE && !g.decode.is_zero() {
                state.speed.decode_tps = blend(state.speed.decode_tps, g.output_tokens as f64 / g.decode.as_secs_f64());
            }
        }
    }

    pub fn speed(&self) -> Speed {
        self.lock().speed
    }

    /// How many jobs run at once (workers × the sequences each decodes together), once the
    /// workers have loaded their models.
    pub fn set_lanes(&self, lanes: usize) {
        self.lock().lanes = lanes.max(1);
    }

    /// Replace the speed estimate (with a fresh measurement, e.g. after warm-up).
    pub fn set_speed(&self, speed: Speed) {
        self.lock().speed = speed;
    }

    /// Stop handing out jobs; workers blocked in [`next`](Self::next) return `None`. Jobs still
    /// waiting are dropped, which their callers see as the worker going away.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.waiting.clear();
        drop(state);
        self.job_ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        deadline_in: Duration,
        prompt: usize,
        max_new: usize,
    ) -> (Job, oneshot::Receiver<Result<Generation, EngineError>>) {
        let (reply, answer) = oneshot::channel();
        let request = GenerationRequest {
            messages: Vec::new(),
            max_new_tokens: max_new,
            min_new_tokens: 10,
            deadline: Instant::now() + deadline_in,
            seed: 0,
            response_prefix: String::new(),
            repetition: crate::engine::Repetition::Controlled,
        };
        (Job { prompt: vec![0; prompt], request, enqueued: Instant::now(), reply }, answer)
    }

    const SPEED: Speed = Speed { prefill_tps: 100.0, decode_tps: 10.0 };

    #[test]
    fn jobs_are_served_earliest_deadline_first() {
        let queue = AdmissionQueue::new("m", 8, 1, SPEED);
        let (late, _a) = job(Duration::from_secs(300), 10, 10);
        let (early, _b) = job(Duration::from_secs(100), 10, 10);
        queue.submit(late).unwrap();
        queue.submit(early).unwrap();
        let (_, first) = queue.next().unwrap();
        assert!(first.request.deadline < Instant::now() + Duration::from_secs(101));
    }

    #[test]
    fn a_full_queue_turns_work_away_with_a_retry_hint() {
        let queue = AdmissionQueue::new("m", 1, 1, SPEED);
        let (a, _a) = job(Duration::from_secs(300), 100, 100);
        let (b, _b) = job(Duration::from_secs(300), 100, 100);
        queue.submit(a).unwrap();
        match queue.submit(b) {
            Err(EngineError::Overloaded { reason: RejectReason::QueueFull, retry_after }) => {
                assert!(retry_after >= Duration::from_secs(10), "{retry_after:?}")
            }
            other => panic!("expected a full queue, got {other:?}"),
        }
    }

    #[test]
    fn a_deadline_the_model_cannot_meet_is_refused() {
        let queue = AdmissionQueue::new("m", 8, 1, SPEED);
        // 1000 prompt tokens at 100 tok/s is 10 s before the first new token.
        let (hopeless, _a) = job(Duration::from_secs(5), 1000, 100);
        assert!(matches!(
            queue.submit(hopeless),
            Err(EngineError::Overloaded { reason: RejectReason::DeadlineUnmeetable, .. })
        ));
        // Behind 60 s of running work, a 30 s deadline cannot be met either.
        let (long, _b) = job(Duration::from_secs(120), 100, 600);
        queue.submit(long).unwrap();
        let (ticket, _running) = queue.next().unwrap();
        let (soon, _c) = job(Duration::from_secs(30), 100, 100);
        assert!(matches!(
            queue.submit(soon),
            Err(EngineError::Overloaded { reason: RejectReason::DeadlineUnmeetable, .. })
        ));
        queue.finished(ticket, None);
        let (soon, _d) = job(Duration::from_secs(30), 100, 100);
        queue.submit(soon).unwrap();
    }

    #[test]
    fn speed_estimates_follow_measurements() {
        let queue = AdmissionQueue::new("m", 8, 1, SPEED);
        let (j, _a) = job(Duration::from_secs(100), 10, 10);
        queue.submit(j).unwrap();
        let (ticket, _) = queue.next().unwrap();
        let measured = Generation {
            text: String::new(),
            input_tokens: 200,
            output_tokens: 100,
            finish: super::super::FinishReason::Eos,
            queued: Duration::ZERO,
            prefill: Duration::from_secs(1),
            decode: Duration::from_secs(5),
            reused_tokens: 0,
        };
        queue.finished(ticket, Some(&measured));
        let speed = queue.speed();
        assert!(speed.prefill_tps > 100.0 && speed.decode_tps > 10.0, "{speed:?}");
    }

    #[test]
    fn closing_releases_waiting_workers() {
        let queue = std::sync::Arc::new(AdmissionQueue::new("m", 8, 1, SPEED));
        let worker = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.next().is_none())
        };
        std::thread::sleep(Duration::from_millis(50));
        queue.close();
        assert!(worker.join().unwrap());
    }
}
