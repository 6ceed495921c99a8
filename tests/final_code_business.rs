//! The code and business strategies end to end on the default model (SmolLM2-135M): the review,
//! script and pitch-deck fixtures through `bidder execute`, as finals and as prototypes. Each run
//! takes the whole CPU, so they run one at a time.

mod common;

use std::sync::Mutex;

use serde_json::Value;

/// One model run at a time: in parallel they would only slow each other down.
static MODEL: Mutex<()> = Mutex::new(());

fn execute(name: &str, mode: &str, args: &[&str]) -> Value {
    let _one_at_a_time = MODEL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    common::execute_fixture(name, mode, args)
}

fn output(body: &Value) -> &str {
    body["output"].as_str().expect("output")
}

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["metadata"]["checks"]
        .as_array()
        .expect("metadata.checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", body["metadata"]["checks"]))
}

/// A fenced block opened with ```python and closed.
fn python_block(output: &str) -> Option<&str> {
    let start = output.find("```python\n")? + "```python\n".len();
    let end = output[start..].find("\n```")?;
    Some(&output[start..start + end])
}

/// The `file` artifact with a `.py` name; its content is the code in the output.
fn assert_python_file(body: &Value) {
    let code = python_block(output(body)).unwrap_or_else(|| panic!("no closed ```python block:\n{}", output(body)));
    let artifacts = body["artifacts"].as_array().expect("artifacts");
    let file = artifacts
        .iter()
        .find(|a| a["type"] == "file")
        .unwrap_or_else(|| panic!("no file artifact: {}", body["artifacts"]));
    let filename = file["filename"].as_str().unwrap_or_default();
    assert!(filename.ends_with(".py") && filename.len() > 3, "{file}");
    assert_eq!(file["mime_type"], "text/x-python");
    assert_eq!(file["content"].as_str().unwrap().trim_end(), code.trim_end(), "the file is the code shown");
}

/// (bullets, speaker note) of every `## Slide` section.
fn slides(output: &str) -> Vec<(usize, Option<String>)> {
    let mut slides: Vec<(usize, Option<String>)> = Vec::new();
    for line in output.lines() {
        if line.starts_with("## Slide") {
            slides.push((0, None));
        } else if let Some(slide) = slides.last_mut() {
            if line.starts_with("- ") {
                slide.0 += 1;
            } else if let Some(note) = line.strip_prefix("*Speaker note:*") {
                slide.1 = Some(note.trim().to_string());
            }
        }
    }
    slides
}

#[test]
fn the_review_final_finds_and_fixes_the_bugs() {
    let body = execute("code-review-python", "final", &[]);
    common::assert_contract_response(&body, "00000000-0000-0000-0000-000000001006", "final");
    assert!(common::failed_checks(&body).is_empty(), "{:#?}\n{}", common::failed_checks(&body), output(&body));
    assert_python_file(&body);
    let text = output(&body);
    assert!(text.starts_with("## Findings") && text.contains("## Corrected code"), "{text}");
    // The two real bugs are named, and the code shown is corrected.
    assert!(text.contains("ZeroDivisionError") && text.contains("reverse=True"), "{text}");
    let code = python_block(text).unwrap();
    assert!(code.contains("def average_order_value") && code.contains("def top_customers"), "{code}");
    for name in ["code:block", "code:balanced", "code:python_syntax"] {
        assert_eq!(check(&body, name)["passed"], true, "{name}");
    }
}

/// What the default model can be held to on a script: the structure, the file and the checks
/// reported. Whether its code passes them is left to the strict test below.
#[test]
fn the_script_final_delivers_a_file_and_reports_its_checks() {
    let body = execute("script-rename-photos", "final", &[]);
    common::assert_contract_response(&body, "00000000-0000-0000-0000-000000001007", "final");
    assert_python_file(&body);
    let text = output(&body);
    // How to run follows what the code is: a file that does something when run (a `__main__`
    // guard, argparse, a call at the top level) is run with python3; one that only defines
    // functions is imported. Which of the two the 135M model writes varies with the numerics.
    let code = python_block(text).unwrap();
    let script = code.contains("__main__")
        || code.contains("argparse")
        || code.lines().any(|l| {
            l.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && {
                let head = l.split('(').next().unwrap_or_default();
                l.contains('(') && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            }
        });
    let how_to_run = text.split("## How to run").nth(1).unwrap_or_else(|| panic!("no How to run:\n{text}"));
    match script {
        true => assert!(how_to_run.contains("python3 "), "{text}"),
        false => assert!(how_to_run.contains("import "), "{text}"),
    }
    for name in ["code:block", "code:balanced", "code:python_syntax", "format:code"] {
        check(&body, name);
    }
    let unexpected: Vec<String> = common::failed_checks(&body)
        .into_iter()
        .filter(|c| !c.starts_with("code:") && !c.starts_with("name:DateTimeOriginal"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

/// SmolLM2-135M writes no valid script of this size: in about 35 attempts one passed the bracket
/// and indentation checks, and none used the brief's `--dry-run` and `DateTimeOriginal`. With
/// `--model models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf` (about 90-125 s on two cores) every check
/// passed but `code:brief_terms`: its script took `dry_run` as a parameter, not a `--dry-run` flag.
#[test]
#[ignore = "needs a model that writes valid Python; the default 135M model does not"]
fn the_script_final_passes_every_check() {
    let body = execute("script-rename-photos", "final", &[]);
    assert!(common::failed_checks(&body).is_empty(), "{:#?}\n{}", common::failed_checks(&body), output(&body));
    assert_python_file(&body);
}

#[test]
fn the_pitch_final_has_ten_slides_with_bullets_notes_and_the_facts() {
    let body = execute("business-pitch-outline", "final", &[]);
    common::assert_contract_response(&body, "00000000-0000-0000-0000-000000001008", "final");
    let text = output(&body);
    assert!(common::failed_checks(&body).is_empty(), "{:#?}\n{text}", common::failed_checks(&body));
    let slides = slides(text);
    assert_eq!(slides.len(), 10, "{text}");
    for (i, (bullets, note)) in slides.iter().enumerate() {
        assert!((3..=4).contains(bullets), "slide {} has {bullets} bullets:\n{text}", i + 1);
        assert!(note.as_deref().is_some_and(|n| n.split_whitespace().count() >= 4), "slide {} note:\n{text}", i + 1);
    }
    assert!(text.contains("$750k") && text.contains("38 million"), "{text}");
    let ask = text.split("## Slide").last().unwrap();
    assert!(ask.contains("$750k"), "the ask slide carries the round: {ask}");
    for name in ["count:slide", "slides:bullets", "slides:speaker_notes", "fact:$750k", "fact:38 million"] {
        assert_eq!(check(&body, name)["passed"], true, "{name}");
    }
    assert_eq!(body["metadata"]["truncated"], false);
}

#[test]
fn prototypes_come_back_within_a_small_budget_with_their_checks() {
    const BUDGET_MS: u64 = 30_000;
    for name in ["code-review-python", "script-rename-photos", "business-pitch-outline"] {
        let body = execute(name, "prototype", &["--prototype-deadline-secs", "30"]);
        let latency = body["metadata"]["latency_ms"].as_u64().unwrap();
        assert!(latency <= BUDGET_MS, "{name}: {latency} ms");
        let checks = body["metadata"]["checks"].as_array().unwrap();
        assert!(checks.len() >= 4, "{name}: {checks:?}");
        assert!(!output(&body).trim().is_empty(), "{name}");
        match name {
            "business-pitch-outline" => {
                let text = output(&body);
                assert_eq!(slides(text).len(), 10, "every slide is outlined:\n{text}");
                assert!(common::failed_checks(&body).is_empty(), "{:#?}\n{text}", common::failed_checks(&body));
                assert!(body["agent_message"].as_str().unwrap().contains("the final writes every slide"), "{body}");
            }
            "code-review-python" => {
                assert!(common::failed_checks(&body).is_empty(), "{:#?}", common::failed_checks(&body));
                assert_python_file(&body);
            }
            _ => assert_python_file(&body),
        }
    }
}
