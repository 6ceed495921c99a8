//! The prompt: the whole brief, laid out so a small model can follow it, and an instruction that
//! differs by phase — a strong, shorter draft for the prototype, the complete deliverable for the
//! final.

use super::prose;
use crate::engine::ChatMessage;
use crate::protocol::{Brief, Phase, Requirement};

/// Descriptions beyond this are cut before prompting; the context window is finite and the
/// brief's opening carries its scope.
const MAX_DESCRIPTION_CHARS: usize = 12_000;

const SYSTEM: &str = "You are a professional freelancer who delivers finished work to paying clients. \
Follow the brief exactly: its length, audience, tone, keywords and format. Use the facts and names \
from the brief and never contradict them. Write the deliverable itself in Markdown: no preamble, no \
questions back, no notes about yourself. Avoid filler phrases.";

/// The chat for `brief`. `translate_into` is [`Requirements::translate_into`] of the brief, decided once
/// by the plan.
pub fn messages(
    brief: &Brief,
    requested_words: Option<u64>,
    target_words: u64,
    translate_into: Option<&str>,
    figures: &[String],
) -> Vec<ChatMessage> {
    let mut user = user_prompt(brief, requested_words, target_words, translate_into);
    if !figures.is_empty() {
        // The numbers come from Rust; the model only writes around them.
        user.push_str("\n\n## Verified figures (computed exactly from the data)\n");
        for figure in figures {
            user.push_str(&format!("- {figure}\n"));
        }
        user.push_str(
            "\nThese figures, their summary and the results tables are already written and attached. Your part: \
             what the client should look into next, and why, as three to five short bullet points that refer to \
             regions, products or periods by name. Write no numbers at all.",
        );
    }
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user)]
}

fn user_prompt(brief: &Brief, requested_words: Option<u64>, target_words: u64, translate_into: Option<&str>) -> String {
    let mut out = brief_text(brief);
    out.push_str("\n## Your task\n");
    out.push_str(&instruction(brief, requested_words, target_words, translate_into));
    out
}

/// The whole brief laid out for a model: title, kind of work, description, requirements,
/// quality rules, context and the attachments it cannot see.
pub fn brief_text(brief: &Brief) -> String {
    let mut out = String::new();
    let title = if brief.title.is_empty() { "Task" } else { brief.title.as_str() };
    out.push_str(&format!("# {title}\n"));
    match (&brief.task_type, &brief.category) {
        (Some(t), Some(c)) => out.push_str(&format!("Type of work: {} ({})\n", humanise(t), humanise(c))),
        (Some(x), None) | (None, Some(x)) => out.push_str(&format!("Type of work: {}\n", humanise(x))),
        (None, None) => {}
    }
    if !brief.description.is_empty() {
        out.push_str("\n## Brief\n");
        out.push_str(&truncate_chars(&brief.description, MAX_DESCRIPTION_CHARS));
        out.push('\n');
    }
    push_section(
        &mut out,
        "Requirements",
        brief.requirements.iter().map(|(k, v)| (k.as_str(), Requirement(v).as_text())),
    );
    push_section(
        &mut out,
        "Quality rules",
        brief.quality_rules.iter().map(|(k, v)| (k.as_str(), Requirement(v).as_text())),
    );
    push_section(&mut out, "Additional context", brief.extra_context.iter().map(|(k, v)| (k.as_str(), v.clone())));
    if !brief.attachments.is_empty() {
        out.push_str("\n## Attachments (not available to you)\n");
        for a in &brief.attachments {
            let name = if a.filename.is_empty() { "unnamed file" } else { a.filename.as_str() };
            out.push_str(&format!("- {name}\n"));
        }
    }
    out
}

fn instruction(brief: &Brief, requested_words: Option<u64>, target_words: u64, translate_into: Option<&str>) -> String {
    let kind = brief.kind_of_work();
    if let Some(language) = translate_into {
        return format!(
            "Translate the text given in the brief into {language}, sentence by sentence, keeping its line \
             breaks and formatting. Output only the {language} translation."
        );
    }
    match (brief.phase, requested_words) {
        (Phase::Prototype, Some(requested)) if requested > target_words => format!(
            "Write the opening of the {kind}: a strong, polished first part of about {target_words} words, in \
             the final format, that shows the buyer the full piece will follow the brief. Start directly \
             with the work."
        ),
        (Phase::Prototype, _) => format!(
            "Write the {kind} now as a complete, polished draft of about {target_words} words that follows \
             every requirement above. Start directly with the work."
        ),
        (Phase::Final, _) => format!(
            "Write the complete, final {kind} of about {target_words} words. Cover every point of the brief \
             and every requirement above, with a clear structure. Start directly with the work."
        ),
    }
}

fn push_section<'a>(out: &mut String, heading: &str, items: impl Iterator<Item = (&'a str, String)>) {
    let lines: Vec<String> = items
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("- {}: {v}\n", prose::capitalise(&humanise(k))))
        .collect();
    if !lines.is_empty() {
        out.push_str(&format!("\n## {heading}\n"));
        lines.iter().for_each(|l| out.push_str(l));
    }
}

fn humanise(slug: &str) -> String {
    slug.replace(['_', '-'], " ")
}

/// `s` cut to `max` characters (on a character boundary), with an ellipsis when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;
    use crate::strategy::requirements::Requirements;

    fn brief(json: &str) -> Brief {
        parse_brief(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_prompt_carries_the_whole_brief() {
        let b = brief(
            r#"{"task_id":"t","mode":"prototype","title":"Blog on ESG","description":"Explain ESG funds.",
                "category":"writing-translation","task_type":"blog-post",
                "requirements":{"tone":"conversational","seo_keywords":["ESG funds","greenwashing"],"word_count":"1500"},
                "quality_rules":{"max_headline_chars":30},"user_notes":"Mention fees",
                "attachments":[{"filename":"data.csv","url":"https://x/y","content_type":"text/csv"}]}"#,
        );
        let msgs = messages(&b, Some(1500), 450, None, &[]);
        let user = &msgs[1].content;
        for needle in [
            "# Blog on ESG",
            "blog post (writing translation)",
            "Explain ESG funds.",
            "- Tone: conversational",
            "- Seo keywords: ESG funds, greenwashing",
            "- Word count: 1500",
            "- Max headline chars: 30",
            "- User notes: Mention fees",
            "- data.csv",
            "about 450 words",
            "opening of the blog post",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in:\n{user}");
        }
    }

    #[test]
    fn prototype_and_final_ask_for_different_work() {
        let proto = brief(r#"{"task_id":"t","mode":"prototype","description":"Slogans for a bakery"}"#);
        let fin = brief(r#"{"task_id":"t","mode":"final","description":"Slogans for a bakery"}"#);
        let p = &messages(&proto, None, 250, None, &[])[1].content;
        let f = &messages(&fin, None, 600, None, &[])[1].content;
        assert!(p.contains("polished draft") && f.contains("complete, final"), "{p}\n---\n{f}");
    }

    #[test]
    fn a_translation_asks_for_the_translation_only() {
        let b = brief(
            r#"{"task_id":"t","mode":"final","task_type":"translation","description":"Translate: Hello.",
                         "requirements":{"target_language":"Spanish"}}"#,
        );
        let into = Requirements::from_brief(&b).translate_into();
        let user = &messages(&b, None, 20, into.as_deref(), &[])[1].content;
        assert!(user.contains("into Spanish") && user.contains("Output only the Spanish translation"), "{user}");
        let blog = r#"{"task_id":"t","mode":"final","description":"Blog","category":"writing-translation","task_type":"blog-post"}"#;
        assert_eq!(Requirements::from_brief(&brief(blog)).translate_into(), None);
    }

    #[test]
    fn very_long_descriptions_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_DESCRIPTION_CHARS + 10);
        assert_eq!(truncate_chars(&long, MAX_DESCRIPTION_CHARS).chars().count(), MAX_DESCRIPTION_CHARS + 1);
    }
}
