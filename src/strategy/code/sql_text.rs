//! Reading SQL as a model writes it: every fenced block of a reply, the statements finished
//! before a reply was cut off, the query at the end of a file that also carries rows, and
//! PostgreSQL's auto-numbered keys in SQLite's terms. Text only; `sql` runs what this reads.

use std::sync::LazyLock;

use regex::Regex;

use super::checks::fenced_code;

/// Sample data with PostgreSQL's auto-numbered keys as SQLite's: a `SERIAL PRIMARY KEY` is no
/// row id there, so rows inserted without ids would all get NULL and join nothing.
pub(super) fn in_sqlite_types(sample: &str) -> String {
    static SERIAL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(?:big|small)?serial\s+primary\s+key\b").expect("valid pattern"));
    SERIAL.replace_all(sample, "INTEGER PRIMARY KEY").into_owned()
}

/// Every fenced block of a reply, joined, and whether the last was closed: models put the tables
/// in one block and their rows in the next.
pub(super) fn sql_blocks(reply: &str) -> (String, bool) {
    let mut blocks: Vec<String> = Vec::new();
    let mut rest = reply;
    let mut closed = true;
    while let Some(start) = rest.find("```") {
        let (block, block_closed) = fenced_code(&rest[start..]);
        if !block.trim().is_empty() {
            blocks.push(block);
        }
        closed = block_closed;
        let after_open = start + 3;
        match rest[after_open..].find("```") {
            Some(end) if block_closed => rest = &rest[after_open + end + 3..],
            _ => break,
        }
    }
    (blocks.join("\n\n"), closed)
}

/// The last statement of a file that does more than query, when SQLite cannot run the rest
/// (rows for tables it never creates): the `SELECT` or `WITH` that starts a line after a
/// finished statement, with the comments above it.
pub(super) fn last_query_statement(file: &str) -> Option<String> {
    let lines: Vec<&str> = file.lines().collect();
    let starts = |line: &str| {
        let lower = line.trim_start().to_lowercase();
        !line.starts_with([' ', '\t']) && (lower.starts_with("select") || lower.starts_with("with"))
    };
    let mut at = lines.iter().rposition(|l| starts(l))?;
    let before = lines[..at].iter().rev().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
    if !before.is_some_and(|l| l.trim_end().ends_with(';')) {
        return None;
    }
    while at > 0 && lines[at - 1].trim_start().starts_with("--") {
        at -= 1;
    }
    Some(lines[at..].join("\n").trim().to_string())
}

/// Sample data cut off mid-statement, up to what was finished: whole statements, and the whole
/// rows of a many-row `INSERT` that was cut off (models put all of a table's rows in one).
pub(super) fn finished_statements(sample: &str) -> String {
    let (done, rest) = match sample.rfind(";\n") {
        Some(at) => (&sample[..=at], &sample[at + 1..]),
        None => ("", sample),
    };
    let rows = rest.trim_start().starts_with("INSERT").then(|| rest.rfind("),\n")).flatten();
    match rows {
        Some(at) => format!("{done}{};", &rest[..=at]).trim().to_string(),
        None => done.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_data_is_read_from_every_block_of_the_reply() {
        let reply =
            "```sql\nCREATE TABLE t (id INTEGER);\n```\n\n```sql\nINSERT INTO t VALUES (1);\n```\n\nIt works by…";
        assert_eq!(sql_blocks(reply), ("CREATE TABLE t (id INTEGER);\n\nINSERT INTO t VALUES (1);".to_string(), true));
        assert_eq!(sql_blocks("```sql\nCREATE TABLE t (id"), ("CREATE TABLE t (id".to_string(), false));
    }

    #[test]
    fn the_query_is_the_last_statement_of_a_file_of_rows_and_a_query() {
        let file = "-- Test data\nINSERT INTO t VALUES\n(1),\n(2);\n\n-- The query\nSELECT id\nFROM t;";
        assert_eq!(last_query_statement(file).as_deref(), Some("-- The query\nSELECT id\nFROM t;"));
        assert_eq!(last_query_statement("SELECT id FROM t;"), None, "a query alone is the file");
    }
}
