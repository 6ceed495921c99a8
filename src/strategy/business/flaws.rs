//! What may not go on a slide: leftover markup or placeholders, filler, talk about the deck instead
//! of the company, and numbers or names the brief does not give.

use regex::Regex;

use super::facts::Known;
use crate::strategy::{checks, prose};

/// Filler a slide may not carry, besides the stock filler every draft is checked for
/// ([`checks::STOCK_FILLER`]).
const FILLER: &[&str] = &[
    "in today's",
    "in today’s",
    "fast-paced",
    "ever-evolving",
    "in this day and age",
    "game changer",
    "unlock the power",
];
const META: &[&str] = &[
    "presentation",
    "presenter",
    "slide",
    "bullet",
    "pitch",
    "example of how",
    "this is an example",
    "this is just",
    "third part",
    "first point",
    "second point",
    "third point",
    "first thing",
    // A chat assistant's voice, not a founder's.
    "please",
    "assist you",
    "let me know",
    "feel free",
];

/// Why `text` cannot go on a slide, if it cannot: leftover markup or placeholders, filler, talk
/// about the deck, or a number or name the brief does not give.
pub(super) fn flaw(text: &str, known: &Known) -> Option<String> {
    if let Some(junk) = ["[", "]", "#", "@", "http", "...", "…", "\"", "*"].iter().find(|j| text.contains(**j)) {
        return Some(format!("contained \"{junk}\""));
    }
    let lower = text.to_lowercase();
    if let Some(filler) = FILLER.iter().chain(checks::STOCK_FILLER).find(|f| lower.contains(**f)) {
        return Some(format!("used the filler \"{filler}\""));
    }
    if let Some(meta) = META.iter().find(|m| lower.contains(**m)) {
        return Some(format!("talked about the deck (\"{meta}\") instead of the company"));
    }
    if let Some(number) = prose::numbers_in(text).into_iter().find(|n| !known.numbers.contains(n)) {
        return Some(format!("used the number {number}, which is not in the brief"));
    }
    let inner_capital = Regex::new(r"\b[A-Za-z][a-z]+[A-Z][A-Za-z]*\b").expect("valid pattern");
    if let Some(name) = inner_capital.find_iter(text).map(|m| m.as_str()).find(|n| !known.brief.contains(n)) {
        return Some(format!("made up the name {name}"));
    }
    None
}
