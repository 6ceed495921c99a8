//! Long-form writing (blog posts, articles, press releases, newsletters, website copy): an
//! outline first — the items the brief lists, or headings the model proposes — then the piece
//! written section by section under those headings, each to its share of the length, each
//! asked to use its share of the keywords and facts. Afterwards the whole is brought within
//! ±10% of the target (sections trimmed at sentence ends, or a section added) and any keyword
//! still missing gets a paragraph of its own.
//!
//! The prototype is the full outline with the opening sections written; the final writes every
//! section.

mod outline;

use super::compose::{Draft, Writer, check};
use super::prose::{self, ListSpec};
use super::{GenerationPlan, clean, compose};
use crate::engine::EngineError;
use crate::protocol::{Brief, Phase};
use outline::outline;

const SYSTEM: &str = "You are a professional writer. Write clear, specific, engaging paragraphs that follow the \
brief exactly. Use the facts and names from the brief and never contradict them. No headings, no lists, no \
notes about yourself.";

/// The final lands within this share of the target (the general check allows 15%).
const LENGTH_AIM: f64 = 0.10;

/// One section of the outline: its heading and what it must cover.
#[derive(Debug, Clone, PartialEq)]
struct Section {
    heading: String,
    /// The brief's own item this section covers, if it listed items.
    covers: Option<String>,
    keywords: Vec<String>,
    words: usize,
    text: String,
}

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let req = &plan.requirements;
    let full_target = plan.requested_words.unwrap_or(plan.target_words) as usize;
    let target = plan.target_words as usize;
    let subject = prose::subject(&brief.description);
    let kind = brief.kind_of_work();
    let mut checks = Vec::new();
    let title = title(brief, &subject, &req.names, writer).await?;

    let subject_line = if brief.description.to_lowercase().contains("subject line") {
        let spec = ListSpec {
            kind: "email subject line".into(),
            count: 1,
            max_chars: Some(70),
            example: &["Your New Training Plan Is Here", "Three Ways to Run Stronger This Month"],
        };
        let line = prose::write_list(writer, SYSTEM, &subject, &req.names, &spec, 3).await?.pop();
        checks.push(check(
            "subject_line",
            line.is_some(),
            if line.is_some() { "a subject line" } else { "no subject line written" },
        ));
        line
    } else {
        None
    };

    let mut sections = outline(brief, plan, &subject, full_target, writer).await?;
    let intro_words = (full_target / 10).clamp(40, 120);
    let style = style(plan);
    let context = format!(
        "{kind} \"{title}\". Brief: {subject}\nOutline: {}",
        sections.iter().map(|s| s.heading.as_str()).collect::<Vec<_>>().join("; ")
    );

    // The opening, then each section while the phase's length and the time allow.
    let intro_instruction = format!(
        "Write the opening paragraph of the {kind}: about {intro_words} words{style}, that draws the reader in and says what the piece covers."
    );
    let intro_instruction = match req.names.is_empty() {
        true => intro_instruction,
        false => format!("{intro_instruction} Name {} exactly as written.", req.names.join(" and ")),
    };
    // The opening names the brand: asked again if it does not, the last time started with the
    // name ("At Ironworks Gym,"), which a small model then carries on from.
    let mut intro = String::new();
    for attempt in 0..3 {
        let opening = match (attempt, req.names.first()) {
            (2, Some(name)) => format!("At {name},"),
            _ => String::new(),
        };
        let Some(text) =
            prose::write_paragraphs_from(writer, SYSTEM, &context, &intro_instruction, intro_words, 0.15, &opening)
                .await?
        else {
            break;
        };
        intro = compose::trim_to_words(&prose::fix_names(&text, &req.names), intro_words * 13 / 10);
        if req.names.iter().all(|name| intro.contains(name.as_str())) {
            break;
        }
    }
    let mut words_so_far = clean::word_count(&intro) + clean::word_count(&title);
    let mut written = 0;
    for i in 0..sections.len() {
        let remaining_sections = sections.len() - i;
        // A prototype stops at its length; a final writes every section (and is fitted after).
        let prototype_full = brief.phase == Phase::Prototype && words_so_far + sections[i].words / 2 > target;
        if prototype_full || !writer.has_time() {
            break;
        }
        let share = 1.0 / (remaining_sections + 1) as f64;
        let text = write_section(writer, &context, &kind, &sections[i], &style, &req.names, share).await?;
        words_so_far += clean::word_count(&text) + clean::word_count(&sections[i].heading);
        sections[i].text = text;
        written += 1;
    }

    if brief.phase == Phase::Final {
        fit_length(writer, &context, &kind, &style, &mut sections, &intro, &title, target, &req.names).await?;
    }
    // Every keyword, in the prototype too: the judge reads its checks.
    add_missing_keywords(writer, &context, &mut sections, &req.keywords, &req.names).await?;
    let complete = sections.iter().all(|s| !s.text.is_empty());
    let text = assemble(&title, subject_line.as_deref(), &intro, &sections);
    let note = (!complete && brief.phase == Phase::Prototype).then(|| {
        format!(
            "The outline is complete; {written} of its {} sections are written here, and the final writes every one of them.",
            sections.len()
        )
    });
    let facts = prose::facts(&brief.description, &[]);
    for fact in facts {
        let used = text.contains(fact.as_str());
        checks.push(check(
            format!("fact:{fact}"),
            used,
            if used { format!("states {fact}") } else { format!("never states {fact}") },
        ));
    }
    Ok(Draft { text, checks, complete: complete || brief.phase == Phase::Prototype, note, ..Draft::default() })
}

/// The piece's title: the brief's, unless that is an instruction ("Write a 1500-word blog post
/// about…"), in which case the model proposes one, or the instruction's topic stands.
async fn title(brief: &Brief, subject: &str, names: &[String], writer: &mut Writer<'_>) -> Result<String, EngineError> {
    if !brief.title.is_empty() && !prose::is_instruction(&brief.title) {
        return Ok(brief.title.clone());
    }
    let spec = ListSpec {
        kind: "title".into(),
        count: 1,
        max_chars: Some(70),
        example: &["How to Run Your First 10K Without Burning Out", "The Beginner's Guide to Heart-Rate Training"],
    };
    let topic = format!("{} ({subject})", brief.title);
    if let Some(proposed) = prose::write_list(writer, SYSTEM, &topic, names, &spec, 2).await?.pop() {
        return Ok(proposed);
    }
    let lower = brief.title.to_lowercase();
    let topic = [" about ", " on "].iter().find_map(|w| lower.find(w).map(|at| &brief.title[at + w.len()..]));
    Ok(prose::capitalise(topic.unwrap_or(&brief.kind_of_work())))
}

/// ", in a warm tone, for millennials new to investing"
fn style(plan: &GenerationPlan) -> String {
    let req = &plan.requirements;
    let tone = req.tone.as_deref().map(|t| format!(", in a {t} tone")).unwrap_or_default();
    let audience = req.audience.as_deref().map(|a| format!(", for {a}")).unwrap_or_default();
    format!("{tone}{audience}")
}

async fn write_section(
    writer: &mut Writer<'_>,
    context: &str,
    kind: &str,
    section: &Section,
    style: &str,
    names: &[String],
    share: f64,
) -> Result<String, EngineError> {
    let mut instruction =
        format!("Write the section \"{}\" of the {kind}: about {} words{style}.", section.heading, section.words);
    if let Some(covers) = &section.covers {
        instruction.push_str(&format!(" It covers: {covers}. Give every detail of it exactly."));
    }
    if !section.keywords.is_empty() {
        let quoted: Vec<String> = section.keywords.iter().map(|k| format!("\"{k}\"")).collect();
        instruction.push_str(&format!(" Use the phrase {} naturally.", quoted.join(" and ")));
    }
    instruction.push_str(" Write only the section's paragraphs.");
    let mut text =
        prose::write_paragraphs(writer, SYSTEM, context, &instruction, section.words, share).await?.unwrap_or_default();
    text = without_echoes(&prose::fix_names(&text, names), &section.heading);
    // A keyword the section was given but left out: one more try, naming it.
    let missing: Vec<&String> = section.keywords.iter().filter(|k| !contains_phrase(&text, k)).collect();
    if !missing.is_empty() && writer.has_time() {
        let names_missing: Vec<String> = missing.iter().map(|k| format!("\"{k}\"")).collect();
        let repair =
            format!("{instruction}\nImportant: the last draft never used {}. Use it.", names_missing.join(" or "));
        // Begun with the phrase, the answer cannot leave it out.
        let opening = prose::capitalise(missing[0]);
        if let Some(again) =
            prose::write_paragraphs_from(writer, SYSTEM, context, &repair, section.words, share, &opening).await?
        {
            let again = prose::fix_names(&again, names);
            let missing_again = section.keywords.iter().filter(|k| !contains_phrase(&again, k)).count();
            if missing_again < missing.len() {
                text = again;
            }
        }
    }
    Ok(compose::trim_to_words(&text, section.words * 6 / 5))
}

/// `text` without the sentences that repeat the section's own heading (a small model echoes
/// it, and three echoes read as a loop).
fn without_echoes(text: &str, heading: &str) -> String {
    let heading = heading.to_lowercase();
    text.split("\n\n")
        .map(|p| {
            compose::sentences(p)
                .into_iter()
                .filter(|s| !s.to_lowercase().contains(&heading))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.to_lowercase().contains(&phrase.to_lowercase())
}

/// Bring the whole within [`LENGTH_AIM`] of `target`: short, a paragraph more for the shortest
/// sections; long, sentences off the longest.
#[allow(clippy::too_many_arguments)]
async fn fit_length(
    writer: &mut Writer<'_>,
    context: &str,
    kind: &str,
    style: &str,
    sections: &mut [Section],
    intro: &str,
    title: &str,
    target: usize,
    names: &[String],
) -> Result<(), EngineError> {
    let total = |sections: &[Section]| {
        clean::word_count(title)
            + clean::word_count(intro)
            + sections.iter().map(|s| clean::word_count(&s.heading) + clean::word_count(&s.text)).sum::<usize>()
    };
    let low = (target as f64 * (1.0 - LENGTH_AIM)) as usize;
    let high = (target as f64 * (1.0 + LENGTH_AIM)) as usize;
    for _ in 0..sections.len() * 2 {
        let now = total(sections);
        if now >= low || !writer.has_time() {
            break;
        }
        let Some(shortest) =
            (0..sections.len()).min_by_key(|&i| clean::word_count(&sections[i].text) * 1000 / sections[i].words.max(1))
        else {
            break;
        };
        let section = &sections[shortest];
        let need = (target - now).clamp(40, section.words);
        let instruction = format!(
            "The section \"{}\" of the {kind} so far:\n{}\n\nWrite one more paragraph for it: about {need} words{style}, with a detail or example not yet given.",
            section.heading, section.text
        );
        let Some(more) = prose::write_paragraphs(writer, SYSTEM, context, &instruction, need, 0.3).await? else {
            break;
        };
        if more.is_empty() {
            continue;
        }
        let more = prose::fix_names(&more, names);
        let section = &mut sections[shortest];
        section.text = if section.text.is_empty() { more } else { format!("{}\n\n{more}", section.text) };
    }
    while total(sections) > high {
        let Some(longest) = (0..sections.len()).max_by_key(|&i| clean::word_count(&sections[i].text)) else { break };
        let words = clean::word_count(&sections[longest].text);
        let over = total(sections) - high;
        let trimmed = compose::trim_to_words(&sections[longest].text, words.saturating_sub(over));
        if clean::word_count(&trimmed) >= words {
            break;
        }
        sections[longest].text = trimmed;
    }
    Ok(())
}

/// A keyword the piece still lacks gets a short paragraph of its own in the section it was
/// dealt to (in a prototype, which writes only the opening sections, the last one written), if
/// the model writes one that uses it.
async fn add_missing_keywords(
    writer: &mut Writer<'_>,
    context: &str,
    sections: &mut [Section],
    keywords: &[String],
    names: &[String],
) -> Result<(), EngineError> {
    for keyword in keywords {
        let all: String = sections.iter().map(|s| format!("{}\n{}\n", s.heading, s.text)).collect();
        if contains_phrase(&all, keyword) || !writer.has_time() {
            continue;
        }
        let dealt = sections.iter().position(|s| s.keywords.contains(keyword)).unwrap_or(0);
        let at = match sections[dealt].text.is_empty() {
            true => sections.iter().rposition(|s| !s.text.is_empty()).unwrap_or(dealt),
            false => dealt,
        };
        let instruction = format!(
            "Write two or three sentences for the section \"{}\" that explain \"{keyword}\" and use the exact phrase \"{keyword}\".",
            sections[at].heading
        );
        for _ in 0..2 {
            let opening = prose::capitalise(keyword);
            let Some(paragraph) =
                prose::write_paragraphs_from(writer, SYSTEM, context, &instruction, 50, 0.2, &opening).await?
            else {
                break;
            };
            if contains_phrase(&paragraph, keyword) {
                let section = &mut sections[at];
                let paragraph = prose::fix_names(&paragraph, names);
                section.text =
                    if section.text.is_empty() { paragraph } else { format!("{}\n\n{paragraph}", section.text) };
                break;
            }
        }
    }
    Ok(())
}

fn assemble(title: &str, subject_line: Option<&str>, intro: &str, sections: &[Section]) -> String {
    let mut out = format!("# {title}\n\n");
    if let Some(line) = subject_line {
        out.push_str(&format!("**Subject line:** {line}\n\n"));
    }
    if !intro.is_empty() {
        out.push_str(intro);
        out.push_str("\n\n");
    }
    let unwritten: Vec<&Section> = sections.iter().filter(|s| s.text.is_empty()).collect();
    for section in sections.iter().filter(|s| !s.text.is_empty()) {
        out.push_str(&format!("## {}\n\n{}\n\n", section.heading, section.text));
    }
    if !unwritten.is_empty() {
        out.push_str("## Still to come in the full piece\n\n");
        for section in unwritten {
            out.push_str(&format!("- {}\n", section.heading));
        }
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(heading: &str, text: &str) -> Section {
        Section { heading: heading.into(), covers: None, keywords: Vec::new(), words: 100, text: text.into() }
    }

    #[test]
    fn an_unfinished_outline_is_shown_whole() {
        let sections = [section("Why ESG", "Text one."), section("Fees", "")];
        let out = assemble("Title", Some("Subject"), "Intro.", &sections);
        assert_eq!(
            out,
            "# Title\n\n**Subject line:** Subject\n\nIntro.\n\n## Why ESG\n\nText one.\n\n## Still to come in the full piece\n\n- Fees\n"
        );
    }
}
