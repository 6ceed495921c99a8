//! The brief's names in the model's text: written as the brief writes them (case and near
//! misses mended), a misspelt brand caught, and a name the source never gave spotted.

/// `text` with every name written as the brief writes it: in its case, and where the model
/// came close but not right (`Daily Grind Co.` for `Daily Grind Club`, `LinguaLaceep`).
pub fn fix_names(text: &str, names: &[String]) -> String {
    let mut out = text.to_string();
    for name in names {
        out = fix_near_misses(&out, name);
    }
    for name in names {
        let lower_name = name.to_lowercase();
        let mut search_from = 0;
        while let Some(found) = out.to_lowercase()[search_from..].find(&lower_name) {
            let start = search_from + found;
            let end = start + name.len();
            if out.is_char_boundary(start) && out.is_char_boundary(end) {
                out.replace_range(start..end, name);
            }
            search_from = end;
        }
    }
    out
}

/// Runs of as many words as `name` has, spelt nearly like it, replaced by it (a trailing
/// possessive or punctuation kept).
fn fix_near_misses(text: &str, name: &str) -> String {
    const SIMILAR: f64 = 0.75;
    let k = name.split_whitespace().count();
    let lower_name = name.to_lowercase();
    let mut tokens: Vec<String> = text.split(' ').map(str::to_string).collect();
    let mut i = 0;
    while k > 0 && i + k <= tokens.len() {
        let window = tokens[i..i + k].join(" ");
        if window.contains('\n') {
            i += 1;
            continue;
        }
        let core_end = window
            .find(['’', '\''])
            .unwrap_or(window.len())
            .min(window.trim_end_matches(|c: char| !c.is_alphanumeric()).len());
        let (core, rest) = window.split_at(core_end);
        let lower_core = core.to_lowercase();
        // Near, and the same at the start of every word (`Co` may stand for `Club`; `for` may not).
        let same_initials = lower_core
            .split_whitespace()
            .zip(lower_name.split_whitespace())
            .all(|(a, b)| a.chars().next() == b.chars().next());
        let similar = strsim::normalized_levenshtein(&lower_core, &lower_name);
        if core != name && same_initials && similar >= SIMILAR && core.len() >= 4 {
            // `Co.’s` loses the abbreviation's dot; a sentence's full stop stays.
            let rest = if rest.len() > 1 { rest.trim_start_matches('.') } else { rest };
            tokens.splice(i..i + k, [format!("{name}{rest}")]);
        }
        i += 1;
    }
    tokens.join(" ")
}

/// A word close to a one-word name but not it (`LinguaLaceep`, `LinguaLingo` for
/// `LinguaLeap`): the model misspelt the buyer's brand.
pub(super) fn misspells_a_name(text: &str, names: &[String]) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 4).any(|word| {
        names.iter().filter(|n| !n.contains(' ')).any(|name| {
            let (word, name) = (word.to_lowercase(), name.to_lowercase());
            let stem: String = name.chars().take(5.min(name.chars().count().saturating_sub(2))).collect();
            word != name && (word.starts_with(&stem) || strsim::normalized_levenshtein(&word, &name) >= 0.7)
        })
    })
}

/// Capitalised words that are no one's invention.
const COMMON_CAPITALISED: &[&str] = &[
    "I",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A sentence-case text naming something the source never named (`Laravel`, `Goldman Sachs`):
/// in Title Case every word has a capital, so only sentence case can be read this way.
/// Acronyms pass (`CEO`, `FAQ`).
pub(super) fn invents_a_name(text: &str, subject: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    let capitalised = words.iter().filter(|w| w.starts_with(char::is_uppercase)).count();
    // A headline in Title Case, not a sentence.
    let headline = !text.trim_end().ends_with(['.', '!', '?']) && words.len() <= 12;
    if headline && capitalised * 10 >= words.len() * 6 {
        return false;
    }
    words.iter().skip(1).any(|w| {
        let word = w.trim_matches(|c: char| !c.is_alphanumeric()).split(['’', '\'']).next().unwrap_or_default();
        let acronym = word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        word.starts_with(char::is_uppercase)
            && !acronym
            && !subject.contains(word)
            && !COMMON_CAPITALISED.contains(&word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_model_nearly_got_right_are_written_as_given() {
        let names = vec!["Daily Grind Club".to_string(), "LinguaLeap".to_string()];
        assert_eq!(
            fix_names("Join the Daily Grind Co.’s club. Try LinguaLaceep or lingualeap.", &names),
            "Join the Daily Grind Club’s club. Try LinguaLeap or LinguaLeap."
        );
        assert_eq!(fix_names("A daily grind for all.", &names), "A daily grind for all.");
    }
}
