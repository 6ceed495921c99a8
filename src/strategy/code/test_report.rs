//! What a run of the tests is reported as: the `code:tests_passed` and `code:fix_verified`
//! checks, the answer's `## Tests` section and the sentence for the buyer. Each says what ran and
//! what passed, and a fix is said to fix something only when its tests fail on the original code
//! and all pass on the fix.

use super::naming::fence_language;
use super::runners::{Runner, TestRun};
use crate::protocol::{Check, Phase};
use crate::strategy::compose::check;

pub(super) fn tests_check(run: &TestRun) -> Check {
    match (&run.problem, run.all_passed()) {
        (Some(problem), _) => {
            let first = problem.lines().next().unwrap_or("").trim_end_matches(':');
            check("code:tests_passed", false, format!("ran in a sandbox, but {first}"))
        }
        (None, true) => check(
            "code:tests_passed",
            true,
            format!("{} of {} pass in a sandbox", run.passed.len(), tests(run.total())),
        ),
        (None, false) => {
            let failing: Vec<&str> = run.failed.iter().map(|f| f.test.as_str()).collect();
            check(
                "code:tests_passed",
                false,
                format!(
                    "{} of {} pass in a sandbox; failing: {}",
                    run.passed.len(),
                    tests(run.total()),
                    failing.join(", ")
                ),
            )
        }
    }
}

/// A fix is shown to fix something when its tests fail on the original and pass on the fix.
pub(super) fn fix_check(on_original: &TestRun, on_fix: &TestRun) -> Check {
    let caught = on_original.failed.len() + usize::from(on_original.problem.is_some());
    let passed = caught > 0 && on_fix.all_passed();
    let detail = match (caught, on_fix.all_passed()) {
        (0, _) => "the tests pass on the original code too, so they do not show the bug".to_string(),
        (n, true) => format!("{n} of the tests fail on the original code and all pass on the fix"),
        (n, false) => format!("{n} of the tests fail on the original code, but the fix does not pass them all"),
    };
    check("code:fix_verified", passed, detail)
}

pub(super) fn tests_section(
    runner: Runner,
    language: &str,
    test_file: &str,
    tests: &str,
    run: &TestRun,
    on_original: Option<&TestRun>,
) -> String {
    let result = match (&run.problem, run.all_passed()) {
        (Some(problem), _) => format!("We ran them before sending, but they could not run: {}", first_line(problem)),
        (None, true) => format!("We ran them before sending: all {} pass.", run.total()),
        (None, false) => {
            let failing: Vec<String> = run.failed.iter().map(|f| format!("`{}`", f.test)).collect();
            format!(
                "We ran them before sending: {} of {} pass; still failing: {}.",
                run.passed.len(),
                run.total(),
                failing.join(", ")
            )
        }
    };
    let original = match on_original {
        // Only a fix that passes them all is said to fix what they catch.
        Some(before) if (before.problem.is_some() || !before.failed.is_empty()) && run.all_passed() => {
            format!(" On the original code {} of them fail, which is the bug this fixes.", before.failed.len().max(1))
        }
        Some(before) if before.problem.is_some() || !before.failed.is_empty() => {
            format!(" On the original code {} of them fail too.", before.failed.len().max(1))
        }
        Some(_) => " They also pass on the original code, so they do not pin the bug down.".to_string(),
        None => String::new(),
    };
    format!(
        "\n\n## Tests\n\n```{}\n{}\n```\n\nRun them with `{}`. {result}{original}\n",
        fence_language(language),
        tests.trim_end(),
        runner.command_line(test_file)
    )
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end_matches(':')
}

fn tests(n: usize) -> String {
    match n {
        1 => "1 test".to_string(),
        n => format!("{n} tests"),
    }
}

/// The sentence for the buyer: what was run and what passed.
pub(super) fn note(phase: Phase, run: &TestRun, on_original: Option<&TestRun>) -> String {
    let what = match phase {
        Phase::Prototype => "This prototype's code",
        Phase::Final => "The code",
    };
    let caught = on_original.is_some_and(|before| before.problem.is_some() || !before.failed.is_empty());
    match (run.all_passed(), caught) {
        (true, true) => format!(
            "{what} comes with {}, run before sending: they fail on the original code and all pass on the fix.",
            tests(run.total())
        ),
        (true, false) => format!("{what} comes with {}, run before sending: all pass.", tests(run.total())),
        (false, _) if run.problem.is_some() => format!("{what} comes with tests, which we could not run to the end."),
        (false, _) => {
            format!("{what} comes with {}, run before sending: {} pass.", tests(run.total()), run.passed.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::code::runners::Failure;

    fn run(passed: &[&str], failed: &[&str]) -> TestRun {
        TestRun {
            passed: passed.iter().map(|s| s.to_string()).collect(),
            failed: failed.iter().map(|s| Failure { test: s.to_string(), error: "assert 1 == 2".into() }).collect(),
            problem: None,
        }
    }

    #[test]
    fn the_checks_say_what_ran_and_what_passed() {
        assert!(tests_check(&run(&["a", "b"], &[])).passed);
        let partial = tests_check(&run(&["a"], &["b"]));
        assert!(
            !partial.passed && partial.detail.contains("1 of 2 tests pass") && partial.detail.contains("failing: b")
        );
        let broken =
            TestRun { problem: Some("the tests could not be loaded (x):\nE  NameError".into()), ..TestRun::default() };
        assert!(!tests_check(&broken).passed);
        assert!(!tests_check(&TestRun::default()).passed, "no test run is no pass");
        assert!(fix_check(&run(&["a"], &["b"]), &run(&["a", "b"], &[])).passed);
        assert!(!fix_check(&run(&["a", "b"], &[]), &run(&["a", "b"], &[])).passed, "tests that miss the bug");
    }
}
