//! The analysis of whole tables: what is computed, and what is never (an id's total).

use super::super::question::Question;
use super::super::table::text_around_table;
use super::super::*;
use super::{SURVEY, sales_description};

fn has(list: &[String], expected: &[&str]) {
    for item in expected {
        assert!(list.iter().any(|f| f == item), "missing {item:?} in {list:#?}");
    }
}

#[test]
fn the_sales_brief_gets_exact_totals_and_changes() {
    let table = find_table(&sales_description()).expect("the CSV in the brief");
    assert_eq!(table.headers, ["region", "quarter", "units", "revenue_usd"]);
    assert_eq!(table.rows.len(), 8);
    let analysis = analyse(&table);
    let kinds: Vec<Kind> = analysis.columns.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, [Kind::Category, Kind::Period, Kind::Number, Kind::Number]);
    has(
        &analysis.figures,
        &[
            "total revenue_usd in Q1: 144,100",
            "total revenue_usd in Q2: 161,220",
            "total units: 7,510",
            "revenue_usd of North, Q1 → Q2: 48,000 → 54,000 (+6,000, +12.5%)",
            "units of South, Q1 → Q2: 800 → 760 (-40, -5.0%)",
            "revenue_usd of East, Q1 → Q2: 39,900 → 50,820 (+10,920, +27.4%)",
            "revenue_usd of West, Q1 → Q2: 25,800 → 27,520 (+1,720, +6.7%)",
            "mean revenue_usd: 38,165",
            "median units: 875",
        ],
    );
    for row in [
        "| North | 1,200 | 1,350 | +150 | +12.5% |",
        "| Q2 | 3,960 | 161,220 |",
        "| Q1 → Q2 | +410 (+11.5%) | +17,120 (+11.9%) |",
    ] {
        assert!(analysis.tables.contains(row), "missing {row:?} in\n{}", analysis.tables);
    }
    has(
        &analysis.findings,
        &[
            "Total revenue_usd: 144,100 in Q1, 161,220 in Q2 (+17,120, +11.9%).",
            "revenue_usd, Q1 to Q2: grew in East (+10,920, +27.4%), North (+6,000, +12.5%), West (+1,720, +6.7%); \
             shrank in South (-1,520, -5.0%).",
        ],
    );
    // Each row is already a region's quarter: counting rows per region says nothing.
    assert!(!analysis.tables.contains("| region | rows | share |"), "{}", analysis.tables);
    // What the brief asks (growth, totals) leads; the supporting means stay in the tables.
    let question = Question::read(&text_around_table(&sales_description()));
    let key = question.key_findings(&analysis);
    assert_eq!(key.len(), 4, "{key:#?}");
    assert!(key.iter().all(|f| f.contains("Q1")), "{key:#?}");
}

#[test]
fn invented_numbers_are_caught() {
    let source = sales_description();
    let analysis = analyse(&find_table(&source).unwrap());
    let honest = format!("East grew most, +27.4%; revenue reached 161,220 in Q2.\n{}", analysis.tables);
    assert!(numbers_check(&honest, &analysis, &source).passed);
    let invented = numbers_check("Revenue grew 4,120 units, about 0.001% a year.", &analysis, &source);
    assert!(!invented.passed);
    assert!(invented.detail.contains("4120") && invented.detail.contains("0.001"), "{}", invented.detail);
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
    let analysis = analyse(&find_table("Products:\nproduct,sales\nTea,300\nCoffee,700\n").unwrap());
    has(&analysis.figures, &["sales of Coffee: 700 (70.0% of the total)", "total sales: 1,000"]);
}

#[test]
fn the_survey_is_counted_averaged_and_rated_per_region() {
    let analysis = analyse(&find_table(SURVEY).expect("the survey table"));
    let kinds: Vec<Kind> = analysis.columns.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, [Kind::Id, Kind::Category, Kind::Number, Kind::YesNo]);
    has(
        &analysis.figures,
        &[
            "rows: 8",
            "columns: respondent_id (id), region (category), age (number), subscribed (yes/no)",
            "respondents by region, North: 4 of 8 (50.0%)",
            "respondents by region, South: 2 of 8 (25.0%)",
            "respondents by region, East: 2 of 8 (25.0%)",
            "mean age: 37.75",
            "median age: 37",
            "min age: 27",
            "max age: 52",
            "mean age, region North: 35",
            "mean age, region South: 41.5",
            "mean age, region East: 39.5",
            "subscribed = yes: 5 of 8 (62.5%)",
            "subscribed rate, region North: 75.0%",
            "subscribed rate, region South: 50.0%",
            "subscribed rate, region East: 50.0%",
            "difference in mean age, South − North: 6.5",
            "difference in subscribed rate, North − South and East: 25.0 percentage points",
            "duplicate rows: 0",
        ],
    );
    has(
        &analysis.findings,
        &[
            "The data has 8 respondents.",
            "8 respondents by region: North 4 (50.0%), South 2 (25.0%), East 2 (25.0%).",
            "Mean age: 37.75 (median 37, min 27, max 52); by region: South 41.5, East 39.5, North 35.",
            "62.5% of respondents subscribed (5 of 8); by region: North 75.0%, South 50.0%, East 50.0%.",
            "Most respondents: North (4); fewest: South and East (2).",
            "Highest mean age: South (41.5); lowest: North (35).",
            "Mean age differs by 6.5 between South (41.5) and North (35).",
            "Highest subscribed rate: North (75.0%); lowest: South and East (50.0%).",
            "The subscribed rate differs by 25.0 percentage points between North (75.0%) and South and East (50.0%).",
            "No duplicate rows, and no repeated respondent_id.",
        ],
    );
    for row in [
        "| region | respondents | share | mean age | subscribed (yes) |",
        "| North | 4 | 50.0% | 35 | 3 (75.0%) |",
        "| South | 2 | 25.0% | 41.5 | 1 (50.0%) |",
        "| East | 2 | 25.0% | 39.5 | 1 (50.0%) |",
        "| All | 8 | 100.0% | 37.75 | 5 (62.5%) |",
        "| age | 8 | 37.75 | 37 | 27 | 52 |",
        "| subscribed | 5 | 8 | 62.5% |",
        "| respondent_id | id | 8 | 8 |",
    ] {
        assert!(analysis.tables.contains(row), "missing {row:?} in\n{}", analysis.tables);
    }
    assert_eq!(
        analysis.next_steps,
        [
            "Find out why the subscribed rate is lowest in South and East (50.0%) when North reaches 75.0%.",
            "Collect more respondents from South and East (2 each) before reading much into their figures.",
            "Check whether the gap in mean age between South and North holds with more respondents.",
        ]
    );
}

#[test]
fn an_id_is_never_summed_or_averaged() {
    let analysis = analyse(&find_table(SURVEY).unwrap());
    let lines = analysis.figures.iter().chain(&analysis.findings).chain(&analysis.next_steps).map(String::as_str);
    for line in lines.chain(analysis.tables.lines()) {
        let lower = line.to_lowercase();
        // Age is a level and the id no number: nothing here is added up.
        assert!(!lower.contains("total") && !lower.contains("sum"), "{line}");
        if lower.contains("respondent_id") {
            assert!(!["mean", "median", "min", "max"].iter().any(|w| lower.contains(w)), "{line}");
        }
    }
}

#[test]
fn the_question_decides_which_findings_lead() {
    let analysis = analyse(&find_table(SURVEY).unwrap());
    let question = Question::read(&text_around_table(SURVEY));
    assert_eq!(
        question.key_findings(&analysis),
        [
            "Mean age: 37.75 (median 37, min 27, max 52); by region: South 41.5, East 39.5, North 35.",
            "62.5% of respondents subscribed (5 of 8); by region: North 75.0%, South 50.0%, East 50.0%.",
            "8 respondents by region: North 4 (50.0%), South 2 (25.0%), East 2 (25.0%).",
        ]
    );
    let compare = Question::read("Compare the regions: which ranks highest on subscriptions?");
    let key = compare.key_findings(&analysis);
    // Differences were asked first, then rankings; the headlines follow.
    assert_eq!(key[0], "Mean age differs by 6.5 between South (41.5) and North (35).", "{key:#?}");
    assert_eq!(key[2], "Most respondents: North (4); fewest: South and East (2).", "{key:#?}");
    assert_eq!(key.len(), 8, "{key:#?}");
}

#[test]
fn repeated_rows_and_ids_are_counted() {
    let text = format!("{}\n", SURVEY.replace("8,North,36,yes\n", "8,North,36,yes\n8,north, 36 ,YES\n3,South,50,no\n"));
    let table = find_table(&text).unwrap();
    assert_eq!(table.rows.len(), 10);
    let analysis = analyse(&table);
    has(&analysis.figures, &["duplicate rows: 1", "rows repeating an earlier respondent_id: 1"]);
    has(
        &analysis.findings,
        &["Duplicates: 1 row(s) repeat an earlier row (identical after trimming, ignoring case and writing emails, \
           phone numbers and dates one way); 1 more row(s) repeat an earlier respondent_id (3)."],
    );
    assert!(analysis.next_steps[0].starts_with("Remove the duplicate rows"), "{:?}", analysis.next_steps);
}
