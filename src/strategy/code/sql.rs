//! An SQL answer is run before it is sent: the model builds a tiny database for the brief's
//! tables (rows the query must keep, rows it must leave out, a tie), the query runs on it in
//! SQLite in-process, an error goes back to the model with SQLite's message, and the answer shows
//! the sample rows and what the query returned. SQLite cannot reach the network, and here it
//! cannot attach files, grow past a heap limit or run past its time, so no sandbox is needed.
//! A brief that names another dialect keeps its dialect: the query is tried, never rewritten
//! into SQLite's.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::limits::Limit;

use super::MAX_BRIEF_CHARS;
use super::checks::fenced_code;
use super::naming::code_artifact;
use crate::engine::{Capability, EngineError, FinishReason};
use crate::protocol::{Brief, Phase};
use crate::strategy::compose::{Ask, Draft, Writer, check};
use crate::strategy::prompt;

/// How long SQLite may work on the sample data and the query, each.
const SQL_TIME: Duration = Duration::from_secs(2);
const SQL_HEAP_BYTES: u64 = 64 * 1024 * 1024;
/// Result rows shown in the answer.
const SHOWN_ROWS: usize = 20;
const SAMPLE_TOKENS: usize = 520;

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
    let first_query = draft.artifacts[at].content.trim_end().to_string();
    let other_dialect = other_dialect(brief);
    let Some(sample) = sample_data(brief, &first_query, writer).await? else {
        draft.checks.push(check("code:sql_runs", false, "no sample database could be written to try the query on"));
        return Ok(draft);
    };
    if let Err(err) = run_query(&sample, "SELECT 1") {
        tracing::info!(error = %err, "the sample database did not build");
        draft.checks.push(check(
            "code:sql_runs",
            false,
            format!("the sample database for trying it did not build ({err})"),
        ));
        return Ok(draft);
    }
    let mut query = first_query.clone();
    let mut result = run_query(&sample, &query);
    let repairs = match (brief.phase, other_dialect) {
        (_, Some(_)) => 0,
        (Phase::Prototype, None) => 1,
        (Phase::Final, None) => 2,
    };
    for _ in 0..repairs {
        let Err(error) = &result else { break };
        let Some(fixed) = repair(brief, &query, &sample, error, writer).await? else { break };
        let fixed_result = run_query(&sample, &fixed);
        if fixed_result.is_ok() {
            query = fixed;
        }
        result = fixed_result;
        if result.is_ok() {
            break;
        }
    }
    if query != first_query {
        draft.text = draft.text.replace(&first_query, query.trim_end());
        draft.artifacts[at] =
            code_artifact(&brief.title, draft.artifacts[at].filename.as_deref().unwrap_or("query.sql"), "sql", &query);
    }
    match (&result, other_dialect) {
        (Ok(table), _) => {
            draft.checks.push(check(
                "code:sql_runs",
                true,
                format!("runs in SQLite on a sample database and returns {} rows", table.rows),
            ));
            draft.text.push_str(&format!(
                "\n\n## Tried on sample data\n\nWe ran the query in SQLite on this sample database before sending:\n\n```sql\n{}\n```\n\nIt returns:\n\n{}\n",
                sample.trim_end(),
                table.markdown
            ));
            draft.artifacts.push(code_artifact("Sample data", "sample_data.sql", "sql", &sample));
            draft.note = Some(format!(
                "The query was run on a sample database in SQLite before sending ({} rows back; the answer shows them).",
                table.rows
            ));
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
    let (sample, closed) = fenced_code(&reply.text);
    let sample = match closed || reply.finish == FinishReason::Eos {
        true => sample,
        // Cut off: the statements that were finished.
        false => sample.rsplit_once(";\n").map_or(String::new(), |(done, _)| format!("{done};")),
    };
    Ok(sample.contains("INSERT").then_some(sample))
}

async fn repair(
    brief: &Brief,
    query: &str,
    sample: &str,
    error: &str,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let user = format!(
        "# {}\n\n{}\n\nThe tables:\n\n```sql\n{sample}\n```\n\nThis query fails in SQLite with: {error}\n\n```sql\n{query}\n```\n\n\
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
    let mut db = Connection::open_in_memory().map_err(|e| e.to_string())?;
    db.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(|e| e.to_string())?;
    db.execute_batch(&format!("PRAGMA hard_heap_limit = {SQL_HEAP_BYTES};")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    db.progress_handler(10_000, Some(move || started.elapsed() > SQL_TIME)).map_err(|e| e.to_string())?;
    db.execute_batch(sample).map_err(|e| format!("sample data: {e}"))?;
    let query = query.trim().trim_end_matches(';');
    let mut statement = db.prepare(query).map_err(|e| e.to_string())?;
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
        let error = run_query(SAMPLE, "SELECT nme FROM customers").unwrap_err();
        assert!(error.contains("no such column"), "{error}");
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
