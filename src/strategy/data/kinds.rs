//! What each column holds, read from its header and its values: an id (never summed or
//! averaged), a category, a number, a yes/no flag, a date, a period, an email, a phone number or
//! free text. Every computation asks this first, so that a `respondent_id` column is never
//! reported as "Total respondent: 78".

use super::dates;
use super::table::{self, Table};

/// A column's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    Category,
    Number,
    YesNo,
    Date,
    Period,
    Email,
    Phone,
    Text,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::Category => "category",
            Kind::Number => "number",
            Kind::YesNo => "yes/no",
            Kind::Date => "date",
            Kind::Period => "period",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Text => "free text",
        }
    }
}

/// Headers that are an id whatever their values.
const ID_HEADERS: &[&str] = &["id", "#", "no", "no.", "nr", "uuid", "guid", "respondent"];
/// Last words that make a header id-like when its values are distinct, mostly consecutive
/// integers (`order` 1001, 1002, …), but a measure otherwise (`number_of_children`).
const ID_HINTS: &[&str] = &[
    "row",
    "index",
    "idx",
    "record",
    "ticket",
    "order",
    "invoice",
    "case",
    "customer",
    "user",
    "member",
    "employee",
    "participant",
    "student",
    "patient",
    "account",
    "serial",
    "ref",
    "reference",
    "respondent",
    "response",
    "entry",
    "number",
    "num",
    "item",
    "transaction",
];
/// Header words of a period column.
const PERIOD_WORDS: &[&str] = &["quarter", "qtr", "month", "year", "week", "period", "fy", "day", "weekday", "date"];
const PHONE_WORDS: &[&str] = &["phone", "tel", "telephone", "mobile", "cell", "fax", "whatsapp"];
/// A 1/0 column is a flag only when its header reads like one (`is_active`, `churned`).
const FLAG_OPENINGS: &[&str] = &["is", "has", "had", "was", "did", "does", "can", "will", "got", "wants"];
const FLAG_WORDS: &[&str] = &["active", "churn", "flag", "member", "vip", "fraud", "default", "success", "optin"];
const YES_NO: &[&str] = &["yes", "no", "y", "n", "true", "false"];
/// Header words of a number that is a level, not an amount: its mean means something, its sum
/// does not (the total of everyone's age).
const LEVEL_WORDS: &[&str] = &[
    "age",
    "score",
    "rating",
    "rate",
    "ratio",
    "percent",
    "pct",
    "percentage",
    "share",
    "satisfaction",
    "nps",
    "csat",
    "price",
    "temperature",
    "temp",
    "grade",
    "level",
    "rank",
    "ranking",
    "margin",
    "avg",
    "average",
    "mean",
    "median",
    "index",
    "height",
    "weight",
    "bmi",
    "tenure",
    "stars",
    "probability",
    "likelihood",
    "latitude",
    "longitude",
    "lat",
    "lon",
    "zip",
    "postcode",
];
/// Text longer than this on average, or with more words, is free text rather than a category.
const CATEGORY_MAX_CHARS: usize = 30;
const CATEGORY_MAX_WORDS: usize = 5;

/// The kind of every column of `table`.
pub fn column_kinds(table: &Table) -> Vec<Kind> {
    (0..table.headers.len()).map(|c| kind_of(&table.headers[c], &table::values(table, c), table.rows.len())).collect()
}

/// The kind of a column with `header` and filled `values`, out of `rows` rows.
pub fn kind_of(header: &str, values: &[&str], rows: usize) -> Kind {
    let words = header_words(header);
    let has_word = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    let all = |test: &dyn Fn(&str) -> bool| !values.is_empty() && values.iter().all(|v| test(v));
    let most = |test: &dyn Fn(&str) -> bool| 2 * values.iter().filter(|v| test(v)).count() >= values.len();
    if values.is_empty() {
        return Kind::Text;
    }
    if is_id_header(header, &words) {
        return Kind::Id;
    }
    if all(&is_email) || (has_word(&["email", "mail"]) && most(&is_email)) {
        return Kind::Email;
    }
    if has_word(PHONE_WORDS) && most(&is_phone) {
        return Kind::Phone;
    }
    let day_first = dates::day_first(values.iter().copied());
    if all(&|v| dates::iso_date(v, day_first).is_some()) {
        return Kind::Date;
    }
    let numeric = all(&|v| table::number(v).is_some());
    if all(&dates::is_period) || (period_header(&words) && values.iter().all(|v| v.split_whitespace().count() <= 3)) {
        return Kind::Period;
    }
    if all(&is_phone) && !numeric {
        return Kind::Phone;
    }
    if all(&|v| YES_NO.contains(&v.to_lowercase().as_str())) || (all(&|v| v == "1" || v == "0") && is_flag(&words)) {
        return Kind::YesNo;
    }
    if numeric {
        let id_like = words.last().is_some_and(|w| ID_HINTS.contains(&w.as_str()));
        return match id_like && consecutive_integers(values) {
            true => Kind::Id,
            false => Kind::Number,
        };
    }
    let distinct = values.iter().collect::<std::collections::BTreeSet<_>>().len();
    let chars = values.iter().map(|v| v.chars().count()).sum::<usize>() / values.len();
    let longest = values.iter().map(|v| v.split_whitespace().count()).max().unwrap_or(0);
    let short = chars <= CATEGORY_MAX_CHARS && longest <= CATEGORY_MAX_WORDS;
    match short && (distinct <= super::MAX_ENTITIES || 2 * distinct <= rows) {
        true => Kind::Category,
        false => Kind::Text,
    }
}

/// A header's words, lower-cased: split at anything not a letter or digit and at camelCase
/// (`customerId` → customer, id).
pub fn header_words(header: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut after_lower = false;
    for c in header.chars() {
        if !c.is_alphanumeric() {
            after_lower = false;
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && after_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        after_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// A header that names a time period (`quarter`, `order_month`), not a rate over one
/// (`hours_per_week`).
fn period_header(words: &[String]) -> bool {
    words.iter().any(|w| PERIOD_WORDS.contains(&w.as_str())) && !words.iter().any(|w| w == "per")
}

fn is_id_header(header: &str, words: &[String]) -> bool {
    ID_HEADERS.contains(&header.trim().to_lowercase().as_str())
        || words.last().is_some_and(|w| matches!(w.as_str(), "id" | "uuid" | "guid"))
}

/// Integers, all distinct, most of them one more than the one before once sorted: row numbers.
fn consecutive_integers(values: &[&str]) -> bool {
    let Some(mut numbers) = values.iter().map(|v| v.parse::<i64>().ok()).collect::<Option<Vec<i64>>>() else {
        return false;
    };
    numbers.sort_unstable();
    let steps: Vec<i64> = numbers.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    !steps.is_empty()
        && steps.iter().all(|&s| s > 0)
        && 5 * steps.iter().filter(|&&s| s == 1).count() >= 4 * steps.len()
}

fn is_flag(words: &[String]) -> bool {
    let first = words.first().map(String::as_str).unwrap_or_default();
    FLAG_OPENINGS.contains(&first)
        || words.iter().any(|w| FLAG_WORDS.contains(&w.as_str()))
        || words.last().is_some_and(|w| w.len() >= 5 && w.ends_with("ed"))
}

pub fn is_email(value: &str) -> bool {
    let value = value.trim();
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && !value.contains(char::is_whitespace)
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Seven to fifteen digits with the separators people write phone numbers with (and a leading
/// `+`), and at least one of them: a bare run of digits is a number.
pub fn is_phone(value: &str) -> bool {
    let value = value.trim();
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.' | '+'));
    let plus_first = !value.get(1..).is_some_and(|rest| rest.contains('+'));
    (7..=15).contains(&digits) && allowed && plus_first && digits < value.chars().count()
}

/// Whether a yes/no cell says yes.
pub fn is_yes(value: &str) -> bool {
    matches!(value.trim().to_lowercase().as_str(), "yes" | "y" | "true" | "1")
}

/// Whether number column `c` is an amount whose total means something (revenue, units), not a
/// level (age, a score, a price, a percentage).
pub fn is_additive(table: &Table, c: usize) -> bool {
    let level = header_words(&table.headers[c]).iter().any(|w| LEVEL_WORDS.contains(&w.as_str()));
    !level && !table::values(table, c).iter().any(|v| v.contains('%'))
}

/// What one row is, from its id column's header: `respondent_id` → respondent; none for a bare
/// `id`.
pub fn row_noun(id_header: &str) -> Option<String> {
    let words: Vec<String> = header_words(id_header)
        .into_iter()
        .filter(|w| !matches!(w.as_str(), "id" | "uuid" | "guid" | "no" | "nr"))
        .collect();
    match words.as_slice() {
        [word] if word.chars().all(char::is_alphabetic) => Some(word.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(header: &str, values: &[&str]) -> Kind {
        kind_of(header, values, values.len())
    }

    #[test]
    fn ids_are_read_from_their_header_or_their_run_of_numbers() {
        for header in ["id", "respondent_id", "customerId", "#", "No", "respondent", "Order ID"] {
            assert_eq!(kind(header, &["1", "2", "3"]), Kind::Id, "{header}");
        }
        assert_eq!(kind("order", &["1001", "1003", "1002", "1004"]), Kind::Id);
        assert_eq!(kind("order", &["5", "40", "12"]), Kind::Number, "not a run: a measure");
        assert_eq!(kind("units", &["1", "2", "3", "4"]), Kind::Number, "no id-like header");
        assert_eq!(kind("paid", &["10", "20"]), Kind::Number, "paid does not end in a word id");
    }

    #[test]
    fn every_kind_is_read_from_its_values() {
        assert_eq!(kind("revenue", &["1,200", "$48000", "12.5%"]), Kind::Number);
        assert_eq!(kind("subscribed", &["yes", "No", "YES"]), Kind::YesNo);
        assert_eq!(kind("churned", &["1", "0", "1"]), Kind::YesNo);
        assert_eq!(kind("is_active", &["0", "1"]), Kind::YesNo);
        assert_eq!(kind("visits", &["1", "0", "1"]), Kind::Number, "1/0 without a flag header");
        assert_eq!(kind("hours_per_week", &["40", "38"]), Kind::Number, "a rate over a period, not a period");
        assert_eq!(kind("number_of_children", &["0", "1", "2", "3"]), Kind::Number);
        assert_eq!(kind("signup", &["2024-03-01", "03/01/2024", "March 5, 2024"]), Kind::Date);
        assert_eq!(kind("quarter", &["Q1", "Q2"]), Kind::Period);
        assert_eq!(kind("when", &["2024-Q1", "Jan", "March 2024", "2024-03"]), Kind::Period);
        assert_eq!(kind("year", &["2023", "2024"]), Kind::Period, "a year is never summed");
        assert_eq!(kind("contact", &["a@x.com", " B@Y.org "]), Kind::Email);
        assert_eq!(kind("phone", &["+1 (555) 010-0100", "555 0100 22"]), Kind::Phone);
        assert_eq!(kind("contact", &["555-010-0100", "+44 20 7946 0958"]), Kind::Phone);
        assert_eq!(kind("region", &["North", "South", "North"]), Kind::Category);
        let comments = ["The app crashes when I open the camera", "Love it, but it needs a dark mode please"];
        assert_eq!(kind("comment", &comments), Kind::Text);
        assert_eq!(kind("empty", &[]), Kind::Text);
    }

    #[test]
    fn levels_are_not_added_up_and_rows_are_named_after_their_id() {
        let table = Table {
            headers: vec!["age".into(), "unit_price".into(), "revenue".into(), "growth".into()],
            rows: vec![vec!["30".into(), "2.5".into(), "100".into(), "5%".into()]],
        };
        let additive: Vec<bool> = (0..4).map(|c| is_additive(&table, c)).collect();
        assert_eq!(additive, [false, false, true, false]);
        assert_eq!(row_noun("respondent_id").as_deref(), Some("respondent"));
        assert_eq!(row_noun("customerId").as_deref(), Some("customer"));
        assert_eq!(row_noun("id"), None);
        assert_eq!(header_words("customerId"), ["customer", "id"]);
        assert!(is_yes("Yes") && is_yes("1") && !is_yes("no"));
    }
}
