//! Delivering an async task's answer (protocol §7): POST the JSON to the task's `callback_url`,
//! signed like the platform signs its own calls (hex HMAC-SHA256 of the raw body under the
//! task's `callback_secret`, with timestamp and task-id headers), retried with backoff on
//! transient failures until the task's own deadline. What to deliver and when is the HTTP
//! layer's business; this module only gets bytes to their receiver.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use crate::http::auth::{SIGNATURE_HEADER, TASK_ID_HEADER, TIMESTAMP_HEADER, sign};
use crate::protocol::Callback;

/// The first retry waits this long; each later one twice as long as the one before.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// No wait between attempts is longer than this, so a receiver that recovers is found soon.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// One attempt may take at most this long (less when the deadline is nearer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// An attempt with less time than this left is not started.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The receiver answered with a status that retrying cannot change (a 4xx other than 408
    /// and 429): the body or its signature was refused.
    #[error("the receiver refused the callback with {status} after {attempts} attempt(s)")]
    Refused { status: StatusCode, attempts: u32 },
    #[error("the callback was not accepted before the task's deadline ({attempts} attempt(s); last: {last})")]
    DeadlinePassed { attempts: u32, last: String },
}

/// How a delivery went, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub status: StatusCode,
}

/// Sends callbacks; one per server, cheap to clone.
#[derive(Clone)]
pub struct CallbackClient {
    http: reqwest::Client,
}

impl Default for CallbackClient {
    fn default() -> Self {
        Self::new()
    }
}

impl CallbackClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("bidder/", env!("CARGO_PKG_VERSION")))
            // The receiver is the platform: a redirect is not part of the contract, and
            // following one would send the signed body somewhere nobody asked for.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a client with static settings builds");
        Self { http }
    }

    /// POST `body` to the callback until the receiver accepts it (any 2xx), it refuses it for
    /// good (a 4xx other than 408/429), or `deadline` leaves no time for another attempt.
    /// Every attempt is signed afresh, so its timestamp is current.
    pub async fn deliver(
        &self,
        callback: &Callback,
        task_id: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Delivered, CallbackError> {
        let signature = sign(&callback.secret, body);
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < MIN_ATTEMPT_TIME {
                return Err(CallbackError::DeadlinePassed { attempts, last: "no time left for an attempt".into() });
            }
            attempts += 1;
            metrics::counter!("bidder_callback_attempts_total").increment(1);
            let attempt = self
                .http
                .post(callback.url.clone())
                .timeout(ATTEMPT_TIMEOUT.min(left))
                .header(CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(TIMESTAMP_HEADER, unix_seconds().to_string())
                .header(TASK_ID_HEADER, task_id)
                .body(body.to_vec())
                .send()
                .await;
            let (last, wait) = match attempt {
                Ok(response) if response.status().is_success() => {
                    return Ok(Delivered { attempts, status: response.status() });
                }
                Ok(response) if !is_transient(response.status()) => {
                    return Err(CallbackError::Refused { status: response.status(), attempts });
                }
                Ok(response) => {
                    let asked = retry_after(&response);
                    (format!("HTTP {}", response.status()), asked.unwrap_or(backoff).max(backoff))
                }
                // The error's text names the URL, never the secret or the body.
                Err(err) => (transport_failure(err), backoff),
            };
            tracing::info!(attempts, %last, wait_ms = wait.as_millis() as u64, "callback not accepted yet; retrying");
            if Instant::now() + wait + MIN_ATTEMPT_TIME > deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Statuses worth another attempt: the receiver is busy, restarting or timed out.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
}

/// A `Retry-After` given in seconds (the HTTP-date form is not worth honouring here).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_BACKOFF))
}

fn transport_failure(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    format!("{kind}: {}", err.without_url())
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_busy_or_timed_out_receivers_are_retried() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(is_transient(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(!is_transient(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }
}
