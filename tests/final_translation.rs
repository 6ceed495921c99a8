//! The translation fixture (an English customer notice into Spanish, formatting kept) through
//! `bidder execute` on the real default model, final and prototype, and on Qwen2.5-Coder-1.5B
//! when it is in `models/`. What a 135M model writes is weak Spanish; what it is held to here
//! is measurable: a Spanish sentence for every English one, line by line, by a stopword test
//! written here (not the crate's detector), with the numbers and the name kept.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const FIXTURE: &str = "translation-en-es-notice";

/// These tests time a 2-core machine: they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Frequent Spanish and English function words: a Spanish sentence has the first and not the
/// second.
const SPANISH_WORDS: &[&str] = &[
    "el", "la", "los", "las", "de", "del", "que", "y", "en", "un", "una", "por", "con", "para", "es", "son", "está",
    "estará", "se", "su", "sus", "al", "lo", "le", "les", "más", "como", "este", "esta", "nuestro", "nuestra",
    "nuestros", "nuestras", "a", "o", "no", "muy", "pero", "hay",
];
const ENGLISH_WORDS: &[&str] = &[
    "the", "and", "of", "to", "is", "are", "will", "for", "on", "with", "we", "you", "our", "your", "be", "as", "look",
    "back", "still", "this", "that", "it",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Whether `sentence` reads as Spanish rather than as `english`: from four words on, more
/// Spanish function words than English ones and at least one; a shorter line (a greeting, a
/// signature) has no English function word and is not the English left as it was.
fn reads_as_spanish(sentence: &str, english: &str) -> bool {
    let words = words(sentence);
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).count();
    let (spanish, english_words) = (count(SPANISH_WORDS), count(ENGLISH_WORDS));
    match words.len() {
        0 => false,
        1..=3 => english_words == 0 && words != self::words(english),
        _ => spanish >= 1 && spanish > english_words,
    }
}

/// Sentences of one line: each ends at `.`, `!` or `?` before a space, or at the line's end.
fn sentences(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|next| next.is_whitespace()) {
            out.push(current.trim().to_string());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// The notice to translate: the fixture's description after its instruction paragraph.
fn source_notice() -> String {
    let brief = fixture_brief(FIXTURE);
    let description = brief["description"].as_str().unwrap();
    let (instruction, notice) = description.split_once("\n\n").expect("an instruction, then the notice");
    assert!(instruction.ends_with(':'), "{instruction}");
    notice.to_string()
}

/// The response's translation against the notice: every check passed, the notice's lines kept,
/// a Spanish sentence for every English one, its numbers and name kept.
fn assert_spanish_translation_of_every_sentence(body: &Value) {
    let output = body["output"].as_str().unwrap();
    let failed = failed_checks(body);
    assert!(failed.is_empty(), "failed checks {failed:?} on:\n{output}");
    for name in ["translation:sentences", "translation:language", "translation:numbers", "translation:names"] {
        let reported = body["metadata"]["checks"].as_array().unwrap().iter().any(|c| c["name"] == name);
        assert!(reported, "{name} not reported: {}", body["metadata"]);
    }
    assert_no_template_tokens(output);
    let notice = source_notice();
    let (source_lines, lines): (Vec<&str>, Vec<&str>) = (notice.lines().collect(), output.lines().collect());
    assert_eq!(lines.len(), source_lines.len(), "the notice's lines are kept:\n{output}");
    for (english, spanish) in source_lines.iter().zip(&lines) {
        assert_eq!(english.trim().is_empty(), spanish.trim().is_empty(), "blank lines are kept:\n{output}");
        let (english, spanish) = (sentences(english), sentences(spanish));
        assert_eq!(spanish.len(), english.len(), "a sentence for every sentence: {english:?} → {spanish:?}");
        for (english, spanish) in english.iter().zip(&spanish) {
            assert!(reads_as_spanish(spanish, english), "not Spanish: {spanish:?} (for {english:?})\n{output}");
        }
    }
    let digits = |line: &str| -> Vec<String> {
        line.split(|c: char| !c.is_ascii_digit()).filter(|d| !d.is_empty()).map(str::to_string).collect()
    };
    for number in ["5", "3"] {
        assert!(digits(lines[1]).iter().any(|d| d == number), "{number} is dropped:\n{output}");
    }
    assert!(lines[2].contains("Green Leaf"), "the team's name is dropped:\n{output}");
}

fn report(label: &str, body: &Value, took: Duration) {
    let meta = &body["metadata"];
    eprintln!(
        "{label}: {:.1}s ({} ms in the pipeline), {} output tokens, model {}\n{}\n",
        took.as_secs_f64(),
        meta["latency_ms"],
        body["token_usage"]["output_tokens"],
        meta["model"],
        body["output"].as_str().unwrap_or_default()
    );
}

#[test]
fn the_detector_here_tells_spanish_from_english() {
    assert!(reads_as_spanish("Nuestra tienda de la 5.ª Avenida estará cerrada el lunes 3 de marzo.", "x"));
    assert!(reads_as_spanish("Estimados clientes,", "Dear customers,"));
    assert!(!reads_as_spanish("Our store on 5th Avenue will be closed on Monday.", "x"));
    assert!(!reads_as_spanish("Dear customers,", "Dear customers,"));
    assert!(!reads_as_spanish("The Green Leaf team", "x"));
}

#[test]
fn spanish_translation_of_every_sentence() {
    let _turn = take_turn();
    let started = Instant::now();
    let body = execute_fixture(FIXTURE, "final", &[]);
    report("final, default model", &body, started.elapsed());
    assert_contract_response(&body, body["task_id"].as_str().unwrap(), "final");
    assert_eq!(body["metadata"]["truncated"], false, "every sentence was translated in time");
    assert_spanish_translation_of_every_sentence(&body);
}

/// The prototype has fewer tries per sentence than the final, and on a 135M model whether every
/// sentence comes out as Spanish with its numbers is the luck of the sampling (it flips when
/// a kernel sums in another order). What the code guarantees is held here: the whole notice
/// line by line and sentence by sentence, in Spanish as a whole, within the budget, and checks
/// that say what the output is (a number dropped is a failed check, never a passed one).
#[test]
fn the_prototype_is_the_whole_translation_within_its_budget() {
    let _turn = take_turn();
    let started = Instant::now();
    let body = execute_fixture(FIXTURE, "prototype", &["--prototype-deadline-secs", "30"]);
    report("prototype, default model, 30 s budget", &body, started.elapsed());
    let latency = body["metadata"]["latency_ms"].as_u64().unwrap();
    assert!(latency <= 30_000, "the prototype took {latency} ms of its 30 s");
    assert_contract_response(&body, body["task_id"].as_str().unwrap(), "prototype");
    let output = body["output"].as_str().unwrap();
    assert_no_template_tokens(output);
    let notice = source_notice();
    let (source_lines, lines): (Vec<&str>, Vec<&str>) = (notice.lines().collect(), output.lines().collect());
    assert_eq!(lines.len(), source_lines.len(), "the notice's lines are kept:\n{output}");
    for (english, spanish) in source_lines.iter().zip(&lines) {
        assert_eq!(sentences(spanish).len(), sentences(english).len(), "a sentence for every sentence:\n{output}");
    }
    let all = words(output);
    let count = |list: &[&str]| all.iter().filter(|w| list.contains(&w.as_str())).count();
    assert!(count(SPANISH_WORDS) > 2 * count(ENGLISH_WORDS), "the whole reads as Spanish:\n{output}");
    let passed = |name: &str| {
        let checks = body["metadata"]["checks"].as_array().unwrap();
        let check = checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name} not reported"));
        check["passed"] == true
    };
    let numbers_kept = ["5", "3"].iter().all(|n| lines[1].split(|c: char| !c.is_ascii_digit()).any(|d| d == *n));
    assert_eq!(passed("translation:numbers"), numbers_kept, "the numbers check tells the truth:\n{output}");
    assert_eq!(
        passed("translation:names"),
        lines[2].contains("Green Leaf"),
        "the names check tells the truth:\n{output}"
    );
}

#[test]
fn qwen_translates_the_notice_too() {
    let model: PathBuf = repo_path("models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!("skipped: {} is not there", model.display());
        return;
    }
    let _turn = take_turn();
    let started = Instant::now();
    let body = execute_fixture(FIXTURE, "final", &["--model", model.to_str().unwrap()]);
    report("final, Qwen2.5-Coder-1.5B", &body, started.elapsed());
    assert_eq!(body["metadata"]["truncated"], false, "every sentence was translated in time");
    assert_spanish_translation_of_every_sentence(&body);
}
