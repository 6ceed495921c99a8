//! Repairing the counted lists of a whole draft (ten headlines of at most 30 characters, four
//! descriptions of at most 90) without writing the piece again: the items that fit are kept,
//! one slightly over its limit loses whole words from its end, markup the buyer would have to
//! strip goes, and only the missing items are asked for, in short calls that name the ones
//! already there. The section is then written back as a plain numbered list.

use super::compose::{Ask, Writer, tighten};
use super::requirements::ItemCount;
use super::{checks, prose};
use crate::engine::EngineError;

/// Calls at most for the missing items of one list.
const ROUNDS: usize = 3;
/// An item tightened to fit keeps at least this many words, or it is not kept.
const MIN_TIGHTENED_WORDS: usize = 3;

const SYSTEM: &str = "You write marketing copy to exact limits. Answer with a numbered list only.";

/// `text` with each counted list of `items` made whole and within its limits, as far as the
/// model and the deadline allow. `subject` says what the items are for.
pub async fn fit_lists(
    text: &str,
    items: &[ItemCount],
    subject: &str,
    writer: &mut Writer<'_>,
) -> Result<String, EngineError> {
    let mut text = text.to_string();
    for item in items {
        let count = item.count as usize;
        let have = checks::listed_items(&text, &item.kind);
        let fits = |candidate: &str| item.max_chars.is_none_or(|max| candidate.chars().count() as u64 <= max);
        if have.len() == count && have.iter().all(|i| fits(i) && plain(i) == *i) {
            continue;
        }
        let mut kept: Vec<String> = Vec::new();
        for raw in &have {
            if let Some(candidate) = fitted(raw, item.max_chars)
                && !kept.iter().any(|k| same_item(k, &candidate))
            {
                kept.push(candidate);
            }
        }
        for _ in 0..ROUNDS {
            if kept.len() >= count || !writer.has_time() {
                break;
            }
            let Some(reply) = writer.ask(&missing_ask(item, count - kept.len(), &kept, subject)).await? else { break };
            for raw in prose::numbered_items(&reply.text) {
                if let Some(candidate) = fitted(&raw, item.max_chars)
                    && !kept.iter().any(|k| same_item(k, &candidate))
                {
                    kept.push(candidate);
                }
            }
        }
        kept.truncate(count);
        if !kept.is_empty() {
            text = replace_list(&text, &item.kind, &kept);
        }
    }
    Ok(text)
}

/// The call for `missing` more items, naming those already written so none is repeated.
fn missing_ask(item: &ItemCount, missing: usize, kept: &[String], subject: &str) -> Ask {
    let kinds = prose::plural(&item.kind);
    let limit = item.max_chars.map_or(String::new(), |max| format!(", each at most {max} characters including spaces"));
    let mut user = format!("{subject}\n\nWrite {} more {kinds}{limit}.", missing + 1);
    if !kept.is_empty() {
        user.push_str(" They must differ from these:\n");
        for k in kept {
            user.push_str(&format!("- {k}\n"));
        }
    }
    user.push_str("\nNo quotation marks, no bold, nothing after the list.");
    let per_item = item.max_chars.map_or(40, |max| max as usize / 3 + 8);
    Ask::new(SYSTEM, user, (missing + 1) * per_item + 16).prefix("1.").share(0.3)
}

/// An item as the buyer would paste it: no bold, no wrapping quotes, no placeholder links.
fn plain(raw: &str) -> String {
    let text = raw.replace("**", "").replace("[link]", "");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.trim().trim_matches(|c| matches!(c, '"' | '“' | '”' | '\'' | '*' | '_')).trim().to_string()
}

/// `raw` made plain and within `max_chars` (whole words off its end if need be), or `None`.
fn fitted(raw: &str, max_chars: Option<u64>) -> Option<String> {
    let text = plain(raw);
    if text.is_empty() {
        return None;
    }
    match max_chars {
        Some(max) if text.chars().count() as u64 > max => tighten(&text, max as usize, MIN_TIGHTENED_WORDS),
        _ => Some(text),
    }
}

/// Two items are one if they read the same, whatever their case and punctuation.
fn same_item(a: &str, b: &str) -> bool {
    let key = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    key(a) == key(b)
}

/// `text` with the list under the heading that names `kind` replaced by `items`, numbered; with
/// no such heading, a section for them is added at the end.
fn replace_list(text: &str, kind: &str, items: &[String]) -> String {
    let list: String = items.iter().enumerate().map(|(i, item)| format!("{}. {item}\n", i + 1)).collect();
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| checks::is_section_heading(l) && l.to_lowercase().contains(kind))
    else {
        let heading = prose::capitalise(&prose::plural(kind));
        return format!("{}\n\n## {heading}\n\n{}", text.trim_end(), list.trim_end());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| checks::is_section_heading(l))
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    out.push(String::new());
    out.push(list.trim_end().to_string());
    if end < lines.len() {
        out.push(String::new());
        out.extend(lines[end..].iter().map(|l| l.to_string()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::Capability;
    use crate::engine::fake::ScriptedGenerator;

    fn headlines(count: u64) -> ItemCount {
        ItemCount { kind: "headline".into(), count, max_chars: Some(30) }
    }

    #[tokio::test]
    async fn fitting_items_stay_long_ones_are_tightened_and_only_the_missing_are_asked_for() {
        let draft = "## Headlines\n\n1. **Speak Spanish in 10 Minutes**\n2. \"AI Tutors Who Listen\"\n\
                     3. Learn Spanish With Ease And Convenience Every Day\n\n## Descriptions\n\n1. Keep me.";
        let fake = ScriptedGenerator::new(
            Capability::Full,
            ["1. Free 7-Day Trial\n2. AI Tutors Who Listen\n3. Talk Your Way to Fluency"],
        );
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        let fixed = fit_lists(draft, &[headlines(5)], "Ads for LinguaLeap", &mut writer).await.unwrap();
        let items = checks::listed_items(&fixed, "headline");
        assert_eq!(
            items,
            [
                "Speak Spanish in 10 Minutes",
                "AI Tutors Who Listen",
                "Learn Spanish With Ease",
                "Free 7-Day Trial",
                "Talk Your Way to Fluency"
            ]
        );
        assert!(fixed.ends_with("## Descriptions\n\n1. Keep me."), "the next section stays: {fixed}");
        let prompts = fake.prompts();
        assert_eq!(prompts.len(), 1);
        assert!(prompts[0].contains("Write 3 more headlines, each at most 30 characters"), "{}", prompts[0]);
        assert!(prompts[0].contains("- AI Tutors Who Listen"), "names what is there: {}", prompts[0]);
    }

    #[tokio::test]
    async fn a_complete_list_within_its_limits_is_left_as_written() {
        let draft = "## Headlines\n1. One line\n2. Two lines";
        let fake = ScriptedGenerator::new(Capability::Full, Vec::<String>::new());
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        assert_eq!(fit_lists(draft, &[headlines(2)], "x", &mut writer).await.unwrap(), draft);
        assert!(fake.prompts().is_empty());
    }

    #[tokio::test]
    async fn a_list_with_no_section_gets_one() {
        let fake = ScriptedGenerator::new(Capability::Full, ["1. First idea\n2. Second idea"]);
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        let fixed = fit_lists("Intro.", &[headlines(2)], "x", &mut writer).await.unwrap();
        assert_eq!(fixed, "Intro.\n\n## Headlines\n\n1. First idea\n2. Second idea");
    }
}
