//! The HTTP face of the agent: `POST /execute` and `GET /health`, at the root and under the
//! configured prefix (`/metrics` has a listener of its own, see [`observability`]). `/execute` runs,
//! in order: the key and the signature's headers → the body, within its size and time limits →
//! the HMAC of the raw bytes → lenient parse → the task-id header against the body → idempotency
//! (bound to the body's digest) → pipeline; a brief with a callback is answered 202 and worked on
//! in the background (`async_mode`). At most `--max-in-flight` `/execute` requests are handled at
//! once, and a handler that panics answers 500. `/health` reads a readiness flag and never waits
//! on a worker. Served over plain HTTP or, with a certificate, HTTPS (rustls), HTTP/1.1 only,
//! with the connection and time limits of [`limits`]. Shutdown stops accepting, lets in-flight
//! requests finish and async tasks deliver within the drain deadline, closes what is left, then
//! returns.

mod async_mode;
pub mod auth;
mod error;
mod limits;
mod observability;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

pub use error::ApiError;
pub use observability::serve_metrics;

use crate::config::{ServerConfig, TlsFiles};
use crate::idempotency::{BodyDigest, IdempotencyCache, Origin};
use crate::pipeline::Pipeline;
use crate::protocol::{Brief, ExecuteResponse, check_task_id_header, parse_brief};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServerConfig>,
    /// Empty while the model loads; `/health` says `loading` and `/execute` answers 503.
    pipeline: Arc<OnceLock<Pipeline>>,
    idempotency: Arc<IdempotencyCache>,
    /// Async tasks working or delivering their callback.
    background: Arc<async_mode::BackgroundTasks>,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let idempotency = IdempotencyCache::new(config.idempotency_capacity, config.idempotency_ttl);
        let background = async_mode::BackgroundTasks::new(config.callbacks.clone());
        Self {
            config: Arc::new(config),
            pipeline: Arc::new(OnceLock::new()),
            idempotency: Arc::new(idempotency),
            background: Arc::new(background),
        }
    }

    /// Mark the agent ready: from now on `/health` is ok and `/execute` does work.
    pub fn set_ready(&self, pipeline: Pipeline) {
        if self.pipeline.set(pipeline).is_err() {
            tracing::warn!("set_ready called twice; keeping the first pipeline");
        }
    }
}

/// How long a caller refused for too many requests in flight should wait: a request finishes,
/// or is refused by admission, within moments.
const IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The routes, at the root and (when configured) under the path prefix.
pub fn router(state: AppState) -> Router {
    // One limit for `/execute` under every prefix: the semaphore is shared, not the layer.
    let in_flight = Arc::new(Semaphore::new(state.config.max_in_flight));
    let execute_route = post(execute).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                ApiError::Overloaded { reason: "too_many_requests", retry_after: IN_FLIGHT_RETRY_AFTER }
            }))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight)),
    );
    let routes = Router::new().route("/execute", execute_route).route("/health", get(health));
    let routes = match &state.config.path_prefix {
        Some(prefix) => routes.clone().nest(prefix, routes),
        None => routes,
    };
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // A bug must cost one request its answer, in our error format, and nothing else; inside
        // the metrics layer, so that answer is counted too.
        .layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::Internal(format!("a request handler panicked: {message}")).into_response()
        }))
        .layer(middleware::from_fn(observability::record_request_metrics))
        // Failures are logged once, at the right level, where ApiError becomes a response.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

/// The rustls configuration for `files`, read once at start-up so a bad certificate or key is a
/// clear start-up error rather than a failed handshake later. It offers HTTP/1.1 only, the one
/// protocol served (see [`limits`]).
pub async fn load_tls(files: &TlsFiles) -> Result<RustlsConfig, std::io::Error> {
    let loaded = RustlsConfig::from_pem_file(&files.cert, &files.key).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot use {} and {} for TLS: {e}", files.cert.display(), files.key.display()),
        )
    })?;
    let mut config = (*loaded.get_inner()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
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
    let header_timeout = state.config.header_timeout;
    let connections = limits::ConnectionLimit::new(DefaultAcceptor, state.config.max_connections, "api");
    let app = router(state).into_make_service();
    let server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    match tls {
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(header_timeout).acceptor(connections);
            limits::with_timeouts(server.acceptor(acceptor), header_timeout).serve(app).await?
        }
        None => limits::with_timeouts(server.acceptor(connections), header_timeout).serve(app).await?,
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

fn count_auth_failure(reason: &auth::AuthError) {
    metrics::counter!("bidder_auth_failures_total", "reason" => reason.reason()).increment(1);
}

async fn execute(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let received = Instant::now();
    let config = &state.config;
    // A caller without the key is refused before a byte of its body is read.
    let signature = auth::verify_headers(&config.auth, &headers, SystemTime::now()).inspect_err(count_auth_failure)?;
    let body = limits::read_body(body, &headers, config.max_body_bytes, config.body_timeout).await?;
    signature.verify_body(&config.auth, &body).inspect_err(count_auth_failure)?;
    let brief = parse_brief(&body)?;
    check_task_id_header(headers.get(auth::TASK_ID_HEADER).map(|v| v.as_bytes()), &brief)?;
    let pipeline = state.pipeline.get().ok_or(ApiError::NotReady)?;
    let digest = BodyDigest::of(&body);
    let span = task_span(&brief);
    if brief.callback.is_some() {
        return async_mode::accept(&state, brief, digest, received, span).await;
    }
    let answered = state
        .idempotency
        .get_or_run(&brief.task_id, brief.phase, digest, pipeline.execute(&brief, received))
        .instrument(span.clone())
        .await;
    let (response, origin) = match answered {
        Ok(answered) => answered,
        Err(err) => {
            let err = ApiError::from_idempotency(&err);
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
