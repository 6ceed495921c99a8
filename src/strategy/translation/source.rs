//! The text to translate and its lines: the brief's instruction line, the source text found in
//! the brief (a fenced block, what follows the instruction, a quoted passage, or the whole
//! description), and each line's markup kept apart from its words.

/// The line that asks for the translation: the first line ending in `:` in the opening
/// paragraph (`Translate the following notice into Spanish:`).
pub(super) fn instruction_line(description: &str) -> Option<String> {
    description
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .find(|line| line.trim_end().ends_with(':'))
        .or_else(|| description.lines().find(|line| !line.trim().is_empty()))
        .map(|line| line.trim().to_string())
}

/// The text to translate: a fenced block if there is one; else what follows the instruction
/// line ending in `:`; else a quoted passage; else the whole description. Its lines, blank
/// lines and markup are kept as they are.
pub fn source_text(description: &str) -> String {
    if let Some(start) = description.find("```") {
        let after = &description[start + 3..];
        // The fence's info string (a language tag) is not part of the text.
        let body = after.split_once('\n').map_or("", |(_, body)| body);
        if let Some(end) = body.find("```") {
            let inner = trim_blank_lines(&body[..end]);
            if !inner.is_empty() {
                return inner.to_string();
            }
        }
    }
    let lines: Vec<&str> = description.lines().collect();
    let opening = lines.iter().take_while(|line| !line.trim().is_empty()).count();
    if let Some(at) = lines[..opening].iter().position(|line| line.trim_end().ends_with(':')) {
        let rest = lines[at + 1..].join("\n");
        let rest = trim_blank_lines(&rest);
        if !rest.is_empty() {
            return unquote(rest);
        }
    }
    if let Some(quoted) = quoted_passage(description) {
        return quoted;
    }
    // An opening paragraph that asks for the translation, and the text after it (or after
    // its colon: `Translate into French: We open at 9.`).
    let opening_text = lines[..opening].join("\n");
    if opening_text.to_lowercase().contains("translat") {
        let rest = lines[opening..].join("\n");
        let rest = trim_blank_lines(&rest);
        if !rest.is_empty() {
            return unquote(rest);
        }
        if let Some((_, inline)) = opening_text.split_once(": ")
            && !inline.trim().is_empty()
        {
            return unquote(inline.trim());
        }
    }
    trim_blank_lines(description).to_string()
}

/// `text` without blank lines before and whitespace after it (the first line keeps its indent).
fn trim_blank_lines(text: &str) -> &str {
    let blank: usize = text.split_inclusive('\n').take_while(|line| line.trim().is_empty()).map(str::len).sum();
    text[blank..].trim_end()
}

/// The text without quotes around the whole of it, or blockquote markers on every line.
fn unquote(text: &str) -> String {
    let trimmed = text.trim();
    for (open, close) in [('"', '"'), ('“', '”'), ('«', '»')] {
        if let Some(inner) = trimmed.strip_prefix(open).and_then(|t| t.strip_suffix(close))
            && !inner.contains(close)
        {
            return inner.trim().to_string();
        }
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty() && lines.iter().all(|l| l.trim_start().starts_with('>')) {
        return text
            .lines()
            .map(|l| l.trim_start().strip_prefix('>').map_or(l, |rest| rest.strip_prefix(' ').unwrap_or(rest)))
            .collect::<Vec<_>>()
            .join("\n");
    }
    text.to_string()
}

/// The longest passage of three words or more in double quotes.
fn quoted_passage(text: &str) -> Option<String> {
    let mut best: Option<&str> = None;
    for (open, close) in [('"', '"'), ('“', '”'), ('«', '»')] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len_utf8()..];
            let Some(end) = after.find(close) else { break };
            let inner = after[..end].trim();
            if inner.split_whitespace().count() >= 3 && best.is_none_or(|b| inner.len() > b.len()) {
                best = Some(inner);
            }
            rest = &after[end + close.len_utf8()..];
        }
    }
    best.map(str::to_string)
}

/// A line's leading markup (indentation, `#`, `-`, `*`, `>`, `1.`) and its text.
pub(super) fn split_markup(line: &str) -> (&str, &str) {
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        let marker_len = if trimmed.starts_with('#') {
            trimmed.chars().take_while(|c| *c == '#').count()
        } else if let Some(after) = trimmed.strip_prefix(['-', '*', '+', '>', '•'])
            && after.starts_with(' ')
        {
            trimmed.len() - after.len()
        } else {
            let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
            match trimmed[digits..].chars().next() {
                Some('.' | ')') if digits > 0 && trimmed[digits + 1..].starts_with(' ') => digits + 1,
                _ => 0,
            }
        };
        if marker_len == 0 || !trimmed[marker_len..].starts_with(' ') {
            let content = rest.trim_start();
            return (&line[..line.len() - content.len()], content);
        }
        rest = &trimmed[marker_len..];
    }
}

pub(super) fn has_words(text: &str) -> bool {
    text.chars().any(char::is_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::translation::tests::{NOTICE, fixture};

    #[test]
    fn the_source_is_what_follows_the_instruction() {
        assert_eq!(source_text(&fixture().description), NOTICE);
        assert_eq!(source_text("Please translate:\n\n```text\nHello.\n\nBye.\n```\nThanks!"), "Hello.\n\nBye.");
        assert_eq!(source_text("Translate into French: \"We open at 9 tomorrow.\" Thanks."), "We open at 9 tomorrow.");
        assert_eq!(source_text("Into German, please:\n> Hello there.\n> Bye now."), "Hello there.\nBye now.");
        assert_eq!(source_text("We are closed today.\n\nSee you soon."), "We are closed today.\n\nSee you soon.");
        // A colon inside the text itself does not start it.
        assert_eq!(
            source_text("Translate this into Italian:\n\nOpening hours:\nMonday to Friday."),
            "Opening hours:\nMonday to Friday."
        );
    }

    #[test]
    fn markup_is_kept_apart_from_the_text() {
        assert_eq!(split_markup("  - **Bold** item"), ("  - ", "**Bold** item"));
        assert_eq!(split_markup("## 2. Title"), ("## 2. ", "Title"));
        assert_eq!(split_markup("3 apples"), ("", "3 apples"));
        assert_eq!(split_markup("-5 degrees"), ("", "-5 degrees"));
    }
}
