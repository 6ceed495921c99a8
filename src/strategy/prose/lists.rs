//! Numbered lists written to a [`ListSpec`]: asked for in rounds with two-shot examples for a
//! made-up product, each item cleaned, fitted to its limit by whole words, and kept only when
//! it is new, grounded in the brief and spells its names right; and reading the items of a
//! numbered list out of a reply.

use super::names::{fix_names, misspells_a_name};
use super::{Grounding, capitalise, content_words, plural};
use crate::engine::EngineError;
use crate::strategy::compose::{self, Ask, Writer};

/// The items of the numbered list at the start of `text` (`1. …`, `2) …`), stopping at the
/// first line that is neither an item nor blank.
pub fn numbered_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let bullet = line.starts_with(['-', '*', '•']) && !line.starts_with("**");
        let rest = match line[digits..].strip_prefix(['.', ')']) {
            Some(rest) if digits > 0 => rest,
            _ if bullet => &line[1..],
            _ => break,
        };
        let item = rest.trim().trim_matches(|c| c == '"' || c == '“' || c == '”' || c == '*').trim();
        if !item.is_empty() {
            items.push(item.to_string());
        }
    }
    items
}

/// A list to write: `count` items of `kind`, each at most `max_chars` long.
#[derive(Debug, Clone, PartialEq)]
pub struct ListSpec {
    /// Singular, lower case: `headline`.
    pub kind: String,
    pub count: usize,
    pub max_chars: Option<usize>,
    /// Two-shot example items of this kind for a made-up product, which show the model the form.
    pub example: &'static [&'static str],
}

/// The made-up product the list examples are written for; never the buyer's.
const EXAMPLE_PRODUCT: &str = "FitTrack, a running app with a personal AI coach. 14-day free trial.";
/// Words of the example that must not leak into the buyer's work.
const EXAMPLE_WORDS: &[&str] = &["fittrack", "running app", "14-day"];

/// Example items by kind, for [`ListSpec::example`].
pub fn example_items(kind: &str) -> &'static [&'static str] {
    match kind {
        k if k.contains("description") => &[
            "Train with an AI coach that adapts to you. Start your free trial today.",
            "Plans for every runner, from a first 5K to a marathon. Download now.",
        ],
        k if k.contains("slogan") || k.contains("tagline") => &["Every Run Counts", "Your Pace, Your Coach"],
        k if k.contains("bullet") || k.contains("feature") || k.contains("point") => {
            &["Personal plans that adapt after every run", "Real-time pace and heart-rate coaching"]
        }
        _ => &["Run Smarter With FitTrack", "Your AI Running Coach"],
    }
}

/// Write the list `spec` about `subject`: ask in rounds for what is still missing, keep the
/// items that fit the limit (tightened by whole words when slightly over), are new, are about
/// the brief and spell its names right. Returns the items (at most `spec.count`) and the last
/// failure when fewer than asked were found.
pub async fn write_list(
    writer: &mut Writer<'_>,
    system: &str,
    subject: &str,
    names: &[String],
    spec: &ListSpec,
    rounds: usize,
) -> Result<Vec<String>, EngineError> {
    let relevance_words = content_words(subject);
    let grounding = Grounding::new(subject);
    let mut picked: Vec<(usize, String)> = Vec::new();
    let limit = spec.max_chars.map_or(String::new(), |n| format!(" (at most {n} characters each)"));
    let heading = capitalise(&plural(&spec.kind));
    let example: String = spec.example.iter().enumerate().map(|(i, item)| format!("{}. {item}\n", i + 1)).collect();
    for round in 0..rounds.max(1) {
        // Items about the brief are what counts; others only fill in if the rounds run out.
        let relevant = picked.iter().filter(|(score, _)| *score > 0).count();
        let missing = spec.count.saturating_sub(relevant);
        if missing == 0 || !writer.has_time() {
            break;
        }
        let ask_for = (missing + 2).max(3);
        let user = format!(
            "Example. Product: {EXAMPLE_PRODUCT}\n{heading}{limit}:\n{example}\n\
             Now the real task. Write {ask_for} new {kinds} for: {subject}\n{heading}{limit}:",
            kinds = plural(&spec.kind),
        );
        let per_item = spec.max_chars.map_or(24, |n| n / 3 + 8);
        let max_tokens = ask_for * per_item + 24;
        let share = 1.0 / (rounds - round).max(2) as f64;
        let Some(reply) = writer.ask(&Ask::new(system, user, max_tokens).prefix("1.").share(share)).await? else {
            break;
        };
        for item in numbered_items(&reply.text) {
            let Some((candidate, tightened)) = list_candidate(&item, spec, names) else { continue };
            if !grounding.supports(&candidate) || picked.iter().any(|(_, p)| near_duplicate(p, &candidate)) {
                continue;
            }
            // About the brief first; an item cut down to fit after those the model wrote whole.
            let shared = content_words(&candidate).iter().filter(|w| relevance_words.contains(*w)).count();
            let score = (shared.min(2) * 2).saturating_sub(usize::from(tightened));
            picked.push((score, candidate));
        }
        // Items about the brief first; a stable sort keeps the model's order among equals.
        picked.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        if picked.iter().filter(|(score, _)| *score > 0).count() >= spec.count {
            break;
        }
    }
    Ok(picked.into_iter().take(spec.count).map(|(_, item)| item).collect())
}

/// One list item made fit for `spec` and whether it had to be tightened, or `None`.
fn list_candidate(raw: &str, spec: &ListSpec, names: &[String]) -> Option<(String, bool)> {
    let mut text: String =
        raw.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace() || "&'’-,.!?:%$/+".contains(*c)).collect();
    text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short_kind = !spec.kind.contains("description") && !spec.kind.contains("bullet");
    if short_kind {
        // "Title: explanation" or "Title - explanation": the title is the item.
        for separator in [": ", " - ", " – "] {
            if let Some((head, _)) = text.split_once(separator)
                && head.split_whitespace().count() >= 2
            {
                text = head.to_string();
            }
        }
    }
    let text = text.trim_end_matches([',', ';', ':', '-']).trim().to_string();
    let lower = text.to_lowercase();
    if EXAMPLE_WORDS.iter().any(|w| lower.contains(w)) || lower.starts_with("product") || text.ends_with("...") {
        return None;
    }
    let text = fix_names(&text, names);
    // The examples show the form; copied, they are not the buyer's work.
    if misspells_a_name(&text, names) || spec.example.iter().any(|example| near_duplicate(example, &text)) {
        return None;
    }

    let (text, tightened) = match spec.max_chars {
        Some(limit) if text.chars().count() > limit => (compose::tighten(&text, limit, 2)?, true),
        _ => (text, false),
    };
    (text.split_whitespace().count() >= 2).then_some((text, tightened))
}

/// Same words, or one inside the other, or most words shared.
fn near_duplicate(a: &str, b: &str) -> bool {
    let words = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    let (a, b) = (words(a), words(b));
    let shared = a.intersection(&b).count();
    shared * 10 >= a.len().min(b.len()).max(1) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_list_ends_where_the_rambling_starts() {
        let text = "1. Learn Spanish Fast\n2) Talk Daily\n\n3. **Bold one**\nThis is a great example.\n4. Late";
        assert_eq!(numbered_items(text), ["Learn Spanish Fast", "Talk Daily", "Bold one"]);
    }

    #[test]
    fn list_items_fit_their_limit_without_cutting_words() {
        let spec = ListSpec { kind: "headline".into(), count: 3, max_chars: Some(30), example: &[] };
        let names = vec!["LinguaLeap".to_string()];
        let item = |raw: &str| list_candidate(raw, &spec, &names).map(|(item, _)| item);
        assert_eq!(item("Language Apps: Learn Spanish in 10 minutes a day with AI").as_deref(), Some("Language Apps"));
        assert_eq!(item("Learn Spanish with lingualeap today").as_deref(), Some("Learn Spanish with LinguaLeap"));
        assert_eq!(
            list_candidate("Learn Spanish with LinguaLeap in ten minutes", &spec, &names),
            Some(("Learn Spanish with LinguaLeap".to_string(), true))
        );
        assert_eq!(item("LinguaLingo for all"), None, "a near brand");
        assert_eq!(item("Learn Spanish the Fun Way").as_deref(), Some("Learn Spanish the Fun Way"));
        assert_eq!(item("Try LinguaLaceep today").as_deref(), Some("Try LinguaLeap today"), "a misspelt brand, mended");
        assert_eq!(item("Try FitTrack free"), None, "the example leaked");
        assert!(near_duplicate("Learn Spanish Fast", "learn spanish fast!"));
        assert!(!near_duplicate("Learn Spanish Fast", "Talk With AI Tutors"));
    }
}
