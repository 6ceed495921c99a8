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

use regex::Regex;

use super::compose::{Ask, Draft, Writer, check, sentences};
use super::{GenerationPlan, checks, general, prose};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::{Brief, Check, Phase};

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

/// One kind of slide: its standard title, words that route a brief's fact to it, and the outline
/// points it falls back to.
#[derive(Debug)]
struct Role {
    title: &'static str,
    keywords: &'static [&'static str],
    fallback: [&'static str; 3],
}

const fn role(title: &'static str, keywords: &'static [&'static str], fallback: [&'static str; 3]) -> Role {
    Role { title, keywords, fallback }
}

/// The standard pitch-deck sequence.
static PITCH: [Role; 10] = [
    role(
        "Problem",
        &["problem", "pain", "struggle", "challenge", "hard"],
        ["Who struggles today, and how often", "What current options get wrong", "What the problem costs them"],
    ),
    role(
        "Solution",
        &["solution", "solve", "deliver", "offer"],
        ["What we offer and how it works", "Why it fits the customer's day", "What makes it different"],
    ),
    role(
        "Market",
        &["market", "americans", "people", "population", "users", "customers", "million", "billion"],
        ["Who the customers are", "How large the market is", "How fast it is growing"],
    ),
    role(
        "Product",
        &["product", "app", "feature", "platform", "prototype"],
        ["What the customer receives", "How it is made and delivered", "What comes next on the roadmap"],
    ),
    role(
        "Business model",
        &["subscription", "pricing", "price", "per month", "margin", "model"],
        ["How we charge", "What a customer is worth over time", "How we acquire customers"],
    ),
    role(
        "Traction",
        &["traction", "pilot", "waitlist", "signed", "growth", "sold", "launched"],
        ["Pilots and early customers", "Partners and letters of intent", "Milestones reached so far"],
    ),
    role(
        "Competition",
        &["competitor", "competition", "rival", "alternative", "incumbent"],
        ["Who else serves these customers", "Where they fall short", "Why we win"],
    ),
    role(
        "Team",
        &["team", "founder", "ceo", "cto", "advisor", "expert"],
        ["Founders and their experience", "Advisors and experts behind the product", "Key hires planned"],
    ),
    role(
        "Financials",
        &["revenue", "profit", "cost", "break-even", "forecast", "financial"],
        ["Revenue projection for three years", "Costs and margin per unit", "Path to break-even"],
    ),
    role(
        "The ask",
        &["seed", "round", "raise", "raising", "funding", "invest", "seeking", "ask"],
        ["The amount we are raising", "How the funds will be used", "The milestones this round reaches"],
    ),
];

/// Further pitch slides for decks longer than ten, inserted before the ask.
static PITCH_EXTRA: [Role; 6] = [
    role(
        "Go-to-market",
        &["channel", "launch", "marketing", "partner"],
        ["First customers and how we reach them", "Channels and partners", "Cost to acquire a customer"],
    ),
    role(
        "Roadmap",
        &["roadmap", "next year", "plan"],
        ["The next six months", "The next eighteen months", "What each stage proves"],
    ),
    role("Use of funds", &["funds", "spend", "budget"], ["Product and operations", "Sales and marketing", "Hiring"]),
    role("Milestones", &["milestone", "goal"], ["What we have done", "What we do next", "How we measure it"]),
    role("Risks", &["risk", "regulation"], ["The main risks", "How we reduce them", "What we watch closely"]),
    role("Vision", &["vision", "mission"], ["Where this goes in five years", "Who else it can serve", "Why now"]),
];

/// Slides for a deck that is not a pitch.
static GENERIC: [Role; 10] = [
    role("Overview", &["overview", "about"], ["What this deck covers", "Why it matters now", "What we ask of you"]),
    role(
        "Background",
        &["background", "history", "context"],
        ["Where things stand today", "What led here", "What has changed"],
    ),
    role(
        "The challenge",
        &["problem", "challenge", "issue"],
        ["The problem in one line", "Who it affects", "What it costs"],
    ),
    role("Our approach", &["approach", "solution", "method"], ["What we propose", "How it works", "Why this approach"]),
    role(
        "Benefits",
        &["benefit", "value", "saving"],
        ["For the people it serves", "For the organisation", "Over time"],
    ),
    role(
        "Evidence",
        &["evidence", "data", "result", "study", "million", "percent"],
        ["What the numbers show", "Examples so far", "What others have found"],
    ),
    role(
        "Plan and timeline",
        &["plan", "timeline", "schedule", "phase"],
        ["The main steps", "Dates and milestones", "Who does what"],
    ),
    role("Team", &["team", "staff", "people"], ["Who leads it", "Who takes part", "Who supports it"]),
    role("Budget", &["budget", "cost", "price", "funding"], ["What it costs", "How it is paid for", "What it returns"]),
    role("Next steps", &["next", "decision", "ask"], ["What we need decided", "Who acts next", "When we report back"]),
];

/// Priority of the pitch slides when fewer than ten are asked for (by index into [`PITCH`]).
const PITCH_PRIORITY: [usize; 10] = [0, 1, 9, 2, 4, 7, 3, 5, 6, 8];

/// A fact from the brief: the clause as a bullet, the slide it belongs on, and its figures.
#[derive(Debug, Clone, PartialEq)]
struct Fact {
    bullet: String,
    slide: usize,
    figures: Vec<String>,
}

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

/// A slide's bullets: the seeded facts, then the model's bullets that pass, gathered over a few
/// attempts; standard outline points fill what is still missing.
#[allow(clippy::too_many_arguments)]
async fn slide_bullets(
    about: &str,
    kind: &str,
    title: &str,
    role: &Role,
    seeded: Vec<String>,
    known: &Known,
    share: f64,
    writer: &mut Writer<'_>,
) -> Result<Vec<String>, EngineError> {
    let user = format!("{about}\n\nWrite three bullet points for the {kind} slide \"{title}\".");
    // The facts open the list; the bullet marker without its space lets the model start a word
    // (after "* " it tends to start with an invented percentage).
    let seed: String = seeded.iter().map(|b| format!("* {b}\n")).collect();
    let ask = Ask::new(SYSTEM, user, 90).prefix(format!("{seed}*")).share(share);
    let mut bullets = seeded;
    let outcome = writer
        .ask_until(&ask, BULLET_ATTEMPTS, |reply| {
            let written = reply.text.get(seed.len()..).unwrap_or("");
            let mut rejected = Vec::new();
            let (mut items, runs_to_end) = list_items(written);
            // A list cut off by the token limit ends in a half bullet.
            if runs_to_end && reply.finish != FinishReason::Eos {
                items.pop();
            }
            for raw in items {
                match clean_bullet(&raw, known) {
                    Ok(bullet) if !bullets.iter().any(|b| same(b, &bullet)) && !same(&bullet, title) => {
                        bullets.push(bullet)
                    }
                    Ok(_) => {}
                    Err(why) => rejected.push(why),
                }
            }
            match bullets.len() >= MIN_BULLETS {
                true => Ok(()),
                false => Err(format!(
                    "only {} usable bullet points came back{}; write short, plain statements",
                    bullets.len(),
                    match rejected.first() {
                        Some(why) => format!(" (one {why})"),
                        None => String::new(),
                    }
                )),
            }
        })
        .await?;
    if let Err(failure) = outcome {
        tracing::debug!(%failure, title, "slide bullets filled with outline points");
    }
    Ok(fill(bullets, role))
}

/// `bullets` cut to the maximum, or filled up to the minimum with the role's outline points.
fn fill(mut bullets: Vec<String>, role: &Role) -> Vec<String> {
    for point in role.fallback {
        if bullets.len() >= MIN_BULLETS {
            break;
        }
        if !bullets.iter().any(|b| same(b, point)) {
            bullets.push(point.to_string());
        }
    }
    bullets.truncate(MAX_BULLETS);
    bullets
}

async fn speaker_note(
    about: &str,
    title: &str,
    bullets: &[String],
    known: &Known,
    share: f64,
    writer: &mut Writer<'_>,
) -> Result<String, EngineError> {
    let listed: String = bullets.iter().map(|b| format!("* {b}\n")).collect();
    let user = format!(
        "{about}\n\nSlide \"{title}\":\n{listed}\nWrite what the presenter says on this slide, in one or two sentences."
    );
    let ask = Ask::new(SYSTEM, user, 64).prefix("Speaker note:").share(share);
    let outcome = writer.ask_until(&ask, NOTE_ATTEMPTS, |reply| clean_note(&reply.text, known)).await?;
    Ok(outcome.unwrap_or_else(|failure| {
        tracing::debug!(%failure, title, "speaker note written from the slide");
        fallback_note(title, bullets)
    }))
}

/// A plain note built from the slide when the model's would not pass: its first point, without a
/// leading "Label:".
fn fallback_note(title: &str, bullets: &[String]) -> String {
    let point = bullets.iter().find(|b| !same(b, title)).map(|b| match b.split_once(':') {
        Some((label, rest)) if label.split_whitespace().count() <= 3 && rest.split_whitespace().count() >= 3 => {
            rest.trim()
        }
        _ => b.as_str(),
    });
    match point {
        Some(point) => format!("The point to land here: {}.", lower_first(point.trim_end_matches('.'))),
        None => format!("This slide covers {}.", lower_first(title)),
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.clone().next()) {
        // Keep acronyms and figures ("US", "$750k") as written.
        (Some(c), Some(next)) if c.is_uppercase() && !next.is_uppercase() => c.to_lowercase().chain(chars).collect(),
        _ => text.to_string(),
    }
}

fn same(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    norm(a) == norm(b)
}

fn is_pitch(brief: &Brief) -> bool {
    let text =
        format!("{} {} {}", brief.title, brief.task_type.as_deref().unwrap_or(""), brief.description).to_lowercase();
    ["pitch", "investor", "seed", "fundrais", "series a", "raise", "raising"].iter().any(|w| text.contains(w))
}

/// The slides of a deck of `count`: the pitch sequence (trimmed by priority, or extended before the
/// ask), or the generic one.
fn deck_roles(count: usize, pitch: bool) -> Vec<&'static Role> {
    if !pitch {
        let mut roles: Vec<&Role> = GENERIC[..GENERIC.len() - 1].iter().take(count.saturating_sub(1)).collect();
        while roles.len() + 1 < count {
            roles.push(&GENERIC[roles.len() % (GENERIC.len() - 1)]);
        }
        roles.push(&GENERIC[GENERIC.len() - 1]);
        return roles;
    }
    if count <= PITCH.len() {
        let mut chosen: Vec<usize> = PITCH_PRIORITY[..count].to_vec();
        chosen.sort_unstable();
        return chosen.into_iter().map(|i| &PITCH[i]).collect();
    }
    let (body, ask) = PITCH.split_at(PITCH.len() - 1);
    let mut roles: Vec<&Role> = body.iter().collect();
    let mut extra = PITCH_EXTRA.iter().cycle();
    while roles.len() + 1 < count {
        roles.push(extra.next().expect("cycle never ends"));
    }
    roles.push(&ask[0]);
    roles
}

/// The brief's description of the company (its first statement) and its facts, each routed to a
/// slide. Sentences that instruct ("Draft a 10-slide outline…") are neither.
fn read_brief(description: &str, roles: &[&Role]) -> (String, Vec<Fact>) {
    const INSTRUCTIONS: &[&str] =
        &["draft", "write", "slide", "outline", "bullet", "speaker note", "please", "create", "prepare", "need a"];
    let figure = figure_pattern();
    let mut about = String::new();
    let mut facts = Vec::new();
    for sentence in description.split(['\n']).flat_map(|line| line.split(". ")) {
        let sentence = sentence.trim().trim_end_matches('.');
        let lower = sentence.to_lowercase();
        if sentence.is_empty() || INSTRUCTIONS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        if about.is_empty() {
            about = format!("{sentence}.");
            if !figure.is_match(sentence) {
                continue;
            }
        }
        for clause in sentence.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            // "Market: 38 million…": the label routes the fact, the rest is the bullet.
            let (label, body) = match clause.split_once(':') {
                Some((label, body)) if label.split_whitespace().count() <= 3 => (label, body.trim()),
                _ => ("", clause),
            };
            let figures: Vec<String> = figure
                .find_iter(body)
                .map(|m| m.as_str().trim_end_matches(['.', ',']).to_string())
                .filter(|f| f.chars().any(|c| c.is_ascii_digit()))
                .collect();
            let slide = route(&format!("{label} {body}"), roles);
            facts.push(Fact { bullet: prose::capitalise(body), slide, figures });
        }
    }
    if about.is_empty() {
        about = "A company preparing a slide deck.".into();
    }
    (about, facts)
}

fn figure_pattern() -> Regex {
    Regex::new(r"(?i)[$€£]?\d[\d,.]*\s?(?:k|m|bn|%|percent|million|billion|thousand)?\b").expect("valid pattern")
}

/// The slide whose keywords the clause names most (its first such slide); else the first slide.
fn route(clause: &str, roles: &[&Role]) -> usize {
    let lower = clause.to_lowercase();
    let scores: Vec<usize> = roles.iter().map(|r| r.keywords.iter().filter(|k| lower.contains(*k)).count()).collect();
    let best = scores.iter().copied().max().unwrap_or(0);
    if best == 0 {
        return 0;
    }
    scores.iter().position(|s| *s == best).unwrap_or(0)
}

/// What the brief states: its numbers (from the company's description and the facts, not from the
/// instructions' "10 slides") and its text.
fn known_from(description: &str, about: &str, facts: &[Fact]) -> Known {
    let numbers =
        std::iter::once(about).chain(facts.iter().map(|f| f.bullet.as_str())).flat_map(prose::numbers_in).collect();
    Known { numbers, brief: description.to_string() }
}

/// The titles of a numbered list, by their numbers (a line without a number takes the next slot).
fn parse_titles(reply: &str, count: usize) -> Vec<Option<String>> {
    let mut titles = vec![None; count];
    let mut next = 0;
    for line in reply.lines() {
        let t = line.trim();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        let (slot, rest) = match t[digits..].strip_prefix(['.', ')']) {
            Some(rest) if digits > 0 => (t[..digits].parse::<usize>().ok().and_then(|n| n.checked_sub(1)), rest),
            _ => continue,
        };
        let slot = slot.unwrap_or(next);
        next = slot + 1;
        if slot < count && titles[slot].is_none() {
            titles[slot] = clean_title(rest);
        }
    }
    titles
}

/// A title: the text before any ": explanation", without Markdown or quotes, 1–6 plain words.
fn clean_title(raw: &str) -> Option<String> {
    let raw = raw.replace("**", "");
    let head = raw.split([':', '(']).next().unwrap_or("").split(" - ").next().unwrap_or("");
    let title = head.trim().trim_matches(|c| c == '"' || c == '\'' || c == '*' || c == '“' || c == '”').trim();
    let words = title.split_whitespace().count();
    let plain = title.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '&' || c == '-' || c == '\'');
    (plain && (1..=6).contains(&words) && title.chars().next().is_some_and(char::is_uppercase))
        .then(|| title.to_string())
}

/// A model's title fits a pitch slot only if it keeps the slot's subject (its title's main word).
fn fits_slot(title: &str, role: &Role, pitch: bool) -> bool {
    if !pitch {
        return true;
    }
    let lower = title.to_lowercase();
    let subject = role.title.to_lowercase().replace("the ", "");
    let main = subject.split_whitespace().next().unwrap_or("");
    let stem = &main[..main.len().min(6)];
    !lower.starts_with("our ") && lower.contains(stem)
}

/// The items of the list a reply opens with, marker and numbering removed, and whether the list
/// runs to the end of the reply.
fn list_items(reply: &str) -> (Vec<String>, bool) {
    let mut items = Vec::new();
    for line in reply.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let marked = t.starts_with(['*', '-', '•']);
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        let numbered = digits > 0 && t[digits..].starts_with(['.', ')', ':']);
        if !marked && !numbered {
            return (items, false);
        }
        let mut rest = t.trim_start_matches(['*', '-', '•']).trim_start();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(['.', ')', ':']) {
            rest = rest[digits + 1..].trim_start();
        }
        items.push(rest.to_string());
    }
    (items, true)
}

/// What the brief states, for telling a true statement from an invented one.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Every run of digits in the brief's statements: the only numbers a slide may use.
    numbers: std::collections::BTreeSet<String>,
    /// The brief's text: names with capitals inside (`MealRescue`) must come from it.
    brief: String,
}

/// Filler a slide may not carry, besides the stock filler every draft is checked for
/// ([`checks::STOCK_FILLER`]).
const FILLER: &[&str] = &[
    "in today's",
    "in today’s",
    "fast-paced",
    "ever-evolving",
    "in this day and age",
    "game changer",
    "unlock the power",
];
const META: &[&str] = &[
    "presentation",
    "presenter",
    "slide",
    "bullet",
    "pitch",
    "example of how",
    "this is an example",
    "this is just",
    "third part",
    "first point",
    "second point",
    "third point",
    "first thing",
    // A chat assistant's voice, not a founder's.
    "please",
    "assist you",
    "let me know",
    "feel free",
];

/// Why `text` cannot go on a slide, if it cannot: leftover markup or placeholders, filler, talk
/// about the deck, or a number or name the brief does not give.
fn flaw(text: &str, known: &Known) -> Option<String> {
    if let Some(junk) = ["[", "]", "#", "@", "http", "...", "…", "\"", "*"].iter().find(|j| text.contains(**j)) {
        return Some(format!("contained \"{junk}\""));
    }
    let lower = text.to_lowercase();
    if let Some(filler) = FILLER.iter().chain(checks::STOCK_FILLER).find(|f| lower.contains(**f)) {
        return Some(format!("used the filler \"{filler}\""));
    }
    if let Some(meta) = META.iter().find(|m| lower.contains(**m)) {
        return Some(format!("talked about the deck (\"{meta}\") instead of the company"));
    }
    if let Some(number) = prose::numbers_in(text).into_iter().find(|n| !known.numbers.contains(n)) {
        return Some(format!("used the number {number}, which is not in the brief"));
    }
    let inner_capital = Regex::new(r"\b[A-Za-z][a-z]+[A-Z][A-Za-z]*\b").expect("valid pattern");
    if let Some(name) = inner_capital.find_iter(text).map(|m| m.as_str()).find(|n| !known.brief.contains(n)) {
        return Some(format!("made up the name {name}"));
    }
    None
}

/// Words a cut-short bullet must not end on.
const DANGLING: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "by",
    "from",
    "into",
    "as",
    "that",
    "which",
    "who",
    "where",
    "when",
    "while",
    "because",
    "without",
    "any",
    "their",
    "our",
    "its",
    "your",
    "like",
    "including",
    "such",
    "is",
    "are",
    "be",
    "can",
    "will",
];

/// A bullet as it goes on the slide, or why it cannot: one short plain statement.
fn clean_bullet(raw: &str, known: &Known) -> Result<String, String> {
    let text = raw.replace("**", "");
    let text = text.trim().trim_matches(|c| c == '"' || c == '“' || c == '”' || c == '*').trim();
    let first = sentences(text).into_iter().next().unwrap_or_default();
    let first = first.trim_end_matches(['.', ':', ';', ',']).trim().to_string();
    if first.is_empty() {
        return Err("was empty".into());
    }
    if let Some(why) = flaw(&first, known) {
        return Err(why);
    }
    let lower = first.to_lowercase();
    if first.contains(['!', '?']) || lower.starts_with("i ") || lower.contains(" my ") {
        return Err("was not a plain statement".into());
    }
    let mut bullet = match first.chars().count() > MAX_BULLET_CHARS {
        // Cut at a clause, never mid-phrase: a fragment reads worse than a missing bullet.
        true => clause_cut(&first).ok_or("was too long; keep each bullet under 15 words")?,
        false => first,
    };
    while let Some((rest, last)) = bullet.rsplit_once(' ')
        && DANGLING.contains(&last.to_lowercase().as_str())
    {
        bullet = rest.trim_end_matches([',', ';', ':', '-', '–', '—']).trim_end().to_string();
    }
    if bullet.split_whitespace().count() < 3 {
        return Err("was too short".into());
    }
    Ok(bullet)
}

/// The longest opening of a long bullet that ends at a clause boundary (a comma, semicolon or
/// dash) and still fits, if it keeps at least five words.
fn clause_cut(text: &str) -> Option<String> {
    let mut best = None;
    for (at, _) in text.match_indices([',', ';', '–', '—']).chain(text.match_indices(" - ")) {
        let head = text[..at].trim_end();
        if head.chars().count() <= MAX_BULLET_CHARS && head.split_whitespace().count() >= 5 {
            best = best.max(Some(head.len()));
        }
    }
    best.map(|len| text[..len].to_string())
}

/// The speaker note in a reply (after its `Speaker note:` opening): its first one or two complete
/// sentences, plain and short.
fn clean_note(reply: &str, known: &Known) -> Result<String, String> {
    let text = reply.trim_start().strip_prefix("Speaker note:").unwrap_or(reply).trim();
    let paragraph = text.split('\n').next().unwrap_or("").replace("**", "");
    let paragraph = paragraph.trim().trim_matches(|c| c == '"' || c == '“' || c == '”').trim();
    let complete: Vec<String> = sentences(paragraph)
        .into_iter()
        .filter(|s| s.trim_end_matches(['"', '”']).ends_with(['.', '!', '?']))
        .collect();
    let Some(first) = complete.first() else {
        return Err("the speaker note was not a complete sentence".into());
    };
    let mut note = first.clone();
    if let Some(second) = complete.get(1)
        && (note.split_whitespace().count() + second.split_whitespace().count()) <= MAX_NOTE_WORDS
    {
        note = format!("{note} {second}");
    }
    let note = note.trim_end_matches(['"', '”']).to_string();
    let words = note.split_whitespace().count();
    if !(6..=MAX_NOTE_WORDS).contains(&words) {
        return Err(format!("the speaker note had {words} words; it should be one or two short sentences"));
    }
    if note.contains('!') {
        return Err("the speaker note exclaimed instead of explaining".into());
    }
    if let Some(why) = flaw(&note, known) {
        return Err(format!("the speaker note {why}"));
    }
    Ok(note)
}

fn render(slides: &[Slide]) -> String {
    let mut out = String::new();
    for (i, slide) in slides.iter().enumerate() {
        out.push_str(&format!("## Slide {}: {}\n\n", i + 1, slide.title));
        for bullet in &slide.bullets {
            out.push_str(&format!("- {bullet}\n"));
        }
        if !slide.bullets.is_empty() {
            out.push('\n');
        }
        match &slide.note {
            Some(note) => out.push_str(&format!("*Speaker note:* {note}\n\n")),
            None => out.push_str("*Bullet points and speaker note follow in the final.*\n\n"),
        }
    }
    out.trim_end().to_string()
}

/// The deck's own checks, read back from its text: the number of slides, 3–4 bullets and a one- or
/// two-sentence speaker note on every slide written in full, and the brief's figures present.
fn deck_checks(text: &str, count: usize, figures: &[String]) -> Vec<Check> {
    let slides = parse_deck(text);
    let mut checks =
        vec![check("count:slide", slides.len() == count, format!("{} slides for {count} asked", slides.len()))];
    let written: Vec<&(String, Vec<String>, Option<String>)> = slides.iter().filter(|s| s.2.is_some()).collect();
    let scope = match written.len() == slides.len() {
        true => "every slide".to_string(),
        false => format!("each of the {} slides written in full", written.len()),
    };
    let off: Vec<String> = written
        .iter()
        .filter(|s| !(MIN_BULLETS..=MAX_BULLETS).contains(&s.1.len()))
        .map(|s| format!("\"{}\" has {}", s.0, s.1.len()))
        .collect();
    checks.push(match (off.is_empty(), written.is_empty()) {
        (_, true) => check("slides:bullets", false, "no slide is written in full"),
        (true, false) => check("slides:bullets", true, format!("{scope} has 3–4 bullet points")),
        (false, false) => check("slides:bullets", false, format!("bullet counts off: {}", off.join(", "))),
    });
    let bad_notes: Vec<String> = written
        .iter()
        .filter(|s| s.2.as_deref().is_none_or(|n| n.trim().is_empty() || sentences(n).len() > 2))
        .map(|s| format!("\"{}\"", s.0))
        .collect();
    checks.push(match (bad_notes.is_empty(), written.is_empty()) {
        (_, true) => check("slides:speaker_notes", false, "no slide is written in full"),
        (true, false) => {
            check("slides:speaker_notes", true, format!("{scope} has a speaker note of one or two sentences"))
        }
        (false, false) => {
            check("slides:speaker_notes", false, format!("missing or overlong speaker notes: {}", bad_notes.join(", ")))
        }
    });
    for figure in figures {
        let found = text.contains(figure.as_str());
        let detail = if found { format!("states {figure} from the brief") } else { format!("never states {figure}") };
        checks.push(check(format!("fact:{figure}"), found, detail));
    }
    checks
}

/// (title, bullets, speaker note) of each `## Slide` section.
fn parse_deck(text: &str) -> Vec<(String, Vec<String>, Option<String>)> {
    let mut slides: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(heading) = t.strip_prefix("## Slide") {
            let title = heading.split_once(':').map_or(heading, |(_, title)| title).trim().to_string();
            slides.push((title, Vec::new(), None));
        } else if let Some(slide) = slides.last_mut() {
            if let Some(bullet) = t.strip_prefix("- ") {
                slide.1.push(bullet.to_string());
            } else if let Some(note) = t.strip_prefix("*Speaker note:*") {
                slide.2 = Some(note.trim().to_string());
            }
        }
    }
    slides
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    const PITCH_BRIEF: &str = "We are a startup delivering ready-to-cook meal kits for people with diabetes, designed with dietitians. Seeking a $750k seed round. Draft a 10-slide pitch deck outline: for each slide a title, 3-4 bullet points and a speaker note. Market: 38 million Americans with diabetes; competitors are generic meal-kit companies.";

    fn known() -> Known {
        Known { numbers: ["750".into(), "38".into()].into(), brief: PITCH_BRIEF.into() }
    }

    #[test]
    fn the_briefs_facts_go_to_their_slides() {
        let roles = deck_roles(10, true);
        let (about, facts) = read_brief(PITCH_BRIEF, &roles);
        assert!(about.starts_with("We are a startup delivering"), "{about}");
        let by_slide: Vec<(&str, &str)> = facts.iter().map(|f| (roles[f.slide].title, f.bullet.as_str())).collect();
        assert_eq!(
            by_slide,
            [
                ("The ask", "Seeking a $750k seed round"),
                ("Market", "38 million Americans with diabetes"),
                ("Competition", "Competitors are generic meal-kit companies"),
            ]
        );
        let figures: Vec<&String> = facts.iter().flat_map(|f| &f.figures).collect();
        assert_eq!(figures, ["$750k", "38 million"]);
        assert_eq!(known_from(PITCH_BRIEF, &about, &facts).numbers, ["750".to_string(), "38".to_string()].into());
    }

    #[test]
    fn decks_of_any_length_keep_the_ask_last() {
        let titles = |n, pitch| deck_roles(n, pitch).iter().map(|r| r.title).collect::<Vec<_>>();
        assert_eq!(titles(10, true), PITCH.iter().map(|r| r.title).collect::<Vec<_>>());
        assert_eq!(titles(3, true), ["Problem", "Solution", "The ask"]);
        assert_eq!(titles(5, true), ["Problem", "Solution", "Market", "Business model", "The ask"]);
        let long = titles(12, true);
        assert_eq!((long.len(), long[10], long[11]), (12, "Roadmap", "The ask"));
        let generic = titles(4, false);
        assert_eq!(generic, ["Overview", "Background", "The challenge", "Next steps"]);
        assert_eq!(titles(1, false), ["Next steps"]);
    }

    #[test]
    fn titles_are_parsed_and_kept_only_where_they_fit() {
        let reply = "1. Problem: How do you eat well?\n2. Solution - Kits by dietitians\n\n3. **Market**\n4. Our mission: to help\n5. 10 Things to Do Before You Die\n7. Traction";
        let titles = parse_titles(reply, 8);
        assert_eq!(titles[0].as_deref(), Some("Problem"));
        assert_eq!(titles[1].as_deref(), Some("Solution"));
        assert_eq!(titles[2].as_deref(), Some("Market"));
        assert_eq!(titles[3].as_deref(), Some("Our mission"));
        assert_eq!(titles[4], None, "junk is no title");
        assert_eq!((titles[5].as_deref(), titles[6].as_deref()), (None, Some("Traction")));
        assert!(fits_slot("The diabetes market", &PITCH[2], true));
        assert!(!fits_slot("Our mission", &PITCH[3], true));
        assert!(fits_slot("Financial plan", &PITCH[8], true));
        assert!(fits_slot("Anything", &GENERIC[0], false));
    }

    #[test]
    fn bullets_must_be_short_plain_and_true_to_the_brief() {
        let ok = |raw: &str| clean_bullet(raw, &known());
        assert_eq!(
            ok("Our mission: help people with diabetes eat well.").unwrap(),
            "Our mission: help people with diabetes eat well"
        );
        assert_eq!(ok("**Dietitian-designed** kits for every meal").unwrap(), "Dietitian-designed kits for every meal");
        assert_eq!(ok("38 million Americans live with diabetes").unwrap(), "38 million Americans live with diabetes");
        assert!(ok("10% of the US population has diabetes").unwrap_err().contains("number 10"));
        assert!(ok("Join us today!").is_err());
        assert!(ok("[Company Name] leads").is_err());
        assert!(ok("This slide shows our plan").is_err());
        assert!(ok("Too short").is_err());
        assert!(ok("The second point highlights how we help").unwrap_err().contains("second point"));
        assert!(ok("MealRescue kits reach every home").unwrap_err().contains("MealRescue"));
        assert!(ok("In today's world, kits matter a lot").is_err());
        assert_eq!(
            ok("Kits that make meals simple for people with").unwrap(),
            "Kits that make meals simple for people"
        );
        let long = "We are committed to providing a comprehensive solution that addresses the dietary needs of individuals managing diabetes across the whole country every day";
        assert!(ok(long).unwrap_err().contains("too long"), "no clause to cut at: dropped, not cut mid-phrase");
        assert_eq!(
            ok("Our kits are designed with dietitians, delivered weekly, and priced for families who cook at home every single night of the working week").unwrap(),
            "Our kits are designed with dietitians, delivered weekly"
        );
        let (items, to_end) = list_items("*Our mission\n* 2. Second one\n- third\nPitch deck slides are great");
        assert_eq!(items, ["Our mission", "Second one", "third"]);
        assert!(!to_end && list_items("*One\n*Two, cut sh").1, "only a list running to the end may be cut short");
    }

    #[test]
    fn speaker_notes_are_one_or_two_clean_sentences() {
        let note = |raw: &str| clean_note(raw, &known());
        assert_eq!(
            note(
                "Speaker note: We deliver kits designed with dietitians. They fit a busy week. A third sentence here."
            )
            .unwrap(),
            "We deliver kits designed with dietitians. They fit a busy week."
        );
        assert_eq!(
            note("Speaker note:\"Our market is 38 million Americans with diabetes.\"").unwrap(),
            "Our market is 38 million Americans with diabetes."
        );
        assert!(note("Speaker note: In 2019 we sold many kits to everyone.").is_err(), "invented figure");
        assert!(note("Speaker note: We deliver kits designed with").is_err(), "cut off");
        assert!(note("Speaker note: Hi there.").is_err(), "too short");
        assert!(note("Speaker note: Visit [Your Website] to learn more about us today.").is_err());
        assert!(note("Speaker note: The presentation concludes with our vision for the company.").is_err());
        assert!(note("Speaker note: Join us in making a difference for every family!").is_err());
        assert_eq!(
            fallback_note("The ask", &["Seeking a $750k seed round".into()]),
            "The point to land here: seeking a $750k seed round."
        );
        assert_eq!(fallback_note("Market", &["US families".into()]), "The point to land here: US families.");
        assert_eq!(
            fallback_note("Solution", &["Solution: kits designed by dietitians".into()]),
            "The point to land here: kits designed by dietitians."
        );
    }

    #[test]
    fn the_deck_checks_read_its_structure() {
        let slide = |title: &str, bullets: usize, note: Option<&str>| Slide {
            title: title.into(),
            bullets: (0..bullets).map(|i| format!("Point number {i} here")).collect(),
            note: note.map(str::to_string),
        };
        let mut slides =
            vec![slide("Problem", 3, Some("It is hard.")), slide("The ask", 4, Some("We raise $750k. Join."))];
        let text = render(&slides);
        assert!(text.starts_with("## Slide 1: Problem\n\n- Point number 0 here\n"), "{text}");
        assert!(text.contains("*Speaker note:* We raise $750k. Join."), "{text}");
        let checks = deck_checks(&text, 2, &["$750k".into()]);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(!deck_checks(&text, 3, &[])[0].passed, "slide count");
        assert!(!deck_checks(&text, 2, &["38 million".into()]).last().unwrap().passed);

        slides[1] = slide("The ask", 2, Some("One. Two. Three."));
        let checks = deck_checks(&render(&slides), 2, &[]);
        assert!(checks.iter().filter(|c| c.name.starts_with("slides:")).all(|c| !c.passed), "{checks:?}");

        // A prototype's outlined slides are counted but not held to the written ones' shape.
        slides[1] = Slide { title: "The ask".into(), bullets: vec!["Seeking a $750k seed round".into()], note: None };
        let text = render(&slides);
        assert!(text.contains("follow in the final"), "{text}");
        let checks = deck_checks(&text, 2, &["$750k".into()]);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(checks.iter().any(|c| c.detail.contains("each of the 1 slides written in full")), "{checks:?}");
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
