//! One round of rewriting code that fails its tests: a repair (the code and its failures, fix
//! them) or a fresh version (the brief and the tests, write it again). The round's code is
//! accepted only if it still defines what it must.

use super::MAX_BRIEF_CHARS;
use super::checks::{code_checks, failed_details, fenced_code};
use super::examples;
use super::naming::{display, fence_language};
use super::runners::{Runner, TestRun};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::Brief;
use crate::strategy::compose::{Ask, Writer};
use crate::strategy::prompt;

/// Failing tests quoted in one repair prompt: more only dilutes a small model's attention.
const FAILURES_PER_REPAIR: usize = 2;

/// How a round rewrites the code: patching the best version from its failures, or writing it
/// afresh from the brief and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rewrite {
    Repair,
    Fresh,
}

impl Rewrite {
    pub(super) fn other(self) -> Rewrite {
        match self {
            Rewrite::Repair => Rewrite::Fresh,
            Rewrite::Fresh => Rewrite::Repair,
        }
    }
}

/// Whether a rewrite still defines what it must: a repair every function the code had (the
/// buyer may call any of them); a fresh version every one the tests call.
pub(super) fn keeps_what_is_called(runner: Runner, before: &str, after: &str, tests: &str, rewrite: Rewrite) -> bool {
    let kept = runner.defined_names(after);
    runner
        .defined_names(before)
        .iter()
        .filter(|name| rewrite == Rewrite::Repair || tests.contains(name.as_str()))
        .all(|name| kept.contains(name))
}

/// Characters of the tests shown to a fresh rewrite: enough for a handful of short tests.
const TESTS_SHOWN_CHARS: usize = 3000;

/// The code that fails, where it is saved, its tests and what running them found.
pub(super) struct Failing<'a> {
    pub filename: &'a str,
    pub code: &'a str,
    pub tests: &'a str,
    pub run: &'a TestRun,
}

/// The code rewritten to pass the failing tests; `None` when the reply is not usable code.
pub(super) async fn rewritten(
    brief: &Brief,
    language: &str,
    failing: &Failing<'_>,
    rewrite: Rewrite,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let Failing { filename, code, tests, run } = *failing;
    let lang = display(language);
    let fence = fence_language(language);
    let mut failures = examples::examples_first(run).failures_for_repair(FAILURES_PER_REPAIR);
    if failures.contains("ModuleNotFoundError") || failures.contains("Cannot find module") {
        failures.push_str("\n\nOnly the standard library is installed: use it instead of that module.");
    }
    if failures.contains("SystemExit") || failures.contains("the following arguments are required") {
        failures.push_str("\n\nImporting the file ran the command line: put it under `if __name__ == \"__main__\":`.");
    }
    let brief_text = prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS);
    let (system, user, tokens) = match rewrite {
        Rewrite::Repair => (
            format!("You are an expert {lang} developer. You fix failing code with small, careful changes."),
            format!(
                "# {}\n\n{brief_text}\n\nThe code in `{filename}`:\n\n```{fence}\n{}\n```\n\nRunning its tests gave:\n\n\
                 {failures}\n\nFix the code so it does what the brief asks and these tests pass. Output the whole \
                 corrected {lang} code.",
                brief.title, code,
            ),
            (code.len() / 2 + 256).min(super::FINAL_CODE_TOKENS),
        ),
        Rewrite::Fresh => (
            format!("You are an expert {lang} developer. You write short, correct, complete code."),
            format!(
                "# {}\n\n{brief_text}\n\nThe code will be saved as `{filename}`, and these tests must pass:\n\n\
                 ```{fence}\n{}\n```\n\nA first version failed them with:\n\n{failures}\n\nWrite the code again from \
                 scratch, with a simpler and more careful approach: the whole {lang} code the brief asks for, passing \
                 every test. No tests, example calls or prints at the top level. Output only the code.",
                brief.title,
                prompt::truncate_chars(tests, TESTS_SHOWN_CHARS),
            ),
            super::FINAL_CODE_TOKENS,
        ),
    };
    let ask = Ask::new(system, user, tokens).prefix(format!("```{fence}\n")).code().share(0.6);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let (code, closed) = fenced_code(&reply.text);
    let closed = closed || reply.finish == FinishReason::Eos;
    let broken = !failed_details(&code_checks(&code, language, closed)).is_empty();
    // Tests the model wrote in anyway would run on import; the real ones are in their own file.
    let code = match Runner::for_language(language) {
        Some(runner) => runner.without_inline_tests(&code),
        None => code,
    };
    Ok((!broken).then_some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repair_keeps_every_function_and_a_fresh_version_those_the_tests_call() {
        let before = "def parse(t):\n    return _unit(t)\n\ndef _unit(t):\n    return 1\n";
        let after = "def parse(t):\n    return 1\n";
        let tests = "def test_parse():\n    assert parse('1h') == 3600\n";
        assert!(!keeps_what_is_called(Runner::Python, before, after, tests, Rewrite::Repair));
        assert!(keeps_what_is_called(Runner::Python, before, after, tests, Rewrite::Fresh));
        let renamed = "def parse_text(t):\n    return 1\n";
        assert!(!keeps_what_is_called(Runner::Python, before, renamed, tests, Rewrite::Fresh));
        assert_eq!(Rewrite::Repair.other(), Rewrite::Fresh);
    }
}
