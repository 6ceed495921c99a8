//! Traffic meant to take the agent down, against the real binary on 127.0.0.1: thousands of
//! unauthenticated requests with made-up methods and paths must not grow `/metrics` or memory,
//! and 200 clients trickling their headers or bodies a byte at a time must not slow `/health`
//! and are closed at their timeout. Bounded in count and time; needs the default model.

// The turn lock only orders whole tests, each on its own thread and runtime; holding it across
// their awaits is the point.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::real_server::Server;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// These tests time a 2-core machine: they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A small deterministic generator: the test needs variety, not randomness.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An HTTP token of 3–10 upper-case letters and digits: a valid, made-up method.
    fn method(&mut self) -> reqwest::Method {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let len = 3 + (self.next() % 8) as usize;
        let name: Vec<u8> = (0..len).map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize]).collect();
        reqwest::Method::from_bytes(&name).unwrap()
    }
}

/// Series in a Prometheus text page: its sample lines.
fn series(metrics: &str) -> usize {
    metrics.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count()
}

/// `count` requests without a key, with made-up methods and paths, 32 at a time.
async fn flood(url: &str, count: usize, seed: u64) {
    let client = reqwest::Client::new();
    let generator = Arc::new(std::sync::Mutex::new(Xorshift(seed)));
    let workers = (0..32).map(|_| {
        let (client, url, generator) = (client.clone(), url.to_string(), generator.clone());
        tokio::spawn(async move {
            for _ in 0..count / 32 {
                let (method, path) = {
                    let mut generator = generator.lock().unwrap();
                    let path = match generator.next() % 3 {
                        0 => "/execute".to_string(),
                        1 => format!("/aitasker/{}", generator.next() % 1_000_000),
                        _ => format!("/{}/{}", generator.next(), generator.next() % 97),
                    };
                    (generator.method(), path)
                };
                let response = client.request(method, format!("{url}{path}")).send().await.expect("answered");
                assert!(response.status().is_client_error(), "{path}: {}", response.status());
            }
        })
    });
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_without_a_key_grow_neither_metrics_nor_memory() {
    let _turn = take_turn();
    let mut server = Server::start(&[]);
    server.wait_until_ready().await;
    // Warm up: every label the flood can produce exists, allocator pools are sized.
    flood(&server.url, 2_000, 0x9e37_79b9_7f4a_7c15).await;
    let before = (series(&server.metrics().await), server.rss_bytes());
    flood(&server.url, 20_000, 0xd1b5_4a32_d192_ed03).await;
    let metrics = server.metrics().await;
    let after = (series(&metrics), server.rss_bytes());
    eprintln!("series {} -> {}, RSS {} -> {} KiB", before.0, after.0, before.1 / 1024, after.1 / 1024);

    // Methods become GET/POST/HEAD/other and unknown paths "unmatched": a fixed set, whatever
    // is sent.
    assert!(after.0 < 200, "{} series after 22 000 made-up requests:\n{metrics}", after.0);
    assert_eq!(after.0, before.0, "the flood added series:\n{metrics}");
    assert!(metrics.contains(r#"bidder_http_requests_total{method="other",route="unmatched",status="404"}"#));
    let grown = after.1.saturating_sub(before.1);
    assert!(grown < 4 * 1024 * 1024, "RSS grew {} KiB over 20 000 requests", grown / 1024);
    assert!(server.child.try_wait().unwrap().is_none(), "the server is still running");
}

/// How a slow client sends its request.
#[derive(Clone, Copy, Debug)]
enum Trickle {
    /// A request line, then header bytes one at a time, never ending the headers.
    Headers,
    /// Complete, signed headers announcing a body, then the body a byte at a time.
    Body,
}

/// What happened to one slow client: when the server closed it, and how it answered first.
struct Closed {
    after: Duration,
    answer: String,
}

/// Open a connection to `address` and trickle `how` one byte every 100 ms until the server
/// closes it (or `give_up` passes).
async fn slow_client(address: String, how: Trickle, give_up: Duration) -> Option<Closed> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.expect("connected");
    let body = with_mode(&fixture_brief("minimal-brief"), "prototype");
    let head = match how {
        Trickle::Headers => "POST /execute HTTP/1.1\r\nHost: agent\r\nX-Slow: ".to_string(),
        Trickle::Body => format!(
            "POST /execute HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
             X-AITasker-Key: {API_KEY}\r\nX-AITasker-Timestamp: {}\r\nX-AITasker-Signature: {}\r\n\
             Content-Length: {}\r\n\r\n",
            unix_now(),
            bidder::http::auth::sign(SECRET_CURRENT, &body),
            body.len()
        ),
    };
    let (mut reader, mut writer) = stream.split();
    let first = match how {
        Trickle::Headers => &head.as_bytes()[..1],
        Trickle::Body => head.as_bytes(),
    };
    writer.write_all(first).await.expect("the first bytes are taken");
    let mut rest = match how {
        Trickle::Headers => head.as_bytes()[1..].iter().copied().chain(std::iter::repeat(b'a')).take(10_000).collect(),
        Trickle::Body => body.clone(),
    }
    .into_iter();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(Closed { after: started.elapsed(), answer: String::from_utf8_lossy(&answer).into_owned() }),
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            _ = tick.tick() => {
                if started.elapsed() > give_up {
                    return None;
                }
                if let Some(byte) = rest.next() {
                    // A refused write means the server has closed; the read says so next.
                    let _ = writer.write_all(&[byte]).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_at_their_timeout_and_health_stays_fast_meanwhile() {
    let _turn = take_turn();
    let timeout = Duration::from_secs(2);
    let mut server = Server::start(&["--header-timeout-secs", "2", "--body-timeout-secs", "2"]);
    server.wait_until_ready().await;
    let address = server.url.trim_start_matches("http://").to_string();

    let clients: Vec<_> = (0..200)
        .map(|i| {
            let how = if i % 2 == 0 { Trickle::Headers } else { Trickle::Body };
            (how, tokio::spawn(slow_client(address.clone(), how, Duration::from_secs(8))))
        })
        .collect();

    // Probe /health from a thread and runtime of its own while they trickle.
    let health = format!("{}/health", server.url);
    let probes = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(1800) {
                let sent = Instant::now();
                let status = client.get(&health).send().await.expect("health answers").status();
                latencies.push(sent.elapsed());
                assert_eq!(status, 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    });
    let mut latencies = probes.join().unwrap();
    latencies.sort();
    let slowest = *latencies.last().unwrap();
    assert!(latencies.len() > 30, "only {} probes", latencies.len());
    assert!(slowest < Duration::from_millis(50), "/health took {slowest:?} with 200 slow clients: {latencies:?}");

    for (how, client) in clients {
        let closed = client.await.unwrap().unwrap_or_else(|| panic!("a {how:?} trickler was never closed"));
        assert!(
            closed.after >= timeout - Duration::from_millis(200) && closed.after < timeout + Duration::from_secs(2),
            "a {how:?} trickler was closed after {:?}, not at the {timeout:?} timeout",
            closed.after
        );
        if let Trickle::Body = how {
            assert!(closed.answer.starts_with("HTTP/1.1 408"), "a slow body is told why: {:?}", closed.answer);
            assert!(closed.answer.contains("request_timeout"), "{:?}", closed.answer);
        }
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the server is still running");
}
