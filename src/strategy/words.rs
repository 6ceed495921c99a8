//! Word lists more than one strategy reads, kept once: the English names of months and weekdays,
//! and small counts written as words.

/// Months, lower case, January first.
pub const MONTHS: [&str; 12] = [
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

/// Weekdays, lower case, Monday first.
pub const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// Whether `word` (lower case) names a month or a weekday.
pub fn is_calendar_word(word: &str) -> bool {
    MONTHS.contains(&word) || WEEKDAYS.contains(&word)
}

/// A count as a brief writes it, "5" or "five", from 1 to 50.
pub fn number_word(word: &str) -> Option<usize> {
    const WORDS: &[&str] =
        &["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
    word.parse().ok().or_else(|| WORDS.iter().position(|w| *w == word).map(|i| i + 1)).filter(|n| (1..=50).contains(n))
}
