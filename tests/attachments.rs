//! Attachment fetching against a local server: what comes back, and what the guard refuses.
//! Every private address named here is refused before any connection; the only server ever
//! contacted is the one on 127.0.0.1, and its request counter proves when it was not.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bidder::attachments::{AttachmentPolicy, AttachmentReport, fetch_attachments};
use bidder::egress::AllowList;
use bidder::protocol::Attachment;

const CSV: &str = "region,total\nnorth,10\nsouth,7\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const SECRET: &str = "X-Amz-Signature=deadbeefsecret";

/// Requests received, by path.
type Hits = Arc<Mutex<HashMap<String, usize>>>;

struct Server {
    addr: SocketAddr,
    hits: Hits,
}

impl Server {
    async fn start() -> Self {
        let hits = Hits::default();
        let app = Router::new()
            .route("/sales.csv", get(|| async { ([(header::CONTENT_TYPE, "text/csv")], CSV) }))
            .route("/bom.csv", get(|| async { format!("\u{feff}{CSV}") }))
            .route("/big.csv", get(|| async { "a,b\n".repeat(1024) }))
            // No Content-Length: the limit must hold while the body streams.
            .route(
                "/big-stream.csv",
                get(|| async {
                    let chunks = futures_util::stream::iter(
                        (0..256).map(|_| Ok::<_, Infallible>(Bytes::from_static(b"0123456789abcdef\n"))),
                    );
                    Body::from_stream(chunks)
                }),
            )
            .route("/logo.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG) }))
            .route(
                "/slow.csv",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    CSV
                }),
            )
            .route("/missing.csv", get(|| async { StatusCode::NOT_FOUND }))
            .route("/hop", get(|| async { Redirect::temporary("/sales.csv") }))
            .route("/loop", get(|| async { Redirect::temporary("/loop") }))
            .route("/to-private", get(|| async { Redirect::temporary("http://10.0.0.1/secret.csv") }))
            .route("/to-metadata", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }))
            .route("/to-mapped", get(|| async { Redirect::temporary("https://[::ffff:192.168.0.1]/x.csv") }))
            .route(
                "/to-gcp",
                get(|| async { Redirect::temporary("http://metadata.google.internal/computeMetadata/v1/") }),
            )
            .layer(axum::middleware::from_fn_with_state(hits.clone(), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn count(State(hits): State<Hits>, request: Request, next: axum::middleware::Next) -> Response {
    *hits.lock().unwrap().entry(request.uri().path().to_string()).or_default() += 1;
    next.run(request).await.into_response()
}

fn attachment(filename: &str, url: &str, content_type: &str) -> Attachment {
    Attachment { filename: filename.into(), url: url.into(), content_type: content_type.into() }
}

/// Only `entries` allowed, with a short deadline so that no test can run long.
fn allowing(entries: &[String]) -> AttachmentPolicy {
    AttachmentPolicy {
        allow: AllowList::parse(entries).unwrap(),
        timeout: Duration::from_secs(2),
        ..AttachmentPolicy::default()
    }
}

/// The local server's origin allowed: plain http, its port.
fn allowed(server: &Server) -> AttachmentPolicy {
    allowing(&[format!("http://{}", server.addr)])
}

async fn fetch_one(attachment: Attachment, policy: &AttachmentPolicy) -> AttachmentReport {
    fetch_attachments(&[attachment], policy).await
}

fn only_failure(report: &AttachmentReport) -> &str {
    assert!(report.fetched.is_empty(), "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    &report.failures[0]
}

#[tokio::test]
async fn an_allowed_host_serves_csv_text() {
    let server = Server::start().await;
    let report = fetch_attachments(
        &[
            attachment("sales.csv", &server.url("/sales.csv"), "text/csv"),
            attachment("", &server.url("/bom.csv"), ""),
            attachment("hopped.csv", &server.url("/hop"), "text/csv"),
        ],
        &allowed(&server),
    )
    .await;
    assert!(report.failures.is_empty(), "{report:?}");
    let names: Vec<&str> = report.fetched.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["sales.csv", "bom.csv", "hopped.csv"]);
    for fetched in &report.fetched {
        assert_eq!((fetched.text.as_str(), fetched.content_type.as_str()), (CSV, "text/csv"));
    }
}

#[tokio::test]
async fn the_same_link_without_the_allowance_is_private() {
    let server = Server::start().await;
    let started = Instant::now();
    let report =
        fetch_one(attachment("sales.csv", &server.url("/sales.csv"), "text/csv"), &AttachmentPolicy::default()).await;
    assert_eq!(only_failure(&report), "sales.csv could not be fetched (the address is private)");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(server.hits("/sales.csv"), 0, "the server must not have been contacted");
}

/// An allowed entry is one origin: the host on another port, or over plain http when the entry
/// does not say http, is guarded like any other address and never contacted.
#[tokio::test]
async fn an_allowed_origin_does_not_open_its_host_on_other_ports_or_schemes() {
    let server = Server::start().await;
    let link = attachment("sales.csv", &server.url("/sales.csv"), "text/csv");
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    // The right port over https only; the host on https's default port; plain http elsewhere.
    for entries in [vec![format!("127.0.0.1:{}", server.addr.port())], vec!["127.0.0.1".to_string()], vec![other_port]]
    {
        let report = fetch_one(link.clone(), &allowing(&entries)).await;
        assert_eq!(only_failure(&report), "sales.csv could not be fetched (the address is private)", "{entries:?}");
    }
    assert_eq!(server.hits("/sales.csv"), 0, "the server must not have been contacted");
    let report = fetch_one(link, &allowed(&server)).await;
    assert!(report.failures.is_empty(), "{report:?}");
}

#[tokio::test]
async fn private_and_metadata_addresses_are_refused_before_any_connection() {
    let links = [
        "https://192.168.1.10/x.csv",
        "https://169.254.169.254/latest",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/x.csv",
        "https://[::1]/x.csv",
        "https://[::ffff:127.0.0.1]/x.csv",
        "https://[fd00::1]/x.csv",
        "https://100.64.0.1/x.csv",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://localhost/x.csv",
    ];
    let attachments: Vec<Attachment> =
        links.iter().map(|l| attachment("x.csv", &format!("{l}?{SECRET}"), "text/csv")).collect();
    let started = Instant::now();
    let report =
        fetch_attachments(&attachments, &AttachmentPolicy { max_files: 20, ..AttachmentPolicy::default() }).await;
    // A connection attempt to any of these would hang until the deadline (10 s).
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(report.fetched.is_empty());
    assert_eq!(report.failures.len(), links.len());
    for failure in &report.failures {
        assert_eq!(failure, "x.csv could not be fetched (the address is private)");
    }
}

#[tokio::test]
async fn oversized_files_are_refused_with_or_without_a_length() {
    let server = Server::start().await;
    let policy = AttachmentPolicy { max_bytes: 1024, ..allowed(&server) };
    for path in ["/big.csv", "/big-stream.csv"] {
        let report = fetch_one(attachment("big.csv", &server.url(path), "text/csv"), &policy).await;
        assert_eq!(only_failure(&report), "big.csv could not be fetched (it is larger than the 1 KiB limit)", "{path}");
    }
}

#[tokio::test]
async fn non_text_files_are_skipped_or_refused() {
    let server = Server::start().await;
    let report = fetch_one(attachment("logo.png", &server.url("/logo.png"), "image/png"), &allowed(&server)).await;
    assert_eq!(only_failure(&report), "logo.png is not a text file; not used");
    let report = fetch_one(attachment("logo.png", &server.url("/logo.png"), ""), &allowed(&server)).await;
    assert_eq!(only_failure(&report), "logo.png is not a text file; not used");
    assert_eq!(server.hits("/logo.png"), 0, "a non-text file is never downloaded");
    // Named as text but binary inside: downloaded, then refused.
    let report =
        fetch_one(attachment("notes.txt", &server.url("/logo.png"), "application/octet-stream"), &allowed(&server))
            .await;
    assert_eq!(only_failure(&report), "notes.txt is not UTF-8 text; not used");
}

#[tokio::test]
async fn the_deadline_bounds_the_whole_fetch_and_keeps_what_arrived() {
    let server = Server::start().await;
    let policy = AttachmentPolicy { timeout: Duration::from_secs(1), ..allowed(&server) };
    let started = Instant::now();
    let report = fetch_attachments(
        &[
            attachment("slow.csv", &server.url("/slow.csv"), "text/csv"),
            attachment("sales.csv", &server.url("/sales.csv"), "text/csv"),
        ],
        &policy,
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(report.fetched.len(), 1, "{report:?}");
    assert_eq!(report.fetched[0].text, CSV);
    assert_eq!(report.failures, ["slow.csv could not be fetched (it took longer than 1 s)"]);
}

#[tokio::test]
async fn redirects_from_an_allowed_host_to_private_addresses_are_refused() {
    let server = Server::start().await;
    for path in ["/to-private", "/to-metadata", "/to-mapped", "/to-gcp"] {
        let started = Instant::now();
        let report = fetch_one(attachment("data.csv", &server.url(path), "text/csv"), &allowed(&server)).await;
        assert_eq!(
            only_failure(&report),
            "data.csv could not be fetched (it redirects to a private address)",
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{path}: {:?}", started.elapsed());
        assert_eq!(server.hits(path), 1);
    }
    let report = fetch_one(attachment("loop.csv", &server.url("/loop"), "text/csv"), &allowed(&server)).await;
    assert_eq!(only_failure(&report), "loop.csv could not be fetched (the server redirected more than 3 times)");
    assert_eq!(server.hits("/loop"), 4, "the first request and three redirects");
}

#[tokio::test]
async fn notes_never_carry_the_signed_query_and_extra_files_are_named() {
    let server = Server::start().await;
    let report = fetch_attachments(
        &[
            attachment("", &format!("{}?{SECRET}", server.url("/missing.csv")), "text/csv"),
            attachment("", &format!("http://files.example.com/export.csv?{SECRET}"), "text/csv"),
            attachment("third.csv", &server.url("/sales.csv"), "text/csv"),
        ],
        &AttachmentPolicy { max_files: 2, ..allowed(&server) },
    )
    .await;
    assert!(report.fetched.is_empty(), "{report:?}");
    assert_eq!(
        report.failures,
        [
            "missing.csv could not be fetched (the server answered 404)",
            "export.csv could not be fetched (only https links are fetched)",
            "third.csv was not used (only the first 2 attachments are read)",
        ]
    );
    assert!(report.failures.iter().all(|f| !f.contains("deadbeef") && !f.contains("://")), "{report:?}");
    assert_eq!(server.hits("/sales.csv"), 0);
}

/// Through the whole pipeline: a data brief whose table arrives as an attachment is analysed
/// from it, and a refused attachment is a note to the buyer, not a failed bid.
#[tokio::test]
async fn a_csv_attachment_is_analysed_and_a_refused_one_is_only_noted() {
    use bidder::config::StrategyConfig;
    use bidder::engine::fake::FakeGenerator;
    use bidder::pipeline::{PhaseRoutes, Pipeline};

    let server = Server::start().await;
    let strategy = StrategyConfig { attachments: allowed(&server), ..StrategyConfig::default() };
    let pipeline = Pipeline::new(PhaseRoutes::single(Arc::new(FakeGenerator::default())), strategy);
    let brief = serde_json::json!({
        "task_id": "t-attach", "mode": "final", "title": "Summarise our sales", "category": "data",
        "task_type": "data-analysis-summary", "description": "Summarise the attached sales by region.",
        "attachments": [
            {"filename": "sales.csv", "url": server.url("/sales.csv"), "content_type": "text/csv"},
            {"filename": "private.csv", "url": "https://10.1.2.3/private.csv", "content_type": "text/csv"}
        ]
    });
    let brief = bidder::protocol::parse_brief(brief.to_string().as_bytes()).unwrap();
    let response = pipeline.execute(&brief, Instant::now()).await.unwrap();
    // north 10 + south 7: the total comes from the attached file.
    assert!(response.output.contains("17"), "{}", response.output);
    assert!(response.agent_message.contains("Read from your attachments: sales.csv"), "{}", response.agent_message);
    assert!(response.agent_message.contains("private.csv could not be fetched"), "{}", response.agent_message);
}
