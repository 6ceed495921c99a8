//! One generation per `(task_id, phase)` (protocol §5). The platform retries: a duplicate that
//! arrives while the first call runs waits for the same result; one that arrives later gets the
//! stored response without new work. Bounded in size and age; failures are not stored, so a
//! retry after an error runs again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::protocol::{ExecuteResponse, Phase};

type Key = (String, Phase);

/// Whether this call did the work or reused another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Generated,
    Duplicate,
}

pub struct IdempotencyCache {
    responses: Cache<Key, Arc<ExecuteResponse>>,
}

impl IdempotencyCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self { responses: Cache::builder().max_capacity(capacity).time_to_live(ttl).build() }
    }

    /// The response for `(task_id, phase)`: stored, joined while in flight, or produced by `work`.
    pub async fn get_or_run<E>(
        &self,
        task_id: &str,
        phase: Phase,
        work: impl Future<Output = Result<ExecuteResponse, E>>,
    ) -> Result<(Arc<ExecuteResponse>, Origin), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let entry = self
            .responses
            .entry((task_id.to_string(), phase))
            .or_try_insert_with(async { work.await.map(Arc::new) })
            .await?;
        let origin = if entry.is_fresh() { Origin::Generated } else { Origin::Duplicate };
        Ok((entry.into_value(), origin))
    }
}
