//! The strategy for a capable model: the whole piece from the whole brief in one pass, with every
//! measurable requirement spelt out as a checklist; our checks then find what is wrong, and a
//! repair round — while the deadline leaves time for one — hands the draft back with only the
//! failures named. The attempt with the fewest failed checks is kept (a finished one before a
//! cut-off one), so a repair can never make the answer worse.
//!
//! Families differ only in what they add: guidance on the shape of the piece ([`Shape`]) and the
//! checks only they can run (a translation against its source, code that parses); the loop is
//! the same for all.

use super::compose::{Ask, Draft, Writer, check};
use super::requirements::{ItemCount, Requirements, TaskFamily};
use super::{GenerationPlan, checks, clean, lists, posts, prompt, prose};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::{Brief, Check, Phase};

/// What a capable model is told about the job, whatever the brief.
const SYSTEM: &str = "You are an expert freelancer on a marketplace where buyers compare several \
agents' answers side by side and pay only for the best one. Deliver finished, specific, professional \
work that the client can use as it is.\n\
- Follow every requirement of the brief exactly: counts, lengths, character limits, keywords, names, \
format, language, tone and audience.\n\
- Use the facts, names and numbers the brief gives, spelt exactly as written. Never invent statistics, \
prices, customers, quotes, links or contact details; leave out what the brief does not give.\n\
- Write the deliverable itself, in Markdown. No preamble (\"Here is\", \"Sure\"), no questions back, no \
notes about yourself or how you worked, no offers of further help.\n\
- Plain, concrete language. No clichés or filler: delve, in today's fast-paced world, unlock, \
game-changer, seamless, robust, elevate, tapestry.";

/// A repair needs about this multiple of the first call's compute: the draft is in its prompt.
const REPAIR_COST: f64 = 1.4;
/// A whole piece is judged on length within this share of the length asked for.
const LENGTH_TOLERANCE: f64 = 0.15;

/// What a family adds to the whole-piece loop.
pub struct Shape {
    /// How the piece is laid out (headings, lists, code blocks), for the prompt.
    pub guidance: String,
    /// The answer starts with this (a code fence, nothing at all for prose).
    pub prefix: String,
    /// Code: repeated token runs are legitimate, n-gram blocking is off.
    pub code: bool,
    /// The fewest tokens this kind of piece needs (a corrected function and its tests).
    pub min_tokens: usize,
}

impl Shape {
    pub fn prose(guidance: impl Into<String>) -> Self {
        Self { guidance: guidance.into(), prefix: String::new(), code: false, min_tokens: 0 }
    }
}

/// One attempt and what our checks found in it.
struct Attempt {
    text: String,
    complete: bool,
    checks: Vec<Check>,
}

impl Attempt {
    fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    /// Lower is better: fewer failed checks, then finished before cut off.
    fn rank(&self) -> (usize, bool) {
        (self.failures().len(), !self.complete)
    }
}

/// Write `brief` whole, check it with the general checks and `family_checks`, repair once.
pub async fn write(
    brief: &Brief,
    plan: &GenerationPlan,
    writer: &mut Writer<'_>,
    shape: Shape,
    family_checks: &(dyn Fn(&str) -> Vec<Check> + Sync),
) -> Result<Draft, EngineError> {
    let user = user_prompt(brief, plan, &shape);
    let max_tokens = plan.max_new_tokens.max(shape.min_tokens);
    let mut ask = Ask::new(SYSTEM, user, max_tokens).prefix(shape.prefix.clone());
    ask.min_tokens = plan.min_new_tokens;
    if shape.code {
        ask = ask.code();
    }
    let check_all = |text: &str| -> Vec<Check> {
        let mut all = checks::run(&plan.requirements, brief.phase, text);
        all.extend(piece_checks(plan, brief.phase, text));
        if !plan.requirements.platforms.is_empty() {
            all.extend(posts::posts_checks(brief, &plan.requirements, text));
        }
        all.extend(family_checks(text));
        all
    };
    let Some(reply) = writer.ask(&ask).await? else {
        return Ok(Draft::default());
    };
    let first_cost = writer.usage.compute_time();
    let mut best = attempt(&reply.text, reply.finish, &check_all);
    // Counted lists are repaired item by item: far cheaper than the whole piece again.
    if !plan.requirements.items.is_empty() && best.failures().iter().any(|c| is_list_check(&c.name)) {
        let fitted = lists::fit_lists(&best.text, &plan.requirements.items, &brief.title, writer).await?;
        let candidate = Attempt { checks: check_all(&fitted), text: fitted, complete: best.complete };
        if candidate.rank() <= best.rank() {
            best = candidate;
        }
    }
    // So are platform posts: only a post that breaks its platform's rules (or names nothing the
    // brief names) is written again.
    if !plan.requirements.platforms.is_empty()
        && best.failures().iter().any(|c| c.name.starts_with("post:") || c.name.starts_with("name:"))
    {
        let (fitted, _) = posts::fit_posts(brief, &plan.requirements, &best.text, writer).await?;
        let candidate = Attempt { checks: check_all(&fitted), text: fitted, complete: best.complete };
        if candidate.rank() <= best.rank() {
            best = candidate;
        }
    }
    let failed: Vec<String> = best.failures().iter().map(|c| c.detail.clone()).collect();
    if !failed.is_empty() && writer.time_left() > first_cost.mul_f64(REPAIR_COST) {
        tracing::debug!(failed = failed.len(), "the whole draft failed checks; one repair round");
        let repair = Ask { user: repair_prompt(&ask.user, &best.text, &failed), ..ask.clone() };
        if let Some(again) = writer.ask(&repair).await? {
            let candidate = attempt(&again.text, again.finish, &check_all);
            if candidate.rank() < best.rank() {
                best = candidate;
            }
        }
    }
    Ok(Draft { text: best.text, complete: best.complete, checks: best.checks, ..Draft::default() })
}

fn attempt(raw: &str, finish: FinishReason, check_all: &dyn Fn(&str) -> Vec<Check>) -> Attempt {
    let complete = finish == FinishReason::Eos;
    let text = clean::drop_sign_off(&strip_prompt_echo(&clean::clean_output(raw, !complete)));
    let checks = check_all(&text);
    Attempt { text, complete, checks }
}

/// Checks the list repair answers: item counts and per-item character limits.
fn is_list_check(name: &str) -> bool {
    name.starts_with("count:") || name.starts_with("max_chars:")
}

/// Headings of our own prompts: a model that repeats one has started echoing the prompt, and
/// nothing from there on is the work.
const PROMPT_HEADINGS: &[&str] = &[
    "## What our checks found wrong in it",
    "## Your draft",
    "## Your task",
    "## Checklist",
    "## Brief",
    "## Requirements",
    "## Quality rules",
];

/// `text` up to the first echo of our prompt (see [`PROMPT_HEADINGS`]).
fn strip_prompt_echo(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let our_heading = PROMPT_HEADINGS.iter().any(|h| trimmed == *h || trimmed.starts_with(&format!("{h} ")));
        if our_heading || trimmed.starts_with("Write the complete deliverable again") {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim_end().to_string()
}

/// The brief as the prompt lays it out, then the checklist and the shape.
fn user_prompt(brief: &Brief, plan: &GenerationPlan, shape: &Shape) -> String {
    let mut user = prompt::brief_text(brief);
    let checklist = checklist(&plan.requirements, plan, brief.phase);
    if !checklist.is_empty() {
        user.push_str("\n## Checklist (every item is checked before delivery)\n");
        for line in &checklist {
            user.push_str(&format!("- {line}\n"));
        }
    }
    user.push_str("\n## Your task\n");
    user.push_str(&task_instruction(brief, plan));
    if !shape.guidance.is_empty() {
        user.push(' ');
        user.push_str(&shape.guidance);
    }
    user
}

/// What to write in this phase: the whole piece, or for a prototype of a long one its opening and
/// the plan of the rest.
fn task_instruction(brief: &Brief, plan: &GenerationPlan) -> String {
    let kind = brief.kind_of_work();
    match (brief.phase, plan.requested_words) {
        (Phase::Prototype, Some(requested)) if requested > plan.target_words => format!(
            "This is the prototype of a {requested}-word {kind}: write its title and its opening sections in \
             full and final form, about {} words, then a section `## In the full version` listing each \
             remaining section heading with one line on what it covers.",
            plan.target_words
        ),
        _ => format!("Write the complete {kind} now, ready to deliver."),
    }
}

/// Every measurable requirement, as a line the model can tick off (and our checks verify).
fn checklist(requirements: &Requirements, plan: &GenerationPlan, phase: Phase) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(requested) = plan.requested_words {
        let words = if phase == Phase::Prototype { plan.target_words.min(requested) } else { requested };
        if requested <= plan.target_words || phase == Phase::Final {
            let (low, high) = length_bounds(words);
            lines.push(format!("Length: about {words} words (between {low} and {high})."));
        }
    }
    for item in &requirements.items {
        lines.push(item_line(item));
    }
    if !requirements.keywords.is_empty() {
        lines.push(format!("Use each of these phrases word for word: {}.", quoted(&requirements.keywords)));
    }
    if !requirements.names.is_empty() {
        lines.push(format!("Write these names exactly as given: {}.", quoted(&requirements.names)));
    }
    if let Some(tone) = &requirements.tone {
        lines.push(format!("Tone: {tone}."));
    }
    if let Some(audience) = &requirements.audience {
        lines.push(format!("Audience: {audience}."));
    }
    if !requirements.platforms.is_empty() {
        lines.push(format!("One piece for each platform, under its name: {}.", requirements.platforms.join(", ")));
    }
    if let Some(language) = &requirements.language
        && requirements.family != TaskFamily::Code
    {
        lines.push(format!("Language: {language}."));
    }
    lines.extend(requirements.other_rules.iter().map(|rule| format!("{}.", prose::capitalise(rule))));
    lines
}

fn item_line(item: &ItemCount) -> String {
    let kinds = prose::plural(&item.kind);
    let heading = prose::capitalise(&kinds);
    match item.max_chars {
        Some(limit) => format!(
            "Exactly {} {kinds}, numbered 1 to {} under the heading \"## {heading}\", each at most {limit} \
             characters including spaces, plain text (no bold, no quotes).",
            item.count, item.count
        ),
        None => {
            format!("Exactly {} {kinds}, numbered 1 to {} under the heading \"## {heading}\".", item.count, item.count)
        }
    }
}

fn quoted(list: &[String]) -> String {
    list.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
}

/// The words a piece of `words` may have and still pass the length check.
fn length_bounds(words: u64) -> (u64, u64) {
    let low = (words as f64 * (1.0 - LENGTH_TOLERANCE)).floor() as u64;
    let high = (words as f64 * (1.0 + LENGTH_TOLERANCE)).ceil() as u64;
    (low, high)
}

/// The repair round: the draft back, only its failures named, the rest to be kept.
fn repair_prompt(original: &str, draft: &str, failed: &[String]) -> String {
    let mut user = format!("{original}\n\n## Your draft\n\n{draft}\n\n## What our checks found wrong in it\n");
    for failure in failed {
        user.push_str(&format!("- It {failure}.\n"));
    }
    user.push_str(
        "\nWrite the complete deliverable again with exactly these problems fixed and everything else kept \
         as it is. Output only the deliverable.",
    );
    user
}

/// Checks of a whole piece the general ones leave out: its length when the prototype is the
/// whole piece, and the number of each item asked for.
pub fn piece_checks(plan: &GenerationPlan, phase: Phase, text: &str) -> Vec<Check> {
    let words = clean::word_count(text);
    let mut found = vec![match words {
        0 => check("content", false, "has no text at all"),
        n => check("content", true, format!("has {n} words of content")),
    }];
    // The general checks measure a final's length; a short piece's prototype is the whole piece.
    if let (Phase::Prototype, Some(requested)) = (phase, plan.requested_words)
        && requested <= plan.target_words
    {
        let words = words as u64;
        let (low, high) = length_bounds(requested);
        let passed = (low..=high).contains(&words);
        found.push(check("length", passed, format!("has {words} words for the {requested} asked for ({low}-{high})")));
    }
    for item in plan.requirements.items.iter() {
        let count = count_items(text, &item.kind) as u64;
        let kinds = prose::plural(&item.kind);
        let detail = match count.cmp(&item.count) {
            std::cmp::Ordering::Equal => format!("has the {} {kinds} asked for", item.count),
            _ => format!("has {count} {kinds} where {} were asked for", item.count),
        };
        found.push(check(format!("count:{}", item.kind), count == item.count, detail));
    }
    found
}

/// How many `kind`s the text holds: the list items under a heading that names the kind, or the
/// headings that do (`## Slide 3: Market`), whichever is more.
pub fn count_items(text: &str, kind: &str) -> usize {
    let listed = checks::listed_items(text, kind).len();
    let headed = text
        .lines()
        .filter(|line| line.trim_start().starts_with('#'))
        .filter(|line| {
            let words: Vec<String> = line
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            words.iter().any(|w| *w == kind) && words.iter().any(|w| w.chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    listed.max(headed)
}

/// The whole-piece shape of a family that has no more specific one. `kind` is the kind of work
/// as the brief names it (its task type), for the conventions of common deliverables.
pub fn shape_for(requirements: &Requirements, kind: &str) -> Shape {
    let mut guidance = String::new();
    if !requirements.platforms.is_empty() {
        guidance.push_str(
            "Give each platform a heading (\"## LinkedIn\") with its post under it, written to that platform's \
             length, style and hashtag habits and to any limit the brief sets for it. ",
        );
    }
    let kind = kind.to_lowercase();
    let conventions = match () {
        _ if !requirements.items.is_empty() || !requirements.platforms.is_empty() => None,
        _ if ["slogan", "tagline", "name idea", "naming"].iter().any(|k| kind.contains(k)) => Some(
            "Give a numbered list of 10 distinct options, each under eight words, then a \"## Top pick\" section \
             naming the strongest one and why in one sentence.",
        ),
        _ if kind.contains("product description") => Some(
            "Start with a \"# \" headline, then a short persuasive paragraph, then the key features as bullet \
             points.",
        ),
        _ if kind.contains("newsletter") || kind.contains("email") => Some(
            "Start with a \"Subject:\" line and a \"Preview:\" line, then the email: a greeting, short sections \
             under \"## \" headings, and one clear call to action.",
        ),
        _ => None,
    };
    if let Some(conventions) = conventions {
        guidance.push_str(conventions);
        guidance.push(' ');
    }
    match requirements.family {
        TaskFamily::LongForm => guidance.push_str(
            "Start with a \"# \" title, use \"## \" headings for the sections, keep paragraphs short, and end \
             with a clear close or call to action.",
        ),
        TaskFamily::ShortForm if requirements.platforms.is_empty() && conventions.is_none() => guidance.push_str(
            "Lay it out so the client can copy each part straight into place: a heading for each part the \
             brief names, lists where it asks for several items.",
        ),
        TaskFamily::Business => guidance.push_str(
            "Structure it the way the brief asks (for slides: \"## Slide N: Title\", three to five bullets, \
             then a one-line speaker note), concrete and specific to this business; mark figures the brief \
             does not give as assumptions.",
        ),
        TaskFamily::ShortForm => {}
        _ => guidance.push_str("Use headings, lists and tables where they help the client act on it."),
    }
    Shape::prose(guidance.trim())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::StrategyConfig;
    use crate::engine::Capability;
    use crate::engine::fake::ScriptedGenerator;
    use crate::protocol::parse_brief;

    const ADS: &str = r#"{"task_id":"t","mode":"prototype","title":"Ads for LinguaLeap","task_type":"ad-copy",
        "description":"Google ads for LinguaLeap, a Spanish app.","requirements":{"headline_count":5},
        "quality_rules":{"max_headline_chars":30}}"#;

    async fn write_with(json: &str, replies: &[&str]) -> (Draft, ScriptedGenerator) {
        let brief = parse_brief(json.as_bytes()).unwrap();
        let plan = super::super::plan(&brief, &StrategyConfig::default());
        let fake = ScriptedGenerator::new(Capability::Full, replies.iter().copied());
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(60), 7);
        let shape = shape_for(&plan.requirements, &brief.kind_of_work());
        let draft = write(&brief, &plan, &mut writer, shape, &|_| Vec::new()).await.unwrap();
        (draft, fake)
    }

    const FIVE: &str = "## Headlines\n1. Speak Spanish daily\n2. Ten minutes a day\n3. Talk with AI tutors\n\
                        4. Learn by talking\n5. Free for 7 days";

    #[tokio::test]
    async fn a_failed_check_is_named_in_the_repair_and_the_fixed_draft_is_kept() {
        let fixed = FIVE.replace("Speak Spanish daily", "LinguaLeap Spanish daily");
        let (draft, fake) = write_with(ADS, &[FIVE, &fixed]).await;
        assert_eq!(draft.text, fixed);
        let prompts = fake.prompts();
        assert_eq!(prompts.len(), 2);
        assert!(
            prompts[0].contains("Exactly 5 headlines") && prompts[0].contains("at most 30 characters"),
            "{}",
            prompts[0]
        );
        assert!(prompts[1].contains("It never writes LinguaLeap as given."), "{}", prompts[1]);
        assert!(prompts[1].contains(FIVE), "the repair sees its draft");
        assert!(draft.checks.iter().all(|c| c.passed), "{:?}", draft.checks);
    }

    #[tokio::test]
    async fn missing_items_are_asked_for_alone_not_the_whole_piece_again() {
        let three = "## Headlines\n1. LinguaLeap Spanish daily\n2. Ten minutes a day\n3. Talk with AI tutors";
        let (draft, fake) = write_with(ADS, &[three, "1. Start your free trial\n2. Learn by talking"]).await;
        assert_eq!(count_items(&draft.text, "headline"), 5, "{}", draft.text);
        let prompts = fake.prompts();
        assert_eq!(prompts.len(), 2);
        assert!(prompts[1].contains("Write 3 more headlines"), "{}", prompts[1]);
        assert!(draft.checks.iter().all(|c| c.passed), "{:?}", draft.checks);
    }

    #[tokio::test]
    async fn a_repair_that_is_worse_is_thrown_away() {
        let worse = "## Headlines\n1. A headline that runs far past the thirty characters allowed";
        let (draft, _) = write_with(ADS, &[FIVE, worse]).await;
        assert_eq!(draft.text, FIVE);
        let failed: Vec<&str> = draft.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["name:LinguaLeap"], "the failure that remains is reported");
    }

    #[tokio::test]
    async fn a_draft_that_passes_is_not_asked_again() {
        let five = FIVE.replace("Speak Spanish daily", "LinguaLeap Spanish daily");
        let (draft, fake) = write_with(ADS, &[&five]).await;
        assert_eq!(fake.prompts().len(), 1);
        assert_eq!(draft.text, five);
    }

    #[tokio::test]
    async fn an_empty_answer_is_a_failed_check_and_asked_again() {
        let brief = r#"{"task_id":"t","mode":"prototype","title":"Slogans","description":"Slogans for Crumb & Co."}"#;
        let (draft, fake) = write_with(brief, &["", "Crumb & Co: bread worth the wait."]).await;
        assert_eq!(fake.prompts().len(), 2);
        assert!(fake.prompts()[1].contains("It has no text at all."));
        assert_eq!(draft.text, "Crumb & Co: bread worth the wait.");
    }

    #[tokio::test]
    async fn a_short_piece_prototype_is_held_to_its_length() {
        let brief = r#"{"task_id":"t","mode":"prototype","title":"Bottle","task_type":"product-description",
            "description":"Describe the Alpine 750 bottle.","requirements":{"word_count":40}}"#;
        let short = "The Alpine 750 keeps drinks cold.";
        let right = "The Alpine 750 keeps drinks cold for a full day and hot through the evening, \
            fits the cup holder of your car, survives the dishwasher, and comes in five colours for \
            hikers who start early and commuters who finish late every day.";
        let (draft, fake) = write_with(brief, &[short, right]).await;
        assert!(fake.prompts()[1].contains("has 6 words for the 40 asked for"), "{}", fake.prompts()[1]);
        assert_eq!(draft.text, right);
    }

    #[test]
    fn items_are_counted_in_their_list_or_as_numbered_headings() {
        let ads = "## Headlines\n1. One\n2. Two\n3. Three\n\n## Descriptions\n1. Long one\n";
        assert_eq!(count_items(ads, "headline"), 3);
        assert_eq!(count_items(ads, "description"), 1);
        let deck = "## Slide 1: Problem\n- a\n## Slide 2: Market\n- b\n## Slide 3 — Ask\n- c\n";
        assert_eq!(count_items(deck, "slide"), 3);
        assert_eq!(count_items("Nothing here", "slide"), 0);
    }

    #[test]
    fn an_echo_of_the_repair_prompt_is_not_delivered() {
        let echoed = "# Title\n\nThe post.\n\n## What our checks found wrong in it\n- It never uses \"x\".\n\n\
                      Write the complete deliverable again with exactly these problems fixed.";
        assert_eq!(strip_prompt_echo(echoed), "# Title\n\nThe post.");
        assert_eq!(strip_prompt_echo("## Briefly\nok"), "## Briefly\nok", "a heading of the work's own stays");
    }

    #[test]
    fn the_length_bounds_are_the_checks_tolerance() {
        assert_eq!(length_bounds(150), (127, 173));
        assert_eq!(length_bounds(1500), (1275, 1725));
    }
}
