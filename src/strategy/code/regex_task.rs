//! Regular expression tasks: the pattern written on one line, read out of the reply (without
//! `/…/flags` or string quoting), compiled, and tried as a whole-string match on the examples the
//! brief says should and should not match. The answer shows how each example fared and, for
//! Python, how to use the pattern.

use regex::Regex;

use super::checks::{failed_details, fenced_code};
use super::{MAX_BRIEF_CHARS, REGEX_ATTEMPTS, join_names};
use crate::engine::EngineError;
use crate::protocol::{Artifact, Brief, Check, Phase};
use crate::strategy::compose::{Ask, Draft, Writer, check};
use crate::strategy::prompt;

pub(super) fn is_regex_task(brief: &Brief) -> bool {
    let text =
        format!("{} {} {}", brief.title, brief.task_type.as_deref().unwrap_or(""), brief.description).to_lowercase();
    text.contains("regex") || text.contains("regular expression")
}

pub(super) async fn regex_task(brief: &Brief, language: &str, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let examples = regex_examples(&brief.description);
    let mut user = format!("# {}\n\n{}\n", brief.title, prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS));
    user.push_str("\nWrite the regular expression only, on one line.");
    let ask = Ask::new("You are an expert in regular expressions. You answer with the pattern only.", user, 80)
        .prefix("```regex\n")
        .code()
        .share(0.3);
    let mut best: Option<(String, usize)> = None;
    let attempts = match brief.phase {
        Phase::Final => REGEX_ATTEMPTS,
        Phase::Prototype => REGEX_ATTEMPTS / 2,
    };
    let outcome = writer
        .ask_until(&ask, attempts, |reply| {
            let pattern = regex_from_reply(&reply.text);
            let failures = failed_details(&regex_checks(&pattern, &examples));
            if best.as_ref().is_none_or(|(_, n)| failures.len() < *n) {
                best = Some((pattern.clone(), failures.len()));
            }
            match failures.is_empty() {
                true => Ok(pattern),
                false => Err(failures.join("; ")),
            }
        })
        .await?;
    let pattern = match outcome {
        Ok(pattern) => pattern,
        Err(_) => match best {
            Some((pattern, _)) => pattern,
            None => return Ok(Draft::default()),
        },
    };
    let checks = regex_checks(&pattern, &examples);
    let mut text = format!("```regex\n{pattern}\n```\n");
    if !examples.matching.is_empty() || !examples.not_matching.is_empty() {
        text.push_str(
            "\n## Tested against the examples in the brief\n\n| Text | Should match | Matches |\n|---|---|---|\n",
        );
        let full = Regex::new(&format!("^(?:{pattern})$")).ok();
        for (example, expected) in
            examples.matching.iter().map(|e| (e, true)).chain(examples.not_matching.iter().map(|e| (e, false)))
        {
            let got = full.as_ref().map(|r| r.is_match(example));
            let got = match got {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            };
            text.push_str(&format!("| `{example}` | {} | {got} |\n", if expected { "yes" } else { "no" }));
        }
    }
    let usage_language = if language == "regex" { "python" } else { language };
    if usage_language == "python" {
        let raw = pattern.replace('"', "\\\"");
        text.push_str(&format!(
            "\n## How to use\n\n```python\nimport re\n\nPATTERN = re.compile(r\"{raw}\")\n\ndef is_valid(text):\n    return PATTERN.fullmatch(text) is not None\n```\n"
        ));
    }
    Ok(Draft {
        artifacts: vec![Artifact::file(brief.title.clone(), "pattern.txt", "text/plain", format!("{pattern}\n"))],
        checks,
        complete: true,
        text,
        note: None,
    })
}

/// Strings the brief says should and should not match.
#[derive(Debug, Default, PartialEq)]
struct Examples {
    matching: Vec<String>,
    not_matching: Vec<String>,
}

/// Examples in sentences that say what should (not) match: quoted or backticked strings, or a list
/// after a colon.
fn regex_examples(description: &str) -> Examples {
    let quoted = Regex::new(r#""([^"]+)"|`([^`]+)`|'([^'\s][^']*)'"#).expect("valid pattern");
    let mut out = Examples::default();
    for line in description.lines() {
        for sentence in line.split(". ").flat_map(|s| s.split("; ")) {
            let lower = sentence.to_lowercase();
            let negative = ["not match", "n't match", "reject", "invalid", "must not", "should not", "shouldn't"]
                .iter()
                .any(|w| lower.contains(w));
            let positive = ["match", "valid", "accept", "e.g", "example", "such as"].iter().any(|w| lower.contains(w));
            if !negative && !positive {
                continue;
            }
            let mut found: Vec<String> = quoted
                .captures_iter(sentence)
                .filter_map(|c| c.get(1).or(c.get(2)).or(c.get(3)).map(|m| m.as_str().to_string()))
                .collect();
            if found.is_empty()
                && let Some((_, list)) = sentence.rsplit_once(':')
            {
                found = list
                    .split([',', ';'])
                    .flat_map(|s| s.split(" and "))
                    .map(|s| s.trim().trim_end_matches('.').to_string())
                    .filter(|s| !s.is_empty() && !s.contains(' '))
                    .collect();
            }
            let target = if negative { &mut out.not_matching } else { &mut out.matching };
            for example in found {
                if !target.contains(&example) {
                    target.push(example);
                }
            }
        }
    }
    out
}

/// The pattern in a reply: the first line of its code block, without `/…/flags` or `r"…"` quoting.
fn regex_from_reply(reply: &str) -> String {
    let (code, _) = fenced_code(reply);
    let line = code.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    // Code around the pattern (`pattern = r"…"  # comment`, `re.compile(r'…')`): the string literal.
    let literal = Regex::new(r#"(?:^|[=(,\s])r?(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')"#).expect("valid pattern");
    if let Some(caps) = literal.captures(line) {
        return caps.get(1).or(caps.get(2)).map_or("", |m| m.as_str()).to_string();
    }
    if let Some(inner) = line.strip_prefix('/')
        && let Some(end) = inner.rfind('/')
        && inner[end + 1..].chars().all(|c| c.is_ascii_alphabetic())
    {
        return inner[..end].to_string();
    }
    line.to_string()
}

/// The pattern compiles, and (as a whole-string match) matches every positive example and none of
/// the negative ones.
fn regex_checks(pattern: &str, examples: &Examples) -> Vec<Check> {
    let mut checks = vec![check(
        "code:block",
        !pattern.is_empty(),
        match pattern.is_empty() {
            true => "no pattern was written",
            false => "the pattern is in a fenced block",
        },
    )];
    let compiled = Regex::new(&format!("^(?:{pattern})$"));
    checks.push(match (&compiled, pattern.is_empty()) {
        (_, true) => check("code:regex_compiles", false, "there is no pattern to compile"),
        (Ok(_), false) => check("code:regex_compiles", true, "the pattern compiles"),
        (Err(e), false) => {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
            check("code:regex_compiles", false, format!("the pattern does not compile: {first}"))
        }
    });
    if examples.matching.is_empty() && examples.not_matching.is_empty() {
        return checks;
    }
    let Ok(regex) = compiled else {
        checks.push(check("code:regex_examples", false, "the brief's examples could not be tried"));
        return checks;
    };
    let missed: Vec<&String> = examples.matching.iter().filter(|e| !regex.is_match(e)).collect();
    let wrongly: Vec<&String> = examples.not_matching.iter().filter(|e| regex.is_match(e)).collect();
    let total = examples.matching.len() + examples.not_matching.len();
    checks.push(match (missed.is_empty(), wrongly.is_empty()) {
        (true, true) => {
            check("code:regex_examples", true, format!("all {total} examples from the brief behave as asked"))
        }
        _ => {
            let mut parts = Vec::new();
            if !missed.is_empty() {
                parts.push(format!("does not match {}", join_names(&missed)));
            }
            if !wrongly.is_empty() {
                parts.push(format!("matches {}, which it should not", join_names(&wrongly)));
            }
            check("code:regex_examples", false, format!("the pattern {}", parts.join(" and ")))
        }
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::super::test_support::passed;
    use super::*;

    #[test]
    fn regexes_are_compiled_and_tried_on_the_briefs_examples() {
        let brief = "Write a regex for US ZIP codes. It should match \"12345\" and \"12345-6789\". It must not match \"1234\" or `123456`.";
        let examples = regex_examples(brief);
        assert_eq!(examples.matching, ["12345", "12345-6789"]);
        assert_eq!(examples.not_matching, ["1234", "123456"]);
        let good = regex_checks(r"\d{5}(-\d{4})?", &examples);
        assert!(good.iter().all(|c| c.passed), "{good:?}");
        let loose = regex_checks(r"\d+(-\d+)?", &examples);
        assert!(passed(&loose, "code:regex_compiles") && !passed(&loose, "code:regex_examples"));
        assert!(loose.iter().any(|c| c.detail.contains("\"1234\"")), "{loose:?}");
        assert!(!passed(&regex_checks(r"(\d{5}", &examples), "code:regex_compiles"));
        let listed = regex_examples("Valid examples: a@b.co, x.y@z.org");
        assert_eq!(listed.matching, ["a@b.co", "x.y@z.org"]);
        assert_eq!(regex_from_reply("```regex\n/^\\d+$/i\n```"), "^\\d+$");
        assert_eq!(regex_from_reply("```regex\nr\"[a-z]+\"\n```"), "[a-z]+");
        assert_eq!(regex_from_reply("```regex\npattern = \"\\d{5}\"  # five \"digits\"\n```"), "\\d{5}");
        assert_eq!(regex_from_reply("```regex\nre.compile(r'^[a-z]+$')\n```"), "^[a-z]+$");
        assert_eq!(regex_from_reply("```regex\n^\\d{5}(-\\d{4})?$\n```"), "^\\d{5}(-\\d{4})?$");
    }
}
