//! Reading the Markdown we deliver with a real parser (pulldown-cmark): which sections and list
//! items have nothing in them. A heading with nothing under it, or a list item with no text, is
//! never delivered: it is taken out, and what was taken out is reported so the check and the note
//! to the buyer can say so.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

/// What [`drop_empty_parts`] took out of a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dropped {
    /// The headings of sections that had nothing under them.
    pub sections: Vec<String>,
    /// How many list items had no text.
    pub items: usize,
    /// Files (artifacts) that came out empty; the pipeline adds these.
    pub files: Vec<String>,
}

impl Dropped {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty() && self.items == 0 && self.files.is_empty()
    }

    /// "the sections \"Market\" and \"Team\" and 2 list items", for a check or a note.
    pub fn describe(&self) -> String {
        let sections = match self.sections.as_slice() {
            [] => String::new(),
            [one] => format!("the section \"{one}\""),
            many => format!("the sections {}", many.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
        };
        let items = match self.items {
            0 => String::new(),
            1 => "1 list item".to_string(),
            n => format!("{n} list items"),
        };
        let files = match self.files.as_slice() {
            [] => String::new(),
            [one] => format!("the file {one}"),
            many => format!("the files {}", many.join(", ")),
        };
        let parts: Vec<String> = [sections, items, files].into_iter().filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// One top-level part of a document, in order.
enum Part {
    Heading { level: HeadingLevel, text: String, range: Range<usize> },
    Content { start: usize },
}

/// `markdown` without its empty sections and list items (a section emptied by that goes too),
/// and what was taken out.
pub fn drop_empty_parts(markdown: &str) -> (String, Dropped) {
    let mut text = markdown.to_string();
    let mut dropped = Dropped::default();
    // Each pass removes what is empty now; a section whose only content was removed is empty on
    // the next. Bounded: every pass that changes anything makes the text shorter.
    loop {
        let (sections, items) = empty_parts(&text);
        if sections.is_empty() && items.is_empty() {
            break;
        }
        let mut cuts: Vec<Range<usize>> = Vec::new();
        for (heading, range) in sections {
            dropped.sections.push(heading);
            cuts.push(range);
        }
        dropped.items += items.len();
        cuts.extend(items);
        cuts.sort_by_key(|r| std::cmp::Reverse(r.start));
        let mut last_start = usize::MAX;
        for cut in cuts {
            // Ranges may nest (an empty item inside an empty section): cut each span once.
            if cut.end > last_start {
                continue;
            }
            text.replace_range(cut.clone(), "");
            last_start = cut.start;
        }
    }
    let tidy = text.trim_end().to_string();
    (tidy, dropped)
}

/// A section with nothing in it: its heading's text, and the span from the heading to the next part.
type EmptySection = (String, Range<usize>);

/// The empty sections and the spans of empty list items in `markdown`.
fn empty_parts(markdown: &str) -> (Vec<EmptySection>, Vec<Range<usize>>) {
    let mut parts = Vec::new();
    let mut empty_items = Vec::new();
    let mut depth = 0usize;
    let mut heading: Option<(HeadingLevel, usize, String)> = None;
    // For each open list item: where it starts and whether any text was seen in it.
    let mut items: Vec<(usize, bool)> = Vec::new();
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) if depth == 0 => {
                heading = Some((level, range.start, String::new()))
            }
            Event::End(TagEnd::Heading(_)) if depth == 0 => {
                if let Some((level, start, text)) = heading.take() {
                    parts.push(Part::Heading { level, text: text.trim().to_string(), range: start..range.end });
                }
            }
            Event::Start(tag) => {
                if depth == 0 && heading.is_none() {
                    parts.push(Part::Content { start: range.start });
                }
                if matches!(tag, Tag::Item) {
                    items.push((range.start, false));
                }
                depth += 1;
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                if matches!(end, TagEnd::Item)
                    && let Some((start, has_text)) = items.pop()
                {
                    if !has_text {
                        empty_items.push(start..range.end);
                    }
                    // An item's text is its parent's text too.
                    if let Some(parent) = items.last_mut() {
                        parent.1 |= has_text;
                    }
                }
            }
            Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => {
                if let Some((_, _, text)) = &mut heading {
                    text.push_str(&t);
                }
                if !t.trim().is_empty()
                    && let Some(item) = items.last_mut()
                {
                    item.1 = true;
                }
                if depth == 0 && heading.is_none() {
                    parts.push(Part::Content { start: range.start });
                }
            }
            Event::Rule if depth == 0 => {}
            _ => {}
        }
    }
    let mut sections = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let Part::Heading { level, text, range } = part else { continue };
        let next = parts.get(i + 1);
        let empty = match next {
            None => true,
            Some(Part::Heading { level: next_level, .. }) => next_level <= level,
            Some(Part::Content { .. }) => false,
        };
        if empty {
            let end = match next {
                Some(Part::Heading { range, .. }) => range.start,
                Some(Part::Content { start }) => *start,
                None => markdown.len(),
            };
            sections.push((text.clone(), range.start..end));
        }
    }
    (sections, empty_items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heading_with_nothing_under_it_is_dropped_and_named() {
        let (text, dropped) = drop_empty_parts("# Title\n\nIntro.\n\n## Empty\n\n## Full\n\nText.\n\n## Last\n");
        assert_eq!(text, "# Title\n\nIntro.\n\n## Full\n\nText.");
        assert_eq!(dropped.sections, vec!["Empty".to_string(), "Last".to_string()]);
        assert_eq!(dropped.describe(), "the sections \"Empty\", \"Last\"");
    }

    #[test]
    fn a_section_with_only_subsections_that_have_content_stays() {
        let markdown = "## Descriptions\n\n### One\n\nA bottle.\n\n### Two\n\nA flask.";
        let (text, dropped) = drop_empty_parts(markdown);
        assert_eq!(text, markdown);
        assert!(dropped.is_empty());
    }

    #[test]
    fn empty_list_items_go_and_a_list_of_only_empty_items_takes_its_section_with_it() {
        let (text, dropped) =
            drop_empty_parts("## Headlines\n\n1. Learn fast\n2.\n3. Speak today\n\n## Descriptions\n\n1.\n2.\n");
        assert_eq!(text, "## Headlines\n\n1. Learn fast\n3. Speak today");
        assert_eq!(dropped.items, 3);
        assert_eq!(dropped.sections, vec!["Descriptions".to_string()]);
        assert_eq!(dropped.describe(), "the section \"Descriptions\" and 3 list items");
    }

    #[test]
    fn headings_inside_code_blocks_are_code_not_sections() {
        let markdown = "## Script\n\n```python\n# a comment\n```";
        assert_eq!(drop_empty_parts(markdown).0, markdown);
    }

    #[test]
    fn text_without_headings_is_left_alone() {
        assert_eq!(drop_empty_parts("Just a slogan.").0, "Just a slogan.");
        assert!(drop_empty_parts("").1.is_empty());
    }
}
