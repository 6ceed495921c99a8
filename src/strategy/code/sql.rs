//! An SQL answer is run before it is sent: the model builds a tiny database for the brief's
//! tables (rows the query must keep, rows it must leave out, a tie), the query runs on it in
//! SQLite in-process, an error goes back to the model with SQLite's message, and the answer shows
//! the sample rows and what the query returned. SQLite cannot reach the network, and here it
//! cannot attach files, grow past a heap limit or run past its time, so no sandbox is needed.
//! A brief that names another dialect keeps its dialect: the query is tried, never rewritten
//! into SQLite's.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use rusqlite::Connection;
use rusqlite::limits::Limit;

use super::MAX_BRIEF_CHARS;
use super::checks::fenced_code;
use super::naming::code_artifact;
use super::sql_text::{finished_statements, in_sqlite_types, last_query_statement, sql_blocks};
use crate::engine::{Capability, EngineError, FinishReason};
use crate::protocol::{Brief, Phase};
use crate::strategy::compose::{Ask, Draft, Writer, check};
use crate::strategy::prompt;
use crate::strategy::words::number_word;

/// How long SQLite may work on the sample data and the query, each.
const SQL_TIME: Duration = Duration::from_secs(2);
const SQL_HEAP_BYTES: u64 = 64 * 1024 * 1024;
/// Result rows shown in the answer.
const SHOWN_ROWS: usize = 20;
const SAMPLE_TOKENS: usize = 700;

/// Runs the query of `draft`'s file on sample data for the brief and repairs what SQLite rejects.
pub(super) async fn with_sample_run(
    brief: &Brief,
    mut draft: Draft,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    // A model below Prose cannot write sample rows that test anything (see `tested`).
    if writer.capability() == Capability::Basic {
        return Ok(draft);
    }
    let Some(at) = draft.artifacts.iter().position(|a| a.filename.is_some()) else { return Ok(draft) };
    let written = draft.artifacts[at].content.trim_end().to_string();
    let other_dialect = other_dialect(brief);
    // A file that builds and fills its own tables before the query brings its own sample data:
    // it is run as it is, and the query goes out on its own, the rows beside it.
    let own = other_dialect.is_none().then(|| own_sample(&written)).flatten();
    let first_query = match &own {
        Some(own) => own.query.clone(),
        None => last_query_statement(&written).unwrap_or_else(|| written.clone()),
    };
    let sample = match own.as_ref().filter(|own| own.fills_every_table) {
        Some(own) => Some(own.setup.clone()),
        None => sample_data(brief, &first_query, writer).await?,
    };
    let limit = asked_row_limit(brief);
    let Some(sample) = sample else {
        draft.checks.push(check("code:sql_runs", false, "no sample database could be written to try the query on"));
        if let Some(n) = limit {
            draft.checks.push(row_limit_check(&first_query, n));
        }
        return Ok(draft);
    };
    if let Err(err) = run_query(&sample, "SELECT 1") {
        tracing::info!(error = %err, "the sample database did not build");
        draft.checks.push(check(
            "code:sql_runs",
            false,
            format!("the sample database for trying it did not build ({err})"),
        ));
        if let Some(n) = limit {
            draft.checks.push(row_limit_check(&first_query, n));
        }
        return Ok(draft);
    }
    // What is wrong with a query, in words for its repair: SQLite's error (only where SQLite's
    // dialect is the one asked for), then a "top n" brief's query that returns every row.
    let problem = |query: &str, result: &Result<QueryResult, String>| -> Option<String> {
        let error = match (result, other_dialect) {
            (Err(error), None) => Some(format!("This query fails in SQLite with: {error}.{}", portability_hint(error))),
            _ => None,
        };
        let unlimited = limit.filter(|&n| !limits_rows(query, n)).map(|n| {
            format!(
                "The brief asks for the top {n}, but this query returns every row: it must end with `LIMIT {n}` \
                 (or its dialect's equivalent) after the ORDER BY."
            )
        });
        let both: Vec<String> = error.into_iter().chain(unlimited).collect();
        (!both.is_empty()).then(|| both.join("\n\n"))
    };
    let rank = |query: &str, result: &Result<QueryResult, String>| {
        (result.is_ok() || other_dialect.is_some(), limit.is_none_or(|n| limits_rows(query, n)))
    };
    let mut query = first_query.clone();
    let mut result = run_query(&sample, &query);
    let repairs = match brief.phase {
        Phase::Prototype => 1,
        Phase::Final => 2,
    };
    for _ in 0..repairs {
        let Some(wrong) = problem(&query, &result) else { break };
        let Some(fixed) = repair(brief, &query, &sample, &wrong, writer).await? else { break };
        let fixed_result = run_query(&sample, &fixed);
        if rank(&fixed, &fixed_result) > rank(&query, &result) {
            (query, result) = (fixed, fixed_result);
        }
    }
    // A file split from its own data goes out split only when the query ran; the data then
    // goes beside it as the sample.
    let sent = match (&own, &result) {
        (Some(_), Err(_)) => written.clone(),
        _ => query.clone(),
    };
    if sent != written {
        draft.text = draft.text.replace(&written, sent.trim_end());
        draft.artifacts[at] =
            code_artifact(&brief.title, draft.artifacts[at].filename.as_deref().unwrap_or("query.sql"), "sql", &sent);
    }
    if let Some(n) = limit {
        draft.checks.push(row_limit_check(&query, n));
    }
    match (&result, other_dialect) {
        (Ok(table), _) => {
            // No rows back from rows written to test it shows nothing, and says so.
            draft.checks.push(match table.rows {
                0 => check(
                    "code:sql_runs",
                    false,
                    "runs in SQLite, but returns no rows on the sample data, so the sample shows nothing",
                ),
                rows => {
                    check("code:sql_runs", true, format!("runs in SQLite on a sample database and returns {rows} rows"))
                }
            });
            draft.text.push_str(&format!(
                "\n\n## Tried on sample data\n\nWe ran the query in SQLite on this sample database before sending:\n\n```sql\n{}\n```\n\nIt returns:\n\n{}\n",
                sample.trim_end(),
                table.markdown
            ));
            draft.artifacts.push(code_artifact("Sample data", "sample_data.sql", "sql", &sample));
            draft.note = Some(match table.rows {
                0 => "The query was run on a sample database in SQLite before sending, but it returned no rows there, so that run shows nothing yet.".to_string(),
                rows => format!(
                    "The query was run on a sample database in SQLite before sending ({rows} rows back; the answer shows them)."
                ),
            });
        }
        // Another dialect's query need not run in SQLite; failing there says nothing about it.
        (Err(err), Some(dialect)) => tracing::info!(error = %err, dialect, "not SQLite; the query was not shown run"),
        (Err(err), None) => {
            draft.checks.push(check("code:sql_runs", false, format!("SQLite rejects it on a sample database: {err}")));
        }
    }
    Ok(draft)
}

/// The dialect the brief asks for when it is not SQLite's.
fn other_dialect(brief: &Brief) -> Option<&'static str> {
    let text = format!("{} {} {:?}", brief.title, brief.description, brief.requirements).to_lowercase();
    if text.contains("sqlite") {
        return None;
    }
    [
        ("postgres", "PostgreSQL"),
        ("mysql", "MySQL"),
        ("sql server", "SQL Server"),
        ("t-sql", "SQL Server"),
        ("oracle", "Oracle"),
        ("bigquery", "BigQuery"),
        ("snowflake", "Snowflake"),
    ]
    .into_iter()
    .find(|(needle, _)| text.contains(needle))
    .map(|(_, name)| name)
}

/// An SQL file split into the statements that build its data and the query after them.
#[derive(Debug)]
struct OwnSample {
    setup: String,
    query: String,
    /// Every table it creates has rows: the data can try the query.
    fills_every_table: bool,
}

/// `file` run in SQLite statement by statement: its last statement that returns rows is the
/// query, the rest builds the data. `None` when SQLite cannot run it all, or it has no query or
/// no other statement.
fn own_sample(file: &str) -> Option<OwnSample> {
    use rusqlite::fallible_iterator::FallibleIterator;
    let db = limited_connection().ok()?;
    let mut batch = rusqlite::Batch::new(&db, file);
    let mut query = None;
    let mut statements = 0;
    while let Some(mut statement) = batch.next().ok()? {
        statements += 1;
        let text = statement.expanded_sql()?;
        match statement.column_count() {
            0 => {
                statement.raw_execute().ok()?;
            }
            _ => {
                let mut rows = statement.raw_query();
                while rows.next().ok()?.is_some() {}
                query = Some(text);
            }
        }
    }
    // The statement's text, with the comment above it and its semicolon.
    let query = query?.trim().trim_end_matches(';').trim_end().to_string();
    let at = file.rfind(&query)?;
    let after = file[at + query.len()..].trim_start().trim_start_matches(';');
    let setup = format!("{}{after}", &file[..at]).trim().trim_end_matches(';').trim_end().to_string();
    if statements < 2 || setup.is_empty() || !setup.to_lowercase().contains("insert") {
        return None;
    }
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .ok()?;
    let filled = |table: &String| {
        db.query_row(&format!("SELECT count(*) > 0 FROM \"{}\"", table.replace('"', "\"\"")), [], |row| row.get(0))
            .unwrap_or(false)
    };
    let fills_every_table = !tables.is_empty() && tables.iter().all(filled);
    Some(OwnSample { setup: format!("{setup};"), query: format!("{query};"), fills_every_table })
}

fn row_limit_check(query: &str, n: usize) -> crate::protocol::Check {
    match limits_rows(query, n) {
        true => check("code:sql_row_limit", true, format!("returns at most the top {n} rows, as the brief asks")),
        false => check(
            "code:sql_row_limit",
            false,
            format!("the brief asks for the top {n}, but the query has no LIMIT {n} and returns every row"),
        ),
    }
}

/// The rows a "top 5 customers" or "the 3 highest" brief asks the query to stop at.
fn asked_row_limit(brief: &Brief) -> Option<usize> {
    static ASKED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\btop[ -](\w+)\b|\b(\w+) (?:highest|largest|biggest|best|most|lowest|smallest)\b")
            .expect("valid pattern")
    });
    let text = format!("{} {}", brief.title, brief.description).to_lowercase();
    ASKED.captures_iter(&text).find_map(|c| c.get(1).or(c.get(2)).and_then(|n| number_word(n.as_str())))
}

/// Whether `query` stops at `n` rows: `LIMIT n`, `FETCH FIRST n ROWS` or `TOP n`.
fn limits_rows(query: &str, n: usize) -> bool {
    let pattern = format!(r"(?i)\blimit\s+{n}\b|\bfetch\s+(?:first|next)\s+{n}\s+rows?\b|\btop\s*\(?\s*{n}\b");
    Regex::new(&pattern).is_ok_and(|limit| limit.is_match(query))
}

async fn sample_data(brief: &Brief, query: &str, writer: &mut Writer<'_>) -> Result<Option<String>, EngineError> {
    let user = format!(
        "# {}\n\n{}\n\nThe query:\n\n```sql\n{query}\n```\n\nWrite SQLite statements that create the tables this brief \
         describes (CREATE TABLE) and fill them (INSERT) with 8 to 12 rows that test the query: rows it must return, \
         rows it must leave out, and a tie. Output only the SQL.",
        brief.title,
        prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS),
    );
    let ask = Ask::new("You are an expert SQL developer who writes precise test data.", user, SAMPLE_TOKENS)
        .prefix("```sql\nCREATE TABLE")
        .code()
        .share(0.5);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let (sample, closed) = sql_blocks(&reply.text);
    let sample = match closed || reply.finish == FinishReason::Eos {
        true => sample,
        false => finished_statements(&sample),
    };
    Ok(sample.to_lowercase().contains("insert").then(|| in_sqlite_types(&sample)))
}

async fn repair(
    brief: &Brief,
    query: &str,
    sample: &str,
    problem: &str,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let user = format!(
        "# {}\n\n{}\n\nThe tables:\n\n```sql\n{sample}\n```\n\nThe query:\n\n```sql\n{query}\n```\n\n{problem}\n\n\
         Write the corrected query. Output only the SQL.",
        brief.title,
        prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS),
    );
    let ask = Ask::new("You are an expert SQL developer. You fix queries with small, careful changes.", user, 400)
        .prefix("```sql\n")
        .code()
        .share(0.6);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let (fixed, _) = fenced_code(&reply.text);
    Ok((!fixed.trim().is_empty()).then_some(fixed))
}

/// What a query returned, as a Markdown table.
#[derive(Debug)]
struct QueryResult {
    rows: usize,
    markdown: String,
}

/// Builds `sample` in a fresh in-memory database and runs `query` on it. Nothing outside the
/// database can be touched: no attached files (which is also how `VACUUM INTO` writes), no
/// extensions (off by default), a heap cap, and a time limit through the progress handler.
fn run_query(sample: &str, query: &str) -> Result<QueryResult, String> {
    let db = limited_connection().map_err(|e| e.to_string())?;
    db.execute_batch(sample).map_err(|e| format!("sample data: {e}"))?;
    let query = query.trim().trim_end_matches(';');
    let mut statement = db.prepare(query).map_err(|e| where_it_failed(&e, query))?;
    let columns: Vec<String> = statement.column_names().map(String::from).collect();
    let mut rows = statement.query([]).map_err(|e| e.to_string())?;
    let mut shown: Vec<Vec<String>> = Vec::new();
    let mut count = 0;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        count += 1;
        if shown.len() < SHOWN_ROWS {
            shown.push((0..columns.len()).map(|i| cell(row.get_ref(i))).collect());
        }
    }
    let mut markdown = format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    for row in &shown {
        markdown.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if count > shown.len() {
        markdown.push_str(&format!("\n… and {} more rows.\n", count - shown.len()));
    }
    if count == 0 {
        markdown = format!("no rows (columns: {}).", columns.join(", "));
    }
    Ok(QueryResult { rows: count, markdown })
}

/// A fresh in-memory database that can touch no file, grow past its heap cap or run past its time,
/// and that takes rows in any order.
fn limited_connection() -> rusqlite::Result<Connection> {
    let mut db = Connection::open_in_memory()?;
    db.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    // Sample rows need not be entered in foreign-key order (this SQLite enforces them by default).
    db.execute_batch(&format!("PRAGMA hard_heap_limit = {SQL_HEAP_BYTES}; PRAGMA foreign_keys = OFF;"))?;
    let started = Instant::now();
    db.progress_handler(10_000, Some(move || started.elapsed() > SQL_TIME))?;
    Ok(db)
}

/// What to use instead of a function SQLite lacks, when SQLite stopped at it: the portable form,
/// which runs in PostgreSQL and MySQL as well.
fn portability_hint(error: &str) -> &'static str {
    const HINTS: &[(&str, &str)] = &[
        (
            "EXTRACT(",
            " SQLite has no EXTRACT(): filter on a half-open date range instead (for a year: `column >= 'YEAR-01-01' AND column < 'NEXT-YEAR-01-01'`), which works in every dialect.",
        ),
        (
            "DATE_TRUNC(",
            " SQLite has no DATE_TRUNC(): compare with a date range, or group by `substr(column, 1, 7)` for months.",
        ),
        ("ILIKE", " SQLite has no ILIKE: use `LOWER(column) LIKE LOWER(pattern)`."),
        ("::", " SQLite has no `::` casts: use `CAST(value AS type)`."),
    ];
    let upper = error.to_uppercase();
    HINTS.iter().find(|(marker, _)| upper.contains(marker)).map_or("", |(_, hint)| hint)
}

/// SQLite's message, with the line it stopped at rather than the whole query (which a repair
/// prompt already shows): "near "FROM": syntax error, at `EXTRACT(YEAR FROM o.created_at) = 2025`".
fn where_it_failed(error: &rusqlite::Error, query: &str) -> String {
    match error {
        rusqlite::Error::SqlInputError { msg, offset, .. } => {
            let at = usize::try_from(*offset).unwrap_or(0).min(query.len());
            let at = (0..=at).rev().find(|&i| query.is_char_boundary(i)).unwrap_or(0);
            let start = query[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = query[at..].find('\n').map_or(query.len(), |i| at + i);
            format!("{msg}, at `{}`", query[start..end].trim())
        }
        other => other.to_string(),
    }
}

fn cell(value: rusqlite::Result<rusqlite::types::ValueRef<'_>>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        Ok(ValueRef::Null) => "NULL".into(),
        Ok(ValueRef::Integer(i)) => i.to_string(),
        Ok(ValueRef::Real(r)) => format!("{}", (r * 100.0).round() / 100.0),
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).replace('|', "\\|"),
        Ok(ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
        Err(_) => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "CREATE TABLE customers (id INTEGER, name TEXT);\nINSERT INTO customers VALUES (1, 'Ana'), (2, 'Ben');\nCREATE TABLE orders (id INTEGER, customer_id INTEGER, amount REAL);\nINSERT INTO orders VALUES (1, 1, 10.5), (2, 1, 4.5), (3, 2, 3);";

    #[test]
    fn a_query_runs_on_the_sample_and_its_rows_are_shown() {
        let query = "SELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY total DESC;";
        let result = run_query(SAMPLE, query).unwrap();
        assert_eq!(result.rows, 2);
        assert!(
            result.markdown.starts_with("| name | total |\n|---|---|\n| Ana | 15 |\n| Ben | 3 |"),
            "{}",
            result.markdown
        );
        let out_of_order = "CREATE TABLE c (id INTEGER PRIMARY KEY);\nCREATE TABLE o (id INTEGER, c_id INTEGER REFERENCES c(id));\nINSERT INTO o VALUES (1, 7);\nINSERT INTO c VALUES (7);";
        assert_eq!(run_query(out_of_order, "SELECT * FROM o").unwrap().rows, 1, "rows in any order");
        let extract = run_query(SAMPLE, "SELECT name\nFROM customers\nWHERE EXTRACT(YEAR FROM id) = 2025").unwrap_err();
        assert_eq!(extract, "near \"FROM\": syntax error, at `WHERE EXTRACT(YEAR FROM id) = 2025`");
        let error = run_query(SAMPLE, "SELECT nme FROM customers").unwrap_err();
        assert!(error.contains("no such column"), "{error}");
    }

    #[test]
    fn a_top_n_brief_needs_a_query_that_stops_at_n_rows() {
        let brief = |text: &str| {
            let json = serde_json::json!({"task_id": "t", "title": "SQL query", "description": text, "category": "programming-automation", "mode": "final"});
            crate::protocol::parse_brief(json.to_string().as_bytes()).unwrap()
        };
        assert_eq!(asked_row_limit(&brief("I want the top 5 customers by revenue.")), Some(5));
        assert_eq!(asked_row_limit(&brief("List the three highest-paid employees.")), Some(3));
        assert_eq!(asked_row_limit(&brief("Total revenue per country, highest first.")), None);
        assert!(limits_rows("SELECT name FROM t ORDER BY total DESC\nLIMIT 5;", 5));
        assert!(limits_rows("SELECT TOP 5 name FROM t", 5));
        assert!(limits_rows("SELECT name FROM t FETCH FIRST 5 ROWS ONLY", 5));
        assert!(!limits_rows("SELECT name FROM t ORDER BY total DESC LIMIT 50", 5));
        assert!(!limits_rows("SELECT name FROM t ORDER BY total DESC", 5));
    }

    #[test]
    fn cut_off_sample_data_keeps_its_finished_statements_and_rows() {
        let sample = "CREATE TABLE t (id INTEGER);\nINSERT INTO t VALUES\n(1),\n(2),\n(3";
        assert_eq!(finished_statements(sample), "CREATE TABLE t (id INTEGER);\nINSERT INTO t VALUES\n(1),\n(2);");
        assert_eq!(run_query(&finished_statements(sample), "SELECT count(*) FROM t").unwrap().rows, 1);
        assert_eq!(
            finished_statements("CREATE TABLE t (id INTEGER);\nCREATE TABLE u (i"),
            "CREATE TABLE t (id INTEGER);"
        );
    }

    #[test]
    fn a_file_with_its_own_data_splits_into_the_data_and_the_query() {
        let file = format!("-- Test data\n{SAMPLE}\n\n-- The query\nSELECT name FROM customers\nORDER BY name;");
        let own = own_sample(&file).unwrap();
        assert!(own.fills_every_table);
        assert_eq!(own.query, "-- The query\nSELECT name FROM customers\nORDER BY name;");
        assert!(
            own.setup.starts_with("-- Test data\nCREATE TABLE customers") && !own.setup.contains("SELECT"),
            "{}",
            own.setup
        );
        assert!(own.setup.ends_with("(3, 2, 3);"), "{}", own.setup);
        assert_eq!(run_query(&own.setup, &own.query).unwrap().rows, 2);
        let empty_orders =
            "CREATE TABLE c (id INTEGER);\nINSERT INTO c VALUES (1);\nCREATE TABLE o (id INTEGER);\nSELECT * FROM c;";
        assert!(!own_sample(empty_orders).unwrap().fills_every_table);
        assert!(own_sample("SELECT 1;").is_none(), "a query alone brings no data");
        assert!(own_sample("CREATE TABLE t (id SERIAL) WITH (fillfactor = 70);\nSELECT 1;").is_none());
    }

    #[test]
    fn serial_keys_number_their_rows_in_sqlite() {
        let sample = in_sqlite_types(
            "CREATE TABLE c (id SERIAL PRIMARY KEY, name TEXT);\nINSERT INTO c (name) VALUES ('Ana'), ('Ben');",
        );
        assert!(sample.starts_with("CREATE TABLE c (id INTEGER PRIMARY KEY,"), "{sample}");
        assert_eq!(run_query(&sample, "SELECT id FROM c WHERE id = 2").unwrap().rows, 1);
    }

    #[test]
    fn sql_cannot_reach_files_or_run_forever() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stolen.db");
        let attach = format!("ATTACH DATABASE '{}' AS x", target.display());
        assert!(run_query(SAMPLE, &attach).is_err());
        let vacuum = format!("VACUUM INTO '{}'", target.display());
        assert!(run_query(SAMPLE, &vacuum).is_err());
        assert!(!target.exists(), "nothing is written outside the database");
        let started = Instant::now();
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        assert!(run_query(SAMPLE, endless).is_err());
        assert!(started.elapsed() < SQL_TIME + Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
