//! One generation per `(task_id, phase)` (protocol §5), bound to the request that asked for it.
//! The platform retries: a duplicate that arrives while the first call runs waits for the same
//! result; one that arrives later gets the stored response without new work. A duplicate is the
//! same body byte for byte — a digest of it is kept with each entry — so a different body that
//! reuses a task id gets [`IdempotencyError::Conflict`], never another request's answer.
//! Bounded in size and age; failures are not stored, so a retry after an error runs again.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::protocol::{ExecuteResponse, Phase};

type Key = (String, Phase);

/// SHA-256 of a request body: what makes two requests the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyDigest([u8; 32]);

impl BodyDigest {
    pub fn of(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
    }
}

/// Whether this call did the work or reused another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Generated,
    Duplicate,
}

#[derive(Debug)]
pub enum IdempotencyError<E> {
    /// The task and phase belong to a different body, answered or running.
    Conflict,
    /// The work failed (and was not stored).
    Failed(Arc<E>),
}

struct Stored {
    body: BodyDigest,
    response: Arc<ExecuteResponse>,
}

pub struct IdempotencyCache {
    responses: Cache<Key, Arc<Stored>>,
    /// Bodies being worked on, with how many callers wait on each, so that a different body
    /// is refused at once rather than after the running one finishes.
    in_flight: Arc<Mutex<HashMap<Key, (BodyDigest, usize)>>>,
}

impl IdempotencyCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self { responses: Cache::builder().max_capacity(capacity).time_to_live(ttl).build(), in_flight: Arc::default() }
    }

    /// Whether this task and phase belong to another body, answered or running.
    pub async fn conflicts(&self, task_id: &str, phase: Phase, body: BodyDigest) -> bool {
        let key = (task_id.to_string(), phase);
        if let Some(stored) = self.responses.get(&key).await {
            return stored.body != body;
        }
        lock(&self.in_flight).get(&key).is_some_and(|(running, _)| *running != body)
    }

    /// The response for `(task_id, phase)` and this `body`: stored, joined while in flight, or
    /// produced by `work`.
    pub async fn get_or_run<E>(
        &self,
        task_id: &str,
        phase: Phase,
        body: BodyDigest,
        work: impl Future<Output = Result<ExecuteResponse, E>>,
    ) -> Result<(Arc<ExecuteResponse>, Origin), IdempotencyError<E>>
    where
        E: Send + Sync + 'static,
    {
        let key = (task_id.to_string(), phase);
        if let Some(stored) = self.responses.get(&key).await {
            return if stored.body == body {
                Ok((stored.response.clone(), Origin::Duplicate))
            } else {
                Err(IdempotencyError::Conflict)
            };
        }
        let _claim = Claim::take(&self.in_flight, key.clone(), body).ok_or(IdempotencyError::Conflict)?;
        let entry = self
            .responses
            .entry(key)
            .or_try_insert_with(async {
                work.await.map(|response| Arc::new(Stored { body, response: Arc::new(response) }))
            })
            .await
            .map_err(IdempotencyError::Failed)?;
        let origin = if entry.is_fresh() { Origin::Generated } else { Origin::Duplicate };
        // Another body may have finished between the checks above and here.
        let stored = entry.into_value();
        if stored.body != body {
            return Err(IdempotencyError::Conflict);
        }
        Ok((stored.response.clone(), origin))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every change under the lock is one insert, update or remove: consistent even after a
    // holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A caller's share of an in-flight body, given back when the caller finishes or is dropped
/// (a disconnect, a panic), so no entry outlives its work.
struct Claim {
    in_flight: Arc<Mutex<HashMap<Key, (BodyDigest, usize)>>>,
    key: Key,
}

impl Claim {
    /// `None` when a different body is in flight for `key`.
    fn take(in_flight: &Arc<Mutex<HashMap<Key, (BodyDigest, usize)>>>, key: Key, body: BodyDigest) -> Option<Self> {
        match lock(in_flight).entry(key.clone()) {
            Entry::Occupied(mut running) if running.get().0 == body => running.get_mut().1 += 1,
            Entry::Occupied(_) => return None,
            Entry::Vacant(free) => {
                free.insert((body, 1));
            }
        }
        Some(Self { in_flight: in_flight.clone(), key })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.in_flight);
        if let Some((_, waiters)) = in_flight.get_mut(&self.key) {
            *waiters -= 1;
            if *waiters == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::{ResponseMetadata, TokenUsage};

    fn response_for(task_id: &str) -> ExecuteResponse {
        ExecuteResponse {
            task_id: task_id.into(),
            mode: Phase::Prototype,
            status: "completed".into(),
            prototype_summary: String::new(),
            agent_message: String::new(),
            bid_price_usd: 1.0,
            output: "text".into(),
            artifacts: Vec::new(),
            cost_usd: 0.0,
            token_usage: TokenUsage { input_tokens: 1, output_tokens: 1, cost_usd: 0.0 },
            metadata: ResponseMetadata {
                agent_version: String::new(),
                model: String::new(),
                latency_ms: 0,
                truncated: false,
                finish_reason: "eos".into(),
                queue_ms: 0,
                prefill_ms: 0,
                decode_ms: 0,
                output_words: 1,
                checks: Vec::new(),
            },
        }
    }

    fn cache() -> IdempotencyCache {
        IdempotencyCache::new(10, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn the_same_body_replays_and_a_different_body_conflicts() {
        let cache = cache();
        let (first, second) = (BodyDigest::of(b"first"), BodyDigest::of(b"second"));
        let ran = cache.get_or_run("t", Phase::Prototype, first, async { Ok::<_, ()>(response_for("t")) }).await;
        assert!(matches!(ran, Ok((_, Origin::Generated))));
        let replay = cache.get_or_run("t", Phase::Prototype, first, async { Err::<ExecuteResponse, _>(()) }).await;
        assert!(matches!(replay, Ok((_, Origin::Duplicate))), "no new work for the same body");
        let other = cache.get_or_run("t", Phase::Prototype, second, async { Ok::<_, ()>(response_for("t")) }).await;
        assert!(matches!(other, Err(IdempotencyError::Conflict)));
        assert!(cache.conflicts("t", Phase::Prototype, second).await);
        assert!(!cache.conflicts("t", Phase::Prototype, first).await);
        // The other phase is other work.
        assert!(!cache.conflicts("t", Phase::Final, second).await);
    }

    #[tokio::test]
    async fn a_different_body_is_refused_at_once_while_one_runs_and_a_failure_frees_the_task() {
        let cache = Arc::new(cache());
        let (first, second) = (BodyDigest::of(b"first"), BodyDigest::of(b"second"));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get_or_run("t", Phase::Final, first, async {
                        let _ = released.await;
                        Err::<ExecuteResponse, _>("failed")
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = tokio::time::timeout(
            Duration::from_millis(200),
            cache.get_or_run("t", Phase::Final, second, async { Ok::<_, &str>(response_for("t")) }),
        )
        .await
        .expect("refused without waiting for the running body");
        assert!(matches!(refused, Err(IdempotencyError::Conflict)));
        release.send(()).unwrap();
        assert!(matches!(running.await.unwrap(), Err(IdempotencyError::Failed(_))));
        // Nothing was stored and nothing is running: the task is free again.
        let retried = cache.get_or_run("t", Phase::Final, second, async { Ok::<_, &str>(response_for("t")) }).await;
        assert!(matches!(retried, Ok((_, Origin::Generated))));
    }
}
