//! Example calls a model leaves at the top level of a Python module (`print(parse_duration("1h30m"))`,
//! an `argparse` parser and its `parse_args()`) run whenever the module is imported: by the tests,
//! and by the buyer's own code. They move under `if __name__ == "__main__":`, where running the
//! file as a script still runs them. Found with a real parser (`rustpython-parser`); code that
//! does not parse, or whose move would not parse, is left as written.

use rustpython_parser::Mode;
use rustpython_parser::ast::{self, Ranged};

/// `code` with the statements after its last function or class that do something on import
/// (calls, loops, ifs, and the assignments among them) moved under a main guard, joining one the
/// code already has.
pub fn examples_under_main_guard(code: &str) -> String {
    let Ok(ast::Mod::Module(module)) = rustpython_parser::parse(code, Mode::Module, "<code>") else {
        return code.to_string();
    };
    let body = &module.body;
    let Some(last_definition) = body.iter().rposition(is_definition) else { return code.to_string() };
    let guard = body.iter().skip(last_definition + 1).position(is_main_guard).map(|i| i + last_definition + 1);
    let end = guard.unwrap_or(body.len());
    // An import among them stays where it is (the functions may need it); the run starts after it.
    let start =
        body[..end].iter().rposition(is_import).map_or(last_definition + 1, |i| (i + 1).max(last_definition + 1));
    let moved = &body[start..end];
    if !moved.iter().any(runs_on_import) {
        return code.to_string();
    }
    let from = with_leading_comments(code, line_start(code, offset(moved[0].start())));
    let to = line_end(code, offset(moved[moved.len() - 1].end()));
    let chunk = &code[from..to];
    // Indenting a multi-line string would change its text.
    if chunk.contains("\"\"\"") || chunk.contains("'''") {
        return code.to_string();
    }
    let mut indented: String = chunk
        .lines()
        .map(|line| match line.trim().is_empty() {
            true => "\n".to_string(),
            false => format!("    {line}\n"),
        })
        .collect();
    indented.truncate(indented.trim_end().len());
    let before = code[..from].trim_end();
    let moved_code = match guard {
        None => format!("{before}\n\n\nif __name__ == \"__main__\":\n{indented}\n{}", &code[to..]),
        Some(at) => {
            let header_start = line_start(code, offset(body[at].start()));
            let header_end = line_end(code, header_start);
            let header = code[header_start..header_end].trim_end();
            format!("{before}\n\n\n{header}\n{indented}\n{}", &code[header_end..])
        }
    };
    match rustpython_parser::parse(&moved_code, Mode::Module, "<code>") {
        Ok(_) => moved_code,
        Err(_) => code.to_string(),
    }
}

fn offset(at: rustpython_parser::text_size::TextSize) -> usize {
    usize::from(at)
}

fn is_definition(statement: &ast::Stmt) -> bool {
    matches!(statement, ast::Stmt::FunctionDef(_) | ast::Stmt::AsyncFunctionDef(_) | ast::Stmt::ClassDef(_))
}

fn is_import(statement: &ast::Stmt) -> bool {
    matches!(statement, ast::Stmt::Import(_) | ast::Stmt::ImportFrom(_))
}

/// `if __name__ == "__main__":`, either way round.
fn is_main_guard(statement: &ast::Stmt) -> bool {
    let ast::Stmt::If(guard) = statement else { return false };
    let ast::Expr::Compare(compare) = guard.test.as_ref() else { return false };
    let is_name = |e: &ast::Expr| matches!(e, ast::Expr::Name(n) if n.id.as_str() == "__name__");
    let is_main = |e: &ast::Expr| matches!(e, ast::Expr::Constant(c) if matches!(&c.value, ast::Constant::Str(s) if s == "__main__"));
    let right = compare.comparators.first();
    (is_name(&compare.left) && right.is_some_and(is_main)) || (is_main(&compare.left) && right.is_some_and(is_name))
}

/// A statement that does something when the module is imported: a call (not a docstring), a loop,
/// a branch, a `with` or a `try`.
fn runs_on_import(statement: &ast::Stmt) -> bool {
    match statement {
        ast::Stmt::Expr(expr) => !matches!(expr.value.as_ref(), ast::Expr::Constant(_)),
        ast::Stmt::For(_) | ast::Stmt::While(_) | ast::Stmt::If(_) | ast::Stmt::With(_) | ast::Stmt::Try(_) => true,
        _ => false,
    }
}

fn line_start(code: &str, at: usize) -> usize {
    code[..at].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(code: &str, at: usize) -> usize {
    code[at..].find('\n').map_or(code.len(), |i| at + i + 1)
}

/// `from`, moved up over the comment lines directly above it ("# Example usage").
fn with_leading_comments(code: &str, mut from: usize) -> usize {
    while from > 0 {
        let previous = line_start(code, from - 1);
        match code[previous..from].trim_start().starts_with('#') {
            true => from = previous,
            false => break,
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_calls_move_under_a_main_guard() {
        let code = "import re\n\nUNITS = {'h': 3600}\n\ndef parse(t):\n    return UNITS[t]\n\n# Example usage\nprint(parse('h'))\nx = parse('h')\nprint(x)\n";
        assert_eq!(
            examples_under_main_guard(code),
            "import re\n\nUNITS = {'h': 3600}\n\ndef parse(t):\n    return UNITS[t]\n\n\nif __name__ == \"__main__\":\n    # Example usage\n    print(parse('h'))\n    x = parse('h')\n    print(x)\n"
        );
    }

    #[test]
    fn they_join_a_main_guard_the_code_has() {
        let code = "def parse(t):\n    return 1\n\nprint(parse('x'))\n\nif __name__ == '__main__':\n    main()\n";
        assert_eq!(
            examples_under_main_guard(code),
            "def parse(t):\n    return 1\n\n\nif __name__ == '__main__':\n    print(parse('x'))\n    main()\n"
        );
    }

    #[test]
    fn a_module_that_does_nothing_on_import_is_left_as_written() {
        for code in [
            "def parse(t):\n    return 1\n\nPATTERN = 'x'\n",
            "def parse(t):\n    return 1\n\nif __name__ == '__main__':\n    print(parse('x'))\n",
            "print('no functions at all')\n",
            "def parse(t):\n    return 1\n\nprint('''two\nlines''')\n",
            "def broken(:\n",
        ] {
            assert_eq!(examples_under_main_guard(code), code);
        }
    }
}
