//! Code tasks: reviews of code in the brief, scripts and queries written from a description, and
//! regular expressions. Owns what can be checked about code without running it — a closed fence,
//! balanced brackets and strings, Python that parses (`rustpython-parser`), a regular expression
//! that compiles and matches the brief's own examples — and the repair rounds that name a failed
//! check.
//! The code also goes out as a `file` artifact with a filename taken from the code or the title.
//!
//! Small models write broken code far more often than broken prose, so nothing here trusts a reply
//! until it passes the checks. A review leans on what can be found for certain: a few common Python
//! pitfalls are detected and fixed here (division by an empty list's length, a "top n" taken from an
//! ascending sort, …); the model's rewrite replaces that fix only if it passes every check, keeps
//! every function and no longer has the pitfalls.

use std::collections::BTreeSet;

use regex::Regex;

use super::compose::{Ask, Draft, Writer, check};
use super::requirements::OutputFormat;
use super::{GenerationPlan, checks, general, prompt};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::{Artifact, Brief, Check, Phase};

/// The brief's text beyond this is not sent: the code and its first paragraphs carry the task.
const MAX_BRIEF_CHARS: usize = 4000;
/// Model attempts at the whole code, by phase (each later one names what failed before).
const FINAL_ATTEMPTS: usize = 4;
const PROTOTYPE_ATTEMPTS: usize = 2;
/// A regular expression is one short line, so it gets more tries.
const REGEX_ATTEMPTS: usize = 6;
/// Tokens for written code: room for a complete script, not for a rambling one.
const FINAL_CODE_TOKENS: usize = 768;
const PROTOTYPE_CODE_TOKENS: usize = 512;
/// A model finding longer than this is an essay, not a finding.
const MAX_FINDING_WORDS: usize = 30;

/// What kind of code task a brief is.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeTask {
    /// Code is in the brief: find its problems and correct it.
    Review { original: String },
    /// A regular expression, checked against the brief's examples.
    Regex,
    /// Code written from a description: a script, a query, a function.
    Write,
}

impl CodeTask {
    pub fn of(brief: &Brief) -> Self {
        match find_code(&brief.description) {
            Some(original) => CodeTask::Review { original },
            None if is_regex_task(brief) => CodeTask::Regex,
            None => CodeTask::Write,
        }
    }
}

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let language = language(&plan.requirements.format, brief);
    let task = CodeTask::of(brief);
    tracing::debug!(?task, %language, "code task");
    let draft = match task {
        CodeTask::Review { original } => review(brief, &language, &original, writer).await?,
        CodeTask::Regex => regex_task(brief, &language, writer).await?,
        CodeTask::Write => write_code(brief, plan, &language, writer).await?,
    };
    // Nothing written at all (the engine turned every call away): the general strategy's draft is
    // still better than an empty one.
    if draft.text.trim().is_empty() {
        return general::write(brief, plan, writer).await;
    }
    Ok(draft)
}

// ---------------------------------------------------------------------------------------------
// Review

/// One problem found in the code, and how it was fixed, if it was.
#[derive(Debug, Clone, PartialEq)]
struct Finding {
    /// `Bug`, `Edge case` or `Style`.
    kind: &'static str,
    /// Which check found it (a fixed finding must not be found again in the corrected code).
    rule: &'static str,
    text: String,
    /// How the checked fix made here corrects it, if it does.
    fix: Option<String>,
}

async fn review(brief: &Brief, language: &str, original: &str, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let (mut findings, fixed_code) = match language {
        "python" => lint_python(original),
        _ => (Vec::new(), original.to_string()),
    };
    let system = format!("You are a senior {} developer. You fix bugs with small, careful changes.", display(language));
    let fence = fence_language(language);

    // The model's own findings only when the local checks found little: they are often wrong.
    if findings.len() < 2 {
        let user = format!(
            "Review this {} code and list its bugs, edge cases and style issues, one per line, each under 20 words.\n\n```{fence}\n{original}\n```",
            display(language)
        );
        let ask = Ask::new(system.clone(), user, 200).prefix("1.").share(0.3);
        let names = identifiers(original);
        let reply = writer.ask(&ask).await?;
        for text in reply.map(|r| model_findings(&r.text, &names)).unwrap_or_default().into_iter().take(3) {
            findings.push(Finding { kind: "Note", rule: "model", text, fix: None });
        }
    }

    // The model's rewrite, accepted only if it is at least as good as the fix made here.
    let issues: Vec<String> = findings.iter().filter(|f| f.fix.is_some()).map(|f| f.text.clone()).collect();
    let mut user = format!("Here is {} code:\n\n```{fence}\n{original}\n```\n\n", display(language));
    if !issues.is_empty() {
        user.push_str("Fix these problems:\n");
        for (i, issue) in issues.iter().enumerate() {
            user.push_str(&format!("{}. {issue}\n", i + 1));
        }
        user.push('\n');
    }
    user.push_str("Write the corrected code, keeping every function. Output only the code.");
    let tokens = (original.len() / 2 + 200).min(FINAL_CODE_TOKENS);
    let ask = Ask::new(system, user, tokens).prefix(format!("```{fence}\n")).code().share(0.5);
    let attempts = match brief.phase {
        Phase::Final => 2,
        Phase::Prototype => 1,
    };
    let functions: BTreeSet<String> = python_functions(original).into_iter().map(|f| f.name).collect();
    let accepted = writer
        .ask_until(&ask, attempts, |reply| {
            let (code, closed) = fenced_code(&reply.text);
            let mut failures = failed_details(&code_checks(&code, language, closed));
            let missing: Vec<&String> =
                functions.iter().filter(|name| !code.contains(&format!("def {name}"))).collect();
            if !missing.is_empty() {
                failures.push(format!("it drops the function(s) {}", join_names(&missing)));
            }
            if language == "python" {
                let (still, _) = lint_python(&code);
                let unfixed: Vec<String> = still.iter().filter(|f| f.fix.is_some()).map(|f| f.text.clone()).collect();
                if !unfixed.is_empty() {
                    failures.push(format!("it still has this problem: {}", unfixed.join("; ")));
                }
            }
            match failures.is_empty() {
                true => Ok(code),
                false => Err(failures.join("; ")),
            }
        })
        .await?;
    let (corrected, by_model) = match accepted {
        Ok(code) => (code, true),
        Err(failure) => {
            tracing::info!(%failure, "the model's corrected code failed its checks; using the checked fix");
            (fixed_code, false)
        }
    };

    let mut text = String::from("## Findings\n\n");
    if findings.is_empty() {
        text.push_str("1. No definite bugs found by the checks run on this code.\n");
    }
    for (i, finding) in findings.iter().enumerate() {
        let fixed = match (&finding.fix, by_model) {
            (None, _) => String::new(),
            (Some(_), true) => " Fixed in the corrected code.".to_string(),
            (Some(fix), false) => format!(" {fix}"),
        };
        text.push_str(&format!("{}. **{}:** {}{fixed}\n", i + 1, finding.kind, finding.text));
    }
    text.push_str(&format!("\n## Corrected code\n\n```{fence}\n{}\n```\n", corrected.trim_end()));
    if !by_model && corrected.trim() == original.trim() {
        text.push_str("\nThe code is unchanged: no fix could be verified.\n");
    }
    let checks = code_checks(&corrected, language, true);
    let filename = file_name(&corrected, language, &brief.title, true);
    let note = match brief.phase {
        Phase::Prototype => Some(
            "This prototype is the complete review; the final re-checks the corrected code and gives the model more \
             attempts at a cleaner rewrite."
                .to_string(),
        ),
        Phase::Final => None,
    };
    Ok(Draft {
        artifacts: vec![code_artifact(&brief.title, &filename, language, &corrected)],
        text,
        checks,
        complete: true,
        note,
    })
}

/// The code in a brief: a fenced block, or the lines from the first one that starts like code.
fn find_code(description: &str) -> Option<String> {
    if let Some(start) = description.find("```") {
        let after = &description[start + 3..];
        let body = after.split_once('\n').map(|(_, body)| body)?;
        let end = body.find("```").unwrap_or(body.len());
        let code = body[..end].trim_end();
        return (code.lines().count() >= 2).then(|| code.to_string());
    }
    const STARTS: &[&str] = &[
        "def ",
        "class ",
        "import ",
        "from ",
        "async def ",
        "function ",
        "const ",
        "let ",
        "var ",
        "SELECT ",
        "WITH ",
        "CREATE ",
        "INSERT ",
        "UPDATE ",
        "DELETE ",
        "#!/",
        "fn ",
        "pub fn ",
        "public ",
        "#include",
        "package ",
    ];
    let lines: Vec<&str> = description.lines().collect();
    let start = lines.iter().position(|line| STARTS.iter().any(|s| line.starts_with(s)))?;
    let mut code: Vec<&str> = lines[start..].to_vec();
    // Prose after the code ("Thanks!") is not code: drop unindented lines of plain words at the end.
    while code.last().is_some_and(|l| {
        let t = l.trim();
        t.is_empty() || (!l.starts_with(char::is_whitespace) && is_prose(t) && !STARTS.iter().any(|s| l.starts_with(s)))
    }) {
        code.pop();
    }
    (code.len() >= 2).then(|| code.join("\n"))
}

/// Several words and none of code's punctuation.
fn is_prose(line: &str) -> bool {
    line.split_whitespace().count() >= 4 && !line.contains(['(', ')', '=', '{', '}', '[', ']', ';'])
}

/// Findings in the model's numbered list that name something in the code and are short.
fn model_findings(reply: &str, names: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in reply.lines() {
        let Some(item) = list_item_text(line) else { continue };
        let item = item.replace("**", "");
        let words = item.split_whitespace().count();
        let lower = item.to_lowercase();
        let names_code = item
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word.len() >= 3 && names.contains(word));
        let claims_nothing = lower.contains("no bug") || lower.contains("no issue") || lower.contains("no edge");
        if (4..=MAX_FINDING_WORDS).contains(&words) && names_code && !claims_nothing && !item.contains("```") {
            let mut item = item.trim().to_string();
            if !item.ends_with(['.', '!', '?']) {
                item.push('.');
            }
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// The text of a numbered or bulleted line.
fn list_item_text(line: &str) -> Option<&str> {
    let t = line.trim();
    let rest = match t.strip_prefix(['-', '*', '•']) {
        Some(rest) => rest,
        None => {
            let digits = t.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            t[digits..].strip_prefix(['.', ')', ':'])?
        }
    };
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
}

/// Names the code defines or uses: functions, parameters, variables (for telling a finding about
/// this code from a generic one).
fn identifiers(code: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "def", "for", "return", "if", "else", "elif", "while", "in", "and", "or", "not", "import", "from", "class",
        "the", "with", "try", "except", "true", "false", "none", "True", "False", "None", "pass", "break",
    ];
    Regex::new(r"[A-Za-z_][A-Za-z0-9_]*")
        .expect("valid pattern")
        .find_iter(code)
        .map(|m| m.as_str().to_string())
        .filter(|w| w.len() >= 3 && !KEYWORDS.contains(&w.as_str()))
        .collect()
}

/// A Python function: its name, parameters and the lines it spans (0-based, the `def` line first).
#[derive(Debug, Clone)]
struct PyFunction {
    name: String,
    /// (name, default) for each parameter.
    params: Vec<(String, Option<String>)>,
    def_line: usize,
    /// The lines after the `def` line that belong to it.
    body: std::ops::Range<usize>,
    /// The indentation of the first body line.
    body_indent: String,
}

fn python_functions(code: &str) -> Vec<PyFunction> {
    let def = Regex::new(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\((.*)\)\s*(?:->[^:]*)?:\s*(?:#.*)?$")
        .expect("valid pattern");
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(caps) = def.captures(line) else { continue };
        let indent = caps[1].len();
        let mut end = i + 1;
        while end < lines.len() {
            let l = lines[end];
            if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                break;
            }
            end += 1;
        }
        // Trailing blank lines belong to no one.
        while end > i + 1 && lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        let body_indent = lines[i + 1..end]
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l[..l.len() - l.trim_start().len()].to_string())
            .unwrap_or_else(|| format!("{}    ", &caps[1]));
        let params = caps[3]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "self" && !p.starts_with('*'))
            .map(|p| {
                let (name, default) = match p.split_once('=') {
                    Some((name, default)) => (name, Some(default.trim().to_string())),
                    None => (p, None),
                };
                (name.split(':').next().unwrap_or(name).trim().to_string(), default)
            })
            .collect();
        out.push(PyFunction { name: caps[2].to_string(), params, def_line: i, body: i + 1..end, body_indent });
    }
    out
}

/// An edit to one line: replace it, or insert lines after it.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, String),
    InsertAfter(usize, Vec<String>),
}

/// Common Python pitfalls found for certain, with the code fixed where a fix is safe.
fn lint_python(code: &str) -> (Vec<Finding>, String) {
    let lines: Vec<&str> = code.lines().collect();
    let mut findings = Vec::new();
    let mut edits = Vec::new();
    let len_division = Regex::new(r"/\s*len\(\s*([A-Za-z_]\w*)\s*\)").expect("valid pattern");
    let top_name = Regex::new(r"(?i)(top|best|most|largest|highest|biggest)").expect("valid pattern");
    let loop_var = Regex::new(r"^\s*for\s+([A-Za-z_]\w*)\s+in\b").expect("valid pattern");
    let none_compare = Regex::new(r"(==|!=)\s*None\b").expect("valid pattern");
    let bare_except = Regex::new(r"^(\s*)except\s*:").expect("valid pattern");

    for function in python_functions(code) {
        let body = &lines[function.body.clone()];
        let name = &function.name;
        // Where a guard goes: after the def line, or after a docstring that opens the body.
        let guard_after = docstring_end(&lines, function.body.clone()).unwrap_or(function.def_line);

        // Division by the length of a parameter that may be empty.
        for line in body {
            let Some(caps) = len_division.captures(line) else { continue };
            let var = &caps[1];
            let is_param = function.params.iter().any(|(p, _)| p == var);
            let guarded = Regex::new(&format!(r"\bif\s+(not\s+{var}\b|len\(\s*{var}\s*\)|{var}\s*(:|==|!=|is))"))
                .is_ok_and(|guard| body.iter().any(|l| guard.is_match(l)));
            if is_param && !guarded {
                findings.push(Finding {
                    kind: "Bug",
                    rule: "division_by_len",
                    text: format!("`{name}` divides by `len({var})`, so an empty `{var}` raises ZeroDivisionError."),
                    fix: Some(format!("The corrected code returns 0.0 for an empty `{var}`.")),
                });
                let indent = &function.body_indent;
                edits.push(Edit::InsertAfter(
                    guard_after,
                    vec![format!("{indent}if not {var}:"), format!("{indent}    return 0.0")],
                ));
                break;
            }
        }

        // "Top n" taken from an ascending sort is the bottom n.
        if top_name.is_match(name) {
            for (offset, line) in body.iter().enumerate() {
                let Some(start) = line.find("sorted(") else { continue };
                let Some(close) = matching_paren(line, start + "sorted".len()) else { continue };
                let call = &line[start..=close];
                let after = line[close + 1..].trim_start();
                if !call.contains("reverse") && after.starts_with("[:") {
                    findings.push(Finding {
                        kind: "Bug",
                        rule: "top_n_ascending",
                        text: format!(
                            "`{name}` sorts in ascending order, so the slice takes the smallest entries, not the top ones."
                        ),
                        fix: Some("The corrected code sorts with `reverse=True`.".into()),
                    });
                    let fixed = format!("{}, reverse=True{}", &line[..close], &line[close..]);
                    edits.push(Edit::Replace(function.body.start + offset, fixed));
                    break;
                }
            }
        }

        // Mutable default arguments are shared between calls.
        for (param, default) in &function.params {
            let Some(default) = default else { continue };
            if !matches!(default.as_str(), "[]" | "{}" | "list()" | "dict()" | "set()") {
                continue;
            }
            findings.push(Finding {
                kind: "Bug",
                rule: "mutable_default",
                text: format!(
                    "`{name}` uses `{default}` as the default of `{param}`: one object shared by every call."
                ),
                fix: Some(format!("The corrected code defaults `{param}` to None and makes a new one per call.")),
            });
            let def = lines[function.def_line].replacen(&format!("{param}={default}"), &format!("{param}=None"), 1);
            let def = def.replacen(&format!("{param} = {default}"), &format!("{param}=None"), 1);
            edits.push(Edit::Replace(function.def_line, def));
            let indent = &function.body_indent;
            edits.push(Edit::InsertAfter(
                guard_after,
                vec![format!("{indent}if {param} is None:"), format!("{indent}    {param} = {default}")],
            ));
        }

        // Items read by key without a default: a missing key raises KeyError.
        for line in body {
            let Some(caps) = loop_var.captures(line) else { continue };
            let var = caps[1].to_string();
            let keyed = Regex::new(&format!(r#"\b{var}\[\s*['"]([^'"]+)['"]\s*\]"#)).expect("valid pattern");
            if let Some(key) = body.iter().find_map(|l| keyed.captures(l).map(|c| c[1].to_string())) {
                findings.push(Finding {
                    kind: "Edge case",
                    rule: "key_error",
                    text: format!(
                        "`{name}` reads `{var}['{key}']` directly, so an item without a `'{key}'` key raises KeyError; validate the input or use `.get()` if such items should be skipped."
                    ),
                    fix: None,
                });
                break;
            }
        }
    }

    for (i, line) in lines.iter().enumerate() {
        if let Some(caps) = bare_except.captures(line) {
            findings.push(Finding {
                kind: "Bug",
                rule: "bare_except",
                text: format!("line {}: a bare `except:` also catches KeyboardInterrupt and hides real errors.", i + 1),
                fix: Some("The corrected code catches `Exception`.".into()),
            });
            edits.push(Edit::Replace(i, format!("{}except Exception:{}", &caps[1], &line[caps[0].len()..])));
        }
        if none_compare.is_match(line) && !line.trim_start().starts_with('#') {
            findings.push(Finding {
                kind: "Style",
                rule: "none_comparison",
                text: format!("line {}: compare with None using `is` / `is not`, not `==` / `!=`.", i + 1),
                fix: Some("The corrected code does.".into()),
            });
            let fixed = none_compare.replace_all(line, |c: &regex::Captures| match &c[1] {
                "==" => "is None".to_string(),
                _ => "is not None".to_string(),
            });
            edits.push(Edit::Replace(i, fixed.into_owned()));
        }
    }

    let functions = python_functions(code);
    if !functions.is_empty() && !code.contains("\"\"\"") && !code.contains("'''") {
        findings.push(Finding {
            kind: "Style",
            rule: "docstrings",
            text: "No function has a docstring; say what each one expects (input shape, keys) and returns.".into(),
            fix: None,
        });
    }
    // Bugs first, then edge cases, then style.
    let order = |f: &Finding| match f.kind {
        "Bug" => 0,
        "Edge case" => 1,
        _ => 2,
    };
    findings.sort_by_key(order);
    (findings, apply_edits(&lines, edits))
}

/// The last line of a docstring opening the body, if the body opens with one.
fn docstring_end(lines: &[&str], body: std::ops::Range<usize>) -> Option<usize> {
    let first = body.clone().find(|&i| !lines[i].trim().is_empty())?;
    let t = lines[first].trim();
    let quote = ["\"\"\"", "'''"].into_iter().find(|q| t.starts_with(q))?;
    if t.len() >= 6 && t[3..].contains(quote) {
        return Some(first);
    }
    (first + 1..body.end).find(|&i| lines[i].contains(quote))
}

/// The index of the `)` closing the `(` at `open` in `line`.
fn matching_paren(line: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn apply_edits(lines: &[&str], mut edits: Vec<Edit>) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let at = |e: &Edit| match e {
        Edit::Replace(i, _) | Edit::InsertAfter(i, _) => *i,
    };
    // From the bottom up, so earlier line numbers stay valid; on one line, replace before inserting.
    edits.sort_by_key(|e| (std::cmp::Reverse(at(e)), matches!(e, Edit::InsertAfter(..))));
    let mut inserted: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
    for edit in edits {
        match edit {
            Edit::Replace(i, text) => out[i] = text,
            Edit::InsertAfter(i, new) => {
                if inserted.insert((i, new.clone())) {
                    for (k, line) in new.into_iter().enumerate() {
                        out.insert(i + 1 + k, line);
                    }
                }
            }
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Writing code from a description

async fn write_code(
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
    let filename = file_name(&best.code, language, &brief.title, false);
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
            "The final gives the model more attempts, each naming what the last one failed, and keeps only code that \
             passes the local checks."
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
            steps.push(format!("Run it with Python 3: `{usage}`."));
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

// ---------------------------------------------------------------------------------------------
// Regular expressions

fn is_regex_task(brief: &Brief) -> bool {
    let text =
        format!("{} {} {}", brief.title, brief.task_type.as_deref().unwrap_or(""), brief.description).to_lowercase();
    text.contains("regex") || text.contains("regular expression")
}

async fn regex_task(brief: &Brief, language: &str, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let examples = regex_examples(&brief.description);
    let mut user = format!("# {}\n\n{}\n", brief.title, prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS));
    user.push_str("\nWrite the regular expression only, on one line.");
    let ask = Ask::new("You are an expert in regular expressions. You answer with the pattern only.", user, 80)
        .prefix("```regex\n")
        .code()
        .share(0.3);
    let mut best: Option<(String, usize)> = None;
    let attempts = match brief.phase {
        Phase::Final => REGEX_ATTEMPTS,
        Phase::Prototype => REGEX_ATTEMPTS / 2,
    };
    let outcome = writer
        .ask_until(&ask, attempts, |reply| {
            let pattern = regex_from_reply(&reply.text);
            let failures = failed_details(&regex_checks(&pattern, &examples));
            if best.as_ref().is_none_or(|(_, n)| failures.len() < *n) {
                best = Some((pattern.clone(), failures.len()));
            }
            match failures.is_empty() {
                true => Ok(pattern),
                false => Err(failures.join("; ")),
            }
        })
        .await?;
    let pattern = match outcome {
        Ok(pattern) => pattern,
        Err(_) => match best {
            Some((pattern, _)) => pattern,
            None => return Ok(Draft::default()),
        },
    };
    let checks = regex_checks(&pattern, &examples);
    let mut text = format!("```regex\n{pattern}\n```\n");
    if !examples.matching.is_empty() || !examples.not_matching.is_empty() {
        text.push_str(
            "\n## Tested against the examples in the brief\n\n| Text | Should match | Matches |\n|---|---|---|\n",
        );
        let full = Regex::new(&format!("^(?:{pattern})$")).ok();
        for (example, expected) in
            examples.matching.iter().map(|e| (e, true)).chain(examples.not_matching.iter().map(|e| (e, false)))
        {
            let got = full.as_ref().map(|r| r.is_match(example));
            let got = match got {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            };
            text.push_str(&format!("| `{example}` | {} | {got} |\n", if expected { "yes" } else { "no" }));
        }
    }
    let usage_language = if language == "regex" { "python" } else { language };
    if usage_language == "python" {
        let raw = pattern.replace('"', "\\\"");
        text.push_str(&format!(
            "\n## How to use\n\n```python\nimport re\n\nPATTERN = re.compile(r\"{raw}\")\n\ndef is_valid(text):\n    return PATTERN.fullmatch(text) is not None\n```\n"
        ));
    }
    Ok(Draft {
        artifacts: vec![Artifact::file(brief.title.clone(), "pattern.txt", "text/plain", format!("{pattern}\n"))],
        checks,
        complete: true,
        text,
        note: None,
    })
}

/// Strings the brief says should and should not match.
#[derive(Debug, Default, PartialEq)]
struct Examples {
    matching: Vec<String>,
    not_matching: Vec<String>,
}

/// Examples in sentences that say what should (not) match: quoted or backticked strings, or a list
/// after a colon.
fn regex_examples(description: &str) -> Examples {
    let quoted = Regex::new(r#""([^"]+)"|`([^`]+)`|'([^'\s][^']*)'"#).expect("valid pattern");
    let mut out = Examples::default();
    for line in description.lines() {
        for sentence in line.split(". ").flat_map(|s| s.split("; ")) {
            let lower = sentence.to_lowercase();
            let negative = ["not match", "n't match", "reject", "invalid", "must not", "should not", "shouldn't"]
                .iter()
                .any(|w| lower.contains(w));
            let positive = ["match", "valid", "accept", "e.g", "example", "such as"].iter().any(|w| lower.contains(w));
            if !negative && !positive {
                continue;
            }
            let mut found: Vec<String> = quoted
                .captures_iter(sentence)
                .filter_map(|c| c.get(1).or(c.get(2)).or(c.get(3)).map(|m| m.as_str().to_string()))
                .collect();
            if found.is_empty()
                && let Some((_, list)) = sentence.rsplit_once(':')
            {
                found = list
                    .split([',', ';'])
                    .flat_map(|s| s.split(" and "))
                    .map(|s| s.trim().trim_end_matches('.').to_string())
                    .filter(|s| !s.is_empty() && !s.contains(' '))
                    .collect();
            }
            let target = if negative { &mut out.not_matching } else { &mut out.matching };
            for example in found {
                if !target.contains(&example) {
                    target.push(example);
                }
            }
        }
    }
    out
}

/// The pattern in a reply: the first line of its code block, without `/…/flags` or `r"…"` quoting.
fn regex_from_reply(reply: &str) -> String {
    let (code, _) = fenced_code(reply);
    let line = code.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    // Code around the pattern (`pattern = r"…"  # comment`, `re.compile(r'…')`): the string literal.
    let literal = Regex::new(r#"(?:^|[=(,\s])r?(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')"#).expect("valid pattern");
    if let Some(caps) = literal.captures(line) {
        return caps.get(1).or(caps.get(2)).map_or("", |m| m.as_str()).to_string();
    }
    if let Some(inner) = line.strip_prefix('/')
        && let Some(end) = inner.rfind('/')
        && inner[end + 1..].chars().all(|c| c.is_ascii_alphabetic())
    {
        return inner[..end].to_string();
    }
    line.to_string()
}

/// The pattern compiles, and (as a whole-string match) matches every positive example and none of
/// the negative ones.
fn regex_checks(pattern: &str, examples: &Examples) -> Vec<Check> {
    let mut checks = vec![check(
        "code:block",
        !pattern.is_empty(),
        match pattern.is_empty() {
            true => "no pattern was written",
            false => "the pattern is in a fenced block",
        },
    )];
    let compiled = Regex::new(&format!("^(?:{pattern})$"));
    checks.push(match (&compiled, pattern.is_empty()) {
        (_, true) => check("code:regex_compiles", false, "there is no pattern to compile"),
        (Ok(_), false) => check("code:regex_compiles", true, "the pattern compiles"),
        (Err(e), false) => {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
            check("code:regex_compiles", false, format!("the pattern does not compile: {first}"))
        }
    });
    if examples.matching.is_empty() && examples.not_matching.is_empty() {
        return checks;
    }
    let Ok(regex) = compiled else {
        checks.push(check("code:regex_examples", false, "the brief's examples could not be tried"));
        return checks;
    };
    let missed: Vec<&String> = examples.matching.iter().filter(|e| !regex.is_match(e)).collect();
    let wrongly: Vec<&String> = examples.not_matching.iter().filter(|e| regex.is_match(e)).collect();
    let total = examples.matching.len() + examples.not_matching.len();
    checks.push(match (missed.is_empty(), wrongly.is_empty()) {
        (true, true) => {
            check("code:regex_examples", true, format!("all {total} examples from the brief behave as asked"))
        }
        _ => {
            let mut parts = Vec::new();
            if !missed.is_empty() {
                parts.push(format!("does not match {}", join_names(&missed)));
            }
            if !wrongly.is_empty() {
                parts.push(format!("matches {}, which it should not", join_names(&wrongly)));
            }
            check("code:regex_examples", false, format!("the pattern {}", parts.join(" and ")))
        }
    });
    checks
}

// ---------------------------------------------------------------------------------------------
// Checks on code

/// The code of the first fenced block in a reply (which starts with the fence the prefix opened),
/// and whether its closing fence was written.
fn fenced_code(reply: &str) -> (String, bool) {
    let body = match reply.trim_start().strip_prefix("```") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
        None => reply,
    };
    let mut lines = Vec::new();
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            return (trim_blank_lines(&lines), true);
        }
        lines.push(line);
    }
    (trim_blank_lines(&lines), false)
}

fn trim_blank_lines(lines: &[&str]) -> String {
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    let end = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(start, |e| e + 1);
    lines[start..end.max(start)].iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n")
}

/// The main code of a Markdown answer: the largest fenced block that is not its tests (the
/// largest of all when every block is tests), and whether that block was closed.
pub fn largest_block(markdown: &str) -> (String, bool) {
    let mut blocks: Vec<(String, bool)> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().starts_with("```");
        match (&mut current, fence) {
            (None, true) => current = Some(Vec::new()),
            (Some(lines), true) => {
                blocks.push((trim_blank_lines(lines), true));
                current = None;
            }
            (Some(lines), false) => lines.push(line),
            (None, false) => {}
        }
    }
    if let Some(lines) = current {
        blocks.push((trim_blank_lines(&lines), false));
    }
    let is_tests = |code: &str| code.contains("def test") || code.contains("import unittest") || code.contains("node:test");
    let largest = |only_code: bool| {
        blocks.iter().filter(|(code, _)| !only_code || !is_tests(code)).max_by_key(|(code, _)| code.len()).cloned()
    };
    largest(true).or_else(|| largest(false)).unwrap_or_default()
}

/// Every local check of `code` in `language`; `closed` says the fenced block was finished.
pub fn code_checks(code: &str, language: &str, closed: bool) -> Vec<Check> {
    let lang = display(language);
    let block = match (code.trim().is_empty(), closed) {
        (true, _) => check("code:block", false, format!("no {lang} code was written")),
        (false, false) => check("code:block", false, format!("the {lang} block was cut off before its end")),
        (false, true) => check("code:block", true, format!("a closed ```{} block", fence_language(language))),
    };
    let mut checks = vec![block];
    if code.trim().is_empty() {
        return checks;
    }
    checks.push(match scan(code, &lexis(language)) {
        None => check("code:balanced", true, "brackets, braces and quotes are balanced"),
        Some(problem) => check("code:balanced", false, problem),
    });
    if language == "python" {
        checks.push(match python_syntax_error(code) {
            None => check("code:python_syntax", true, "parses as Python 3"),
            Some(error) => check("code:python_syntax", false, format!("not valid Python: {error}")),
        });
        // Only code that parses can be read for names; the syntax check speaks for the rest.
        if let Some(undefined) = super::python_names::undefined_names(code) {
            checks.push(match undefined.is_empty() {
                true => check("code:python_names", true, "every name it reads is imported, defined or built in"),
                false => check(
                    "code:python_names",
                    false,
                    format!("reads {} but never imports or defines it (a NameError when run)", join_names(&undefined)),
                ),
            });
        }
    }
    checks
}

fn failed_details(checks: &[Check]) -> Vec<String> {
    checks.iter().filter(|c| !c.passed).map(|c| c.detail.clone()).collect()
}

/// How a language writes comments and strings, for scanning its brackets.
struct Lexis {
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    quotes: &'static [char],
    /// Python's `"""…"""`.
    triple_quotes: bool,
    /// Whether an ordinary string may run over a line break.
    multiline_strings: bool,
    /// Whether `()` must balance (a shell `case` pattern closes a parenthesis it never opened).
    parens: bool,
}

fn lexis(language: &str) -> Lexis {
    match language {
        "python" => Lexis {
            line_comments: &["#"],
            block_comment: None,
            quotes: &['"', '\''],
            triple_quotes: true,
            multiline_strings: false,
            parens: true,
        },
        "sql" => Lexis {
            line_comments: &["--"],
            block_comment: Some(("/*", "*/")),
            quotes: &['\'', '"'],
            triple_quotes: false,
            multiline_strings: true,
            parens: true,
        },
        "bash" => Lexis {
            line_comments: &["#"],
            block_comment: None,
            quotes: &['\'', '"'],
            triple_quotes: false,
            multiline_strings: true,
            parens: false,
        },
        // Apostrophes are lifetimes in Rust, not quotes.
        "rust" => Lexis {
            line_comments: &["//"],
            block_comment: Some(("/*", "*/")),
            quotes: &['"'],
            triple_quotes: false,
            multiline_strings: true,
            parens: true,
        },
        "javascript" | "typescript" => Lexis {
            line_comments: &["//"],
            block_comment: Some(("/*", "*/")),
            quotes: &['"', '\'', '`'],
            triple_quotes: false,
            multiline_strings: true,
            parens: true,
        },
        _ => Lexis {
            line_comments: &["//"],
            block_comment: Some(("/*", "*/")),
            quotes: &['"', '\''],
            triple_quotes: false,
            multiline_strings: false,
            parens: true,
        },
    }
}

fn starts_at(chars: &[char], at: usize, s: &str) -> bool {
    s.chars().enumerate().all(|(offset, c)| chars.get(at + offset) == Some(&c))
}

/// The first imbalance of brackets, strings or block comments in `code`, skipping what its
/// strings and comments contain.
fn scan(code: &str, lexis: &Lexis) -> Option<String> {
    let chars: Vec<char> = code.chars().collect();
    // The current line, counted from 1.
    let mut line_no = 1;
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut problem: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line_no += 1;
            i += 1;
            continue;
        }
        if lexis.line_comments.iter().any(|m| starts_at(&chars, i, m)) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if let Some((open, close)) = lexis.block_comment
            && starts_at(&chars, i, open)
        {
            let opened = line_no;
            i += open.len();
            loop {
                if i >= chars.len() {
                    problem.get_or_insert(format!("the comment opened on line {opened} is never closed"));
                    break;
                }
                if starts_at(&chars, i, close) {
                    i += close.len();
                    break;
                }
                if chars[i] == '\n' {
                    line_no += 1;
                }
                i += 1;
            }
            continue;
        }
        if lexis.quotes.contains(&c) {
            let triple_quote: String = [c; 3].iter().collect();
            let triple = lexis.triple_quotes && starts_at(&chars, i, &triple_quote);
            let width = if triple { 3 } else { 1 };
            let opened = line_no;
            i += width;
            let mut closed = false;
            while i < chars.len() {
                let d = chars[i];
                if d == '\\' {
                    if chars.get(i + 1) == Some(&'\n') {
                        line_no += 1;
                    }
                    i += 2;
                    continue;
                }
                if d == c && (!triple || starts_at(&chars, i, &triple_quote)) {
                    i += width;
                    closed = true;
                    break;
                }
                if d == '\n' {
                    if !(triple || lexis.multiline_strings) {
                        break;
                    }
                    line_no += 1;
                }
                i += 1;
            }
            if !closed {
                problem.get_or_insert(format!("the string opened on line {opened} is never closed"));
            }
            continue;
        }
        let tracked = if lexis.parens { "([{" } else { "[{" };
        let closing = if lexis.parens { ")]}" } else { "]}" };
        if tracked.contains(c) {
            stack.push((c, line_no));
        } else if closing.contains(c) {
            let expected = match c {
                ')' => '(',
                ']' => '[',
                _ => '{',
            };
            let line = line_no;
            match stack.pop() {
                Some((open, _)) if open == expected => {}
                Some((open, at)) => {
                    problem.get_or_insert(format!("line {line}: `{c}` closes the `{open}` opened on line {at}"));
                }
                None => {
                    problem.get_or_insert(format!("line {line}: `{c}` closes nothing"));
                }
            }
        }
        i += 1;
    }
    if problem.is_none()
        && let Some((open, at)) = stack.first()
    {
        problem = Some(format!("the `{open}` opened on line {at} is never closed"));
    }
    problem
}

/// Python parsed by a real parser (`rustpython-parser`): the first syntax error, with its line.
fn python_syntax_error(code: &str) -> Option<String> {
    let error = rustpython_parser::parse(code, rustpython_parser::Mode::Module, "<code>").err()?;
    let offset = usize::from(error.offset).min(code.len());
    let line = code.get(..offset).map_or(1, |before| before.matches('\n').count() + 1);
    Some(format!("line {line}: {}", error.error))
}

// ---------------------------------------------------------------------------------------------
// Languages and files

/// The language of the code: the brief's stated one, else the one its text names, else Python.
pub fn language(format: &OutputFormat, brief: &Brief) -> String {
    if let OutputFormat::Code(stated) = format
        && !stated.is_empty()
        && stated != "text"
    {
        return normalise_language(stated);
    }
    let text = format!(" {} {} ", brief.title, brief.description).to_lowercase();
    const NAMED: &[(&str, &str)] = &[
        (" python", "python"),
        (" sql", "sql"),
        (" query", "sql"),
        (" javascript", "javascript"),
        (" node", "javascript"),
        (" typescript", "typescript"),
        (" bash", "bash"),
        (" shell", "bash"),
        (" rust ", "rust"),
        (" golang", "go"),
        (" regex", "regex"),
        (" regular expression", "regex"),
    ];
    NAMED.iter().find(|(marker, _)| text.contains(marker)).map_or("python", |(_, lang)| lang).to_string()
}

fn normalise_language(stated: &str) -> String {
    let lower = stated.trim().to_lowercase();
    let first = lower.split(|c: char| !(c.is_alphanumeric() || c == '+' || c == '#')).next().unwrap_or("");
    match first {
        "py" | "python3" | "python" => "python",
        "js" | "node" | "nodejs" | "javascript" => "javascript",
        "ts" | "typescript" => "typescript",
        "sh" | "shell" | "bash" | "zsh" => "bash",
        "postgres" | "postgresql" | "mysql" | "sqlite" | "tsql" | "sql" => "sql",
        "golang" | "go" => "go",
        "rs" | "rust" => "rust",
        "regexp" | "regex" => "regex",
        other => other,
    }
    .to_string()
}

/// The language's name for prose.
pub fn display(language: &str) -> String {
    match language {
        "python" => "Python".into(),
        "sql" => "SQL".into(),
        "javascript" => "JavaScript".into(),
        "typescript" => "TypeScript".into(),
        "bash" => "Bash".into(),
        "rust" => "Rust".into(),
        "go" => "Go".into(),
        "regex" => "regular expression".into(),
        other => {
            let mut chars = other.chars();
            chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        }
    }
}

/// The word after a Markdown fence.
pub fn fence_language(language: &str) -> &str {
    match language {
        "" => "text",
        other => other,
    }
}

/// The file extension and MIME type for code in `language`.
fn extension(language: &str) -> (&'static str, &'static str) {
    match language {
        "python" => ("py", "text/x-python"),
        "sql" => ("sql", "application/sql"),
        "javascript" => ("js", "text/javascript"),
        "typescript" => ("ts", "text/x-typescript"),
        "bash" => ("sh", "application/x-sh"),
        "rust" => ("rs", "text/x-rust"),
        "go" => ("go", "text/x-go"),
        "java" => ("java", "text/x-java"),
        "ruby" => ("rb", "text/x-ruby"),
        "php" => ("php", "application/x-php"),
        "c" => ("c", "text/x-c"),
        "cpp" | "c++" => ("cpp", "text/x-c++"),
        "csharp" | "c#" => ("cs", "text/x-csharp"),
        _ => ("txt", "text/plain"),
    }
}

pub fn code_artifact(title: &str, filename: &str, language: &str, code: &str) -> Artifact {
    let (_, mime) = extension(language);
    let title = if title.is_empty() { filename.to_string() } else { title.to_string() };
    Artifact::file(title, filename, mime, format!("{}\n", code.trim_end()))
}

/// A filename for the code: for a review, its first function's name; for written code, the
/// title's key words (a model's function names can be odd); either falls back to the other.
pub fn file_name(code: &str, language: &str, title: &str, prefer_code: bool) -> String {
    let (ext, _) = extension(language);
    let function = Regex::new(r"(?m)^\s*(?:async\s+)?(?:def|function|fn|pub fn)\s+([A-Za-z_]\w*)")
        .expect("valid pattern")
        .captures_iter(code)
        .map(|c| c[1].to_string())
        .find(|name| name != "main");
    let separator = if matches!(language, "python" | "rust") { "_" } else { "-" };
    let slug = title_slug(title, separator);
    let stem = match (prefer_code, function, slug) {
        (true, Some(function), _) => function,
        (_, _, Some(slug)) => slug,
        (false, Some(function), None) => function,
        (_, None, None) => "main".to_string(),
    };
    format!("{stem}.{ext}")
}

/// The title's content words, lower case, joined by `separator`, at most five words.
fn title_slug(title: &str, separator: &str) -> Option<String> {
    const SKIP: &[&str] = &[
        "a", "an", "the", "to", "for", "of", "by", "in", "on", "and", "or", "with", "this", "that", "my", "our",
        "script", "code", "program", "function", "python", "write", "need", "please", "simple", "small",
    ];
    let words: Vec<String> = title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !SKIP.contains(w))
        .take(5)
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then(|| words.join(separator))
}

fn join_names<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| format!("\"{}\"", n.as_ref())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    const REVIEWED: &str = "def average_order_value(orders):\n    total = 0\n    for o in orders:\n        total += o['amount']\n    return total / len(orders)\n\ndef top_customers(orders, n=3):\n    counts = {}\n    for o in orders:\n        counts[o['customer']] = counts.get(o['customer'], 0) + o['amount']\n    return sorted(counts, key=counts.get)[:n]";

    fn fixture(name: &str) -> Brief {
        let path = format!("{}/tests/fixtures/briefs/{name}.json", env!("CARGO_MANIFEST_DIR"));
        parse_brief(&std::fs::read(path).unwrap()).unwrap()
    }

    fn passed(checks: &[Check], name: &str) -> bool {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:?}")).passed
    }

    #[test]
    fn code_in_the_brief_is_found_and_prose_is_not() {
        let brief = fixture("code-review-python");
        assert_eq!(find_code(&brief.description).as_deref(), Some(REVIEWED));
        assert_eq!(find_code(&fixture("script-rename-photos").description), None);
        let fenced = "Fix this:\n```js\nconst a = 1;\nconsole.log(a)\n```\nThanks!";
        assert_eq!(find_code(fenced).as_deref(), Some("const a = 1;\nconsole.log(a)"));
        let trailing = "def f(x):\n    return x\n\nLet me know what you think about it.";
        assert_eq!(find_code(trailing).as_deref(), Some("def f(x):\n    return x"));
    }

    #[test]
    fn the_review_fixture_is_fixed_for_certain() {
        let (findings, fixed) = lint_python(REVIEWED);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"division_by_len") && rules.contains(&"top_n_ascending"), "{rules:?}");
        assert!(rules.contains(&"key_error") && rules.contains(&"docstrings"), "{rules:?}");
        assert_eq!(findings[0].kind, "Bug", "bugs come first");
        assert!(
            fixed.contains("def average_order_value(orders):\n    if not orders:\n        return 0.0\n    total = 0")
        );
        assert!(fixed.contains("sorted(counts, key=counts.get, reverse=True)[:n]"), "{fixed}");
        // The fixed code passes every check and no longer has the fixed problems.
        assert!(code_checks(&fixed, "python", true).iter().all(|c| c.passed), "{fixed}");
        let (again, _) = lint_python(&fixed);
        assert!(again.iter().all(|f| f.fix.is_none()), "{again:?}");
    }

    #[test]
    fn other_pitfalls_are_fixed_too() {
        let code = "def add(item, items=[]):\n    \"\"\"Add.\"\"\"\n    try:\n        items.append(item)\n    except:\n        pass\n    if item == None:\n        return None\n    return items";
        let (findings, fixed) = lint_python(code);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"mutable_default") && rules.contains(&"bare_except"), "{rules:?}");
        assert!(rules.contains(&"none_comparison") && !rules.contains(&"docstrings"), "{rules:?}");
        assert!(
            fixed.starts_with(
                "def add(item, items=None):\n    \"\"\"Add.\"\"\"\n    if items is None:\n        items = []"
            ),
            "{fixed}"
        );
        assert!(fixed.contains("    except Exception:") && fixed.contains("if item is None:"), "{fixed}");
        assert!(code_checks(&fixed, "python", true).iter().all(|c| c.passed), "{fixed}");
        // A guarded division is fine.
        let guarded = "def mean(xs):\n    if not xs:\n        return 0\n    return sum(xs) / len(xs)";
        assert!(lint_python(guarded).0.iter().all(|f| f.rule != "division_by_len"));
    }

    #[test]
    fn brackets_and_strings_must_balance() {
        let ok = "x = foo(a[1], {'k': \"(\"})  # ) in a comment\ns = '''multi\nline ( '''";
        assert!(scan(ok, &lexis("python")).is_none());
        let cases = [
            ("print(foo(1)", "never closed"),
            ("x = [1, 2)", "closes the `[`"),
            ("x = 1)", "closes nothing"),
            ("s = 'abc\ny = 2", "string opened on line 1"),
        ];
        for (code, expected) in cases {
            let problem = scan(code, &lexis("python")).unwrap_or_default();
            assert!(problem.contains(expected), "{code:?}: {problem}");
        }
        // A shell `case` closes a parenthesis it never opened; SQL strings use ''.
        assert!(scan("case $1 in\n  a) echo a ;;\nesac", &lexis("bash")).is_none());
        assert!(scan("SELECT 'it''s' -- (\nFROM t;", &lexis("sql")).is_none());
    }

    #[test]
    fn python_is_checked_by_a_real_parser() {
        for valid in [
            "def f(x):\n    if x: return 1\n    for i in range(3):\n        pass\n    return [\n  1,\n]\n",
            "class A(B):\n    def f(self, key=lambda v: v):\n        return sorted(x, key=lambda v: v[1:])\n",
            "def f():\n    \"\"\"Doc\nstring.\"\"\"\n    return 1\n",
        ] {
            assert_eq!(python_syntax_error(valid), None, "{valid:?}");
        }
        for (code, line) in [
            ("with open(p) as f\n    f.read()", 1),
            ("x = 1\n    y = 2", 2),
            ("def f():\nreturn 1", 2),
            ("def f:\n    pass", 1),
            ("import os\nfor x in y:", 2),
        ] {
            let error = python_syntax_error(code).unwrap_or_else(|| panic!("{code:?} parsed"));
            assert!(error.starts_with(&format!("line {line}:")), "{code:?}: {error}");
        }
        let checks = code_checks("def f(:\n    pass", "python", true);
        assert!(!passed(&checks, "code:python_syntax"), "{checks:?}");
    }

    #[test]
    fn the_block_check_wants_a_closed_fence() {
        assert_eq!(fenced_code("```python\nprint(1)\n```\nMore text"), ("print(1)".to_string(), true));
        assert_eq!(fenced_code("```python\nprint(1)\nprint(2"), ("print(1)\nprint(2".to_string(), false));
        let open = code_checks("print(1)", "python", false);
        assert!(!passed(&open, "code:block") && passed(&open, "code:balanced"));
        assert!(!passed(&code_checks("", "python", true), "code:block"));
        assert!(code_checks("SELECT 1;", "sql", true).iter().all(|c| c.name != "code:python_syntax"));
    }

    #[test]
    fn regexes_are_compiled_and_tried_on_the_briefs_examples() {
        let brief = "Write a regex for US ZIP codes. It should match \"12345\" and \"12345-6789\". It must not match \"1234\" or `123456`.";
        let examples = regex_examples(brief);
        assert_eq!(examples.matching, ["12345", "12345-6789"]);
        assert_eq!(examples.not_matching, ["1234", "123456"]);
        let good = regex_checks(r"\d{5}(-\d{4})?", &examples);
        assert!(good.iter().all(|c| c.passed), "{good:?}");
        let loose = regex_checks(r"\d+(-\d+)?", &examples);
        assert!(passed(&loose, "code:regex_compiles") && !passed(&loose, "code:regex_examples"));
        assert!(loose.iter().any(|c| c.detail.contains("\"1234\"")), "{loose:?}");
        assert!(!passed(&regex_checks(r"(\d{5}", &examples), "code:regex_compiles"));
        let listed = regex_examples("Valid examples: a@b.co, x.y@z.org");
        assert_eq!(listed.matching, ["a@b.co", "x.y@z.org"]);
        assert_eq!(regex_from_reply("```regex\n/^\\d+$/i\n```"), "^\\d+$");
        assert_eq!(regex_from_reply("```regex\nr\"[a-z]+\"\n```"), "[a-z]+");
        assert_eq!(regex_from_reply("```regex\npattern = \"\\d{5}\"  # five \"digits\"\n```"), "\\d{5}");
        assert_eq!(regex_from_reply("```regex\nre.compile(r'^[a-z]+$')\n```"), "^[a-z]+$");
        assert_eq!(regex_from_reply("```regex\n^\\d{5}(-\\d{4})?$\n```"), "^\\d{5}(-\\d{4})?$");
    }

    #[test]
    fn filenames_come_from_the_code_or_the_title() {
        assert_eq!(
            file_name(REVIEWED, "python", "Review this Python function for bugs", true),
            "average_order_value.py"
        );
        let title = "Script to rename photos by date taken";
        assert_eq!(
            file_name("import os\ndef main():\n    pass", "python", title, false),
            "rename_photos_date_taken.py"
        );
        assert_eq!(file_name("SELECT 1;", "sql", "Monthly revenue query", false), "monthly-revenue-query.sql");
        assert_eq!(file_name("def helper():\n    pass", "python", "", false), "helper.py");
        assert_eq!(file_name("echo hi", "bash", "", false), "main.sh");
    }

    #[test]
    fn languages_are_read_from_the_brief() {
        let brief = fixture("script-rename-photos");
        assert_eq!(language(&OutputFormat::Code("python".into()), &brief), "python");
        assert_eq!(language(&OutputFormat::Code("text".into()), &brief), "python");
        assert_eq!(normalise_language("PostgreSQL"), "sql");
        assert_eq!(normalise_language("js"), "javascript");
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
    }

    #[test]
    fn model_findings_must_name_the_code_and_be_short() {
        let names = identifiers(REVIEWED);
        let reply = "1. `average_order_value` fails on an empty list\n2. No bugs found so far in top_customers\n3. This is a long general essay about Python that never names anything in particular at all and goes on and on\n4. Use list comprehensions everywhere";
        assert_eq!(model_findings(reply, &names), ["`average_order_value` fails on an empty list."]);
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
