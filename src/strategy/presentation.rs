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

/// A short note to the buyer: what this is and what the final adds. `partial` says the
/// strategy wrote only part of the piece (its own note says which part).
pub fn agent_message(brief: &Brief, requested_words: Option<u64>, words: usize, partial: bool) -> String {
    let kind = brief.kind_of_work();
    match (brief.phase, requested_words) {
        (Phase::Prototype, _) if partial => format!("This prototype shows your {kind}, written to your brief."),
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
    }
}

/// What became of the brief's attachments, for the agent message: which were read, and why
/// any could not be.
pub fn attachment_note(report: &crate::attachments::AttachmentReport) -> String {
    let mut note = String::new();
    if !report.fetched.is_empty() {
        let read: Vec<&str> = report.fetched.iter().map(|f| f.filename.as_str()).collect();
        note.push_str(&format!(" Read from your attachments: {}.", read.join(", ")));
    }
    for failure in &report.failures {
        note.push_str(&format!(" {}.", failure.trim_end_matches('.')));
    }
    note
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
        let brief = parse_brief(br#"{"task_id":"t","mode":"prototype","description":"d"}"#).unwrap();
        let m = agent_message(&brief, Some(1500), 400, false);
        assert!(m.contains("400 of the 1500 words"), "{m}");
    }

    #[test]
    fn the_note_says_which_attachments_were_read_and_why_others_were_not() {
        let report = crate::attachments::AttachmentReport {
            fetched: vec![crate::attachments::FetchedAttachment {
                filename: "sales.csv".into(),
                content_type: "text/csv".into(),
                text: "a,b".into(),
            }],
            failures: vec!["logo.png is not a text file; not used".into()],
        };
        assert_eq!(
            attachment_note(&report),
            " Read from your attachments: sales.csv. logo.png is not a text file; not used."
        );
    }
}
