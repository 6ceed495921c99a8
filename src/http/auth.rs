//! Request authentication (protocol §3), on the raw body bytes before anything parses them:
//! the API key in `X-AITasker-Key`, and an HMAC-SHA256 of the body in `X-AITasker-Signature`
//! under any configured secret, with `X-AITasker-Timestamp` inside the tolerance window. Each
//! scheme is on when configured. Comparisons are constant-time. What the headers alone decide
//! ([`verify_headers`]) is decided before the body is read, so a caller without the key cannot
//! make us receive a body at all.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, Secret};

pub const KEY_HEADER: &str = "x-aitasker-key";
pub const SIGNATURE_HEADER: &str = "x-aitasker-signature";
pub const TIMESTAMP_HEADER: &str = "x-aitasker-timestamp";
pub const TASK_ID_HEADER: &str = "x-aitasker-task-id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the X-AITasker-Key header is missing")]
    MissingKey,
    #[error("the X-AITasker-Key header does not match this agent's key")]
    WrongKey,
    #[error("the X-AITasker-Signature header is missing")]
    MissingSignature,
    #[error("the X-AITasker-Signature header is not a hex HMAC-SHA256")]
    MalformedSignature,
    #[error("the request signature does not match its body")]
    BadSignature,
    #[error("the X-AITasker-Timestamp header is missing or not unix seconds")]
    BadTimestamp,
    #[error("the X-AITasker-Timestamp is outside the accepted window")]
    StaleTimestamp,
}

impl AuthError {
    /// A label for logs and metrics (the response body says only `unauthorized`).
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::MissingKey => "missing_key",
            AuthError::WrongKey => "wrong_key",
            AuthError::MissingSignature => "missing_signature",
            AuthError::MalformedSignature => "malformed_signature",
            AuthError::BadSignature => "bad_signature",
            AuthError::BadTimestamp => "bad_timestamp",
            AuthError::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Check `headers` and the raw `body` against `config` at time `now`.
pub fn verify_request(config: &AuthConfig, headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<(), AuthError> {
    verify_headers(config, headers, now)?.verify_body(config, body)
}

/// The signature the headers carry, still to be checked against the body.
#[derive(Debug)]
#[must_use = "the body's signature is still unchecked"]
pub struct PendingSignature(Option<Vec<u8>>);

impl PendingSignature {
    /// Accept `body` if it is what the headers signed (always, when no secret is configured).
    pub fn verify_body(self, config: &AuthConfig, body: &[u8]) -> Result<(), AuthError> {
        match self.0 {
            Some(signature) => verify_signature(&config.signing_secrets, body, &signature),
            None => Ok(()),
        }
    }
}

/// Everything the headers alone decide, in protocol §3's order: the key, the timestamp's
/// window, and a signature header of the right form.
pub fn verify_headers(
    config: &AuthConfig,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<PendingSignature, AuthError> {
    if let Some(expected) = &config.api_key {
        let given = headers.get(KEY_HEADER).ok_or(AuthError::MissingKey)?;
        if !bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
            return Err(AuthError::WrongKey);
        }
    }
    if config.signing_secrets.is_empty() {
        return Ok(PendingSignature(None));
    }
    let timestamp = headers
        .get(TIMESTAMP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or(AuthError::BadTimestamp)?;
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if timestamp.abs_diff(now_secs) > config.timestamp_tolerance.as_secs() {
        return Err(AuthError::StaleTimestamp);
    }
    let signature = headers.get(SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
    Ok(PendingSignature(Some(decode_signature(signature.as_bytes())?)))
}

/// Hex in either case, with or without a `sha256=` prefix.
fn decode_signature(header: &[u8]) -> Result<Vec<u8>, AuthError> {
    let text = std::str::from_utf8(header).map_err(|_| AuthError::MalformedSignature)?.trim();
    let hex_part = text.strip_prefix("sha256=").or_else(|| text.strip_prefix("SHA256=")).unwrap_or(text);
    hex::decode(hex_part).map_err(|_| AuthError::MalformedSignature)
}

/// Accept `signature` if it is the HMAC-SHA256 of `body` under any of `secrets`. Every secret
/// is tried, so the time taken does not say which one matched.
pub fn verify_signature(secrets: &[Secret], body: &[u8], signature: &[u8]) -> Result<(), AuthError> {
    let mut matched = false;
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
        mac.update(body);
        matched |= mac.verify_slice(signature).is_ok();
    }
    if matched { Ok(()) } else { Err(AuthError::BadSignature) }
}

/// The hex signature the platform sends for `body` under `secret` (for tests, tools and docs).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn config() -> AuthConfig {
        AuthConfig {
            api_key: Some(Secret::new("ait_key")),
            signing_secrets: vec![Secret::new("old"), Secret::new("new")],
            timestamp_tolerance: Duration::from_secs(300),
        }
    }

    fn headers(key: &str, signature: &str, timestamp: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(KEY_HEADER, HeaderValue::from_str(key).unwrap());
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&timestamp.to_string()).unwrap());
        h
    }

    fn check(h: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        verify_request(&config(), h, body, UNIX_EPOCH + Duration::from_secs(NOW))
    }

    #[test]
    fn either_configured_secret_validates_in_any_hex_case_and_prefix() {
        let body = br#"{"task_id":"t"}"#;
        assert_eq!(check(&headers("ait_key", &sign("old", body), NOW), body), Ok(()));
        assert_eq!(check(&headers("ait_key", &sign("new", body).to_uppercase(), NOW), body), Ok(()));
        assert_eq!(check(&headers("ait_key", &format!("sha256={}", sign("new", body)), NOW), body), Ok(()));
    }

    #[test]
    fn every_failure_is_named() {
        let body = br#"{"task_id":"t"}"#;
        let good = sign("new", body);
        assert_eq!(check(&headers("wrong", &good, NOW), body), Err(AuthError::WrongKey));
        assert_eq!(check(&headers("ait_key", &sign("foreign", body), NOW), body), Err(AuthError::BadSignature));
        assert_eq!(check(&headers("ait_key", &good, NOW), b"{\"task_id\":\"T\"}"), Err(AuthError::BadSignature));
        assert_eq!(check(&headers("ait_key", "zz", NOW), body), Err(AuthError::MalformedSignature));
        assert_eq!(check(&headers("ait_key", &good, NOW - 3600), body), Err(AuthError::StaleTimestamp));
        assert_eq!(check(&headers("ait_key", &good, NOW + 301), body), Err(AuthError::StaleTimestamp));
        assert_eq!(check(&headers("ait_key", &good, NOW - 299), body), Ok(()));
        let mut missing = headers("ait_key", &good, NOW);
        missing.remove(KEY_HEADER);
        assert_eq!(check(&missing, body), Err(AuthError::MissingKey));
        let mut missing = headers("ait_key", &good, NOW);
        missing.remove(SIGNATURE_HEADER);
        assert_eq!(check(&missing, body), Err(AuthError::MissingSignature));
        let mut missing = headers("ait_key", &good, NOW);
        missing.remove(TIMESTAMP_HEADER);
        assert_eq!(check(&missing, body), Err(AuthError::BadTimestamp));
    }

    #[test]
    fn nothing_configured_means_open() {
        let open = AuthConfig::default();
        assert_eq!(verify_request(&open, &HeaderMap::new(), b"x", SystemTime::now()), Ok(()));
    }
}
