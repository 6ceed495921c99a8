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
//!
//! Code in a language with a runner then goes through `tested`: tests from the brief, run in the
//! sandbox, failures repaired or the code written afresh (`rewrite`), the result reported
//! (`test_report`). `runners` runs each language's tests and `reports` reads what they print,
//! `suites` makes a model's suite fit to run, and `examples` turns the brief's own examples into
//! tests. An SQL query is run on a sample database in SQLite (`sql`, reading SQL as models write
//! it in `sql_text`).
//!
//! A file per concern: `review` (code in the brief: findings and the corrected code) with
//! `pitfalls` (the Python pitfalls found and fixed here), `written` (code written from a
//! description, and how to run it), `regex_task` (a regular expression tried on the brief's
//! examples), `checks` (the checks of code, and reading code out of a reply) and `naming`
//! (languages, their names, file names and the `file` artifact).

mod checks;
mod examples;
mod main_guard;
mod naming;
mod pitfalls;
mod regex_task;
mod reports;
mod review;
mod rewrite;
mod runners;
mod sql;
mod sql_text;
mod suites;
mod test_report;
mod tested;
mod written;

pub use checks::{code_checks, largest_block};
pub use naming::{code_artifact, display, fence_language, file_name, language};

use regex_task::{is_regex_task, regex_task};
use review::{find_code, review};
use written::write_code;

use super::compose::{Draft, Writer};
use super::{GenerationPlan, general};
use crate::engine::EngineError;
use crate::protocol::Brief;

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
        CodeTask::Review { original } => {
            let draft = review(brief, &language, &original, writer).await?;
            tested::with_tests(brief, plan, &language, Some(&original), draft, writer).await?
        }
        CodeTask::Regex => regex_task(brief, &language, writer).await?,
        CodeTask::Write => {
            let draft = write_code(brief, plan, &language, writer).await?;
            match language.as_str() {
                "sql" => sql::with_sample_run(brief, draft, writer).await?,
                _ => tested::with_tests(brief, plan, &language, None, draft, writer).await?,
            }
        }
    };
    // Nothing written at all (the engine turned every call away): the general strategy's draft is
    // still better than an empty one.
    if draft.text.trim().is_empty() {
        return general::write(brief, plan, writer).await;
    }
    Ok(draft)
}

fn join_names<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| format!("\"{}\"", n.as_ref())).collect::<Vec<_>>().join(", ")
}

/// What the tests of this folder share: the code of the review fixture, the fixtures, and a
/// check's outcome by name.
#[cfg(test)]
mod test_support {
    use crate::protocol::{Brief, Check, parse_brief};

    pub(super) const REVIEWED: &str = "def average_order_value(orders):\n    total = 0\n    for o in orders:\n        total += o['amount']\n    return total / len(orders)\n\ndef top_customers(orders, n=3):\n    counts = {}\n    for o in orders:\n        counts[o['customer']] = counts.get(o['customer'], 0) + o['amount']\n    return sorted(counts, key=counts.get)[:n]";

    pub(super) fn fixture(name: &str) -> Brief {
        let path = format!("{}/tests/fixtures/briefs/{name}.json", env!("CARGO_MANIFEST_DIR"));
        parse_brief(&std::fs::read(path).unwrap()).unwrap()
    }

    pub(super) fn passed(checks: &[Check], name: &str) -> bool {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:?}")).passed
    }
}
