//! What the brief states: the company's description, its facts routed to the slides they belong on
//! (with their figures), and the numbers and text a slide's statements are held to.

use regex::Regex;

use super::roles::Role;
use crate::strategy::prose;

/// A fact from the brief: the clause as a bullet, the slide it belongs on, and its figures.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fact {
    pub(super) bullet: String,
    pub(super) slide: usize,
    pub(super) figures: Vec<String>,
}

/// The brief's description of the company (its first statement) and its facts, each routed to a
/// slide. Sentences that instruct ("Draft a 10-slide outline…") are neither.
pub(super) fn read_brief(description: &str, roles: &[&Role]) -> (String, Vec<Fact>) {
    const INSTRUCTIONS: &[&str] =
        &["draft", "write", "slide", "outline", "bullet", "speaker note", "please", "create", "prepare", "need a"];
    let figure = figure_pattern();
    let mut about = String::new();
    let mut facts = Vec::new();
    for sentence in description.split(['\n']).flat_map(|line| line.split(". ")) {
        let sentence = sentence.trim().trim_end_matches('.');
        let lower = sentence.to_lowercase();
        if sentence.is_empty() || INSTRUCTIONS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        if about.is_empty() {
            about = format!("{sentence}.");
            if !figure.is_match(sentence) {
                continue;
            }
        }
        for clause in sentence.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            // "Market: 38 million…": the label routes the fact, the rest is the bullet.
            let (label, body) = match clause.split_once(':') {
                Some((label, body)) if label.split_whitespace().count() <= 3 => (label, body.trim()),
                _ => ("", clause),
            };
            let figures: Vec<String> = figure
                .find_iter(body)
                .map(|m| m.as_str().trim_end_matches(['.', ',']).to_string())
                .filter(|f| f.chars().any(|c| c.is_ascii_digit()))
                .collect();
            let slide = route(&format!("{label} {body}"), roles);
            facts.push(Fact { bullet: prose::capitalise(body), slide, figures });
        }
    }
    if about.is_empty() {
        about = "A company preparing a slide deck.".into();
    }
    (about, facts)
}

fn figure_pattern() -> Regex {
    Regex::new(r"(?i)[$€£]?\d[\d,.]*\s?(?:k|m|bn|%|percent|million|billion|thousand)?\b").expect("valid pattern")
}

/// The slide whose keywords the clause names most (its first such slide); else the first slide.
fn route(clause: &str, roles: &[&Role]) -> usize {
    let lower = clause.to_lowercase();
    let scores: Vec<usize> = roles.iter().map(|r| r.keywords.iter().filter(|k| lower.contains(*k)).count()).collect();
    let best = scores.iter().copied().max().unwrap_or(0);
    if best == 0 {
        return 0;
    }
    scores.iter().position(|s| *s == best).unwrap_or(0)
}

/// What the brief states: its numbers (from the company's description and the facts, not from the
/// instructions' "10 slides") and its text.
pub(super) fn known_from(description: &str, about: &str, facts: &[Fact]) -> Known {
    let numbers =
        std::iter::once(about).chain(facts.iter().map(|f| f.bullet.as_str())).flat_map(prose::numbers_in).collect();
    Known { numbers, brief: description.to_string() }
}

/// What the brief states, for telling a true statement from an invented one.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    /// Every run of digits in the brief's statements: the only numbers a slide may use.
    pub(super) numbers: std::collections::BTreeSet<String>,
    /// The brief's text: names with capitals inside (`MealRescue`) must come from it.
    pub(super) brief: String,
}

#[cfg(test)]
mod tests {
    use super::super::roles::deck_roles;
    use super::super::tests::PITCH_BRIEF;
    use super::*;

    #[test]
    fn the_briefs_facts_go_to_their_slides() {
        let roles = deck_roles(10, true);
        let (about, facts) = read_brief(PITCH_BRIEF, &roles);
        assert!(about.starts_with("We are a startup delivering"), "{about}");
        let by_slide: Vec<(&str, &str)> = facts.iter().map(|f| (roles[f.slide].title, f.bullet.as_str())).collect();
        assert_eq!(
            by_slide,
            [
                ("The ask", "Seeking a $750k seed round"),
                ("Market", "38 million Americans with diabetes"),
                ("Competition", "Competitors are generic meal-kit companies"),
            ]
        );
        let figures: Vec<&String> = facts.iter().flat_map(|f| &f.figures).collect();
        assert_eq!(figures, ["$750k", "38 million"]);
        assert_eq!(known_from(PITCH_BRIEF, &about, &facts).numbers, ["750".to_string(), "38".to_string()].into());
    }
}
