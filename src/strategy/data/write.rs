//! The data deliverable: the findings (or, from a capable model, a summary that interprets them),
//! the results as Markdown tables, and what to look into next — every number computed in Rust.
//! A basic model is asked only for the next steps; a prose one for nothing (the judge found a
//! 1.5B model's reading of the figures contradicting them); a full one for the summary and the
//! next steps, checked (sections present, no number the data and our figures do not hold) and
//! repaired once, with the computed findings and next steps standing in when it still fails.
//! Briefs that ask for cleaning get the cleaned table as a CSV file too.

use super::cleaning::clean_table;
use super::numbers::{invented_numbers, numbers_check};
use super::question::Question;
use super::table::{self, find_table, to_csv};
use super::{Analysis, Topic};
use crate::engine::{Capability, EngineError, FinishReason};
use crate::protocol::{Artifact, Brief, Check};
use crate::strategy::compose::{self, Ask, Draft, Reply, Writer};
use crate::strategy::{GenerationPlan, clean, prompt};

/// What a capable model is told about the job.
const SYSTEM: &str = "You are a senior data analyst writing for a client who paid for a clear, correct reading of \
their data. The figures you are given were computed exactly from the client's table: interpret them; never \
recompute, round or invent a number.";
const SUMMARY: &str = "## Summary";
const NEXT_STEPS: &str = "## What to look into next";
/// The capable model's summary: asked once, repaired once.
const ATTEMPTS: usize = 2;
/// Room for a summary and its bullets, whatever the phase's plan.
const MIN_TOKENS: usize = 400;
/// Asked for three to five sentences; a little more is tolerated, an essay is not a summary.
const MAX_SUMMARY_SENTENCES: usize = 7;

/// Write the data brief's deliverable from `analysis` (see the module docs).
pub async fn write(
    brief: &Brief,
    plan: &GenerationPlan,
    analysis: &Analysis,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let question = Question::read(&format!("{}\n{}", brief.title, table::text_around_table(&brief.description)));
    let computed_findings = || {
        let bullets: String = question.key_findings(analysis).iter().map(|f| format!("- {f}\n")).collect();
        format!("## Key findings\n\n{}", bullets.trim_end())
    };
    let computed_next_steps = || analysis.next_steps.iter().map(|s| format!("- {s}\n")).collect::<String>();
    let (opening, next_steps) = match writer.capability() {
        Capability::Full => match interpret(brief, plan, analysis, &question, writer).await? {
            Ok(written) => (format!("{SUMMARY}\n\n{}", written.summary), written.next_steps),
            Err(failure) => {
                tracing::info!(%failure, "the model's data summary failed its checks; using the computed findings");
                (computed_findings(), computed_next_steps())
            }
        },
        // A prose model's next steps read well and contradict the figures ("North shrank" when
        // it grew, in the judge's runs), which no number check catches: the computed ones stand.
        Capability::Prose => (computed_findings(), computed_next_steps()),
        Capability::Basic => match suggest_next_steps(brief, plan, analysis, writer).await? {
            Some(next_steps) => (computed_findings(), next_steps),
            None => {
                tracing::info!("the model's next steps for the data brief failed their checks; using computed ones");
                (computed_findings(), computed_next_steps())
            }
        },
    };
    let mut text =
        format!("{opening}\n\n## Results\n\n{}\n\n{NEXT_STEPS}\n\n{}", analysis.tables, next_steps.trim_end());
    let mut checks = vec![numbers_check(&text, analysis, &brief.description)];
    let mut artifacts = Vec::new();
    if asks_for_cleanup(brief, &question)
        && let Some(table) = find_table(&brief.description)
    {
        let (cleaned, changes) = clean_table(&table);
        let csv = to_csv(&cleaned);
        text.push_str("\n\n## Cleaning\n\n");
        for change in &changes {
            text.push_str(&format!("- {change}\n"));
        }
        checks.push(Check {
            name: "cleaned_csv".into(),
            passed: find_table(&csv).is_some_and(|t| t.rows.len() == cleaned.rows.len()),
            detail: format!("{} rows, {} columns, parsed back as written", cleaned.rows.len(), cleaned.headers.len()),
        });
        artifacts.push(Artifact::file("Cleaned data", "cleaned.csv", "text/csv", csv));
    }
    Ok(Draft { text: text.trim_end().to_string(), checks, artifacts, complete: true, ..Draft::default() })
}

/// Whether the brief asks for its data cleaned (a clean-up task), not only read.
fn asks_for_cleanup(brief: &Brief, question: &Question) -> bool {
    let named = format!("{} {}", brief.task_type.as_deref().unwrap_or_default(), brief.title).to_lowercase();
    named.contains("clean") || named.contains("dedup") || named.contains("tidy") || question.asks_for_cleaning()
}

/// A basic model's next steps, kept only if they are the bullet list asked for, invent no number
/// and do not echo the brief.
async fn suggest_next_steps(
    brief: &Brief,
    plan: &GenerationPlan,
    analysis: &Analysis,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let messages = prompt::messages(brief, plan.requested_words, plan.target_words, None, &analysis.figures);
    let ask = Ask::new(messages[0].content.clone(), messages[1].content.clone(), plan.max_new_tokens).prefix("-");
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let next_steps = clean::clean_output(&reply.text, reply.finish != FinishReason::Eos);
    let numbers_ok = numbers_check(&next_steps, analysis, &brief.description).passed;
    let bullets = next_steps.lines().filter(|l| l.trim_start().starts_with(['-', '*'])).count();
    Ok((numbers_ok && bullets >= 2 && !next_steps.contains("## Brief")).then_some(next_steps))
}

/// What a capable model wrote, checked.
struct Written {
    summary: String,
    next_steps: String,
}

/// Ask a capable model for the summary and next steps; one repair names what failed.
async fn interpret(
    brief: &Brief,
    plan: &GenerationPlan,
    analysis: &Analysis,
    question: &Question,
    writer: &mut Writer<'_>,
) -> Result<Result<Written, String>, EngineError> {
    let ask = Ask::new(SYSTEM, capable_prompt(brief, analysis, question), plan.max_new_tokens.max(MIN_TOKENS));
    writer.ask_until(&ask, ATTEMPTS, |reply| accept(reply, analysis, &brief.description)).await
}

fn capable_prompt(brief: &Brief, analysis: &Analysis, question: &Question) -> String {
    let mut out = prompt::brief_text(brief);
    out.push_str("\n## Verified figures (computed exactly from the data)\n");
    for figure in &analysis.figures {
        out.push_str(&format!("- {figure}\n"));
    }
    out.push_str(&format!("\n## Computed tables (attached to your answer as they are)\n{}\n", analysis.tables));
    out.push_str("\n## Your task\n");
    if !question.asked().is_empty() {
        let asked: Vec<&str> = question.asked().iter().map(|t| topic_label(*t)).collect();
        out.push_str(&format!("The brief asks first about: {}.\n", asked.join(", ")));
    }
    out.push_str(&format!(
        "Write exactly two sections in Markdown and nothing else:\n\n{SUMMARY}\nThree to five sentences that answer \
         the brief's questions from the verified figures, the most important first, and say what they mean for the \
         client. Use only numbers that appear in the verified figures or tables, written exactly as they appear \
         there; do not calculate, round or estimate new ones.\n\n{NEXT_STEPS}\nThree to five bullet points (`- `), \
         each a concrete next step that names the groups, columns or periods it concerns."
    ));
    out
}

fn topic_label(topic: Topic) -> &'static str {
    match topic {
        Topic::Size => "how much data there is",
        Topic::Totals => "totals",
        Topic::Trend => "changes over time",
        Topic::Counts => "counts and shares",
        Topic::Averages => "averages",
        Topic::Rates => "yes/no rates",
        Topic::Ranking => "rankings",
        Topic::Differences => "differences between groups",
        Topic::Duplicates => "duplicates",
    }
}

/// The model's reply taken if both sections have content and every number in them is the
/// data's or ours; otherwise what failed, worded for the repair prompt.
fn accept(reply: &Reply, analysis: &Analysis, source: &str) -> Result<Written, String> {
    let text = clean::clean_output(&reply.text, reply.finish != FinishReason::Eos);
    if text.contains("## Brief") || text.contains("## Verified figures") {
        return Err("it repeated the brief or the figures instead of interpreting them".into());
    }
    let summary = section(&text, &["summary"]);
    let next_section = section(&text, &["what to look into next", "next steps"]);
    let next_steps: Vec<&str> =
        next_section.lines().filter(|l| l.trim_start().starts_with(['-', '*']) && l.trim().len() > 2).collect();
    let sentences = compose::sentences(&summary).len();
    if sentences == 0 {
        return Err(format!("the `{SUMMARY}` section was missing or empty: write three to five sentences under it"));
    }
    if sentences > MAX_SUMMARY_SENTENCES {
        return Err(format!("the summary ran to {sentences} sentences: keep it to three to five"));
    }
    if next_steps.len() < 2 {
        return Err(format!("the `{NEXT_STEPS}` section needs three to five bullet points (`- `)"));
    }
    let next_steps = next_steps.join("\n");
    let invented = invented_numbers(&format!("{summary}\n{next_steps}"), analysis, source);
    if !invented.is_empty() {
        return Err(format!(
            "it stated numbers that are in neither the data nor the verified figures ({}); use only the verified \
             figures, written exactly as given",
            invented.join(", ")
        ));
    }
    Ok(Written { summary, next_steps })
}

/// The body of the first `#` heading in `text` whose title starts with one of `titles`
/// (lower-case), up to the next heading; trimmed.
fn section(text: &str, titles: &[&str]) -> String {
    let is_heading = |line: &str| line.trim_start().starts_with('#');
    let title_of = |line: &str| line.trim().trim_start_matches('#').trim().trim_end_matches(':').to_lowercase();
    let mut lines = text.lines().skip_while(|l| !(is_heading(l) && titles.iter().any(|t| title_of(l).starts_with(t))));
    if lines.next().is_none() {
        return String::new();
    }
    lines.take_while(|l| !is_heading(l)).collect::<Vec<_>>().join("\n").trim().to_string()
}
