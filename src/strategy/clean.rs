//! Turning what the model wrote into what a buyer reads: no chat-template tokens, no chatty
//! preamble, tidy whitespace, and — when generation was cut short — no half sentence at the end.

/// Markers of chat templates across model families. Any `<|…|>` token is removed as well.
pub(crate) const TEMPLATE_MARKERS: &[&str] = &["<s>", "</s>", "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]"];

/// Openings small models put before the work ("Sure! Here is your blog post:").
const PREAMBLE_OPENINGS: &[&str] =
    &["sure", "certainly", "of course", "here is", "here's", "absolutely", "okay", "ok,"];

/// What may close a sentence after its final punctuation.
const CLOSERS: &[char] = &['"', '\'', ')', ']', '*', '_', '”', '’'];

/// Clean model text. `truncated` says generation stopped before the model finished.
pub fn clean_output(raw: &str, truncated: bool) -> String {
    let mut text = strip_template_tokens(raw);
    text = drop_preamble(&text);
    text = tidy_whitespace(&text);
    if truncated {
        text = cut_to_last_complete_unit(&text);
    }
    text
}

/// Closing lines that talk to the client about the work instead of being it.
const SIGN_OFFS: &[&str] = &[
    "if you have any questions",
    "if you have any further questions",
    "feel free to",
    "let me know if",
    "i hope this",
    "hope this helps",
    "end of ",
    "**end of",
];

/// `text` without the sign-off lines a model ends on ("Feel free to reach out!", "End of Ad
/// Copy"), and the rule or blank lines they leave behind.
pub fn drop_sign_off(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    while let Some(last) = lines.last() {
        let lower = last.trim().trim_start_matches(['*', '_', '-', ' ']).to_lowercase();
        let sign_off = SIGN_OFFS.iter().any(|s| lower.starts_with(s.trim_start_matches('*')));
        if last.trim().is_empty() || matches!(last.trim(), "---" | "***") || sign_off {
            lines.pop();
        } else {
            break;
        }
    }
    lines.join("\n")
}

/// Remove `<|…|>` tokens and the other template markers.
pub fn strip_template_tokens(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("<|") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("|>") {
            Some(end) if !rest[start + 2..start + 2 + end].contains(char::is_whitespace) => {
                rest = &rest[start + 2 + end + 2..]
            }
            _ => {
                out.push_str("<|");
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    for marker in TEMPLATE_MARKERS {
        out = out.replace(marker, "");
    }
    out
}

/// Drop a first line that talks about the work instead of being it.
fn drop_preamble(text: &str) -> String {
    let trimmed = text.trim_start();
    let Some((first, rest)) = trimmed.split_once('\n') else {
        return trimmed.to_string();
    };
    let lower = first.trim().to_lowercase();
    let is_preamble = first.len() < 160
        && (first.trim_end().ends_with(':') || first.trim_end().ends_with('!'))
        && PREAMBLE_OPENINGS.iter().any(|p| lower.starts_with(p));
    if is_preamble && !rest.trim().is_empty() { rest.to_string() } else { trimmed.to_string() }
}

/// Trailing spaces off every line, at most one blank line in a row, no blank edges.
fn tidy_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Cut a truncated text after its last complete sentence or line, and drop headings or list
/// markers left dangling at the end. Never cuts inside a word.
fn cut_to_last_complete_unit(text: &str) -> String {
    if ends_a_sentence(text) {
        return text.to_string();
    }
    let last_newline = text.rfind('\n');
    let last_sentence_end = text
        .char_indices()
        .filter(|(_, c)| matches!(c, '.' | '!' | '?'))
        .filter_map(|(i, c)| sentence_end_after(text, i + c.len_utf8()))
        .next_back();
    let cut = match (last_sentence_end, last_newline) {
        (Some(s), Some(n)) => s.max(n),
        (Some(s), None) => s,
        (None, Some(n)) => n,
        // Not one complete sentence or line: end at the last whole word and say it goes on.
        (None, None) => {
            return match text.trim_end().rfind(char::is_whitespace) {
                Some(space) => format!("{}…", text[..space].trim_end_matches([',', ';', ':', '-', '—', ' '])),
                None => text.to_string(),
            };
        }
    };
    let mut kept = text[..cut].trim_end().to_string();
    // A heading or an empty list item with nothing under it reads as a mistake.
    while let Some(last_line) = kept.lines().last() {
        let l = last_line.trim();
        let dangling = l.starts_with('#') || matches!(l, "-" | "*" | "1." | ">") || l.ends_with(':');
        if !dangling || kept.lines().count() <= 1 {
            break;
        }
        let cut = kept.len() - last_line.len();
        kept = kept[..cut].trim_end().to_string();
    }
    kept
}

/// Where a sentence whose final punctuation ends at `after` really ends (closing quotes and
/// emphasis included), if what follows is a break and not, say, the rest of "2.5".
fn sentence_end_after(text: &str, after: usize) -> Option<usize> {
    let rest = &text[after..];
    let closing = rest.len() - rest.trim_start_matches(CLOSERS).len();
    let next = &rest[closing..];
    (next.is_empty() || next.starts_with(char::is_whitespace)).then_some(after + closing)
}

fn ends_a_sentence(text: &str) -> bool {
    let t = text.trim_end().trim_end_matches(CLOSERS);
    t.ends_with(['.', '!', '?']) || t.ends_with("```")
}

/// Words as a reader counts them.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_offs_at_the_end_are_dropped_and_the_work_is_kept() {
        let text = "## Headlines\n1. Learn fast\n\nIf you have any further questions, feel free to reach out!\n\n---\n\n**End of Ad Copy**";
        assert_eq!(drop_sign_off(text), "## Headlines\n1. Learn fast");
        assert_eq!(drop_sign_off("Feel the difference. Buy now."), "Feel the difference. Buy now.");
    }

    #[test]
    fn template_tokens_are_removed_but_other_angle_brackets_stay() {
        let raw = "Hello<|im_end|>\n<|im_start|>assistant\nWorld</s> a <| b |> c <tag>";
        assert_eq!(strip_template_tokens(raw), "Hello\nassistant\nWorld a <| b |> c <tag>");
    }

    #[test]
    fn a_chatty_preamble_is_dropped() {
        assert_eq!(clean_output("Sure! Here is your post:\n# Title\nBody.", false), "# Title\nBody.");
        assert_eq!(clean_output("Here's the thing: it works.\nMore.", false), "Here's the thing: it works.\nMore.");
    }

    #[test]
    fn whitespace_is_tidied() {
        assert_eq!(clean_output("\n\n# A  \n\n\n\nText.  \n\n", false), "# A\n\nText.");
    }

    #[test]
    fn truncated_text_ends_on_a_complete_sentence() {
        assert_eq!(clean_output("One. Two is long. Three is cut hal", true), "One. Two is long.");
        assert_eq!(clean_output("Para one ends.\n\n## Next heading\nThe next sen", true), "Para one ends.");
        assert_eq!(clean_output("- apples\n- pears\n- plu", true), "- apples\n- pears");
        assert_eq!(clean_output("He said \"go.\" Then we wen", true), "He said \"go.\"");
        assert_eq!(clean_output("Version 2.5 is out. It ships tod", true), "Version 2.5 is out.");
        assert_eq!(clean_output("# A heading that never, ends becau", true), "# A heading that never, ends…");
    }

    #[test]
    fn finished_text_is_left_whole() {
        assert_eq!(clean_output("A sentence without a stop", false), "A sentence without a stop");
        assert_eq!(clean_output("All done.", true), "All done.");
    }

    #[test]
    fn words_are_counted_like_a_reader_would() {
        assert_eq!(word_count("# Title\n\n- one, two — three"), 4);
    }
}
