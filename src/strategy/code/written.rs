//! Code written from a description: a script, a query, a function. Each attempt is checked — the
//! code's own checks, the response's general ones, the brief's flags and names used as given (in
//! Python, in the code itself, not in a comment) — and the next attempt names what failed, with
//! how to add a missing flag; the best attempt stands. Also says how to run the code, read from
//! the code itself (its imports and options).

use regex::Regex;

use super::checks::{code_checks, failed_details, fenced_code};
use super::naming::{code_artifact, display, fence_language, file_name};
use super::{
    FINAL_ATTEMPTS, FINAL_CODE_TOKENS, MAX_BRIEF_CHARS, PROTOTYPE_ATTEMPTS, PROTOTYPE_CODE_TOKENS, join_names,
};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::{Brief, Check, Phase};
use crate::strategy::compose::{Ask, Draft, Writer, check};
// `checks` here is the strategy's checks of a whole response; this folder's checks of code are
// imported by name above.
use crate::strategy::{GenerationPlan, checks, prompt};

pub(super) async fn write_code(
    brief: &Brief,
    plan: &GenerationPlan,
    language: &str,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let terms = brief_terms(brief);
    let fence = fence_language(language);
    let system = format!("You are an expert {} developer. You write short, correct, complete code.", display(language));
    let mut user = format!("# {}\n\n{}\n", brief.title, prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS));
    for rule in other_requirements(brief) {
        user.push_str(&format!("- {rule}\n"));
    }
    if !terms.is_empty() {
        user.push_str(&format!("\nUse these names exactly: {}.\n", terms.join(", ")));
    }
    user.push_str(&format!(
        "\nWrite the complete {} code. Output only the code, with short comments.",
        display(language)
    ));
    // Tests are written and run separately; inline ones would run on import and break them.
    if plan.code_exec.sandbox().is_some() && super::runners::Runner::for_language(language).is_some() {
        user.push_str(" No tests, example calls or prints at the top level: tests come separately.");
    }
    let (attempts, tokens) = match brief.phase {
        Phase::Final => (FINAL_ATTEMPTS, FINAL_CODE_TOKENS),
        Phase::Prototype => (PROTOTYPE_ATTEMPTS, PROTOTYPE_CODE_TOKENS),
    };
    let base = Ask::new(system, user, tokens).prefix(format!("```{fence}\n")).code();

    // Each attempt is scored; the best one stands if none passes everything.
    let mut best: Option<Candidate> = None;
    let mut ask = base.clone();
    for attempt in 0..attempts {
        let share = 1.0 / (attempts - attempt) as f64;
        let Some(reply) = writer.ask(&ask.clone().share(share)).await? else { break };
        let (code, closed) = fenced_code(&reply.text);
        let closed = closed || reply.finish == FinishReason::Eos;
        let own = code_checks(&code, language, closed);
        let mut failures = failed_details(&own);
        // The general checks the response will carry too: a loop repeating itself, template tokens.
        failures.extend(
            checks::run(&plan.requirements, brief.phase, &code)
                .into_iter()
                .filter(|c| !c.passed && c.name.starts_with("no_"))
                .map(|c| c.detail),
        );
        if let Some(terms_check) = terms_check(&code, &terms, language)
            && !terms_check.passed
        {
            failures.push(format!("it {}", terms_check.detail));
        }
        // Advice for the next attempt, not a failure of its own (failures rank the candidates).
        let hint = flag_hint(&code, &terms, language);
        let candidate = Candidate { code, closed, failures, hint };
        let done = candidate.failures.is_empty();
        if best.as_ref().is_none_or(|b| candidate.better_than(b)) {
            best = Some(candidate);
        }
        if done {
            break;
        }
        let failure = best
            .as_ref()
            .map(|b| b.failures.iter().chain(&b.hint).cloned().collect::<Vec<_>>().join("; "))
            .unwrap_or_default();
        ask = base.repair(&failure);
    }
    let Some(best) = best else { return Ok(Draft::default()) };
    if !best.failures.is_empty() {
        tracing::info!(failures = %best.failures.join("; "), "no attempt at the code passed every check");
    }
    // A function is known by its name; a script by what the title says it does.
    let is_function = brief.task_type.as_deref().is_some_and(|t| t.to_lowercase().contains("function"));
    let filename = file_name(&best.code, language, &brief.title, is_function);
    let mut text = format!(
        "```{fence}\n{}\n```\n\n## How to run\n\n{}",
        best.code.trim_end(),
        how_to_run(&best.code, language, &filename)
    );
    if !best.closed {
        text.push_str("\n\nThe code was cut short before it was finished.\n");
    }
    let note = match brief.phase {
        Phase::Prototype => Some(
            "This prototype is a first version of the code; the final delivery reworks whatever its checks find."
                .to_string(),
        ),
        Phase::Final => None,
    };
    Ok(Draft {
        artifacts: vec![code_artifact(&brief.title, &filename, language, &best.code)],
        checks: code_checks(&best.code, language, best.closed)
            .into_iter()
            .chain(terms_check(&best.code, &terms, language))
            .collect(),
        complete: best.closed,
        text,
        note,
    })
}

/// One attempt at the code, with what it failed.
struct Candidate {
    code: String,
    closed: bool,
    failures: Vec<String>,
    /// How to mend one of the failures, said in the next attempt's prompt.
    hint: Option<String>,
}

impl Candidate {
    /// Fewer failures; then finished over cut short; then the longer (more of the task done).
    fn better_than(&self, other: &Candidate) -> bool {
        (self.failures.len(), !self.closed, usize::MAX - self.code.len())
            < (other.failures.len(), !other.closed, usize::MAX - other.code.len())
    }
}

/// Command-line flags (`--dry-run`) and names the brief spells as identifiers (`DateTimeOriginal`):
/// the code must use them as given.
fn brief_terms(brief: &Brief) -> Vec<String> {
    let flag = Regex::new(r"(?:^|[\s(`'\x22])(--[a-z][a-z0-9-]*[a-z0-9])").expect("valid pattern");
    let camel = Regex::new(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b").expect("valid pattern");
    let mut terms: Vec<String> = Vec::new();
    for caps in flag.captures_iter(&brief.description) {
        if !terms.contains(&caps[1].to_string()) {
            terms.push(caps[1].to_string());
        }
    }
    for m in camel.find_iter(&brief.description) {
        if !terms.contains(&m.as_str().to_string()) {
            terms.push(m.as_str().to_string());
        }
    }
    terms
}

/// The identifiers and string contents of `code` read as Python, comments left out; `None`
/// when it is not Python the lexer can read.
fn python_names_and_strings(code: &str) -> Option<String> {
    use rustpython_parser::Tok;
    let mut text = String::new();
    for token in rustpython_parser::lexer::lex(code, rustpython_parser::Mode::Module) {
        match token.ok()?.0 {
            Tok::Name { name } => text.push_str(&name),
            Tok::String { value, .. } => text.push_str(&value),
            _ => continue,
        }
        text.push('\n');
    }
    Some(text)
}

/// How to add the brief's command-line flags the code left out, for the next attempt: models
/// readily make `--dry-run` a function parameter instead, and "never uses" alone does not
/// tell them where it belongs.
fn flag_hint(code: &str, terms: &[String], language: &str) -> Option<String> {
    if language != "python" {
        return None;
    }
    let missing: Vec<&str> =
        missing_terms(code, terms, language).into_iter().map(String::as_str).filter(|t| t.starts_with("--")).collect();
    if missing.is_empty() {
        return None;
    }
    let calls: Vec<String> =
        missing.iter().map(|flag| format!("parser.add_argument(\"{flag}\", action=\"store_true\")")).collect();
    Some(format!("read {} from the command line with argparse: {}", join_names(&missing), calls.join("; ")))
}

/// The brief's flags and names the code does not use as given. In Python only its names and
/// strings count: `# run with --dry-run` in a comment is not a flag.
fn missing_terms<'t>(code: &str, terms: &'t [String], language: &str) -> Vec<&'t String> {
    let used = match language {
        "python" => python_names_and_strings(code).unwrap_or_else(|| code.to_string()),
        _ => code.to_string(),
    };
    terms.iter().filter(|t| !used.contains(t.as_str())).collect()
}

/// Whether the code uses the brief's flags and names as given (none to check: no check).
fn terms_check(code: &str, terms: &[String], language: &str) -> Option<Check> {
    if terms.is_empty() {
        return None;
    }
    let missing = missing_terms(code, terms, language);
    Some(match missing.is_empty() {
        true => check("code:brief_terms", true, format!("uses {} as the brief gives them", join_names(terms))),
        false => check("code:brief_terms", false, format!("never uses {}", join_names(&missing))),
    })
}

/// Requirements other than the language, as lines for the prompt.
fn other_requirements(brief: &Brief) -> Vec<String> {
    brief
        .requirements
        .iter()
        .chain(&brief.quality_rules)
        .filter(|(key, _)| !matches!(key.as_str(), "language" | "programming_language" | "lang"))
        .map(|(key, value)| format!("{}: {}", key.replace('_', " "), crate::protocol::Requirement(value).as_text()))
        .collect()
}

/// How to run `code` saved as `filename`, read from the code itself (its imports and options).
fn how_to_run(code: &str, language: &str, filename: &str) -> String {
    match language {
        "python" => {
            let mut steps = vec![format!("Save the code as `{filename}`.")];
            let packages = python_packages(code);
            if !packages.is_empty() {
                steps.push(format!("Install what it imports: `pip install {}`.", packages.join(" ")));
            }
            let positional = Regex::new(r#"add_argument\(\s*["']([A-Za-z_][\w-]*)["']"#).expect("valid pattern");
            let optional = Regex::new(r#"add_argument\(\s*["'](-{1,2}[\w-]+)["']"#).expect("valid pattern");
            let mut usage = format!("python3 {filename}");
            for caps in positional.captures_iter(code) {
                usage.push_str(&format!(" <{}>", &caps[1]));
            }
            for caps in optional.captures_iter(code) {
                usage.push_str(&format!(" [{}]", &caps[1]));
            }
            let function = Regex::new(r"(?m)^def ([A-Za-z]\w*)").expect("valid pattern");
            // A call at the top level runs when the file does: that is a script, whatever else
            // it defines.
            let top_level_call = Regex::new(r"(?m)^[A-Za-z_][\w.]*\(").expect("valid pattern");
            let library = !code.contains("__main__") && !code.contains("argparse") && !top_level_call.is_match(code);
            match function.captures(code) {
                Some(caps) if library => {
                    let stem = filename.trim_end_matches(".py");
                    steps.push(format!("Use it from Python: `from {stem} import {}`.", &caps[1]));
                }
                _ => steps.push(format!("Run it with Python 3: `{usage}`.")),
            }
            numbered(&steps)
        }
        "sql" => numbered(&[
            format!("Save the query as `{filename}`."),
            format!(
                "Run it in your database client, e.g. `psql -d your_db -f {filename}` or `sqlite3 your.db < {filename}`."
            ),
        ]),
        "bash" => numbered(&[
            format!("Save the script as `{filename}` and make it executable: `chmod +x {filename}`."),
            format!("Run it: `./{filename}`."),
        ]),
        "javascript" => {
            numbered(&[format!("Save the code as `{filename}`."), format!("Run it with Node.js: `node {filename}`.")])
        }
        "typescript" => {
            numbered(&[format!("Save the code as `{filename}`."), format!("Run it: `npx tsx {filename}`.")])
        }
        "rust" => {
            let stem = filename.trim_end_matches(".rs");
            numbered(&[
                format!("Save the code as `{filename}`."),
                format!("Compile and run it: `rustc {filename} && ./{stem}`."),
            ])
        }
        "go" => numbered(&[format!("Save the code as `{filename}`."), format!("Run it: `go run {filename}`.")]),
        _ => {
            numbered(&[format!("Save the code as `{filename}` and run it with your {} toolchain.", display(language))])
        }
    }
}

fn numbered(steps: &[String]) -> String {
    steps.iter().enumerate().map(|(i, s)| format!("{}. {s}\n", i + 1)).collect()
}

/// Third-party packages a Python script imports, by their pip names.
fn python_packages(code: &str) -> Vec<String> {
    const STDLIB: &[&str] = &[
        "__future__",
        "abc",
        "argparse",
        "array",
        "ast",
        "asyncio",
        "base64",
        "bisect",
        "calendar",
        "collections",
        "configparser",
        "contextlib",
        "copy",
        "csv",
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",
        "email",
        "enum",
        "errno",
        "fnmatch",
        "fractions",
        "functools",
        "getpass",
        "glob",
        "gzip",
        "hashlib",
        "heapq",
        "hmac",
        "html",
        "http",
        "imghdr",
        "importlib",
        "inspect",
        "io",
        "itertools",
        "json",
        "locale",
        "logging",
        "math",
        "mimetypes",
        "multiprocessing",
        "numbers",
        "operator",
        "os",
        "pathlib",
        "pickle",
        "platform",
        "pprint",
        "queue",
        "random",
        "re",
        "secrets",
        "shlex",
        "shutil",
        "signal",
        "socket",
        "sqlite3",
        "ssl",
        "stat",
        "statistics",
        "string",
        "struct",
        "subprocess",
        "sys",
        "tarfile",
        "tempfile",
        "textwrap",
        "threading",
        "time",
        "timeit",
        "traceback",
        "types",
        "typing",
        "unicodedata",
        "unittest",
        "urllib",
        "uuid",
        "warnings",
        "weakref",
        "xml",
        "zipfile",
        "zoneinfo",
    ];
    const PIP_NAMES: &[(&str, &str)] = &[
        ("PIL", "Pillow"),
        ("cv2", "opencv-python"),
        ("yaml", "PyYAML"),
        ("bs4", "beautifulsoup4"),
        ("sklearn", "scikit-learn"),
        ("dateutil", "python-dateutil"),
        ("exifread", "ExifRead"),
        ("dotenv", "python-dotenv"),
    ];
    let import = Regex::new(r"(?m)^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_]\w*))")
        .expect("valid pattern");
    let mut packages: Vec<String> = Vec::new();
    for caps in import.captures_iter(code) {
        let module = caps.get(1).or(caps.get(2)).map_or("", |m| m.as_str());
        if module.is_empty() || STDLIB.contains(&module) {
            continue;
        }
        let name = PIP_NAMES.iter().find(|(m, _)| *m == module).map_or(module, |(_, pip)| pip).to_string();
        if !packages.contains(&name) {
            packages.push(name);
        }
    }
    packages.truncate(6);
    packages
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture;
    use super::*;

    #[test]
    fn the_briefs_flags_and_names_must_be_used_as_given() {
        let brief = fixture("script-rename-photos");
        let terms = brief_terms(&brief);
        assert_eq!(terms, ["--dry-run", "DateTimeOriginal"]);
        let used = terms_check("p.add_argument('--dry-run')\ntags['DateTimeOriginal']", &terms, "python").unwrap();
        assert!(used.passed, "{used:?}");
        let unused = terms_check("dry_run = True", &terms, "python").unwrap();
        assert!(!unused.passed && unused.detail.contains("\"--dry-run\", \"DateTimeOriginal\""), "{unused:?}");
        assert!(terms_check("x", &[], "python").is_none());
        let in_a_comment = terms_check("x = 1  # run with --dry-run for DateTimeOriginal", &terms, "python").unwrap();
        assert!(!in_a_comment.passed, "a comment is not code: {}", in_a_comment.detail);
    }

    #[test]
    fn how_to_run_reads_the_scripts_options_and_imports() {
        let code = "import argparse\nfrom PIL import Image\nimport os\np = argparse.ArgumentParser()\np.add_argument(\"folder\")\np.add_argument(\"--dry-run\", action=\"store_true\")";
        let steps = how_to_run(code, "python", "rename.py");
        assert!(steps.contains("pip install Pillow"), "{steps}");
        assert!(steps.contains("`python3 rename.py <folder> [--dry-run]`"), "{steps}");
        assert!(!how_to_run("import os", "python", "a.py").contains("pip"));
        let library = "def rename(folder):\n    pass\n";
        assert!(how_to_run(library, "python", "a.py").contains("`from a import rename`"));
        let script = "def rename(folder):\n    pass\n\nrename('photos')\n";
        assert!(how_to_run(script, "python", "a.py").contains("`python3 a.py`"));
    }

    #[test]
    fn a_missing_flag_comes_with_how_to_add_it() {
        let terms = vec!["--dry-run".to_string(), "DateTimeOriginal".to_string()];
        let hint = flag_hint("def rename(folder, dry_run=False): ...", &terms, "python").unwrap();
        assert!(hint.contains(r#"parser.add_argument("--dry-run", action="store_true")"#), "{hint}");
        assert!(!hint.contains("DateTimeOriginal"), "only flags: {hint}");
        assert_eq!(flag_hint("p.add_argument('--dry-run')", &terms, "python"), None);
        assert_eq!(flag_hint("", &terms, "bash"), None);
    }
}
