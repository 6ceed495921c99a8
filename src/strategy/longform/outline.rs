//! The outline of a long piece: its sections' headings (the brief's listed items, the model's
//! proposals, or stand-ins that never repeat), the keywords dealt out among them and the
//! length shared.

use super::{SYSTEM, Section};
use crate::engine::EngineError;
use crate::protocol::Brief;
use crate::strategy::GenerationPlan;
use crate::strategy::compose::{self, Writer};
use crate::strategy::prose::{self, ListSpec};

/// Words a section aims for; the count follows from the target length.
const WORDS_PER_SECTION: usize = 190;
const MIN_SECTIONS: usize = 3;
const MAX_SECTIONS: usize = 9;

/// The sections: the brief's listed items when it has them, else headings the model proposes,
/// with the keywords dealt out and the length shared.
pub(super) async fn outline(
    brief: &Brief,
    plan: &GenerationPlan,
    subject: &str,
    full_target: usize,
    writer: &mut Writer<'_>,
) -> Result<Vec<Section>, EngineError> {
    let req = &plan.requirements;
    let items = prose::feature_list(&brief.description);
    let count = if items.len() >= 2 {
        items.len()
    } else {
        (full_target / WORDS_PER_SECTION).clamp(MIN_SECTIONS, MAX_SECTIONS)
    };
    let spec = ListSpec {
        kind: "section heading".into(),
        count,
        max_chars: Some(60),
        example: &["Why Your Pace Matters More Than Distance", "How to Build a Weekly Running Plan"],
    };
    let topic = match items.len() {
        0 | 1 => format!("{subject} (the {})", brief.kind_of_work()),
        _ => format!("{subject} Sections, one per item: {}", items.join("; ")),
    };
    let mut headings = prose::write_list(writer, SYSTEM, &topic, &req.names, &spec, 2).await?;
    // The model's headings stand only where they are about something of the brief; the
    // brief's own items stand in for the rest.
    if items.len() >= 2 {
        headings = items.iter().map(|item| item_heading(item, &headings)).collect();
    }
    while headings.len() < count {
        let heading = fallback_heading(&headings, req.keywords.get(headings.len()).map(String::as_str));
        headings.push(heading);
    }
    let per_section = (full_target.saturating_sub((full_target / 10).clamp(40, 120)) / count.max(1)).max(40);
    let mut sections: Vec<Section> = headings
        .into_iter()
        .enumerate()
        .map(|(i, heading)| Section {
            heading,
            covers: items.get(i).cloned(),
            keywords: Vec::new(),
            words: per_section,
            text: String::new(),
        })
        .collect();
    for (i, keyword) in req.keywords.iter().enumerate() {
        let n = sections.len();
        sections[i % n].keywords.push(keyword.clone());
    }
    Ok(sections)
}

/// A heading for the brief's item: the model's heading that shares a word with it, else the
/// item itself, shortened at a clause or word boundary. The item's details in parentheses
/// (dates, times) follow the heading, in the brief's words, so the section cannot lose them.
fn item_heading(item: &str, proposed: &[String]) -> String {
    let words = prose::content_words(item);
    let (plain, details) = match item.split_once('(') {
        Some((plain, rest)) => (plain.trim(), rest.split(')').next().map(str::trim).filter(|d| !d.is_empty())),
        None => (item.trim(), None),
    };
    // The item's own figures and names (`6am`, `Maria`) must survive into its heading.
    let must_keep: Vec<&str> = plain
        .split_whitespace()
        .skip(1)
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || w.starts_with(char::is_uppercase))
        .collect();
    let fits_item = |h: &&String| {
        prose::content_words(h).iter().any(|w| words.contains(w)) && must_keep.iter().all(|k| h.contains(k))
    };
    let heading = match proposed.iter().find(fits_item) {
        Some(found) => found.clone(),
        None => {
            let plain = plain.trim_start_matches("a reminder that ").trim_start_matches("the ");
            let clause =
                [" who ", " that ", " which "].iter().fold(plain, |text, word| text.split(word).next().unwrap_or(text));
            prose::capitalise(&compose::tighten(clause, 48, 1).unwrap_or_else(|| clause.to_string()))
        }
    };
    match details {
        Some(details) => format!("{heading}: {details}"),
        None => heading,
    }
}

/// Headings for sections the model proposed none for, in the order they are used: each one
/// different, since a repeated heading reads as a loop (and fails `no_repeated_passages`).
const STOCK_HEADINGS: &[&str] = &[
    "Why It Matters",
    "How It Works",
    "Getting Started",
    "Common Mistakes to Avoid",
    "Questions to Ask First",
    "What to Watch Next",
    "Key Takeaways",
    "Your Next Steps",
    "Where to Learn More",
];

/// A heading not yet `taken`: about the keyword when there is one, else the next stock one.
fn fallback_heading(taken: &[String], keyword: Option<&str>) -> String {
    let free = |heading: &str| !taken.iter().any(|t| t.eq_ignore_ascii_case(heading));
    keyword
        .map(|keyword| format!("What {} Means for You", prose::capitalise(keyword)))
        .filter(|heading| free(heading))
        .or_else(|| STOCK_HEADINGS.iter().find(|heading| free(heading)).map(|heading| heading.to_string()))
        .unwrap_or_else(|| format!("Part {}", taken.len() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_items_become_headings_the_model_may_name() {
        let proposed = vec!["Spin Into the Morning".to_string(), "Celebrating Maria's Run".to_string()];
        assert_eq!(
            item_heading("new 6am spin class on Tuesdays and Thursdays", &proposed),
            "New 6am spin class on Tuesdays and Thursdays",
            "the model's heading lost the time"
        );
        assert_eq!(item_heading("a spotlight on Maria", &proposed), "Celebrating Maria's Run");
        assert_eq!(
            item_heading("holiday opening hours (closed Nov 27, 8am-2pm Nov 28)", &proposed),
            "Holiday opening hours: closed Nov 27, 8am-2pm Nov 28"
        );
        assert_eq!(
            item_heading("member spotlight on Maria who completed her first half marathon", &[]),
            "Member spotlight on Maria"
        );
        assert_eq!(
            item_heading("a reminder that the referral programme gives one free month per referred friend", &[]),
            "Referral programme gives one free month"
        );
    }

    #[test]
    fn stand_in_headings_never_repeat() {
        let mut headings = vec!["Why It Matters".to_string()];
        for keyword in
            [Some("ESG funds"), None, None, Some("ESG funds"), None, None, None, None, None, None, None, None]
        {
            let heading = fallback_heading(&headings, keyword);
            headings.push(heading);
        }
        let mut unique = headings.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), headings.len(), "{headings:?}");
        assert_eq!(headings[1], "What ESG funds Means for You");
        assert_eq!(headings[2], "How It Works", "a heading already taken is skipped");
    }
}
