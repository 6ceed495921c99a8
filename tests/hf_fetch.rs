//! `bidder fetch-hf` against a stand-in for the Hugging Face hub on 127.0.0.1 (HF_ENDPOINT),
//! answering the way the hub does: ranged GETs on `/{repo}/resolve/{revision}/{file}` with the
//! commit and etag headers the client needs.

use std::process::Command;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

const REPO: &str = "example/tiny-GGUF";
const FILE: &str = "tiny.gguf";

fn content() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

async fn resolve(
    Path((owner, name, revision, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if format!("{owner}/{name}") != REPO || revision != "main" || file != FILE {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    }
    let body = content();
    let start: usize = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some("bytes=0-0") => 0,
        _ => body.len() - 1,
    };
    let mut response = (StatusCode::PARTIAL_CONTENT, body[start..=end].to_vec()).into_response();
    let h = response.headers_mut();
    h.insert("x-repo-commit", HeaderValue::from_static("0123456789abcdef0123456789abcdef01234567"));
    h.insert(header::ETAG, HeaderValue::from_static("\"tiny-etag-1\""));
    h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {start}-{end}/{}", body.len())).unwrap());
    response
}

async fn start_hub() -> String {
    let app = Router::new().route("/{owner}/{name}/resolve/{revision}/{file}", get(resolve));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn fetch(hub: &str, home: &std::path::Path, dest: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bidder"))
        .args(["fetch-hf", REPO, FILE, "--dest"])
        .arg(dest)
        .args(extra)
        .env("HF_ENDPOINT", hub)
        .env("HF_HOME", home)
        .env_remove("HF_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_file_lands_in_the_models_directory_checked_and_cached() {
    let hub = start_hub().await;
    let (home, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sha = hex::encode(Sha256::digest(content()));

    let (hub_a, home_a, dest_a, sha_a) =
        (hub.clone(), home.path().to_path_buf(), dest.path().to_path_buf(), sha.clone());
    let output =
        tokio::task::spawn_blocking(move || fetch(&hub_a, &home_a, &dest_a, &["--sha256", &sha_a])).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let installed = dest.path().join(FILE);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), installed.display().to_string());
    assert_eq!(std::fs::read(&installed).unwrap(), content());
    assert!(home.path().join("hub").is_dir(), "the download goes through the hub cache in HF_HOME");

    // A wrong checksum installs nothing and says why.
    let other_dest = tempfile::tempdir().unwrap();
    let (hub_b, home_b, dest_b) = (hub.clone(), home.path().to_path_buf(), other_dest.path().to_path_buf());
    let output = tokio::task::spawn_blocking(move || fetch(&hub_b, &home_b, &dest_b, &["--sha256", &"0".repeat(64)]))
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing was installed"));
    assert!(!other_dest.path().join(FILE).exists());
}
