//! The deliverable as each kind of model gets it written: a basic model's next steps around the
//! computed findings; a capable model's summary, repaired when it invents a number, and the
//! computed findings standing in when the repair fails too.

use std::time::{Duration, Instant};

use super::SURVEY;
use crate::config::StrategyConfig;
use crate::engine::Capability;
use crate::engine::fake::ScriptedGenerator;
use crate::protocol::{Brief, parse_brief};
use crate::strategy::compose::{Draft, Writer};

const HONEST_SUMMARY: &str = "62.5% of respondents subscribed, and North leads at 75.0%. South is the oldest \
region, with a mean age of 41.5.";
const NEXT_STEPS: &str = "## What to look into next\n- Find out why South and East lag North on subscriptions.\n\
- Check whether the age gap between South and North holds with more respondents.\n\
- Collect more responses from East.";

fn brief(title: &str, description: &str) -> Brief {
    let value = serde_json::json!({
        "task_id": "t-survey", "mode": "prototype", "title": title, "category": "data",
        "task_type": "data-analysis-summary", "description": description,
    });
    parse_brief(value.to_string().as_bytes()).unwrap()
}

async fn write_with(brief: &Brief, capability: Capability, replies: &[&str]) -> (Draft, ScriptedGenerator) {
    let plan = crate::strategy::plan(brief, &StrategyConfig::default());
    let analysis = plan.analysis.clone().expect("a data brief with a table is analysed");
    let fake = ScriptedGenerator::new(capability, replies.iter().copied());
    let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(60), 1);
    let draft = super::super::write(brief, &plan, &analysis, &mut writer).await.unwrap();
    (draft, fake)
}

fn position(text: &str, heading: &str) -> usize {
    text.find(heading).unwrap_or_else(|| panic!("no {heading:?} in:\n{text}"))
}

#[tokio::test]
async fn a_capable_models_invented_number_is_named_in_the_repair() {
    let invented = format!("## Summary\n{HONEST_SUMMARY} That would mean 4120 subscribers nationwide.\n\n{NEXT_STEPS}");
    let honest = format!("## Summary\n{HONEST_SUMMARY}\n\n{NEXT_STEPS}");
    let (draft, fake) = write_with(&brief("Survey results", SURVEY), Capability::Full, &[&invented, &honest]).await;
    let prompts = fake.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(prompts[0].contains("- subscribed = yes: 5 of 8 (62.5%)"), "{}", prompts[0]);
    assert!(prompts[0].contains("| All | 8 | 100.0% | 37.75 | 5 (62.5%) |"), "{}", prompts[0]);
    assert!(prompts[0].contains("The brief asks first about: averages, yes/no rates, counts and shares."));
    assert!(!prompts[0].contains("4120"));
    assert!(prompts[1].contains("in neither the data nor the verified figures (4120)"), "{}", prompts[1]);
    let text = &draft.text;
    assert!(text.starts_with(&format!("## Summary\n\n{HONEST_SUMMARY}\n\n## Results\n\n")), "{text}");
    assert!(position(text, "## Results") < position(text, "## What to look into next"));
    assert!(text.contains("| North | 4 | 50.0% | 35 | 3 (75.0%) |"), "{text}");
    assert!(text.ends_with(NEXT_STEPS.split_once('\n').unwrap().1), "{text}");
    assert!(!text.contains("4120") && !text.contains("## Key findings"), "{text}");
    assert!(draft.checks.iter().all(|c| c.passed), "{:?}", draft.checks);
}

#[tokio::test]
async fn when_the_repair_fails_too_the_computed_findings_stand_in() {
    let invented = format!("## Summary\nAbout 4120 people subscribed.\n\n{NEXT_STEPS}");
    let empty_summary = format!("## Summary\n\n{NEXT_STEPS}");
    let (draft, fake) =
        write_with(&brief("Survey results", SURVEY), Capability::Full, &[&invented, &empty_summary]).await;
    assert_eq!(fake.prompts().len(), 2);
    assert!(fake.prompts()[1].contains("4120"));
    let text = &draft.text;
    assert!(
        text.starts_with(
            "## Key findings\n\n\
             - Mean age: 37.75 (median 37, min 27, max 52); by region: South 41.5, East 39.5, North 35.\n\
             - 62.5% of respondents subscribed (5 of 8); by region: North 75.0%, South 50.0%, East 50.0%.\n\
             - 8 respondents by region: North 4 (50.0%), South 2 (25.0%), East 2 (25.0%).\n\n## Results\n\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "## What to look into next\n\n\
             - Find out why the subscribed rate is lowest in South and East (50.0%) when North reaches 75.0%.\n"
        ),
        "{text}"
    );
    assert!(!text.contains("4120") && !text.contains("## Summary"), "{text}");
    assert!(draft.checks[0].passed, "{:?}", draft.checks);
}

#[tokio::test]
async fn a_basic_model_writes_only_the_next_steps() {
    let steps = "- Ask North what keeps its respondents subscribed.\n- Survey more people in East.";
    let (draft, fake) = write_with(&brief("Survey results", SURVEY), Capability::Basic, &[steps]).await;
    assert_eq!(fake.prompts().len(), 1);
    let text = &draft.text;
    assert!(text.starts_with("## Key findings\n\n- Mean age: 37.75"), "{text}");
    assert!(text.ends_with(&format!("## What to look into next\n\n{steps}")), "{text}");
    // A reply that is no list: the computed next steps stand in.
    let (draft, _) = write_with(&brief("Survey results", SURVEY), Capability::Basic, &["Great data!"]).await;
    assert!(draft.text.contains("- Collect more respondents from South and East (2 each)"), "{}", draft.text);
}

#[tokio::test]
async fn a_cleaning_brief_gets_the_cleaned_table_as_a_file() {
    let description = "Please deduplicate our customer list:\nname,email,spend\nAnn,ann@x.com,10\nann, ANN@X.com ,10\n\
                       Bo,bo@y.org,5\n";
    let (draft, _) = write_with(&brief("Customer list", description), Capability::Basic, &[""]).await;
    assert!(draft.text.contains("## Cleaning\n\n- Removed 1 duplicate row(s)"), "{}", draft.text);
    assert_eq!(draft.artifacts[0].filename.as_deref(), Some("cleaned.csv"));
    assert_eq!(draft.artifacts[0].content, "name,email,spend\nAnn,ann@x.com,10\nBo,bo@y.org,5\n");
    assert!(draft.checks.iter().all(|c| c.passed), "{:?}", draft.checks);
}
