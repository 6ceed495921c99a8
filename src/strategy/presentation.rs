//! What the buyer reads besides the work: the one-line `prototype_summary` and the
//! `agent_message`, both derived from what was actually produced.

use crate::protocol::{Brief, Phase};

/// "A 412-word prototype blog post for "Title", with sections: A, B and C."
pub fn summary(brief: &Brief, output: &str, words: usize) -> String {
    let kind = brief.kind_of_work();
    let title = if brief.title.is_empty() { String::new() } else { format!(" for \"{}\"", brief.title) };
    let headings = section_headings(output);
    let sections = match headings.as_slice() {
        [] => String::new(),
        [only] => format!(", with a section \"{only}\""),
        many => format!(", with sections: {}", many.iter().take(4).cloned().collect::<Vec<_>>().join("; ")),
    };
    match brief.phase {
        Phase::Prototype => format!("A {words}-word prototype {kind}{title}{sections}."),
        Phase::Final => format!("The complete {kind}{title} ({words} words){sections}."),
    }
}

/// A short note to the buyer: what this is, what the final adds, what we could not use.
pub fn agent_message(brief: &Brief, requested_words: Option<u64>, words: usize) -> String {
    let kind = brief.kind_of_work();
    let mut message = match (brief.phase, requested_words) {
        (Phase::Prototype, Some(requested)) if (words as u64) < requested * 9 / 10 => format!(
            "This prototype is the opening of your {kind} ({words} of the {requested} words you asked for), \
             written to your brief. The final delivery is the complete piece at full length, covering every \
             point and requirement you listed."
        ),
        (Phase::Prototype, _) => format!(
            "This prototype is a complete draft of your {kind}, written to your brief. The final delivery \
             refines it against every requirement you listed."
        ),
        (Phase::Final, _) => format!("Here is the complete {kind}, written to your brief. Thank you for choosing us."),
    };
    let unread: Vec<&str> = brief.attachments.iter().map(|a| a.filename.as_str()).filter(|f| !f.is_empty()).collect();
    if !unread.is_empty() {
        message.push_str(&format!(" Attachments not used in this draft: {}.", unread.join(", ")));
    }
    message
}

fn section_headings(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.trim().strip_prefix('#'))
        .map(|h| h.trim_start_matches('#').trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    #[test]
    fn summary_names_the_work_and_its_sections() {
        let brief = parse_brief(
            br#"{"task_id":"t","mode":"prototype","title":"ESG","description":"d","task_type":"blog-post"}"#,
        )
        .unwrap();
        let s = summary(&brief, "# ESG\n\nText\n\n## Fees\n\nMore", 120);
        assert_eq!(s, "A 120-word prototype blog post for \"ESG\", with sections: ESG; Fees.");
    }

    #[test]
    fn a_short_prototype_says_the_final_is_full_length() {
        let brief = parse_brief(
            br#"{"task_id":"t","mode":"prototype","description":"d","attachments":[{"filename":"a.csv","url":"u"}]}"#,
        )
        .unwrap();
        let m = agent_message(&brief, Some(1500), 400);
        assert!(m.contains("400 of the 1500 words") && m.contains("a.csv"), "{m}");
    }
}
