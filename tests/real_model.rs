//! The real binary on the real default model (SmolLM2-135M-Instruct Q4_1): served over HTTP on
//! 127.0.0.1, signed like the platform signs, and through `bidder execute` and
//! `bidder tokenize`. Needs `scripts/fetch-models.sh` to have run.

// The turn lock only orders whole tests, each on its own thread and runtime; holding it across
// their awaits is the point.
#![allow(clippy::await_holding_lock)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::real_server::*;
use common::*;
use serde_json::Value;

/// The real-model tests measure time on a 2-core machine: they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Words of the brief a relevant answer is expected to reuse: long, distinctive ones.
fn distinctive_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 5).map(str::to_lowercase).collect();
    words.sort();
    words.dedup();
    words
}

/// Prototypes of every fixture brief, signed, through the real server: each returns complete
/// within half the default prototype budget, with its checks reported and passed (but the
/// script's, which the default model cannot pass). Each fixture's final is
/// held to every check in `fixture_finals.rs` and its siblings.
#[tokio::test]
async fn serves_every_fixture_brief_as_a_prototype_with_the_real_model() {
    const BUDGET_SECS: u64 = 60;
    let _turn = take_turn();
    let budget = BUDGET_SECS.to_string();
    let server = Server::start(&["--prototype-deadline-secs", &budget, "--path-prefix", "/aitasker"]);
    let statuses = server.wait_until_ready().await;
    assert_eq!(statuses.first(), Some(&503), "health must say loading while the model loads");

    let client = reqwest::Client::new();
    let prefixed = format!("{}/aitasker", server.url);
    // The 135M model now and then drifts off a brief (echoing the prompt's requirements instead
    // of writing); which brief depends on the sampled path, so the on-topic check allows one
    // drift in the 12 answers and names it. Checking and repairing drafts is the strategy
    // layer's job.
    let mut off_topic = Vec::new();
    let mut failed_prototype_checks = Vec::new();
    for (name, brief) in fixture_briefs() {
        let mode = "prototype";
        let started = Instant::now();
        let response = post_execute(&client, &prefixed, with_mode(&brief, mode), &Signed::default()).await;
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{name} {mode}: {body}\n{}", server.logs());
        assert_contract_response(&body, brief["task_id"].as_str().unwrap(), mode);
        assert!(elapsed < Duration::from_secs(BUDGET_SECS), "{name} {mode} took {elapsed:?}");
        // The script may be cut off by its token limit (the 135M model rambles on in code and
        // may never close its block); it is still on time.
        if name != "script-rename-photos" {
            assert!(!body["metadata"]["truncated"].as_bool().unwrap(), "{name}: not finished in time: {body}");
        }
        let checks = body["metadata"]["checks"].as_array().unwrap();
        assert!(checks.len() >= 3, "{name}: checks reported: {checks:?}");
        // Every failed check is said in the note to the buyer, never hidden.
        let failed = failed_checks(&body);
        let note = body["agent_message"].as_str().unwrap();
        assert!(failed.is_empty() || note.contains("Not yet right"), "{name}: {failed:?} not in the note: {note}");
        // The judge reads these. Code is the exception: its checks run the 135M model's code
        // against tests, and report honestly that it fails (see final_code_business.rs).
        if brief["category"] != "programming-automation" {
            failed_prototype_checks.extend(failed.into_iter().map(|c| format!("{name}: {c}")));
        }

        let output = body["output"].as_str().unwrap();
        assert_no_template_tokens(output);
        if name.starts_with("data-analysis") {
            assert_sales_figures(&body);
        }
        if name.starts_with("logo") {
            assert_logo_artifact(&body, "Nimbus Analytics");
        } else {
            assert!(body["token_usage"]["output_tokens"].as_u64().unwrap() >= 20, "{name} {mode}: {body}");
        }
        if name.starts_with("translation") {
            // The 135M model writes Spanish but not a faithful translation; what it can be
            // held to is answering in the requested language.
            let spanish: Vec<_> = [" el ", " la ", " de ", " que ", " los ", " las ", " para ", " en ", " y ", " por "]
                .into_iter()
                .filter(|w| output.to_lowercase().contains(w))
                .collect();
            assert!(spanish.len() >= 3, "{name} {mode}: not Spanish ({spanish:?}):\n{output}");
        } else {
            let brief_words = distinctive_words(&format!("{} {}", brief["title"], brief["description"]));
            let output_words = distinctive_words(output);
            let shared: Vec<_> = brief_words.iter().filter(|w| output_words.contains(w)).collect();
            if shared.len() < 2 {
                eprintln!("{name} {mode}: output shares {shared:?} with the brief:\n{output}");
                off_topic.push(format!("{name} {mode}"));
            }
        }
        println!("{name} {mode}: {elapsed:?}, {} words", body["metadata"]["output_words"]);
    }
    assert!(
        off_topic.len() <= 1,
        "answers that share fewer than two distinctive words with their brief: {off_topic:?}"
    );
    // A keyword or count the model gets to only when time allows can be missed on a loaded
    // machine (each is said in the note, asserted above); two in the whole set is drift, more
    // is a broken strategy.
    assert!(failed_prototype_checks.len() <= 2, "prototype checks failed: {failed_prototype_checks:#?}");
}

#[tokio::test]
async fn a_deadline_shorter_than_the_generation_returns_in_time_truncated_and_clean() {
    let _turn = take_turn();
    let server = Server::start(&[]);
    server.wait_until_ready().await;
    // The deadline comes from the speed this machine measured (a slow CPU gets a longer one):
    // room for a long prompt and a few dozen tokens, far from the ~2,400 tokens of a
    // 1500-word final.
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    let prefill = health["models"][0]["prefill_tokens_per_second"].as_f64().expect("a measured prefill speed");
    let decode = health["models"][0]["decode_tokens_per_second"].as_f64().expect("a measured decode speed");
    let budget_secs = (1500.0 / prefill + 40.0 / decode).ceil() as u64 + 1;
    assert!(2400.0 / decode > 2.0 * budget_secs as f64, "the final must not fit: {budget_secs} s at {decode} tok/s");
    let mut brief = fixture_brief("blog-post-sustainable-investing");
    brief["execution_timeout_seconds"] = budget_secs.into();
    let started = Instant::now();
    let (url, body) = (server.url.clone(), with_mode(&brief, "final"));
    let request = tokio::spawn(async move {
        let response = post_execute(&reqwest::Client::new(), &url, body, &Signed::default()).await;
        (response, started.elapsed())
    });
    // While the worker is busy, /health still answers at once.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let probe = Instant::now();
        let status = client.get(format!("{}/health", server.url)).send().await.unwrap().status();
        assert_eq!(status, 200);
        assert!(probe.elapsed() < Duration::from_millis(250), "/health took {:?} during generation", probe.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (response, elapsed) = request.await.unwrap();
    assert_eq!(response.status(), 200, "a budget sized to this machine's speed is admitted");
    let body: Value = response.json().await.unwrap();
    // The platform's limit, less the tenth we leave it for the round trip.
    let limit = Duration::from_secs(budget_secs).mul_f64(0.9);
    assert!(elapsed < limit, "a {limit:?} budget answered after {elapsed:?}");
    assert_contract_response(&body, brief["task_id"].as_str().unwrap(), "final");
    assert_eq!(body["metadata"]["truncated"], true, "{body}");
    assert_eq!(body["metadata"]["finish_reason"], "deadline", "{body}");
    let output = body["output"].as_str().unwrap();
    assert_no_template_tokens(output);
    let last_line = output.lines().last().unwrap().trim();
    assert!(
        last_line.ends_with(['.', '!', '?', '…', '"', ')', '*']) || last_line.starts_with(['-', '*']),
        "the truncated text must not end mid-sentence: …{last_line}"
    );
}

#[test]
fn execute_prints_the_same_response_shape_as_the_server() {
    let _turn = take_turn();
    let brief = repo_path("tests/fixtures/briefs/product-description-bottle.json");
    let output = bidder()
        .args(["execute", "--mode", "final", "--final-deadline-secs", "15"])
        .arg(&brief)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body: Value = serde_json::from_slice(&output.stdout).expect("stdout is the response JSON");
    assert_contract_response(&body, "00000000-0000-0000-0000-000000001002", "final");
    assert_no_template_tokens(body["output"].as_str().unwrap());
}

fn qwen_path() -> PathBuf {
    let path = repo_path("models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh qwen2.5-coder-1.5b-instruct", path.display());
    path
}

#[test]
fn tokenize_matches_llama_cpp_for_every_reference_case() {
    let _turn = take_turn();
    for (fixture, model) in
        [("smollm2-135m-instruct.json", model_path()), ("qwen2.5-coder-1.5b-instruct.json", qwen_path())]
    {
        let reference: Value =
            serde_json::from_slice(&std::fs::read(repo_path(&format!("tests/fixtures/tokenizer/{fixture}"))).unwrap())
                .unwrap();
        let cases = reference["cases"].as_array().unwrap();
        assert!(cases.len() >= 16);
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let mut child = bidder()
                .args(["tokenize", "--model"])
                .arg(&model)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success());
            let ids: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(ids, case["ids"], "{fixture}: token ids for {text:?}");
        }
    }
}

#[test]
fn the_qwen_model_serves_a_brief_end_to_end() {
    let _turn = take_turn();
    let output = bidder()
        // Trusted with the whole piece, so the whole-piece loop runs on a real model (a slogan list
        // is led at the 1.5B model's own `prose` level).
        .args(["execute", "--mode", "prototype", "--prototype-deadline-secs", "25", "--capability", "full", "--model"])
        .arg(qwen_path())
        .arg(repo_path("tests/fixtures/briefs/minimal-brief.json"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    let body: Value = serde_json::from_slice(&output.stdout).expect("stdout is the response JSON");
    assert_contract_response(&body, "00000000-0000-0000-0000-00000000100b", "prototype");
    assert_eq!(body["metadata"]["model"], "qwen2.5-coder-1.5b-instruct-q4_k_m");
    let text = body["output"].as_str().unwrap();
    assert_no_template_tokens(text);
    assert!(text.contains("Crumb & Co") || text.to_lowercase().contains("sourdough"), "off topic:\n{text}");
    // The whole piece in time, its checks reported, and a note to the buyer that says what they
    // found.
    assert!(body["metadata"]["latency_ms"].as_u64().unwrap() < 25_000, "{body}");
    let checks = body["metadata"]["checks"].as_array().unwrap();
    for name in ["content", "no_empty_parts"] {
        assert!(checks.iter().any(|c| c["name"] == name), "no {name} check in {checks:?}");
    }
    let failed = checks.iter().any(|c| c["passed"] == false);
    let message = body["agent_message"].as_str().unwrap();
    assert_eq!(message.contains("Not yet right"), failed, "the note and the checks disagree: {message}\n{checks:?}");
}

#[test]
fn a_missing_or_corrupt_model_is_a_clear_start_up_error() {
    let _turn = take_turn();
    let output =
        bidder().args(["serve", "--listen", "127.0.0.1:0", "--model", "/nonexistent/model.gguf"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("/nonexistent/model.gguf") && stderr.contains("fetch-models.sh"), "{stderr}");

    let corrupt = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    std::fs::write(corrupt.path(), b"GGUF but not really a model").unwrap();
    let started = Instant::now();
    let output = bidder().args(["serve", "--listen", "127.0.0.1:0", "--model"]).arg(corrupt.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a corrupt model must stop the server");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("cannot load model") && stderr.contains(&corrupt.path().display().to_string()), "{stderr}");
}

#[tokio::test]
async fn a_caller_that_disconnects_frees_the_worker() {
    let _turn = take_turn();
    let server = Server::start_logging(&["--final-deadline-secs", "120"], "bidder=debug");
    server.wait_until_ready().await;
    // A 1500-word final keeps the worker busy for most of a minute, unless it is cancelled.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().unwrap();
    let blog = fixture_brief("blog-post-sustainable-investing");
    let body = with_mode(&blog, "final");
    let signed = Signed::default();
    let request = impatient
        .post(format!("{}/execute", server.url))
        .header("x-aitasker-key", API_KEY)
        .header("x-aitasker-timestamp", signed.timestamp.to_string())
        .header("x-aitasker-signature", bidder::http::auth::sign(SECRET_CURRENT, &body))
        .body(body);
    assert!(request.send().await.unwrap_err().is_timeout());
    // The worker notices the closed connection before its next forward pass; give the server
    // a moment, or admission would still count the abandoned job as running.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // How long the next task waited for the worker is what tells: its own length varies with
    // what the model writes, but an abandoned final still running would hold it for most of a
    // minute.
    let next = fixture_brief("minimal-brief");
    let response = post_execute(&reqwest::Client::new(), &server.url, with_mode(&next, "prototype"), &signed).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let queued = answer["metadata"]["queue_ms"].as_u64().expect("metadata.queue_ms");
    assert!(queued < 3_000, "the next task waited {queued} ms for the worker: the abandoned one kept it");
    assert!(
        server.logs().contains("generation cancelled"),
        "the worker never saw the cancellation:\n{}",
        server.logs()
    );
}

#[tokio::test]
async fn a_full_queue_is_answered_429_at_once_and_health_stays_fast() {
    let _turn = take_turn();
    let server = Server::start(&["--queue-capacity", "1", "--max-batch", "2", "--final-deadline-secs", "60"]);
    server.wait_until_ready().await;
    // Two finals decoded together, one waiting: the batch (2) and the queue (capacity 1) are full.
    let mut occupying = Vec::new();
    for name in ["blog-post-sustainable-investing", "email-newsletter-gym", "product-description-bottle"] {
        let (url, body) = (server.url.clone(), with_mode(&fixture_brief(name), "final"));
        occupying.push(tokio::spawn(async move {
            post_execute(&reqwest::Client::new(), &url, body, &Signed::default()).await.status()
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = Instant::now();
    let body = with_mode(&fixture_brief("business-pitch-outline"), "final");
    let response = post_execute(&reqwest::Client::new(), &server.url, body, &Signed::default()).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "queue_full", "{body}");
    assert!(elapsed < Duration::from_millis(500), "a refusal must be immediate, took {elapsed:?}");

    let probe = Instant::now();
    assert_eq!(reqwest::get(format!("{}/health", server.url)).await.unwrap().status(), 200);
    assert!(probe.elapsed() < Duration::from_millis(250), "/health took {:?} under load", probe.elapsed());
    for call in occupying {
        assert!(!call.is_finished(), "the occupying finals should still be running");
        call.abort();
    }
}

#[tokio::test]
async fn a_deadline_the_model_cannot_meet_is_answered_429_at_once() {
    let _turn = take_turn();
    let server = Server::start(&["--prototype-deadline-secs", "1"]);
    server.wait_until_ready().await;
    // 12,000 characters of CSV: thousands of prompt tokens, many seconds of prefill at any
    // speed this engine reaches on a CPU, against a 1 s budget.
    let mut brief = fixture_brief("data-analysis-sales-csv");
    let rows: String =
        (0..600).map(|i| format!("Region{},Q{},{},{}\n", i % 7, i % 4 + 1, 1000 + i, 40_000 + 37 * i)).collect();
    brief["description"] = format!("Here is our sales data (CSV):\nregion,quarter,units,revenue_usd\n{rows}").into();
    let started = Instant::now();
    let body = with_mode(&brief, "prototype");
    let response = post_execute(&reqwest::Client::new(), &server.url, body, &Signed::default()).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "deadline_unmeetable", "{body}");
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_pool_of_two_models_routes_prototypes_and_finals_both_warm_before_health_is_ok() {
    let _turn = take_turn();
    let pool = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        pool.path(),
        format!(
            "[[model]]\npath = {:?}\nphases = [\"prototype\"]\n\n[[model]]\npath = {:?}\nphases = [\"final\"]\nqueue_capacity = 2\n",
            model_path(),
            qwen_path()
        ),
    )
    .unwrap();
    let server = Server::start(&["--pool", pool.path().to_str().unwrap(), "--final-deadline-secs", "20"]);
    let statuses = server.wait_until_ready().await;
    assert_eq!(statuses.first(), Some(&503));
    let health: Value = reqwest::get(format!("{}/health", server.url)).await.unwrap().json().await.unwrap();
    let models = health["models"].as_array().expect("a list of models");
    let served: Vec<(&str, &str, &str)> = models
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["phases"][0].as_str().unwrap(), m["capability"].as_str().unwrap()))
        .collect();
    assert_eq!(
        served,
        [
            ("SmolLM2-135M-Instruct.Q4_1", "prototype", "basic"),
            ("qwen2.5-coder-1.5b-instruct-q4_k_m", "final", "prose")
        ],
        "each model with its phase and the capability its parameter count gives it"
    );
    for model in models {
        assert!(model["prefill_tokens_per_second"].as_f64().unwrap() > 0.0, "{model}");
        assert!(model["decode_tokens_per_second"].as_f64().unwrap() > 0.0, "{model}");
    }
    // Both were loaded and warmed before /health said ok.
    let logs = server.logs();
    let ready_at = logs.find("every model is warm").expect("a ready line");
    assert_eq!(logs.matches("model warm").count(), 2, "{logs}");
    assert!(logs.rfind("model warm").unwrap() < ready_at);

    let brief = fixture_brief("minimal-brief");
    let client = reqwest::Client::new();
    for (mode, model) in [("prototype", "SmolLM2-135M-Instruct.Q4_1"), ("final", "qwen2.5-coder-1.5b-instruct-q4_k_m")]
    {
        let response = post_execute(&client, &server.url, with_mode(&brief, mode), &Signed::default()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_contract_response(&body, "00000000-0000-0000-0000-00000000100b", mode);
        assert_eq!(body["metadata"]["model"], model, "{mode} served by the wrong model");
    }
}

/// Run the server at `rust_log` with JSON logs, put it through every path that touches a
/// credential (signed and unsigned calls, a wrong key, a bad signature, an async task whose
/// callback fails and is retried), stop it, and return everything it logged.
async fn logs_of_a_busy_session(rust_log: &str) -> String {
    // The callback below goes to a loopback port: an origin the operator must allow.
    let server =
        Server::start_logging(&["--log-format", "json", "--callback-allow-hosts", "http://127.0.0.1:9"], rust_log);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();
    let brief = fixture_brief("minimal-brief");
    let body = with_mode(&brief, "prototype");
    assert_eq!(post_execute(&client, &server.url, body.clone(), &Signed::default()).await.status(), 200);
    let wrong_key = Signed { key: Some("ait_wrong_key".into()), ..Signed::default() };
    assert_eq!(post_execute(&client, &server.url, body.clone(), &wrong_key).await.status(), 401);
    let wrong_secret = Signed { secret: Some("whsec_wrong".into()), ..Signed::default() };
    assert_eq!(post_execute(&client, &server.url, body, &wrong_secret).await.status(), 401);
    let mut async_brief = brief.clone();
    async_brief["task_id"] = "00000000-0000-0000-0000-00000000b0b0".into();
    async_brief["mode"] = "prototype".into();
    // Nothing listens on port 9: every attempt fails and is retried until the 4 s limit.
    async_brief["callback_url"] = "http://127.0.0.1:9/callback?token=cbtok_in_the_url".into();
    async_brief["callback_secret"] = CALLBACK_SECRET_FOR_LOGS.into();
    async_brief["execution_timeout_seconds"] = 4.into();
    let response =
        post_execute(&client, &server.url, serde_json::to_vec(&async_brief).unwrap(), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.logs()
}

const CALLBACK_SECRET_FOR_LOGS: &str = "cbsec_must_never_be_logged_7731";

#[tokio::test]
async fn no_secret_or_key_appears_in_the_logs_at_any_level() {
    let _turn = take_turn();
    let logs = logs_of_a_busy_session("trace").await;
    assert!(logs.lines().count() > 50, "trace logging should be busy:\n{logs}");
    for secret in [API_KEY, SECRET_CURRENT, SECRET_PENDING, CALLBACK_SECRET_FOR_LOGS, "cbtok_in_the_url"] {
        assert!(!logs.contains(secret), "{secret} appears in the trace log");
    }
    // The callback's failures were logged (so the path ran), without its URL's token.
    assert!(logs.contains("callback not delivered"), "the async path did not run:\n{logs}");
}

/// At info, each task logs one JSON line with its identity and outcome numbers on its span,
/// and the buyer's words stay out.
#[tokio::test]
async fn info_logs_carry_one_span_per_task_and_no_buyer_content() {
    let _turn = take_turn();
    let logs = logs_of_a_busy_session("info").await;
    let answered: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "task answered" && line["span"]["dispatch"] == "sync")
        .collect();
    assert_eq!(answered.len(), 1, "one sync task answered:\n{logs}");
    let span = &answered[0]["span"];
    for field in ["task_id", "phase", "category", "task_type", "outcome", "queue_ms", "prefill_ms", "decode_ms"] {
        assert!(!span[field].is_null(), "the task span lacks {field}: {span}");
    }
    for field in ["input_tokens", "output_tokens", "truncated", "latency_ms"] {
        assert!(!span[field].is_null(), "the task span lacks {field}: {span}");
    }
    assert_eq!(span["task_id"], fixture_brief("minimal-brief")["task_id"]);
    assert_eq!(span["outcome"], "completed");
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    let description = fixture_brief("minimal-brief")["description"].as_str().unwrap().to_string();
    let distinctive = description.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    assert!(!logs.contains(&distinctive), "buyer content logged at info: {distinctive:?}");
    assert!(logs.contains("callback not delivered") && logs.contains("\"dispatch\":\"async\""), "{logs}");
}

/// More concurrent prototypes than the one worker can take: each is answered 200, or 429/503
/// with Retry-After, never after its deadline; `/health` stays fast throughout.
#[tokio::test]
async fn a_burst_of_prototypes_is_answered_in_time_or_refused_and_health_stays_fast() {
    const CALLS: usize = 12;
    const DEADLINE: Duration = Duration::from_secs(15);
    let _turn = take_turn();
    let server = Server::start(&["--prototype-deadline-secs", "15", "--queue-capacity", "4"]);
    server.wait_until_ready().await;
    let briefs = fixture_briefs();

    let stop_probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (url, stop) = (server.url.clone(), stop_probing.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                let status = client.get(format!("{url}/health")).send().await.unwrap().status();
                latencies.push(started.elapsed());
                assert_eq!(status, 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };

    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut brief = briefs[i % briefs.len()].1.clone();
            brief["task_id"] = format!("00000000-0000-0000-0000-0000000c{i:04}").into();
            let (url, body) = (server.url.clone(), with_mode(&brief, "prototype"));
            tokio::spawn(async move {
                let started = Instant::now();
                let response = post_execute(&reqwest::Client::new(), &url, body, &Signed::default()).await;
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let _ = response.bytes().await;
                (status, retry_after, started.elapsed())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    stop_probing.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut latencies = prober.await.unwrap();

    for (status, retry_after, elapsed) in &outcomes {
        match status {
            200 => {}
            429 | 503 => assert!(retry_after.is_some(), "{status} without Retry-After"),
            other => panic!("unexpected status {other}: {outcomes:?}"),
        }
        assert!(*elapsed <= DEADLINE + Duration::from_millis(500), "answered after its deadline: {outcomes:?}");
    }
    let served = outcomes.iter().filter(|o| o.0 == 200).count();
    assert!((1..CALLS).contains(&served), "some served, some refused: {outcomes:?}");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    assert!(latencies.len() >= 50, "too few probes: {}", latencies.len());
    assert!(p99 < Duration::from_millis(50), "/health p99 {p99:?} under load ({} probes)", latencies.len());
    eprintln!(
        "burst of {CALLS}: {served} served, {} refused; /health p50 {:?} p99 {p99:?} over {} probes",
        CALLS - served,
        latencies[latencies.len() / 2],
        latencies.len()
    );
}

/// Settings that would be unsafe or cannot work stop the server before it loads anything,
/// saying what to change.
#[test]
fn unsafe_or_broken_serving_settings_are_refused_at_start_up() {
    let started = Instant::now();
    let open = bidder()
        .env_remove("AITASKER_API_KEY")
        .env_remove("AITASKER_SIGNING_SECRETS")
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(!open.status.success(), "a public address without authentication must be refused");
    assert!(stderr.contains("--insecure-no-auth") && stderr.contains("--api-key"), "{stderr}");

    let tls = bidder()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&tls.stderr);
    assert!(!tls.status.success());
    assert!(stderr.contains("/nonexistent/cert.pem") && stderr.contains("TLS"), "{stderr}");

    let half = bidder().args(["serve", "--tls-cert", "/nonexistent/cert.pem"]).output().unwrap();
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"), "a certificate needs its key");
    assert!(started.elapsed() < Duration::from_secs(5), "refusals come before any model is loaded");
}
