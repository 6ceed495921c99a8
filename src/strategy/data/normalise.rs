//! Writing each kind of cell one way — emails trimmed and lower-cased, phone numbers as digits
//! (a leading `+` kept), dates as ISO, numbers without thousands separators — and the duplicates
//! that only show once they are: rows that are the same record, and ids or emails that repeat.
//! Shared by the analysis (which counts them) and the cleaning (which removes or reports them).

use std::collections::{BTreeMap, BTreeSet};

use super::kinds::Kind;
use super::table::{self, Table};
use super::{Layout, Report, Topic, dates};

/// At most this many repeated values are named in a sentence.
const NAMED_REPEATS: usize = 3;

pub(crate) fn email(value: &str) -> String {
    value.trim().to_lowercase()
}

/// `+1 (555) 010-0100` → `+15550100100`.
pub(crate) fn phone(value: &str) -> String {
    let value = value.trim();
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if value.starts_with('+') { format!("+{digits}") } else { digits }
}

/// Every row's cells written the one way their column's kind is written (see the module docs);
/// a date that cannot be read is left as it is.
pub(crate) fn normalised_rows(table: &Table, kinds: &[Kind]) -> Vec<Vec<String>> {
    let day_first: Vec<bool> = (0..table.headers.len()).map(|c| dates::day_first(table::values(table, c))).collect();
    table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(c, value)| match kinds.get(c) {
                    _ if value.trim().is_empty() => value.clone(),
                    Some(Kind::Email) => email(value),
                    Some(Kind::Phone) => phone(value),
                    Some(Kind::Date) => dates::iso_date(value, day_first[c]).unwrap_or_else(|| value.clone()),
                    Some(Kind::Number) => value.replace(',', ""),
                    _ => value.clone(),
                })
                .collect()
        })
        .collect()
}

/// What makes two rows the same record: their cells trimmed, spaces collapsed, case folded.
pub(crate) fn row_key(row: &[String]) -> Vec<String> {
    row.iter().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()).collect()
}

/// Rows in an id or email column that repeat an earlier row's value.
pub(crate) struct Repeat {
    pub column: usize,
    /// Rows beyond the first with a value already seen.
    pub extra: usize,
    /// The repeated values, as normalised.
    pub values: Vec<String>,
}

/// The duplicates in `rows` (normalised): the indices of rows that repeat an earlier row whole,
/// and, among the rest, the ids and emails that repeat.
pub(crate) fn duplicates(rows: &[Vec<String>], kinds: &[Kind]) -> (BTreeSet<usize>, Vec<Repeat>) {
    let mut seen = BTreeSet::new();
    let mut repeated_rows = BTreeSet::new();
    for (i, row) in rows.iter().enumerate() {
        if row.iter().any(|c| !c.trim().is_empty()) && !seen.insert(row_key(row)) {
            repeated_rows.insert(i);
        }
    }
    let distinct: Vec<&Vec<String>> =
        rows.iter().enumerate().filter(|(i, _)| !repeated_rows.contains(i)).map(|(_, r)| r).collect();
    let repeats = (0..kinds.len())
        .filter(|&c| matches!(kinds[c], Kind::Id | Kind::Email))
        .map(|c| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for row in &distinct {
                let value = table::cell(row, c).to_lowercase();
                if !value.is_empty() {
                    *counts.entry(value).or_default() += 1;
                }
            }
            let extra = counts.values().map(|n| n - 1).sum();
            let values = counts.into_iter().filter(|(_, n)| *n > 1).map(|(v, _)| v).collect();
            Repeat { column: c, extra, values }
        })
        .collect();
    (repeated_rows, repeats)
}

/// `values`, the first few named: `a@x.com, b@y.org and 2 more`.
pub(crate) fn name_some(values: &[String]) -> String {
    let named = values.iter().take(NAMED_REPEATS).cloned().collect::<Vec<_>>().join(", ");
    match values.len().saturating_sub(NAMED_REPEATS) {
        0 => named,
        more => format!("{named} and {more} more"),
    }
}

/// The analysis's duplicate counts: a headline when there are any, a supporting line when not.
pub(crate) fn describe_duplicates(layout: &Layout, report: &mut Report) {
    let rows = normalised_rows(layout.table, &layout.kinds);
    let (repeated_rows, repeats) = duplicates(&rows, &layout.kinds);
    let count = repeated_rows.len();
    report.figures.push(format!("duplicate rows: {count}"));
    let mut parts = Vec::new();
    if count > 0 {
        parts.push(format!(
            "{count} row(s) repeat an earlier row (identical after trimming, ignoring case and writing emails, \
             phone numbers and dates one way)"
        ));
    }
    let mut columns = Vec::new();
    for repeat in &repeats {
        let header = layout.header(repeat.column);
        columns.push(header);
        report.figures.push(format!("rows repeating an earlier {header}: {}", repeat.extra));
        if repeat.extra > 0 {
            parts.push(format!(
                "{} more row(s) repeat an earlier {header} ({})",
                repeat.extra,
                name_some(&repeat.values)
            ));
        }
    }
    let found = !parts.is_empty();
    let sentence = match found {
        true => format!("Duplicates: {}.", parts.join("; ")),
        false if columns.is_empty() => "No duplicate rows.".to_string(),
        false => format!("No duplicate rows, and no repeated {}.", columns.join(" or ")),
    };
    report.finding(Topic::Duplicates, &columns, found, sentence);
    if found {
        report.next_steps.insert(
            0,
            "Remove the duplicate rows and merge the rows that share an id or email before acting on these figures."
                .into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_written_one_way() {
        assert_eq!(email("  Ann.Lee@Example.COM "), "ann.lee@example.com");
        assert_eq!(phone("+1 (555) 010-0100"), "+15550100100");
        assert_eq!(phone("555.010.0100"), "5550100100");
        assert_eq!(name_some(&["a".into(), "b".into(), "c".into(), "d".into(), "e".into()]), "a, b, c and 2 more");
    }

    #[test]
    fn duplicates_show_once_cells_are_written_one_way() {
        let table = Table {
            headers: vec!["customer_id".into(), "email".into(), "joined".into()],
            rows: vec![
                vec!["1".into(), "ann@x.com".into(), "2024-03-01".into()],
                vec!["1".into(), " ANN@x.com".into(), "03/01/2024".into()],
                vec!["2".into(), "bo@y.org".into(), "2024-03-02".into()],
                vec!["3".into(), "Bo@Y.org".into(), "2024-03-05".into()],
            ],
        };
        let kinds = [Kind::Id, Kind::Email, Kind::Date];
        let (rows, repeats) = duplicates(&normalised_rows(&table, &kinds), &kinds);
        assert_eq!(rows, BTreeSet::from([1]), "the second row is the first written another way");
        assert_eq!((repeats[0].extra, repeats[1].extra), (0, 1));
        assert_eq!(repeats[1].values, ["bo@y.org"]);
    }
}
