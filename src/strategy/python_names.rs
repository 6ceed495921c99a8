//! Names a Python module reads but never binds: `sys.argv` without `import sys`, a helper that
//! was never written. Code with one parses, then fails at run time with a `NameError`, so the
//! code strategy checks for them (`code:python_names`) the way pyflakes would, on the AST from
//! `rustpython-parser`.
//!
//! Deliberately forgiving: a name bound anywhere in the module counts as bound everywhere
//! (scopes and order are ignored), so what is reported is certainly undefined; `from x import *`
//! turns the check off.

use std::collections::BTreeSet;

use rustpython_ast::Visitor;
use rustpython_parser::ast;

/// Python's builtins and module attributes: readable without being bound.
const BUILTINS: &[&str] = &[
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
    "__import__",
    "__name__",
    "__file__",
    "__doc__",
    "__builtins__",
    "__spec__",
    "__loader__",
    "__package__",
    "__debug__",
    "NotImplemented",
    "Ellipsis",
    "BaseException",
    "BaseExceptionGroup",
    "Exception",
    "ExceptionGroup",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "EOFError",
    "EnvironmentError",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "NotADirectoryError",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PermissionError",
    "ProcessLookupError",
    "RecursionError",
    "ReferenceError",
    "RuntimeError",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "ValueError",
    "ZeroDivisionError",
    "Warning",
    "BytesWarning",
    "DeprecationWarning",
    "EncodingWarning",
    "FutureWarning",
    "ImportWarning",
    "PendingDeprecationWarning",
    "ResourceWarning",
    "RuntimeWarning",
    "SyntaxWarning",
    "UnicodeWarning",
    "UserWarning",
];

/// The names `code` reads and never binds, in order of first use; `None` when it does not parse
/// (the syntax check reports that) or star-imports (anything could be bound).
pub fn undefined_names(code: &str) -> Option<Vec<String>> {
    let module = rustpython_parser::parse(code, rustpython_parser::Mode::Module, "<code>").ok()?;
    let ast::Mod::Module(module) = module else { return None };
    let mut names = Names::default();
    for statement in module.body {
        names.visit_stmt(statement);
    }
    if names.star_import {
        return None;
    }
    let mut seen = BTreeSet::new();
    Some(
        names
            .read
            .into_iter()
            .filter(|name| !names.bound.contains(name) && !BUILTINS.contains(&name.as_str()))
            .filter(|name| seen.insert(name.clone()))
            .collect(),
    )
}

#[derive(Default)]
struct Names {
    bound: BTreeSet<String>,
    read: Vec<String>,
    star_import: bool,
}

impl Visitor for Names {
    fn visit_expr_name(&mut self, node: ast::ExprName) {
        match node.ctx {
            ast::ExprContext::Load => self.read.push(node.id.to_string()),
            ast::ExprContext::Store | ast::ExprContext::Del => {
                self.bound.insert(node.id.to_string());
            }
        }
    }

    fn visit_stmt_function_def(&mut self, node: ast::StmtFunctionDef) {
        self.bound.insert(node.name.to_string());
        self.generic_visit_stmt_function_def(node);
    }

    fn visit_stmt_async_function_def(&mut self, node: ast::StmtAsyncFunctionDef) {
        self.bound.insert(node.name.to_string());
        self.generic_visit_stmt_async_function_def(node);
    }

    fn visit_stmt_class_def(&mut self, node: ast::StmtClassDef) {
        self.bound.insert(node.name.to_string());
        self.generic_visit_stmt_class_def(node);
    }

    fn visit_stmt_global(&mut self, node: ast::StmtGlobal) {
        self.bound.extend(node.names.iter().map(|n| n.to_string()));
    }

    fn visit_stmt_nonlocal(&mut self, node: ast::StmtNonlocal) {
        self.bound.extend(node.names.iter().map(|n| n.to_string()));
    }

    fn visit_stmt_import_from(&mut self, node: ast::StmtImportFrom) {
        self.star_import |= node.names.iter().any(|alias| alias.name.as_str() == "*");
        self.generic_visit_stmt_import_from(node);
    }

    fn visit_alias(&mut self, node: ast::Alias) {
        // `import os.path` binds `os`; `import numpy as np` binds `np`.
        let bound = node.asname.as_ref().unwrap_or(&node.name).as_str();
        self.bound.insert(bound.split('.').next().unwrap_or(bound).to_string());
    }

    // The visitor leaves the parts below unvisited by default; each is walked here.

    fn visit_arguments(&mut self, node: ast::Arguments) {
        let with_defaults = node.posonlyargs.into_iter().chain(node.args).chain(node.kwonlyargs);
        for arg in with_defaults {
            if let Some(default) = arg.default {
                self.visit_expr(*default);
            }
            self.visit_arg(arg.def);
        }
        for arg in node.vararg.into_iter().chain(node.kwarg) {
            self.visit_arg(*arg);
        }
    }

    fn visit_arg(&mut self, node: ast::Arg) {
        self.bound.insert(node.arg.to_string());
        if let Some(annotation) = node.annotation {
            self.visit_expr(*annotation);
        }
    }

    fn visit_comprehension(&mut self, node: ast::Comprehension) {
        self.visit_expr(node.target);
        self.visit_expr(node.iter);
        for condition in node.ifs {
            self.visit_expr(condition);
        }
    }

    fn visit_withitem(&mut self, node: ast::WithItem) {
        self.visit_expr(node.context_expr);
        if let Some(target) = node.optional_vars {
            self.visit_expr(*target);
        }
    }

    fn visit_keyword(&mut self, node: ast::Keyword) {
        self.visit_expr(node.value);
    }

    fn visit_match_case(&mut self, node: ast::MatchCase) {
        self.visit_pattern(node.pattern);
        if let Some(guard) = node.guard {
            self.visit_expr(*guard);
        }
        for statement in node.body {
            self.visit_stmt(statement);
        }
    }

    fn visit_excepthandler_except_handler(&mut self, node: ast::ExceptHandlerExceptHandler) {
        if let Some(name) = &node.name {
            self.bound.insert(name.to_string());
        }
        self.generic_visit_excepthandler_except_handler(node);
    }

    fn visit_pattern_match_as(&mut self, node: ast::PatternMatchAs) {
        if let Some(name) = &node.name {
            self.bound.insert(name.to_string());
        }
        self.generic_visit_pattern_match_as(node);
    }

    fn visit_pattern_match_star(&mut self, node: ast::PatternMatchStar) {
        if let Some(name) = &node.name {
            self.bound.insert(name.to_string());
        }
        self.generic_visit_pattern_match_star(node);
    }

    fn visit_pattern_match_mapping(&mut self, node: ast::PatternMatchMapping) {
        if let Some(rest) = &node.rest {
            self.bound.insert(rest.to_string());
        }
        self.generic_visit_pattern_match_mapping(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_never_imported_or_a_helper_never_written_is_reported() {
        let code = "import os\nfrom datetime import datetime\n\ndef main(folder):\n    for name in os.listdir(folder):\n        if '--dry-run' in sys.argv:\n            print(name, datetime.now(), helper(name))\n";
        assert_eq!(undefined_names(code), Some(vec!["sys".to_string(), "helper".to_string()]));
    }

    #[test]
    fn every_way_of_binding_a_name_counts() {
        let code = r#"
import os.path, numpy as np
from a import b as c
class K: pass
async def f(x, *args, y=1, **kw):
    global G
    G = [i for i in range(3) if (j := i)]
    with open(x) as fh:
        for line, n in zip(fh, args):
            try:
                pass
            except ValueError as e:
                print(e, j, n, line, y, kw)
    match x:
        case {"k": v, **rest}: print(v, rest)
        case [first, *others]: print(first, others)
    return os, np, c, K, G, lambda z: z, __name__
"#;
        assert_eq!(undefined_names(code), Some(vec![]));
    }

    #[test]
    fn a_star_import_or_a_syntax_error_turns_the_check_off() {
        assert_eq!(undefined_names("from os import *\nprint(path)\n"), None);
        assert_eq!(undefined_names("def f(:\n"), None);
    }
}
