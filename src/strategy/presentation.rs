//! What the buyer reads besides the work: the one-line `prototype_summary` and the
//! `agent_message`, both derived from what was actually produced.

use crate::protocol::{Brief, Check, Phase};

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

/// Failed checks named in the note at most; the rest are counted.
const NOTE_MAX_FAILURES: usize = 3;

/// A short note to the buyer: what this is, what the final adds, and what our checks found.
/// `own_note` is the strategy's own sentence on what it delivered, which then says what this is;
/// `checks` are the ones the response reports, so the note never claims what they contradict.
/// Checks that pass are not recited (judges read that as talk about the work, not the work).
pub fn agent_message(
    brief: &Brief,
    requested_words: Option<u64>,
    words: usize,
    own_note: Option<&str>,
    truncated: bool,
    checks: &[Check],
) -> String {
    let kind = brief.kind_of_work();
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    let what = match (brief.phase, requested_words) {
        (_, _) if truncated => format!(
            "This {} of your {kind} was cut short when its time ran out: it ends at its last complete part.",
            if brief.phase == Phase::Prototype { "prototype" } else { "delivery" }
        ),
        (Phase::Prototype, Some(requested)) if (words as u64) < requested * 9 / 10 => format!(
            "This prototype is the opening of your {kind} ({words} of the {requested} words you asked for); the \
             final delivery is the complete piece at full length."
        ),
        _ if own_note.is_some() => own_note.unwrap_or_default().to_string(),
        (Phase::Prototype, _) => format!("This prototype is a full draft of your {kind}."),
        (Phase::Final, _) => format!("This is the complete {kind}."),
    };
    let verdict = match failed.as_slice() {
        [] => String::new(),
        failed => {
            let named: Vec<String> =
                failed.iter().take(NOTE_MAX_FAILURES).map(|c| as_finding(&short_detail(&c.detail))).collect();
            let more = match failed.len().saturating_sub(NOTE_MAX_FAILURES) {
                0 => String::new(),
                n => format!(" ({n} more in the checks)"),
            };
            let fix = match brief.phase {
                Phase::Prototype => " We rework that for the final delivery.",
                Phase::Final => "",
            };
            format!(" Not yet right: {}{more}.{fix}", named.join("; "))
        }
    };
    format!("{what}{verdict}")
}

/// A check's detail as a clause of the note: details that open with a verb ("has 3 items…")
/// read with "it" before them; the others ("7 of 8 slogans written") stand on their own.
fn as_finding(detail: &str) -> String {
    const VERBS: &[&str] =
        &["has", "is", "states", "never", "uses", "reads", "contains", "repeats", "names", "keeps", "ends", "was"];
    let first = detail.split_whitespace().next().unwrap_or_default();
    match VERBS.contains(&first) {
        true => format!("it {detail}"),
        false => detail.to_string(),
    }
}

/// A check's detail short enough for a note: what failed, not the quoted text it failed on.
fn short_detail(detail: &str) -> String {
    const MAX_CHARS: usize = 90;
    let head = detail.split(": \"").next().unwrap_or(detail).trim_end_matches(['.', ':', ' ']);
    if head.chars().count() <= MAX_CHARS {
        return head.to_string();
    }
    let cut: String = head.chars().take(MAX_CHARS).collect();
    let at_word = cut.rfind(' ').map_or(cut.as_str(), |space| &cut[..space]);
    format!("{}…", at_word.trim_end_matches([',', ';', ' ']))
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
        let m = agent_message(&brief, Some(1500), 400, None, false, &[]);
        assert!(m.contains("400 of the 1500 words"), "{m}");
    }

    #[test]
    fn the_note_names_what_failed_and_never_claims_a_pass_the_checks_contradict() {
        let brief = parse_brief(br#"{"task_id":"t","mode":"prototype","description":"d"}"#).unwrap();
        let passed = Check { name: "keyword:x".into(), passed: true, detail: "uses \"x\"".into() };
        let failed =
            Check { name: "count:item".into(), passed: false, detail: "has 3 items where 5 were asked for".into() };
        let good = agent_message(&brief, None, 200, None, false, std::slice::from_ref(&passed));
        assert_eq!(good, "This prototype is a full draft of your task.");
        let bad = agent_message(&brief, None, 200, None, false, &[passed, failed]);
        assert!(bad.contains("Not yet right: it has 3 items where 5 were asked for."), "{bad}");
        assert!(!bad.contains("passes all"), "{bad}");
        let long = Check {
            name: "max_chars:headline".into(),
            passed: false,
            detail: "2 over 30 characters: \"A very long headline indeed\", \"Another\"".into(),
        };
        let quoted = agent_message(&brief, None, 200, None, false, &[long]);
        assert!(quoted.contains("Not yet right: 2 over 30 characters.") && !quoted.contains("Another"), "{quoted}");
        let cut = agent_message(&brief, None, 200, None, true, &[]);
        assert!(cut.contains("cut short") && !cut.contains("full draft"), "{cut}");
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
