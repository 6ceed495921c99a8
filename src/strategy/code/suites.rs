//! Test suites as a model writes them, made fit to run: jest's stand-ins and fake timers said in
//! `node:test`'s own words (models reach for jest whatever they are told), and the tests that are
//! at fault themselves — a name nobody defines, a plain function used as a mock — told apart from
//! tests the code fails, and cut out by name.

use std::sync::LazyLock;

use regex::Regex;

use super::runners::{Failure, Runner};

/// JavaScript tests with jest's mock functions and fake timers replaced by `node:test`'s (`mock`
/// comes from the preamble): the same calls under the runner the answer ships with. What a jest
/// mock records is read as node's: `callCount()` is a method there, and a call's arguments are
/// `calls[i].arguments`, not `calls[i]`.
pub fn with_node_mocks(tests: &str) -> String {
    static CALL_ARGUMENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\.mock\.calls\[(\d+)\]\[(\d+)\]").expect("valid pattern"));
    const JEST_TO_NODE: &[(&str, &str)] = &[
        ("jest.fn(", "mock.fn("),
        ("jest.useFakeTimers()", "mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] })"),
        ("jest.advanceTimersByTime(", "mock.timers.tick("),
        ("jest.runAllTimers()", "mock.timers.runAll()"),
        ("jest.useRealTimers()", "mock.timers.reset()"),
    ];
    let tests = JEST_TO_NODE.iter().fold(tests.to_string(), |tests, (jest, node)| tests.replace(jest, node));
    let tests = tests.replace(".mock.callCount()", ".mock.callCount").replace(".mock.callCount", ".mock.callCount()");
    CALL_ARGUMENT.replace_all(&tests, ".mock.calls[$1].arguments[$2]").into_owned()
}

/// Whether a test failed through its own fault, not the code's: it reads a name neither it nor
/// the code defines (`jest`, a DOM `input`), or treats a plain function as a mock.
pub fn test_at_fault(failure: &Failure, code: &str) -> bool {
    static UNKNOWN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:(?:ReferenceError: |error: ')(\w+) is not defined|NameError: name '(\w+)' is not defined)")
            .expect("valid pattern")
    });
    static NOT_A_MOCK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"Cannot read properties of undefined \(reading '(?:calls|callCount|mock)'\)|has no attribute '(?:call_count|called|assert_called\w*|call_args\w*)'")
            .expect("valid pattern")
    });
    let unknown = UNKNOWN
        .captures(&failure.error)
        .and_then(|c| c.get(1).or(c.get(2)))
        .is_some_and(|name| !code.contains(name.as_str()));
    unknown || NOT_A_MOCK.is_match(&failure.error)
}

/// `tests` without the named top-level tests (`def test_x` in Python, `test('x', …)` in
/// JavaScript). A test nested in a suite, or one not found, stays.
pub fn without_tests(tests: &str, runner: Runner, names: &[&str]) -> String {
    let lines: Vec<&str> = tests.lines().collect();
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        match opened_test(line, runner).is_some_and(|name| names.contains(&name)) {
            true => at = end_of_test(&lines, at, runner),
            false => {
                kept.push(line);
                at += 1;
            }
        }
    }
    let mut text = kept.join("\n");
    while text.contains("\n\n\n\n") {
        text = text.replace("\n\n\n\n", "\n\n\n");
    }
    text
}

/// `tests` with each test once, and only the tests that assert something.
pub fn sound_tests(tests: &str, runner: Runner) -> String {
    without_assertless_tests(&without_repeated_tests(tests, runner), runner)
}

/// `tests` without a test that repeats an earlier one: the same name (which would replace the
/// first) or the same body under another name (which tests nothing new) — what a model writes
/// when it loops.
pub fn without_repeated_tests(tests: &str, runner: Runner) -> String {
    let lines: Vec<&str> = tests.lines().collect();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut repeated: Vec<usize> = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = opened_test(line, runner) else { continue };
        let end = end_of_test(&lines, at, runner);
        let body: String = lines[at + 1..end].concat().split_whitespace().collect();
        if seen.iter().any(|(n, b)| n == name || *b == body) {
            repeated.push(at);
        } else {
            seen.push((name.to_string(), body));
        }
    }
    if repeated.is_empty() {
        return tests.to_string();
    }
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    let mut at = 0;
    while at < lines.len() {
        match repeated.contains(&at) {
            true => at = end_of_test(&lines, at, runner),
            false => {
                kept.push(lines[at]);
                at += 1;
            }
        }
    }
    kept.join("\n").trim_end().to_string()
}

/// `tests` without a test that asserts nothing (it calls the code and logs, or only waits): it
/// passes whatever the code does, so a pass of it would be a claim the run does not support.
pub fn without_assertless_tests(tests: &str, runner: Runner) -> String {
    let lines: Vec<&str> = tests.lines().collect();
    let assertless: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter_map(|(at, line)| {
            let name = opened_test(line, runner)?;
            let body = lines[at..end_of_test(&lines, at, runner)].join("\n");
            let asserts = ["assert", "raises", "expect(", "fail("].iter().any(|word| body.contains(word));
            (!asserts).then_some(name)
        })
        .collect();
    match assertless.is_empty() {
        true => tests.to_string(),
        false => without_tests(tests, runner, &assertless),
    }
}

/// The name of the test a top-level line opens, as the runner reports it.
fn opened_test(line: &str, runner: Runner) -> Option<&str> {
    static PYTHON: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(?:async\s+)?def\s+(test\w*)\s*\(").expect("valid pattern"));
    static JAVASCRIPT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:test|it)\s*\(\s*(?:'([^']*)'|"([^"]*)"|`([^`]*)`)"#).expect("valid pattern")
    });
    let caps = match runner {
        Runner::Python => PYTHON.captures(line)?,
        Runner::JavaScript => JAVASCRIPT.captures(line)?,
    };
    caps.iter().skip(1).flatten().next().map(|m| m.as_str())
}

/// The line after the test that opens at `start`: Python's next top-level line; JavaScript's line
/// after the first `});` at the top level.
fn end_of_test(lines: &[&str], start: usize, runner: Runner) -> usize {
    let rest = lines.iter().enumerate().skip(start + 1);
    match runner {
        Runner::Python => rest
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with([' ', '\t']))
            .map(|(i, _)| i)
            .next()
            .unwrap_or(lines.len()),
        Runner::JavaScript => match lines[start].trim_end().ends_with(");") {
            true => start + 1,
            false => rest.filter(|(_, l)| l.starts_with("})")).map(|(i, _)| i + 1).next().unwrap_or(lines.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(error: &str) -> Failure {
        Failure { test: "t".into(), error: error.into() }
    }

    #[test]
    fn jest_stand_ins_become_node_test_mocks() {
        let tests = "jest.useFakeTimers();\nconst f = jest.fn();\njest.advanceTimersByTime(300);";
        assert_eq!(
            with_node_mocks(tests),
            "mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });\nconst f = mock.fn();\nmock.timers.tick(300);"
        );
        let reads = "assert.strictEqual(f.mock.callCount, 1);\nassert.strictEqual(g.mock.callCount(), 2);\nassert.strictEqual(f.mock.calls[0][1], 'b');\nassert.strictEqual(f.mock.calls.length, 1);";
        assert_eq!(
            with_node_mocks(reads),
            "assert.strictEqual(f.mock.callCount(), 1);\nassert.strictEqual(g.mock.callCount(), 2);\nassert.strictEqual(f.mock.calls[0].arguments[1], 'b');\nassert.strictEqual(f.mock.calls.length, 1);"
        );
    }

    #[test]
    fn a_test_is_at_fault_for_unknown_names_and_fake_mocks_only() {
        let code = "function debounce(fn, wait) {}";
        assert!(test_at_fault(&failure("ReferenceError: jest is not defined\n  at test"), code));
        assert!(test_at_fault(&failure("  error: 'jest is not defined'\n  code: 'ERR_TEST_FAILURE'"), code));
        assert!(test_at_fault(&failure("E   NameError: name 'mock_open' is not defined"), "def f(): pass"));
        assert!(test_at_fault(&failure("TypeError: Cannot read properties of undefined (reading 'calls')"), code));
        assert!(test_at_fault(&failure("AttributeError: 'function' object has no attribute 'call_count'"), code));
        assert!(!test_at_fault(&failure("ReferenceError: debounce is not defined"), code));
        assert!(!test_at_fault(&failure("AssertionError: 2 !== 1"), code));
    }

    #[test]
    fn a_looping_suite_keeps_each_test_once() {
        let python = "import pytest\n\ndef test_a():\n    assert f() == 1\n\n\ndef test_b():\n    assert f()  ==  1\n\n\n\
                      def test_c():\n    assert f() == 2\n\n\ndef test_a():\n    assert f() == 3\n";
        assert_eq!(
            without_repeated_tests(python, Runner::Python),
            "import pytest\n\ndef test_a():\n    assert f() == 1\n\n\ndef test_c():\n    assert f() == 2"
        );
        let js = "test('x', () => {\n  assert.ok(f());\n});\n\ntest('y', () => {\n  assert.ok(f());\n});\n";
        assert_eq!(without_repeated_tests(js, Runner::JavaScript), "test('x', () => {\n  assert.ok(f());\n});");
        let distinct = "def test_a():\n    assert 1\n\ndef test_b():\n    assert 2";
        assert_eq!(without_repeated_tests(distinct, Runner::Python), distinct);
    }

    #[test]
    fn a_test_that_asserts_nothing_is_cut_out() {
        let js = "test('logs', () => {\n  f(); // logs 'x'\n});\n\ntest('checks', () => {\n  assert.strictEqual(f(), 1);\n});\n";
        assert_eq!(
            without_assertless_tests(js, Runner::JavaScript),
            "\ntest('checks', () => {\n  assert.strictEqual(f(), 1);\n});"
        );
        let python = "import pytest\n\ndef test_raises():\n    with pytest.raises(ValueError):\n        f('')\n\n\ndef test_prints():\n    print(f('x'))\n";
        assert_eq!(
            without_assertless_tests(python, Runner::Python),
            "import pytest\n\ndef test_raises():\n    with pytest.raises(ValueError):\n        f('')\n\n"
        );
    }

    #[test]
    fn named_tests_are_cut_out_and_the_rest_kept() {
        let python = "import pytest\n\ndef test_a():\n    assert f() == 1\n\n\ndef test_b():\n    assert f() == 2\n\n\ndef test_c():\n    assert True\n";
        assert_eq!(
            without_tests(python, Runner::Python, &["test_b"]),
            "import pytest\n\ndef test_a():\n    assert f() == 1\n\n\ndef test_c():\n    assert True"
        );
        let js = "const test = require('node:test');\n\ntest('keeps', () => {\n  assert.ok(true);\n});\n\ntest(\"drops\", async () => {\n  jest.fn();\n});\n\ntest('one line', () => assert.ok(1));\n";
        assert_eq!(
            without_tests(js, Runner::JavaScript, &["drops", "one line"]),
            "const test = require('node:test');\n\ntest('keeps', () => {\n  assert.ok(true);\n});\n\n"
        );
    }
}
