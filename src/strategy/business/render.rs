//! The deck as text: rendering the slides as Markdown, and the deck's own checks read back from
//! that text (slide count, bullets per slide, speaker notes, the brief's figures).

use super::{MAX_BULLETS, MIN_BULLETS, Slide};
use crate::protocol::Check;
use crate::strategy::compose::{check, sentences};

pub(super) fn render(slides: &[Slide]) -> String {
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
pub(super) fn deck_checks(text: &str, count: usize, figures: &[String]) -> Vec<Check> {
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
}
