//! Delivering an async task's answer (protocol §7): POST the JSON to the task's `callback_url`,
//! signed like the platform signs its own calls (hex HMAC-SHA256 of the raw body under the
//! task's `callback_secret`, with timestamp and task-id headers), retried with backoff on
//! transient failures until the task's own deadline. What to deliver and when is the HTTP
//! layer's business; this module only gets bytes to their receiver — and only to a receiver
//! the [`CallbackPolicy`] allows: the URL comes from the brief, so it is held to the same
//! address guard as attachments ([`crate::egress`]: public `https` hosts only, checked on the
//! literal and in the resolver, no proxy, no redirects), with the operator's exempted origins
//! and, when configured, only the platform's own domains.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::egress::{self, AllowList, Guard, Refusal};
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

/// Where callbacks may go, as the operator configured it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Origins exempt from the address guard (the harness's receiver on 127.0.0.1, say).
    pub allow: AllowList,
    /// When not empty, a callback host must be one of these domains or under one of them
    /// (allowed origins excepted): the platform's own domains.
    pub domains: Vec<String>,
}

/// Why a callback URL will not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForbiddenCallback {
    #[error(transparent)]
    Guard(#[from] Refusal),
    #[error("the host is not under a configured platform domain")]
    NotPlatformDomain,
    #[error("the host resolves to a {kind} address")]
    ResolvesPrivate { kind: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The URL is one the policy forbids; nothing was sent.
    #[error("the callback URL is not allowed: {0}")]
    Forbidden(ForbiddenCallback),
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
    guard: Guard,
    domains: Vec<String>,
}

impl Default for CallbackClient {
    fn default() -> Self {
        Self::new(CallbackPolicy::default())
    }
}

impl CallbackClient {
    pub fn new(policy: CallbackPolicy) -> Self {
        let guard = Guard::new(policy.allow);
        // The receiver is the platform: a redirect is not part of the contract, and following
        // one would send the signed body somewhere nobody asked for (the guarded builder
        // follows none).
        let http = egress::client_builder(&guard)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a client with static settings builds");
        Self { http, guard, domains: policy.domains }
    }

    /// Whether `url` may receive a callback, judged on the URL alone (its name's addresses are
    /// judged again when it is resolved for each attempt).
    pub fn check(&self, url: &Url) -> Result<(), ForbiddenCallback> {
        self.guard.check_url(url)?;
        if self.domains.is_empty() || self.guard.allow_list().allows(url) {
            return Ok(());
        }
        let host = egress::normalise_host(url.host_str().unwrap_or_default());
        let pinned = self.domains.iter().any(|domain| {
            host == *domain || host.strip_suffix(domain.as_str()).is_some_and(|rest| rest.ends_with('.'))
        });
        if pinned { Ok(()) } else { Err(ForbiddenCallback::NotPlatformDomain) }
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
        self.check(&callback.url).map_err(CallbackError::Forbidden)?;
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
                Err(err) => match egress::resolver_refusal(&err) {
                    Some(kind) => return Err(CallbackError::Forbidden(ForbiddenCallback::ResolvesPrivate { kind })),
                    // The error's text names the URL, never the secret or the body.
                    None => (transport_failure(err), backoff),
                },
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

    fn client(allow: &[&str], domains: &[&str]) -> CallbackClient {
        CallbackClient::new(CallbackPolicy {
            allow: AllowList::parse(allow).unwrap(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
        })
    }

    fn check(client: &CallbackClient, url: &str) -> Result<(), ForbiddenCallback> {
        client.check(&Url::parse(url).unwrap())
    }

    #[test]
    fn callbacks_go_to_public_https_hosts_or_allowed_origins_only() {
        let open = client(&[], &[]);
        assert_eq!(check(&open, "https://api.aitasker.co/callbacks/1?t=x"), Ok(()));
        for forbidden in [
            "http://api.aitasker.co/cb",
            "https://10.1.2.3/cb",
            "https://0.0.0.0/cb",
            "https://metadata.google.internal/cb",
            "https://queue.internal/cb",
            "http://127.0.0.1:8080/cb",
            "https://[::1]/cb",
        ] {
            assert!(check(&open, forbidden).is_err(), "{forbidden}");
        }
        let harness = client(&["http://127.0.0.1:8099"], &[]);
        assert_eq!(check(&harness, "http://127.0.0.1:8099/slot/3"), Ok(()));
        assert!(check(&harness, "http://127.0.0.1:8080/metrics").is_err(), "another local port");
    }

    #[test]
    fn pinned_domains_admit_only_themselves_their_subdomains_and_allowed_origins() {
        let pinned = client(&["http://127.0.0.1:8099"], &["aitasker.co"]);
        assert_eq!(check(&pinned, "https://aitasker.co/cb"), Ok(()));
        assert_eq!(check(&pinned, "https://api.AITasker.co./cb"), Ok(()));
        assert_eq!(check(&pinned, "http://127.0.0.1:8099/cb"), Ok(()));
        assert_eq!(check(&pinned, "https://evil-aitasker.co/cb"), Err(ForbiddenCallback::NotPlatformDomain));
        assert_eq!(check(&pinned, "https://aitasker.co.evil.example/cb"), Err(ForbiddenCallback::NotPlatformDomain));
    }

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
