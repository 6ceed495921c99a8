//! What can be checked about code without running it: a closed fence; brackets, strings and block
//! comments that balance (scanned with each language's comment and string syntax, skipping what
//! strings and comments contain); Python that parses (`rustpython-parser`) and reads no name it
//! never imports or defines. Also reads the code out of a reply (`fenced_code`) or out of a
//! Markdown answer (`largest_block`).

use super::join_names;
use super::naming::{display, fence_language};
use crate::protocol::Check;
use crate::strategy::compose::check;

/// The code of the first fenced block in a reply (which starts with the fence the prefix opened),
/// and whether its closing fence was written.
pub(super) fn fenced_code(reply: &str) -> (String, bool) {
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
    let is_tests =
        |code: &str| code.contains("def test") || code.contains("import unittest") || code.contains("node:test");
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
        if let Some(undefined) = crate::strategy::python_names::undefined_names(code) {
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

pub(super) fn failed_details(checks: &[Check]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::passed;
    use super::*;

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
}
