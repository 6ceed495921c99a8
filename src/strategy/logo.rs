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
    let background = ground(&main, &accent);
    // On a dark ground the accent would be that ground: the name takes both weights in its colour.
    let accent_on_mark = if background.as_deref() == Some(accent.as_str()) { main.clone() } else { accent.clone() };
    let (svg, layout) = render(&main, &accent_on_mark, background.as_deref());
    let reversed_ground = background.clone().unwrap_or_else(|| main.clone());
    let variants = vec![
        ("one colour", render(&main, &main, background.as_deref()).0),
        ("reversed", render("#FFFFFF", "#FFFFFF", Some(&reversed_ground)).0),
    ];
    let mut colors = vec![("main".into(), main), ("accent".into(), accent)];
    if let Some(ground) = background {
        colors.push(("ground".into(), ground));
    }
    Wordmark {
        name,
        svg,
        typeface,
        colors,
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

/// Main and accent colours from the brief's colours (named, or `#rrggbb`), else neutral. Only
/// colours the brief names are used: two codes are main and accent; one code gets a deeper or
/// lighter tone of itself as accent, never a grey the brief never asked for.
fn colors(requirements: &Requirements, description: &str) -> (String, String) {
    // A stated colour may be a phrase ("navy blue", "blue tones"); in the description only a
    // whole word counts ("credit" is not red).
    let stated: Vec<String> = requirements.colors.iter().flat_map(|c| words(c)).chain(words(description)).collect();
    let mut codes: Vec<String> = Vec::new();
    for color in &stated {
        if is_hex_color(color) && !codes.contains(color) {
            codes.push(color.clone());
        }
    }
    match codes.as_slice() {
        [first, second, ..] => return (first.clone(), second.clone()),
        [only] => return (only.clone(), tone_of(only)),
        [] => {}
    }
    for color in &stated {
        if let Some((_, main, accent)) = PALETTE.iter().find(|(named, _, _)| color == named) {
            return ((*main).into(), (*accent).into());
        }
    }
    (NEUTRAL.0.into(), NEUTRAL.1.into())
}

/// A second tone of `hex` for the accent: lighter for a dark colour, deeper for a light one.
fn tone_of(hex: &str) -> String {
    let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as f64;
    let toward: f64 = if contrast_on_white(hex) >= 4.5 { 255.0 } else { 0.0 };
    let mix = |c: f64| (c + (toward - c) * 0.35).round().clamp(0.0, 255.0) as u8;
    format!("#{:02X}{:02X}{:02X}", mix(channel(1)), mix(channel(3)), mix(channel(5)))
}

/// The ground the mark is drawn on: white, unless the main colour is too light to read on white
/// (under 3:1, the WCAG floor for large text), when the darkest colour available carries it.
fn ground(main: &str, accent: &str) -> Option<String> {
    if contrast_on_white(main) >= LEGIBLE_CONTRAST {
        return None;
    }
    let darkest = [accent, NEUTRAL.0].into_iter().find(|c| contrast(main, c) >= LEGIBLE_CONTRAST).unwrap_or(NEUTRAL.0);
    Some(darkest.to_string())
}

/// The WCAG floor for large text, which a logotype is.
const LEGIBLE_CONTRAST: f64 = 3.0;

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
         **Colour.** {colour}\n\n\
         **File.** `{file}`: a scalable vector with a title for screen readers.",
        name = mark.name,
        typeface = mark.typeface,
        layout = prose::capitalise(mark.layout),
        colour = colour_sentence(color("main"), color("accent"), Some(color("ground")).filter(|g| !g.is_empty())),
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

/// What the colours are and how they read, measured: the sentence states the contrast the
/// mark actually has on the ground it is drawn on.
fn colour_sentence(main: &str, accent: &str, ground: Option<&str>) -> String {
    match ground {
        None => format!(
            "{main} carries the name and {accent} is the accent; on white their contrast is {:.1}:1 and {:.1}:1 \
             (WCAG asks 3:1 for large text such as a logotype).",
            contrast_on_white(main),
            contrast_on_white(accent)
        ),
        Some(ground) => format!(
            "{main} is too light to read on white ({:.1}:1, under the 3:1 WCAG asks for a logotype), so the mark \
             is drawn on {ground}, where the name reads at {:.1}:1; {accent} is the accent.",
            contrast_on_white(main),
            contrast(main, ground)
        ),
    }
}

/// WCAG relative luminance of a `#rrggbb` colour (0 to 1).
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let value = u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as f64 / 255.0;
        if value <= 0.03928 { value / 12.92 } else { ((value + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

/// WCAG contrast ratio of two `#rrggbb` colours (1 to 21).
fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// WCAG contrast ratio of a `#rrggbb` colour against white (1 to 21).
fn contrast_on_white(hex: &str) -> f64 {
    contrast(hex, "#FFFFFF")
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
    fn a_near_white_brand_colour_is_drawn_on_a_dark_ground_and_the_rationale_says_so() {
        let brief = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Logo for Frost Labs",
            "description": "A wordmark for 'Frost Labs' in #F5F7FA and #0B1F3A.", "task_type": "logo-design"
        }));
        let mark = wordmark(&brief, &Requirements::from_brief(&brief));
        let ground = mark.colors.iter().find(|(role, _)| role == "ground").map(|(_, hex)| hex.as_str());
        assert_eq!(ground, Some("#0b1f3a"), "the brief's own dark colour carries the light name");
        assert!(contrast("#f5f7fa", "#0b1f3a") >= LEGIBLE_CONTRAST);
        assert!(mark.svg.contains("fill=\"#0b1f3a\""), "{}", mark.svg);
        let text = rationale(&brief, &mark, Phase::Prototype);
        assert!(text.contains("too light to read on white"), "{text}");
        assert!(!text.contains("#5C6B7A"), "no grey the brief never named: {text}");
    }

    #[test]
    fn one_brand_colour_gets_a_tone_of_itself_as_accent() {
        let brief = brief(serde_json::json!({
            "task_id": "t", "mode": "final", "title": "Logo for Crumb & Co.",
            "description": "A wordmark for 'Crumb & Co.' in #7A4B2A.", "task_type": "logo-design"
        }));
        let mark = wordmark(&brief, &Requirements::from_brief(&brief));
        assert_eq!(mark.name, "Crumb & Co.", "the full stop is part of the name");
        let accent = &mark.colors[1].1;
        assert_ne!(accent, NEUTRAL.1);
        assert_eq!(accent, &tone_of("#7a4b2a"));
        assert!(mark.svg.contains("Co.</tspan>"), "{}", mark.svg);
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
