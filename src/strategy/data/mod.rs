//! Data tasks: the numbers are computed here, in Rust, and the model only writes around them.
//! A CSV table in the brief is found and parsed (`table`), each column's kind read from its
//! header and values (`kinds`: an id is never summed), and the questions a buyer asks of such a
//! table answered exactly: totals and changes over periods for sales-style tables (`sales`);
//! counts, shares, means, yes/no rates, rankings and differences per group for record-style ones
//! (`groups`); duplicates (`normalise`). The brief's own question decides which findings come
//! first (`question`); cleaning is `cleaning`; the deliverable is assembled in `write`, and
//! every number in it is checked against the data (`numbers`).
//!
//! [`analyse`] reads the table alone, never the brief: the same table always gives the same
//! analysis, and what the brief asks only orders what is shown.

mod cleaning;
mod dates;
mod groups;
mod kinds;
mod normalise;
mod numbers;
mod question;
mod sales;
mod table;
mod write;

#[cfg(test)]
mod tests;

pub use cleaning::clean_table;
pub use kinds::Kind;
pub use numbers::{format_number, numbers_check};
pub use table::{Table, find_table};
pub use write::write;

/// More distinct values than this are not a breakdown but a list.
const MAX_ENTITIES: usize = 25;
/// A time axis with more distinct values than this is a log, not a series of periods.
const MAX_PERIODS: usize = 36;
/// Groups per column in a per-group table, and group columns per table: past these the tables
/// stop being readable.
const MAX_GROUPS: usize = 12;
const MAX_GROUP_COLUMNS: usize = 3;

/// What was computed: figures for the prompt, Markdown tables and findings for the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// One verified figure per line, e.g. `revenue_usd of North, Q1 → Q2: 48,000 → 54,000 (+6,000, +12.5%)`.
    pub figures: Vec<String>,
    /// Markdown tables of the same figures.
    pub tables: String,
    /// The answers as sentences: what grew and shrank, the shares, means and rates per group.
    pub findings: Vec<String>,
    /// What each finding answers, one per finding in the same order: lets the writer put first
    /// what the brief asks.
    pub about: Vec<About>,
    /// What to look into next, drawn from the same figures: the fallback when the model's own
    /// suggestions invent numbers or echo the brief.
    pub next_steps: Vec<String>,
    /// Each column's header and kind.
    pub columns: Vec<(String, Kind)>,
}

/// The question a finding answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// How many rows, and over which dates.
    Size,
    /// Sums of additive measures, overall and per period or group.
    Totals,
    /// Change from the first period to the last.
    Trend,
    /// Rows per category value and their share.
    Counts,
    /// Mean, median, min and max of a number.
    Averages,
    /// The share of "yes" in a yes/no column.
    Rates,
    /// Which group is highest and lowest on a measure.
    Ranking,
    /// The gap between groups on a measure.
    Differences,
    /// Repeated rows, ids and emails.
    Duplicates,
}

/// What a finding is about: its topic, the columns it concerns, and whether it is a headline
/// (shown even when the brief does not ask for it) or a supporting one.
#[derive(Debug, Clone, PartialEq)]
pub struct About {
    pub topic: Topic,
    pub columns: Vec<String>,
    pub headline: bool,
}

/// How a table is laid out, read once from its kinds and shared by every part of the analysis.
pub(crate) struct Layout<'a> {
    pub table: &'a Table,
    pub kinds: Vec<Kind>,
    /// The time axis: the first period column, else the first date column, with few enough
    /// distinct values to be a series.
    pub time: Option<usize>,
    /// The time axis's distinct values in time order (dates sorted, periods as they come).
    pub periods: Vec<String>,
    /// The column whose values are compared as entities (region, product): a category.
    pub entity: Option<usize>,
    /// Categories whose values repeat, worth a per-group breakdown; the main one first.
    pub groups: Vec<usize>,
    /// Number columns whose sum means something (revenue, units; not age or price).
    pub measures: Vec<usize>,
    /// Every number column, additive or not.
    pub numbers: Vec<usize>,
    pub flags: Vec<usize>,
    /// Each row is already an aggregate (one row per entity and period, as in a sales summary):
    /// counting rows per group would say nothing.
    pub aggregate: bool,
    /// What one row is, from the id column (`respondent_id` → respondents), or rows.
    pub noun: Noun,
}

/// What the rows are called: `respondents`, or `rows` when the id does not say.
pub(crate) struct Noun {
    pub many: String,
    /// Whether it came from an id column (`respondents`) rather than the default (`rows`).
    pub named: bool,
}

impl<'a> Layout<'a> {
    pub fn of(table: &'a Table) -> Self {
        let kinds = kinds::column_kinds(table);
        let of_kind = |kind: Kind| -> Vec<usize> { (0..kinds.len()).filter(|&c| kinds[c] == kind).collect() };
        let distinct = |c: usize| table::distinct(table, c).len();
        let time = of_kind(Kind::Period).into_iter().chain(of_kind(Kind::Date)).find(|&c| distinct(c) <= MAX_PERIODS);
        let mut periods = time.map(|t| table::distinct(table, t)).unwrap_or_default();
        if let Some(t) = time
            && kinds[t] == Kind::Date
        {
            let day_first = dates::day_first(periods.iter().map(String::as_str));
            periods.sort_by_key(|p| dates::iso_date(p, day_first).unwrap_or_else(|| p.clone()));
        }
        let categories = of_kind(Kind::Category);
        let rows = table.rows.len();
        let groups: Vec<usize> = categories
            .iter()
            .copied()
            .filter(|&c| (2..=MAX_GROUPS).contains(&distinct(c)) && distinct(c) < rows)
            .take(MAX_GROUP_COLUMNS)
            .collect();
        let entity = groups.first().copied().or_else(|| categories.into_iter().find(|&c| distinct(c) <= MAX_ENTITIES));
        let numbers = of_kind(Kind::Number);
        let measures = numbers.iter().copied().filter(|&c| kinds::is_additive(table, c)).collect();
        let aggregate = time.is_some_and(|t| {
            let mut seen = std::collections::BTreeSet::new();
            table.rows.iter().all(|r| seen.insert((entity.map(|e| table::cell(r, e)), table::cell(r, t))))
        });
        let noun = of_kind(Kind::Id)
            .first()
            .and_then(|&c| kinds::row_noun(&table.headers[c]))
            .map(|one| Noun { many: super::prose::plural(&one), named: true })
            .unwrap_or(Noun { many: "rows".into(), named: false });
        let flags = of_kind(Kind::YesNo);
        Layout { table, time, periods, entity, groups, measures, numbers, flags, aggregate, noun, kinds }
    }

    pub fn header(&self, c: usize) -> &str {
        &self.table.headers[c]
    }
}

/// The analysis being written: each part adds its figures, tables, findings and next steps.
#[derive(Default)]
pub(crate) struct Report {
    pub figures: Vec<String>,
    pub tables: Vec<String>,
    pub findings: Vec<(About, String)>,
    pub next_steps: Vec<String>,
}

impl Report {
    pub fn finding(&mut self, topic: Topic, columns: &[&str], headline: bool, text: String) {
        let columns = columns.iter().map(|c| c.to_string()).collect();
        self.findings.push((About { topic, columns, headline }, text));
    }
}

/// Answer the questions a buyer asks of `table`, exactly. The brief's question is read later,
/// by the writer, to order what is shown (see the module docs).
pub fn analyse(table: &Table) -> Analysis {
    let layout = Layout::of(table);
    let mut report = Report::default();
    report.figures.push(format!("rows: {}", table.rows.len()));
    let kinds: Vec<String> =
        table.headers.iter().zip(&layout.kinds).map(|(h, k)| format!("{h} ({})", k.as_str())).collect();
    report.figures.push(format!("columns: {}", kinds.join(", ")));
    // The headline part first: a sales summary's changes, or a record table's groups.
    if layout.aggregate {
        sales::describe(&layout, &mut report);
        groups::describe(&layout, &mut report);
    } else {
        groups::describe(&layout, &mut report);
        sales::describe(&layout, &mut report);
    }
    normalise::describe_duplicates(&layout, &mut report);
    report.tables.push(column_table(&layout));
    groups::ensure_next_steps(&layout, &mut report);
    let (about, findings): (Vec<About>, Vec<String>) = report.findings.into_iter().unzip();
    Analysis {
        figures: report.figures,
        tables: report.tables.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n"),
        findings,
        about,
        next_steps: report.next_steps,
        columns: table.headers.iter().cloned().zip(layout.kinds.iter().copied()).collect(),
    }
}

/// Every column's kind, how many cells are filled and how many distinct values: what was read,
/// so the buyer can see that an id was taken for an id.
fn column_table(layout: &Layout) -> String {
    let mut out = String::from("| column | kind | filled | distinct |\n|---|---|---|---|\n");
    for (c, kind) in layout.kinds.iter().enumerate() {
        let filled = layout.table.rows.iter().filter(|r| !table::cell(r, c).is_empty()).count();
        let distinct = table::distinct(layout.table, c).len();
        out.push_str(&format!("| {} | {} | {filled} | {distinct} |\n", layout.header(c), kind.as_str()));
    }
    out
}
