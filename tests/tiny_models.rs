//! Shape and flow checks on tiny GGUFs with random weights and a byte-level vocabulary,
//! written by the library's own writer (`bidder::engine::synth`, what `bidder synth-model`
//! runs): every family we run, including those we have no small real file of (qwen3, gemma3,
//! phi3), through the real binary — `bidder execute` end to end and `bidder bench-model` — and
//! the llama and qwen2 ones in llama.cpp's Q4_K_M mix through `bidder parity-check`. Random
//! weights write random bytes, so these checks are about loading, routing the architecture,
//! generating the requested number of tokens and answering in the contract's shape, not about
//! prose (the llama and qwen2 paths are checked with real weights in `real_model.rs`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use bidder::engine::synth::{self, SynthArch, SynthQuant, SynthShape};
use common::repo_path;

/// Write a tiny random-weight GGUF of `arch` at `path`.
fn write_tiny_gguf(arch: SynthArch, quant: SynthQuant, path: &Path) {
    let plan = synth::plan(arch, SynthShape::Tiny, quant).unwrap();
    synth::write(&plan, path).unwrap();
}

fn bidder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bidder"));
    command.env_remove("RUST_LOG").stderr(Stdio::piped());
    command
}

fn check_family(family: SynthArch, quant: SynthQuant) {
    let arch = family.name();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join(format!("tiny-{arch}.gguf"));
    write_tiny_gguf(family, quant, &model);

    let output = bidder()
        // Trusted with the whole piece: a random model's words are kept as written, where the led
        // strategies would filter them all away (and then nothing is delivered).
        .args(["execute", "--prototype-deadline-secs", "30", "--capability", "full", "--model"])
        .arg(&model)
        .arg(repo_path("tests/fixtures/briefs/minimal-brief.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{arch}: {}", String::from_utf8_lossy(&output.stderr));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["status"], "completed", "{arch}: {body}");
    assert_eq!(body["metadata"]["model"], format!("tiny-{arch}"));
    // Stop tokens are held back for the first 24 tokens, so a random model still writes them.
    let written = body["token_usage"]["output_tokens"].as_u64().unwrap();
    assert!(written >= 24, "{arch}: wrote {written} tokens");
    assert!(body["token_usage"]["input_tokens"].as_u64().unwrap() > 100, "{arch}: {body}");

    let output = bidder()
        .args(["bench-model", "--prompt-tokens", "40", "--gen", "8", "--repetitions", "1", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(output.status.success(), "{arch}: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["architecture"], arch);
    assert_eq!((report["prompt_tokens"].as_u64(), report["gen_tokens"].as_u64()), (Some(40), Some(8)));
    for field in ["load_s", "prefill_tps", "decode_tps", "rss_mb"] {
        assert!(report[field].as_f64().is_some_and(|v| v > 0.0), "{arch}: {field} in {report}");
    }
}

#[test]
fn qwen3_loads_and_generates() {
    check_family(SynthArch::Qwen3, SynthQuant::F32);
}

#[test]
fn gemma3_loads_and_generates() {
    check_family(SynthArch::Gemma3, SynthQuant::F32);
}

#[test]
fn phi3_loads_and_generates() {
    check_family(SynthArch::Phi3, SynthQuant::F32);
}

#[test]
fn synthetic_llama_in_q4_k_m_loads_and_generates() {
    check_family(SynthArch::Llama, SynthQuant::Q4KM);
}

#[test]
fn synthetic_qwen2_in_q8_0_loads_and_generates() {
    check_family(SynthArch::Qwen2, SynthQuant::Q8_0);
}

/// `bidder synth-model` writes what it says, and `bidder parity-check` runs its batched passes
/// on it (the CPU against itself here: no GPU in the suite, so the logits must agree exactly),
/// while a CUDA device in a CPU build is refused with the fix.
#[test]
fn synth_model_and_parity_check_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen2"] {
        let model = dir.path().join(format!("{arch}.gguf"));
        let output = bidder()
            .args(["synth-model", "--arch", arch, "--shape", "tiny", "--quant", "q4_k_m", "--out"])
            .arg(&model)
            .output()
            .unwrap();
        assert!(output.status.success(), "{arch}: {}", String::from_utf8_lossy(&output.stderr));
        let written: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(written["bytes"].as_u64(), Some(std::fs::metadata(&model).unwrap().len()), "{written}");
        assert_eq!((written["architecture"].as_str(), written["quant"].as_str()), (Some(arch), Some("q4_k_m")));

        let output =
            bidder().args(["parity-check", "--device", "cpu", "--steps", "3", "--model"]).arg(&model).output().unwrap();
        assert!(output.status.success(), "{arch}: {}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!((report["passed"].as_bool(), report["sequences"].as_u64()), (Some(true), Some(2)), "{report}");
        assert_eq!(report["max_abs_diff"].as_f64(), Some(0.0), "{report}");
        // Two prompts, one prefilled in chunks: more passes than decode steps, each compared.
        assert!(report["forward_passes"].as_u64().unwrap() > 3, "{report}");
        assert!(report["compared"].as_u64().unwrap() >= 8, "{report}");
        assert!(report["max_abs_logit"].as_f64().is_some_and(|x| x > 0.1 && x.is_finite()), "{report}");
    }
    if !cfg!(feature = "cuda") {
        let model = dir.path().join("llama.gguf");
        for command in ["parity-check", "bench-model"] {
            let output = bidder().args([command, "--device", "cuda", "--model"]).arg(&model).output().unwrap();
            assert!(!output.status.success(), "{command}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("built without CUDA") && stderr.contains("--features cuda"), "{command}: {stderr}");
        }
    }
    let output = bidder()
        .args(["synth-model", "--arch", "gemma3", "--shape", "8b", "--out"])
        .arg(dir.path().join("no.gguf"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("real-sized shapes are llama and qwen2"));
}
