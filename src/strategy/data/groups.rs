//! Record-style questions, where each row is one respondent, customer or order: how many rows,
//! how many per category value and their share, the mean (median, min, max) of each number
//! overall and per group, the rate of "yes" in each yes/no column overall and per group, which
//! group ranks highest and lowest on each, and the gap between them. Ids are not numbers here:
//! they only name what a row is (`respondent_id` → respondents).

use super::kinds::{self, Kind};
use super::numbers::{format_number, share};
use super::table::{self, Table};
use super::{Layout, Report, Topic, dates};

/// A group under 5 rows says little: the next steps ask for more data first.
const SMALL_GROUP: usize = 5;
const MAX_NEXT_STEPS: usize = 5;

/// The rows that share one value of a group column.
struct Group {
    name: String,
    rows: Vec<usize>,
}

/// Mean, median and range of some numbers.
struct Stats {
    count: usize,
    mean: f64,
    median: f64,
    min: f64,
    max: f64,
}

pub(crate) fn describe(layout: &Layout, report: &mut Report) {
    size(layout, report);
    for (i, &g) in layout.groups.iter().enumerate() {
        if !layout.aggregate {
            counts(layout, g, i == 0, report);
        }
    }
    averages(layout, report);
    rates(layout, report);
    if let Some(&g) = layout.groups.first() {
        rank_and_compare(layout, g, report);
    }
}

/// The groups of column `g`, the largest first (ties in order of appearance).
fn groups_of(table: &Table, g: usize) -> Vec<Group> {
    let mut groups: Vec<Group> = table::distinct(table, g)
        .into_iter()
        .map(|name| {
            let rows = (0..table.rows.len()).filter(|&r| table::cell(&table.rows[r], g) == name).collect();
            Group { name, rows }
        })
        .collect();
    groups.sort_by_key(|group| std::cmp::Reverse(group.rows.len()));
    groups
}

fn stats(table: &Table, c: usize, rows: &[usize]) -> Option<Stats> {
    let mut values: Vec<f64> = rows.iter().filter_map(|&r| table::number(table::cell(&table.rows[r], c))).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let count = values.len();
    let median = match count % 2 {
        1 => values[count / 2],
        _ => (values[count / 2 - 1] + values[count / 2]) / 2.0,
    };
    let mean = values.iter().sum::<f64>() / count as f64;
    Some(Stats { count, mean, median, min: values[0], max: values[count - 1] })
}

/// How many of `rows` answered yes in flag column `c`, and how many answered at all.
fn yes_count(table: &Table, c: usize, rows: &[usize]) -> (usize, usize) {
    let answers: Vec<&str> = rows.iter().map(|&r| table::cell(&table.rows[r], c)).filter(|v| !v.is_empty()).collect();
    (answers.iter().filter(|v| kinds::is_yes(v)).count(), answers.len())
}

/// A flag's header as words that follow "62.5% of respondents": `is_active` → are active.
fn flag_phrase(header: &str) -> String {
    let mut words = kinds::header_words(header);
    let verb = match words.first().map(String::as_str) {
        Some("is") => "are",
        Some("has") => "have",
        Some("was") => "were",
        _ => return words.join(" "),
    };
    words[0] = verb.to_string();
    words.join(" ")
}

/// Row count, and the span of each date column.
fn size(layout: &Layout, report: &mut Report) {
    let rows = layout.table.rows.len();
    let noun = &layout.noun.many;
    report.finding(Topic::Size, &[], layout.groups.is_empty(), format!("The data has {rows} {noun}."));
    for (c, _) in layout.kinds.iter().enumerate().filter(|(_, k)| **k == Kind::Date) {
        let values = table::values(layout.table, c);
        let day_first = dates::day_first(values.iter().copied());
        let mut days: Vec<String> = values.iter().filter_map(|v| dates::iso_date(v, day_first)).collect();
        days.sort();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            let header = layout.header(c);
            report.figures.push(format!("{header}: {first} to {last}"));
            report.finding(Topic::Size, &[header], false, format!("{header} runs from {first} to {last}."));
        }
    }
}

/// Rows per value of group column `g` and their share, and the per-group table: for each group
/// its rows, share, mean of each number and rate of each flag, with the whole data last.
fn counts(layout: &Layout, g: usize, main: bool, report: &mut Report) {
    let table = layout.table;
    let (header, noun, total) = (layout.header(g), &layout.noun.many, table.rows.len());
    let groups = groups_of(table, g);
    let listed: Vec<String> = groups
        .iter()
        .map(|group| {
            let share = share(group.rows.len() as f64, total as f64);
            report.figures.push(format!(
                "{noun} by {header}, {}: {} of {total} ({share})",
                group.name,
                group.rows.len()
            ));
            format!("{} {} ({share})", group.name, group.rows.len())
        })
        .collect();
    report.finding(Topic::Counts, &[header], main, format!("{total} {noun} by {header}: {}.", listed.join(", ")));
    let mut out = format!("| {header} | {noun} | share |");
    for &c in &layout.numbers {
        out.push_str(&format!(" mean {} |", layout.header(c)));
    }
    for &c in &layout.flags {
        out.push_str(&format!(" {} (yes) |", layout.header(c)));
    }
    let columns = 3 + layout.numbers.len() + layout.flags.len();
    out.push_str(&format!("\n|{}\n", "---|".repeat(columns)));
    let everyone = Group { name: "All".into(), rows: (0..total).collect() };
    for group in groups.iter().chain([&everyone]) {
        out.push_str(&format!(
            "| {} | {} | {} |",
            group.name,
            group.rows.len(),
            share(group.rows.len() as f64, total as f64)
        ));
        for &c in &layout.numbers {
            let mean = stats(table, c, &group.rows).map_or("n/a".into(), |s| format_number(s.mean));
            out.push_str(&format!(" {mean} |"));
        }
        for &c in &layout.flags {
            let (yes, answered) = yes_count(table, c, &group.rows);
            out.push_str(&format!(" {yes} ({}) |", share(yes as f64, answered as f64)));
        }
        out.push('\n');
    }
    report.tables.push(out);
    // Every group tied at the smallest size is named: naming one would single it out.
    if main && let Some(size) = groups.last().map(|s| s.rows.len()).filter(|&n| n < SMALL_GROUP) {
        let smallest: Vec<&str> = groups.iter().filter(|g| g.rows.len() == size).map(|g| g.name.as_str()).collect();
        let each = if smallest.len() > 1 { " each" } else { "" };
        report.next_steps.push(format!(
            "Collect more {noun} from {} ({size}{each}) before reading much into their figures.",
            smallest.join(" and ")
        ));
    }
}

/// Each number's mean, median, min and max overall, and its mean per group.
fn averages(layout: &Layout, report: &mut Report) {
    let table = layout.table;
    let everyone: Vec<usize> = (0..table.rows.len()).collect();
    let mut out = String::from("| measure | values | mean | median | min | max |\n|---|---|---|---|---|---|\n");
    for &c in &layout.numbers {
        let header = layout.header(c);
        let Some(all) = stats(table, c, &everyone) else { continue };
        let [mean, median, min, max] = [all.mean, all.median, all.min, all.max].map(format_number);
        for (name, value) in [("mean", &mean), ("median", &median), ("min", &min), ("max", &max)] {
            report.figures.push(format!("{name} {header}: {value}"));
        }
        out.push_str(&format!("| {header} | {} | {mean} | {median} | {min} | {max} |\n", all.count));
        let mut sentence = format!("Mean {header}: {mean} (median {median}, min {min}, max {max})");
        for (i, &g) in layout.groups.iter().enumerate() {
            let means: Vec<(String, f64)> =
                ranked(groups_of(table, g), |group| stats(table, c, &group.rows).map(|s| s.mean));
            for (name, mean) in &means {
                report.figures.push(format!("mean {header}, {} {name}: {}", layout.header(g), format_number(*mean)));
            }
            let listed =
                means.iter().map(|(name, m)| format!("{name} {}", format_number(*m))).collect::<Vec<_>>().join(", ");
            match i {
                0 => sentence.push_str(&format!("; by {}: {listed}", layout.header(g))),
                _ => report.finding(
                    Topic::Averages,
                    &[header, layout.header(g)],
                    false,
                    format!("Mean {header} by {}: {listed}.", layout.header(g)),
                ),
            }
        }
        let columns: Vec<&str> =
            std::iter::once(header).chain(layout.groups.first().map(|&g| layout.header(g))).collect();
        report.finding(Topic::Averages, &columns, !layout.aggregate, format!("{sentence}."));
    }
    if !layout.numbers.is_empty() {
        report.tables.push(out);
    }
}

/// Each flag's rate of yes overall and per group.
fn rates(layout: &Layout, report: &mut Report) {
    let table = layout.table;
    let everyone: Vec<usize> = (0..table.rows.len()).collect();
    let mut out = String::from("| yes/no column | yes | answered | rate |\n|---|---|---|---|\n");
    for &c in &layout.flags {
        let header = layout.header(c);
        let (yes, answered) = yes_count(table, c, &everyone);
        let rate = share(yes as f64, answered as f64);
        report.figures.push(format!("{header} = yes: {yes} of {answered} ({rate})"));
        out.push_str(&format!("| {header} | {yes} | {answered} | {rate} |\n"));
        let mut sentence = match layout.noun.named {
            true => format!("{rate} of {} {} ({yes} of {answered})", layout.noun.many, flag_phrase(header)),
            false => format!("{header}: yes in {rate} of rows ({yes} of {answered})"),
        };
        for (i, &g) in layout.groups.iter().enumerate() {
            let rates = ranked(groups_of(table, g), |group| rate_of(table, c, &group.rows));
            for (name, r) in &rates {
                report.figures.push(format!("{header} rate, {} {name}: {r:.1}%", layout.header(g)));
            }
            let listed = rates.iter().map(|(name, r)| format!("{name} {r:.1}%")).collect::<Vec<_>>().join(", ");
            match i {
                0 => sentence.push_str(&format!("; by {}: {listed}", layout.header(g))),
                _ => report.finding(
                    Topic::Rates,
                    &[header, layout.header(g)],
                    false,
                    format!("{header} by {}: {listed}.", layout.header(g)),
                ),
            }
        }
        let columns: Vec<&str> =
            std::iter::once(header).chain(layout.groups.first().map(|&g| layout.header(g))).collect();
        report.finding(Topic::Rates, &columns, true, format!("{sentence}."));
    }
    if !layout.flags.is_empty() {
        report.tables.push(out);
    }
}

/// The rate of yes among `rows` in percent, rounded as shown (one decimal), so that differences
/// between rates are the differences of the rates the reader sees.
fn rate_of(table: &Table, c: usize, rows: &[usize]) -> Option<f64> {
    let (yes, answered) = yes_count(table, c, rows);
    (answered > 0).then(|| (1000.0 * yes as f64 / answered as f64).round() / 10.0)
}

/// `groups` with their measure, highest first (ties in order of size); groups without one left
/// out.
fn ranked(groups: Vec<Group>, measure: impl Fn(&Group) -> Option<f64>) -> Vec<(String, f64)> {
    let mut ranked: Vec<(String, f64)> = groups
        .iter()
        .filter_map(|group| measure(group).map(|m| (group.name.clone(), (m * 100.0).round() / 100.0)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// For the main group column: which group is highest and lowest on each measure, and the gap.
fn rank_and_compare(layout: &Layout, g: usize, report: &mut Report) {
    let table = layout.table;
    let group_header = layout.header(g);
    let noun = &layout.noun.many;
    if !layout.aggregate {
        let sizes = ranked(groups_of(table, g), |group| Some(group.rows.len() as f64));
        if let Some((most, fewest)) = extremes(&sizes) {
            report.finding(
                Topic::Ranking,
                &[group_header],
                false,
                format!(
                    "Most {noun}: {} ({}); fewest: {} ({}).",
                    most.0,
                    format_number(most.1),
                    fewest.0,
                    format_number(fewest.1)
                ),
            );
        }
    }
    for &c in &layout.numbers {
        let header = layout.header(c);
        let means = ranked(groups_of(table, g), |group| stats(table, c, &group.rows).map(|s| s.mean));
        let Some((top, low)) = extremes(&means) else { continue };
        let (high, lowest, gap) = (format_number(top.1), format_number(low.1), format_number(top.1 - low.1));
        report.figures.push(format!("difference in mean {header}, {} − {}: {gap}", top.0, low.0));
        let columns = [header, group_header];
        report.finding(
            Topic::Ranking,
            &columns,
            false,
            format!("Highest mean {header}: {} ({high}); lowest: {} ({lowest}).", top.0, low.0),
        );
        report.finding(
            Topic::Differences,
            &columns,
            false,
            format!("Mean {header} differs by {gap} between {} ({high}) and {} ({lowest}).", top.0, low.0),
        );
        if !layout.aggregate && report.next_steps.len() < MAX_NEXT_STEPS {
            report.next_steps.push(format!(
                "Check whether the gap in mean {header} between {} and {} holds with more {noun}.",
                top.0, low.0
            ));
        }
    }
    for &c in &layout.flags {
        let header = layout.header(c);
        let rates = ranked(groups_of(table, g), |group| rate_of(table, c, &group.rows));
        let Some((top, low)) = extremes(&rates) else { continue };
        let gap = format!("{:.1}", top.1 - low.1);
        report.figures.push(format!("difference in {header} rate, {} − {}: {gap} percentage points", top.0, low.0));
        let columns = [header, group_header];
        report.finding(
            Topic::Ranking,
            &columns,
            false,
            format!("Highest {header} rate: {} ({:.1}%); lowest: {} ({:.1}%).", top.0, top.1, low.0, low.1),
        );
        report.finding(
            Topic::Differences,
            &columns,
            false,
            format!(
                "The {header} rate differs by {gap} percentage points between {} ({:.1}%) and {} ({:.1}%).",
                top.0, top.1, low.0, low.1
            ),
        );
        report.next_steps.insert(
            0,
            format!(
                "Find out why the {header} rate is lowest in {} ({:.1}%) when {} reaches {:.1}%.",
                low.0, low.1, top.0, top.1
            ),
        );
    }
}

/// The highest and the lowest of `ranked` when they differ, each naming every group tied there
/// (`East and South`).
fn extremes(ranked: &[(String, f64)]) -> Option<((String, f64), (String, f64))> {
    let (top, low) = (ranked.first()?.1, ranked.last()?.1);
    let tied = |value: f64| -> String {
        let names: Vec<&str> = ranked.iter().filter(|(_, v)| *v == value).map(|(n, _)| n.as_str()).collect();
        names.join(" and ")
    };
    (top != low).then(|| ((tied(top), top), (tied(low), low)))
}

/// At least two next steps, at most five: where the figures alone suggest none, the data's gaps
/// do.
pub(crate) fn ensure_next_steps(layout: &Layout, report: &mut Report) {
    let fallbacks = [
        layout
            .time
            .is_none()
            .then(|| "Add a period column (a date or month) to see how these figures move over time.".to_string()),
        layout
            .groups
            .is_empty()
            .then(|| "Add a category column (a region, segment or plan) to compare groups.".to_string()),
        Some("Break the figures down by another column, such as a segment or channel, to see what drives them.".into()),
        Some("Check the data for missing or mistyped values before acting on these figures.".into()),
    ];
    for step in fallbacks.into_iter().flatten() {
        if report.next_steps.len() >= 2 {
            break;
        }
        report.next_steps.push(step);
    }
    report.next_steps.truncate(MAX_NEXT_STEPS);
}
