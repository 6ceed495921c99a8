//! Requests meant to misuse the agent, over real HTTP on 127.0.0.1 with the fake engine: a
//! caller without the key cannot make us read its body, an answer goes only to the body that
//! asked for it, a task-id header cannot point a body at another task, too many requests at once
//! are shed, and a bug that panics costs one request its answer and nothing more. The flood and
//! slow-client tests against the real binary are in `hostile_traffic.rs`.

mod common;

use std::time::{Duration, Instant};

use bidder::config::ServerConfig;
use bidder::engine::fake::FakeGenerator;
use common::fake_server::*;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send `head` (a request line and headers, no body) on a fresh connection and read what comes
/// back within `limit`: the status line's code, or `None` if nothing came.
async fn status_without_sending_the_body(url: &str, head: String, limit: Duration) -> Option<String> {
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(limit, stream.read(&mut answer)).await.ok()?.ok()?;
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    answer.split_whitespace().nth(1).map(str::to_string)
}

#[tokio::test]
async fn a_caller_without_the_key_is_refused_before_its_body_is_read() {
    let server = TestServer::start(FakeGenerator::default()).await;
    // A megabyte announced and never sent: only the headers can be answered.
    let head = |key: &str| {
        format!(
            "POST /execute HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
             X-AITasker-Key: {key}\r\nContent-Length: 1000000\r\n\r\n"
        )
    };
    for key in ["ait_wrong", ""] {
        let started = Instant::now();
        let status = status_without_sending_the_body(&server.url, head(key), Duration::from_secs(2)).await;
        assert_eq!(status.as_deref(), Some("401"), "key {key:?}: answered without waiting for the body");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    // With the right key and signature headers the body is waited for (it never arrives).
    let signed = head(API_KEY).replace(
        "\r\n\r\n",
        &format!("\r\nX-AITasker-Timestamp: {}\r\nX-AITasker-Signature: {}\r\n\r\n", unix_now(), "ab".repeat(32)),
    );
    let status = status_without_sending_the_body(&server.url, signed, Duration::from_millis(500)).await;
    assert_eq!(status, None, "with the key, the agent waits for the body");
    assert_eq!(server.fake.calls(), 0);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_its_connection_closed() {
    let config = ServerConfig { body_timeout: Duration::from_secs(1), ..server_config() };
    let server = TestServer::start_with(FakeGenerator::default(), config).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    let head = format!(
        "POST /execute HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nX-AITasker-Key: {API_KEY}\r\n\
         X-AITasker-Timestamp: {}\r\nX-AITasker-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        unix_now(),
        bidder::http::auth::sign(SECRET_CURRENT, &body),
        body.len()
    );
    let started = Instant::now();
    let status = status_without_sending_the_body(&server.url, head, Duration::from_secs(3)).await;
    assert_eq!(status.as_deref(), Some("408"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(2), "{waited:?}");
}

#[tokio::test]
async fn a_different_body_under_a_task_id_already_answered_gets_409_not_its_answer() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let brief = fixture_brief("minimal-brief");
    let first = with_mode(&brief, "prototype");
    let (status, answer) = json_of(post_execute(&client(), &server.url, first.clone(), &Signed::default()).await).await;
    assert_eq!(status, 200, "{answer}");
    let calls = server.fake.calls();

    let mut other = brief.clone();
    other["description"] = "Ten slogans for a tyre shop instead, please, in capital letters.".into();
    let (status, body) =
        json_of(post_execute(&client(), &server.url, with_mode(&other, "prototype"), &Signed::default()).await).await;
    assert_error(status, &body, 409, "conflict");
    assert_eq!(server.fake.calls(), calls, "no work for a conflicting body");
    // The same body, re-signed with a fresh timestamp as the platform retries, replays.
    let (status, replay) = json_of(post_execute(&client(), &server.url, first, &Signed::default()).await).await;
    assert_eq!((status, &replay), (200, &answer));
}

#[tokio::test]
async fn a_task_id_header_naming_another_task_is_refused() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    let response = client()
        .post(format!("{}/execute", server.url))
        .header("content-type", "application/json")
        .header("x-aitasker-key", API_KEY)
        .header("x-aitasker-task-id", "00000000-0000-0000-0000-00000000beef")
        .header("x-aitasker-timestamp", unix_now().to_string())
        .header("x-aitasker-signature", bidder::http::auth::sign(SECRET_CURRENT, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 422, "task_id_mismatch");
    assert_eq!(server.fake.calls(), 0);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_shed_with_429() {
    let fake = FakeGenerator::default().with_words(60).with_word_delay(Duration::from_millis(20));
    let config = ServerConfig { max_in_flight: 1, ..server_config() };
    let server = TestServer::start_with(fake, config).await;
    let mut running = fixture_brief("minimal-brief");
    running["task_id"] = "00000000-0000-0000-0000-0000000000f1".into();
    let url = server.url.clone();
    let first = tokio::spawn(async move {
        post_execute(&client(), &url, with_mode(&running, "prototype"), &Signed::default()).await.status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = fixture_brief("minimal-brief");
    second["task_id"] = "00000000-0000-0000-0000-0000000000f2".into();
    let started = Instant::now();
    let response = post_execute(&client(), &server.url, with_mode(&second, "prototype"), &Signed::default()).await;
    assert!(started.elapsed() < Duration::from_millis(500), "shed at once, not queued: {:?}", started.elapsed());
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 429, "too_many_requests");
    // `/health` is not counted against the limit.
    let health = client().get(format!("{}/health", server.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn a_handler_that_panics_answers_500_and_the_server_keeps_serving() {
    let server = TestServer::start(FakeGenerator::default().panicking()).await;
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    for attempt in 1..=2 {
        let (status, json) =
            json_of(post_execute(&client(), &server.url, body.clone(), &Signed::default()).await).await;
        assert_error(status, &json, 500, "internal_error");
        assert!(!json.to_string().contains("panic"), "the cause stays in the log: {json}");
        assert_eq!(server.fake.calls(), attempt, "a panic is not stored: the retry runs again");
    }
    let (status, health): (u16, Value) =
        json_of(client().get(format!("{}/health", server.url)).send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}
