//! A slide's speaker note: asking the model for one or two sentences, keeping them only if clean,
//! and a plain note built from the slide's first point when the model's will not pass.

use super::facts::Known;
use super::flaws::flaw;
use super::{MAX_NOTE_WORDS, NOTE_ATTEMPTS, SYSTEM, same};
use crate::engine::EngineError;
use crate::strategy::compose::{Ask, Writer, sentences};

pub(super) async fn speaker_note(
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
pub(super) fn fallback_note(title: &str, bullets: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::tests::known;
    use super::*;

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
}
