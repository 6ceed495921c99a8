//! Async dispatch (protocol §7). A brief that carries `callback_url` and `callback_secret` is
//! acknowledged at once with 202 and worked on in the background; its answer — the same JSON
//! the synchronous call would have returned — is POSTed to the callback by
//! [`crate::callback`]. Idempotent like the synchronous path: a retried dispatch of a task that
//! is still running is acknowledged again without new work, and one of a task already answered
//! gets the stored answer delivered again (the platform retries because it is still waiting).
//! A dispatch is the same dispatch only if its body is: another body for a task that is running
//! or answered gets 409 and nothing is delivered to its callback. A task that panics still tells
//! the platform (a failure callback) and frees its task id.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{ApiError, AppState, record_answer};
use crate::callback::{CallbackClient, CallbackError, CallbackPolicy};
use crate::idempotency::{BodyDigest, Origin};
use crate::pipeline::Pipeline;
use crate::protocol::{Brief, ExecuteResponse, Phase, ProtocolError};

/// The platform's limit for an async task when the brief does not give one (protocol §2 says
/// it is currently 600 s).
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_secs(600);

/// A longer limit from the brief is read as this one: retrying a callback for more than a day
/// helps nobody, and an absurd number must not overflow the clock.
const LONGEST_EXECUTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Background tasks accepted at most at once. Beyond this a dispatch is refused with 429, as a
/// synchronous one would be, rather than piling up work the workers cannot reach in time.
const MAX_BACKGROUND_TASKS: usize = 256;

type RunningTasks = HashMap<(String, Phase), BodyDigest>;

/// The tasks running in the background, so retries find them and shutdown can wait for them.
pub struct BackgroundTasks {
    /// Each running task's key, with the digest of the body that started it.
    running: Mutex<RunningTasks>,
    tracker: TaskTracker,
    callbacks: CallbackClient,
}

impl BackgroundTasks {
    pub fn new(callbacks: CallbackPolicy) -> Self {
        Self { running: Mutex::default(), tracker: TaskTracker::new(), callbacks: CallbackClient::new(callbacks) }
    }

    /// Tasks still working or still delivering.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Wait until every background task has delivered, or `limit` has passed; returns how many
    /// are left. New tasks can still be accepted meanwhile only if the listener is open, which
    /// during shutdown it is not.
    pub async fn drain(&self, limit: Duration) -> usize {
        self.tracker.close();
        let _ = tokio::time::timeout(limit, self.tracker.wait()).await;
        self.tracker.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunningTasks> {
        // The map stays consistent even if a holder panicked: every change is one insert or
        // one remove.
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running task's place in [`BackgroundTasks::running`], given up however the task ends —
/// delivered, failed, or unwound by a panic — so a retry is never told "running" forever.
struct RunningGuard {
    state: AppState,
    key: (String, Phase),
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut running = self.state.background.lock();
        running.remove(&self.key);
        metrics::gauge!("bidder_background_tasks").set(running.len() as f64);
    }
}

/// Take `brief` into the background and answer 202 at once; `body` identifies the dispatch.
pub(super) async fn accept(
    state: &AppState,
    brief: Brief,
    body: BodyDigest,
    received: Instant,
    span: tracing::Span,
) -> Result<Response, ApiError> {
    let Some(callback) = &brief.callback else {
        return Err(ApiError::Internal("async dispatch of a brief without a callback".into()));
    };
    if let Err(forbidden) = state.background.callbacks.check(&callback.url) {
        span.in_scope(|| tracing::warn!(reason = %forbidden, "callback URL refused"));
        return Err(ApiError::Brief(ProtocolError::InvalidField {
            field: "callback_url",
            expected: "an https URL on a public host this agent may call back",
        }));
    }
    // A body that is not the one this task was answered for must not get its answer, here or
    // at its callback.
    if state.idempotency.conflicts(&brief.task_id, brief.phase, body).await {
        return Err(ApiError::Conflict);
    }
    let acknowledgement =
        (StatusCode::ACCEPTED, Json(json!({"status": "accepted", "task_id": brief.task_id, "mode": brief.phase})))
            .into_response();
    let key = (brief.task_id.clone(), brief.phase);
    {
        let mut running = state.background.lock();
        let tasks = running.len();
        match running.entry(key.clone()) {
            Entry::Occupied(started) if *started.get() == body => {
                metrics::counter!("bidder_duplicates_served_total", "phase" => brief.phase.as_str()).increment(1);
                span.in_scope(|| tracing::info!("duplicate async dispatch: the task is already running"));
                return Ok(acknowledgement);
            }
            Entry::Occupied(_) => return Err(ApiError::Conflict),
            Entry::Vacant(_) if tasks >= MAX_BACKGROUND_TASKS => {
                return Err(ApiError::Overloaded { reason: "queue_full", retry_after: Duration::from_secs(30) });
            }
            Entry::Vacant(free) => {
                free.insert(body);
            }
        }
        metrics::gauge!("bidder_background_tasks").set(running.len() as f64);
    }
    let guard = RunningGuard { state: state.clone(), key };
    state.background.tracker.spawn(
        async move {
            let running = guard;
            work_and_deliver(&running.state, &brief, body, received).await;
        }
        .instrument(span),
    );
    Ok(acknowledgement)
}

async fn work_and_deliver(state: &AppState, brief: &Brief, body: BodyDigest, received: Instant) {
    let Some(callback) = &brief.callback else { return };
    let limit = brief
        .execution_timeout_seconds
        .map_or(DEFAULT_EXECUTION_TIMEOUT, Duration::from_secs)
        .min(LONGEST_EXECUTION_TIMEOUT);
    let deadline = received + limit;
    // The work runs as a task of its own so that a panic in it ends only the work: the platform
    // still hears that the task failed.
    let work = tokio::spawn({
        let (state, brief) = (state.clone(), brief.clone());
        async move { answer(&state, &brief, body, received, deadline).await }.in_current_span()
    });
    let answered = work
        .await
        .unwrap_or_else(|joined| Err(ApiError::Internal(format!("the async task's work did not finish: {joined}"))));
    let body = match answered {
        Ok((response, origin)) => {
            record_answer(&tracing::Span::current(), &response, origin);
            serde_json::to_vec(response.as_ref())
        }
        Err(err) => {
            tracing::Span::current().record("outcome", err.code());
            err.log();
            // The platform is waiting for this task: tell it now rather than let it time out.
            serde_json::to_vec(&json!({
                "task_id": brief.task_id,
                "mode": brief.phase,
                "status": "failed",
                "error": err.code(),
                "detail": err.detail(),
            }))
        }
    }
    .expect("a response serialises");
    match state.background.callbacks.deliver(callback, &brief.task_id, &body, deadline).await {
        Ok(delivered) => {
            metrics::counter!("bidder_callbacks_total", "outcome" => "delivered").increment(1);
            tracing::info!(attempts = delivered.attempts, status = delivered.status.as_u16(), "callback delivered");
        }
        Err(err) => {
            let outcome = match err {
                CallbackError::Forbidden(_) => "forbidden",
                CallbackError::Refused { .. } => "refused",
                CallbackError::DeadlinePassed { .. } => "deadline_passed",
            };
            metrics::counter!("bidder_callbacks_total", "outcome" => outcome).increment(1);
            tracing::error!(%err, "callback not delivered");
        }
    }
}

/// The task's response, run once per `(task_id, phase)` like a synchronous call. A full queue
/// is waited out while a whole budget still fits before the platform's deadline: in async mode
/// nobody is holding a connection open, so waiting costs nothing.
async fn answer(
    state: &AppState,
    brief: &Brief,
    body: BodyDigest,
    received: Instant,
    deadline: Instant,
) -> Result<(Arc<ExecuteResponse>, Origin), ApiError> {
    let pipeline: &Pipeline = state.pipeline.get().ok_or(ApiError::NotReady)?;
    let mut started = received;
    loop {
        let run = pipeline.execute(brief, started);
        match state.idempotency.get_or_run(&brief.task_id, brief.phase, body, run).await {
            Ok(answered) => return Ok(answered),
            Err(err) => match ApiError::from_idempotency(&err) {
                ApiError::Overloaded { retry_after, .. }
                    if Instant::now() + retry_after + pipeline.time_budget(brief) <= deadline =>
                {
                    tracing::info!(wait_ms = retry_after.as_millis() as u64, "workers busy; the async task waits");
                    tokio::time::sleep(retry_after).await;
                    started = Instant::now();
                }
                other => return Err(other),
            },
        }
    }
}
