//! Checks a draft against what the brief asked for ([`Requirements`]): length, keywords, names,
//! format, character limits of listed items, no chat-template tokens, no stock filler, no
//! repeated passages. Each check has a stable name, a verdict and a sentence a buyer (or a
//! repair prompt) can read; the response reports them in `metadata.checks`.

use super::clean::{TEMPLATE_MARKERS, word_count};
use super::requirements::{OutputFormat, Requirements};
use crate::protocol::{Check, Phase};

/// Phrases that mark machine-written filler; judges and buyers both penalise them.
pub(crate) const STOCK_FILLER: &[&str] = &[
    "delve",
    "in today's fast-paced world",
    "in today’s fast-paced world",
    "in the ever-evolving",
    "ever-changing landscape",
    "tapestry",
    "it is important to note that",
    "as an ai language model",
    "unlock the power of",
    "game-changer",
];

/// A final may land this far from the requested length (the strategies aim for ±10%).
const LENGTH_TOLERANCE: f64 = 0.15;
/// Words in a passage whose repetition counts as looping.
const REPEATED_PASSAGE_WORDS: usize = 8;

fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check { name: name.into(), passed, detail: detail.into() }
}

/// Every check that applies to `draft`, written for `requirements` in `phase`.
pub fn run(requirements: &Requirements, phase: Phase, draft: &str) -> Vec<Check> {
    let mut checks = vec![no_template_tokens(draft), no_stock_filler(draft), no_repeated_passages(draft)];
    if let (Phase::Final, Some(target)) = (phase, requirements.target_words) {
        checks.push(length(draft, target));
    }
    let lower = draft.to_lowercase();
    for keyword in &requirements.keywords {
        let found = lower.contains(&keyword.to_lowercase());
        let detail = if found { format!("uses \"{keyword}\"") } else { format!("never uses \"{keyword}\"") };
        checks.push(check(format!("keyword:{keyword}"), found, detail));
    }
    for name in &requirements.names {
        let found = draft.contains(name.as_str());
        let detail = if found { format!("names {name} as written") } else { format!("never writes {name} as given") };
        checks.push(check(format!("name:{name}"), found, detail));
    }
    for item in requirements.items.iter().filter(|i| i.max_chars.is_some()) {
        checks.push(max_chars(draft, &item.kind, item.max_chars.unwrap_or(u64::MAX)));
    }
    checks.extend(format(draft, &requirements.format));
    checks
}

fn no_template_tokens(draft: &str) -> Check {
    // What cleaning removes: `<|…|>` tokens and the other template markers.
    let found = ["<|", "|>"].iter().chain(TEMPLATE_MARKERS).find(|marker| draft.contains(*marker));
    match found {
        Some(marker) => check("no_template_tokens", false, format!("contains the template marker {marker}")),
        None => check("no_template_tokens", true, "no chat-template markers"),
    }
}

fn no_stock_filler(draft: &str) -> Check {
    let lower = draft.to_lowercase();
    let found: Vec<&str> = STOCK_FILLER.iter().copied().filter(|phrase| lower.contains(phrase)).collect();
    match found.is_empty() {
        true => check("no_stock_filler", true, "no stock filler phrases"),
        false => check("no_stock_filler", false, format!("uses stock filler: {}", found.join(", "))),
    }
}

/// A passage of [`REPEATED_PASSAGE_WORDS`] words that appears three times or more within one
/// section is a loop. Across sections (three posts that each end on the same offer) it is not,
/// nor is code in a fenced block, where tests and cases rightly repeat their lines.
fn no_repeated_passages(draft: &str) -> Check {
    let mut looped = None;
    let prose: String = draft.split("```").step_by(2).collect::<Vec<_>>().join("\n");
    for section in prose.split("\n## ") {
        let words: Vec<String> = section
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        let mut seen: std::collections::HashMap<&[String], usize> = std::collections::HashMap::new();
        for window in words.windows(REPEATED_PASSAGE_WORDS) {
            let count = seen.entry(window).or_default();
            *count += 1;
            if *count == 3 {
                looped = Some(window.join(" "));
                break;
            }
        }
        if looped.is_some() {
            break;
        }
    }
    match looped {
        Some(passage) => check("no_repeated_passages", false, format!("repeats \"{passage}\" three times")),
        None => check("no_repeated_passages", true, "no passage repeats"),
    }
}

fn length(draft: &str, target: u64) -> Check {
    let words = word_count(draft) as f64;
    let ratio = words / target as f64;
    let passed = (1.0 - LENGTH_TOLERANCE..=1.0 + LENGTH_TOLERANCE).contains(&ratio);
    check("length", passed, format!("{words} words for {target} requested ({:+.0}%)", (ratio - 1.0) * 100.0))
}

/// Lines that list items of `kind` (numbered, bulleted, or under a heading naming the kind)
/// must each fit in `limit` characters, not counting the list marker.
fn max_chars(draft: &str, kind: &str, limit: u64) -> Check {
    let items = listed_items(draft, kind);
    let name = format!("max_chars:{kind}");
    if items.is_empty() {
        return check(name, false, format!("no {kind}s found to measure against {limit} characters"));
    }
    let over: Vec<String> =
        items.iter().filter(|item| item.chars().count() as u64 > limit).map(|item| format!("\"{item}\"")).collect();
    match over.is_empty() {
        true => check(name, true, format!("all {} {kind}s within {limit} characters", items.len())),
        false => check(name, false, format!("{} over {limit} characters: {}", over.len(), over.join(", "))),
    }
}

/// The list items in the section whose heading mentions `kind` (e.g. `## Headlines`), or, with
/// no such section, none.
pub fn listed_items(draft: &str, kind: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut in_section = false;
    for line in draft.lines() {
        let trimmed = line.trim();
        if is_section_heading(trimmed) {
            in_section = trimmed.to_lowercase().contains(kind);
            continue;
        }
        if in_section && let Some(item) = list_item(trimmed) {
            items.push(item.to_string());
        }
    }
    items
}

/// Whether `line` opens a section: a Markdown heading (`#` then a space; `#word` is a
/// hashtag), a short line ending in `:`, or a short line in bold.
pub fn is_section_heading(line: &str) -> bool {
    let trimmed = line.trim();
    let is_heading =
        trimmed.starts_with("# ") || trimmed.starts_with("##") || (trimmed.ends_with(':') && trimmed.len() < 60);
    let bold_heading = trimmed.starts_with("**") && trimmed.ends_with("**") && trimmed.len() < 60;
    is_heading || bold_heading
}

/// The text of a list line (`1. x`, `2) x`, `- x`, `* x`), without marker and quotes.
fn list_item(line: &str) -> Option<&str> {
    let rest = if let Some(rest) = line.strip_prefix(['-', '*', '•']) {
        rest
    } else {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        line[digits..].strip_prefix(['.', ')'])?
    };
    let item = rest.trim().trim_matches(|c| c == '"' || c == '“' || c == '”').trim();
    (!item.is_empty()).then_some(item)
}

fn format(draft: &str, format: &OutputFormat) -> Option<Check> {
    match format {
        OutputFormat::Markdown => None,
        OutputFormat::Code(language) => {
            let fences = draft.lines().filter(|l| l.trim_start().starts_with("```")).count();
            let passed = fences >= 2 && fences % 2 == 0;
            let detail = match passed {
                true => format!("{} fenced code block(s)", fences / 2),
                false if fences == 0 => format!("no fenced {language} code block"),
                false => "an unclosed code fence".to_string(),
            };
            Some(check("format:code", passed, detail))
        }
        OutputFormat::Table | OutputFormat::Csv => {
            let rows = draft.lines().filter(|l| l.trim_start().starts_with('|') && l.matches('|').count() >= 3).count();
            let passed = rows >= 3;
            Some(check("format:table", passed, format!("{rows} table rows")))
        }
        OutputFormat::Svg => Some(match svg_document(draft) {
            Ok(_) => check("format:svg", true, "a well-formed SVG document"),
            Err(why) => check("format:svg", false, why),
        }),
    }
}

/// The `<svg>…</svg>` element in `draft`, parsed as XML: well-formed, with `svg` at its root.
pub fn svg_document(draft: &str) -> Result<&str, String> {
    let start = draft.find("<svg").ok_or("no <svg> element")?;
    let end = draft.rfind("</svg>").map(|end| end + "</svg>".len()).ok_or("the <svg> element is never closed")?;
    let svg = draft.get(start..end).filter(|_| end > start).ok_or("the <svg> element is never closed")?;
    let document = roxmltree::Document::parse(svg).map_err(|e| format!("the SVG is not well-formed XML: {e}"))?;
    match document.root_element().tag_name().name() {
        "svg" => Ok(svg),
        other => Err(format!("the root element is <{other}>, not <svg>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::requirements::{ItemCount, TaskFamily};

    fn requirements() -> Requirements {
        Requirements {
            family: TaskFamily::ShortForm,
            target_words: None,
            tone: None,
            audience: None,
            language: None,
            source_language: None,
            keywords: vec![],
            items: vec![],
            platforms: vec![],
            format: OutputFormat::Markdown,
            colors: vec![],
            names: vec![],
            other_rules: vec![],
        }
    }

    fn verdict(checks: &[Check], name: &str) -> bool {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in {checks:?}")).passed
    }

    #[test]
    fn code_that_repeats_its_lines_is_not_a_loop() {
        let test = "test('x', () => {\n  // the last call should be made after the wait\n  assert.ok(1);\n});\n";
        let draft = format!("## Tests\n\n```javascript\n{}```\n", test.repeat(4));
        assert!(no_repeated_passages(&draft).passed);
        assert!(!no_repeated_passages(&"the last call should be made after the wait. ".repeat(4)).passed);
    }

    #[test]
    fn length_is_checked_on_finals_within_fifteen_percent() {
        let r = Requirements { target_words: Some(100), ..requirements() };
        let words = |n: usize| "word ".repeat(n);
        assert!(verdict(&run(&r, Phase::Final, &words(90)), "length"));
        assert!(verdict(&run(&r, Phase::Final, &words(114)), "length"));
        assert!(!verdict(&run(&r, Phase::Final, &words(80)), "length"));
        assert!(!verdict(&run(&r, Phase::Final, &words(120)), "length"));
        // A prototype is an opening: its length is not held to the final's.
        assert!(run(&r, Phase::Prototype, &words(10)).iter().all(|c| c.name != "length"));
    }

    #[test]
    fn keywords_are_found_in_any_case_and_names_as_written() {
        let r = Requirements { keywords: vec!["ESG funds".into()], names: vec!["LinguaLeap".into()], ..requirements() };
        let pass = run(&r, Phase::Final, "Our esg funds guide, by LinguaLeap.");
        assert!(verdict(&pass, "keyword:ESG funds") && verdict(&pass, "name:LinguaLeap"));
        let fail = run(&r, Phase::Final, "A guide to funds by Lingualeap.");
        assert!(!verdict(&fail, "keyword:ESG funds") && !verdict(&fail, "name:LinguaLeap"));
    }

    #[test]
    fn listed_items_are_held_to_their_character_limit() {
        let r = Requirements {
            items: vec![ItemCount { kind: "headline".into(), count: 2, max_chars: Some(30) }],
            ..requirements()
        };
        let ok = "## Headlines\n1. Speak Spanish in 10 Minutes\n2. \"Free 7-Day Trial\"\n\n## Descriptions\n- A much longer description line that is fine here";
        assert!(verdict(&run(&r, Phase::Final, ok), "max_chars:headline"));
        assert_eq!(listed_items(ok, "headline"), ["Speak Spanish in 10 Minutes", "Free 7-Day Trial"]);
        let long = "**Headlines**\n- This headline is far too long to fit in thirty characters";
        let checks = run(&r, Phase::Final, long);
        assert!(!verdict(&checks, "max_chars:headline"));
        assert!(checks.iter().any(|c| c.detail.contains("far too long")), "{checks:?}");
        assert!(!verdict(&run(&r, Phase::Final, "No list at all."), "max_chars:headline"));
    }

    #[test]
    fn filler_loops_and_template_tokens_fail() {
        let r = requirements();
        let clean = run(&r, Phase::Final, "A plain, specific paragraph about coffee.");
        assert!(clean.iter().all(|c| c.passed), "{clean:?}");
        assert!(!verdict(&run(&r, Phase::Final, "Let us delve into it."), "no_stock_filler"));
        let looped = "the best coffee in town is here now. ".repeat(3);
        assert!(!verdict(&run(&r, Phase::Final, &looped), "no_repeated_passages"));
        // The same closing offer under three posts is not a loop.
        let offer = "First month is 30% off with code GRIND30.";
        let posts = format!("## LinkedIn\n\nHello. {offer}\n\n## Instagram\n\nHi. {offer}\n\n## X\n\nHey. {offer}\n");
        assert!(verdict(&run(&r, Phase::Final, &posts), "no_repeated_passages"));
        assert!(!verdict(&run(&r, Phase::Final, "Done.<|im_end|>"), "no_template_tokens"));
    }

    #[test]
    fn formats_are_checked() {
        let code = Requirements { format: OutputFormat::Code("python".into()), ..requirements() };
        assert!(verdict(&run(&code, Phase::Final, "Fix:\n```python\nprint(1)\n```"), "format:code"));
        assert!(!verdict(&run(&code, Phase::Final, "```python\nprint(1)"), "format:code"));
        assert!(!verdict(&run(&code, Phase::Final, "print(1)"), "format:code"));

        let table = Requirements { format: OutputFormat::Table, ..requirements() };
        let rows = "| region | revenue |\n|---|---|\n| North | 480 |";
        assert!(verdict(&run(&table, Phase::Final, rows), "format:table"));
        assert!(!verdict(&run(&table, Phase::Final, "North: 480"), "format:table"));

        let svg = Requirements { format: OutputFormat::Svg, ..requirements() };
        assert!(verdict(&run(&svg, Phase::Final, "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"), "format:svg"));
        assert!(!verdict(&run(&svg, Phase::Final, "<svg><text>Nimbus"), "format:svg"));
        let mismatched = "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>Nimbus</g></svg>";
        assert!(!verdict(&run(&svg, Phase::Final, mismatched), "format:svg"));
        let in_prose = "Here is the logo:\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><text x=\"1\" y=\"5\">Nimbus</text></svg>\nIt uses blue.";
        assert!(svg_document(in_prose).unwrap().contains("Nimbus"));
    }
}
