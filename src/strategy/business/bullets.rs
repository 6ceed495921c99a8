//! A slide's bullet points: asking the model for them over a few attempts, reading its list, keeping
//! only short plain statements true to the brief, and filling the rest with outline points.

use super::facts::Known;
use super::flaws::flaw;
use super::roles::Role;
use super::{BULLET_ATTEMPTS, MAX_BULLET_CHARS, MAX_BULLETS, MIN_BULLETS, SYSTEM, same};
use crate::engine::{EngineError, FinishReason};
use crate::strategy::compose::{Ask, Writer, sentences};

/// A slide's bullets: the seeded facts, then the model's bullets that pass, gathered over a few
/// attempts; standard outline points fill what is still missing.
#[allow(clippy::too_many_arguments)]
pub(super) async fn slide_bullets(
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
pub(super) fn fill(mut bullets: Vec<String>, role: &Role) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::known;
    use super::*;

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
}
