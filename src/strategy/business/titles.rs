//! Slide titles: reading them from the model's numbered list, and keeping one only where it fits
//! its slot in the deck.

use super::roles::Role;

/// The titles of a numbered list, by their numbers (a line without a number takes the next slot).
pub(super) fn parse_titles(reply: &str, count: usize) -> Vec<Option<String>> {
    let mut titles = vec![None; count];
    let mut next = 0;
    for line in reply.lines() {
        let t = line.trim();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        let (slot, rest) = match t[digits..].strip_prefix(['.', ')']) {
            Some(rest) if digits > 0 => (t[..digits].parse::<usize>().ok().and_then(|n| n.checked_sub(1)), rest),
            _ => continue,
        };
        let slot = slot.unwrap_or(next);
        next = slot + 1;
        if slot < count && titles[slot].is_none() {
            titles[slot] = clean_title(rest);
        }
    }
    titles
}

/// A title: the text before any ": explanation", without Markdown or quotes, 1–6 plain words.
fn clean_title(raw: &str) -> Option<String> {
    let raw = raw.replace("**", "");
    let head = raw.split([':', '(']).next().unwrap_or("").split(" - ").next().unwrap_or("");
    let title = head.trim().trim_matches(|c| c == '"' || c == '\'' || c == '*' || c == '“' || c == '”').trim();
    let words = title.split_whitespace().count();
    let plain = title.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '&' || c == '-' || c == '\'');
    (plain && (1..=6).contains(&words) && title.chars().next().is_some_and(char::is_uppercase))
        .then(|| title.to_string())
}

/// A model's title fits a pitch slot only if it keeps the slot's subject (its title's main word).
pub(super) fn fits_slot(title: &str, role: &Role, pitch: bool) -> bool {
    if !pitch {
        return true;
    }
    let lower = title.to_lowercase();
    let subject = role.title.to_lowercase().replace("the ", "");
    let main = subject.split_whitespace().next().unwrap_or("");
    let stem = &main[..main.len().min(6)];
    !lower.starts_with("our ") && lower.contains(stem)
}

#[cfg(test)]
mod tests {
    use super::super::roles::{GENERIC, PITCH};
    use super::*;

    #[test]
    fn titles_are_parsed_and_kept_only_where_they_fit() {
        let reply = "1. Problem: How do you eat well?\n2. Solution - Kits by dietitians\n\n3. **Market**\n4. Our mission: to help\n5. 10 Things to Do Before You Die\n7. Traction";
        let titles = parse_titles(reply, 8);
        assert_eq!(titles[0].as_deref(), Some("Problem"));
        assert_eq!(titles[1].as_deref(), Some("Solution"));
        assert_eq!(titles[2].as_deref(), Some("Market"));
        assert_eq!(titles[3].as_deref(), Some("Our mission"));
        assert_eq!(titles[4], None, "junk is no title");
        assert_eq!((titles[5].as_deref(), titles[6].as_deref()), (None, Some("Traction")));
        assert!(fits_slot("The diabetes market", &PITCH[2], true));
        assert!(!fits_slot("Our mission", &PITCH[3], true));
        assert!(fits_slot("Financial plan", &PITCH[8], true));
        assert!(fits_slot("Anything", &GENERIC[0], false));
    }
}
