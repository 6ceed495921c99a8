//! Business documents. Owns slide decks — a pitch deck above all — written slide by slide: the
//! titles first (the model's where they fit the slot, else a standard pitch-deck sequence), then
//! each slide's bullet points and speaker note in calls of their own, each checked and repaired.
//! The brief's facts ("$750k seed round", "38 million Americans with diabetes") are routed to the
//! slide they belong on and open its bullet list, so they cannot be lost. Plans and comparisons
//! without slides go to the general strategy (with its table check when a table is asked for).
//!
//! Small models start a bullet with an invented statistic ("10% of…") or ramble; a bullet is kept
//! only if it is short, plain and uses no number the brief did not give. A slide the model cannot
//! fill in its attempts gets the standard outline points for its kind of slide.

mod bullets;
mod facts;
mod flaws;
mod notes;
mod render;
mod roles;
mod titles;

use regex::Regex;

use super::compose::{Ask, Draft, Writer};
use super::{GenerationPlan, general};
use crate::engine::EngineError;
use crate::protocol::{Brief, Phase};
use bullets::{fill, slide_bullets};
use facts::{known_from, read_brief};
use notes::{fallback_note, speaker_note};
use render::{deck_checks, render};
use roles::{deck_roles, is_pitch};
use titles::{fits_slot, parse_titles};

/// A prototype writes this many slides in full; the rest are outlined by their titles.
const PROTOTYPE_SLIDES: usize = 3;
/// Attempts at one slide's bullets and at its speaker note.
const BULLET_ATTEMPTS: usize = 3;
const NOTE_ATTEMPTS: usize = 3;
const MIN_BULLETS: usize = 3;
const MAX_BULLETS: usize = 4;
/// A bullet longer than this is cut at a clause boundary, or dropped.
const MAX_BULLET_CHARS: usize = 120;
const MAX_NOTE_WORDS: usize = 45;
const SYSTEM: &str = "You write pitch deck slides. Be concrete and brief.";

/// One slide as written.
#[derive(Debug, Clone, PartialEq)]
struct Slide {
    title: String,
    bullets: Vec<String>,
    /// `None` for a slide only outlined (a prototype's later slides).
    note: Option<String>,
}

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    match slide_count(brief, plan) {
        Some(count) => deck(brief, count, writer).await,
        None => general::write(brief, plan, writer).await,
    }
}

/// The number of slides asked for: a `slides` item, or "10-slide" / "10 slides" in the brief.
fn slide_count(brief: &Brief, plan: &GenerationPlan) -> Option<usize> {
    if let Some(item) = plan.requirements.items.iter().find(|i| i.kind == "slide") {
        return Some(item.count.clamp(1, 30) as usize);
    }
    let stated = Regex::new(r"(?i)\b(\d{1,2})[\s-]slides?\b").expect("valid pattern");
    let text = format!("{}\n{}", brief.title, brief.description);
    stated.captures(&text).and_then(|c| c[1].parse::<usize>().ok()).filter(|n| (1..=30).contains(n))
}

async fn deck(brief: &Brief, count: usize, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let pitch = is_pitch(brief);
    let roles = deck_roles(count, pitch);
    let (about, facts) = read_brief(&brief.description, &roles);
    let known = known_from(&brief.description, &about, &facts);
    let kind = if pitch { "pitch deck" } else { "slide deck" };

    // Titles: one call for all; each slot keeps the model's title only if it fits the slot.
    let listed: Vec<&str> = roles.iter().map(|r| r.title).collect();
    let mut user = format!("{about}\n\nWrite the titles of its {count}-slide {kind}, one per line, each 2 to 5 words.");
    if pitch {
        user.push_str(&format!(" The slides cover, in order: {}.", listed.join(", ")));
    }
    let ask = Ask::new(SYSTEM, user, count * 14 + 20).prefix("1.").share(0.15);
    let proposed = match writer.ask(&ask).await? {
        Some(reply) => parse_titles(&reply.text, count),
        None => vec![None; count],
    };
    let titles: Vec<String> = roles
        .iter()
        .zip(&proposed)
        .map(|(role, title)| match title {
            Some(title) if fits_slot(title, role, pitch) => title.clone(),
            _ => role.title.to_string(),
        })
        .collect();

    let written = match brief.phase {
        Phase::Final => count,
        Phase::Prototype => PROTOTYPE_SLIDES.min(count),
    };
    let mut slides = Vec::with_capacity(count);
    let mut ran_out = false;
    for (index, (title, role)) in titles.iter().zip(&roles).enumerate() {
        let seeded: Vec<String> =
            facts.iter().filter(|f| f.slide == index).map(|f| f.bullet.clone()).take(MAX_BULLETS - 1).collect();
        if index >= written {
            slides.push(Slide { title: title.clone(), bullets: seeded, note: None });
            continue;
        }
        if !writer.has_time() {
            ran_out = true;
        }
        let calls_left = ((written - index) * 2) as f64;
        let share = (2.0 / calls_left).min(1.0);
        let bullets = match ran_out {
            true => fill(seeded, role),
            false => slide_bullets(&about, kind, title, role, seeded, &known, share, writer).await?,
        };
        let note = match ran_out {
            true => fallback_note(title, &bullets),
            false => speaker_note(&about, title, &bullets, &known, share, writer).await?,
        };
        slides.push(Slide { title: title.clone(), bullets, note: Some(note) });
    }
    if ran_out {
        tracing::info!("time ran out before every slide was written; the rest are standard outline points");
    }

    let text = render(&slides);
    let figures: Vec<String> = facts.iter().flat_map(|f| f.figures.clone()).collect();
    let checks = deck_checks(&text, count, &figures);
    let note = match (brief.phase, ran_out) {
        (Phase::Prototype, _) if written < count => Some(format!(
            "This prototype outlines all {count} slides and writes the first {written} in full; the final writes \
             every slide's bullet points and speaker note."
        )),
        (_, true) => {
            Some("Time ran out before every slide was written; the last slides carry standard outline points.".into())
        }
        _ => None,
    };
    Ok(Draft { text, artifacts: Vec::new(), checks, complete: !ran_out, note })
}

fn same(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::facts::Known;
    use super::*;
    use crate::protocol::parse_brief;

    pub(super) const PITCH_BRIEF: &str = "We are a startup delivering ready-to-cook meal kits for people with diabetes, designed with dietitians. Seeking a $750k seed round. Draft a 10-slide pitch deck outline: for each slide a title, 3-4 bullet points and a speaker note. Market: 38 million Americans with diabetes; competitors are generic meal-kit companies.";

    pub(super) fn known() -> Known {
        Known { numbers: ["750".into(), "38".into()].into(), brief: PITCH_BRIEF.into() }
    }

    #[test]
    fn the_slide_count_comes_from_the_requirements_or_the_text() {
        let brief = |json: serde_json::Value| parse_brief(json.to_string().as_bytes()).unwrap();
        let config = crate::config::StrategyConfig::default();
        let with_item = brief(serde_json::json!({"task_id": "t", "mode": "final", "title": "Deck",
            "description": "A deck.", "task_type": "pitch-deck", "requirements": {"slides": 8}}));
        assert_eq!(slide_count(&with_item, &super::super::plan(&with_item, &config)), Some(8));
        let in_text = brief(serde_json::json!({"task_id": "t", "mode": "final", "title": "Deck",
            "description": "Make a 6-slide investor deck.", "task_type": "pitch-deck"}));
        assert_eq!(slide_count(&in_text, &super::super::plan(&in_text, &config)), Some(6));
        let plan_doc = brief(serde_json::json!({"task_id": "t", "mode": "final", "title": "Business plan",
            "description": "A one-page plan.", "task_type": "business-plan"}));
        assert_eq!(slide_count(&plan_doc, &super::super::plan(&plan_doc, &config)), None);
    }
}
