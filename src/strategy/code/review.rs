//! The review path: code found in the brief, its problems listed and the code corrected. The
//! pitfalls found for certain (`pitfalls`) come first; the model adds findings of its own only
//! when those are few, and only short ones that name something in the code. The model's rewrite
//! replaces the checked fix only if it passes every check, keeps every function and no longer has
//! the pitfalls.

use std::collections::BTreeSet;

use regex::Regex;

use super::checks::{code_checks, failed_details, fenced_code};
use super::naming::{code_artifact, display, fence_language, file_name};
use super::pitfalls::{Finding, lint_python, python_functions};
use super::{FINAL_CODE_TOKENS, MAX_BRIEF_CHARS, MAX_FINDING_WORDS, join_names};
use crate::engine::EngineError;
use crate::protocol::{Brief, Phase};
use crate::strategy::compose::{Ask, Draft, Writer};
use crate::strategy::prompt;

pub(super) async fn review(
    brief: &Brief,
    language: &str,
    original: &str,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let (mut findings, fixed_code) = match language {
        "python" => lint_python(original),
        _ => (Vec::new(), original.to_string()),
    };
    let system = format!("You are a senior {} developer. You fix bugs with small, careful changes.", display(language));
    let fence = fence_language(language);
    // The whole brief, code and all: what the buyer saw go wrong ("fires on every keystroke",
    // "this.persist is not a function") says where the bugs are, and what the fix must keep.
    let brief_text = prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS);
    let context = match brief_text.contains(original.trim()) {
        true => format!("# {}\n\n{brief_text}", brief.title),
        false => format!("# {}\n\n{brief_text}\n\nThe code:\n\n```{fence}\n{original}\n```", brief.title),
    };

    // The model's own findings only when the local checks found little: they are often wrong.
    if findings.len() < 2 {
        let user = format!(
            "{context}\n\nList the bugs in this {} code, first those behind any problem the brief describes, then the \
             edge cases it gets wrong; style issues only if the brief asks for them. One per line, each under 20 \
             words. Only real defects: no advice on names, comments or documentation.",
            display(language)
        );
        let ask = Ask::new(system.clone(), user, 200).prefix("1.").share(0.3);
        let names = identifiers(original);
        let reply = writer.ask(&ask).await?;
        for text in reply.map(|r| model_findings(&r.text, &names)).unwrap_or_default().into_iter().take(3) {
            findings.push(Finding { kind: "Note", rule: "model", text, fix: None });
        }
    }

    // The model's rewrite, accepted only if it is at least as good as the fix made here.
    let issues: Vec<String> = findings.iter().filter(|f| f.fix.is_some()).map(|f| f.text.clone()).collect();
    let mut user = format!("{context}\n\n");
    if !issues.is_empty() {
        user.push_str("Fix these problems:\n");
        for (i, issue) in issues.iter().enumerate() {
            user.push_str(&format!("{}. {issue}\n", i + 1));
        }
        user.push('\n');
    }
    user.push_str(&format!(
        "Write the corrected {} code: it must do what the brief expects, keeping every function. Output only the code.",
        display(language)
    ));
    let tokens = (original.len() / 2 + 200).min(FINAL_CODE_TOKENS);
    let ask = Ask::new(system, user, tokens).prefix(format!("```{fence}\n")).code().share(0.5);
    let attempts = match brief.phase {
        Phase::Final => 2,
        Phase::Prototype => 1,
    };
    let functions: BTreeSet<String> = python_functions(original).into_iter().map(|f| f.name).collect();
    let accepted = writer
        .ask_until(&ask, attempts, |reply| {
            let (code, closed) = fenced_code(&reply.text);
            let mut failures = failed_details(&code_checks(&code, language, closed));
            let missing: Vec<&String> =
                functions.iter().filter(|name| !code.contains(&format!("def {name}"))).collect();
            if !missing.is_empty() {
                failures.push(format!("it drops the function(s) {}", join_names(&missing)));
            }
            if language == "python" {
                let (still, _) = lint_python(&code);
                let unfixed: Vec<String> = still.iter().filter(|f| f.fix.is_some()).map(|f| f.text.clone()).collect();
                if !unfixed.is_empty() {
                    failures.push(format!("it still has this problem: {}", unfixed.join("; ")));
                }
            }
            match failures.is_empty() {
                true => Ok(code),
                false => Err(failures.join("; ")),
            }
        })
        .await?;
    let (corrected, by_model) = match accepted {
        Ok(code) => (code, true),
        Err(failure) => {
            tracing::info!(%failure, "the model's corrected code failed its checks; using the checked fix");
            (fixed_code, false)
        }
    };

    let mut text = String::from("## Findings\n\n");
    if findings.is_empty() {
        text.push_str("1. No definite bugs found by the checks run on this code.\n");
    }
    for (i, finding) in findings.iter().enumerate() {
        let fixed = match (&finding.fix, by_model) {
            (None, _) => String::new(),
            (Some(_), true) => " Fixed in the corrected code.".to_string(),
            (Some(fix), false) => format!(" {fix}"),
        };
        text.push_str(&format!("{}. **{}:** {}{fixed}\n", i + 1, finding.kind, finding.text));
    }
    text.push_str(&format!("\n## Corrected code\n\n```{fence}\n{}\n```\n", corrected.trim_end()));
    if !by_model && corrected.trim() == original.trim() {
        text.push_str("\nThe code is unchanged: no fix could be verified.\n");
    }
    let checks = code_checks(&corrected, language, true);
    let filename = file_name(&corrected, language, &brief.title, true);
    let note = match brief.phase {
        Phase::Prototype => Some(
            "This prototype is the complete review: the bugs, edge cases and style issues, with the corrected code; \
             the final delivery refines the rewrite."
                .to_string(),
        ),
        Phase::Final => None,
    };
    Ok(Draft {
        artifacts: vec![code_artifact(&brief.title, &filename, language, &corrected)],
        text,
        checks,
        complete: true,
        note,
    })
}

/// The code in a brief: a fenced block, or the lines from the first one that starts like code.
pub(super) fn find_code(description: &str) -> Option<String> {
    if let Some(start) = description.find("```") {
        let after = &description[start + 3..];
        let body = after.split_once('\n').map(|(_, body)| body)?;
        let end = body.find("```").unwrap_or(body.len());
        let code = body[..end].trim_end();
        return (code.lines().count() >= 2).then(|| code.to_string());
    }
    const STARTS: &[&str] = &[
        "def ",
        "class ",
        "import ",
        "from ",
        "async def ",
        "function ",
        "const ",
        "let ",
        "var ",
        "SELECT ",
        "WITH ",
        "CREATE ",
        "INSERT ",
        "UPDATE ",
        "DELETE ",
        "#!/",
        "fn ",
        "pub fn ",
        "public ",
        "#include",
        "package ",
    ];
    let lines: Vec<&str> = description.lines().collect();
    let start = lines.iter().position(|line| STARTS.iter().any(|s| line.starts_with(s)))?;
    let mut code: Vec<&str> = lines[start..].to_vec();
    // Prose after the code ("Thanks!") is not code: drop unindented lines of plain words at the end.
    while code.last().is_some_and(|l| {
        let t = l.trim();
        t.is_empty() || (!l.starts_with(char::is_whitespace) && is_prose(t) && !STARTS.iter().any(|s| l.starts_with(s)))
    }) {
        code.pop();
    }
    (code.len() >= 2).then(|| code.join("\n"))
}

/// Several words and none of code's punctuation.
fn is_prose(line: &str) -> bool {
    line.split_whitespace().count() >= 4 && !line.contains(['(', ')', '=', '{', '}', '[', ']', ';'])
}

/// Findings in the model's numbered list that name something in the code and are short.
fn model_findings(reply: &str, names: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in reply.lines() {
        let Some(item) = list_item_text(line) else { continue };
        let item = item.replace("**", "");
        let words = item.split_whitespace().count();
        let lower = item.to_lowercase();
        let names_code = item
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word.len() >= 3 && names.contains(word));
        let claims_nothing = lower.contains("no bug") || lower.contains("no issue") || lower.contains("no edge");
        if (4..=MAX_FINDING_WORDS).contains(&words) && names_code && !claims_nothing && !item.contains("```") {
            let mut item = item.trim().to_string();
            if !item.ends_with(['.', '!', '?']) {
                item.push('.');
            }
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// The text of a numbered or bulleted line.
fn list_item_text(line: &str) -> Option<&str> {
    let t = line.trim();
    let rest = match t.strip_prefix(['-', '*', '•']) {
        Some(rest) => rest,
        None => {
            let digits = t.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            t[digits..].strip_prefix(['.', ')', ':'])?
        }
    };
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
}

/// Names the code defines or uses: functions, parameters, variables (for telling a finding about
/// this code from a generic one).
fn identifiers(code: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "def", "for", "return", "if", "else", "elif", "while", "in", "and", "or", "not", "import", "from", "class",
        "the", "with", "try", "except", "true", "false", "none", "True", "False", "None", "pass", "break",
    ];
    Regex::new(r"[A-Za-z_][A-Za-z0-9_]*")
        .expect("valid pattern")
        .find_iter(code)
        .map(|m| m.as_str().to_string())
        .filter(|w| w.len() >= 3 && !KEYWORDS.contains(&w.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{REVIEWED, fixture};
    use super::*;

    #[test]
    fn code_in_the_brief_is_found_and_prose_is_not() {
        let brief = fixture("code-review-python");
        assert_eq!(find_code(&brief.description).as_deref(), Some(REVIEWED));
        assert_eq!(find_code(&fixture("script-rename-photos").description), None);
        let fenced = "Fix this:\n```js\nconst a = 1;\nconsole.log(a)\n```\nThanks!";
        assert_eq!(find_code(fenced).as_deref(), Some("const a = 1;\nconsole.log(a)"));
        let trailing = "def f(x):\n    return x\n\nLet me know what you think about it.";
        assert_eq!(find_code(trailing).as_deref(), Some("def f(x):\n    return x"));
    }

    #[test]
    fn model_findings_must_name_the_code_and_be_short() {
        let names = identifiers(REVIEWED);
        let reply = "1. `average_order_value` fails on an empty list\n2. No bugs found so far in top_customers\n3. This is a long general essay about Python that never names anything in particular at all and goes on and on\n4. Use list comprehensions everywhere";
        assert_eq!(model_findings(reply, &names), ["`average_order_value` fails on an empty list."]);
    }
}
