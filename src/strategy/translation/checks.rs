//! The checks a buyer can hold a translation to, line by line against its source: the same
//! lines, blank lines and markup, as many sentences per line, each reading as the target
//! language, and every number and name of the source kept.

use super::facts::{digit_runs, facts, missing_numbers, only_facts};
use super::languages::{Languages, reads_as};
use super::source::{has_words, split_markup};
use crate::protocol::Check;
use crate::strategy::compose::{check, sentences};

/// The checks a translation is held to, line by line against its source: formatting (the same
/// lines, blank lines and markup), sentences (as many per line), language (every sentence reads
/// as the target), numbers and names (all of the source's kept).
pub fn translation_checks(
    source: &str,
    translation: &str,
    languages: &Languages,
    known_names: &[String],
) -> Vec<Check> {
    let source_lines: Vec<&str> = source.lines().collect();
    let translated_lines: Vec<&str> = translation.lines().collect();
    let mut formatting = Vec::new();
    let mut sentence_counts = Vec::new();
    let mut foreign = Vec::new();
    let mut numbers = Vec::new();
    let mut names = Vec::new();
    let mut translated_sentences = 0;
    let mut source_names = 0;
    if source_lines.len() != translated_lines.len() {
        formatting.push(format!("{} lines for the source's {}", translated_lines.len(), source_lines.len()));
    }
    for (index, source_line) in source_lines.iter().enumerate() {
        let number = index + 1;
        let translated_line = translated_lines.get(index).copied().unwrap_or_default();
        let ((source_markup, source_content), (markup, content)) =
            (split_markup(source_line), split_markup(translated_line));
        if source_content.is_empty() != content.is_empty() || (!source_content.is_empty() && source_markup != markup) {
            formatting.push(format!("line {number} does not match the source's layout"));
        }
        if !has_words(source_content) {
            continue;
        }
        let (expected, written) = (sentences(source_content), sentences(content));
        if expected.len() != written.len() {
            sentence_counts.push(format!(
                "line {number} has {} sentence(s) for the source's {}",
                written.len(),
                expected.len()
            ));
        }
        translated_sentences += written.len();
        for (k, sentence) in written.iter().enumerate() {
            let only_facts = expected.get(k).is_some_and(|source| only_facts(source, &facts(source, known_names)));
            if !only_facts && !reads_as(sentence, languages.target, languages.source) {
                foreign.push(format!("\"{}\"", excerpt(sentence)));
            }
        }
        let missing = missing_numbers(source_content, content);
        if !missing.is_empty() {
            numbers.push(format!("line {number} drops {}", missing.join(", ")));
        }
        for sentence in &expected {
            for fact in facts(sentence, known_names).into_iter().filter(|f| !f.is_number) {
                source_names += 1;
                if !content.contains(fact.text.as_str()) {
                    names.push(format!("line {number} drops {}", fact.text));
                }
            }
        }
    }
    let target = &languages.target_name;
    let verdict = |name: &str, failures: Vec<String>, passed: String| match failures.is_empty() {
        true => check(name, true, passed),
        false => check(name, false, failures.join("; ")),
    };
    let language_note = match languages.target {
        Some(_) => format!("all {translated_sentences} sentences read as {target}"),
        None => format!("no sentence reads as {} (there is no profile for {target})", languages.source_name),
    };
    vec![
        verdict(
            "translation:formatting",
            formatting,
            format!("the source's {} lines, blank lines and markup kept", source_lines.len()),
        ),
        verdict(
            "translation:sentences",
            sentence_counts,
            format!("{translated_sentences} translated sentences, as many per line as the source"),
        ),
        match foreign.is_empty() {
            true => check("translation:language", true, language_note),
            false => check("translation:language", false, format!("not {target}: {}", foreign.join(", "))),
        },
        verdict("translation:numbers", numbers, format!("all {} numbers kept", digit_runs(source).len())),
        verdict("translation:names", names, format!("all {source_names} names kept as written")),
    ]
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::translation::tests::{NOTICE, TRANSLATED, spanish};

    fn verdict(checks: &[Check], name: &str) -> (bool, String) {
        let found = checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:?}"));
        (found.passed, found.detail.clone())
    }

    #[test]
    fn a_faithful_translation_passes_every_check() {
        let checks = translation_checks(NOTICE, TRANSLATED, &spanish(), &[]);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        assert_eq!(checks.len(), 5);
    }

    #[test]
    fn each_check_fails_on_what_it_is_for() {
        let failed = |translation: &str, name: &str| {
            let (passed, detail) = verdict(&translation_checks(NOTICE, translation, &spanish(), &[]), name);
            assert!(!passed, "{name} passed on {translation}");
            detail
        };
        let merged = TRANSLATED.replace("remodelación. Los", "remodelación y los");
        assert!(failed(&merged, "translation:sentences").contains("line 2 has 2 sentence(s) for the source's 3"));
        let english = TRANSLATED.replace("Los pedidos en línea se enviarán", "Online orders will still ship");
        assert!(failed(&english, "translation:language").contains("Online orders"));
        let no_date = TRANSLATED.replace("lunes 3 de marzo", "lunes de marzo");
        assert_eq!(failed(&no_date, "translation:numbers"), "line 2 drops 3");
        let no_name = TRANSLATED.replace("Green Leaf", "Hoja Verde");
        assert_eq!(failed(&no_name, "translation:names"), "line 3 drops Green Leaf");
        let joined = TRANSLATED.replacen('\n', " ", 1);
        assert!(failed(&joined, "translation:formatting").contains("lines"));
    }
}
