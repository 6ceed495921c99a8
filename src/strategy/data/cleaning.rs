//! Cleaning a table the way a buyer would by hand, for briefs that ask for it: empty rows
//! dropped; emails, phone numbers, dates and numbers each written one way; rows that are then
//! the same record dropped; each category spelt one way (its most common spelling); ids and
//! emails that still repeat reported, not guessed at. One sentence, with its count, per kind of
//! change.

use std::collections::BTreeMap;

use super::kinds::{self, Kind};
use super::normalise::{self, duplicates, name_some, normalised_rows};
use super::table::Table;

/// `table` cleaned (see the module docs), and one sentence per kind of change made.
pub fn clean_table(table: &Table) -> (Table, Vec<String>) {
    let mut changes = Vec::new();
    let kinds = kinds::column_kinds(table);
    let kept: Vec<usize> =
        (0..table.rows.len()).filter(|&r| table.rows[r].iter().any(|c| !c.trim().is_empty())).collect();
    let empty = table.rows.len() - kept.len();
    if empty > 0 {
        changes.push(format!("Removed {empty} empty row(s)."));
    }
    let originals: Vec<Vec<String>> = kept.iter().map(|&r| table.rows[r].clone()).collect();
    let normalised = normalised_rows(&Table { headers: table.headers.clone(), rows: originals.clone() }, &kinds);
    let (repeated, repeats) = duplicates(&normalised, &kinds);
    if !repeated.is_empty() {
        changes.push(format!(
            "Removed {} duplicate row(s): identical to an earlier row once trimmed, case-folded and written one way.",
            repeated.len()
        ));
    }
    let unique: Vec<usize> = (0..normalised.len()).filter(|i| !repeated.contains(i)).collect();
    let mut rows: Vec<Vec<String>> = unique.iter().map(|&i| normalised[i].clone()).collect();
    for (c, kind) in kinds.iter().enumerate() {
        let header = &table.headers[c];
        let changed = unique.iter().filter(|&&i| originals[i].get(c) != normalised[i].get(c)).count();
        let sentence = match kind {
            Kind::Number => format!("Wrote {changed} number(s) in \"{header}\" without thousands separators."),
            Kind::Email => format!("Trimmed and lower-cased {changed} email address(es) in \"{header}\"."),
            Kind::Phone => format!("Wrote {changed} phone number(s) in \"{header}\" as digits only, a leading + kept."),
            Kind::Date => format!("Wrote {changed} date(s) in \"{header}\" as YYYY-MM-DD."),
            _ => {
                let unified = unify_spellings(&mut rows, c);
                if unified > 0 {
                    changes.push(format!("Unified {unified} spelling(s) in \"{header}\"."));
                }
                continue;
            }
        };
        if changed > 0 {
            changes.push(sentence);
        }
    }
    for repeat in repeats.iter().filter(|r| r.extra > 0) {
        let header = &table.headers[repeat.column];
        changes.push(format!(
            "Found {} row(s) repeating an earlier row's \"{header}\" ({}) but differing elsewhere; kept them for you \
             to merge.",
            repeat.extra,
            name_some(&repeat.values)
        ));
    }
    if changes.is_empty() {
        changes.push("The data was already clean: no empty or duplicate rows, one spelling per category.".into());
    }
    (Table { headers: table.headers.clone(), rows }, changes)
}

/// Spellings of one value in column `c` that differ only in case or spacing: the most common
/// wins (on a tie, the first in sort order). Returns how many cells changed.
fn unify_spellings(rows: &mut [Vec<String>], c: usize) -> usize {
    let key = |value: &str| normalise::row_key(&[value.to_string()]).remove(0);
    let mut spellings: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for value in rows.iter().filter_map(|r| r.get(c)).filter(|v| !v.is_empty()) {
        *spellings.entry(key(value.as_str())).or_default().entry(value.clone()).or_default() += 1;
    }
    let mut changed = 0;
    for row in rows.iter_mut() {
        let Some(cell) = row.get_mut(c) else { continue };
        if let Some(forms) = spellings.get(&key(cell.as_str()))
            && let Some((best, _)) = forms.iter().max_by_key(|(form, n)| (**n, std::cmp::Reverse((*form).clone())))
            && best != cell
        {
            *cell = best.clone();
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::super::table::{find_table, to_csv};
    use super::*;

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

    #[test]
    fn contacts_are_normalised_before_duplicates_are_counted() {
        // The third row is the first written another way; the last shares an email with the second.
        let csv = "name,email,phone,signup_date,plan,spend\n\
                   Ann Lee,ann@example.com,+1 (555) 010-0100,2024-03-01,Pro,120\n\
                   Bo Chan,bo@example.com,555.010.0200,03/02/2024,Basic,40\n\
                   ann lee, ANN@Example.com ,+1 555 010 0100,03/01/2024,pro,120\n\
                   Cy Diaz,cy@example.com,555-010-0300,5 March 2024,Basic,40\n\
                   Bo Chan,Bo@Example.com,555 010 0299,2024-03-02,Basic,45\n";
        let table = find_table(csv).expect("the customer table");
        let (cleaned, changes) = clean_table(&table);
        assert_eq!(
            changes,
            [
                "Removed 1 duplicate row(s): identical to an earlier row once trimmed, case-folded and written one way.",
                "Trimmed and lower-cased 1 email address(es) in \"email\".",
                "Wrote 4 phone number(s) in \"phone\" as digits only, a leading + kept.",
                "Wrote 2 date(s) in \"signup_date\" as YYYY-MM-DD.",
                "Found 1 row(s) repeating an earlier row's \"email\" (bo@example.com) but differing elsewhere; kept \
                 them for you to merge.",
            ]
        );
        assert_eq!(
            to_csv(&cleaned),
            "name,email,phone,signup_date,plan,spend\n\
             Ann Lee,ann@example.com,+15550100100,2024-03-01,Pro,120\n\
             Bo Chan,bo@example.com,5550100200,2024-03-02,Basic,40\n\
             Cy Diaz,cy@example.com,5550100300,2024-03-05,Basic,40\n\
             Bo Chan,bo@example.com,5550100299,2024-03-02,Basic,45\n"
        );
    }
}
