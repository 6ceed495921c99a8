//! Common Python pitfalls found for certain in code under review — division by the length of a
//! list that may be empty, a "top n" taken from an ascending sort, a mutable default argument, a
//! bare `except:`, `== None`, items read by key, no docstrings — as findings, with the code fixed
//! by line edits where a fix is safe. Also reads the code's functions: name, parameters, the
//! lines each spans.

use std::collections::BTreeSet;

use regex::Regex;

/// One problem found in the code, and how it was fixed, if it was.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finding {
    /// `Bug`, `Edge case` or `Style`.
    pub(super) kind: &'static str,
    /// Which check found it (a fixed finding must not be found again in the corrected code).
    pub(super) rule: &'static str,
    pub(super) text: String,
    /// How the checked fix made here corrects it, if it does.
    pub(super) fix: Option<String>,
}

/// A Python function: its name, parameters and the lines it spans (0-based, the `def` line first).
#[derive(Debug, Clone)]
pub(super) struct PyFunction {
    pub(super) name: String,
    /// (name, default) for each parameter.
    params: Vec<(String, Option<String>)>,
    def_line: usize,
    /// The lines after the `def` line that belong to it.
    body: std::ops::Range<usize>,
    /// The indentation of the first body line.
    body_indent: String,
}

pub(super) fn python_functions(code: &str) -> Vec<PyFunction> {
    let def = Regex::new(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\((.*)\)\s*(?:->[^:]*)?:\s*(?:#.*)?$")
        .expect("valid pattern");
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(caps) = def.captures(line) else { continue };
        let indent = caps[1].len();
        let mut end = i + 1;
        while end < lines.len() {
            let l = lines[end];
            if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                break;
            }
            end += 1;
        }
        // Trailing blank lines belong to no one.
        while end > i + 1 && lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        let body_indent = lines[i + 1..end]
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l[..l.len() - l.trim_start().len()].to_string())
            .unwrap_or_else(|| format!("{}    ", &caps[1]));
        let params = caps[3]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "self" && !p.starts_with('*'))
            .map(|p| {
                let (name, default) = match p.split_once('=') {
                    Some((name, default)) => (name, Some(default.trim().to_string())),
                    None => (p, None),
                };
                (name.split(':').next().unwrap_or(name).trim().to_string(), default)
            })
            .collect();
        out.push(PyFunction { name: caps[2].to_string(), params, def_line: i, body: i + 1..end, body_indent });
    }
    out
}

/// An edit to one line: replace it, or insert lines after it.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, String),
    InsertAfter(usize, Vec<String>),
}

/// Common Python pitfalls found for certain, with the code fixed where a fix is safe.
pub(super) fn lint_python(code: &str) -> (Vec<Finding>, String) {
    let lines: Vec<&str> = code.lines().collect();
    let mut findings = Vec::new();
    let mut edits = Vec::new();
    let len_division = Regex::new(r"/\s*len\(\s*([A-Za-z_]\w*)\s*\)").expect("valid pattern");
    let top_name = Regex::new(r"(?i)(top|best|most|largest|highest|biggest)").expect("valid pattern");
    let loop_var = Regex::new(r"^\s*for\s+([A-Za-z_]\w*)\s+in\b").expect("valid pattern");
    let none_compare = Regex::new(r"(==|!=)\s*None\b").expect("valid pattern");
    let bare_except = Regex::new(r"^(\s*)except\s*:").expect("valid pattern");

    for function in python_functions(code) {
        let body = &lines[function.body.clone()];
        let name = &function.name;
        // Where a guard goes: after the def line, or after a docstring that opens the body.
        let guard_after = docstring_end(&lines, function.body.clone()).unwrap_or(function.def_line);

        // Division by the length of a parameter that may be empty.
        for line in body {
            let Some(caps) = len_division.captures(line) else { continue };
            let var = &caps[1];
            let is_param = function.params.iter().any(|(p, _)| p == var);
            let guarded = Regex::new(&format!(r"\bif\s+(not\s+{var}\b|len\(\s*{var}\s*\)|{var}\s*(:|==|!=|is))"))
                .is_ok_and(|guard| body.iter().any(|l| guard.is_match(l)));
            if is_param && !guarded {
                findings.push(Finding {
                    kind: "Bug",
                    rule: "division_by_len",
                    text: format!("`{name}` divides by `len({var})`, so an empty `{var}` raises ZeroDivisionError."),
                    fix: Some(format!("The corrected code returns 0.0 for an empty `{var}`.")),
                });
                let indent = &function.body_indent;
                edits.push(Edit::InsertAfter(
                    guard_after,
                    vec![format!("{indent}if not {var}:"), format!("{indent}    return 0.0")],
                ));
                break;
            }
        }

        // "Top n" taken from an ascending sort is the bottom n.
        if top_name.is_match(name) {
            for (offset, line) in body.iter().enumerate() {
                let Some(start) = line.find("sorted(") else { continue };
                let Some(close) = matching_paren(line, start + "sorted".len()) else { continue };
                let call = &line[start..=close];
                let after = line[close + 1..].trim_start();
                if !call.contains("reverse") && after.starts_with("[:") {
                    findings.push(Finding {
                        kind: "Bug",
                        rule: "top_n_ascending",
                        text: format!(
                            "`{name}` sorts in ascending order, so the slice takes the smallest entries, not the top ones."
                        ),
                        fix: Some("The corrected code sorts with `reverse=True`.".into()),
                    });
                    let fixed = format!("{}, reverse=True{}", &line[..close], &line[close..]);
                    edits.push(Edit::Replace(function.body.start + offset, fixed));
                    break;
                }
            }
        }

        // Mutable default arguments are shared between calls.
        for (param, default) in &function.params {
            let Some(default) = default else { continue };
            if !matches!(default.as_str(), "[]" | "{}" | "list()" | "dict()" | "set()") {
                continue;
            }
            findings.push(Finding {
                kind: "Bug",
                rule: "mutable_default",
                text: format!(
                    "`{name}` uses `{default}` as the default of `{param}`: one object shared by every call."
                ),
                fix: Some(format!("The corrected code defaults `{param}` to None and makes a new one per call.")),
            });
            let def = lines[function.def_line].replacen(&format!("{param}={default}"), &format!("{param}=None"), 1);
            let def = def.replacen(&format!("{param} = {default}"), &format!("{param}=None"), 1);
            edits.push(Edit::Replace(function.def_line, def));
            let indent = &function.body_indent;
            edits.push(Edit::InsertAfter(
                guard_after,
                vec![format!("{indent}if {param} is None:"), format!("{indent}    {param} = {default}")],
            ));
        }

        // Items read by key without a default: a missing key raises KeyError.
        for line in body {
            let Some(caps) = loop_var.captures(line) else { continue };
            let var = caps[1].to_string();
            let keyed = Regex::new(&format!(r#"\b{var}\[\s*['"]([^'"]+)['"]\s*\]"#)).expect("valid pattern");
            if let Some(key) = body.iter().find_map(|l| keyed.captures(l).map(|c| c[1].to_string())) {
                findings.push(Finding {
                    kind: "Edge case",
                    rule: "key_error",
                    text: format!(
                        "`{name}` reads `{var}['{key}']` directly, so an item without a `'{key}'` key raises KeyError; validate the input or use `.get()` if such items should be skipped."
                    ),
                    fix: None,
                });
                break;
            }
        }
    }

    for (i, line) in lines.iter().enumerate() {
        if let Some(caps) = bare_except.captures(line) {
            findings.push(Finding {
                kind: "Bug",
                rule: "bare_except",
                text: format!("line {}: a bare `except:` also catches KeyboardInterrupt and hides real errors.", i + 1),
                fix: Some("The corrected code catches `Exception`.".into()),
            });
            edits.push(Edit::Replace(i, format!("{}except Exception:{}", &caps[1], &line[caps[0].len()..])));
        }
        if none_compare.is_match(line) && !line.trim_start().starts_with('#') {
            findings.push(Finding {
                kind: "Style",
                rule: "none_comparison",
                text: format!("line {}: compare with None using `is` / `is not`, not `==` / `!=`.", i + 1),
                fix: Some("The corrected code does.".into()),
            });
            let fixed = none_compare.replace_all(line, |c: &regex::Captures| match &c[1] {
                "==" => "is None".to_string(),
                _ => "is not None".to_string(),
            });
            edits.push(Edit::Replace(i, fixed.into_owned()));
        }
    }

    let functions = python_functions(code);
    if !functions.is_empty() && !code.contains("\"\"\"") && !code.contains("'''") {
        findings.push(Finding {
            kind: "Style",
            rule: "docstrings",
            text: "No function has a docstring; say what each one expects (input shape, keys) and returns.".into(),
            fix: None,
        });
    }
    // Bugs first, then edge cases, then style.
    let order = |f: &Finding| match f.kind {
        "Bug" => 0,
        "Edge case" => 1,
        _ => 2,
    };
    findings.sort_by_key(order);
    (findings, apply_edits(&lines, edits))
}

/// The last line of a docstring opening the body, if the body opens with one.
fn docstring_end(lines: &[&str], body: std::ops::Range<usize>) -> Option<usize> {
    let first = body.clone().find(|&i| !lines[i].trim().is_empty())?;
    let t = lines[first].trim();
    let quote = ["\"\"\"", "'''"].into_iter().find(|q| t.starts_with(q))?;
    if t.len() >= 6 && t[3..].contains(quote) {
        return Some(first);
    }
    (first + 1..body.end).find(|&i| lines[i].contains(quote))
}

/// The index of the `)` closing the `(` at `open` in `line`.
fn matching_paren(line: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn apply_edits(lines: &[&str], mut edits: Vec<Edit>) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let at = |e: &Edit| match e {
        Edit::Replace(i, _) | Edit::InsertAfter(i, _) => *i,
    };
    // From the bottom up, so earlier line numbers stay valid; on one line, replace before inserting.
    edits.sort_by_key(|e| (std::cmp::Reverse(at(e)), matches!(e, Edit::InsertAfter(..))));
    let mut inserted: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
    for edit in edits {
        match edit {
            Edit::Replace(i, text) => out[i] = text,
            Edit::InsertAfter(i, new) => {
                if inserted.insert((i, new.clone())) {
                    for (k, line) in new.into_iter().enumerate() {
                        out.insert(i + 1 + k, line);
                    }
                }
            }
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::checks::code_checks;
    use super::super::test_support::REVIEWED;
    use super::*;

    #[test]
    fn the_review_fixture_is_fixed_for_certain() {
        let (findings, fixed) = lint_python(REVIEWED);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"division_by_len") && rules.contains(&"top_n_ascending"), "{rules:?}");
        assert!(rules.contains(&"key_error") && rules.contains(&"docstrings"), "{rules:?}");
        assert_eq!(findings[0].kind, "Bug", "bugs come first");
        assert!(
            fixed.contains("def average_order_value(orders):\n    if not orders:\n        return 0.0\n    total = 0")
        );
        assert!(fixed.contains("sorted(counts, key=counts.get, reverse=True)[:n]"), "{fixed}");
        // The fixed code passes every check and no longer has the fixed problems.
        assert!(code_checks(&fixed, "python", true).iter().all(|c| c.passed), "{fixed}");
        let (again, _) = lint_python(&fixed);
        assert!(again.iter().all(|f| f.fix.is_none()), "{again:?}");
    }

    #[test]
    fn other_pitfalls_are_fixed_too() {
        let code = "def add(item, items=[]):\n    \"\"\"Add.\"\"\"\n    try:\n        items.append(item)\n    except:\n        pass\n    if item == None:\n        return None\n    return items";
        let (findings, fixed) = lint_python(code);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"mutable_default") && rules.contains(&"bare_except"), "{rules:?}");
        assert!(rules.contains(&"none_comparison") && !rules.contains(&"docstrings"), "{rules:?}");
        assert!(
            fixed.starts_with(
                "def add(item, items=None):\n    \"\"\"Add.\"\"\"\n    if items is None:\n        items = []"
            ),
            "{fixed}"
        );
        assert!(fixed.contains("    except Exception:") && fixed.contains("if item is None:"), "{fixed}");
        assert!(code_checks(&fixed, "python", true).iter().all(|c| c.passed), "{fixed}");
        // A guarded division is fine.
        let guarded = "def mean(xs):\n    if not xs:\n        return 0\n    return sum(xs) / len(xs)";
        assert!(lint_python(guarded).0.iter().all(|f| f.rule != "division_by_len"));
    }
}
