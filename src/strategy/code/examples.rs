//! The brief's own examples, run as tests. A brief that writes `parse_duration("1h30m") == 5400`
//! (or `>>> parse_duration("1h30m")` over `5400`, or `slugify("A b") → "a-b"`) states what the
//! code must return, so those lines become tests beside the model's — the only tests whose
//! expected values are right by construction. They rank a version of the code before the model's
//! own tests do, they lead the failures a repair is shown, and a model test that expects another
//! value for the same call is wrong and is cut out.
//!
//! Only calls of a function the code defines, with literal arguments and a literal result, are
//! taken: anything else in a brief (`f(x) returns a number`) is prose, not an example.

use std::sync::LazyLock;

use regex::Regex;
use rustpython_parser::Mode;
use rustpython_parser::ast::{self, Ranged};

use super::runners::{Runner, TestRun};

/// Test names the examples run under; the runner reports them by these names.
const TEST_PREFIX: &str = "test_brief_example_";
/// Examples beyond this are repetition, not more information.
const MAX_EXAMPLES: usize = 12;

/// One example from the brief: a call and the value it must give, as source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BriefExample {
    pub call: String,
    pub expected: String,
}

/// The examples in `description` that call a function `code` defines.
pub fn brief_examples(description: &str, runner: Runner, code: &str) -> Vec<BriefExample> {
    static STATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^`?(?P<call>[A-Za-z_$][\w$.]*\s*\(.*\))`?\s*(?:===?|→|->|=>|should return|returns|gives)\s*`?(?P<expected>.+?)`?[\s.,;]*$")
            .expect("valid pattern")
    });
    let defined = runner.defined_names(code);
    let lines: Vec<&str> = description.lines().map(str::trim).collect();
    let mut examples: Vec<BriefExample> = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let line = line.trim_start_matches(['-', '*', '•']).trim();
        let found = match line.strip_prefix(">>>") {
            // A doctest: the call, and the value on the next line.
            Some(call) => lines
                .get(at + 1)
                .filter(|next| !next.is_empty() && !next.starts_with(">>>"))
                .map(|next| BriefExample { call: call.trim().to_string(), expected: next.to_string() }),
            None => STATED.captures(line).map(|caps| BriefExample {
                call: caps["call"].trim().to_string(),
                expected: caps["expected"].trim().to_string(),
            }),
        };
        let Some(mut example) = found else { continue };
        example.call = example.call.trim_matches('`').trim().to_string();
        example.expected = example.expected.trim_matches('`').trim().to_string();
        let name = example.call.split('(').next().unwrap_or("").trim();
        let name = name.rsplit('.').next().unwrap_or(name);
        if defined.iter().any(|d| d == name) && is_literal_example(runner, &example) && !examples.contains(&example) {
            examples.push(example);
        }
    }
    examples.truncate(MAX_EXAMPLES);
    examples
}

/// The examples as tests in the runner's words, one test each, to follow the model's tests (the
/// preamble there imports the code and the test library).
pub fn example_tests(runner: Runner, examples: &[BriefExample]) -> String {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| match runner {
            Runner::Python => {
                format!("def {TEST_PREFIX}{}():\n    assert {} == {}\n", i + 1, e.call, e.expected)
            }
            Runner::JavaScript => format!(
                "test('{TEST_PREFIX}{}', () => {{\n  assert.deepStrictEqual({}, {});\n}});\n",
                i + 1,
                e.call,
                e.expected
            ),
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Whether a test is one of the brief's examples.
pub fn is_example_test(name: &str) -> bool {
    name.starts_with(TEST_PREFIX)
}

/// How many of the brief's examples passed in `run`.
pub fn examples_passed(run: &TestRun) -> usize {
    run.passed.iter().filter(|name| is_example_test(name)).count()
}

/// The run with the brief's failing examples first: what a repair must fix before anything else.
pub fn examples_first(run: &TestRun) -> TestRun {
    let mut run = run.clone();
    run.failed.sort_by_key(|f| !is_example_test(&f.test));
    run
}

/// The names of the model's Python tests that the examples make wrong or redundant: a test that
/// asserts another value for one of the examples' calls (`assert parse_duration("90m") == 540`
/// where the brief says 5400), or one that only repeats examples. JavaScript tests are not read:
/// there is no parser for them here, and a contradicting one simply fails.
pub fn tests_the_examples_replace(tests: &str, runner: Runner, examples: &[BriefExample]) -> Vec<String> {
    if runner != Runner::Python || examples.is_empty() {
        return Vec::new();
    }
    let Ok(ast::Mod::Module(module)) = rustpython_parser::parse(tests, Mode::Module, "<tests>") else {
        return Vec::new();
    };
    let source = |node: &dyn Ranged| tests[usize::from(node.start())..usize::from(node.end())].to_string();
    let mut wrong = Vec::new();
    for statement in &module.body {
        let ast::Stmt::FunctionDef(test) = statement else { continue };
        if !test.name.starts_with("test") {
            continue;
        }
        // Each assert of the test as (call, expected), when it compares a call with a value.
        let asserts: Vec<Option<(String, String)>> = test
            .body
            .iter()
            .map(|statement| {
                let ast::Stmt::Assert(assert) = statement else { return None };
                let ast::Expr::Compare(compare) = assert.test.as_ref() else { return None };
                let (Some(ast::CmpOp::Eq), Some(right)) = (compare.ops.first(), compare.comparators.first()) else {
                    return None;
                };
                Some((normalised(&source(compare.left.as_ref())), normalised(&source(right))))
            })
            .collect();
        let said = |e: &BriefExample| (normalised(&e.call), normalised(&e.expected));
        let contradicts = asserts.iter().flatten().any(|(left, right)| {
            examples
                .iter()
                .map(said)
                .any(|(call, expected)| (*left == call && *right != expected) || (*right == call && *left != expected))
        });
        let repeats = asserts.iter().all(|a| {
            a.as_ref().is_some_and(|(left, right)| {
                examples.iter().map(said).any(|(call, expected)| {
                    (*left == call && *right == expected) || (*right == call && *left == expected)
                })
            })
        });
        if contradicts || repeats {
            wrong.push(test.name.to_string());
        }
    }
    wrong
}

/// Source text compared without its spacing or its choice of quotes.
fn normalised(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).map(|c| if c == '\'' { '"' } else { c }).collect()
}

/// A call whose arguments are literals, and a literal result: what an example is.
fn is_literal_example(runner: Runner, example: &BriefExample) -> bool {
    match runner {
        Runner::Python => python_literal_example(example),
        Runner::JavaScript => javascript_literal_example(example),
    }
}

fn python_literal_example(example: &BriefExample) -> bool {
    let (Ok(call), Ok(expected)) = (
        rustpython_parser::parse(&example.call, Mode::Expression, "<example>"),
        rustpython_parser::parse(&example.expected, Mode::Expression, "<example>"),
    ) else {
        return false;
    };
    let (ast::Mod::Expression(call), ast::Mod::Expression(expected)) = (call, expected) else { return false };
    let ast::Expr::Call(call) = call.body.as_ref() else { return false };
    call.args.iter().all(python_literal)
        && call.keywords.iter().all(|k| python_literal(&k.value))
        && python_literal(&expected.body)
}

fn python_literal(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::Constant(_) => true,
        ast::Expr::UnaryOp(op) => matches!(op.operand.as_ref(), ast::Expr::Constant(_)),
        ast::Expr::List(list) => list.elts.iter().all(python_literal),
        ast::Expr::Tuple(tuple) => tuple.elts.iter().all(python_literal),
        ast::Expr::Set(set) => set.elts.iter().all(python_literal),
        ast::Expr::Dict(dict) => {
            dict.keys.iter().flatten().all(python_literal) && dict.values.iter().all(python_literal)
        }
        _ => false,
    }
}

/// JavaScript literals, read conservatively: numbers, simple strings, booleans, `null`, and
/// arrays of them. A test file that does not parse would stop every test, so anything fancier
/// is left out.
fn javascript_literal_example(example: &BriefExample) -> bool {
    static SCALAR: &str = r#"-?\d+(?:\.\d+)?|'[^'\\\n]*'|"[^"\\\n]*"|true|false|null"#;
    static LITERALS: LazyLock<Regex> = LazyLock::new(|| {
        let value = format!(r"(?:{SCALAR}|\[\s*(?:(?:{SCALAR})\s*(?:,\s*(?:{SCALAR})\s*)*)?\])");
        Regex::new(&format!(r"^(?:{value}\s*(?:,\s*{value}\s*)*)?$")).expect("valid pattern")
    });
    let Some(args) = example.call.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')) else {
        return false;
    };
    LITERALS.is_match(args.trim()) && !example.expected.is_empty() && LITERALS.is_match(example.expected.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "def parse_duration(text):\n    return 0\n";

    fn example(call: &str, expected: &str) -> BriefExample {
        BriefExample { call: call.into(), expected: expected.into() }
    }

    #[test]
    fn stated_examples_of_a_defined_function_are_read() {
        let brief = "I need parse_duration(text):\n\nparse_duration(\"1h30m\") == 5400\n- `parse_duration('45s')` → 45.\n\
                     >>> parse_duration(\"2h\")\n7200\nparse_duration(x) returns a number\nother(\"1\") == 2\n\
                     parse_duration(\"1h30m\") == 5400";
        assert_eq!(
            brief_examples(brief, Runner::Python, CODE),
            [
                example("parse_duration(\"1h30m\")", "5400"),
                example("parse_duration('45s')", "45"),
                example("parse_duration(\"2h\")", "7200"),
            ]
        );
    }

    #[test]
    fn prose_after_a_call_is_not_an_example() {
        let brief = "parse_duration(\"90\") should return an error\nparse_duration(\"1h\") gives one hour";
        assert!(brief_examples(brief, Runner::Python, CODE).is_empty());
    }

    #[test]
    fn examples_become_one_test_each() {
        let examples = [example("parse_duration(\"1h\")", "3600"), example("parse_duration(\"1m\")", "60")];
        let tests = example_tests(Runner::Python, &examples);
        assert_eq!(
            tests,
            "def test_brief_example_1():\n    assert parse_duration(\"1h\") == 3600\n\n\ndef test_brief_example_2():\n    assert parse_duration(\"1m\") == 60\n"
        );
        assert!(rustpython_parser::parse(&tests, Mode::Module, "<t>").is_ok());
        let js = example_tests(Runner::JavaScript, &[example("slug('A b')", "'a-b'")]);
        assert_eq!(js, "test('test_brief_example_1', () => {\n  assert.deepStrictEqual(slug('A b'), 'a-b');\n});\n");
    }

    #[test]
    fn javascript_examples_need_plain_literals() {
        let code = "function slug(s) { return s; }";
        let brief = "slug('A b') === 'a-b'\nslug(x) => y\nslug([1, 2]) -> [1, 2]\nslug(`t${x}`) === 't'";
        assert_eq!(
            brief_examples(brief, Runner::JavaScript, code),
            [example("slug('A b')", "'a-b'"), example("slug([1, 2])", "[1, 2]")]
        );
    }

    #[test]
    fn a_model_test_expecting_another_value_or_only_repeating_one_is_found() {
        let examples = [example("parse_duration(\"90m\")", "5400")];
        let tests = "import pytest\n\ndef test_same():\n    assert parse_duration('90m') == 5400\n\n\
                     def test_wrong():\n    assert parse_duration( \"90m\" ) == 540\n\n\
                     def test_more():\n    assert parse_duration('90m') == 5400\n    assert parse_duration('1m') == 60\n\n\
                     def test_other():\n    assert parse_duration('1m') == 60\n";
        assert_eq!(tests_the_examples_replace(tests, Runner::Python, &examples), ["test_same", "test_wrong"]);
    }

    #[test]
    fn failing_examples_lead_and_count_first() {
        let run = TestRun {
            passed: vec!["test_brief_example_2".into(), "test_mine".into()],
            failed: vec![
                super::super::runners::Failure { test: "test_other".into(), error: String::new() },
                super::super::runners::Failure { test: "test_brief_example_1".into(), error: String::new() },
            ],
            problem: None,
        };
        assert_eq!(examples_passed(&run), 1);
        assert_eq!(examples_first(&run).failed[0].test, "test_brief_example_1");
    }
}
