//! `scripts/gpu-check.sh`, the one prepared check a GPU box runs, as a dry run on the CPU with the
//! tiny shape: every phase (parity, synthetic model, bench at 1, 16 and 64 sequences, serve,
//! contract, load burst) must pass and the one JSON line must carry what a GPU run reports. A
//! CUDA run in a CPU build must fail every phase that needs the device, and still report.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::repo_path;
use serde_json::Value;

fn gpu_check(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(repo_path("scripts/gpu-check.sh"))
        .args(args)
        .env("BIDDER_BIN", env!("CARGO_BIN_EXE_bidder"))
        // A hung phase fails the test in minutes, not the GPU box's eight.
        .env("GPU_CHECK_BUDGET_SECS", "240")
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs the script");
    (output, started.elapsed())
}

fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no summary; stderr:\n{}", stderr(output)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("the summary is not JSON ({e}): {line}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_dry_run_on_the_cpu_passes_every_phase_and_reports_them() {
    let (output, took) = gpu_check(&["--device", "cpu", "--shape", "tiny"]);
    let report = summary(&output);
    assert!(output.status.success(), "{report:#}\n{}", stderr(&output));
    assert_eq!(report["passed"], true);
    assert_eq!((report["device"].as_str(), report["bench_device"].as_str()), (Some("cpu"), Some("cpu")));
    let model = &report["model"];
    assert_eq!((model["architecture"].as_str(), model["shape"].as_str()), (Some("llama"), Some("tiny")), "{model}");
    assert_eq!(model["quant"], "q4_k_m");
    assert_eq!((report["prompt_tokens"].as_u64(), report["gen_tokens"].as_u64()), (Some(512), Some(256)));
    for concurrency in ["1", "16", "64"] {
        for speed in ["decode_tps", "prefill_tps"] {
            let tps = report[speed][concurrency].as_f64();
            assert!(tps.is_some_and(|t| t > 0.0), "{speed} at {concurrency}: {report}");
        }
    }
    // The CPU against itself: the same kernels, the same logits.
    let parity = &report["parity"];
    assert_eq!((parity["passed"].as_bool(), parity["max_abs_diff"].as_f64()), (Some(true), Some(0.0)), "{parity}");
    assert_eq!(parity["runs"].as_object().map(|runs| runs.len()), Some(4), "{parity}");
    let contract = &report["contract"];
    assert_eq!((contract["passed"].as_bool(), contract["health"].as_str()), (Some(true), Some("ok")), "{contract}");
    assert_eq!(contract["wrong_key"], serde_json::json!({"status": 401, "error": "unauthorized"}));
    let harness: Vec<&str> = contract["harness"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(harness.contains(&"contract: every answer holds"), "{harness:?}");
    let load = &report["load"];
    assert_eq!((load["passed"].as_bool(), load["requests"].as_u64()), (Some(true), Some(32)), "{load}");
    assert_eq!(load["other"], serde_json::json!([]), "{load}");
    let answered = load["ok_200"].as_u64().unwrap() + load["rejected_429"].as_u64().unwrap();
    assert_eq!(answered, 32, "{load}");
    assert!(load["health_ms"]["samples"].as_u64().is_some_and(|n| n > 0), "{load}");
    let phases = report["phases"].as_object().unwrap();
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    for phase in ["parity", "synth", "bench", "serve", "contract", "load", "bench64"] {
        assert!(names.contains(&phase), "{phase} missing from {names:?}");
        assert_eq!(phases[phase]["ok"], true, "{phase}: {}", phases[phase]);
        assert!(phases[phase]["seconds"].as_f64().is_some(), "{phase}");
    }
    assert!(took < Duration::from_secs(120), "the dry run took {took:?}");
}

#[test]
fn a_cuda_run_without_cuda_fails_with_a_report_not_a_crash() {
    if cfg!(feature = "cuda") {
        return;
    }
    let (output, _) = gpu_check(&["--device", "cuda", "--shape", "tiny"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = summary(&output);
    assert_eq!(report["passed"], false);
    assert_eq!(report["parity"]["passed"], false);
    let phases = &report["phases"];
    // Writing the model needs no device; everything that runs it does.
    assert_eq!(phases["synth"]["ok"], true, "{phases}");
    for phase in ["parity", "bench", "serve", "contract", "load", "bench64"] {
        assert_eq!(phases[phase]["ok"], false, "{phase}: {}", phases[phase]);
    }
    let log = phases["parity"]["log"].to_string();
    assert!(log.contains("built without CUDA"), "the log names the cause: {log}");
}

#[test]
fn a_missing_binary_is_named() {
    let output = Command::new("bash")
        .arg(repo_path("scripts/gpu-check.sh"))
        .args(["--device", "cpu", "--bin", "/nonexistent/bidder"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/bidder"), "{}", stderr(&output));
}
