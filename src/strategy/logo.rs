//! Logos and wordmarks, built here rather than by the model: a small language model can neither
//! draw nor be trusted to describe a drawing it has not seen (SmolLM2's rationales named colours
//! and letters the mark does not have). The brief's name, colours and mood choose one of a few
//! typographic layouts, rendered as a small, valid, accessible SVG (well-formed by construction,
//! checked with an XML parser in the tests), and the rationale states those choices as they are.

use super::prose;
use super::requirements::Requirements;
use crate::protocol::{Artifact, Brief, Phase};

/// The wordmark for a brief, and the choices behind it (for the rationale prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct Wordmark {
    pub name: String,
    pub svg: String,
    /// Plain-language description of the choices, e.g. "a geometric sans-serif in semibold".
    pub typeface: &'static str,
    pub colors: Vec<(String, String)>,
    pub layout: &'static str,
    /// The one-colour and reversed (white on the main colour) versions: `(label, svg)`.
    pub variants: Vec<(&'static str, String)>,
}

/// What `metadata.model` says for work built here rather than generated.
pub const BUILDER_NAME: &str = "bidder-wordmark";

/// Named colours a buyer may ask for, as a deep main tone and a lighter accent.
const PALETTE: &[(&str, &str, &str)] = &[
    ("navy", "#1B2A4A", "#4A6FA5"),
    ("blue", "#1E4E8C", "#5B8DEF"),
    ("teal", "#0F6E6E", "#3FB8AF"),
    ("green", "#1F6B3A", "#5BB974"),
    ("red", "#A4262C", "#E8595F"),
    ("orange", "#B45309", "#F59E0B"),
    ("yellow", "#A16207", "#FACC15"),
    ("gold", "#8A6D1D", "#D4AF37"),
    ("purple", "#5B2A86", "#9D6BD8"),
    ("pink", "#9D174D", "#F472B6"),
    ("brown", "#5C3D2E", "#A47551"),
    ("black", "#111111", "#555555"),
    ("grey", "#374151", "#9CA3AF"),
    ("gray", "#374151", "#9CA3AF"),
];

/// Charcoal and slate when the brief names no colour.
const NEUTRAL: (&str, &str) = ("#222831", "#5C6B7A");

/// Build the wordmark for `brief`.
pub fn wordmark(brief: &Brief, requirements: &Requirements) -> Wordmark {
    let name = brand_name(brief, requirements);
    let (main, accent) = colors(requirements, &brief.description);
    let mood = brief.description.to_lowercase();
    let (font_family, typeface, weight) =
        if ["elegant", "luxury", "classic", "premium", "editorial"].iter().any(|w| mood.contains(w)) {
            ("Georgia, 'Times New Roman', serif", "a classic serif", 600)
        } else if ["playful", "fun", "friendly", "kids"].iter().any(|w| mood.contains(w)) {
            ("'Trebuchet MS', Verdana, sans-serif", "a rounded humanist sans-serif", 700)
        } else {
            ("'Helvetica Neue', Helvetica, Arial, sans-serif", "a clean geometric sans-serif", 600)
        };
    let words: Vec<&str> = name.split_whitespace().collect();
    let render = |main: &str, accent: &str, background: Option<&str>| match words.as_slice() {
        [first, rest @ ..] if !rest.is_empty() => {
            (two_weight(first, &rest.join(" "), font_family, weight, main, accent, background), "two-weight")
        }
        _ => (underlined(&name, font_family, weight, main, accent, background), "underlined"),
    };
    let (svg, layout) = render(&main, &accent, None);
    let variants =
        vec![("one colour", render(&main, &main, None).0), ("reversed", render("#FFFFFF", "#FFFFFF", Some(&main)).0)];
    Wordmark {
        name,
        svg,
        typeface,
        colors: vec![("main".into(), main), ("accent".into(), accent)],
        variants,
        layout: match layout {
            "two-weight" => "the first word in a strong weight, the rest light in the accent colour",
            _ => "the name above a short accent bar",
        },
    }
}

/// The name to set: the first quoted or inner-capital name in the brief, else the title without
/// "logo for" and the like.
fn brand_name(brief: &Brief, requirements: &Requirements) -> String {
    if let Some(name) = requirements.names.first() {
        return name.clone();
    }
    let title = brief.title.trim();
    let lower = title.to_lowercase();
    for marker in [" for ", ": "] {
        if let Some(at) = lower.rfind(marker) {
            return title[at + marker.len()..].trim().to_string();
        }
    }
    if title.is_empty() { "Brand".into() } else { title.to_string() }
}

/// Main and accent colours from the brief's colours (named, or `#rrggbb`), else neutral.
fn colors(requirements: &Requirements, description: &str) -> (String, String) {
    // A stated colour may be a phrase ("navy blue", "blue tones"); in the description only a
    // whole word counts ("credit" is not red).
    let stated = requirements.colors.iter().flat_map(|c| words(c));
    for color in stated.chain(words(description)) {
        if is_hex_color(&color) {
            return (color, NEUTRAL.1.into());
        }
        if let Some((_, main, accent)) = PALETTE.iter().find(|(named, _, _)| color == *named) {
            return ((*main).into(), (*accent).into());
        }
    }
    (NEUTRAL.0.into(), NEUTRAL.1.into())
}

/// Lower-case words of `text`, `#rrggbb` codes kept whole.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '#')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Width of `text` at `size` px in a typical proportional face: a generous estimate, so the
/// text never overflows the viewBox.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars()
        .map(|c| {
            if c.is_uppercase() {
                0.68
            } else if c == ' ' {
                0.3
            } else {
                0.56
            }
        })
        .sum::<f64>()
        * size
}

fn escape(text: &str) -> String {
    // Characters XML 1.0 does not allow at all (most control characters) cannot be escaped:
    // they are dropped, or the document would not parse.
    let allowed =
        |c: &char| matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    let text: String = text.chars().filter(allowed).collect();
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

const SIZE: f64 = 64.0;
const PADDING: f64 = 32.0;

/// A full-size rectangle in `background`, for the reversed version.
fn backdrop(background: Option<&str>) -> String {
    background.map_or_else(String::new, |fill| format!("\n  <rect width=\"100%\" height=\"100%\" fill=\"{fill}\"/>"))
}

fn underlined(name: &str, font: &str, weight: u32, main: &str, accent: &str, background: Option<&str>) -> String {
    let width = (text_width(name, SIZE) + 2.0 * PADDING).ceil();
    let height = 140.0;
    let bar = (width * 0.18).round();
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="title">
  <title id="title">{title}</title>{backdrop}
  <text x="{cx}" y="84" text-anchor="middle" font-family="{font}" font-size="{SIZE}" font-weight="{weight}" letter-spacing="1" fill="{main}">{title}</text>
  <rect x="{bx}" y="102" width="{bar}" height="6" rx="3" fill="{accent}"/>
</svg>"#,
        title = escape(name),
        cx = width / 2.0,
        font = escape(font),
        bx = (width - bar) / 2.0,
        backdrop = backdrop(background),
    )
}

fn two_weight(
    first: &str,
    rest: &str,
    font: &str,
    weight: u32,
    main: &str,
    accent: &str,
    background: Option<&str>,
) -> String {
    let full = format!("{first} {rest}");
    let width = (text_width(&full, SIZE) + 2.0 * PADDING).ceil();
    let height = 120.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="title">
  <title id="title">{title}</title>{backdrop}
  <text x="{cx}" y="80" text-anchor="middle" font-family="{font}" font-size="{SIZE}" letter-spacing="0.5"><tspan font-weight="{weight}" fill="{main}">{first}</tspan> <tspan font-weight="300" fill="{accent}">{rest}</tspan></text>
</svg>"#,
        title = escape(&full),
        cx = width / 2.0,
        font = escape(font),
        first = escape(first),
        rest = escape(rest),
        backdrop = backdrop(background),
    )
}

/// The design rationale: what was chosen and why, in the brief's own terms. The prototype says
/// what the final adds; the final adds usage notes.
pub fn rationale(brief: &Brief, mark: &Wordmark, phase: Phase) -> String {
    let description = brief.description.to_lowercase();
    let asked: Vec<&str> = MOOD_WORDS.iter().copied().filter(|w| description.contains(w)).collect();
    let mood = match asked.as_slice() {
        [] => String::new(),
        [only] => format!(", so the mark reads as {only}, as the brief asks"),
        [init @ .., last] => format!(", so the mark reads as {} and {last}, as the brief asks", init.join(", ")),
    };
    let color = |role: &str| mark.colors.iter().find(|(r, _)| r == role).map_or("", |(_, hex)| hex.as_str());
    let mut text = format!(
        "## {name}: wordmark\n\n\
         **Typeface.** \"{name}\" is set in {typeface}{mood}. System fonts only, so it renders the same in every \
         browser and design tool without font files.\n\n\
         **Layout.** {layout}, on a single line that stays legible down to small sizes such as a favicon row or \
         an email signature.\n\n\
         **Colour.** {main} carries the name and {accent} is the accent; on white their contrast is {main_contrast:.1}:1 \
         and {accent_contrast:.1}:1 (WCAG asks 3:1 for large text such as a logotype).\n\n\
         **File.** `{file}`: a scalable vector with a title for screen readers.",
        name = mark.name,
        typeface = mark.typeface,
        layout = prose::capitalise(mark.layout),
        main = color("main"),
        accent = color("accent"),
        main_contrast = contrast_on_white(color("main")),
        accent_contrast = contrast_on_white(color("accent")),
        file = file_name(&mark.name),
    );
    match phase {
        Phase::Prototype => text.push_str(
            "\n\nThe final delivery adds one-colour and reversed (white on the main colour) versions of the file \
             and usage guidance: clear space and minimum size.",
        ),
        Phase::Final => text.push_str(&format!(
            "\n\n**Usage.** Keep clear space around the mark of at least the height of its capital letters; do not \
             set it narrower than 120 px on screen or 30 mm in print. On dark backgrounds use the reversed \
             version (`{}`); where only one colour prints, the one-colour version (`{}`).",
            variant_file_name(&mark.name, "reversed"),
            variant_file_name(&mark.name, "one colour"),
        )),
    }
    text
}

/// WCAG contrast ratio of a `#rrggbb` colour against white (1 to 21).
fn contrast_on_white(hex: &str) -> f64 {
    let channel = |i: usize| {
        let value = u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as f64 / 255.0;
        if value <= 0.03928 { value / 12.92 } else { ((value + 0.055) / 1.055).powf(2.4) }
    };
    let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    1.05 / (luminance + 0.05)
}

/// Words of mood a brief may ask for, echoed back when present.
const MOOD_WORDS: &[&str] = &[
    "clean",
    "modern",
    "minimal",
    "calm",
    "trustworthy",
    "bold",
    "elegant",
    "playful",
    "friendly",
    "premium",
    "classic",
];

/// The logo's draft: the rationale with the SVG inline, and the SVG (plus, in the final, its
/// variants) as image artifacts. The model is not asked.
pub fn draft(brief: &Brief, mark: &Wordmark) -> super::compose::Draft {
    let mut artifacts = vec![Artifact::svg(format!("{} wordmark", mark.name), file_name(&mark.name), &mark.svg)];
    if brief.phase == Phase::Final {
        for (label, svg) in &mark.variants {
            artifacts.push(Artifact::svg(
                format!("{} wordmark, {label}", mark.name),
                variant_file_name(&mark.name, label),
                svg,
            ));
        }
    }
    super::compose::Draft {
        text: format!("{}\n\n```svg\n{}\n```", rationale(brief, mark, brief.phase), mark.svg),
        artifacts,
        checks: Vec::new(),
        complete: true,
        note: None,
    }
}

/// The file name of a variant, e.g. `nimbus-analytics-logo-reversed.svg`.
pub fn variant_file_name(name: &str, label: &str) -> String {
    let base = file_name(name);
    let stem = base.strip_suffix(".svg").unwrap_or(&base);
    format!("{stem}-{}.svg", label.replace(' ', "-"))
}

/// A file name for the SVG: the name in lower case, words joined by hyphens.
pub fn file_name(name: &str) -> String {
    let slug: Vec<String> =
        name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    if slug.is_empty() { "logo.svg".into() } else { format!("{}-logo.svg", slug.join("-")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;
    use crate::strategy::checks::svg_document;

    fn brief(json: serde_json::Value) -> Brief {
        parse_brief(json.to_string().as_bytes()).unwrap()
    }

    fn fixture() -> Brief {
        let path = format!("{}/tests/fixtures/briefs/logo-nimbus-wordmark.json", env!("CARGO_MANIFEST_DIR"));
        parse_brief(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_fixture_gets_a_well_formed_blue_wordmark_with_its_name() {
        let brief = fixture();
        let mark = wordmark(&brief, &Requirements::from_brief(&brief));
        assert_eq!(mark.name, "Nimbus Analytics");
        let svg = svg_document(&mark.svg).expect("well-formed SVG");
        let document = roxmltree::Document::parse(svg).unwrap();
        let text: String = document.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
        assert!(text.contains("Nimbus") && text.contains("Analytics"), "{text}");
        assert!(mark.svg.contains("#1E4E8C"), "blue was asked for: {}", mark.svg);
        assert_eq!(file_name(&mark.name), "nimbus-analytics-logo.svg");
        let final_text = rationale(&brief, &mark, Phase::Final);
        for fact in ["Nimbus Analytics", "#1E4E8C", "#5B8DEF", "clean, modern, calm and trustworthy", "Usage"] {
            assert!(final_text.contains(fact), "{fact} missing from: {final_text}");
        }
        assert!(!rationale(&brief, &mark, Phase::Prototype).contains("**Usage.**"));
        for (label, svg) in &mark.variants {
            svg_document(svg).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(svg.contains("Nimbus"), "{label}");
        }
        assert!(mark.variants[1].1.contains("<rect width=\"100%\" height=\"100%\" fill=\"#1E4E8C\"/>"));
        assert!(!mark.variants[0].1.contains("#5B8DEF"), "one colour means one colour");
        assert_eq!(variant_file_name(&mark.name, "one colour"), "nimbus-analytics-logo-one-colour.svg");
        assert!(
            (contrast_on_white("#000000") - 21.0).abs() < 0.01 && (contrast_on_white("#ffffff") - 1.0).abs() < 0.01
        );
    }

    #[test]
    fn names_with_markup_characters_stay_well_formed() {
        let brief = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Logo for R&D <Labs>",
            "description": "A playful mark in #FF5733.", "task_type": "logo-design"
        }));
        let mark = wordmark(&brief, &Requirements::from_brief(&brief));
        assert_eq!(mark.name, "R&D <Labs>");
        svg_document(&mark.svg).expect("escaped and well-formed");
        assert!(mark.svg.contains("#ff5733") && mark.typeface.contains("rounded"), "{}", mark.svg);
    }

    #[test]
    fn one_word_names_get_the_underlined_layout_and_neutral_colours_by_default() {
        let brief = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Wordmark", "description": "For 'Brewly', elegant.",
            "task_type": "logo-design"
        }));
        let mark = wordmark(&brief, &Requirements::from_brief(&brief));
        assert_eq!((mark.name.as_str(), mark.typeface), ("Brewly", "a classic serif"));
        assert!(mark.svg.contains("<rect") && mark.svg.contains(NEUTRAL.0));
        svg_document(&mark.svg).unwrap();
    }
}
