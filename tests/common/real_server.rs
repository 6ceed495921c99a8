//! The real `bidder` binary as a test's server: a child process on 127.0.0.1:0 (its metrics on a
//! port of their own), signed like the platform signs, on the default model; killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{API_KEY, SECRET_CURRENT, SECRET_PENDING, repo_path};

pub fn model_path() -> PathBuf {
    let path = repo_path("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh first", path.display());
    path
}

/// `bidder` on the default model, with metrics on a free port so that servers never contend
/// for the default one.
pub fn bidder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bidder"));
    command.env_remove("RUST_LOG").env("BIDDER_MODEL", model_path()).env("BIDDER_METRICS_LISTEN", "127.0.0.1:0");
    command
}

/// A `bidder serve` child process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// Where its `/metrics` is served.
    pub metrics_url: String,
    log: tempfile::NamedTempFile,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
        Self::start_logging(args, "info")
    }

    pub fn start_logging(args: &[&str], rust_log: &str) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = bidder()
            .env("RUST_LOG", rust_log)
            .args(["serve", "--listen", "127.0.0.1:0", "--api-key", API_KEY, "--signing-secrets"])
            .arg(format!("{SECRET_CURRENT},{SECRET_PENDING}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("bidder starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = |prefix: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected a line starting {prefix:?}, got {line:?}"))
                .to_string()
        };
        let url = line("bidder listening on ");
        let metrics_url = line("bidder metrics on ").trim_end_matches("/metrics").to_string();
        Self { child, url, metrics_url, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Poll `/health` until it says ok; returns every status seen on the way.
    pub async fn wait_until_ready(&self) -> Vec<u16> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let response = client.get(format!("{}/health", self.url)).send().await.expect("health answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            seen.push(status);
            match status {
                200 => {
                    assert_eq!(body["status"], "ok");
                    return seen;
                }
                503 => assert_eq!(body["status"], "loading"),
                other => panic!("unexpected health status {other}: {body}"),
            }
            assert!(started.elapsed() < Duration::from_secs(60), "not ready after 60 s:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of its `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_url)).await.unwrap().text().await.unwrap()
    }

    /// Its resident memory, in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
