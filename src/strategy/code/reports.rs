//! Reading what a test runner printed: pytest's `-rA` summary with its short tracebacks, and
//! node's TAP report, into the tests that passed and the tests that failed with their errors.

use std::sync::LazyLock;

use regex::Regex;

use super::runners::{Failure, TestRun};

/// Lines of a failure's report kept for the repair prompt: the assertion and where it failed.
const FAILURE_LINES: usize = 14;

/// pytest's `-rA` summary (`PASSED file::test`, `FAILED file::test - why`) with the failures'
/// short tracebacks; an `ERROR` of the file itself means the tests could not be collected.
pub(super) fn read_pytest(output: &str) -> TestRun {
    static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(PASSED|FAILED|ERROR) ([^\s:]+)(?:::(.+?))?(?: - (.*))?$").expect("valid pattern")
    });
    static SECTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^_{3,} (.+?) _{3,}$").expect("valid pattern"));
    let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
    let mut in_report = false;
    let mut run = TestRun::default();
    for line in output.lines() {
        if line.starts_with("=====") {
            in_report = line.contains("FAILURES") || line.contains("ERRORS");
            continue;
        }
        if let Some(caps) = SECTION.captures(line) {
            sections.push((caps[1].trim_start_matches("ERROR collecting ").to_string(), Vec::new()));
            continue;
        }
        if in_report && let Some((_, lines)) = sections.last_mut() {
            lines.push(line);
            continue;
        }
        let Some(caps) = SUMMARY.captures(line) else { continue };
        let test = caps.get(3).map(|m| m.as_str().to_string());
        match (&caps[1], test) {
            ("PASSED", Some(test)) => run.passed.push(test),
            ("FAILED" | "ERROR", Some(test)) => {
                let error = caps.get(4).map_or("", |m| m.as_str()).to_string();
                run.failed.push(Failure { test, error });
            }
            (_, None) => {
                let why = caps.get(4).map_or("", |m| m.as_str());
                let report = sections.iter().find(|(name, _)| name.contains(&caps[2])).map(|(_, l)| l.join("\n"));
                run.problem = Some(format!(
                    "the tests could not be loaded ({why}):\n{}",
                    tail_lines(report.as_deref().unwrap_or(""), FAILURE_LINES)
                ));
            }
            _ => {}
        }
    }
    for failure in &mut run.failed {
        if let Some((_, lines)) =
            sections.iter().find(|(name, _)| *name == failure.test || failure.test.ends_with(name.as_str()))
        {
            failure.error = tail_lines(&lines.join("\n"), FAILURE_LINES);
        }
    }
    run
}

/// node's TAP report: `ok N - name` / `not ok N - name`, each followed by a YAML block that says
/// whether it was a suite and, for a failure, its error.
pub(super) fn read_tap(output: &str) -> TestRun {
    static RESULT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*(not ok|ok) \d+ - (.+?)(?: # .*)?$").expect("valid pattern"));
    let lines: Vec<&str> = output.lines().collect();
    let mut run = TestRun::default();
    for (at, line) in lines.iter().enumerate() {
        let Some(caps) = RESULT.captures(line) else { continue };
        let block: Vec<&str> = lines[at + 1..]
            .iter()
            .skip_while(|l| l.trim() == "---")
            .take_while(|l| l.trim() != "...")
            .copied()
            .collect();
        if block.iter().any(|l| l.trim() == "type: 'suite'") {
            continue;
        }
        // node names a file that failed as a whole by its path in the sandbox.
        let name = caps[2].trim_start_matches("/work/").to_string();
        match &caps[1] {
            "ok" => run.passed.push(name),
            _ => {
                // The stack is node's own frames; what failed and where is above it.
                let error: Vec<&str> = block
                    .iter()
                    .take_while(|l| !l.trim_start().starts_with("stack:"))
                    .filter(|l| {
                        !l.trim_start().starts_with("duration_ms") && !l.trim_start().starts_with("failureType")
                    })
                    .copied()
                    .collect();
                run.failed.push(Failure { test: name, error: tail_lines(&error.join("\n"), FAILURE_LINES) });
            }
        }
    }
    run
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(super) fn tail_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_summaries_give_each_test_with_its_short_traceback() {
        let output = "\
..F                                                                      [100%]
=================================== FAILURES ===================================
_______________________________ test_bare_number _______________________________
    def test_bare_number():
>       with pytest.raises(ValueError):
E       Failed: DID NOT RAISE <class 'ValueError'>

test_parse.py:9: Failed
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED test_parse.py::test_hours
PASSED test_parse.py::test_minutes[90m-5400]
FAILED test_parse.py::test_bare_number - Failed: DID NOT RAISE <class 'ValueError'>
1 failed, 2 passed in 0.02s
";
        let run = read_pytest(output);
        assert_eq!(run.passed, ["test_hours", "test_minutes[90m-5400]"]);
        assert_eq!(run.failed.len(), 1);
        assert_eq!(run.failed[0].test, "test_bare_number");
        assert!(run.failed[0].error.contains("DID NOT RAISE") && run.failed[0].error.contains("test_parse.py:9"));
        assert!(run.problem.is_none() && !run.all_passed());
    }

    #[test]
    fn a_module_that_does_not_import_is_a_problem_not_a_pass() {
        let output = "\
==================================== ERRORS ====================================
_______________________ ERROR collecting test_rename.py ________________________
test_rename.py:2: in <module>
    from rename import *
rename.py:3: in <module>
    import exifread
E   ModuleNotFoundError: No module named 'exifread'
=========================== short test summary info ============================
ERROR test_rename.py
1 error in 0.05s
";
        let run = read_pytest(output);
        let problem = run.problem.clone().expect("a collection error");
        assert!(problem.contains("No module named 'exifread'"), "{problem}");
        assert_eq!(run.total(), 0);
    }

    #[test]
    fn node_tap_reports_leaf_tests_and_failures_with_their_error() {
        let output = "\
TAP version 13
# Subtest: collapses calls
ok 1 - collapses calls
  ---
  duration_ms: 151.2
  ...
# Subtest: keeps this
not ok 2 - keeps this
  ---
  duration_ms: 120.1
  failureType: 'testCodeFailure'
  error: |-
    Expected values to be strictly equal:

    undefined !== 'obj'
  code: 'ERR_ASSERTION'
  ...
# Subtest: group
    ok 1 - inner
      ---
      duration_ms: 1
      ...
ok 3 - group
  ---
  duration_ms: 2
  type: 'suite'
  ...
1..3
";
        let run = read_tap(output);
        assert_eq!(run.passed, ["collapses calls", "inner"]);
        assert_eq!(run.failed.len(), 1);
        assert!(run.failed[0].error.contains("undefined !== 'obj'"), "{}", run.failed[0].error);
    }
}
