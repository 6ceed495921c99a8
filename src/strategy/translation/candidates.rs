//! One candidate translation of a sentence: the model's answer tidied to one sentence ending
//! like the source, text cut by the token limit ended at a whole word, and the candidate judged
//! by what can be measured (its language, the numbers and names kept, its length).

use super::facts::{Fact, missing_numbers, only_facts};
use super::languages::{Language, Languages, evidence, reads_as, words};
use crate::strategy::compose::sentences;

/// One candidate translation of a sentence, with what is wrong with it.
#[derive(Debug, Clone)]
pub(super) struct Judged {
    pub(super) text: String,
    pub(super) failures: Vec<String>,
    /// It lacks a number or a name of the source.
    pub(super) lost_facts: bool,
    pub(super) score: f64,
}

/// A candidate's failures (for a repair-free choice) and its score: failures first, then
/// how clearly it reads as the target and how close its length is to the source's.
pub(super) fn judge(languages: &Languages, sentence: &str, facts: &[Fact], text: &str) -> Judged {
    let Languages { source, target, target_name, .. } = languages;
    let mut failures = Vec::new();
    let source_words = words(sentence);
    let answer_words = words(text);
    let only_facts = only_facts(sentence, facts);
    if answer_words.is_empty() {
        failures.push("it is empty".to_string());
    } else if !only_facts && answer_words == source_words {
        failures.push("it copies the source unchanged".to_string());
    }
    if !only_facts && !reads_as(text, *target, *source) {
        failures.push(format!("it does not read as {target_name}"));
    }
    let mut lost_facts = false;
    for fact in facts {
        let kept = match fact.is_number {
            true => missing_numbers(&fact.text, text).is_empty(),
            false => text.contains(fact.text.as_str()),
        };
        if !kept {
            lost_facts = true;
            let kind = if fact.is_number { "number" } else { "name" };
            failures.push(format!("it drops the {kind} {}", fact.text));
        }
    }
    if let Some(copied) = languages.copied_example(sentence, &answer_words) {
        failures.push(format!("it copies the example \"{copied}\""));
    }
    // tidy() ends a candidate as its source ends, so a question the model made of a statement
    // shows only in what remains: an opening `¿` or a `?` inside.
    let is_question = |t: &str| t.contains(['?', '¿', '？']);
    if is_question(text) && !is_question(sentence) {
        failures.push("it asks a question the source does not".to_string());
    }
    let invented = missing_numbers(text, sentence);
    if !invented.is_empty() {
        failures.push(format!("it adds the number {} the source lacks", invented.join(", ")));
    }
    let (n, m) = (source_words.len().max(1) as f64, answer_words.len().max(1) as f64);
    if m < (n * 0.5).floor() || m > n * 2.0 + 2.0 {
        failures.push(format!("it has {m} words for {n}"));
    }
    let share = |language: Option<Language>| {
        language.map_or(0.0, |l| evidence(&answer_words, l.profile()).score / answer_words.len().max(1) as f64)
    };
    let score = -10.0 * failures.len() as f64 + share(*target) - share(*source) - (m / n).ln().abs() * 0.5;
    Judged { text: text.to_string(), failures, lost_facts, score }
}

/// `text` cut off by a token limit, ended at its last whole word (the last may be half of one)
/// and not on a function word (`stopwords`) that leads nowhere. Before a fact, a function word
/// at the end is whole and leads into it (`El equipo de` Green Leaf).
pub(super) fn end_at_whole_word(text: &str, stopwords: &[&str], before_fact: bool) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let is_stopword = |word: &&str| stopwords.contains(&word.to_lowercase().as_str());
    if before_fact && words.last().is_some_and(is_stopword) {
        return words.join(" ");
    }
    words.pop();
    match before_fact {
        true => words.join(" "),
        false => without_dangling_words(&words.join(" "), stopwords),
    }
}

/// `text` ending on no function word (`stopwords`) and no comma: for text whose sentence was
/// cut before its end.
pub(super) fn without_dangling_words(text: &str, stopwords: &[&str]) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    while words.last().is_some_and(|word| stopwords.contains(&word.to_lowercase().as_str())) {
        words.pop();
    }
    words.join(" ").trim_end_matches([',', ';', ':']).to_string()
}

/// A model's answer made one sentence on one line: the first line, without labels the model
/// echoes, glosses in parentheses, or quotes around it, ending as the source sentence ends.
pub(super) fn tidy(answer: &str, source: &str, labels: &[&str]) -> String {
    let mut text = answer.trim_start().lines().next().unwrap_or_default().trim().to_string();
    // An echoed label ("English: …", "Translation: …") starts the next pair, not this one.
    let colons: Vec<usize> = text.match_indices(':').map(|(at, _)| at).collect();
    for at in colons.into_iter().rev() {
        let label_start = text[..at].rfind(' ').map_or(0, |space| space + 1);
        let label = &text[label_start..at];
        if labels.contains(&label) || label == "Translation" || Language::named(label).is_some_and(|_| label.len() > 2)
        {
            text = match label_start {
                0 => text[at + 1..].to_string(),
                _ => text[..label_start].to_string(),
            };
        }
    }
    if let Some(open) = text.find(" (")
        && !source.contains('(')
    {
        text.truncate(open);
    }
    let mut text = text.trim().to_string();
    // An answer in quotes: what is inside them.
    if let Some(inner) = text.strip_prefix(['"', '“', '«'])
        && let Some(close) = inner.find(['"', '”', '»'])
    {
        text = inner[..close].trim().to_string();
    }
    if let Some(first) = sentences(&text).into_iter().next() {
        text = first;
    }
    // A quote the answer opens and never closes (it was cut) is no quote.
    if text.matches('"').count() % 2 == 1 {
        text = text.replace('"', "");
    }
    let body = text.trim_end_matches(['.', '!', '?', ',', ';', ':', '…']).trim_end();
    let source = source.trim_end();
    let ending = &source[source.trim_end_matches(['.', '!', '?', ',', ';', ':', '…']).len()..];
    format!("{body}{ending}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::translation::facts::facts;
    use crate::strategy::translation::tests::spanish;

    const LABELS: &[&str] = &["English", "Spanish"];

    #[test]
    fn answers_are_tidied_to_one_sentence_ending_like_the_source() {
        assert_eq!(tidy(" Queridos clientes\nEnglish: next", "Dear customers,", LABELS), "Queridos clientes,");
        assert_eq!(tidy(" \"La tienda cierra.\" Luego más.", "The shop closes.", LABELS), "La tienda cierra.");
        assert_eq!(
            tidy(" La derecho de la ciudad. (The door to the city.)", "The city.", LABELS),
            "La derecho de la ciudad."
        );
        assert_eq!(
            tidy(" El equipo de Green Leaf. English: The", "The Green Leaf team", LABELS),
            "El equipo de Green Leaf"
        );
        assert_eq!(tidy(" Spanish: Gracias por todo", "Thanks for everything!", LABELS), "Gracias por todo!");
        assert_eq!(
            tidy(" El cielo debe llamar \"El Cielo,", "Dear customers,", LABELS),
            "El cielo debe llamar El Cielo,"
        );
    }

    #[test]
    fn candidates_are_judged_by_what_can_be_measured() {
        let store = "Our store on 5th Avenue will be closed on Monday, March 3 for renovation.";
        let store_facts = facts(store, &[]);
        let judged = |text: &str| judge(&spanish(), store, &store_facts, text);
        let failed = |text: &str, failure: &str| {
            let judged = judged(text);
            assert!(judged.failures.iter().any(|f| f.contains(failure)), "{text}: {:?}", judged.failures);
            judged
        };
        let good = judged("Nuestra tienda de la 5.ª Avenida estará cerrada el lunes 3 de marzo por remodelación.");
        assert!(good.failures.is_empty(), "{:?}", good.failures);
        let dropped = failed("Nuestra tienda estará cerrada el lunes de marzo por remodelación.", "drops the number 5");
        assert!(dropped.lost_facts && !good.lost_facts);
        failed("La oficina abre a las 5 el viernes 3 de marzo para todos.", "copies the example");
        failed("La tienda 5 cerrará el 3 de marzo de 2026 por remodelación.", "adds the number 2026");
        failed("La tienda 5 3.", "has 2 words for 13");
        failed("¿Puede la tienda de la 5.ª Avenida cerrar el lunes 3 de marzo?.", "asks a question");
        let greeting = |text: &str| judge(&spanish(), "Dear customers,", &[], text).failures;
        assert!(greeting("¿Puedo decirle tu comida,").iter().any(|f| f.contains("asks a question")));
        assert!(greeting("Estimados clientes,").is_empty());
        let english = failed(store, "copies the source unchanged");
        assert!(english.failures.iter().any(|f| f.contains("does not read as Spanish")));
        assert!(good.score > dropped.score && dropped.score > english.score);
        // A signature that is only a name stays as it is.
        assert!(judge(&spanish(), "Green Leaf", &facts("Green Leaf", &[]), "Green Leaf").failures.is_empty());
    }

    #[test]
    fn text_cut_by_the_token_limit_ends_at_a_whole_word() {
        let stopwords = Language::Spanish.profile().stopwords;
        assert_eq!(end_at_whole_word("El equipo de la ciud", stopwords, false), "El equipo");
        assert_eq!(end_at_whole_word("El equipo de", stopwords, true), "El equipo de");
        assert_eq!(end_at_whole_word("El equipo ver", stopwords, true), "El equipo");
        assert_eq!(without_dangling_words("en la ciudad de la", stopwords), "en la ciudad");
    }
}
