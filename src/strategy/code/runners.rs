//! How each language's tests are run in the sandbox and read back: Python with pytest,
//! JavaScript with `node --test`. Owns the test file's name and opening lines (how it imports
//! the code), the command, and turning the runner's report into passed and failed tests with the
//! error of each failure — what the repair prompt quotes and the response reports.

use std::sync::LazyLock;

use regex::Regex;

use super::reports;
use crate::sandbox::RunOutcome;

/// Characters of output kept when the tests could not run at all.
const PROBLEM_CHARS: usize = 600;

/// A language whose tests we can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runner {
    Python,
    JavaScript,
}

/// What one run of the tests found.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct TestRun {
    pub passed: Vec<String>,
    pub failed: Vec<Failure>,
    /// The tests could not run at all (the code does not import, the run timed out): why.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Failure {
    pub test: String,
    pub error: String,
}

impl TestRun {
    pub fn total(&self) -> usize {
        self.passed.len() + self.failed.len()
    }

    pub fn all_passed(&self) -> bool {
        self.problem.is_none() && self.failed.is_empty() && !self.passed.is_empty()
    }

    /// What failed, for the repair prompt: each failing test with its error, or why nothing ran.
    pub fn failures_for_repair(&self, max_tests: usize) -> String {
        if let Some(problem) = &self.problem {
            return problem.clone();
        }
        self.failed
            .iter()
            .take(max_tests)
            .map(|f| format!("Test `{}` failed:\n{}", f.test, f.error))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

impl Runner {
    pub fn for_language(language: &str) -> Option<Runner> {
        match language {
            "python" => Some(Runner::Python),
            "javascript" => Some(Runner::JavaScript),
            _ => None,
        }
    }

    /// The program the sandbox must have.
    pub fn interpreter(self) -> &'static str {
        match self {
            Runner::Python => "python3",
            Runner::JavaScript => "node",
        }
    }

    /// The tests' file name for the code in `code_file`.
    pub fn test_file(self, code_file: &str) -> String {
        let stem = stem(code_file);
        match self {
            Runner::Python => format!("test_{stem}.py"),
            Runner::JavaScript => format!("{stem}.test.js"),
        }
    }

    /// The tests' opening lines: the test library and the code under test, by its file name.
    pub fn test_preamble(self, code_file: &str, code: &str) -> String {
        let stem = stem(code_file);
        match self {
            Runner::Python => format!("import pytest\nfrom {stem} import *\n"),
            Runner::JavaScript => {
                let names = javascript_top_level_names(code).join(", ");
                format!(
                    "const {{ test, mock }} = require('node:test');\nconst assert = require('node:assert');\nconst {{ {names} }} = require('./{stem}');\n"
                )
            }
        }
    }

    /// How a buyer runs the tests, and how the sandbox does.
    pub fn command(self, test_file: &str) -> Vec<String> {
        match self {
            Runner::Python => {
                ["python3", "-m", "pytest", "-q", "-rA", "--tb=short", "-p", "no:cacheprovider", test_file]
                    .map(String::from)
                    .to_vec()
            }
            Runner::JavaScript => ["node", "--test", "--test-reporter=tap", test_file].map(String::from).to_vec(),
        }
    }

    /// The command as the buyer types it.
    pub fn command_line(self, test_file: &str) -> String {
        match self {
            Runner::Python => format!("python3 -m pytest {test_file}"),
            Runner::JavaScript => format!("node --test {test_file}"),
        }
    }

    /// A command that only loads the code: whether a failure to run the tests is the code's
    /// fault or the tests'.
    pub fn load_command(self, code_file: &str) -> Vec<String> {
        let stem = stem(code_file);
        match self {
            Runner::Python => vec!["python3".into(), "-c".into(), format!("import {stem}")],
            Runner::JavaScript => vec!["node".into(), "-e".into(), format!("require('./{stem}')")],
        }
    }

    /// The code as the tests load it, and as it is sent: Python's example calls move under a
    /// main guard, so importing it runs nothing; JavaScript without exports gets them, guarded so
    /// the file still works in a browser (`module` is undefined there).
    pub fn importable(self, code: &str) -> String {
        match self {
            Runner::Python => super::main_guard::examples_under_main_guard(code),
            Runner::JavaScript if code.contains("module.exports") || code.contains("export ") => code.to_string(),
            Runner::JavaScript => {
                let names = javascript_top_level_names(code);
                match names.is_empty() {
                    true => code.to_string(),
                    false => format!(
                        "{}\n\nif (typeof module !== 'undefined') module.exports = {{ {} }};\n",
                        code.trim_end(),
                        names.join(", ")
                    ),
                }
            }
        }
    }

    /// The code without the test functions a model writes into it and the top-level calls
    /// that run them (Python; other languages are left as written).
    pub fn without_inline_tests(self, code: &str) -> String {
        if self == Runner::JavaScript {
            return javascript_without_inline_tests(code);
        }
        let mut kept: Vec<&str> = Vec::new();
        let mut in_test = false;
        let code = self.without_test_calls(code);
        for line in code.lines() {
            let top_level = !line.starts_with([' ', '\t']) && !line.trim().is_empty();
            if top_level {
                in_test = line.starts_with("def test");
            }
            if !in_test {
                kept.push(line);
            }
        }
        // A comment left announcing the removed tests goes too.
        while kept.last().is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            kept.pop();
        }
        kept.join("\n")
    }

    /// The test functions a model wrote into the code (Python), in order, if any.
    pub fn inline_tests(self, code: &str) -> Option<String> {
        if self != Runner::Python {
            return None;
        }
        let mut tests: Vec<&str> = Vec::new();
        let mut in_test = false;
        for line in code.lines() {
            if !line.starts_with([' ', '\t']) && !line.trim().is_empty() {
                in_test = line.starts_with("def test");
                if in_test && !tests.is_empty() {
                    tests.push("");
                }
            }
            if in_test && !line.trim().is_empty() {
                tests.push(line);
            }
        }
        (!tests.is_empty()).then(|| tests.join("\n"))
    }

    /// Whether `tests` hold a test the runner will find.
    pub fn has_test(self, tests: &str) -> bool {
        match self {
            Runner::Python => tests.contains("def test"),
            Runner::JavaScript => tests.contains("test("),
        }
    }

    /// How the first test opens, so the model writes test functions rather than bare asserts.
    pub fn first_test_opening(self) -> &'static str {
        match self {
            Runner::Python => "\n\ndef test_",
            Runner::JavaScript => "\ntest('",
        }
    }

    /// Tests in the runner's own words: JavaScript's jest stand-ins become `node:test`'s.
    pub fn in_runners_words(self, tests: &str) -> String {
        match self {
            Runner::Python => tests.to_string(),
            Runner::JavaScript => super::suites::with_node_mocks(tests),
        }
    }

    /// Without top-level calls of test functions (`test_parse()`), which run on import: the
    /// runner calls the tests itself.
    pub fn without_test_calls(self, code: &str) -> String {
        static CALL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^test\w*\(\)\s*;?\s*$").expect("valid pattern"));
        code.lines().filter(|line| !CALL.is_match(line)).collect::<Vec<_>>().join("\n")
    }

    pub fn read(self, outcome: &RunOutcome, limit_secs: u64) -> TestRun {
        if outcome.timed_out {
            return TestRun {
                problem: Some(format!("the tests did not finish within {limit_secs} s (an endless loop or a wait?)")),
                ..TestRun::default()
            };
        }
        let mut run = match self {
            Runner::Python => reports::read_pytest(&outcome.stdout),
            Runner::JavaScript => reports::read_tap(&outcome.stdout),
        };
        // node reports a test file that does not load as one failed test named by the file.
        if let [only] = run.failed.as_slice()
            && run.passed.is_empty()
            && only.test.ends_with(".js")
        {
            run =
                TestRun { problem: Some(format!("the test file did not load:\n{}", only.error)), ..TestRun::default() };
        }
        if run.total() == 0 && run.problem.is_none() {
            let output = format!("{}\n{}", outcome.stdout.trim(), outcome.stderr.trim());
            return TestRun {
                problem: Some(format!("no test ran:\n{}", reports::tail_chars(output.trim(), PROBLEM_CHARS))),
                ..run
            };
        }
        run
    }
}

fn stem(file: &str) -> &str {
    file.rsplit_once('.').map_or(file, |(stem, _)| stem)
}

impl Runner {
    /// The functions and classes the code defines at its top level (a repair must keep them:
    /// the tests and the buyer call them by name).
    pub fn defined_names(self, code: &str) -> Vec<String> {
        static PYTHON: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?m)^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)").expect("valid pattern"));
        match self {
            Runner::Python => PYTHON.captures_iter(code).map(|c| c[1].to_string()).collect(),
            Runner::JavaScript => javascript_top_level_names(code),
        }
    }
}

/// JavaScript up to where a model starts writing tests into it (a top-level `describe(`,
/// `test(` or `it(`, or a re-import of the code itself), with the comments that announce them:
/// models asked for tests often append a jest suite that would not even load beside the code.
fn javascript_without_inline_tests(code: &str) -> String {
    static TESTS_START: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:(?:describe|test|it)\s*\(|(?:const|let|var)\s+.*=\s*require\(\s*['"]\./|(?:const|let|var)\s+\w+\s*=\s*require\(\s*['"](?:node:)?(?:test|assert)['"])"#)
            .expect("valid pattern")
    });
    let lines: Vec<&str> = code.lines().collect();
    let Some(start) = lines.iter().position(|line| TESTS_START.is_match(line)) else { return code.to_string() };
    let mut kept = lines[..start].to_vec();
    while kept.last().is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with("//")) {
        kept.pop();
    }
    kept.join("\n")
}

/// Functions, classes and constants declared at the top level of JavaScript code.
fn javascript_top_level_names(code: &str) -> Vec<String> {
    static DECLARATION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^(?:async\s+)?(?:function\*?\s+|class\s+|(?:const|let|var)\s+)([A-Za-z_$][\w$]*)")
            .expect("valid pattern")
    });
    let mut names: Vec<String> = Vec::new();
    for caps in DECLARATION.captures_iter(code) {
        if !names.contains(&caps[1].to_string()) {
            names.push(caps[1].to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_tests_and_their_calls_leave_the_code() {
        let code = "def parse(t):\n    return 1\n\n# Test it\ndef test_parse():\n    assert parse('x') == 1\n\n    assert True\n\ntest_parse()\n\nif __name__ == '__main__':\n    print(parse('y'))";
        assert_eq!(
            Runner::Python.without_inline_tests(code),
            "def parse(t):\n    return 1\n\n# Test it\nif __name__ == '__main__':\n    print(parse('y'))"
        );
        let inline = Runner::Python.inline_tests(code).unwrap();
        assert_eq!(inline, "def test_parse():\n    assert parse('x') == 1\n    assert True");
        assert_eq!(Runner::Python.without_test_calls("def test_a():\n    pass\ntest_a()"), "def test_a():\n    pass");
    }

    #[test]
    fn a_test_suite_appended_to_javascript_is_cut_off() {
        let code = "function debounce(fn, wait) {\n  let t;\n  return () => {};\n}\n\nmodule.exports = { debounce };\n\n// debounced test file\nconst { debounce } = require('./utils/debounce');\n\ndescribe('x', () => {\n  it('y', () => {});\n});";
        assert_eq!(
            Runner::JavaScript.without_inline_tests(code),
            "function debounce(fn, wait) {\n  let t;\n  return () => {};\n}\n\nmodule.exports = { debounce };"
        );
        let plain = "function f() {\n  return 1;\n}";
        assert_eq!(Runner::JavaScript.without_inline_tests(plain), plain);
    }

    #[test]
    fn javascript_gets_guarded_exports_of_its_top_level_names() {
        let code = "function debounce(fn, wait) {\n  let t;\n  return () => {};\n}\nconst LIMIT = 3;";
        let loaded = Runner::JavaScript.importable(code);
        assert!(loaded.ends_with("if (typeof module !== 'undefined') module.exports = { debounce, LIMIT };\n"));
        assert!(
            Runner::JavaScript
                .test_preamble("debounce.js", code)
                .contains("const { debounce, LIMIT } = require('./debounce');")
        );
        let exported = "function f() {}\nmodule.exports = { f };";
        assert_eq!(Runner::JavaScript.importable(exported), exported);
        assert_eq!(Runner::Python.test_file("rename_photos.py"), "test_rename_photos.py");
        assert_eq!(
            Runner::Python.test_preamble("rename_photos.py", ""),
            "import pytest\nfrom rename_photos import *\n"
        );
    }
}
