//! Async mode (protocol §7) end to end over real HTTP on 127.0.0.1: the agent acknowledges a
//! dispatch with a callback at once, works in the background, and POSTs the answer to a local
//! receiver that checks the signature the way the platform would; retries, refusals, the
//! task's deadline, duplicates bound to their body, callbacks the guard refuses, a task that
//! panics, and shutdown. The fake engine stands behind the trait. Receivers listen on
//! 127.0.0.1, which the callback guard refuses unless the test allows their origin.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bidder::engine::fake::FakeGenerator;
use common::fake_server::*;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const CALLBACK_SECRET: &str = "cbsec_per_task_secret_0042";

/// One POST the receiver saw.
#[derive(Debug, Clone)]
struct Delivery {
    at: Instant,
    signature_valid: bool,
    timestamp: Option<i64>,
    task_id: Option<String>,
    body: Value,
    answered: u16,
}

/// A stand-in for the platform's callback endpoint: it verifies every POST's signature with
/// the task's secret, records it, and answers from a script (the last status repeats).
#[derive(Clone)]
struct Receiver {
    url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let script = Arc::new(script.to_vec());
        let app = axum::Router::new()
            .route("/callback", axum::routing::post(receive))
            .with_state((deliveries.clone(), script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, deliveries }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Wait until `n` POSTs were accepted (2xx), or panic after `limit`.
    async fn wait_for_accepted(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let seen = self.deliveries();
            if seen.iter().filter(|d| d.answered < 300).count() >= n {
                return seen;
            }
            assert!(started.elapsed() < limit, "{n} accepted callback(s) not seen within {limit:?}: {seen:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

type ReceiverState = (Arc<Mutex<Vec<Delivery>>>, Arc<Vec<u16>>);

async fn receive(State((deliveries, script)): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let signature_valid = header("x-aitasker-signature").and_then(|hex| hex::decode(hex).ok()).is_some_and(|sig| {
        let mut mac = Hmac::<Sha256>::new_from_slice(CALLBACK_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        mac.verify_slice(&sig).is_ok()
    });
    let mut deliveries = deliveries.lock().unwrap();
    let answered = *script.get(deliveries.len()).or(script.last()).unwrap();
    deliveries.push(Delivery {
        at: Instant::now(),
        signature_valid,
        timestamp: header("x-aitasker-timestamp").and_then(|t| t.parse().ok()),
        task_id: header("x-aitasker-task-id"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

fn async_brief(task_id: &str, callback_url: &str, timeout_secs: u64) -> Vec<u8> {
    let mut brief = fixture_brief("minimal-brief");
    brief["task_id"] = task_id.into();
    brief["mode"] = "prototype".into();
    brief["execution_mode"] = "async".into();
    brief["callback_url"] = callback_url.into();
    brief["callback_secret"] = CALLBACK_SECRET.into();
    brief["execution_timeout_seconds"] = timeout_secs.into();
    serde_json::to_vec(&brief).unwrap()
}

/// The fake takes about a second per model call (a list brief makes several), so "at once" and
/// "in the background" differ.
fn slow_fake() -> FakeGenerator {
    FakeGenerator::default().with_words(40).with_word_delay(Duration::from_millis(25))
}

#[tokio::test]
async fn an_async_task_is_acknowledged_at_once_then_delivered_signed_after_retries() {
    // The receiver is down twice (503, then 502) before it takes the answer.
    let receiver = Receiver::start(&[503, 502, 200]).await;
    let server = TestServer::start_with(slow_fake(), config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a501";

    let started = Instant::now();
    let (status, ack) = json_of(
        post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await,
    )
    .await;
    assert_eq!(status, 202, "{ack}");
    assert!(started.elapsed() < Duration::from_millis(500), "the acknowledgement took {:?}", started.elapsed());
    assert_eq!(ack, json!({"status": "accepted", "task_id": task_id, "mode": "prototype"}));
    assert!(receiver.deliveries().is_empty(), "nothing is delivered before the work is done");

    let deliveries = receiver.wait_for_accepted(1, Duration::from_secs(30)).await;
    let statuses: Vec<u16> = deliveries.iter().map(|d| d.answered).collect();
    assert_eq!(statuses, [503, 502, 200], "transient failures are retried until accepted");
    for delivery in &deliveries {
        assert!(delivery.signature_valid, "every attempt is signed with the task's secret: {delivery:?}");
        assert_eq!(delivery.task_id.as_deref(), Some(task_id));
        let timestamp = delivery.timestamp.expect("a timestamp header");
        assert!((timestamp - unix_now()).abs() <= 5, "a current timestamp: {timestamp}");
        assert_contract_response(&delivery.body, task_id, "prototype");
    }
    // The same answer each time, and the one a synchronous call gets.
    assert_eq!(deliveries[0].body, deliveries[2].body);
    let gaps: Vec<Duration> = deliveries.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(400) && gaps[1] > gaps[0], "backoff grows: {gaps:?}");
    let calls = server.fake.calls();

    // The platform did not see our 202 and dispatches again: the stored answer is delivered
    // again, without new work.
    let (status, _) = json_of(
        post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await,
    )
    .await;
    assert_eq!(status, 202);
    let deliveries = receiver.wait_for_accepted(2, Duration::from_secs(10)).await;
    assert_eq!(deliveries.last().unwrap().body, deliveries[0].body);
    assert_eq!(server.fake.calls(), calls, "a redelivery does no new work");

    let metrics = server.metrics().await;
    for needle in [
        "bidder_callbacks_total{outcome=\"delivered\"}",
        "bidder_callback_attempts_total",
        "bidder_http_requests_total{method=\"POST\",route=\"/execute\",status=\"202\"}",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
}

#[tokio::test]
async fn a_dispatch_repeated_while_the_task_runs_is_acknowledged_without_new_work() {
    let receiver = Receiver::start(&[200]).await;
    let server = TestServer::start_with(slow_fake(), config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a502";
    for _ in 0..3 {
        let response =
            post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await;
        assert_eq!(response.status(), 202);
    }
    receiver.wait_for_accepted(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.deliveries().len(), 1, "one task, one delivery: {:#?}", receiver.deliveries());

    // A synchronous call of the same task and phase is another body: it gets no answer of this
    // task's, and no work is done for it.
    let mut sync_brief: Value = serde_json::from_slice(&async_brief(task_id, "", 60)).unwrap();
    for field in ["callback_url", "callback_secret", "execution_mode"] {
        sync_brief.as_object_mut().unwrap().remove(field);
    }
    let calls = server.fake.calls();
    let (status, body) = json_of(
        post_execute(&client(), &server.url, serde_json::to_vec(&sync_brief).unwrap(), &Signed::default()).await,
    )
    .await;
    assert_error(status, &body, 409, "conflict");
    assert_eq!(server.fake.calls(), calls);
}

/// A signed body that reuses a task id gets neither that task's answer nor a delivery to its
/// own callback: 409 while the task runs and after it was answered.
#[tokio::test]
async fn a_different_body_with_a_task_id_already_used_gets_409_and_no_delivery() {
    let receiver = Receiver::start(&[200]).await;
    let other = Receiver::start(&[200]).await;
    let config = config_allowing_callbacks(&[&receiver.url, &other.url]);
    let server = TestServer::start_with(slow_fake(), config).await;
    let task_id = "00000000-0000-0000-0000-00000000a509";
    let first = async_brief(task_id, &receiver.url, 60);
    assert_eq!(post_execute(&client(), &server.url, first.clone(), &Signed::default()).await.status(), 202);
    let mut second: Value = serde_json::from_slice(&async_brief(task_id, &other.url, 60)).unwrap();
    second["description"] = "Write something else entirely for this same task id.".into();
    let second = serde_json::to_vec(&second).unwrap();
    for when in ["while the task runs", "after it was answered"] {
        let (status, body) =
            json_of(post_execute(&client(), &server.url, second.clone(), &Signed::default()).await).await;
        assert_error(status, &body, 409, "conflict");
        if when == "while the task runs" {
            receiver.wait_for_accepted(1, Duration::from_secs(30)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other.deliveries().is_empty(), "the other body's callback got a delivery: {:#?}", other.deliveries());
    // The same body still gets its own answer again.
    assert_eq!(post_execute(&client(), &server.url, first, &Signed::default()).await.status(), 202);
    let deliveries = receiver.wait_for_accepted(2, Duration::from_secs(10)).await;
    assert_eq!(deliveries[0].body, deliveries[1].body);
}

/// Callback URLs come from the brief: private, internal and unlisted local origins are refused
/// with 422 before any work, and nothing is ever sent to them.
#[tokio::test]
async fn a_callback_to_a_private_or_unlisted_address_is_refused_before_any_work() {
    let receiver = Receiver::start(&[200]).await;
    let server = TestServer::start(FakeGenerator::default()).await;
    let port = reqwest::Url::parse(&receiver.url).unwrap().port().unwrap();
    let task = "00000000-0000-0000-0000-00000000a510";
    for url in [
        receiver.url.clone(), // a live receiver, but on a loopback origin nobody allowed
        format!("http://localhost:{port}/callback"),
        format!("https://127.0.0.1:{port}/callback"),
        "https://10.0.0.7/callback".to_string(),
        "https://0.0.0.0/callback".to_string(),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://metadata.google.internal/callback".to_string(),
        "https://queue.internal/callback".to_string(),
        "https://[::1]/callback".to_string(),
    ] {
        let (status, body) =
            json_of(post_execute(&client(), &server.url, async_brief(task, &url, 60), &Signed::default()).await).await;
        assert_error(status, &body, 422, "invalid_field");
        assert!(body["detail"].as_str().unwrap().contains("callback_url"), "{url}: {body}");
    }
    assert_eq!(server.fake.calls(), 0, "no work for a callback that would not be made");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.deliveries().is_empty(), "{:#?}", receiver.deliveries());

    // Pinned to the platform's domains, even a public host elsewhere is refused.
    let pinned = bidder::config::ServerConfig {
        callbacks: bidder::callback::CallbackPolicy { domains: vec!["aitasker.co".into()], ..Default::default() },
        ..server_config()
    };
    let server = TestServer::start_with(FakeGenerator::default(), pinned).await;
    let brief = async_brief(task, "https://collector.example.com/callback", 60);
    let (status, body) = json_of(post_execute(&client(), &server.url, brief, &Signed::default()).await).await;
    assert_error(status, &body, 422, "invalid_field");
}

/// The client itself holds the line, whatever its caller checked: a forbidden receiver is
/// never contacted.
#[tokio::test]
async fn the_callback_client_never_contacts_a_forbidden_receiver() {
    let receiver = Receiver::start(&[200]).await;
    let port = reqwest::Url::parse(&receiver.url).unwrap().port().unwrap();
    let client = bidder::callback::CallbackClient::default();
    for url in [receiver.url.clone(), format!("http://localhost:{port}/callback")] {
        let callback = bidder::protocol::Callback { url: url.parse().unwrap(), secret: CALLBACK_SECRET.into() };
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = client.deliver(&callback, "t", b"{}", deadline).await.unwrap_err();
        assert!(matches!(err, bidder::callback::CallbackError::Forbidden(_)), "{url}: {err}");
    }
    assert!(receiver.deliveries().is_empty(), "{:#?}", receiver.deliveries());
}

/// A task whose work panics still tells the platform it failed, and frees its task id: a retry
/// runs again instead of being told "running" forever.
#[tokio::test]
async fn a_panicking_async_task_reports_failure_and_a_retry_runs_again() {
    let receiver = Receiver::start(&[200]).await;
    let fake = FakeGenerator::default().panicking();
    let server = TestServer::start_with(fake, config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a511";
    for attempt in 1..=2 {
        let response =
            post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await;
        assert_eq!(response.status(), 202, "attempt {attempt}");
        let deliveries = receiver.wait_for_accepted(attempt, Duration::from_secs(10)).await;
        let delivery = deliveries.last().unwrap();
        assert_eq!(
            (delivery.body["status"].as_str(), delivery.body["error"].as_str()),
            (Some("failed"), Some("internal_error"))
        );
        assert!(server.fake.calls() >= attempt, "attempt {attempt} did no work");
    }
    let metrics = server.metrics().await;
    assert!(metrics.contains("bidder_background_tasks 0"), "no task left running:\n{metrics}");
}

#[tokio::test]
async fn a_refused_callback_is_not_retried_and_a_dead_receiver_is_given_up_at_the_deadline() {
    // 401: the receiver does not accept our signature; retrying cannot change that.
    let refusing = Receiver::start(&[401]).await;
    // Always 503.
    let dead = Receiver::start(&[503]).await;
    let config = config_allowing_callbacks(&[&refusing.url, &dead.url]);
    let server = TestServer::start_with(FakeGenerator::default(), config).await;
    let task = "00000000-0000-0000-0000-00000000a503";
    let response = post_execute(&client(), &server.url, async_brief(task, &refusing.url, 60), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(refusing.deliveries().len(), 1, "a refusal is final: {:#?}", refusing.deliveries());

    // A 4 s limit for the whole task: attempts stop before it.
    let task = "00000000-0000-0000-0000-00000000a504";
    let dispatched = Instant::now();
    let response = post_execute(&client(), &server.url, async_brief(task, &dead.url, 4), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let attempts = dead.deliveries();
    assert!(attempts.len() >= 3, "retried while time was left: {} attempt(s)", attempts.len());
    let last = attempts.last().unwrap().at - dispatched;
    assert!(last < Duration::from_secs(4), "an attempt after the task's deadline: {last:?}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("bidder_callbacks_total{outcome=\"refused\"}"), "{metrics}");
    assert!(metrics.contains("bidder_callbacks_total{outcome=\"deadline_passed\"}"), "{metrics}");
}

#[tokio::test]
async fn a_failed_async_task_tells_the_platform_instead_of_leaving_it_waiting() {
    let receiver = Receiver::start(&[200]).await;
    let server =
        TestServer::start_with(FakeGenerator::default().failing(), config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a505";
    let response =
        post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    let delivery = receiver.wait_for_accepted(1, Duration::from_secs(10)).await.remove(0);
    assert!(delivery.signature_valid);
    assert_eq!(delivery.body["status"], "failed", "{}", delivery.body);
    assert_eq!(delivery.body["task_id"], task_id);
    assert_eq!(delivery.body["error"], "internal_error");
    assert!(!delivery.body.to_string().contains("fake"), "the cause stays in the log: {}", delivery.body);
}

#[tokio::test]
async fn a_bad_callback_is_refused_before_any_work() {
    let server = TestServer::start(FakeGenerator::default()).await;
    let task = "00000000-0000-0000-0000-00000000a506";
    for (url, secret) in [
        ("http://example.com/callback", Some(CALLBACK_SECRET)), // plain HTTP
        ("not a url", Some(CALLBACK_SECRET)),
        ("https://platform.example/callback", None), // a callback nobody could verify
    ] {
        let mut brief: Value = serde_json::from_slice(&async_brief(task, url, 60)).unwrap();
        match secret {
            Some(secret) => brief["callback_secret"] = secret.into(),
            None => {
                brief.as_object_mut().unwrap().remove("callback_secret");
            }
        }
        let (status, body) = json_of(
            post_execute(&client(), &server.url, serde_json::to_vec(&brief).unwrap(), &Signed::default()).await,
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("callback"), "{body}");
    }
    assert_eq!(server.fake.calls(), 0);
}

#[tokio::test]
async fn shutdown_waits_for_an_async_task_to_deliver() {
    // A second or two of work in all, inside the 5 s drain deadline.
    let fake = FakeGenerator::default().with_words(20).with_word_delay(Duration::from_millis(15));
    let receiver = Receiver::start(&[200]).await;
    let mut server = TestServer::start_with(fake, config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a507";
    let response =
        post_execute(&client(), &server.url, async_brief(task_id, &receiver.url, 60), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    // The acknowledgement is out and the connection closed; the work goes on.
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.server).await.expect("server stopped").unwrap().unwrap();
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "delivered before the server stopped: {deliveries:#?}");
    assert_contract_response(&deliveries[0].body, task_id, "prototype");
}

/// The platform's limit is its number, not ours to trust: an absurd one is still a task.
#[tokio::test]
async fn an_absurd_execution_timeout_is_still_answered() {
    let receiver = Receiver::start(&[200]).await;
    let server = TestServer::start_with(FakeGenerator::default(), config_allowing_callbacks(&[&receiver.url])).await;
    let task_id = "00000000-0000-0000-0000-00000000a508";
    let mut brief: Value = serde_json::from_slice(&async_brief(task_id, &receiver.url, 60)).unwrap();
    brief["execution_timeout_seconds"] = json!(u64::MAX);
    let response = post_execute(&client(), &server.url, serde_json::to_vec(&brief).unwrap(), &Signed::default()).await;
    assert_eq!(response.status(), 202);
    let delivery = receiver.wait_for_accepted(1, Duration::from_secs(10)).await.remove(0);
    assert_contract_response(&delivery.body, task_id, "prototype");
}
