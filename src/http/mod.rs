//! The HTTP face of the agent: `POST /execute`, `GET /health`, `GET /metrics`, at the root and
//! under the configured prefix. `/execute` runs, in order: body-size limit → authentication on
//! the raw bytes → lenient parse → idempotency → pipeline. `/health` reads a readiness flag and
//! never waits on a worker. Shutdown stops accepting, lets in-flight requests finish within the
//! drain deadline, then returns.

pub mod auth;
mod error;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

pub use error::ApiError;

use crate::config::ServerConfig;
use crate::engine::EngineError;
use crate::idempotency::{IdempotencyCache, Origin};
use crate::pipeline::{Pipeline, PipelineError};
use crate::protocol::parse_brief;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServerConfig>,
    /// Empty while the model loads; `/health` says `loading` and `/execute` answers 503.
    pipeline: Arc<OnceLock<Pipeline>>,
    idempotency: Arc<IdempotencyCache>,
    metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let idempotency = IdempotencyCache::new(config.idempotency_capacity, config.idempotency_ttl);
        Self {
            config: Arc::new(config),
            pipeline: Arc::new(OnceLock::new()),
            idempotency: Arc::new(idempotency),
            metrics: crate::telemetry::metrics_handle(),
        }
    }

    /// Mark the agent ready: from now on `/health` is ok and `/execute` does work.
    pub fn set_ready(&self, pipeline: Pipeline) {
        if self.pipeline.set(pipeline).is_err() {
            tracing::warn!("set_ready called twice; keeping the first pipeline");
        }
    }
}

/// The routes, at the root and (when configured) under the path prefix.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/execute", post(execute))
        .route("/health", get(health))
        .route("/metrics", get(render_metrics));
    let routes = match &state.config.path_prefix {
        Some(prefix) => routes.clone().nest(prefix, routes),
        None => routes,
    };
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(record_request_metrics))
        // Failures are logged once, at the right level, where ApiError becomes a response.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then drain in-flight requests for at most the configured
/// drain deadline.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = state.config.drain;
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(drain_secs = drain.as_secs(), "shutting down: draining in-flight requests");
        let _ = draining_tx.send(());
    });
    tokio::select! {
        result = server => result,
        () = async {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("drain deadline passed with requests still in flight; stopping anyway");
            Ok(())
        }
    }
}

async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let body = body.map_err(|rejection| ApiError::from_body_rejection(rejection, state.config.max_body_bytes))?;
    auth::verify_request(&state.config.auth, &headers, &body, SystemTime::now()).inspect_err(|reason| {
        metrics::counter!("bidder_auth_failures_total", "reason" => reason.reason()).increment(1);
    })?;
    let brief = parse_brief(&body)?;
    if let Some(header_id) = headers.get(auth::TASK_ID_HEADER).and_then(|v| v.to_str().ok())
        && header_id != brief.task_id
    {
        tracing::warn!(header_id, task_id = %brief.task_id, "X-AITasker-Task-ID differs from the body's task_id; using the body's");
    }
    let pipeline = state.pipeline.get().ok_or(ApiError::NotReady)?;
    let span = tracing::info_span!("task", task_id = %brief.task_id, phase = %brief.phase, task_type = brief.task_type.as_deref().unwrap_or(""));
    let (response, origin) = state
        .idempotency
        .get_or_run(&brief.task_id, brief.phase, pipeline.execute(&brief, received))
        .instrument(span.clone())
        .await
        .map_err(|e| match e.as_ref() {
            PipelineError::Engine(EngineError::Overloaded { reason, retry_after }) => {
                ApiError::Overloaded { reason: reason.as_str(), retry_after: *retry_after }
            }
            other => ApiError::Internal(other.to_string()),
        })?;
    let _entered = span.enter();
    if origin == Origin::Duplicate {
        metrics::counter!("bidder_duplicates_served_total", "phase" => brief.phase.as_str()).increment(1);
        tracing::info!("duplicate call answered with the shared response");
    } else {
        tracing::info!(
            latency_ms = response.metadata.latency_ms,
            output_tokens = response.token_usage.output_tokens,
            truncated = response.metadata.truncated,
            "task answered"
        );
    }
    metrics::histogram!("bidder_execute_seconds", "phase" => brief.phase.as_str())
        .record(received.elapsed().as_secs_f64());
    Ok(Json(response.as_ref()).into_response())
}

async fn health(State(state): State<AppState>) -> Response {
    let Some(pipeline) = state.pipeline.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading"}))).into_response();
    };
    Json(json!({
        "status": "ok",
        "agent": state.config.agent_slug,
        "version": crate::AGENT_VERSION,
        "capabilities": state.config.capabilities,
        "models": pipeline.models(),
    }))
    .into_response()
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.render()
}

/// Count requests by matched route and status, and time them.
async fn record_request_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("bidder_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("bidder_http_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}
