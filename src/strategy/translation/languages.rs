//! The languages of a translation: the profiled languages (their stopwords, letters and word
//! endings, and the example pairs for the prompt), the source and target a brief asks for (from
//! its requirements and its instruction line), and telling which language a text reads as.

use super::source::instruction_line;
use crate::protocol::Brief;
use crate::strategy::GenerationPlan;

/// Languages with a profile: stopwords and marks to tell them apart, and example pairs for the
/// prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Spanish,
    French,
    German,
    Portuguese,
    Italian,
}

pub(super) struct Profile {
    language: Language,
    name: &'static str,
    /// How a brief may name the language (in English or in the language itself).
    aliases: &'static [&'static str],
    /// Frequent short words, mostly this language's own: articles, prepositions, pronouns.
    pub(super) stopwords: &'static [&'static str],
    /// Letters that mark a word as likely this language's.
    letters: &'static str,
    /// Word endings typical of the language (weak evidence: for sentences too short for
    /// stopwords, like a greeting).
    endings: &'static [&'static str],
    /// Translations of [`EXAMPLE_SOURCES`], for few-shot prompts from English.
    examples: [&'static str; 3],
}

/// English sentences shown translated in the prompt: a greeting, a plain sentence, and one with
/// a number the translation keeps. No names, so none leak into answers.
const EXAMPLE_SOURCES: [&str; 3] =
    ["Dear friends,", "The office opens at 9 on Friday.", "Please call us if you have any questions."];

const PROFILES: &[Profile] = &[
    Profile {
        language: Language::English,
        name: "English",
        aliases: &["english"],
        // Words other languages share ("a", "no", "me", "am") are left out.
        stopwords: &[
            "the", "and", "of", "to", "in", "is", "are", "was", "were", "be", "been", "will", "would", "for", "on",
            "with", "at", "by", "this", "that", "it", "we", "you", "our", "your", "they", "their", "from", "have",
            "has", "not", "or", "but", "an", "can", "which", "who", "what", "there", "here", "as", "if", "so", "us",
            "my", "he", "she", "his", "her", "its", "do", "does", "did", "into", "about", "than", "then", "when",
            "still", "back", "look", "forward",
        ],
        letters: "",
        endings: &["ing", "ness", "ship", "ough", "ly"],
        examples: EXAMPLE_SOURCES,
    },
    Profile {
        language: Language::Spanish,
        name: "Spanish",
        aliases: &["spanish", "español", "espanol", "castellano", "castilian"],
        stopwords: &[
            "el",
            "la",
            "los",
            "las",
            "de",
            "del",
            "que",
            "y",
            "en",
            "un",
            "una",
            "unos",
            "unas",
            "por",
            "con",
            "para",
            "es",
            "son",
            "está",
            "están",
            "estamos",
            "se",
            "su",
            "sus",
            "al",
            "lo",
            "le",
            "les",
            "más",
            "pero",
            "como",
            "muy",
            "sin",
            "sobre",
            "también",
            "este",
            "esta",
            "estos",
            "estas",
            "ese",
            "esa",
            "hay",
            "ha",
            "han",
            "hemos",
            "fue",
            "será",
            "serán",
            "nuestro",
            "nuestra",
            "nuestros",
            "nuestras",
            "usted",
            "ustedes",
            "nos",
            "ya",
            "a",
            "o",
            "no",
            "mi",
            "tu",
            "desde",
            "hasta",
            "entre",
            "cuando",
            "donde",
            "porque",
            "todo",
            "todos",
            "seguirán",
        ],
        letters: "ñ¿¡áéíóú",
        endings: &["os", "as", "ción", "ciones", "dad", "dades", "mente", "ado", "ada", "ido", "ida", "amos", "emos"],
        examples: ["Queridos amigos,", "La oficina abre a las 9 el viernes.", "Llámenos si tiene alguna pregunta."],
    },
    Profile {
        language: Language::French,
        name: "French",
        aliases: &["french", "français", "francais"],
        stopwords: &[
            "le", "la", "les", "de", "des", "du", "et", "en", "un", "une", "est", "sont", "pour", "dans", "par", "sur",
            "avec", "ne", "pas", "que", "qui", "nous", "vous", "notre", "nos", "votre", "vos", "au", "aux", "ce",
            "cette", "ces", "il", "elle", "sera", "seront", "mais", "ou", "plus", "leur", "très", "aussi", "à",
        ],
        letters: "çéèêàùûôîœë",
        endings: &["eux", "eau", "aux", "ée", "ées", "ais", "ait", "ons", "ez"],
        examples: [
            "Chers amis,",
            "Le bureau ouvre à 9 heures le vendredi.",
            "Appelez-nous si vous avez des questions.",
        ],
    },
    Profile {
        language: Language::German,
        name: "German",
        aliases: &["german", "deutsch"],
        stopwords: &[
            "der", "die", "das", "den", "dem", "des", "und", "ist", "sind", "ein", "eine", "einen", "einem", "nicht",
            "mit", "für", "auf", "im", "zu", "von", "wir", "sie", "ihr", "ihre", "unser", "unsere", "wird", "werden",
            "auch", "bei", "aus", "nach", "es", "ich", "wie", "oder", "aber", "am", "vom", "zum", "zur", "uns",
        ],
        letters: "äöüß",
        endings: &["ung", "keit", "heit", "lich", "chen", "sch"],
        examples: [
            "Liebe Freunde,",
            "Das Büro öffnet am Freitag um 9 Uhr.",
            "Rufen Sie uns an, wenn Sie Fragen haben.",
        ],
    },
    Profile {
        language: Language::Portuguese,
        name: "Portuguese",
        aliases: &["portuguese", "português", "portugues"],
        stopwords: &[
            "o", "a", "os", "as", "de", "do", "da", "dos", "das", "que", "e", "em", "no", "na", "nos", "nas", "um",
            "uma", "por", "para", "com", "não", "é", "são", "está", "seu", "sua", "ao", "à", "mais", "mas", "como",
            "muito", "também", "nosso", "nossa", "será", "pelo", "pela", "você", "vocês",
        ],
        letters: "ãõçâêôáéíóú",
        endings: &["ão", "ões", "ção", "ções", "agem", "inho", "inha"],
        examples: [
            "Queridos amigos,",
            "O escritório abre às 9 na sexta-feira.",
            "Ligue para nós se tiver alguma dúvida.",
        ],
    },
    Profile {
        language: Language::Italian,
        name: "Italian",
        aliases: &["italian", "italiano"],
        stopwords: &[
            "il", "lo", "la", "gli", "le", "di", "del", "della", "dei", "delle", "che", "e", "è", "in", "un", "una",
            "uno", "per", "con", "non", "sono", "sarà", "al", "alla", "ai", "nel", "nella", "da", "dal", "dalla", "ma",
            "come", "più", "anche", "nostro", "nostra", "vostro", "questo", "questa", "si", "ci", "vi", "a",
        ],
        letters: "àèìòù",
        endings: &["zione", "zioni", "etto", "etta", "ato", "ata", "ati", "ggi", "cci"],
        examples: ["Cari amici,", "L'ufficio apre alle 9 di venerdì.", "Chiamateci se avete domande."],
    },
];

impl Language {
    /// The language a brief names (`"Spanish"`, `"neutral Latin American Spanish"`, `"es"`).
    pub fn named(text: &str) -> Option<Self> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).collect();
        const CODES: &[(&str, Language)] = &[
            ("en", Language::English),
            ("es", Language::Spanish),
            ("fr", Language::French),
            ("de", Language::German),
            ("pt", Language::Portuguese),
            ("it", Language::Italian),
        ];
        if let [code] = words.as_slice()
            && let Some((_, language)) = CODES.iter().find(|(c, _)| c == code)
        {
            return Some(*language);
        }
        PROFILES.iter().find(|p| p.aliases.iter().any(|alias| words.contains(alias))).map(|p| p.language)
    }

    pub fn name(self) -> &'static str {
        self.profile().name
    }

    pub(super) fn profile(self) -> &'static Profile {
        PROFILES.iter().find(|p| p.language == self).expect("every language has a profile")
    }
}

/// Words of `text`, lower case, letters only (apostrophes split: `l'ufficio` is `l`, `ufficio`).
pub(super) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// How much `words` look like `profile`'s language.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Evidence {
    stopwords: usize,
    pub(super) score: f64,
}

pub(super) fn evidence(words: &[String], profile: &Profile) -> Evidence {
    let mut found = Evidence::default();
    for word in words {
        if profile.stopwords.contains(&word.as_str()) {
            found.stopwords += 1;
            found.score += 1.0;
        } else if word.chars().any(|c| profile.letters.contains(c)) {
            found.score += 0.5;
        } else if word.chars().count() > 3 && profile.endings.iter().any(|e| word.ends_with(e)) {
            found.score += 0.25;
        }
    }
    found
}

/// Whether `text` reads as `target` rather than any other profiled language. With no profile
/// for the target, it is enough that it does not read as `source`. Short texts (a greeting, a
/// signature) may pass on letters and word endings alone; from four words on, the target's own
/// stopwords must be there.
pub fn reads_as(text: &str, target: Option<Language>, source: Option<Language>) -> bool {
    let words = words(text);
    if words.is_empty() {
        return false;
    }
    let scores: Vec<(Language, Evidence)> = PROFILES.iter().map(|p| (p.language, evidence(&words, p))).collect();
    let of = |language: Language| scores.iter().find(|(l, _)| *l == language).map(|(_, e)| *e).unwrap_or_default();
    let Some(target) = target else {
        return source.is_none_or(|source| of(source).score < 1.0 || of(source).stopwords * 5 < words.len());
    };
    let own = of(target);
    if own.score <= 0.0 || (words.len() >= 4 && own.stopwords == 0) {
        return false;
    }
    scores.iter().filter(|(l, _)| *l != target).all(|(l, other)| match Some(*l) == source || *l == Language::English {
        // The language translated from (or English, which every model falls back to) must
        // lose outright; a close Romance neighbour may tie.
        true => other.score < own.score,
        false => other.score <= own.score,
    })
}

/// The source and target of one translation.
#[derive(Debug, Clone)]
pub struct Languages {
    pub source: Option<Language>,
    pub source_name: String,
    pub target: Option<Language>,
    pub target_name: String,
    /// The target as the brief puts it (`neutral Latin American Spanish`), for the prompt.
    pub target_description: String,
}

impl Languages {
    pub fn of(brief: &Brief, plan: &GenerationPlan) -> Self {
        let instruction = instruction_line(&brief.description).unwrap_or_default();
        let asked_into = instruction_target(&instruction);
        // A phrase after "into" names the language only if it is short (`into Swahili`).
        let named_target = plan
            .requirements
            .language
            .clone()
            .or_else(|| asked_into.clone().filter(|into| into.split_whitespace().count() <= 3));
        let target = named_target.as_deref().and_then(Language::named);
        let target_name = match (target, named_target) {
            (Some(language), _) => language.name().to_string(),
            (None, Some(named)) => named,
            (None, None) => "the requested language".to_string(),
        };
        let target_description = asked_into
            .filter(|into| into.to_lowercase().contains(&target_name.to_lowercase()))
            .unwrap_or_else(|| target_name.clone());
        let named_source = plan.requirements.source_language.clone();
        let source = named_source.as_deref().map_or(Some(Language::English), Language::named);
        let source_name = match (source, named_source) {
            (Some(language), _) => language.name().to_string(),
            (None, Some(named)) => named,
            (None, None) => "English".to_string(),
        };
        Self { source, source_name, target, target_name, target_description }
    }

    /// Example pairs for the prompt: only from English, into a profiled language.
    pub(super) fn examples(&self) -> Vec<(&'static str, &'static str)> {
        match (self.source, self.target) {
            (Some(Language::English), Some(target)) if target != Language::English => {
                EXAMPLE_SOURCES.into_iter().zip(target.profile().examples).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The example translation whose words `answer_words` reuse when `sentence` has nothing
    /// of that example's source: a small model copies the examples instead of translating.
    pub(super) fn copied_example(&self, sentence: &str, answer_words: &[String]) -> Option<&'static str> {
        let sentence_words = content_words(sentence, self.source);
        self.examples().into_iter().find_map(|(source, translated)| {
            let related = content_words(source, self.source).iter().any(|w| sentence_words.contains(w));
            let reused = content_words(translated, self.target).iter().any(|w| answer_words.contains(w));
            (reused && !related).then_some(translated)
        })
    }
}

/// What the instruction asks to translate into: `neutral Latin American Spanish` out of
/// `Translate the following notice into neutral Latin American Spanish, keeping the formatting:`.
fn instruction_target(instruction: &str) -> Option<String> {
    let lower = instruction.to_lowercase();
    let start = [" into ", " to "].iter().find_map(|marker| lower.find(marker).map(|i| i + marker.len()))?;
    let rest = &instruction[start..];
    let end = rest.find([',', ':', ';', '.', '(', '\n']).unwrap_or(rest.len());
    let mut target = rest[..end].trim();
    for tail in [" keeping", " while", " and ", " for ", " with "] {
        if let Some(cut) = target.to_lowercase().find(tail) {
            target = target[..cut].trim();
        }
    }
    (!target.is_empty() && target.split_whitespace().count() <= 6).then(|| target.to_string())
}

/// Words that carry meaning: four letters or more, not a stopword of `language`.
fn content_words(text: &str, language: Option<Language>) -> Vec<String> {
    let stopwords = language.map_or(&[][..], |l| l.profile().stopwords);
    words(text).into_iter().filter(|w| w.chars().count() >= 4 && !stopwords.contains(&w.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::translation::tests::fixture;

    #[test]
    fn the_languages_come_from_the_requirements_and_the_instruction() {
        let brief = fixture();
        let plan = crate::strategy::plan(&brief, &crate::config::StrategyConfig::default());
        let languages = Languages::of(&brief, &plan);
        assert_eq!((languages.source, languages.target), (Some(Language::English), Some(Language::Spanish)));
        assert_eq!(languages.target_description, "neutral Latin American Spanish");
        assert_eq!(Language::named("fr"), Some(Language::French));
        assert_eq!(Language::named("Brazilian Portuguese"), Some(Language::Portuguese));
        assert_eq!(Language::named("Klingon"), None);
    }

    #[test]
    fn the_detector_tells_the_target_from_english_and_its_neighbours() {
        let es = Some(Language::Spanish);
        let en = Some(Language::English);
        for spanish in [
            "Los pedidos en línea se enviarán como de costumbre.",
            "Estimados clientes,",
            "Queridos amigos,",
            "El equipo de Green Leaf",
        ] {
            assert!(reads_as(spanish, es, en), "{spanish}");
        }
        for not_spanish in [
            "Online orders will still ship as usual.",
            "Dear customers,",
            "The Green Leaf team",
            "Nous serons fermés le lundi pour des travaux.",
            "Wir sind am Montag wegen Renovierung geschlossen.",
            "Green Leaf",
            "",
        ] {
            assert!(!reads_as(not_spanish, es, en), "{not_spanish}");
        }
        assert!(reads_as("Nous serons fermés le lundi pour des travaux.", Some(Language::French), en));
        assert!(reads_as("Wir sind am Montag wegen Renovierung geschlossen.", Some(Language::German), en));
        // Without a profile only "not the source language" can be told.
        assert!(reads_as("Tunatarajia kukuona tena Jumanne.", None, en));
        assert!(!reads_as("We look forward to seeing you on Tuesday.", None, en));
    }
}
