//! The tokenizer against llama.cpp without a real model: the SentencePiece test vocabularies in
//! `tests/fixtures/tokenizer/` (built by `make_spm_vocab.py`, reference ids from llama.cpp's
//! `llama-tokenize`), and the `tokenizer.json` lookup beside a GGUF.
//!
//! With `LLAMA_CPP_VOCABS` set to a directory of llama.cpp's `ggml-vocab-*.gguf` files (its
//! `models/` folder) and `LLAMA_TOKENIZE` to its `llama-tokenize`, one more test compares real
//! vocabularies (Llama 2 SPM, Llama 3, Phi-3, DeepSeek, Falcon, StarCoder, …) case by case.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bidder::engine::load_gguf_tokenizer;
use common::repo_path;
use serde_json::Value;

fn reference_cases(fixture: &str) -> Vec<(String, Vec<u32>)> {
    let path = repo_path(&format!("tests/fixtures/tokenizer/{fixture}"));
    let reference: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let ids = case["ids"].as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect();
            (case["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn assert_matches_reference(model: &str, specials: &[&str]) {
    let tokenizer = load_gguf_tokenizer(&repo_path(&format!("tests/fixtures/tokenizer/{model}.gguf"))).unwrap();
    let cases = reference_cases(&format!("{model}.json"));
    assert!(cases.len() >= 30, "{model}: too few reference cases");
    let mut mismatches = Vec::new();
    for (text, expected) in &cases {
        let ids = tokenizer.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        if &ids != expected {
            mismatches.push(format!("{text:?}\n   ours {ids:?}\n  llama {expected:?}"));
            continue;
        }
        // Text without special tokens comes back unchanged (a literal `▁` comes back as a space,
        // as it does from llama.cpp).
        if !specials.iter().any(|s| text.contains(s)) && !text.contains('\u{2581}') {
            let decoded = tokenizer.decode(&ids, false).unwrap();
            if &decoded != text {
                mismatches.push(format!("{text:?} decodes to {decoded:?}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{model}: {} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn llama_style_sentencepiece_matches_llama_cpp() {
    assert_matches_reference("spm-llama", &["<s>", "</s>", "<unk>"]);
}

#[test]
fn gemma_style_sentencepiece_matches_llama_cpp() {
    assert_matches_reference("spm-gemma", &["<start_of_turn>", "<end_of_turn>", "<unk>"]);
}

#[test]
fn sentencepiece_prompts_get_bos_and_gemma_turn_tokens_stop() {
    use candle_core::quantized::gguf_file::Content;
    for (model, expects_prefix) in [("spm-llama", true), ("spm-gemma", false)] {
        let path = repo_path(&format!("tests/fixtures/tokenizer/{model}.gguf"));
        let content = Content::read(&mut std::fs::File::open(&path).unwrap()).unwrap();
        assert!(bidder::engine::tokenizer::adds_bos(&content.metadata), "{model}: BOS expected");
        let tokenizer = load_gguf_tokenizer(&path).unwrap();
        // A space prefix only where the vocabulary asks for one.
        let hello = tokenizer.encode("Hello", false).unwrap();
        assert_eq!(hello.get_tokens()[0].starts_with('\u{2581}'), expects_prefix, "{model}: {:?}", hello.get_tokens());
    }
    let gemma = load_gguf_tokenizer(&repo_path("tests/fixtures/tokenizer/spm-gemma.gguf")).unwrap();
    let turn = gemma.encode("<start_of_turn>model\nHi<end_of_turn>\n", false).unwrap();
    assert_eq!(turn.get_tokens().first().map(String::as_str), Some("<start_of_turn>"));
    assert!(turn.get_tokens().iter().any(|t| t == "<end_of_turn>"));
    // Control tokens vanish when decoding generated text; user-defined ones are text.
    let ids = gemma.encode("<start_of_turn>a\n\nb<end_of_turn>", false).unwrap().get_ids().to_vec();
    assert_eq!(gemma.decode(&ids, true).unwrap(), "a\n\nb");
}

/// A GGUF copied into a temporary directory, with whatever tokenizer.json files the test adds.
fn model_in_temp_dir(file_name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::copy(repo_path("tests/fixtures/tokenizer/spm-llama.gguf"), &path).unwrap();
    (dir, path)
}

/// A minimal Hugging Face tokenizer.json: a word-level model over three words.
fn word_level_tokenizer_json(words: &[&str]) -> String {
    let vocab: serde_json::Map<String, Value> =
        words.iter().enumerate().map(|(i, w)| (w.to_string(), Value::from(i))).collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": words[0]}
    })
    .to_string()
}

#[test]
fn a_tokenizer_json_beside_the_gguf_wins_over_the_metadata() {
    let (dir, gguf) = model_in_temp_dir("tiny.gguf");
    let from_metadata = load_gguf_tokenizer(&gguf).unwrap().encode("Hello world", false).unwrap().get_ids().to_vec();
    assert_ne!(from_metadata, vec![1, 2]);

    std::fs::write(dir.path().join("tokenizer.json"), word_level_tokenizer_json(&["<unk>", "Hello", "world"])).unwrap();
    let ids = load_gguf_tokenizer(&gguf).unwrap().encode("Hello world", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![1, 2], "tokenizer.json is used");

    // In a folder of several models, a plain tokenizer.json could be any of theirs: ignored.
    std::fs::copy(&gguf, dir.path().join("other.gguf")).unwrap();
    let ids = load_gguf_tokenizer(&gguf).unwrap().encode("Hello world", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, from_metadata, "a shared tokenizer.json is ignored");

    // `<stem>.tokenizer.json` names its model, and wins wherever it is.
    std::fs::write(dir.path().join("tiny.tokenizer.json"), word_level_tokenizer_json(&["<unk>", "world", "Hello"]))
        .unwrap();
    let ids = load_gguf_tokenizer(&gguf).unwrap().encode("Hello world", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![2, 1], "tiny.tokenizer.json is used");
}

#[test]
fn a_broken_tokenizer_json_is_a_load_error_naming_the_file() {
    let (dir, gguf) = model_in_temp_dir("tiny.gguf");
    let broken = dir.path().join("tiny.tokenizer.json");
    std::fs::write(&broken, "{\"model\": ").unwrap();
    let error = load_gguf_tokenizer(&gguf).unwrap_err().to_string();
    assert!(error.contains(&broken.display().to_string()), "{error}");
}

/// Every `ggml-vocab-*.gguf` in `LLAMA_CPP_VOCABS` we support, against `LLAMA_TOKENIZE` on its
/// own `.inp` cases and the SentencePiece fixture texts.
#[test]
fn real_llama_cpp_vocabularies_match_when_available() {
    let (Some(vocabs), Some(llama_tokenize)) =
        (std::env::var_os("LLAMA_CPP_VOCABS"), std::env::var_os("LLAMA_TOKENIZE"))
    else {
        eprintln!("LLAMA_CPP_VOCABS / LLAMA_TOKENIZE not set; skipping the real-vocabulary comparison");
        return;
    };
    let mut texts: Vec<String> = reference_cases("spm-llama.json").into_iter().map(|(t, _)| t).collect();
    texts.extend(reference_cases("spm-gemma.json").into_iter().map(|(t, _)| t));
    let mut vocab_files: Vec<PathBuf> = std::fs::read_dir(&vocabs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    vocab_files.sort();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for vocab in vocab_files {
        let tokenizer = match load_gguf_tokenizer(&vocab) {
            Ok(t) => t,
            Err(e) => {
                report.push(format!("{}: skipped ({e})", vocab.display()));
                continue;
            }
        };
        let mut cases = texts.clone();
        if let Ok(inp) = std::fs::read_to_string(vocab.with_extension("gguf.inp")) {
            cases.extend(inp.split("\n__ggml_vocab_test__\n").map(str::to_string));
        }
        let mut matched = 0;
        for text in cases.iter().filter(|t| !t.is_empty()) {
            let expected = llama_cpp_ids(Path::new(&llama_tokenize), &vocab, text);
            let ids = tokenizer.encode(text.as_str(), false).unwrap().get_ids().to_vec();
            if ids == expected {
                matched += 1;
            } else {
                failures.push(format!("{}: {text:?}\n   ours {ids:?}\n  llama {expected:?}", vocab.display()));
            }
        }
        report.push(format!(
            "{}: {matched}/{} cases match",
            vocab.display(),
            cases.iter().filter(|t| !t.is_empty()).count()
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

fn llama_cpp_ids(llama_tokenize: &Path, vocab: &Path, text: &str) -> Vec<u32> {
    use std::io::Write;
    let mut child = Command::new(llama_tokenize)
        .args(["--stdin", "--no-escape", "--no-bos", "--ids", "--log-disable", "-m"])
        .arg(vocab)
        .env("LD_LIBRARY_PATH", llama_tokenize.parent().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "llama-tokenize failed on {text:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}
