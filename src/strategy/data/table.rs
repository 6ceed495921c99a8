//! The table in a brief: finding a CSV block in free text, parsing it (the `csv` crate), reading
//! a cell as a number, and writing a table back as CSV.

use std::collections::BTreeSet;

/// A parsed table: headers and rows of text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The first CSV block in `text`: a header line and at least two rows with the same number of
/// comma-separated fields (two or more).
pub fn find_table(text: &str) -> Option<Table> {
    table_block(text).map(|(_, table)| table)
}

/// `text` without its table's lines: the brief's own words, which would otherwise name every
/// column (the header line) and hold every value.
pub fn text_around_table(text: &str) -> String {
    let normalised = split_lines(text);
    let lines: Vec<&str> = normalised.lines().collect();
    match table_block(text) {
        Some(((start, end), _)) => lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < start || *i > end)
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join("\n"),
        None => normalised,
    }
}

/// The CSV reader ends a record at a lone `\r` too: lines must be split the way it splits them,
/// or a block counted as two columns parses as one.
fn split_lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The first table in `text` and the range of lines it spans.
fn table_block(text: &str) -> Option<((usize, usize), Table)> {
    let text = split_lines(text);
    let lines: Vec<&str> = text.lines().collect();
    let fields = |line: &str| line.split(',').count();
    let mut start = 0;
    while start < lines.len() {
        let width = fields(lines[start]);
        let end = (start..lines.len()).take_while(|&i| fields(lines[i]) == width && width >= 2).last();
        match end {
            Some(end) if end >= start + 2 => {
                let block = lines[start..=end].join("\n");
                if let Some(table) = parse(&block) {
                    return Some(((start, end), table));
                }
                start = end + 1;
            }
            _ => start += 1,
        }
    }
    None
}

fn parse(block: &str) -> Option<Table> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(block.as_bytes());
    let headers: Vec<String> = reader.headers().ok()?.iter().map(str::to_string).collect();
    // A header of numbers is data, not a header.
    if headers.iter().any(|h| number(h).is_some()) {
        return None;
    }
    let rows: Vec<Vec<String>> = reader
        .records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect::<Vec<_>>())
        .filter(|r| r.len() == headers.len())
        .collect();
    // A quoted field can hold commas: what was counted as columns may parse as fewer.
    if headers.len() < 2 {
        return None;
    }
    // Data has at least one column of numbers; prose with commas has none.
    let has_numbers = (0..headers.len()).any(|c| rows.iter().all(|r| r.get(c).and_then(|v| number(v)).is_some()));
    (rows.len() >= 2 && has_numbers).then_some(Table { headers, rows })
}

/// A cell as a number: `1,200`, `$48000`, `12.5%`, `-3`.
pub(crate) fn number(cell: &str) -> Option<f64> {
    let cleaned: String = cell.chars().filter(|c| !matches!(c, ',' | '$' | '€' | '£' | '%' | ' ')).collect();
    cleaned.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Row `row`'s cell in column `c`, trimmed; empty where a hand-built row is short.
pub(crate) fn cell(row: &[String], c: usize) -> &str {
    row.get(c).map_or("", |v| v.trim())
}

/// Column `c`'s filled cells, trimmed.
pub(crate) fn values(table: &Table, c: usize) -> Vec<&str> {
    table.rows.iter().map(|r| cell(r, c)).filter(|v| !v.is_empty()).collect()
}

/// Distinct filled values of column `c`, in order of first appearance.
pub(crate) fn distinct(table: &Table, c: usize) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values(table, c).into_iter().filter(|v| seen.insert(*v)).map(str::to_string).collect()
}

/// `table` as CSV text (quoted where a cell needs it).
pub(crate) fn to_csv(table: &Table) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(&table.headers);
    for row in &table.rows {
        let _ = writer.write_record(row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_with_commas_is_not_a_table() {
        assert!(find_table("Hello, world.\nThis, that.\nNo numbers here, really.").is_none());
        assert!(find_table("just one line, two fields").is_none());
    }

    #[test]
    fn windows_and_old_mac_line_ends_split_rows_as_the_csv_reader_does() {
        for text in ["region,total\r\nnorth,10\r\nsouth,7\r\n", "region,total\rnorth,10\rsouth,7"] {
            let table = find_table(text).unwrap_or_else(|| panic!("no table in {text:?}"));
            assert_eq!(table.headers, ["region", "total"], "{text:?}");
            assert_eq!(table.rows, [["north", "10"], ["south", "7"]], "{text:?}");
        }
        // Lone carriage returns inside what looked like two-column lines (found by the fuzzer):
        // one column is not a table.
        assert!(find_table("{\n   \r\r4\r\r0\r\r \"et_usd\": 7,\n  \"a\"], x\n \"q\": ,{}\n").is_none());
    }

    #[test]
    fn the_text_around_a_table_is_the_question() {
        let text = "Our survey:\nid,region,age\n1,North,30\n2,South,40\nWhat is the average age per region?";
        assert_eq!(text_around_table(text), "Our survey:\nWhat is the average age per region?");
        assert_eq!(text_around_table("No table here."), "No table here.");
    }
}
