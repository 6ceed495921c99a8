//! What a translation must keep as written: the numbers and names of a source sentence (a
//! `Fact` each, with where it is), and how numbers are compared between source and translation.

use super::languages::{Language, words};
use crate::strategy::words as calendar;

/// Something a translation must keep as written: a number or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fact {
    /// Where it is in the source sentence (bytes), suffixes like `th` included.
    pub(super) start: usize,
    pub(super) end: usize,
    /// What the translation must contain (`5` for `5th`).
    pub(super) text: String,
    pub(super) is_number: bool,
}

/// Openings that are capitalised only for starting a sentence or a letter.
const OPENERS: &[&str] =
    &["dear", "hello", "hi", "hey", "thanks", "thank", "please", "welcome", "good", "best", "kind"];

/// The numbers and names in `sentence`, in order. A name is a run of capitalised words that is
/// not just the sentence's first word, a weekday or month, or the word after a number (`5th
/// Avenue` is an address a translator translates); names the brief quotes count wherever found.
pub(super) fn facts(sentence: &str, known_names: &[String]) -> Vec<Fact> {
    let mut found = numbers_in(sentence);
    let tokens = word_spans(sentence);
    let capitalised = |i: usize| {
        let (_, _, word) = tokens[i];
        let lower = word.to_lowercase();
        word.chars().next().is_some_and(char::is_uppercase)
            // Weekdays and months are capitalised in English but translated like any word.
            && !calendar::is_calendar_word(&lower)
            && word != "I"
            && !(i > 0 && tokens[i - 1].2.starts_with(|c: char| c.is_ascii_digit()))
    };
    let joined = |i: usize| i > 0 && sentence[tokens[i - 1].1..tokens[i].0].chars().all(char::is_whitespace);
    let mut i = 0;
    while i < tokens.len() {
        if !capitalised(i) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end + 1 < tokens.len() && joined(end + 1) && capitalised(end + 1) {
            end += 1;
        }
        let first_word = tokens[i].2.to_lowercase();
        let mut start = i;
        if i == 0 {
            // A sentence's first word is capitalised anyway: it is part of a name only when
            // the name goes on (`Green Leaf will reopen`), and never when it is a function word.
            let function_word = OPENERS.contains(&first_word.as_str())
                || Language::English.profile().stopwords.contains(&first_word.as_str())
                || ["a", "i", "our", "we", "my"].contains(&first_word.as_str());
            if end == 0 || function_word {
                start = 1;
            }
        }
        if start <= end {
            found.push(Fact {
                start: tokens[start].0,
                end: tokens[end].1,
                text: sentence[tokens[start].0..tokens[end].1].to_string(),
                is_number: false,
            });
        }
        i = end + 1;
    }
    for name in known_names {
        if let Some(at) = sentence.find(name.as_str())
            && !found.iter().any(|f| f.start <= at && at + name.len() <= f.end)
        {
            found.retain(|f| f.end <= at || f.start >= at + name.len());
            found.push(Fact { start: at, end: at + name.len(), text: name.clone(), is_number: false });
        }
    }
    found.sort_by_key(|f| f.start);
    found
}

/// Words with their byte spans: letters and digits, with `'`, `’`, `-`, `&` inside them.
fn word_spans(text: &str) -> Vec<(usize, usize, &str)> {
    let mut spans = Vec::new();
    let mut start = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let inner = matches!(c, '\'' | '’' | '-' | '&')
            && start.is_some()
            && chars.get(k + 1).is_some_and(|(_, next)| next.is_alphanumeric());
        match (c.is_alphanumeric() || inner, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len(), &text[s..]));
    }
    spans
}

/// Numbers: digits with separators inside (`9:30`, `1,000`, `2.5`), a currency sign before and
/// an ordinal suffix after counted in the span but not in what must be kept.
fn numbers_in(sentence: &str) -> Vec<Fact> {
    let chars: Vec<(usize, char)> = sentence.char_indices().collect();
    let mut found = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        if !chars[k].1.is_ascii_digit() {
            k += 1;
            continue;
        }
        let begin = k;
        let mut end = k;
        while end + 1 < chars.len() {
            let next = chars[end + 1].1;
            let separator_then_digit =
                matches!(next, '.' | ',' | ':' | '/') && chars.get(end + 2).is_some_and(|(_, c)| c.is_ascii_digit());
            if next.is_ascii_digit() {
                end += 1;
            } else if separator_then_digit {
                end += 2;
            } else {
                break;
            }
        }
        let text_start = chars[begin].0;
        let text_end = chars.get(end + 1).map_or(sentence.len(), |(i, _)| *i);
        let start = match begin.checked_sub(1).map(|b| chars[b]) {
            Some((i, '$' | '€' | '£')) => i,
            _ => text_start,
        };
        let after = &sentence[text_end..];
        let suffix = ["st", "nd", "rd", "th"]
            .iter()
            .find(|s| after.starts_with(*s) && !after[2..].starts_with(char::is_alphanumeric))
            .map_or(0, |s| s.len());
        found.push(Fact {
            start,
            end: text_end + suffix,
            text: sentence[start..text_end].to_string(),
            is_number: true,
        });
        k = end + 1;
    }
    found
}

/// The runs of digits in `text`: how numbers are compared, so `1,000` and `1.000`, or `5th` and
/// `5.ª`, are the same number.
pub(super) fn digit_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|run| !run.is_empty()).collect()
}

/// The digit runs of `source` that `translation` lacks (as many times as the source has them).
pub(super) fn missing_numbers<'a>(source: &'a str, translation: &str) -> Vec<&'a str> {
    let mut available = digit_runs(translation);
    let mut missing = Vec::new();
    for run in digit_runs(source) {
        match available.iter().position(|r| *r == run) {
            Some(at) => {
                available.swap_remove(at);
            }
            None => missing.push(run),
        }
    }
    missing
}

/// Whether `sentence` is nothing but its numbers and names (a signature `Green Leaf`): it
/// stays as it is in any language.
pub(super) fn only_facts(sentence: &str, facts: &[Fact]) -> bool {
    words(sentence).iter().all(|w| facts.iter().any(|f| words(&f.text).contains(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_found_as_a_translator_keeps_them() {
        let texts = |sentence: &str| facts(sentence, &[]).into_iter().map(|f| f.text).collect::<Vec<_>>();
        assert_eq!(texts("Our store on 5th Avenue will be closed on Monday, March 3 for renovation."), ["5", "3"]);
        assert_eq!(texts("The Green Leaf team"), ["Green Leaf"]);
        assert_eq!(texts("Green Leaf will reopen at 9:30 on May 4."), ["Green Leaf", "9:30", "4"]);
        assert_eq!(texts("Dear Anna,"), ["Anna"]);
        assert_eq!(texts("Dear customers,"), Vec::<String>::new());
        assert_eq!(texts("Online orders cost $5.99 at Shop&Go."), ["$5.99", "Shop&Go"]);
        assert_eq!(facts("Try 'green tea' now.", &["green tea".into()])[0].text, "green tea");
        assert_eq!(missing_numbers("on 5th Avenue, March 3", "en la 5.ª Avenida, el 3 de marzo"), Vec::<&str>::new());
        assert_eq!(missing_numbers("1,000 items on March 3", "1.000 artículos en marzo"), ["3"]);
    }
}
