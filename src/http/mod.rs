//! The HTTP face of the agent: `POST /execute`, `GET /health`, `GET /metrics`, at the root and
//! under the configured prefix. `/execute` runs, in order: body-size limit → authentication on
//! the raw bytes → lenient parse → idempotency → pipeline; a brief with a callback is answered
//! 202 and worked on in the background (`async_mode`). `/health` reads a readiness flag and
//! never waits on a worker. Served over plain HTTP or, with a certificate, HTTPS (rustls).
//! Shutdown stops accepting, lets in-flight requests finish and async tasks deliver within the
//! drain deadline, closes what is left, then returns.

mod async_mode;
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
use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

pub use error::ApiError;

use crate::config::{ServerConfig, TlsFiles};
use crate::idempotency::{IdempotencyCache, Origin};
use crate::pipeline::Pipeline;
use crate::protocol::{Brief, ExecuteResponse, parse_brief};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServerConfig>,
    /// Empty while the model loads; `/health` says `loading` and `/execute` answers 503.
    pipeline: Arc<OnceLock<Pipeline>>,
    idempotency: Arc<IdempotencyCache>,
    /// Async tasks working or delivering their callback.
    background: Arc<async_mode::BackgroundTasks>,
    metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let idempotency = IdempotencyCache::new(config.idempotency_capacity, config.idempotency_ttl);
        Self {
            config: Arc::new(config),
            pipeline: Arc::new(OnceLock::new()),
            idempotency: Arc::new(idempotency),
            background: Arc::default(),
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

/// The rustls configuration for `files`, read once at start-up so a bad certificate or key is a
/// clear start-up error rather than a failed handshake later.
pub async fn load_tls(files: &TlsFiles) -> Result<RustlsConfig, std::io::Error> {
    RustlsConfig::from_pem_file(&files.cert, &files.key).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot use {} and {} for TLS: {e}", files.cert.display(), files.key.display()),
        )
    })
}

/// Serve on `listener` (HTTPS when `tls` is given) until `shutdown` resolves; then stop
/// accepting, let in-flight requests finish and background (async) tasks deliver, all within
/// the configured drain deadline.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = state.config.drain;
    let background = state.background.clone();
    let handle = axum_server::Handle::new();
    let drain_started = Arc::new(OnceLock::<Instant>::new());
    tokio::spawn({
        let (handle, drain_started) = (handle.clone(), drain_started.clone());
        async move {
            shutdown.await;
            tracing::info!(drain_secs = drain.as_secs(), "shutting down: draining in-flight requests");
            let _ = drain_started.set(Instant::now());
            // Connections still open when the drain deadline passes are closed.
            handle.graceful_shutdown(Some(drain));
        }
    });
    let app = router(state).into_make_service();
    let listener = listener.into_std()?;
    match tls {
        Some(tls) => axum_server::from_tcp_rustls(listener, tls)?.handle(handle).serve(app).await?,
        None => axum_server::from_tcp(listener)?.handle(handle).serve(app).await?,
    }
    // Every connection is closed; async tasks may still be working or delivering.
    let left =
        drain_started.get().map_or(drain, |started| (*started + drain).saturating_duration_since(Instant::now()));
    if !background.is_empty() {
        tracing::info!(tasks = background.len(), "waiting for async tasks to deliver");
    }
    match background.drain(left).await {
        0 => {}
        n => tracing::warn!(tasks = n, "drain deadline passed with async tasks undelivered; stopping anyway"),
    }
    Ok(())
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
    let span = task_span(&brief);
    if brief.callback.is_some() {
        return async_mode::accept(&state, brief, received, span);
    }
    let answered = state
        .idempotency
        .get_or_run(&brief.task_id, brief.phase, pipeline.execute(&brief, received))
        .instrument(span.clone())
        .await;
    let (response, origin) = match answered {
        Ok(answered) => answered,
        Err(err) => {
            let err = ApiError::from_pipeline(&err);
            span.record("outcome", err.code());
            // Turned into a response (and logged) inside the task's span.
            let _entered = span.enter();
            return Ok(err.into_response());
        }
    };
    record_answer(&span, &response, origin);
    metrics::histogram!("bidder_execute_seconds", "phase" => brief.phase.as_str())
        .record(received.elapsed().as_secs_f64());
    Ok(Json(response.as_ref()).into_response())
}

/// One span per task, so every line logged while working on it carries its identity; the
/// numbers of the outcome are recorded on it when the answer is ready. The brief's own words
/// are never span fields: they appear only at debug level.
fn task_span(brief: &Brief) -> tracing::Span {
    tracing::info_span!(
        "task",
        task_id = %brief.task_id,
        phase = %brief.phase,
        category = brief.category.as_deref().unwrap_or(""),
        task_type = brief.task_type.as_deref().unwrap_or(""),
        dispatch = if brief.callback.is_some() { "async" } else { "sync" },
        outcome = tracing::field::Empty,
        queue_ms = tracing::field::Empty,
        prefill_ms = tracing::field::Empty,
        decode_ms = tracing::field::Empty,
        input_tokens = tracing::field::Empty,
        output_tokens = tracing::field::Empty,
        truncated = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// Record a task's answer on its span and log it once.
fn record_answer(span: &tracing::Span, response: &ExecuteResponse, origin: Origin) {
    let _entered = span.enter();
    if origin == Origin::Duplicate {
        span.record("outcome", "duplicate");
        metrics::counter!("bidder_duplicates_served_total", "phase" => response.mode.as_str()).increment(1);
        tracing::info!("duplicate call answered with the shared response");
        return;
    }
    let metadata = &response.metadata;
    span.record("outcome", if metadata.truncated { "truncated" } else { "completed" });
    span.record("queue_ms", metadata.queue_ms);
    span.record("prefill_ms", metadata.prefill_ms);
    span.record("decode_ms", metadata.decode_ms);
    span.record("input_tokens", response.token_usage.input_tokens);
    span.record("output_tokens", response.token_usage.output_tokens);
    span.record("truncated", metadata.truncated);
    span.record("latency_ms", metadata.latency_ms);
    tracing::info!("task answered");
    tracing::debug!(output = %response.output, "the answer's text");
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
