//! Tests of the data strategy on whole tables, with figures computed by hand: the sales
//! summary ([`analysis`]), a survey with an id, a category, a number and a yes/no column, and the
//! writing paths for a basic and a capable model ([`writing`]).

mod analysis;
mod writing;

/// A survey brief: 8 respondents in 3 regions, an age and a yes/no answer each. By hand: mean
/// age 37.75 (median 37, 27 to 52); North 4 rows, mean age 35, 3 of 4 subscribed (75.0%);
/// South 2 rows, 41.5, 1 of 2 (50.0%); East 2 rows, 39.5, 1 of 2 (50.0%); 5 of 8 subscribed
/// (62.5%).
const SURVEY: &str = "Our customer survey (CSV):\n\
    respondent_id,region,age,subscribed\n\
    1,North,34,yes\n\
    2,South,45,no\n\
    3,North,29,yes\n\
    4,East,52,no\n\
    5,South,38,yes\n\
    6,North,41,no\n\
    7,East,27,yes\n\
    8,North,36,yes\n\
    What is the average age per region, and what share of respondents subscribed?";

fn sales_description() -> String {
    let path = format!("{}/tests/fixtures/briefs/data-analysis-sales-csv.json", env!("CARGO_MANIFEST_DIR"));
    let brief: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    brief["description"].as_str().unwrap().to_string()
}
