//! One typed reading of everything a brief asks for, from `requirements`, `quality_rules`, the
//! title and the description: the task family, length, tone, audience, languages, keywords,
//! item counts with their character limits, platforms, output format, names the work must use,
//! and every rule we do not know as an explicit constraint sentence. Values arrive in loose
//! forms (`"1500"`, `"a, b"`, nested objects); [`Requirement`] reads them the way a buyer meant.
//!
//! The strategies plan from this, and the checks verify drafts against it.

use std::collections::BTreeSet;

use crate::protocol::{Brief, Requirement};

/// Kinds of work that need different plans and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskFamily {
    /// Blog posts, articles, press releases, newsletters, website copy.
    LongForm,
    /// Social posts, ad copy, slogans, product and meta descriptions.
    ShortForm,
    Translation,
    /// Code review, scripts, SQL, regular expressions.
    Code,
    /// Analysis, summaries and clean-up of data.
    Data,
    /// Pitch decks, plans, comparisons.
    Business,
    /// Logos and wordmarks.
    Logo,
    Generic,
}

/// How the deliverable is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    Markdown,
    Table,
    Csv,
    /// Source code in this language (lower case, e.g. `python`).
    Code(String),
    Svg,
}

/// A number of items of one kind, each perhaps limited in length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCount {
    /// Singular noun, lower case: `headline`, `slide`, `post`.
    pub kind: String,
    pub count: u64,
    pub max_chars: Option<u64>,
}

/// What the buyer asked for, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirements {
    pub family: TaskFamily,
    /// Length in words, if stated.
    pub target_words: Option<u64>,
    pub tone: Option<String>,
    pub audience: Option<String>,
    /// The language the deliverable is written in, if not left to us.
    pub language: Option<String>,
    /// For a translation: the language of the source.
    pub source_language: Option<String>,
    /// Words or phrases that must appear.
    pub keywords: Vec<String>,
    pub items: Vec<ItemCount>,
    pub platforms: Vec<String>,
    pub format: OutputFormat,
    pub colors: Vec<String>,
    /// Names from the brief (products, companies) the work must use as written.
    pub names: Vec<String>,
    /// Requirements and quality rules we do not interpret, as constraint sentences for the model.
    pub other_rules: Vec<String>,
}

/// Keys (in `requirements` or `quality_rules`) and what each feeds.
const WORD_KEYS: &[&str] = &["word_count", "words", "length_words", "target_words", "min_words", "max_words", "length"];
const TONE_KEYS: &[&str] = &["tone", "voice", "style"];
const AUDIENCE_KEYS: &[&str] = &["audience", "target_audience", "readers"];
const LANGUAGE_KEYS: &[&str] =
    &["target_language", "to_language", "target_lang", "language_to", "output_language", "to"];
const SOURCE_LANGUAGE_KEYS: &[&str] = &["source_language", "from_language", "source_lang", "language_from"];
const KEYWORD_KEYS: &[&str] = &["seo_keywords", "keywords", "required_keywords", "must_include", "include_keywords"];
const PLATFORM_KEYS: &[&str] = &["platforms", "platform", "channels", "networks"];
const FORMAT_KEYS: &[&str] = &["format", "output_format", "file_format"];
const CODE_LANGUAGE_KEYS: &[&str] = &["language", "programming_language", "lang"];
const COLOR_KEYS: &[&str] = &["colors", "colours", "color", "colour", "palette", "brand_colors"];

/// Plural nouns a count may be given by alone (`"slides": 10`), with their singular.
const COUNTED_NOUNS: &[(&str, &str)] = &[
    ("slides", "slide"),
    ("posts", "post"),
    ("headlines", "headline"),
    ("descriptions", "description"),
    ("questions", "question"),
    ("items", "item"),
    ("tweets", "tweet"),
    ("variants", "variant"),
    ("options", "option"),
    ("slogans", "slogan"),
    ("ideas", "idea"),
    ("sections", "section"),
    ("bullets", "bullet"),
];

/// Task types (and title words) by family, most specific first.
const FAMILY_MARKERS: &[(TaskFamily, &[&str])] = &[
    (TaskFamily::Translation, &["translat"]),
    (TaskFamily::Logo, &["logo", "wordmark", "icon", "brand-mark"]),
    (TaskFamily::Code, &["code", "script", "sql", "regex", "program", "function", "bug"]),
    (TaskFamily::Data, &["data", "csv", "spreadsheet", "analysis", "analytics"]),
    (TaskFamily::Business, &["pitch", "deck", "business-plan", "plan", "comparison", "proposal"]),
    (
        TaskFamily::ShortForm,
        &["ad-copy", "social", "tweet", "slogan", "tagline", "product-description", "meta", "headline", "caption"],
    ),
    (
        TaskFamily::LongForm,
        &["blog", "article", "press", "newsletter", "website", "essay", "copywriting", "story", "guide", "email"],
    ),
];

impl Requirements {
    /// Read `brief` into one typed plan.
    pub fn from_brief(brief: &Brief) -> Self {
        let text = |keys: &[&str]| brief.requirement(keys).map(|r| r.as_text()).filter(|s| !s.is_empty());
        let list = |keys: &[&str]| brief.requirement(keys).map(|r| r.as_list()).unwrap_or_default();
        let family = family(brief);
        let language = text(LANGUAGE_KEYS);
        let format = output_format(brief, family);
        let items = item_counts(brief);
        let mut understood: BTreeSet<&str> = [
            WORD_KEYS,
            TONE_KEYS,
            AUDIENCE_KEYS,
            LANGUAGE_KEYS,
            SOURCE_LANGUAGE_KEYS,
            KEYWORD_KEYS,
            PLATFORM_KEYS,
            FORMAT_KEYS,
            COLOR_KEYS,
        ]
        .concat()
        .into_iter()
        .collect();
        if matches!(format, OutputFormat::Code(_)) {
            understood.extend(CODE_LANGUAGE_KEYS);
        }
        let other_rules = brief
            .requirements
            .iter()
            .chain(&brief.quality_rules)
            .filter(|(key, value)| !understood.contains(key.as_str()) && !is_item_key(key) && !value.is_null())
            .map(|(key, value)| format!("{}: {}", key.replace('_', " "), Requirement(value).as_text()))
            .collect();
        Self {
            family,
            target_words: brief.requirement(WORD_KEYS).and_then(|r| r.as_count()).filter(|n| *n > 0),
            tone: text(TONE_KEYS),
            audience: text(AUDIENCE_KEYS),
            language,
            source_language: text(SOURCE_LANGUAGE_KEYS),
            keywords: list(KEYWORD_KEYS),
            items,
            platforms: list(PLATFORM_KEYS),
            format,
            colors: list(COLOR_KEYS),
            // A platform named in the brief is where the work goes, not a name it must carry. In a
            // code brief the quoted words are example values and identifiers (`"10x"`,
            // `fetchResults`), which the code's own checks read in context (`code:brief_terms`).
            names: match family {
                TaskFamily::Code => Vec::new(),
                _ => names(&format!("{}\n{}", brief.title, brief.description))
                    .into_iter()
                    .filter(|name| !list(PLATFORM_KEYS).iter().any(|p| p.eq_ignore_ascii_case(name)))
                    .collect(),
            },
            other_rules,
        }
    }
}

impl Requirements {
    /// For a translation, the language to translate into (named, or left to the brief's text).
    pub fn translate_into(&self) -> Option<String> {
        (self.family == TaskFamily::Translation)
            .then(|| self.language.clone().unwrap_or_else(|| "the requested language".into()))
    }
}

fn family(brief: &Brief) -> TaskFamily {
    // Words, lower case, each with a space before it: a marker must start a word
    // (`script` is not in `description`).
    let words = |s: Option<&str>| {
        let spaced: String =
            s.unwrap_or_default().to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
        format!(" {}", spaced.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let haystack = |s: Option<&str>| s.map(str::to_lowercase).unwrap_or_default();
    // The task type says it best; the title next; the category last (`writing-translation`
    // holds every kind of writing, so it never decides translation alone).
    for source in [words(brief.task_type.as_deref()), words(Some(&brief.title))] {
        let starts_a_word = |marker: &&str| source.contains(&format!(" {}", marker.replace('-', " ")));
        if let Some((family, _)) = FAMILY_MARKERS.iter().find(|(_, markers)| markers.iter().any(starts_a_word)) {
            return *family;
        }
    }
    match haystack(brief.category.as_deref()).as_str() {
        c if c.contains("programming") => TaskFamily::Code,
        c if c.contains("data") => TaskFamily::Data,
        c if c.contains("graphics") || c.contains("design") => TaskFamily::Logo,
        c if c.contains("business") => TaskFamily::Business,
        c if c.contains("marketing") => TaskFamily::ShortForm,
        c if c.contains("writing") => TaskFamily::LongForm,
        _ => TaskFamily::Generic,
    }
}

fn output_format(brief: &Brief, family: TaskFamily) -> OutputFormat {
    let stated = brief.requirement(FORMAT_KEYS).map(|r| r.as_text().to_lowercase()).unwrap_or_default();
    let code_language = brief.requirement(CODE_LANGUAGE_KEYS).map(|r| r.as_text().to_lowercase());
    match () {
        _ if stated.contains("svg") || family == TaskFamily::Logo => OutputFormat::Svg,
        _ if stated.contains("csv") => OutputFormat::Csv,
        _ if stated.contains("table") => OutputFormat::Table,
        _ if family == TaskFamily::Code => OutputFormat::Code(code_language.unwrap_or_else(|| "text".into())),
        _ if family == TaskFamily::Data => OutputFormat::Table,
        _ => OutputFormat::Markdown,
    }
}

/// `headline_count`, `num_slides`, `number_of_posts`, or a bare plural noun like `slides`.
/// A key that names no kind (`_count`, `num_`) is not an item count: it stays a rule.
fn counted_kind(key: &str) -> Option<String> {
    let stem = key
        .strip_suffix("_count")
        .or_else(|| key.strip_prefix("num_"))
        .or_else(|| key.strip_prefix("number_of_"))
        .or_else(|| COUNTED_NOUNS.iter().find(|(plural, _)| *plural == key).map(|_| key))
        // `word_count` and `char_count` are lengths, not items.
        .filter(|stem| !matches!(*stem, "word" | "words" | "char" | "chars" | "character" | "characters"))?;
    let singular = COUNTED_NOUNS
        .iter()
        .find(|(plural, _)| *plural == stem)
        .map_or_else(|| stem.strip_suffix('s').unwrap_or(stem).to_string(), |(_, singular)| singular.to_string());
    Some(singular.replace('_', " ")).filter(|kind| names_a_kind(kind))
}

/// `max_headline_chars`, `headline_max_chars`, `headline_char_limit`: the kind they limit.
/// A key that names no kind (`_max_chars`, `max__chars`) limits nothing: it stays a rule.
fn limited_kind(key: &str) -> Option<String> {
    let stem = key
        .strip_prefix("max_")
        .and_then(|k| k.strip_suffix("_chars").or_else(|| k.strip_suffix("_characters")))
        .or_else(|| key.strip_suffix("_max_chars"))
        .or_else(|| key.strip_suffix("_char_limit"))
        .or_else(|| key.strip_suffix("_character_limit"))?;
    Some(stem.strip_suffix('s').unwrap_or(stem).replace('_', " ")).filter(|kind| names_a_kind(kind))
}

fn names_a_kind(kind: &str) -> bool {
    kind.chars().any(char::is_alphanumeric)
}

fn is_item_key(key: &str) -> bool {
    counted_kind(key).is_some() || limited_kind(key).is_some()
}

fn item_counts(brief: &Brief) -> Vec<ItemCount> {
    let fields = || brief.requirements.iter().chain(&brief.quality_rules);
    let mut items: Vec<ItemCount> = fields()
        .filter_map(|(key, value)| {
            let kind = counted_kind(key)?;
            let count = Requirement(value).as_count().filter(|n| *n > 0)?;
            Some(ItemCount { kind, count, max_chars: None })
        })
        .collect();
    for (key, value) in fields() {
        let (Some(kind), Some(limit)) = (limited_kind(key), Requirement(value).as_count()) else { continue };
        match items.iter_mut().find(|item| item.kind == kind) {
            Some(item) => item.max_chars = Some(limit),
            // A limit without a count: at least one such item.
            None => items.push(ItemCount { kind, count: 1, max_chars: Some(limit) }),
        }
    }
    items
}

/// Abbreviations that end a company name with a full stop of their own.
const ABBREVIATIONS: &[&str] = &["Co", "Inc", "Ltd", "Corp", "Bros", "LLC", "L.L.C", "S.A", "GmbH", "Pty"];

/// Names the work must use as written: quoted phrases (`'LinguaLeap'`, `"Nimbus"`) and words
/// with a capital inside (`LinguaLeap`, `iPhone`).
fn names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        let name = name.trim_start_matches(|c: char| !c.is_alphanumeric());
        // The full stop of an abbreviation is part of the name (`Crumb & Co.`); any other
        // trailing punctuation is the sentence's.
        let kept_stop = ABBREVIATIONS.iter().any(|a| name.ends_with(&format!(" {a}.")) || name == format!("{a}."));
        let name = match kept_stop {
            true => name,
            false => name.trim_end_matches(|c: char| !c.is_alphanumeric()),
        };
        if !name.is_empty() && name.chars().count() <= 40 && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    for quote in ['\'', '"', '“', '‘'] {
        let close = match quote {
            '“' => '”',
            '‘' => '’',
            q => q,
        };
        let mut rest = text;
        while let Some(start) = rest.find(quote) {
            let after = &rest[start + quote.len_utf8()..];
            // An apostrophe inside a word (`It's`) opens nothing.
            if rest[..start].chars().last().is_some_and(char::is_alphanumeric) {
                rest = after;
                continue;
            }
            let Some(end) = after.find(close) else { break };
            let quoted = &after[..end];
            if !quoted.contains('\n') && quoted.split_whitespace().count() <= 4 {
                push(quoted);
            }
            rest = &after[end + close.len_utf8()..];
        }
    }
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let mut chars = word.chars();
        let first = chars.next();
        let inner_capital = chars.clone().any(char::is_uppercase) && chars.any(char::is_lowercase);
        if first.is_some() && inner_capital && word.chars().count() > 2 {
            push(word);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    fn fixture(name: &str) -> Requirements {
        let path = format!("{}/tests/fixtures/briefs/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let brief = parse_brief(&std::fs::read(path).unwrap()).unwrap();
        Requirements::from_brief(&brief)
    }

    fn brief(json: serde_json::Value) -> Requirements {
        Requirements::from_brief(&parse_brief(json.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn a_company_abbreviation_keeps_its_full_stop() {
        assert_eq!(names("A logo for 'Crumb & Co.' please."), ["Crumb & Co."]);
        assert_eq!(names("We are 'Nimbus'. Thanks."), ["Nimbus"]);
        assert_eq!(names("Made by \"Harbor Goods Inc.\""), ["Harbor Goods Inc."]);
    }

    #[test]
    fn every_fixture_brief_reads_into_its_family_and_constraints() {
        let ads = fixture("ad-copy-google-ads");
        assert_eq!(ads.family, TaskFamily::ShortForm);
        assert_eq!(
            ads.items,
            vec![
                ItemCount { kind: "description".into(), count: 4, max_chars: Some(90) },
                ItemCount { kind: "headline".into(), count: 10, max_chars: Some(30) },
            ]
        );
        assert!(ads.names.contains(&"LinguaLeap".to_string()), "{:?}", ads.names);
        assert!(ads.other_rules.is_empty(), "{:?}", ads.other_rules);

        let blog = fixture("blog-post-sustainable-investing");
        assert_eq!(blog.family, TaskFamily::LongForm);
        assert_eq!(blog.target_words, Some(1500));
        assert_eq!(blog.tone.as_deref(), Some("conversational"));
        assert_eq!(blog.audience.as_deref(), Some("millennials new to investing"));
        assert_eq!(blog.keywords, ["sustainable investing", "ESG funds", "greenwashing"]);
        assert_eq!(blog.format, OutputFormat::Markdown);

        let pitch = fixture("business-pitch-outline");
        assert_eq!(pitch.family, TaskFamily::Business);
        assert_eq!(pitch.items, vec![ItemCount { kind: "slide".into(), count: 10, max_chars: None }]);

        let review = fixture("code-review-python");
        assert_eq!(review.family, TaskFamily::Code);
        assert_eq!(review.format, OutputFormat::Code("python".into()));
        assert!(review.other_rules.is_empty(), "the code language is understood: {:?}", review.other_rules);
        assert_eq!(fixture("script-rename-photos").format, OutputFormat::Code("python".into()));

        let data = fixture("data-analysis-sales-csv");
        assert_eq!((data.family, data.format), (TaskFamily::Data, OutputFormat::Table));

        let newsletter = fixture("email-newsletter-gym");
        assert_eq!((newsletter.family, newsletter.target_words), (TaskFamily::LongForm, Some(350)));
        assert_eq!(newsletter.tone.as_deref(), Some("warm"));

        let logo = fixture("logo-nimbus-wordmark");
        assert_eq!((logo.family, logo.format.clone()), (TaskFamily::Logo, OutputFormat::Svg));
        assert_eq!(logo.colors, ["blue"]);

        let slogan = fixture("minimal-brief");
        assert_eq!(slogan.family, TaskFamily::ShortForm);
        assert_eq!((slogan.target_words, slogan.items.len()), (None, 0));

        let bottle = fixture("product-description-bottle");
        assert_eq!((bottle.family, bottle.target_words), (TaskFamily::ShortForm, Some(150)));

        let social = fixture("social-media-coffee-launch");
        assert_eq!(social.family, TaskFamily::ShortForm);
        assert_eq!(social.platforms, ["LinkedIn", "Instagram", "X"]);
        assert_eq!(social.tone.as_deref(), Some("energetic"));

        let translation = fixture("translation-en-es-notice");
        assert_eq!(translation.family, TaskFamily::Translation);
        assert_eq!(translation.language.as_deref(), Some("Spanish"));
        assert_eq!(translation.source_language.as_deref(), Some("English"));
    }

    #[test]
    fn loose_values_read_as_the_buyer_meant() {
        let r = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Launch posts", "description": "For our app “Brewly”.",
            "task_type": "social-media-post",
            "requirements": {"num_posts": "5", "keywords": "fresh, local; organic", "post_char_limit": "280",
                             "hashtags": {"max": 3, "style": "camelCase"}},
            "quality_rules": {"avoid_emojis": true, "word_count": "about 120 words"}
        }));
        assert_eq!(r.items, vec![ItemCount { kind: "post".into(), count: 5, max_chars: Some(280) }]);
        assert_eq!(r.keywords, ["fresh", "local", "organic"]);
        assert_eq!(r.target_words, Some(120));
        assert!(r.names.contains(&"Brewly".to_string()), "{:?}", r.names);
        // Unknown rules reach the model as constraints, nested objects flattened.
        assert_eq!(r.other_rules, ["hashtags: max: 3; style: camelCase", "avoid emojis: yes"]);
    }

    #[test]
    fn a_limit_without_a_count_still_limits_one_item() {
        let r = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Meta description", "description": "For our homepage.",
            "task_type": "meta-description", "quality_rules": {"max_description_chars": 155}
        }));
        assert_eq!(r.items, vec![ItemCount { kind: "description".into(), count: 1, max_chars: Some(155) }]);
    }

    #[test]
    fn names_skip_contractions_and_long_quotes() {
        assert_eq!(names("It's the 'Nimbus' brand, don't change it."), ["Nimbus"]);
        assert!(names("Say 'this is a very long quoted sentence here' ok").is_empty());
        assert_eq!(names("Use LinguaLeap and iPhone."), ["LinguaLeap", "iPhone"]);
    }
}
