//! Sales-style questions about additive measures (revenue, units): the total of each, the total
//! per period and how it moved from the first period to the last, and for each entity (region,
//! product) the change over the same span, absolute and in percent — or, without periods, each
//! entity's total and share. Levels (age, price) and ids are never added up here.

use super::numbers::{format_number, format_signed, percent_change, share};
use super::table::{self, Table};
use super::{Layout, Report, Topic};

pub(crate) fn describe(layout: &Layout, report: &mut Report) {
    if layout.measures.is_empty() {
        return;
    }
    let table = layout.table;
    for &c in &layout.measures {
        let total = sum(table, c, |_| true);
        report.figures.push(format!("total {}: {}", layout.header(c), format_number(total)));
    }
    if let Some(t) = layout.time {
        per_period(layout, t, report);
    }
    let Some(e) = layout.entity else { return };
    let entities = table::distinct(table, e);
    match (layout.time, layout.periods.first(), layout.periods.last()) {
        (Some(t), Some(first), Some(last)) if first != last => {
            per_entity_change(layout, e, &entities, (t, first, last), report)
        }
        _ => per_entity_total(layout, e, &entities, report),
    }
}

/// The sum of measure `c` over the rows `keep` keeps (cells that are not numbers count as 0).
fn sum(table: &Table, c: usize, keep: impl Fn(&[String]) -> bool) -> f64 {
    table.rows.iter().filter(|r| keep(r.as_slice())).filter_map(|r| table::number(table::cell(r, c))).sum()
}

/// Totals per period, and the change of each total from the first period to the last.
fn per_period(layout: &Layout, t: usize, report: &mut Report) {
    let table = layout.table;
    let measures = &layout.measures;
    let mut out = format!("| {} |", layout.header(t));
    for &c in measures {
        out.push_str(&format!(" total {} |", layout.header(c)));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(measures.len())));
    for period in &layout.periods {
        out.push_str(&format!("| {period} |"));
        for &c in measures {
            let total = sum(table, c, |r| table::cell(r, t) == period);
            report.figures.push(format!("total {} in {period}: {}", layout.header(c), format_number(total)));
            out.push_str(&format!(" {} |", format_number(total)));
        }
        out.push('\n');
    }
    if let (Some(first), Some(last)) = (layout.periods.first(), layout.periods.last())
        && first != last
    {
        out.push_str(&format!("| {first} → {last} |"));
        for &c in measures {
            let from = sum(table, c, |r| table::cell(r, t) == first);
            let to = sum(table, c, |r| table::cell(r, t) == last);
            let (signed, percent) = (format_signed(to - from), percent_change(from, to));
            let header = layout.header(c);
            let change = match &percent {
                Some(percent) => format!("{signed}, {percent}"),
                None => signed.clone(),
            };
            report.finding(
                Topic::Totals,
                &[header, layout.header(t)],
                true,
                format!(
                    "Total {header}: {} in {first}, {} in {last} ({change}).",
                    format_number(from),
                    format_number(to)
                ),
            );
            match percent {
                Some(percent) => out.push_str(&format!(" {signed} ({percent}) |")),
                None => out.push_str(&format!(" {signed} |")),
            }
        }
        out.push('\n');
    }
    report.tables.push(out);
}

/// Per entity: each measure in the first and the last period, the change and its percent; the
/// findings say what grew and what shrank, the next steps start from the laggards.
fn per_entity_change(
    layout: &Layout,
    e: usize,
    entities: &[String],
    (t, first, last): (usize, &String, &String),
    report: &mut Report,
) {
    let table = layout.table;
    let measures = &layout.measures;
    let at = |name: &str, period: &str, c: usize| {
        sum(table, c, |r| table::cell(r, e) == name && table::cell(r, t) == period)
    };
    let mut out = format!("| {} |", layout.header(e));
    for &c in measures {
        let h = layout.header(c);
        out.push_str(&format!(" {h} {first} | {h} {last} | change | change % |"));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(4 * measures.len())));
    let mut next_steps = Vec::new();
    for &c in measures {
        let header = layout.header(c);
        let mut changes: Vec<(&str, f64, f64)> =
            entities.iter().map(|name| (name.as_str(), at(name, first, c), at(name, last, c))).collect();
        changes.sort_by(|a, b| (b.2 - b.1).total_cmp(&(a.2 - a.1)));
        let describe = |list: Vec<&(&str, f64, f64)>| -> String {
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
        let mut sentence = format!("{header}, {first} to {last}: ");
        match (grew.is_empty(), shrank.is_empty()) {
            (false, false) => {
                sentence.push_str(&format!("grew in {}; shrank in {}.", describe(grew), describe(shrank)))
            }
            (false, true) => sentence.push_str(&format!("grew everywhere: {}.", describe(grew))),
            (true, false) => sentence.push_str(&format!("shrank everywhere: {}.", describe(shrank))),
            (true, true) => sentence.push_str("unchanged everywhere."),
        }
        report.finding(Topic::Trend, &[header, layout.header(e)], true, sentence);
        // Suggestions from the last (most telling) measure: the laggards first.
        next_steps.clear();
        for (name, from, to) in changes.iter().rev().filter(|(_, from, to)| to < from) {
            let percent = percent_change(*from, *to).unwrap_or_default();
            next_steps.push(format!(
                "Find out why {name} fell ({percent} {header}) while others grew: pricing, stock, staffing or a lost \
                 account."
            ));
        }
        if let Some((name, from, to)) = changes.first().filter(|(_, from, to)| to > from) {
            let percent = percent_change(*from, *to).unwrap_or_default();
            next_steps.push(format!(
                "See what drove {name}'s growth ({percent} {header}) and whether it can be repeated elsewhere."
            ));
        }
        next_steps.push(format!(
            "Track {header} by {} for more periods before reading a trend into {first} to {last}.",
            layout.header(e)
        ));
    }
    report.next_steps.extend(next_steps);
    for name in entities {
        out.push_str(&format!("| {name} |"));
        for &c in measures {
            let (from, to) = (at(name, first, c), at(name, last, c));
            let percent = percent_change(from, to).unwrap_or_else(|| "n/a".into());
            let (from_text, to_text, change) = (format_number(from), format_number(to), format_signed(to - from));
            report.figures.push(format!(
                "{} of {name}, {first} → {last}: {from_text} → {to_text} ({change}, {percent})",
                layout.header(c)
            ));
            out.push_str(&format!(" {from_text} | {to_text} | {change} | {percent} |"));
        }
        out.push('\n');
    }
    report.tables.push(out);
}

/// Without periods: each entity's total of each measure and its share, the leader and the
/// laggard.
fn per_entity_total(layout: &Layout, e: usize, entities: &[String], report: &mut Report) {
    let table = layout.table;
    let measures = &layout.measures;
    let mut out = format!("| {} |", layout.header(e));
    for &c in measures {
        out.push_str(&format!(" {} | share |", layout.header(c)));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(2 * measures.len())));
    for name in entities {
        out.push_str(&format!("| {name} |"));
        for &c in measures {
            let total = sum(table, c, |_| true);
            let part = sum(table, c, |r| table::cell(r, e) == name);
            let part_share = share(part, total);
            report.figures.push(format!(
                "{} of {name}: {} ({part_share} of the total)",
                layout.header(c),
                format_number(part)
            ));
            out.push_str(&format!(" {} | {part_share} |", format_number(part)));
        }
        out.push('\n');
    }
    report.tables.push(out);
    for &c in measures {
        let header = layout.header(c);
        let total = sum(table, c, |_| true);
        let mut sums: Vec<(&str, f64)> =
            entities.iter().map(|name| (name.as_str(), sum(table, c, |r| table::cell(r, e) == name))).collect();
        sums.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let (Some((top, top_value)), Some((low, low_value))) = (sums.first(), sums.last()) {
            report.finding(
                Topic::Totals,
                &[header, layout.header(e)],
                true,
                format!(
                    "Total {header}: {}. {top} leads with {} ({}); {low} is lowest with {} ({}).",
                    format_number(total),
                    format_number(*top_value),
                    share(*top_value, total),
                    format_number(*low_value),
                    share(*low_value, total)
                ),
            );
            report.next_steps.push(format!("Find out what holds {low}'s {header} back compared with {top}."));
        }
    }
    if layout.time.is_none() {
        report.next_steps.push(format!("Add a period column to see how each {} moves over time.", layout.header(e)));
    }
}
