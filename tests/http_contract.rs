//! The contract over real HTTP on 127.0.0.1:0, with the deterministic fake engine behind the
//! trait: authentication, error bodies and status codes, readiness, idempotency, deadlines,
//! prefixes, metrics. The real model is exercised in `real_model.rs`.

mod common;

use std::time::{Duration, Instant};

use bidder::config::StrategyConfig;
use bidder::engine::fake::FakeGenerator;
use bidder::harness::Dispatch;
use common::fake_server::*;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn health_says_loading_until_the_pipeline_is_ready() {
    let server = TestServer::loading(FakeGenerator::default(), StrategyConfig::default(), server_config()).await;
    let (status, body) = json_of(client().get(format!("{}/health", server.url)).send().await.unwrap()).await;
    assert_eq!((status, body), (503, json!({"status": "loading"})));

    let brief = fixture_brief("minimal-brief");
    let response = post_execute(&client(), &server.url, with_mode(&brief, "prototype"), &Signed::default()).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 503, "loading");

    server.ready();
    for path in ["/health", "/aitasker/health"] {
        let (status, body) = json_of(client().get(format!("{}{path}", server.url)).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"status": "ok", "agent": "bidder-test", "version": env!("CARGO_PKG_VERSION"),
                   "capabilities": ["writing-translation", "data"],
                   "models": [{"name": "fake", "phases": ["prototype", "final"], "capability": "basic"}]})
        );
    }
}

#[tokio::test]
async fn every_fixture_brief_gets_a_complete_response_in_both_phases() {
    let server = TestServer::start(FakeGenerator::default()).await;
    for (name, brief) in fixture_briefs() {
        for mode in ["prototype", "final"] {
            let response = post_execute(
                &client(),
                &format!("{}/aitasker", server.url),
                with_mode(&brief, mode),
                &Signed::default(),
            )
            .await;
            let (status, body) = json_of(response).await;
            assert_eq!(status, 200, "{name} {mode}: {body}");
            assert_contract_response(&body, brief["task_id"].as_str().unwrap(), mode);
            let budget = brief["budget_usd"].as_f64().unwrap();
            let bid = body["bid_price_usd"].as_f64().unwrap();
            assert!(bid > 0.0 && bid <= budget, "{name}: bid {bid} for budget {budget}");
            let artifacts = body["artifacts"].as_array().unwrap();
            let text = artifacts.iter().find(|a| a["type"] == "text").expect("a text artifact");
            assert_eq!(text["content"], body["output"]);
            if name.starts_with("logo") {
                assert_logo_artifact(&body, "Nimbus Analytics");
            }
            if name.starts_with("data-analysis") {
                assert_sales_figures(&body);
            }
        }
    }
}

/// A brief no family strategy claims: one call to the model, as the fake answers it.
fn general_brief() -> serde_json::Value {
    serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000020aa", "title": "Widget market notes",
        "description": "Notes on the widget market for our team.", "category": "other",
        "task_type": "research-notes", "budget_usd": 10, "mode": "prototype",
        "requirements": {"keywords": ["widget market notes", "beta gadget"], "word_count": 1500}
    })
}

#[tokio::test]
async fn the_response_reports_the_checks_the_brief_implies() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let response = post_execute(&client(), &server.url, with_mode(&general_brief(), "final"), &Signed::default()).await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let checks = body["metadata"]["checks"].as_array().unwrap();
    let verdict = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} check: {checks:?}"))["passed"]
            .as_bool()
            .unwrap()
    };
    // The fake writes the brief's title as a heading, then one sentence: 45 words, far from the
    // 1500 asked; the title's keyword is there, the other is not.
    assert!(!verdict("length"));
    assert!(verdict("keyword:widget market notes"));
    assert!(!verdict("keyword:beta gadget"));
    assert!(verdict("no_template_tokens") && verdict("no_stock_filler"));
}

#[tokio::test]
async fn authentication_failures_are_401_and_change_nothing() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    let cases = [
        ("missing key", Signed { key: None, ..Signed::default() }),
        ("wrong key", Signed { key: Some("ait_wrong".into()), ..Signed::default() }),
        ("missing signature", Signed { secret: None, ..Signed::default() }),
        ("foreign secret", Signed { secret: Some("someone_elses_secret".into()), ..Signed::default() }),
        ("timestamp an hour old", Signed { timestamp: unix_now() - 3600, ..Signed::default() }),
        ("timestamp an hour ahead", Signed { timestamp: unix_now() + 3600, ..Signed::default() }),
    ];
    for (what, signed) in cases {
        let (status, json) = json_of(post_execute(&client(), &server.url, body.clone(), &signed).await).await;
        assert_eq!(status, 401, "{what}: {json}");
        assert_error(status, &json, 401, "unauthorized");
    }

    // A body changed after signing.
    let tampered = String::from_utf8(body.clone()).unwrap().replace("sourdough", "rye").into_bytes();
    let response = client()
        .post(format!("{}/execute", server.url))
        .header("x-aitasker-key", API_KEY)
        .header("x-aitasker-timestamp", unix_now().to_string())
        .header("x-aitasker-signature", bidder::http::auth::sign(SECRET_CURRENT, &body))
        .body(tampered)
        .send()
        .await
        .unwrap();
    let (status, json) = json_of(response).await;
    assert_error(status, &json, 401, "unauthorized");
    assert_eq!(server.fake.calls(), 0, "no work for unauthenticated calls");

    // Both configured secrets validate (rotation overlap).
    for secret in [SECRET_CURRENT, SECRET_PENDING] {
        let signed = Signed { secret: Some(secret.into()), ..Signed::default() };
        let response = post_execute(&client(), &server.url, body.clone(), &signed).await;
        assert_eq!(response.status(), 200, "secret {secret}");
    }
}

#[tokio::test]
async fn malformed_invalid_and_oversized_bodies_get_their_error_and_the_server_keeps_serving() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", b"{\"task_id\": \"t\", ".to_vec(), 400, "malformed_json"),
        ("not UTF-8", vec![0xff, 0xfe, 0x00], 400, "malformed_json"),
        (
            "missing task_id",
            serde_json::to_vec(&json!({"title": "Slogans here", "mode": "prototype"})).unwrap(),
            422,
            "missing_field",
        ),
        (
            "missing phase",
            serde_json::to_vec(&json!({"task_id": "t", "title": "Slogans here"})).unwrap(),
            422,
            "missing_field",
        ),
        (
            "unknown phase",
            serde_json::to_vec(&json!({"task_id": "t", "title": "Slogans here", "mode": "review"})).unwrap(),
            422,
            "unknown_phase",
        ),
        (
            "wrong type",
            serde_json::to_vec(&json!({"task_id": 7, "title": "Slogans here", "mode": "final"})).unwrap(),
            422,
            "invalid_field",
        ),
        ("array body", b"[]".to_vec(), 422, "invalid_brief"),
    ];
    for (what, body, expected_status, code) in cases {
        let (status, json) = json_of(post_execute(&client(), &server.url, body, &Signed::default()).await).await;
        assert_eq!(status, expected_status, "{what}: {json}");
        assert_error(status, &json, expected_status, code);
    }

    // 3 MiB: refused before authentication or parsing.
    let mut huge = fixture_brief("minimal-brief");
    huge["description"] = "x".repeat(3 * 1024 * 1024).into();
    let (status, json) =
        json_of(post_execute(&client(), &server.url, with_mode(&huge, "prototype"), &Signed::default()).await).await;
    assert_error(status, &json, 413, "payload_too_large");
    assert_eq!(server.fake.calls(), 0);

    // Unknown routes and methods answer in the same format.
    let (status, json) = json_of(client().get(format!("{}/nope", server.url)).send().await.unwrap()).await;
    assert_error(status, &json, 404, "not_found");
    let (status, json) = json_of(client().get(format!("{}/execute", server.url)).send().await.unwrap()).await;
    assert_error(status, &json, 405, "method_not_allowed");

    let ok = post_execute(
        &client(),
        &server.url,
        with_mode(&fixture_brief("minimal-brief"), "prototype"),
        &Signed::default(),
    )
    .await;
    assert_eq!(ok.status(), 200, "still serving after bad input");
}

#[tokio::test]
async fn concurrent_duplicates_share_one_generation_and_later_ones_replay_it() {
    let body = with_mode(&fixture_brief("blog-post-sustainable-investing"), "prototype");
    // A strategy may ask the model several times for one piece: count one execution's calls.
    let solo = TestServer::start(FakeGenerator::default()).await;
    json_of(post_execute(&client(), &solo.url, body.clone(), &Signed::default()).await).await;
    let one_execution = solo.fake.calls();
    assert!(one_execution >= 1);

    let fake = FakeGenerator::default().with_word_delay(Duration::from_millis(10));
    let server = TestServer::start(fake).await;
    let calls = (0..3).map(|_| {
        let (url, body) = (server.url.clone(), body.clone());
        tokio::spawn(async move { json_of(post_execute(&client(), &url, body, &Signed::default()).await).await })
    });
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert_eq!(server.fake.calls(), one_execution, "three concurrent duplicates, one execution");
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(body, &answers[0].1, "duplicates get the same response");
    }

    let started = Instant::now();
    let (status, replay) = json_of(post_execute(&client(), &server.url, body.clone(), &Signed::default()).await).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(300), "replay took {:?}", started.elapsed());
    assert_eq!(replay, answers[0].1);
    assert_eq!(server.fake.calls(), one_execution, "a later duplicate does no new work");

    // The other phase of the same task is different work.
    let final_body = with_mode(&fixture_brief("blog-post-sustainable-investing"), "final");
    let (status, fin) = json_of(post_execute(&client(), &server.url, final_body, &Signed::default()).await).await;
    assert_eq!((status, fin["mode"].as_str()), (200, Some("final")));
    assert!(server.fake.calls() > one_execution);
}

#[tokio::test]
async fn a_deadline_shorter_than_the_generation_returns_in_time_with_clean_truncated_text() {
    // The fake needs 10 s for its answer; the prototype budget is 2 s.
    let fake = FakeGenerator::default().with_words(1000).with_word_delay(Duration::from_millis(10));
    let strategy = StrategyConfig { prototype_deadline: Duration::from_secs(2), ..StrategyConfig::default() };
    let server = TestServer::loading(fake, strategy, server_config()).await;
    server.ready();
    let started = Instant::now();
    let response =
        post_execute(&client(), &server.url, with_mode(&general_brief(), "prototype"), &Signed::default()).await;
    let elapsed = started.elapsed();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(elapsed < Duration::from_secs(2), "answered after {elapsed:?}");
    assert!(elapsed > Duration::from_millis(1000), "it should have used its budget: {elapsed:?}");
    assert_eq!(body["metadata"]["truncated"], true);
    assert_eq!(body["metadata"]["finish_reason"], "deadline");
    let output = body["output"].as_str().unwrap();
    assert!(output.ends_with("brief."), "ends on a complete sentence: …{}", &output[output.len().saturating_sub(60)..]);
    assert_contract_response(&body, "00000000-0000-0000-0000-0000000020aa", "prototype");
}

/// A task admitted behind others whose wait eats its whole budget has nothing to send: that is an
/// overload the platform may retry, with `Retry-After`, never a 500 or a late or empty answer.
#[tokio::test]
async fn a_task_whose_time_runs_out_in_the_queue_is_refused_with_retry_after() {
    let fake = FakeGenerator::default().with_queue_delay(Duration::from_secs(3));
    let strategy = StrategyConfig { prototype_deadline: Duration::from_secs(2), ..StrategyConfig::default() };
    let server = TestServer::loading(fake, strategy, server_config()).await;
    server.ready();
    let started = Instant::now();
    let response = post_execute(
        &client(),
        &server.url,
        with_mode(&fixture_brief("minimal-brief"), "prototype"),
        &Signed::default(),
    )
    .await;
    let elapsed = started.elapsed();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 429, "deadline_unmeetable");
    assert!(retry_after.is_some_and(|secs| secs >= 1), "Retry-After: {retry_after:?}");
    assert!(elapsed < Duration::from_millis(2500), "answered after {elapsed:?}");
}

#[tokio::test]
async fn an_engine_failure_is_a_generic_500_and_is_not_cached() {
    let server = TestServer::start(FakeGenerator::default().failing()).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    for attempt in 1..=2 {
        let (status, json) =
            json_of(post_execute(&client(), &server.url, body.clone(), &Signed::default()).await).await;
        assert_error(status, &json, 500, "internal_error");
        assert!(!json["detail"].as_str().unwrap().contains("fake"), "the cause must not leak: {json}");
        assert_eq!(server.fake.calls(), attempt, "a failure is retried, not replayed");
    }
}

#[tokio::test]
async fn metrics_count_requests_generations_and_refusals() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    post_execute(&client(), &server.url, body.clone(), &Signed::default()).await;
    post_execute(&client(), &server.url, body.clone(), &Signed::default()).await;
    post_execute(&client(), &server.url, body, &Signed { key: None, ..Signed::default() }).await;
    let text = server.metrics().await;
    for needle in [
        "bidder_http_requests_total{method=\"POST\",route=\"/execute\",status=\"200\"}",
        "bidder_http_requests_total{method=\"POST\",route=\"/execute\",status=\"401\"}",
        "bidder_auth_failures_total{reason=\"missing_key\"}",
        "bidder_duplicates_served_total{phase=\"prototype\"}",
        "bidder_generations_total{phase=\"prototype\",finish=\"eos\"}",
        "bidder_execute_seconds_bucket",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

/// `/metrics` tells refusals apart (a wrong key from a bad signature): it is served on its own
/// listener only, never beside `/execute` where anyone can reach it.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = TestServer::start(FakeGenerator::default()).await;
    for path in ["/metrics", "/aitasker/metrics"] {
        let (status, body) = json_of(client().get(format!("{}{path}", server.url)).send().await.unwrap()).await;
        assert_error(status, &body, 404, "not_found");
    }
    let response = client().get(format!("{}/metrics", server.metrics_url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("bidder_http_requests_total"));
    let (status, body) = json_of(client().get(format!("{}/execute", server.metrics_url)).send().await.unwrap()).await;
    assert_error(status, &body, 404, "not_found");
}

/// Shutdown stops accepting at once, lets a request in flight finish within the drain
/// deadline, and stops at that deadline even if one is still running.
#[tokio::test]
async fn shutdown_drains_in_flight_requests_within_the_drain_deadline() {
    // About 0.3 s per model call; the slogan brief makes up to five.
    let fake = FakeGenerator::default().with_words(30).with_word_delay(Duration::from_millis(10));
    let mut server = TestServer::start(fake).await;
    let url = server.url.clone();
    let in_flight = tokio::spawn(async move {
        post_execute(&client(), &url, with_mode(&fixture_brief("minimal-brief"), "prototype"), &Signed::default())
            .await
            .status()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = client().get(format!("{}/health", server.url)).send().await;
    assert!(refused.is_err(), "no new connection once shutdown began");
    assert_eq!(in_flight.await.unwrap(), 200, "the in-flight request completes during the drain");
    tokio::time::timeout(Duration::from_secs(5), server.server).await.expect("server stopped").unwrap().unwrap();

    // A request that would take 10 s against a 1 s drain: the server stops at the deadline.
    let fake = FakeGenerator::default().with_words(1000).with_word_delay(Duration::from_millis(10));
    let config = bidder::config::ServerConfig { drain: Duration::from_secs(1), ..server_config() };
    let mut server = TestServer::loading(fake, StrategyConfig::default(), config).await;
    server.ready();
    let url = server.url.clone();
    let too_long = tokio::spawn(async move {
        post_execute(&client(), &url, with_mode(&general_brief(), "final"), &Signed::default()).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.server).await.expect("server stopped").unwrap().unwrap();
    let stopped_after = stopping.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(900) && stopped_after < Duration::from_secs(3),
        "stopped after {stopped_after:?}, not at the 1 s drain deadline"
    );
    too_long.abort();
}

/// HTTPS in-process: a certificate generated here, trusted by the client as the platform would
/// trust a real one; the contract holds over TLS, and plain HTTP or an untrusting client get
/// nothing.
#[tokio::test]
async fn an_https_listener_serves_the_contract_with_its_certificate() {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = bidder::config::TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    let tls = bidder::http::load_tls(&files).await.unwrap();
    let server =
        TestServer::loading_with_tls(FakeGenerator::default(), StrategyConfig::default(), server_config(), Some(tls))
            .await;
    server.ready();
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = trusting.get(format!("{}/health", server.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let brief = fixture_brief("minimal-brief");
    let (status, body) =
        json_of(post_execute(&trusting, &server.url, with_mode(&brief, "prototype"), &Signed::default()).await).await;
    assert_eq!(status, 200, "{body}");
    assert_contract_response(&body, brief["task_id"].as_str().unwrap(), "prototype");

    let untrusting = client().get(format!("{}/health", server.url)).send().await;
    assert!(untrusting.is_err_and(|e| e.is_connect()), "an unknown certificate must fail the handshake");
    let plain = client().get(server.url.replace("https://", "http://") + "/health").send().await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200), "plain HTTP must not be served");

    // A key that is not a key is a start-up error that names the files.
    std::fs::write(&files.key, "not a key").unwrap();
    let err = bidder::http::load_tls(&files).await.unwrap_err().to_string();
    assert!(err.contains("key.pem") && err.contains("cert.pem"), "{err}");
}

/// `bidder harness`'s library, as the platform, against the server: every fixture brief in both
/// phases holds the contract, and so do the negative cases.
#[tokio::test]
async fn the_harness_finds_no_violation_in_our_answers() {
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let receiver_url = format!("http://{}", receiver.local_addr().unwrap());
    let server = TestServer::start_with(FakeGenerator::default(), config_allowing_callbacks(&[&receiver_url])).await;
    let briefs = bidder::harness::read_briefs(&repo_path("tests/fixtures/briefs")).unwrap();
    let signer = bidder::harness::Signer { key: Some(API_KEY.into()), secret: Some(SECRET_CURRENT.into()) };
    for dispatch in [Dispatch::Sync, Dispatch::Async { receiver }] {
        let name = if matches!(dispatch, Dispatch::Sync) { "sync" } else { "async" };
        let url = format!("{}/aitasker", server.url);
        let report = bidder::harness::run(&url, &briefs, &signer, Duration::from_secs(60), dispatch).await.unwrap();
        let table = report.render();
        assert_eq!(report.violations(), 0, "{name}:\n{table}");
        assert_eq!(report.rows.len(), 2 * briefs.len(), "{table}");
        assert!(report.rows.iter().all(|r| r.status == 200 && r.checks.1 >= 3), "{table}");
        let cases: Vec<&str> = report.negatives.iter().map(|(case, _)| case.as_str()).collect();
        assert_eq!(cases, ["bad signature", "stale timestamp", "wrong key", "malformed JSON"]);
        assert!(table.contains("contract: every answer holds"), "{table}");
    }
}

/// `bidder harness` (the binary, with `args`) on the ad-copy fixture against `agent` served on
/// 127.0.0.1: its exit status and what it printed.
async fn harness_against(agent: axum::Router, args: &[&str]) -> (std::process::Output, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, agent).await });
    let briefs = tempfile::tempdir().unwrap();
    std::fs::write(briefs.path().join("ads.json"), serde_json::to_vec(&fixture_brief("ad-copy-google-ads")).unwrap())
        .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bidder"));
    command.args(["harness", "--url", &url, "--briefs"]).arg(briefs.path()).args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

/// An async agent that gets the exchange wrong: its 202 says nothing, it posts the callback
/// unsigned and never retries a refused one. `bidder harness --async` names each failure.
#[tokio::test]
async fn the_async_harness_names_a_broken_callback() {
    use axum::routing::post;
    let broken = axum::Router::new().route(
        "/execute",
        post(|body: axum::body::Bytes| async move {
            let brief: Value = serde_json::from_slice(&body).unwrap();
            let answer = json!({"task_id": brief["task_id"], "mode": brief["mode"], "status": "completed"});
            let url = brief["callback_url"].as_str().unwrap().to_string();
            tokio::spawn(async move { reqwest::Client::new().post(url).json(&answer).send().await });
            (axum::http::StatusCode::ACCEPTED, axum::Json(json!({"ok": true})))
        }),
    );
    let (output, stdout) = harness_against(
        broken,
        &["--async", "--receiver-listen", "127.0.0.1:0", "--timeout-secs", "3", "--secret", SECRET_CURRENT],
    )
    .await;
    assert!(!output.status.success(), "a broken async agent must fail the harness:\n{stdout}");
    for violation in [
        "the 202 must say accepted and name the task",
        "refused once (503) and never retried",
        "is not signed with the task's callback_secret",
    ] {
        assert!(stdout.contains(violation), "{violation:?} not named in:\n{stdout}");
    }
}

/// A deliberately broken agent: it bids above the budget, leaves out fields, accepts any
/// signature and answers malformed JSON with 200. `bidder harness` exits non-zero and names each
/// violation.
#[tokio::test]
async fn the_harness_exits_non_zero_naming_a_broken_agents_violations() {
    use axum::routing::post;
    let broken = axum::Router::new().route(
        "/execute",
        post(|body: axum::body::Bytes| async move {
            let task_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["task_id"].as_str().map(str::to_string))
                .unwrap_or_default();
            axum::Json(serde_json::json!({
                "task_id": task_id, "mode": "prototype", "status": "completed", "output": "text",
                "prototype_summary": "s", "agent_message": "m", "bid_price_usd": 9999.0, "cost_usd": 0.0,
                "artifacts": [], "token_usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0},
                "metadata": {"agent_version": "x", "model": "m", "latency_ms": 1, "truncated": false}
            }))
        }),
    );
    let (output, stdout) = harness_against(broken, &["--key", API_KEY, "--secret", SECRET_CURRENT]).await;
    assert!(!output.status.success(), "a broken agent must fail the harness:\n{stdout}");
    for violation in [
        "bid_price_usd 9999 is above the budget 15",
        "artifacts is not a non-empty array",
        "mode is \"prototype\" for \"final\"",
        "bad signature: answered 200, not 401",
        "malformed JSON: answered 200, not 400",
    ] {
        assert!(stdout.contains(violation), "{violation:?} not named in:\n{stdout}");
    }
    assert!(String::from_utf8_lossy(&output.stderr).contains("contract violation(s)"));
}

#[test]
fn sign_prints_the_platforms_headers_and_a_curl_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brief.json");
    let body = serde_json::to_vec(&fixture_brief("minimal-brief")).unwrap();
    std::fs::write(&path, &body).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bidder"))
        .args(["sign", "--secret", SECRET_CURRENT, "--key", API_KEY])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let signature = bidder::http::auth::sign(SECRET_CURRENT, &body);
    assert!(stdout.contains(&format!("X-AITasker-Signature: {signature}")), "{stdout}");
    assert!(stdout.contains("X-AITasker-Task-ID: 00000000-0000-0000-0000-00000000100b"), "{stdout}");
    assert!(stdout.contains("curl -sS -X POST") && stdout.contains("--data-binary @"), "{stdout}");
}
