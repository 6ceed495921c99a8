//! The platform's view of an agent, locally: `bidder sign` prints the headers the platform would
//! send for a body, and `bidder harness` calls a running agent the way the platform does — a
//! signed prototype and then a signed final for each brief — checks every answer against the
//! contract (protocol §4: fields, types, price within budget, error bodies), runs the contract's
//! negative cases once, and prints a table. Each run gives every brief a task id of its own, as
//! the platform gives every task, so no answer stored by an earlier run is replayed. With
//! `--async` every brief carries a callback to a receiver the harness runs on 127.0.0.1
//! (`--receiver-listen`, which the agent must allow with `--callback-allow-hosts`; protocol
//! §7): the 202, the callback's signature and headers, a retry after a refused delivery, and the
//! delivered answer are all checked. What a user runs before registering.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::Digest;

use crate::http::auth::sign;

/// Header names and values, in the order they are sent.
pub type Headers = Vec<(&'static str, String)>;

/// The headers the platform sends with a brief.
#[derive(Debug, Clone, Default)]
pub struct Signer {
    pub key: Option<String>,
    pub secret: Option<String>,
}

impl Signer {
    /// Headers for `body` at `timestamp` (Unix seconds), in the platform's order.
    pub fn headers(&self, body: &[u8], timestamp: i64) -> Headers {
        let task_id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["task_id"].as_str().map(str::to_string))
            .unwrap_or_default();
        let mut headers = vec![
            ("Content-Type", "application/json".to_string()),
            ("User-Agent", "AITasker/1.0 (Agent Executor)".to_string()),
            ("X-AITasker-Task-ID", task_id),
            ("X-AITasker-Timestamp", timestamp.to_string()),
        ];
        if let Some(key) = &self.key {
            headers.push(("X-AITasker-Key", key.clone()));
        }
        if let Some(secret) = &self.secret {
            headers.push(("X-AITasker-Signature", sign(secret, body)));
        }
        headers
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// What `bidder sign` prints: the headers, then a `curl` line that sends the body with them.
pub fn sign_report(signer: &Signer, body: &[u8], body_path: &Path, url: &str) -> String {
    let headers = signer.headers(body, unix_now());
    let mut out: String = headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
    let quoted = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    out.push_str("\ncurl -sS -X POST");
    for (name, value) in &headers {
        out.push_str(&format!(" \\\n  -H {}", quoted(&format!("{name}: {value}"))));
    }
    out.push_str(&format!(
        " \\\n  --data-binary @{} \\\n  {}\n",
        quoted(&body_path.display().to_string()),
        quoted(url)
    ));
    out
}

/// Everything in a 200 answer that breaks the contract, as sentences; empty when it holds.
pub fn contract_violations(body: &Value, task_id: &str, mode: &str, budget_usd: Option<f64>) -> Vec<String> {
    let mut found = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            found.push(what);
        }
    };
    expect(body["task_id"] == task_id, format!("task_id is {} for {task_id:?}", body["task_id"]));
    expect(body["mode"] == mode, format!("mode is {} for {mode:?}", body["mode"]));
    expect(body["status"] == "completed", format!("status is {}, not \"completed\"", body["status"]));
    for field in ["prototype_summary", "agent_message", "output"] {
        expect(
            body[field].as_str().is_some_and(|s| !s.trim().is_empty()),
            format!("{field} is not a non-empty string"),
        );
    }
    let bid = body["bid_price_usd"].as_f64();
    expect(bid.is_some_and(|p| p >= 0.0), "bid_price_usd is not a number ≥ 0".into());
    if let (Some(bid), Some(budget)) = (bid, budget_usd) {
        expect(bid <= budget, format!("bid_price_usd {bid} is above the budget {budget}"));
    }
    expect(body["cost_usd"].as_f64().is_some_and(|c| c >= 0.0), "cost_usd is not a number ≥ 0".into());
    match body["artifacts"].as_array() {
        Some(artifacts) if !artifacts.is_empty() => {
            for (i, artifact) in artifacts.iter().enumerate() {
                let kind = artifact["type"].as_str().unwrap_or_default();
                expect(
                    ["text", "file", "image"].contains(&kind),
                    format!("artifacts[{i}].type is {}", artifact["type"]),
                );
                expect(
                    artifact["mime_type"].is_string() && artifact["content"].is_string(),
                    format!("artifacts[{i}] lacks a mime_type or content string"),
                );
                if kind != "text" {
                    expect(artifact["filename"].is_string(), format!("artifacts[{i}] ({kind}) has no filename"));
                }
            }
        }
        _ => expect(false, "artifacts is not a non-empty array".into()),
    }
    let usage = &body["token_usage"];
    expect(
        usage["input_tokens"].is_u64() && usage["output_tokens"].is_u64(),
        "token_usage lacks input_tokens or output_tokens".into(),
    );
    expect(usage["cost_usd"] == body["cost_usd"], "token_usage.cost_usd differs from cost_usd".into());
    let meta = &body["metadata"];
    expect(
        meta["agent_version"].is_string()
            && meta["model"].is_string()
            && meta["latency_ms"].is_u64()
            && meta["truncated"].is_boolean(),
        "metadata lacks agent_version, model, latency_ms or truncated".into(),
    );
    if let Some(checks) = meta["checks"].as_array() {
        for check in checks {
            expect(
                check["name"].is_string() && check["passed"].is_boolean() && check["detail"].is_string(),
                format!("metadata.checks has a malformed entry: {check}"),
            );
        }
    }
    found
}

/// An error answer's body must be `{"error": "...", "detail": "..."}`.
pub fn error_body_violations(body: &Value) -> Vec<String> {
    match (body["error"].as_str(), body["detail"].as_str()) {
        (Some(error), Some(_)) if !error.is_empty() => Vec::new(),
        _ => vec![format!("the error body is not {{\"error\", \"detail\"}}: {body}")],
    }
}

/// One call's row in the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub brief: String,
    pub phase: String,
    pub status: u16,
    pub seconds: f64,
    pub words: usize,
    /// Checks passed and reported.
    pub checks: (usize, usize),
    pub violations: Vec<String>,
}

/// What a harness run found.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Negative cases: (case, violations).
    pub negatives: Vec<(String, Vec<String>)>,
}

impl Report {
    pub fn violations(&self) -> usize {
        self.rows.iter().map(|r| r.violations.len()).sum::<usize>()
            + self.negatives.iter().map(|(_, v)| v.len()).sum::<usize>()
    }

    /// The table, then every violation named.
    pub fn render(&self) -> String {
        let mut out =
            format!("{:<36} {:<9} {:>6} {:>8} {:>6} {:>7}\n", "brief", "phase", "status", "seconds", "words", "checks");
        for row in &self.rows {
            out.push_str(&format!(
                "{:<36} {:<9} {:>6} {:>8.1} {:>6} {:>7}\n",
                row.brief,
                row.phase,
                row.status,
                row.seconds,
                row.words,
                format!("{}/{}", row.checks.0, row.checks.1)
            ));
        }
        for (case, violations) in &self.negatives {
            let verdict = if violations.is_empty() { "ok" } else { "VIOLATION" };
            out.push_str(&format!("negative case: {case}: {verdict}\n"));
        }
        let named: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| r.violations.iter().map(move |v| format!("{} {}: {v}", r.brief, r.phase)))
            .chain(self.negatives.iter().flat_map(|(case, v)| v.iter().map(move |v| format!("{case}: {v}"))))
            .collect();
        match named.is_empty() {
            true => out.push_str("contract: every answer holds\n"),
            false => {
                out.push_str(&format!("contract: {} violation(s)\n", named.len()));
                for v in named {
                    out.push_str(&format!("  - {v}\n"));
                }
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read the briefs in {path}: {reason}")]
    Briefs { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The briefs in `dir` (`*.json`, sorted by name): (file stem, JSON).
pub fn read_briefs(dir: &Path) -> Result<Vec<(String, Value)>, HarnessError> {
    let failed = |reason: String| HarnessError::Briefs { path: dir.display().to_string(), reason };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| failed(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut briefs = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        briefs.push((stem, value));
    }
    if briefs.is_empty() {
        return Err(failed("no .json briefs".into()));
    }
    Ok(briefs)
}

/// How the harness dispatches briefs: waiting for the answer, or (protocol §7) with a callback
/// to a receiver the harness runs on `receiver`, a listener on this machine.
#[derive(Debug, Default)]
pub enum Dispatch {
    #[default]
    Sync,
    Async {
        receiver: std::net::TcpListener,
    },
}

/// Where `bidder harness --async` receives callbacks unless told otherwise.
pub const DEFAULT_RECEIVER_LISTEN: &str = "127.0.0.1:8099";

/// A task id for `original` in this run: a UUID, as the platform's are, different in every run.
fn run_task_id(original: &str, run: u128) -> String {
    let digest = sha2::Sha256::digest(format!("{original}/{run}").as_bytes());
    let hex = hex::encode(&digest[..16]);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Call the agent at `url` (its `/execute` is `url` + `/execute`) with every brief, prototype
/// then final, and run the negative cases once.
pub async fn run(
    url: &str,
    briefs: &[(String, Value)],
    signer: &Signer,
    timeout: Duration,
    dispatch: Dispatch,
) -> Result<Report, HarnessError> {
    let client =
        reqwest::Client::builder().timeout(timeout).build().map_err(|e| HarnessError::Client(e.to_string()))?;
    let endpoint = format!("{}/execute", url.trim_end_matches('/'));
    let receiver = match dispatch {
        Dispatch::Sync => None,
        Dispatch::Async { receiver } => {
            Some(CallbackReceiver::start(receiver).await.map_err(|e| HarnessError::Client(e.to_string()))?)
        }
    };
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut report = Report::default();
    for (name, brief) in briefs {
        let task_id = run_task_id(brief["task_id"].as_str().unwrap_or(name), run);
        for phase in ["prototype", "final"] {
            let mut brief = brief.clone();
            brief["task_id"] = task_id.as_str().into();
            brief["mode"] = phase.into();
            let task_id = brief["task_id"].as_str().unwrap_or_default().to_string();
            let mut row = Row {
                brief: name.clone(),
                phase: phase.into(),
                status: 0,
                seconds: 0.0,
                words: 0,
                checks: (0, 0),
                violations: Vec::new(),
            };
            let started = Instant::now();
            let answer = match &receiver {
                None => {
                    let body = serde_json::to_vec(&brief).unwrap_or_default();
                    send(&client, &endpoint, signer.headers(&body, unix_now()), body).await
                }
                Some(receiver) => {
                    // The first dispatch's first delivery is refused with 503: the agent must retry.
                    let refuse_first = report.rows.is_empty();
                    receiver.dispatch(&client, &endpoint, signer, &mut brief, timeout, refuse_first, &mut row).await
                }
            };
            row.seconds = started.elapsed().as_secs_f64();
            match answer {
                Err(reason) => row.violations.push(reason),
                Ok((status, value)) => {
                    row.status = status;
                    match status {
                        200 => {
                            row.violations.extend(contract_violations(
                                &value,
                                &task_id,
                                phase,
                                brief["budget_usd"].as_f64(),
                            ));
                            row.words = value["output"].as_str().map_or(0, |o| o.split_whitespace().count());
                            let checks = value["metadata"]["checks"].as_array().cloned().unwrap_or_default();
                            row.checks = (checks.iter().filter(|c| c["passed"] == true).count(), checks.len());
                        }
                        // Overload is allowed by the contract; its body must still be an error body.
                        429 | 503 => row.violations.extend(error_body_violations(&value)),
                        other => row.violations.push(format!("answered {other}: {value}")),
                    }
                }
            }
            report.rows.push(row);
        }
    }
    if let Some((_, brief)) = briefs.first() {
        report.negatives = negative_cases(&client, &endpoint, brief, signer).await;
    }
    Ok(report)
}

/// One callback the receiver took.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A local stand-in for the platform's callback endpoint: each dispatch gets its own path and
/// secret; every POST is recorded, and the ones named in `refuse` are answered 503 once.
struct CallbackReceiver {
    base: String,
    inbox: Inbox,
    refuse: Refusals,
}

/// What each callback slot received.
type Inbox = Arc<Mutex<HashMap<String, Vec<Received>>>>;
/// Slots whose next delivery is answered 503.
type Refusals = Arc<Mutex<HashSet<String>>>;

impl CallbackReceiver {
    async fn start(listener: std::net::TcpListener) -> std::io::Result<Self> {
        use axum::extract::{Path as UrlPath, State};
        type Shared = (Inbox, Refusals);
        async fn receive(
            State((inbox, refuse)): State<Shared>,
            UrlPath(slot): UrlPath<String>,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::http::StatusCode {
            let headers = headers
                .iter()
                .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or_default().to_string()))
                .collect();
            inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(slot.clone())
                .or_default()
                .push(Received { headers, body: body.to_vec() });
            match refuse.lock().unwrap_or_else(|p| p.into_inner()).remove(&slot) {
                true => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                false => axum::http::StatusCode::OK,
            }
        }
        let shared: Shared = Default::default();
        let app =
            axum::Router::new().route("/callback/{slot}", axum::routing::post(receive)).with_state(shared.clone());
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let base = format!("http://{}/callback", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base, inbox: shared.0, refuse: shared.1 })
    }

    /// Dispatch `brief` with a callback, check the acknowledgement, wait for the delivery and
    /// check its signature and headers; the delivered JSON is the answer. Findings about the
    /// exchange itself go into `row`.
    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        signer: &Signer,
        brief: &mut Value,
        timeout: Duration,
        refuse_first: bool,
        row: &mut Row,
    ) -> Result<(u16, Value), String> {
        let task_id = brief["task_id"].as_str().unwrap_or_default().to_string();
        let slot = format!("{}-{}", row.brief, row.phase);
        let secret = sign(&format!("{slot}{}", unix_now()), b"harness callback secret");
        if refuse_first {
            self.refuse.lock().unwrap_or_else(|p| p.into_inner()).insert(slot.clone());
        }
        brief["callback_url"] = format!("{}/{slot}", self.base).into();
        brief["callback_secret"] = secret.clone().into();
        brief["execution_timeout_seconds"] = timeout.as_secs().into();
        let body = serde_json::to_vec(&brief).unwrap_or_default();
        let (status, ack) = send(client, endpoint, signer.headers(&body, unix_now()), body).await?;
        match status {
            202 => {
                if ack["status"] != "accepted" || ack["task_id"] != task_id.as_str() {
                    row.violations.push(format!("the 202 must say accepted and name the task: {ack}"));
                }
            }
            // Refusals and errors come back at once, as in sync mode.
            _ => return Ok((status, ack)),
        }
        let deadline = Instant::now() + timeout;
        let delivered = loop {
            let accepted = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).get(&slot).cloned().unwrap_or_default();
            if accepted.len() > usize::from(refuse_first) {
                break accepted;
            }
            if Instant::now() >= deadline {
                return Err(match accepted.len() {
                    0 => "202, then no callback before the timeout".to_string(),
                    _ => "the callback was refused once (503) and never retried".to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for (attempt, received) in delivered.iter().enumerate() {
            let header = |name: &str| {
                received.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
            };
            let signed = header("x-aitasker-signature")
                .is_some_and(|sig| sig.trim().eq_ignore_ascii_case(&sign(&secret, &received.body)));
            if !signed {
                row.violations
                    .push(format!("callback attempt {} is not signed with the task's callback_secret", attempt + 1));
            }
            if header("x-aitasker-task-id").as_deref() != Some(task_id.as_str()) {
                row.violations.push(format!("callback attempt {} lacks X-AITasker-Task-ID {task_id}", attempt + 1));
            }
            let fresh = header("x-aitasker-timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| (t - unix_now()).abs() <= 300);
            if !fresh {
                row.violations.push(format!("callback attempt {} lacks a current X-AITasker-Timestamp", attempt + 1));
            }
        }
        let last = delivered.last().expect("at least one delivery");
        let value: Value = serde_json::from_slice(&last.body)
            .map_err(|_| format!("the callback body is not JSON: {}", String::from_utf8_lossy(&last.body)))?;
        if value["status"] == "failed" {
            return Err(format!("the task failed: {value}"));
        }
        Ok((200, value))
    }
}

/// The contract's refusals: a bad signature, a stale timestamp and a wrong key are 401, a body
/// that is not JSON is 400, each with an error body. Cases the agent is not configured for (no
/// secret, no key) are skipped.
async fn negative_cases(
    client: &reqwest::Client,
    endpoint: &str,
    brief: &Value,
    signer: &Signer,
) -> Vec<(String, Vec<String>)> {
    let mut brief = brief.clone();
    brief["mode"] = "prototype".into();
    brief["task_id"] = "harness-negative-case".into();
    let body = serde_json::to_vec(&brief).unwrap_or_default();
    let mut cases: Vec<(&str, Headers, Vec<u8>, u16)> = Vec::new();
    if signer.secret.is_some() {
        let forged = Signer { secret: Some("not-the-secret".into()), ..signer.clone() };
        cases.push(("bad signature", forged.headers(&body, unix_now()), body.clone(), 401));
        cases.push(("stale timestamp", signer.headers(&body, unix_now() - 3600), body.clone(), 401));
    }
    if signer.key.is_some() {
        let wrong = Signer { key: Some("not-the-key".into()), ..signer.clone() };
        cases.push(("wrong key", wrong.headers(&body, unix_now()), body.clone(), 401));
    }
    let malformed = b"{\"task_id\": \"harness-malformed\", ".to_vec();
    cases.push(("malformed JSON", signer.headers(&malformed, unix_now()), malformed, 400));
    let mut results = Vec::new();
    for (case, headers, body, expected) in cases {
        let violations = match send(client, endpoint, headers, body).await {
            Err(reason) => vec![reason],
            Ok((status, value)) if status == expected => error_body_violations(&value),
            Ok((status, value)) => vec![format!("answered {status}, not {expected}: {value}")],
        };
        results.push((case.to_string(), violations));
    }
    results
}

async fn send(
    client: &reqwest::Client,
    endpoint: &str,
    headers: Headers,
    body: Vec<u8>,
) -> Result<(u16, Value), String> {
    let mut request = client.post(endpoint).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| format!("no answer: {}", e.without_url()))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| format!("the body did not arrive: {}", e.without_url()))?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("answered {status} with a body that is not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Value {
        serde_json::json!({
            "task_id": "t", "mode": "final", "status": "completed", "prototype_summary": "s",
            "agent_message": "m", "bid_price_usd": 8.0, "output": "o",
            "artifacts": [{"type": "text", "mime_type": "text/markdown", "content": "o"},
                          {"type": "file", "filename": "a.py", "mime_type": "text/x-python", "content": "x"}],
            "cost_usd": 0.001, "token_usage": {"input_tokens": 3, "output_tokens": 4, "cost_usd": 0.001},
            "metadata": {"agent_version": "1", "model": "m", "latency_ms": 5, "truncated": false,
                         "checks": [{"name": "length", "passed": true, "detail": "ok"}]}
        })
    }

    #[test]
    fn a_good_answer_holds_and_each_breach_is_named() {
        assert!(contract_violations(&good(), "t", "final", Some(10.0)).is_empty());
        let mut over = good();
        over["bid_price_usd"] = 12.0.into();
        assert_eq!(contract_violations(&over, "t", "final", Some(10.0)), ["bid_price_usd 12 is above the budget 10"]);
        let mut broken = good();
        broken["artifacts"][1]["filename"] = Value::Null;
        broken["metadata"]["truncated"] = "no".into();
        broken["mode"] = "prototype".into();
        assert_eq!(contract_violations(&broken, "t", "final", None).len(), 3);
        assert!(error_body_violations(&serde_json::json!({"error": "unauthorized", "detail": "d"})).is_empty());
        assert!(!error_body_violations(&serde_json::json!({"message": "nope"})).is_empty());
    }

    #[test]
    fn every_run_gives_a_brief_a_task_id_of_its_own() {
        let id = run_task_id("00000000-0000-0000-0000-000000000001", 1);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, run_task_id("00000000-0000-0000-0000-000000000001", 1));
        assert_ne!(id, run_task_id("00000000-0000-0000-0000-000000000001", 2));
        assert_ne!(id, run_task_id("00000000-0000-0000-0000-000000000002", 1));
    }

    #[test]
    fn signing_gives_the_platforms_headers_and_a_curl_line() {
        let signer = Signer { key: Some("k".into()), secret: Some("s".into()) };
        let body = br#"{"task_id":"abc"}"#;
        let headers = signer.headers(body, 1_700_000_000);
        assert!(headers.contains(&("X-AITasker-Task-ID", "abc".into())));
        assert!(headers.contains(&("X-AITasker-Signature", sign("s", body))));
        let report = sign_report(&signer, body, Path::new("brief.json"), "http://127.0.0.1:8080/execute");
        assert!(report.contains("curl -sS -X POST") && report.contains("--data-binary @'brief.json'"), "{report}");
    }
}
