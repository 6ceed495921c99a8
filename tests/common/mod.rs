//! Shared by the integration tests: fixture briefs, signing as the platform signs, and a client
//! that sends a body with the platform's headers.
#![allow(dead_code)]

pub mod fake_server;
pub mod real_server;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub const API_KEY: &str = "ait_test_key_0123456789";
pub const SECRET_CURRENT: &str = "whsec_current_secret";
pub const SECRET_PENDING: &str = "whsec_pending_secret";

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every fixture brief: (file stem, JSON value), sorted by name.
pub fn fixture_briefs() -> Vec<(String, serde_json::Value)> {
    let mut briefs: Vec<_> = std::fs::read_dir(repo_path("tests/fixtures/briefs"))
        .expect("tests/fixtures/briefs")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), value)
        })
        .collect();
    briefs.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(briefs.len() >= 12, "fixture briefs missing");
    briefs
}

pub fn fixture_brief(name: &str) -> serde_json::Value {
    fixture_briefs().into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no fixture {name}")).1
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Headers the platform would send for `body`, signed with `secret` at `timestamp`.
pub struct Signed {
    pub key: Option<String>,
    pub secret: Option<String>,
    pub timestamp: i64,
}

impl Default for Signed {
    fn default() -> Self {
        Self { key: Some(API_KEY.into()), secret: Some(SECRET_CURRENT.into()), timestamp: unix_now() }
    }
}

pub async fn post_execute(client: &reqwest::Client, url: &str, body: Vec<u8>, signed: &Signed) -> reqwest::Response {
    let task_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["task_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut request = client
        .post(format!("{url}/execute"))
        .header("content-type", "application/json")
        .header("user-agent", "AITasker/1.0 (Agent Executor)")
        .header("x-aitasker-task-id", task_id)
        .header("x-aitasker-timestamp", signed.timestamp.to_string());
    if let Some(key) = &signed.key {
        request = request.header("x-aitasker-key", key);
    }
    if let Some(secret) = &signed.secret {
        request = request.header("x-aitasker-signature", bidder::http::auth::sign(secret, &body));
    }
    request.body(body).send().await.expect("request sent")
}

/// The brief with its phase set, as bytes.
pub fn with_mode(brief: &serde_json::Value, mode: &str) -> Vec<u8> {
    let mut brief = brief.clone();
    brief["mode"] = mode.into();
    serde_json::to_vec(&brief).unwrap()
}

/// Every protocol §4 field with its type (the harness's own check), and what we promise beyond
/// it; panics naming what is wrong.
pub fn assert_contract_response(body: &serde_json::Value, task_id: &str, mode: &str) {
    let violations = bidder::harness::contract_violations(body, task_id, mode, None);
    assert!(violations.is_empty(), "{violations:#?}\n{body}");
    let usage = &body["token_usage"];
    // A logo is built without the model (strategy::logo): no tokens; everything else reads a prompt.
    let built_without_model = body["artifacts"][0]["mime_type"] == "image/svg+xml";
    assert!(usage["input_tokens"].as_u64().is_some_and(|n| n > 0 || built_without_model), "{usage}");
    let meta = &body["metadata"];
    assert_eq!(meta["agent_version"], env!("CARGO_PKG_VERSION"));
    let checks = meta["checks"].as_array().expect("metadata.checks array");
    // Cleaning guarantees this one, so it is always reported and always passes.
    assert!(
        checks.iter().any(|c| c["name"] == "no_template_tokens" && c["passed"] == true),
        "no_template_tokens must be reported and pass: {meta}"
    );
}

/// A logo response: an `image/svg+xml` artifact first, well-formed, `<svg>` at its root, setting
/// `name`; the same SVG in the Markdown output.
pub fn assert_logo_artifact(body: &serde_json::Value, name: &str) {
    let image = &body["artifacts"][0];
    assert_eq!((image["type"].as_str(), image["mime_type"].as_str()), (Some("image"), Some("image/svg+xml")), "{body}");
    assert!(image["filename"].as_str().is_some_and(|f| f.ends_with(".svg")), "{image}");
    let svg = image["content"].as_str().unwrap();
    let document = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("malformed SVG ({e}): {svg}"));
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let text: Vec<&str> =
        document.descendants().filter_map(|n| n.text()).map(str::trim).filter(|t| !t.is_empty()).collect();
    assert!(text.join(" ").contains(name), "{name} is not set in the SVG: {svg}");
    assert!(body["output"].as_str().unwrap().contains(svg), "the output shows the SVG too");
}

/// The sales brief's response: the figures computed from its CSV, exactly, and no number that
/// is not in the data.
pub fn assert_sales_figures(body: &serde_json::Value) {
    let output = body["output"].as_str().unwrap();
    for figure in ["144,100", "161,220", "+17,120", "+11.9%", "+10,920", "+27.4%", "-1,520", "-5.0%"] {
        assert!(output.contains(figure), "{figure} missing from the sales summary:\n{output}");
    }
    let checks = body["metadata"]["checks"].as_array().unwrap();
    let numbers = checks.iter().find(|c| c["name"] == "numbers_from_data").expect("numbers_from_data check");
    assert_eq!(numbers["passed"], true, "{numbers}");
}

/// No chat-template or special token may reach the buyer.
pub fn assert_no_template_tokens(text: &str) {
    for marker in ["<|", "|>", "<s>", "</s>", "<end_of_turn>", "<start_of_turn>"] {
        assert!(!text.contains(marker), "template token {marker:?} in output: {text}");
    }
}

/// Run the fixture brief `name` in `mode` through `bidder execute` on the default model (the
/// real pipeline and engine, no HTTP) and return the response JSON. `args` are extra flags.
pub fn execute_fixture(name: &str, mode: &str, args: &[&str]) -> serde_json::Value {
    let model = repo_path("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.is_file(), "{} is missing: run scripts/fetch-models.sh first", model.display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bidder"))
        .env_remove("RUST_LOG")
        .env("BIDDER_MODEL", &model)
        .arg("execute")
        .args(["--mode", mode])
        .args(args)
        .arg(repo_path(&format!("tests/fixtures/briefs/{name}.json")))
        .output()
        .expect("run bidder execute");
    assert!(output.status.success(), "{name} {mode}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{name} {mode}: {e}"))
}

/// The checks of a response that failed, as "name: detail" lines.
pub fn failed_checks(body: &serde_json::Value) -> Vec<String> {
    body["metadata"]["checks"]
        .as_array()
        .expect("metadata.checks")
        .iter()
        .filter(|c| c["passed"] != true)
        .map(|c| format!("{}: {}", c["name"].as_str().unwrap_or("?"), c["detail"].as_str().unwrap_or("")))
        .collect()
}
