//! The pieces every writing strategy shares: what the brief is about ([`subject`]), the facts
//! it states that the work must carry ([`facts`]), asking for a paragraph of about so many
//! words ([`write_paragraphs`]) and for a numbered list ([`write_list`]), and cleaning what a
//! small model wraps around its answer (quotes, commentary, placeholders, misspelt names).

mod lists;
mod names;

use super::compose::{Ask, Writer};
use super::{clean, compose};
use crate::engine::EngineError;
use names::invents_a_name;

pub use lists::{ListSpec, example_items, numbered_items, write_list};
pub use names::fix_names;

/// Whether `text` is an instruction ("Write a 1500-word blog post…") rather than a name for
/// the work.
pub fn is_instruction(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    IMPERATIVES.iter().any(|verb| lower.starts_with(&format!("{verb} ")))
}

/// Verbs that open an instruction to us rather than a fact about the work.
const IMPERATIVES: &[&str] = &[
    "write",
    "provide",
    "give",
    "include",
    "create",
    "draft",
    "make",
    "please",
    "produce",
    "prepare",
    "compose",
    "design",
    "translate",
    "review",
    "need",
    "i need",
    "we need",
    "generate",
    "list",
    "add",
    "use",
    "keep",
];

/// Lines a small model writes about its answer instead of as part of it.
const COMMENTARY_OPENINGS: &[&str] = &[
    "here's",
    "here is",
    "in this ",
    "note:",
    "justification",
    "this post",
    "this caption",
    "this message",
    "i hope",
    "explanation",
    "commentary",
    "feel free",
    "let me know",
    "remember to",
    "example",
    "now the real",
    "word count",
    "(word count",
    "---",
];

/// Phrases that mark the model echoing our prompt; a sentence with one is dropped.
const PROMPT_ECHOES: &[&str] =
    &["so far:", "brand news:", "product:", "brief:", "outline:", "the real task", "write only"];

/// Tokens per English word, with headroom for markdown and sub-word pieces.
pub const TOKENS_PER_WORD: f64 = 1.6;

/// What the brief is about, without the instructions: its statements, and for an instruction
/// like "Write ad copy for 'X', an app that…" the part after "for".
pub fn subject(description: &str) -> String {
    let mut kept = Vec::new();
    for sentence in compose::sentences(description) {
        let lower = sentence.to_lowercase();
        let imperative = IMPERATIVES.iter().any(|verb| lower.starts_with(&format!("{verb} ")));
        if !imperative {
            kept.push(sentence);
        } else if let Some(at) = lower.split(':').next().and_then(|clause| clause.find(" for ")) {
            // Only in the instruction's first clause: after a colon come the parts to write.
            let about = sentence[at + 5..].trim();
            // "…for each slide a title" is an instruction too; an object worth keeping names
            // something ("'X', an app that…", "a bakery called…").
            let names_something = about.starts_with(['\'', '"', '“']) || about.split_whitespace().count() >= 3;
            if names_something && !lower[at..].starts_with(" for each") {
                kept.push(capitalise(about));
            }
        }
    }
    without_parentheses(&kept.join(" "))
}

/// `text` without its parenthesised asides, which in a brief are instructions ("(under 280
/// characters)").
fn without_parentheses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ").replace(" ,", ",").replace(" .", ".")
}

/// Numbers in `text` as digit strings (`30%` and `$750k` give `30` and `750`).
pub fn numbers_in(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).map(str::to_string).collect()
}

/// What the model may state: the numbers and names of the text it was given.
pub struct Grounding {
    numbers: std::collections::BTreeSet<String>,
    source: String,
}

impl Grounding {
    pub fn new(source: &str) -> Self {
        Self { numbers: numbers_in(source), source: source.to_string() }
    }

    /// Whether `sentence` says nothing the source does not support (see [`unsupported`]).
    pub fn supports(&self, sentence: &str) -> bool {
        !unsupported(sentence, self)
    }
}

/// Sentences the model made up or padded: a number the brief never gave (a date, a price, a
/// duration — small models invent them freely), a name it never gave (a company, a person),
/// or stock filler. Dropped from its prose.
fn unsupported(sentence: &str, grounding: &Grounding) -> bool {
    let lower = sentence.to_lowercase();
    numbers_in(sentence).iter().any(|n| !grounding.numbers.contains(n))
        || invents_a_name(sentence, &grounding.source)
        || super::checks::STOCK_FILLER.iter().any(|phrase| lower.contains(phrase))
        || PROMPT_ECHOES.iter().any(|echo| lower.contains(echo))
        // Handles and e-mail addresses the brief never gave, and trailing-off fragments.
        || sentence.contains('@')
        || sentence.trim_end().ends_with("...")
        || sentence.trim_end().ends_with('…')
}

/// `text` without the sentences `grounding` does not support, paragraphs kept.
pub fn drop_unsupported(text: &str, grounding: &Grounding) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            compose::sentences(paragraph).into_iter().filter(|s| grounding.supports(s)).collect::<Vec<_>>().join(" ")
        })
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Facts the work must carry as written: codes (`GRIND30`), figures with a unit or sign
/// (`30%`, `$750k`, `48 hours`, `750 ml`, `6am`) and quoted names.
pub fn facts(description: &str, names: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut push = |fact: String| {
        if !fact.is_empty() && !found.iter().any(|f| f.eq_ignore_ascii_case(&fact)) {
            found.push(fact);
        }
    };
    for token in description.split_whitespace() {
        let token =
            token.trim_matches(|c: char| matches!(c, ',' | '.' | ';' | ':' | '(' | ')' | '\'' | '"' | '!' | '?'));
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let has_upper = token.chars().any(|c| c.is_ascii_uppercase());
        let code = has_digit && has_upper && token.chars().all(|c| c.is_ascii_alphanumeric()) && token.len() >= 4;
        let figure = has_digit && (token.contains('%') || token.starts_with(['$', '€', '£']));
        if code || figure {
            push(token.to_string());
        }
    }
    for name in names {
        push(name.clone());
    }
    found
}

/// The features a brief lists after a colon ("…water bottle: keeps drinks cold 24h, 750 ml,
/// leak-proof lid"), as written: at least three comma-separated items.
pub fn feature_list(description: &str) -> Vec<String> {
    for sentence in compose::sentences(description) {
        let Some((_, list)) = sentence.split_once(": ") else { continue };
        let items: Vec<String> = split_outside_parentheses(list.trim_end_matches(['.', '!']))
            .into_iter()
            .map(|item| item.trim().trim_start_matches("and ").trim().to_string())
            .filter(|item| !item.is_empty())
            .collect();
        if items.len() >= 3 {
            return items;
        }
    }
    Vec::new()
}

/// `text` split at commas and semicolons that are not inside parentheses.
fn split_outside_parentheses(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | ';' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Ask for about `words` words of prose under `instruction`, with `context` before it, and
/// clean the answer into plain paragraphs (empty if nothing in it was usable). `None` when no
/// time was left.
pub async fn write_paragraphs(
    writer: &mut Writer<'_>,
    system: &str,
    context: &str,
    instruction: &str,
    words: usize,
    share: f64,
) -> Result<Option<String>, EngineError> {
    write_paragraphs_from(writer, system, context, instruction, words, share, "").await
}

/// As [`write_paragraphs`], with the answer begun by `opening` (a phrase it must contain).
pub async fn write_paragraphs_from(
    writer: &mut Writer<'_>,
    system: &str,
    context: &str,
    instruction: &str,
    words: usize,
    share: f64,
    opening: &str,
) -> Result<Option<String>, EngineError> {
    let max_tokens = (words as f64 * TOKENS_PER_WORD) as usize + 40;
    let ask = Ask::new(system, format!("{context}\n\n{instruction}"), max_tokens).share(share).prefix(opening);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let truncated = reply.finish != crate::engine::FinishReason::Eos;
    let grounding = Grounding::new(&format!("{context}\n{instruction}"));
    let text = drop_unsupported(&clean_prose(&clean::clean_output(&reply.text, truncated)), &grounding);
    // Empty when nothing survived cleaning: the caller may ask again.
    Ok(Some(text.trim().to_string()))
}

/// Paragraphs only: no headings, no list markers, no surrounding quotes, no commentary, no
/// `[placeholders]`.
pub fn clean_prose(text: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join(" "));
                current.clear();
            }
            continue;
        }
        if is_commentary(line) {
            // What follows commentary is more commentary; an opening line of it is skipped.
            if paragraphs.is_empty() && current.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with('#') || line.contains('[') || line.starts_with("**") && line.ends_with("**") {
            continue;
        }
        let line = line.trim_start_matches(['-', '*', '•']).trim();
        let line = strip_list_number(line);
        let line = line.trim_matches(|c| c == '"' || c == '“' || c == '”').trim();
        if !line.is_empty() {
            current.push(line.to_string());
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join(" "));
    }
    // A short paragraph without closing punctuation is a title the model echoed ("Email
    // Newsletter - Monday to Friday"), not prose.
    paragraphs.retain(|p| p.ends_with(['.', '!', '?', '"', '”', '\'', '’', ')']) || p.split_whitespace().count() >= 15);
    paragraphs.join("\n\n")
}

fn is_commentary(line: &str) -> bool {
    let lower = line.trim_start_matches(['*', '#', ' ', '"']).to_lowercase();
    COMMENTARY_OPENINGS.iter().any(|opening| lower.starts_with(opening))
}

fn strip_list_number(line: &str) -> &str {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    match line[digits..].strip_prefix(['.', ')']) {
        Some(rest) if digits > 0 && digits <= 2 => rest.trim_start(),
        _ => line,
    }
}

/// Lower-case words of four letters or more, the distinctive part of a text.
pub fn content_words(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .map(|w| w.to_lowercase().chars().take(6).collect())
        .collect()
}

pub fn plural(kind: &str) -> String {
    match kind {
        k if k.ends_with('s') => k.to_string(),
        k if k.ends_with('y') => format!("{}ies", &k[..k.len() - 1]),
        k => format!("{k}s"),
    }
}

pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_drops_instructions_but_keeps_what_they_are_about() {
        let s = subject(
            "Write Google responsive search ad assets for 'LinguaLeap', an app that teaches Spanish. \
             Provide 10 headlines and 4 descriptions. Free 7-day trial.",
        );
        assert_eq!(s, "'LinguaLeap', an app that teaches Spanish. Free 7-day trial.");
        assert_eq!(
            subject("Give me some slogan ideas for a bakery called Crumb & Co that sells sourdough bread."),
            "A bakery called Crumb & Co that sells sourdough bread."
        );
    }

    #[test]
    fn listed_features_are_read_as_written() {
        let features = feature_list(
            "Describe the 'Alpine 750' bottle: keeps drinks cold 24h / hot 12h, 750 ml, leak-proof lid and dishwasher safe. Target: hikers.",
        );
        assert_eq!(features, ["keeps drinks cold 24h / hot 12h", "750 ml", "leak-proof lid and dishwasher safe"]);
        assert!(feature_list("No list here: just one thing.").is_empty());
        assert_eq!(
            feature_list("Items: spin class, holiday hours (closed Nov 27, 8am-2pm Nov 28), and a spotlight."),
            ["spin class", "holiday hours (closed Nov 27, 8am-2pm Nov 28)", "a spotlight"]
        );
    }

    #[test]
    fn facts_are_codes_figures_and_names() {
        let f = facts("First month is 30% off with code GRIND30. Seeking a $750k seed round.", &["Daily Grind".into()]);
        assert_eq!(f, ["30%", "GRIND30", "$750k", "Daily Grind"]);
    }

    #[test]
    fn commentary_and_placeholders_are_not_prose() {
        let text = "Email Newsletter - Monday\n\n\"We are live.\"\n\nSecond para\ncontinues.\n\nDear [Name],\nIn this message, I explain.";
        assert_eq!(clean_prose(text), "We are live.\n\nSecond para continues.");
        assert_eq!(clean_prose("Here's the post:\nWe are live."), "We are live.", "an opening remark is skipped");
    }

    #[test]
    fn sentences_with_invented_numbers_or_filler_are_dropped() {
        let grounding = Grounding::new("First month is 30% off at Daily Grind Club.");
        let text = "Save 30% today. We launch on July 5th. In today's fast-paced world, coffee matters.\n\nJoin us. Ask @bob. The club...";
        assert_eq!(drop_unsupported(text, &grounding), "Save 30% today.\n\nJoin us.");
        let names = "Daily Grind Club is run by InvestorVista. Like Goldman Sachs, we care. The CEO of Daily Grind Club says hi on Monday.";
        assert_eq!(drop_unsupported(names, &grounding), "The CEO of Daily Grind Club says hi on Monday.");
        assert!(!grounding.supports("The best way to learn Laravel"), "a name the brief never gave");
        let echoed = "Join the club today. Outline: new members save at Daily Grind Club. Brief: the club.";
        assert_eq!(drop_unsupported(echoed, &grounding), "Join the club today.", "our prompt's labels echoed");
    }
}
