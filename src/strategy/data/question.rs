//! What the brief asks of its data, read from its words: averages, shares and rates, rankings,
//! comparisons, totals, changes, counts, duplicates, and which columns it names ("per region").
//! The analysis computes everything; this decides what the response leads with.

use super::kinds::header_words;
use super::{About, Analysis, Topic};

/// The key findings list stops here; the rest stays in the tables.
const MAX_KEY_FINDINGS: usize = 8;

/// Words that ask for each topic.
const TOPIC_WORDS: &[(Topic, &[&str])] = &[
    (Topic::Averages, &["average", "averages", "mean", "means", "median", "typical", "avg"]),
    (Topic::Rates, &["rate", "rates", "percentage", "percentages", "percent", "proportion", "share", "shares", "%"]),
    (
        Topic::Counts,
        &["share", "shares", "percentage", "proportion", "count", "counts", "breakdown", "distribution", "%"],
    ),
    (
        Topic::Ranking,
        &[
            "rank", "ranking", "ranked", "top", "most", "least", "best", "worst", "highest", "lowest", "largest",
            "smallest", "leading", "leader", "leaders",
        ],
    ),
    (
        Topic::Differences,
        &[
            "compare",
            "comparison",
            "compared",
            "comparing",
            "difference",
            "differences",
            "differ",
            "differs",
            "versus",
            "vs",
            "gap",
            "between",
            "against",
        ],
    ),
    (
        Topic::Duplicates,
        &[
            "duplicate",
            "duplicates",
            "duplicated",
            "dedupe",
            "dedup",
            "deduplicate",
            "deduplicated",
            "repeated",
            "clean",
            "cleaned",
            "cleaning",
            "cleanup",
        ],
    ),
    (Topic::Totals, &["total", "totals", "sum", "overall", "revenue", "sales"]),
    (
        Topic::Trend,
        &[
            "grew", "grow", "growth", "shrank", "shrink", "change", "changes", "changed", "trend", "trends",
            "increase", "decrease", "decline", "declined", "rise", "rose", "fell", "drop", "dropped",
        ],
    ),
    (Topic::Size, &["rows", "records", "entries", "responses", "size"]),
];
/// Words that ask for the data to be cleaned rather than only read.
const CLEANING_WORDS: &[&str] = &[
    "clean",
    "cleaned",
    "cleaning",
    "cleanup",
    "dedupe",
    "dedup",
    "deduplicate",
    "deduplicated",
    "normalise",
    "normalize",
    "normalised",
    "normalized",
    "tidy",
    "standardise",
    "standardize",
];
/// Header words too common to show that the brief names the column.
const GENERIC_WORDS: &[&str] = &["usd", "eur", "gbp", "the", "and", "num", "total", "count", "value", "name"];

/// The brief's question, read once.
pub struct Question {
    /// Its words, lower-cased, in order (`%` is a word).
    words: Vec<String>,
    /// The topics it asks about, the first asked first.
    asked: Vec<Topic>,
}

impl Question {
    /// Read `text`: the brief's title and description without its table (see
    /// `text_around_table`), which would otherwise name every column.
    pub fn read(text: &str) -> Self {
        let spaced = text.to_lowercase().replace('%', " % ");
        let words: Vec<String> = spaced
            .split(|c: char| !c.is_alphanumeric() && c != '%')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let phrase = |i: usize, a: &str, b: &str| words[i] == a && words.get(i + 1).is_some_and(|w| w == b);
        let mut first_asked: Vec<(usize, Topic)> = Vec::new();
        for (topic, list) in TOPIC_WORDS {
            let at = words.iter().position(|w| list.contains(&w.as_str()));
            // "how many" and "number of" ask for counts.
            let counted = (*topic == Topic::Counts)
                .then(|| (0..words.len()).find(|&i| phrase(i, "how", "many") || phrase(i, "number", "of")))
                .flatten();
            if let Some(at) = at.into_iter().chain(counted).min() {
                first_asked.push((at, *topic));
            }
        }
        first_asked.sort_by_key(|(at, _)| *at);
        Question { asked: first_asked.into_iter().map(|(_, t)| t).collect(), words }
    }

    /// The topics asked about, the first asked first.
    pub fn asked(&self) -> &[Topic] {
        &self.asked
    }

    /// Whether the brief asks for its data cleaned, deduplicated or normalised.
    pub fn asks_for_cleaning(&self) -> bool {
        let says = |w: &str| self.words.iter().any(|x| x == w);
        self.words.iter().any(|w| CLEANING_WORDS.contains(&w.as_str()))
            || ((says("duplicate") || says("duplicates"))
                && ["remove", "drop", "delete", "merge"].iter().any(|w| says(w)))
    }

    /// Whether the brief names the column `header` ("per region" names `region`; "revenue"
    /// names `revenue_usd`), singular or plural.
    pub fn names(&self, header: &str) -> bool {
        header_words(header).iter().filter(|w| w.len() >= 3 && !GENERIC_WORDS.contains(&w.as_str())).any(|w| {
            let plurals =
                [format!("{w}s"), format!("{w}es"), w.strip_suffix('y').map(|s| format!("{s}ies")).unwrap_or_default()];
            self.words.iter().any(|x| x == w || plurals.contains(x))
        })
    }

    /// The findings to lead with: those the brief asks about, the first asked first and those
    /// about the columns it names before the rest; then the headline findings it did not ask
    /// about. At most eight, never none.
    pub fn key_findings<'a>(&self, analysis: &'a Analysis) -> Vec<&'a str> {
        let rank = |about: &About| self.asked.iter().position(|t| *t == about.topic);
        let named = |about: &About| about.columns.iter().filter(|c| self.names(c)).count();
        let mut chosen: Vec<(usize, &About)> =
            analysis.about.iter().enumerate().filter(|&(_, about)| about.headline || rank(about).is_some()).collect();
        if chosen.is_empty() {
            chosen = analysis.about.iter().enumerate().collect();
        }
        chosen.sort_by_key(|&(i, about)| (rank(about).unwrap_or(usize::MAX), std::cmp::Reverse(named(about)), i));
        let chosen = chosen.into_iter().map(|(i, _)| i);
        chosen.take(MAX_KEY_FINDINGS).filter_map(|i| analysis.findings.get(i).map(String::as_str)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topics_are_read_in_the_order_asked() {
        let q = Question::read("What is the average age per region, and what share of respondents subscribed?");
        assert_eq!(q.asked(), [Topic::Averages, Topic::Rates, Topic::Counts]);
        assert!(q.names("region") && q.names("respondent_id") && q.names("age") && !q.names("plan"));
        let q = Question::read("Which regions grew from Q1 to Q2, and what is total revenue per quarter?");
        assert_eq!(q.asked(), [Topic::Trend, Topic::Totals]);
        assert!(q.names("revenue_usd") && q.names("quarter") && q.names("region"));
        assert_eq!(Question::read("How many customers per plan?").asked(), [Topic::Counts]);
    }

    #[test]
    fn cleaning_is_asked_for_in_so_many_words() {
        assert!(Question::read("Please clean this list").asks_for_cleaning());
        assert!(Question::read("Remove duplicates and normalise the phone numbers").asks_for_cleaning());
        assert!(!Question::read("How many duplicates are there?").asks_for_cleaning());
        assert!(!Question::read("Summarise our sales").asks_for_cleaning());
    }
}
