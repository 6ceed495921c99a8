//! The one place errors become HTTP answers: a status, a stable `error` code and a human
//! `detail` sentence (protocol §2/§4). Internal causes are logged here and never sent.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::AuthError;
use crate::engine::EngineError;
use crate::engine::admission::RejectReason;
use crate::idempotency::IdempotencyError;
use crate::pipeline::PipelineError;
use crate::protocol::ProtocolError;

/// Seconds a caller should wait before retrying while the model loads.
const LOADING_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Brief(#[from] ProtocolError),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the request body did not arrive within {} s", after.as_secs())]
    BodyTimeout { after: Duration },
    #[error("this task and phase were already dispatched with a different body")]
    Conflict,
    #[error("the model is still loading")]
    NotReady,
    #[error("the agent cannot take this task now ({reason})")]
    Overloaded { reason: &'static str, retry_after: Duration },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

impl ApiError {
    /// What a pipeline failure means to the caller: overload keeps its reason and retry time;
    /// anything else is internal.
    pub fn from_pipeline(err: &PipelineError) -> Self {
        match err {
            PipelineError::Engine(EngineError::Overloaded { reason, retry_after }) => {
                ApiError::Overloaded { reason: reason.as_str(), retry_after: *retry_after }
            }
            // What held it up is still ahead of a retry for about as long as it waited.
            PipelineError::OutOfTime { waited } => ApiError::Overloaded {
                reason: RejectReason::DeadlineUnmeetable.as_str(),
                retry_after: (*waited).max(Duration::from_secs(1)),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }

    /// What an idempotent run's failure means to the caller: a conflict, or its pipeline's error.
    pub fn from_idempotency(err: &IdempotencyError<PipelineError>) -> Self {
        match err {
            IdempotencyError::Conflict => ApiError::Conflict,
            IdempotencyError::Failed(err) => ApiError::from_pipeline(err),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Brief(ProtocolError::MalformedJson(_)) | ApiError::UnreadableBody => StatusCode::BAD_REQUEST,
            ApiError::Brief(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The stable code in the body and in metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Brief(e) => e.code(),
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnreadableBody => "unreadable_body",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::Conflict => "conflict",
            ApiError::NotReady => "loading",
            ApiError::Overloaded { reason, .. } => reason,
            ApiError::Internal(_) => "internal_error",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The human sentence of the error body: never an internal cause.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Internal(_) => "The agent failed to produce a response; the failure has been logged.".into(),
            ApiError::NotReady => "The agent is still loading its model; retry shortly.".into(),
            ApiError::Overloaded { reason: "queue_full", .. } => {
                "Every worker is busy and the queue is full; retry after the time in Retry-After.".into()
            }
            ApiError::Overloaded { reason: "too_many_requests", .. } => {
                "The agent is handling as many requests as it takes at once; retry after the time in Retry-After."
                    .into()
            }
            ApiError::Conflict => "This task and phase were already dispatched with a different body; a retry \
                                   must send the same body, and a new task needs a new task_id."
                .into(),
            ApiError::Overloaded { .. } => {
                "The queued work would not leave time to answer before this task's deadline; retry after the time in Retry-After.".into()
            }
            other => capitalise_sentence(&other.to_string()),
        }
    }
}

impl ApiError {
    /// Log the error once, at its level; internal causes go here and nowhere else.
    pub fn log(&self) {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Unauthorized(reason) => tracing::warn!(reason = reason.reason(), "request refused"),
            other => tracing::info!(code = other.code(), "request not served"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response =
            (self.status(), Json(ErrorBody { error: self.code(), detail: self.detail() })).into_response();
        let retry_after = match &self {
            ApiError::NotReady => Some(LOADING_RETRY_AFTER_SECS),
            // Whole seconds, rounded up, at least one.
            ApiError::Overloaded { retry_after, .. } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn capitalise_sentence(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}
