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

use std::time::{Duration, Instant};

use super::GenerationPlan;
use super::compose::{Ask, Draft, Writer, check, sentences};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::{Brief, Check, Phase};

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

struct Profile {
    language: Language,
    name: &'static str,
    /// How a brief may name the language (in English or in the language itself).
    aliases: &'static [&'static str],
    /// Frequent short words, mostly this language's own: articles, prepositions, pronouns.
    stopwords: &'static [&'static str],
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

    fn profile(self) -> &'static Profile {
        PROFILES.iter().find(|p| p.language == self).expect("every language has a profile")
    }
}

/// Words of `text`, lower case, letters only (apostrophes split: `l'ufficio` is `l`, `ufficio`).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// How much `words` look like `profile`'s language.
#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    stopwords: usize,
    score: f64,
}

fn evidence(words: &[String], profile: &Profile) -> Evidence {
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
    fn examples(&self) -> Vec<(&'static str, &'static str)> {
        match (self.source, self.target) {
            (Some(Language::English), Some(target)) if target != Language::English => {
                EXAMPLE_SOURCES.into_iter().zip(target.profile().examples).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The example translation whose words `answer_words` reuse when `sentence` has nothing
    /// of that example's source: a small model copies the examples instead of translating.
    fn copied_example(&self, sentence: &str, answer_words: &[String]) -> Option<&'static str> {
        let sentence_words = content_words(sentence, self.source);
        self.examples().into_iter().find_map(|(source, translated)| {
            let related = content_words(source, self.source).iter().any(|w| sentence_words.contains(w));
            let reused = content_words(translated, self.target).iter().any(|w| answer_words.contains(w));
            (reused && !related).then_some(translated)
        })
    }
}

/// The line that asks for the translation: the first line ending in `:` in the opening
/// paragraph (`Translate the following notice into Spanish:`).
fn instruction_line(description: &str) -> Option<String> {
    description
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .find(|line| line.trim_end().ends_with(':'))
        .or_else(|| description.lines().find(|line| !line.trim().is_empty()))
        .map(|line| line.trim().to_string())
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

/// The text to translate: a fenced block if there is one; else what follows the instruction
/// line ending in `:`; else a quoted passage; else the whole description. Its lines, blank
/// lines and markup are kept as they are.
pub fn source_text(description: &str) -> String {
    if let Some(start) = description.find("```") {
        let after = &description[start + 3..];
        // The fence's info string (a language tag) is not part of the text.
        let body = after.split_once('\n').map_or("", |(_, body)| body);
        if let Some(end) = body.find("```") {
            let inner = trim_blank_lines(&body[..end]);
            if !inner.is_empty() {
                return inner.to_string();
            }
        }
    }
    let lines: Vec<&str> = description.lines().collect();
    let opening = lines.iter().take_while(|line| !line.trim().is_empty()).count();
    if let Some(at) = lines[..opening].iter().position(|line| line.trim_end().ends_with(':')) {
        let rest = lines[at + 1..].join("\n");
        let rest = trim_blank_lines(&rest);
        if !rest.is_empty() {
            return unquote(rest);
        }
    }
    if let Some(quoted) = quoted_passage(description) {
        return quoted;
    }
    // An opening paragraph that asks for the translation, and the text after it (or after
    // its colon: `Translate into French: We open at 9.`).
    let opening_text = lines[..opening].join("\n");
    if opening_text.to_lowercase().contains("translat") {
        let rest = lines[opening..].join("\n");
        let rest = trim_blank_lines(&rest);
        if !rest.is_empty() {
            return unquote(rest);
        }
        if let Some((_, inline)) = opening_text.split_once(": ")
            && !inline.trim().is_empty()
        {
            return unquote(inline.trim());
        }
    }
    trim_blank_lines(description).to_string()
}

/// `text` without blank lines before and whitespace after it (the first line keeps its indent).
fn trim_blank_lines(text: &str) -> &str {
    let blank: usize = text.split_inclusive('\n').take_while(|line| line.trim().is_empty()).map(str::len).sum();
    text[blank..].trim_end()
}

/// The text without quotes around the whole of it, or blockquote markers on every line.
fn unquote(text: &str) -> String {
    let trimmed = text.trim();
    for (open, close) in [('"', '"'), ('“', '”'), ('«', '»')] {
        if let Some(inner) = trimmed.strip_prefix(open).and_then(|t| t.strip_suffix(close))
            && !inner.contains(close)
        {
            return inner.trim().to_string();
        }
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty() && lines.iter().all(|l| l.trim_start().starts_with('>')) {
        return text
            .lines()
            .map(|l| l.trim_start().strip_prefix('>').map_or(l, |rest| rest.strip_prefix(' ').unwrap_or(rest)))
            .collect::<Vec<_>>()
            .join("\n");
    }
    text.to_string()
}

/// The longest passage of three words or more in double quotes.
fn quoted_passage(text: &str) -> Option<String> {
    let mut best: Option<&str> = None;
    for (open, close) in [('"', '"'), ('“', '”'), ('«', '»')] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len_utf8()..];
            let Some(end) = after.find(close) else { break };
            let inner = after[..end].trim();
            if inner.split_whitespace().count() >= 3 && best.is_none_or(|b| inner.len() > b.len()) {
                best = Some(inner);
            }
            rest = &after[end + close.len_utf8()..];
        }
    }
    best.map(str::to_string)
}

/// A line's leading markup (indentation, `#`, `-`, `*`, `>`, `1.`) and its text.
fn split_markup(line: &str) -> (&str, &str) {
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        let marker_len = if trimmed.starts_with('#') {
            trimmed.chars().take_while(|c| *c == '#').count()
        } else if let Some(after) = trimmed.strip_prefix(['-', '*', '+', '>', '•'])
            && after.starts_with(' ')
        {
            trimmed.len() - after.len()
        } else {
            let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
            match trimmed[digits..].chars().next() {
                Some('.' | ')') if digits > 0 && trimmed[digits + 1..].starts_with(' ') => digits + 1,
                _ => 0,
            }
        };
        if marker_len == 0 || !trimmed[marker_len..].starts_with(' ') {
            let content = rest.trim_start();
            return (&line[..line.len() - content.len()], content);
        }
        rest = &trimmed[marker_len..];
    }
}

/// Something a translation must keep as written: a number or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fact {
    /// Where it is in the source sentence (bytes), suffixes like `th` included.
    start: usize,
    end: usize,
    /// What the translation must contain (`5` for `5th`).
    text: String,
    is_number: bool,
}

/// Weekdays and months are capitalised in English but translated like any word.
const CALENDAR_WORDS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Openings that are capitalised only for starting a sentence or a letter.
const OPENERS: &[&str] =
    &["dear", "hello", "hi", "hey", "thanks", "thank", "please", "welcome", "good", "best", "kind"];

/// The numbers and names in `sentence`, in order. A name is a run of capitalised words that is
/// not just the sentence's first word, a weekday or month, or the word after a number (`5th
/// Avenue` is an address a translator translates); names the brief quotes count wherever found.
fn facts(sentence: &str, known_names: &[String]) -> Vec<Fact> {
    let mut found = numbers_in(sentence);
    let tokens = word_spans(sentence);
    let capitalised = |i: usize| {
        let (_, _, word) = tokens[i];
        let lower = word.to_lowercase();
        word.chars().next().is_some_and(char::is_uppercase)
            && !CALENDAR_WORDS.contains(&lower.as_str())
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
fn digit_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|run| !run.is_empty()).collect()
}

/// The digit runs of `source` that `translation` lacks (as many times as the source has them).
fn missing_numbers<'a>(source: &'a str, translation: &str) -> Vec<&'a str> {
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

/// How many candidates a sentence may get: written whole, then piece by piece around its
/// numbers and names. A prototype is the whole translation too, with fewer tries.
struct Attempts {
    whole: usize,
    anchored: usize,
}

impl Attempts {
    fn for_phase(phase: Phase) -> Self {
        match phase {
            Phase::Prototype => Self { whole: 2, anchored: 1 },
            Phase::Final => Self { whole: 3, anchored: 2 },
        }
    }
}

/// One candidate translation of a sentence, with what is wrong with it.
#[derive(Debug, Clone)]
struct Judged {
    text: String,
    failures: Vec<String>,
    /// It lacks a number or a name of the source.
    lost_facts: bool,
    score: f64,
}

/// Translates sentence by sentence through one [`Writer`].
struct Translator<'w, 'a> {
    writer: &'w mut Writer<'a>,
    languages: Languages,
    known_names: Vec<String>,
    attempts: Attempts,
    /// Time the calls took so far, to tell whether another candidate fits.
    spent: Duration,
    calls: u32,
}

impl Translator<'_, '_> {
    /// The best translation of `sentence` that time allowed, if any call could be made.
    /// `sentences_after` is how many still wait after this one.
    async fn sentence(&mut self, sentence: &str, sentences_after: usize) -> Result<Option<String>, EngineError> {
        let facts = facts(sentence, &self.known_names);
        let mut best: Option<Judged> = None;
        let keep = |best: &mut Option<Judged>, judged: Judged| {
            if best.as_ref().is_none_or(|b| judged.score > b.score) {
                *best = Some(judged);
            }
        };
        for attempt in 0..self.attempts.whole {
            if attempt > 0 && !self.can_afford_another(sentences_after) {
                break;
            }
            let ask = self.ask(sentence, &facts, sentences_after);
            let Some((mut text, finish)) = self.call(&ask).await? else { break };
            if finish != FinishReason::Eos && !text.trim().contains('\n') && !ends_a_sentence(&text) {
                let stopwords = self.languages.target.map_or(&[][..], |t| t.profile().stopwords);
                text = end_at_whole_word(&text, stopwords, false);
            }
            let judged = judge(&self.languages, sentence, &facts, &tidy(&text, sentence, &self.labels()));
            let passed = judged.failures.is_empty();
            keep(&mut best, judged);
            if passed {
                return Ok(best.map(|b| b.text));
            }
        }
        if best.as_ref().is_none_or(|b| b.lost_facts) && !facts.is_empty() {
            for _ in 0..self.attempts.anchored {
                if !self.can_afford_another(sentences_after) {
                    break;
                }
                let Some(text) = self.anchored(sentence, &facts, sentences_after).await? else { break };
                let judged = judge(&self.languages, sentence, &facts, &tidy(&text, sentence, &self.labels()));
                let passed = judged.failures.is_empty();
                keep(&mut best, judged);
                if passed {
                    break;
                }
            }
        }
        if let Some(best) = &best
            && !best.failures.is_empty()
        {
            tracing::debug!(sentence, failures = ?best.failures, "no candidate translation passed every test");
        }
        Ok(best.map(|b| b.text))
    }

    /// The labels of the prompt's pairs, which a model may echo.
    fn labels(&self) -> [&str; 2] {
        [self.languages.source_name.as_str(), self.languages.target_name.as_str()]
    }

    /// Whether one more call leaves time for one call per sentence still waiting.
    fn can_afford_another(&self, sentences_after: usize) -> bool {
        let per_call = if self.calls == 0 { Duration::ZERO } else { self.spent / self.calls };
        self.writer.has_time() && self.writer.time_left() > per_call.mul_f64(1.5 * (sentences_after + 1) as f64)
    }

    /// Ask, timing the call. The reply's text without the prefix, and how generation ended.
    async fn call(&mut self, ask: &Ask) -> Result<Option<(String, FinishReason)>, EngineError> {
        let started = Instant::now();
        let reply = self.writer.ask(ask).await?;
        self.spent += started.elapsed();
        self.calls += 1;
        Ok(reply.map(|r| (r.text.strip_prefix(&ask.prefix).unwrap_or(&r.text).to_string(), r.finish)))
    }

    /// The prompt for one sentence: example pairs when translating from English into a
    /// profiled language, then the sentence, and the answer started with the target's name.
    fn ask(&self, sentence: &str, facts: &[Fact], sentences_after: usize) -> Ask {
        let Languages { source_name, target_name, target_description, .. } = &self.languages;
        let mut system = format!(
            "You translate {source_name} into {target_description}. Keep names and numbers exactly as written. \
             Answer with the translation only, on one line."
        );
        if !facts.is_empty() {
            let kept: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
            system.push_str(&format!(" Keep these exactly as written: {}.", kept.join(", ")));
        }
        let mut user = String::new();
        for (source, translated) in self.languages.examples() {
            user.push_str(&format!("{source_name}: {source}\n{target_name}: {translated}\n\n"));
        }
        user.push_str(&format!("{source_name}: {sentence}"));
        // Other languages take more tokens per character than English; leave room for it.
        let max_tokens = (sentence.chars().count() / 2 + 8).min(256);
        let mut ask = Ask::new(system, user, max_tokens).prefix(format!("{target_name}:"));
        ask.min_tokens = 1;
        ask.share((1.0 / (sentences_after + 1) as f64).max(0.05))
    }

    /// The sentence written piece by piece: the model translates up to each number or name
    /// (seeing the whole sentence in the prompt), the fact is put where the source has it, and
    /// the model goes on from there. `None` when no call could be made.
    async fn anchored(
        &mut self,
        sentence: &str,
        facts: &[Fact],
        sentences_after: usize,
    ) -> Result<Option<String>, EngineError> {
        let ask = self.ask(sentence, facts, sentences_after);
        let mut written = String::new();
        let mut cursor = 0;
        for fact in facts {
            if fact.start < cursor {
                continue;
            }
            let piece = &sentence[cursor..fact.start];
            if piece.chars().any(char::is_alphanumeric) {
                let Some(continued) = self.continue_with(&ask, &written, (sentence, piece), Some(&fact.text)).await?
                else {
                    return Ok(None);
                };
                push_words(&mut written, &continued);
            }
            push_words(&mut written, &fact.text);
            cursor = fact.end;
        }
        let rest = &sentence[cursor..];
        if rest.chars().any(char::is_alphanumeric) {
            match self.continue_with(&ask, &written, (sentence, rest), None).await? {
                Some(continued) => push_words(&mut written, &continued),
                None => return Ok(None),
            }
        }
        Ok(Some(written))
    }

    /// What the model writes after `written` for the source `piece` of `sentence`, on the same
    /// line. Before a fact, it is cut where the model itself puts the fact, with no sentence
    /// ending; anywhere, it is cut where the model starts a number the source does not have.
    async fn continue_with(
        &mut self,
        ask: &Ask,
        written: &str,
        (sentence, piece): (&str, &str),
        next_fact: Option<&str>,
    ) -> Result<Option<String>, EngineError> {
        let mut piece_ask = ask.clone();
        piece_ask.prefix = match written.is_empty() {
            true => ask.prefix.clone(),
            false => format!("{} {written}", ask.prefix),
        };
        let words = piece.split_whitespace().count();
        piece_ask.max_tokens = match next_fact {
            Some(_) => words * 2 + 2,
            None => words * 2 + 4,
        };
        let Some((text, finish)) = self.call(&piece_ask).await? else { return Ok(None) };
        // Going on from written text, a line break first means the model ended the sentence.
        let text = if written.is_empty() { text.trim_start() } else { text.trim_start_matches(' ') };
        let mut text = text.lines().next().unwrap_or_default().to_string();
        // Cut off by the token limit, the last word may be half a word.
        let mut half_word = finish != FinishReason::Eos;
        let mut cut_at_number = false;
        if let Some(invented) = missing_numbers(&text, sentence).first()
            && let Some(at) = text.find(invented)
        {
            text.truncate(at);
            (half_word, cut_at_number) = (false, true);
        }
        let stopwords = self.languages.target.map_or(&[][..], |t| t.profile().stopwords);
        match next_fact {
            // Cut before the model ended the sentence: end at a whole word that ends something.
            None if half_word && !ends_a_sentence(&text) => Ok(Some(end_at_whole_word(&text, stopwords, false))),
            None if cut_at_number => Ok(Some(without_dangling_words(&text, stopwords))),
            None => Ok(Some(text)),
            Some(fact) => {
                if let Some(at) = text.find(fact) {
                    text.truncate(at);
                } else if half_word {
                    // A function word just before the fact is whole, and leads into it
                    // (`El equipo de` Green Leaf).
                    text = end_at_whole_word(&text, stopwords, true);
                }
                if let Some(first) = sentences(&text).into_iter().next() {
                    text = first;
                }
                Ok(Some(text.trim_end_matches(['.', '!', '?', ':', ';']).trim().to_string()))
            }
        }
    }
}

/// A candidate's failures (for a repair-free choice) and its score: failures first, then
/// how clearly it reads as the target and how close its length is to the source's.
fn judge(languages: &Languages, sentence: &str, facts: &[Fact], text: &str) -> Judged {
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

/// Whether `sentence` is nothing but its numbers and names (a signature `Green Leaf`): it
/// stays as it is in any language.
fn only_facts(sentence: &str, facts: &[Fact]) -> bool {
    words(sentence).iter().all(|w| facts.iter().any(|f| words(&f.text).contains(w)))
}

/// Words that carry meaning: four letters or more, not a stopword of `language`.
fn content_words(text: &str, language: Option<Language>) -> Vec<String> {
    let stopwords = language.map_or(&[][..], |l| l.profile().stopwords);
    words(text).into_iter().filter(|w| w.chars().count() >= 4 && !stopwords.contains(&w.as_str())).collect()
}

fn has_words(text: &str) -> bool {
    text.chars().any(char::is_alphabetic)
}

/// `text` cut off by a token limit, ended at its last whole word (the last may be half of one)
/// and not on a function word (`stopwords`) that leads nowhere. Before a fact, a function word
/// at the end is whole and leads into it (`El equipo de` Green Leaf).
fn end_at_whole_word(text: &str, stopwords: &[&str], before_fact: bool) -> String {
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
fn without_dangling_words(text: &str, stopwords: &[&str]) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    while words.last().is_some_and(|word| stopwords.contains(&word.to_lowercase().as_str())) {
        words.pop();
    }
    words.join(" ").trim_end_matches([',', ';', ':']).to_string()
}

/// Whether `text` has a sentence's end in it (the model finished at least one).
fn ends_a_sentence(text: &str) -> bool {
    text.trim_end().ends_with(['.', '!', '?']) || sentences(text).len() > 1
}

fn push_words(written: &mut String, words: &str) {
    let words = words.trim();
    if words.is_empty() {
        return;
    }
    // Punctuation goes on from the word before it.
    if !written.is_empty() && !words.starts_with([',', '.', ';', ':', '!', '?']) {
        written.push(' ');
    }
    written.push_str(words);
}

/// A model's answer made one sentence on one line: the first line, without labels the model
/// echoes, glosses in parentheses, or quotes around it, ending as the source sentence ends.
fn tidy(answer: &str, source: &str, labels: &[&str]) -> String {
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
    let mut sentences_after: usize = lines.iter().map(|(_, s)| s.len()).sum();
    let mut translator = Translator {
        writer,
        languages: languages.clone(),
        known_names: plan.requirements.names.clone(),
        attempts: Attempts::for_phase(brief.phase),
        spent: Duration::ZERO,
        calls: 0,
    };
    let mut complete = true;
    let mut translated_lines = Vec::new();
    for (markup, line_sentences) in &lines {
        let mut translated = Vec::new();
        for sentence in line_sentences {
            sentences_after -= 1;
            match translator.sentence(sentence, sentences_after).await? {
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
        true => {
            format!("Translated into {target} sentence by sentence, keeping the original's lines, names and numbers.")
        }
        false => format!(
            "Translated into {target} sentence by sentence, keeping the original's lines; the checks name what still \
             needs a look."
        ),
    };
    Ok(Draft { text, checks, complete, note: Some(note), ..Draft::default() })
}

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

    const NOTICE: &str = "Dear customers,\nOur store on 5th Avenue will be closed on Monday, March 3 for renovation. \
        Online orders will still ship as usual. We apologise for the inconvenience and look forward to welcoming \
        you back on Tuesday.\nThe Green Leaf team";

    const TRANSLATED: &str = "Estimados clientes,\nNuestra tienda de la 5.ª Avenida estará cerrada el lunes 3 de \
        marzo por remodelación. Los pedidos en línea se enviarán como de costumbre. Lamentamos las molestias y \
        esperamos darles la bienvenida de nuevo el martes.\nEl equipo de Green Leaf";

    fn spanish() -> Languages {
        Languages {
            source: Some(Language::English),
            source_name: "English".into(),
            target: Some(Language::Spanish),
            target_name: "Spanish".into(),
            target_description: "neutral Latin American Spanish".into(),
        }
    }

    fn verdict(checks: &[Check], name: &str) -> (bool, String) {
        let found = checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:?}"));
        (found.passed, found.detail.clone())
    }

    fn fixture() -> Brief {
        let path = format!("{}/tests/fixtures/briefs/translation-en-es-notice.json", env!("CARGO_MANIFEST_DIR"));
        crate::protocol::parse_brief(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_source_is_what_follows_the_instruction() {
        assert_eq!(source_text(&fixture().description), NOTICE);
        assert_eq!(source_text("Please translate:\n\n```text\nHello.\n\nBye.\n```\nThanks!"), "Hello.\n\nBye.");
        assert_eq!(source_text("Translate into French: \"We open at 9 tomorrow.\" Thanks."), "We open at 9 tomorrow.");
        assert_eq!(source_text("Into German, please:\n> Hello there.\n> Bye now."), "Hello there.\nBye now.");
        assert_eq!(source_text("We are closed today.\n\nSee you soon."), "We are closed today.\n\nSee you soon.");
        // A colon inside the text itself does not start it.
        assert_eq!(
            source_text("Translate this into Italian:\n\nOpening hours:\nMonday to Friday."),
            "Opening hours:\nMonday to Friday."
        );
    }

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

    #[test]
    fn markup_is_kept_apart_from_the_text() {
        assert_eq!(split_markup("  - **Bold** item"), ("  - ", "**Bold** item"));
        assert_eq!(split_markup("## 2. Title"), ("## 2. ", "Title"));
        assert_eq!(split_markup("3 apples"), ("", "3 apples"));
        assert_eq!(split_markup("-5 degrees"), ("", "-5 degrees"));
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
