//! Data tasks: the numbers are computed here, in Rust, and the model only writes around them.
//! A CSV table in the brief is parsed (the `csv` crate), its columns typed, and the usual
//! questions answered exactly: totals, totals per period, and for each entity (region, product)
//! the change from the first period to the last, absolute and in percent. The model gets these
//! as verified figures and is told to use no others; the response carries the results as tables.

use std::collections::BTreeMap;

use super::compose::{Ask, Draft, Writer};
use super::{GenerationPlan, clean, prompt};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::Brief;

/// The data brief's deliverable: findings and tables computed here; the model's part is what to
/// look into next, kept only if it is the bullet list asked for, invents no number and does not
/// echo the brief (otherwise computed next steps stand in).
pub async fn write(
    brief: &Brief,
    plan: &GenerationPlan,
    analysis: &Analysis,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let messages = prompt::messages(brief, plan.requested_words, plan.target_words, None, &analysis.figures);
    let ask = Ask::new(messages[0].content.clone(), messages[1].content.clone(), plan.max_new_tokens).prefix("-");
    let mut next_steps = match writer.ask(&ask).await? {
        Some(reply) => clean::clean_output(&reply.text, reply.finish != FinishReason::Eos),
        None => String::new(),
    };
    let numbers_ok = numbers_check(&next_steps, analysis, &brief.description).passed;
    let bullets = next_steps.lines().filter(|l| l.trim_start().starts_with(['-', '*'])).count();
    if !numbers_ok || bullets < 2 || next_steps.contains("## Brief") {
        tracing::info!("the model's next steps for the data brief failed their checks; using computed ones");
        next_steps = analysis.next_steps.iter().map(|s| format!("- {s}\n")).collect();
    }
    let findings: String = analysis.findings.iter().map(|f| format!("- {f}\n")).collect();
    let text = format!(
        "## Key findings\n\n{findings}\n## What to look into next\n\n{}\n\n## Results\n\n{}",
        next_steps.trim_end(),
        analysis.tables
    );
    let mut checks = vec![numbers_check(&text, analysis, &brief.description)];
    let mut text = text;
    let mut artifacts = Vec::new();
    if asks_for_cleanup(brief)
        && let Some(table) = find_table(&brief.description)
    {
        let (cleaned, changes) = clean_table(&table);
        let csv = to_csv(&cleaned);
        text.push_str("\n\n## Cleaning\n\n");
        for change in &changes {
            text.push_str(&format!("- {change}\n"));
        }
        checks.push(crate::protocol::Check {
            name: "cleaned_csv".into(),
            passed: find_table(&csv).is_some_and(|t| t.rows.len() == cleaned.rows.len()),
            detail: format!("{} rows, {} columns, parsed back as written", cleaned.rows.len(), cleaned.headers.len()),
        });
        artifacts.push(crate::protocol::Artifact::file("Cleaned data", "cleaned.csv", "text/csv", csv));
    }
    Ok(Draft { text, checks, artifacts, complete: true, ..Draft::default() })
}

/// Whether the brief asks for its data cleaned (a clean-up task), not only read.
fn asks_for_cleanup(brief: &Brief) -> bool {
    let named = format!("{} {}", brief.task_type.as_deref().unwrap_or_default(), brief.title).to_lowercase();
    named.contains("clean") || named.contains("dedup") || named.contains("tidy")
}

/// `table` cleaned the way a buyer would by hand: empty and duplicate rows dropped, numbers
/// without thousands separators, each category spelt one way (its most common spelling).
/// Returns the table and one sentence per kind of change made.
pub fn clean_table(table: &Table) -> (Table, Vec<String>) {
    let mut changes = Vec::new();
    let mut rows: Vec<Vec<String>> =
        table.rows.iter().filter(|r| r.iter().any(|c| !c.trim().is_empty())).cloned().collect();
    let empty = table.rows.len() - rows.len();
    if empty > 0 {
        changes.push(format!("Removed {empty} empty row(s)."));
    }
    let before = rows.len();
    let mut seen = std::collections::BTreeSet::new();
    rows.retain(|r| seen.insert(r.iter().map(|c| c.trim().to_lowercase()).collect::<Vec<_>>()));
    if rows.len() < before {
        changes.push(format!("Removed {} duplicate row(s).", before - rows.len()));
    }
    for c in 0..table.headers.len() {
        let cells = || rows.iter().filter_map(|r| r.get(c)).filter(|v| !v.is_empty());
        if cells().count() > 0 && cells().all(|v| number(v).is_some()) {
            let mut changed = 0;
            for row in rows.iter_mut() {
                if let Some(cell) = row.get_mut(c)
                    && cell.contains(',')
                {
                    *cell = cell.replace(',', "");
                    changed += 1;
                }
            }
            if changed > 0 {
                changes.push(format!(
                    "Wrote {changed} number(s) in \"{}\" without thousands separators.",
                    table.headers[c]
                ));
            }
            continue;
        }
        // Spellings of one category that differ only in case or spacing: the most common wins.
        let mut spellings: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for value in cells() {
            let key = value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            *spellings.entry(key).or_default().entry(value.clone()).or_default() += 1;
        }
        let mut changed = 0;
        for row in rows.iter_mut() {
            let Some(cell) = row.get_mut(c) else { continue };
            let key = cell.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            if let Some(forms) = spellings.get(&key)
                && let Some((best, _)) = forms.iter().max_by_key(|(form, n)| (**n, std::cmp::Reverse((*form).clone())))
                && best != cell
            {
                *cell = best.clone();
                changed += 1;
            }
        }
        if changed > 0 {
            changes.push(format!("Unified {changed} spelling(s) in \"{}\".", table.headers[c]));
        }
    }
    if changes.is_empty() {
        changes.push("The data was already clean: no empty or duplicate rows, one spelling per category.".into());
    }
    (Table { headers: table.headers.clone(), rows }, changes)
}

/// `table` as CSV text (quoted where a cell needs it).
fn to_csv(table: &Table) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(&table.headers);
    for row in &table.rows {
        let _ = writer.write_record(row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Words in a header that mark a period column.
const PERIOD_HEADERS: &[&str] = &["quarter", "month", "year", "period", "week", "date", "day"];
/// More distinct entities than this are not a breakdown but a list.
const MAX_ENTITIES: usize = 25;

/// A parsed table: headers and rows of text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// What was computed: figures for the prompt and Markdown tables for the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// One verified figure per line, e.g. `revenue_usd, North, Q1 → Q2: 48,000 → 54,000 (+6,000, +12.5%)`.
    pub figures: Vec<String>,
    /// Markdown tables of the same figures.
    pub tables: String,
    /// The headline answers as sentences: what grew and shrank, how the totals moved.
    pub findings: Vec<String>,
    /// What to look into next, drawn from the same figures: the fallback when the model's own
    /// suggestions invent numbers or echo the brief.
    pub next_steps: Vec<String>,
}

/// The first CSV block in `text`: a header line and at least two rows with the same number of
/// comma-separated fields (two or more).
pub fn find_table(text: &str) -> Option<Table> {
    // The CSV reader ends a record at a lone `\r` too: lines must be split the way it splits
    // them, or a block counted as two columns parses as one.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
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
                    return Some(table);
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
fn number(cell: &str) -> Option<f64> {
    let cleaned: String = cell.chars().filter(|c| !matches!(c, ',' | '$' | '€' | '£' | '%' | ' ')).collect();
    cleaned.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Answer the usual questions about `table` exactly.
pub fn analyse(table: &Table) -> Analysis {
    let columns = table.headers.len();
    let numeric: Vec<usize> =
        (0..columns).filter(|&c| table.rows.iter().all(|r| r.get(c).and_then(|v| number(v)).is_some())).collect();
    let text: Vec<usize> = (0..columns).filter(|c| !numeric.contains(c)).collect();
    let period = text.iter().copied().find(|&c| {
        let header = table.headers[c].to_lowercase();
        PERIOD_HEADERS.iter().any(|p| header.contains(p))
    });
    let entity = text.iter().copied().find(|&c| Some(c) != period);
    let value = |row: &Vec<String>, c: usize| row.get(c).and_then(|v| number(v)).unwrap_or(0.0);
    let mut figures = Vec::new();
    let mut tables = String::new();
    let mut findings = Vec::new();
    let mut next_steps = Vec::new();

    // Totals, overall and per period.
    let periods: Vec<String> = period.map(|p| distinct(table, p)).unwrap_or_default();
    for &c in &numeric {
        let total: f64 = table.rows.iter().map(|r| value(r, c)).sum();
        figures.push(format!("total {}: {}", table.headers[c], format_number(total)));
    }
    if let Some(p) = period {
        tables.push_str(&format!("| {} |", table.headers[p]));
        for &c in &numeric {
            tables.push_str(&format!(" total {} |", table.headers[c]));
        }
        tables.push_str(&format!("\n|---|{}\n", "---|".repeat(numeric.len())));
        if let (Some(first), Some(last)) = (periods.first(), periods.last())
            && first != last
        {
            for &c in &numeric {
                let sum = |pv: &String| -> f64 { table.rows.iter().filter(|r| &r[p] == pv).map(|r| value(r, c)).sum() };
                let (from, to) = (sum(first), sum(last));
                findings.push(format!(
                    "Total {}: {} in {first}, {} in {last} ({}{}).",
                    table.headers[c],
                    format_number(from),
                    format_number(to),
                    format_signed(to - from),
                    percent_change(from, to).map(|p| format!(", {p}")).unwrap_or_default()
                ));
            }
        }
        for period_value in &periods {
            tables.push_str(&format!("| {period_value} |"));
            for &c in &numeric {
                let sum: f64 = table.rows.iter().filter(|r| &r[p] == period_value).map(|r| value(r, c)).sum();
                figures.push(format!("total {} in {period_value}: {}", table.headers[c], format_number(sum)));
                tables.push_str(&format!(" {} |", format_number(sum)));
            }
            tables.push('\n');
        }
    }

    // Per entity: the change from the first period to the last, or each entity's total.
    if let Some(e) = entity {
        let entities = distinct(table, e);
        if entities.len() <= MAX_ENTITIES {
            tables.push('\n');
            match (period, periods.first(), periods.last()) {
                (Some(p), Some(first), Some(last)) if first != last => {
                    tables.push_str(&format!("| {} |", table.headers[e]));
                    for &c in &numeric {
                        let h = &table.headers[c];
                        tables.push_str(&format!(" {h} {first} | {h} {last} | change | change % |"));
                    }
                    tables.push_str(&format!("\n|---|{}\n", "---|".repeat(4 * numeric.len())));
                    for &c in &numeric {
                        let mut changes: Vec<(String, f64, f64)> = entities
                            .iter()
                            .map(|name| {
                                let at = |pv: &String| -> f64 {
                                    table
                                        .rows
                                        .iter()
                                        .filter(|r| &r[e] == name && &r[p] == pv)
                                        .map(|r| value(r, c))
                                        .sum()
                                };
                                (name.clone(), at(first), at(last))
                            })
                            .collect();
                        changes.sort_by(|a, b| (b.2 - b.1).total_cmp(&(a.2 - a.1)));
                        let describe = |list: Vec<&(String, f64, f64)>| -> String {
                            list.iter()
                                .map(|(name, from, to)| {
                                    let percent = percent_change(*from, *to).unwrap_or_else(|| "n/a".into());
                                    format!("{name} ({}, {percent})", format_signed(to - from))
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let grew: Vec<_> = changes.iter().filter(|(_, from, to)| to > from).collect();
                        let shrank: Vec<_> = changes.iter().filter(|(_, from, to)| to < from).collect();
                        let header = &table.headers[c];
                        let mut sentence = format!("{header}, {first} to {last}: ");
                        match (grew.is_empty(), shrank.is_empty()) {
                            (false, false) => sentence.push_str(&format!(
                                "grew in {}; shrank in {}.",
                                describe(grew),
                                describe(shrank)
                            )),
                            (false, true) => sentence.push_str(&format!("grew everywhere: {}.", describe(grew))),
                            (true, false) => sentence.push_str(&format!("shrank everywhere: {}.", describe(shrank))),
                            (true, true) => sentence.push_str("unchanged everywhere."),
                        }
                        findings.push(sentence);
                        // Suggestions from the last (most telling) measure: the laggards first.
                        if c == *numeric.last().unwrap_or(&c) {
                            next_steps.clear();
                            for (name, from, to) in changes.iter().rev().filter(|(_, from, to)| to < from) {
                                let percent = percent_change(*from, *to).unwrap_or_default();
                                next_steps.push(format!(
                                    "Find out why {name} fell ({percent} {header}) while others grew: pricing, \
                                     stock, staffing or a lost account."
                                ));
                            }
                            if let Some((name, from, to)) = changes.first().filter(|(_, from, to)| to > from) {
                                let percent = percent_change(*from, *to).unwrap_or_default();
                                next_steps.push(format!(
                                    "See what drove {name}'s growth ({percent} {header}) and whether it can be \
                                     repeated elsewhere."
                                ));
                            }
                            next_steps.push(format!(
                                "Track {header} by {} for more periods before reading a trend into {first} to {last}.",
                                table.headers[e]
                            ));
                        }
                    }
                    for name in &entities {
                        tables.push_str(&format!("| {name} |"));
                        for &c in &numeric {
                            let at = |period_value: &String| -> f64 {
                                table
                                    .rows
                                    .iter()
                                    .filter(|r| &r[e] == name && &r[p] == period_value)
                                    .map(|r| value(r, c))
                                    .sum()
                            };
                            let (from, to) = (at(first), at(last));
                            let change = to - from;
                            let percent = percent_change(from, to);
                            figures.push(format!(
                                "{} of {name}, {first} → {last}: {} → {} ({}, {})",
                                table.headers[c],
                                format_number(from),
                                format_number(to),
                                format_signed(change),
                                percent.clone().unwrap_or_else(|| "n/a".into())
                            ));
                            tables.push_str(&format!(
                                " {} | {} | {} | {} |",
                                format_number(from),
                                format_number(to),
                                format_signed(change),
                                percent.unwrap_or_else(|| "n/a".into())
                            ));
                        }
                        tables.push('\n');
                    }
                }
                _ => {
                    tables.push_str(&format!("| {} |", table.headers[e]));
                    for &c in &numeric {
                        tables.push_str(&format!(" {} | share |", table.headers[c]));
                    }
                    tables.push_str(&format!("\n|---|{}\n", "---|".repeat(2 * numeric.len())));
                    for name in &entities {
                        tables.push_str(&format!("| {name} |"));
                        for &c in &numeric {
                            let total: f64 = table.rows.iter().map(|r| value(r, c)).sum();
                            let sum: f64 = table.rows.iter().filter(|r| &r[e] == name).map(|r| value(r, c)).sum();
                            let share = if total == 0.0 { 0.0 } else { 100.0 * sum / total };
                            figures.push(format!(
                                "{} of {name}: {} ({share:.1}% of the total)",
                                table.headers[c],
                                format_number(sum)
                            ));
                            tables.push_str(&format!(" {} | {share:.1}% |", format_number(sum)));
                        }
                        tables.push('\n');
                    }
                    // Without periods: each measure's total, its leader and its laggard.
                    for &c in &numeric {
                        let header = &table.headers[c];
                        let total: f64 = table.rows.iter().map(|r| value(r, c)).sum();
                        let mut sums: Vec<(String, f64)> = entities
                            .iter()
                            .map(|name| {
                                (name.clone(), table.rows.iter().filter(|r| &r[e] == name).map(|r| value(r, c)).sum())
                            })
                            .collect();
                        sums.sort_by(|a, b| b.1.total_cmp(&a.1));
                        let share = |v: f64| if total == 0.0 { 0.0 } else { 100.0 * v / total };
                        if let (Some((top, top_value)), Some((low, low_value))) = (sums.first(), sums.last()) {
                            findings.push(format!(
                                "Total {header}: {}. {top} leads with {} ({:.1}%); {low} is lowest with {} ({:.1}%).",
                                format_number(total),
                                format_number(*top_value),
                                share(*top_value),
                                format_number(*low_value),
                                share(*low_value)
                            ));
                            next_steps.push(format!("Find out what holds {low}'s {header} back compared with {top}."));
                        }
                    }
                    next_steps
                        .push(format!("Add a period column to see how each {} moves over time.", table.headers[e]));
                }
            }
        }
    }
    Analysis { figures, tables: tables.trim().to_string(), findings, next_steps }
}

/// Numbers in `text` (digits with thousands separators and decimals; signs and `%` dropped),
/// normalised: `1,200` and `1200` are the same number.
fn numbers_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    // Digits straight after a letter (`Q1`) are part of a name: no thousands group follows.
    let mut in_name = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // A decimal point joins digits; a comma only a group of exactly three (`1,200`, not the
        // `1,439` of a CSV row).
        let digits_after = chars[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        let joins =
            !current.is_empty() && ((c == '.' && digits_after > 0) || (c == ',' && digits_after == 3 && !in_name));
        if c.is_ascii_digit() || joins {
            if current.is_empty() {
                in_name = i > 0 && chars[i - 1].is_alphabetic();
            }
            if c != ',' {
                current.push(c);
            }
        } else if !current.is_empty() {
            found.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        found.push(current);
    }
    found
}

/// Every number the response states comes from the data or from our own figures: the model may
/// not invent one. Small numbers (one digit) are words more than figures and pass.
pub fn numbers_check(output: &str, analysis: &Analysis, source: &str) -> crate::protocol::Check {
    let known: std::collections::BTreeSet<String> = analysis
        .figures
        .iter()
        .chain(analysis.findings.iter())
        .map(String::as_str)
        .chain([analysis.tables.as_str(), source])
        .flat_map(numbers_in)
        .collect();
    let invented: Vec<String> = numbers_in(output).into_iter().filter(|n| n.len() > 1 && !known.contains(n)).collect();
    crate::protocol::Check {
        name: "numbers_from_data".into(),
        passed: invented.is_empty(),
        detail: match invented.is_empty() {
            true => "every number comes from the data".into(),
            false => format!("numbers not in the data: {}", invented.join(", ")),
        },
    }
}

/// Distinct values of column `c`, in order of first appearance.
fn distinct(table: &Table, c: usize) -> Vec<String> {
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    let mut values = Vec::new();
    for row in &table.rows {
        if let Some(v) = row.get(c)
            && seen.insert(v.as_str(), ()).is_none()
        {
            values.push(v.clone());
        }
    }
    values
}

fn percent_change(from: f64, to: f64) -> Option<String> {
    (from != 0.0).then(|| format!("{:+.1}%", 100.0 * (to - from) / from.abs()))
}

/// `48000` → `48,000`; `1234.5` → `1,234.5`.
pub fn format_number(n: f64) -> String {
    let rounded = (n * 100.0).round() / 100.0;
    let (int, frac) = (rounded.trunc().abs() as u64, rounded.fract().abs());
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(d);
    }
    let sign = if rounded < 0.0 { "-" } else { "" };
    if frac > 0.0 {
        let decimals = format!("{frac:.2}");
        format!("{sign}{grouped}{}", decimals.trim_start_matches('0').trim_end_matches('0'))
    } else {
        format!("{sign}{grouped}")
    }
}

fn format_signed(n: f64) -> String {
    if n > 0.0 { format!("+{}", format_number(n)) } else { format_number(n) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cleaning_drops_empty_and_duplicate_rows_and_unifies_spellings() {
        let table = Table {
            headers: vec!["region".into(), "revenue".into()],
            rows: vec![
                vec!["North".into(), "1,200".into()],
                vec!["north ".into(), "800".into()],
                vec!["North".into(), "1,200".into()],
                vec!["".into(), "".into()],
                vec!["South".into(), "300".into()],
            ],
        };
        let (cleaned, changes) = clean_table(&table);
        assert_eq!(cleaned.rows, [["North", "1200"], ["North", "800"], ["South", "300"]]);
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert_eq!(to_csv(&cleaned), "region,revenue\nNorth,1200\nNorth,800\nSouth,300\n");
        let (_, none) = clean_table(&cleaned);
        assert!(none[0].starts_with("The data was already clean"), "{none:?}");
    }

    use super::*;

    fn fixture_description() -> String {
        let path = format!("{}/tests/fixtures/briefs/data-analysis-sales-csv.json", env!("CARGO_MANIFEST_DIR"));
        let brief: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        brief["description"].as_str().unwrap().to_string()
    }

    #[test]
    fn the_sales_brief_gets_exact_totals_and_changes() {
        let table = find_table(&fixture_description()).expect("the CSV in the brief");
        assert_eq!(table.headers, ["region", "quarter", "units", "revenue_usd"]);
        assert_eq!(table.rows.len(), 8);
        let analysis = analyse(&table);
        let has = |figure: &str| {
            assert!(analysis.figures.iter().any(|f| f == figure), "missing {figure:?} in {:#?}", analysis.figures)
        };
        has("total revenue_usd in Q1: 144,100");
        has("total revenue_usd in Q2: 161,220");
        has("total units: 7,510");
        has("revenue_usd of North, Q1 → Q2: 48,000 → 54,000 (+6,000, +12.5%)");
        has("units of South, Q1 → Q2: 800 → 760 (-40, -5.0%)");
        has("revenue_usd of East, Q1 → Q2: 39,900 → 50,820 (+10,920, +27.4%)");
        has("revenue_usd of West, Q1 → Q2: 25,800 → 27,520 (+1,720, +6.7%)");
        assert!(analysis.tables.contains("| North | 1,200 | 1,350 | +150 | +12.5% |"), "{}", analysis.tables);
        assert!(analysis.tables.contains("| Q2 | 3,960 | 161,220 |"), "{}", analysis.tables);
        assert!(
            analysis
                .findings
                .contains(&"Total revenue_usd: 144,100 in Q1, 161,220 in Q2 (+17,120, +11.9%).".to_string()),
            "{:#?}",
            analysis.findings
        );
        assert!(
            analysis.findings.contains(
                &"revenue_usd, Q1 to Q2: grew in East (+10,920, +27.4%), North (+6,000, +12.5%), West (+1,720, +6.7%); \
                  shrank in South (-1,520, -5.0%)."
                    .to_string()
            ),
            "{:#?}",
            analysis.findings
        );
    }

    #[test]
    fn invented_numbers_are_caught() {
        let table = find_table(&fixture_description()).unwrap();
        let analysis = analyse(&table);
        let source = fixture_description();
        let honest = format!("East grew most, +27.4%; revenue reached 161,220 in Q2.\n{}", analysis.tables);
        assert!(numbers_check(&honest, &analysis, &source).passed);
        let invented = numbers_check("Revenue grew 4,120 units, about 0.001% a year.", &analysis, &source);
        assert!(!invented.passed);
        assert!(invented.detail.contains("4120") && invented.detail.contains("0.001"), "{}", invented.detail);
        // A CSV row's commas are not thousands separators.
        assert_eq!(numbers_in("North,Q1,439,1200 and 1,200.5"), ["1", "439", "1200", "1200.5"]);
        assert!(
            analysis.next_steps[0].starts_with("Find out why South fell (-5.0% revenue_usd)"),
            "{:?}",
            analysis.next_steps
        );
        let steps = analysis.next_steps.join("\n");
        assert!(numbers_check(&steps, &analysis, &source).passed, "{steps}");
    }

    #[test]
    fn without_periods_each_entity_gets_its_total_and_share() {
        let table = find_table("Products:\nproduct,sales\nTea,300\nCoffee,700\n").unwrap();
        let analysis = analyse(&table);
        assert!(
            analysis.figures.contains(&"sales of Coffee: 700 (70.0% of the total)".to_string()),
            "{:?}",
            analysis.figures
        );
        assert!(analysis.figures.contains(&"total sales: 1,000".to_string()));
    }

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
    fn numbers_are_formatted_for_reading() {
        assert_eq!(format_number(48000.0), "48,000");
        assert_eq!(format_number(-1234.5), "-1,234.5");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_signed(40.0), "+40");
        assert_eq!(percent_change(800.0, 760.0).as_deref(), Some("-5.0%"));
        assert_eq!(percent_change(0.0, 5.0), None);
    }
}
