//! Translation: the whole source text of a brief, into the requested language, with its
//! formatting kept. Owns finding the source in the brief, translating it one sentence at a
//! time, telling which language a sentence reads as, and the checks a buyer can hold a
//! translation to: a translated sentence for every source sentence, each reading as the target
//! language, every number and name of the source kept, and the source's lines and markup.
//!
//! A small model cannot translate a paragraph, and often not a sentence either, so each sentence
//! is asked for on its own, with a few example pairs and the answer already started
//! (`Spanish:`), several times while time allows; the candidates are judged by what can be
//! measured (the language, the numbers and names, the length) and the best one kept. Numbers
//! and names are never the model's to translate: when no candidate keeps them, the sentence is
//! written again piece by piece around them, each kept verbatim where the source has it (what
//! translation tools do with protected terms).

mod candidates;
mod checks;
mod facts;
mod languages;
mod source;
mod translator;

use super::GenerationPlan;
use super::compose::{Draft, Writer, sentences};
use crate::engine::EngineError;
use crate::protocol::Brief;
use source::{has_words, split_markup};
use translator::Translator;

pub use checks::translation_checks;
pub use languages::{Language, Languages, reads_as};
pub use source::source_text;

/// The write-up of a translation: the source's lines in order, each translated sentence by
/// sentence behind the line's own markup, blank lines where the source has them.
pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let source = source_text(&brief.description);
    let languages = Languages::of(brief, plan);
    // Lines without words (rules, bare numbers) are kept as they are.
    let lines: Vec<(&str, Vec<String>)> = source
        .lines()
        .map(|line| match split_markup(line) {
            (markup, content) if has_words(content) => (markup, sentences(content)),
            _ => (line, Vec::new()),
        })
        .collect();
    let mut translator = Translator::new(writer, languages.clone(), plan.requirements.names.clone(), brief.phase);
    let all: Vec<&str> = lines.iter().flat_map(|(_, sentences)| sentences.iter().map(String::as_str)).collect();
    let mut translations = translator.sentences(&all).await?.into_iter();
    let mut complete = true;
    let mut translated_lines = Vec::new();
    for (markup, line_sentences) in &lines {
        let mut translated = Vec::new();
        for sentence in line_sentences {
            match translations.next().flatten() {
                Some(text) => translated.push(text),
                // Out of time: the sentence stays as it was, and the checks say so.
                None => {
                    complete = false;
                    translated.push(sentence.clone());
                }
            }
        }
        translated_lines.push(format!("{markup}{}", translated.join(" ")).trim_end().to_string());
    }
    let text = translated_lines.join("\n");
    let checks = translation_checks(&source, &text, &languages, &plan.requirements.names);
    let target = &languages.target_name;
    let note = match checks.iter().all(|c| c.passed) {
        true => format!("This is the translation into {target}, keeping the original's lines, names and numbers."),
        false => format!("This is the translation into {target}, keeping the original's lines."),
    };
    Ok(Draft { text, checks, complete, note: Some(note), ..Draft::default() })
}

#[cfg(test)]
mod tests {
    //! The fixtures the tests of the folder share, and the whole translation end to end.

    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::FinishReason;

    pub(super) const NOTICE: &str = "Dear customers,\nOur store on 5th Avenue will be closed on Monday, March 3 for renovation. \
        Online orders will still ship as usual. We apologise for the inconvenience and look forward to welcoming \
        you back on Tuesday.\nThe Green Leaf team";

    pub(super) const TRANSLATED: &str = "Estimados clientes,\nNuestra tienda de la 5.ª Avenida estará cerrada el lunes 3 de \
        marzo por remodelación. Los pedidos en línea se enviarán como de costumbre. Lamentamos las molestias y \
        esperamos darles la bienvenida de nuevo el martes.\nEl equipo de Green Leaf";

    pub(super) fn spanish() -> Languages {
        Languages {
            source: Some(Language::English),
            source_name: "English".into(),
            target: Some(Language::Spanish),
            target_name: "Spanish".into(),
            target_description: "neutral Latin American Spanish".into(),
        }
    }

    pub(super) fn fixture() -> Brief {
        let path = format!("{}/tests/fixtures/briefs/translation-en-es-notice.json", env!("CARGO_MANIFEST_DIR"));
        crate::protocol::parse_brief(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Answers like a model that translates the first sentence, keeps no numbers, and writes
    /// Spanish-looking text around whatever it was started with.
    struct Scripted;

    impl crate::engine::TextGenerator for Scripted {
        fn model_name(&self) -> &str {
            "scripted"
        }

        fn capability(&self) -> crate::engine::Capability {
            crate::engine::Capability::Basic
        }

        fn generate(&self, request: crate::engine::GenerationRequest) -> crate::engine::GenerationFuture {
            let user = request.messages.last().map(|m| m.content.clone()).unwrap_or_default();
            let sentence = user.lines().last().unwrap_or_default().trim_start_matches("English: ").to_string();
            let continuing = request.response_prefix != "Spanish:";
            let text = match sentence.as_str() {
                "Dear customers," => " Estimados clientes,\nEnglish: more",
                "The Green Leaf team" if continuing => " el equipo",
                "The Green Leaf team" => " El equipo de la Hoja Verde",
                _ if continuing => " en la ciudad",
                _ => " La tienda de la ciudad estará cerrada por unos días.",
            };
            Box::pin(async move {
                Ok(crate::engine::Generation {
                    text: text.to_string(),
                    input_tokens: 10,
                    output_tokens: 5,
                    finish: FinishReason::Eos,
                    queued: Duration::ZERO,
                    prefill: Duration::ZERO,
                    decode: Duration::ZERO,
                    reused_tokens: 0,
                })
            })
        }
    }

    #[tokio::test]
    async fn every_line_is_translated_and_numbers_and_names_are_kept() {
        let brief = fixture();
        let plan = crate::strategy::plan(&brief, &crate::config::StrategyConfig::default());
        let mut writer = Writer::new(&Scripted, Instant::now() + Duration::from_secs(30), 1);
        let draft = write(&brief, &plan, &mut writer).await.unwrap();
        let lines: Vec<&str> = draft.text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", draft.text);
        assert_eq!(lines[0], "Estimados clientes,");
        assert_eq!(sentences(lines[1]).len(), 3, "{}", draft.text);
        assert!(lines[1].contains('5') && lines[1].contains('3'), "{}", draft.text);
        assert!(lines[2].contains("Green Leaf"), "{}", draft.text);
        assert!(draft.complete);
        assert!(draft.checks.iter().all(|c| c.passed), "{:#?}\n{}", draft.checks, draft.text);
    }
}
