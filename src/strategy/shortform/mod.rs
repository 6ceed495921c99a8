//! Short-form marketing: ad headlines and descriptions, slogans, social posts per platform,
//! product descriptions. Every item is written to its own limits and checked: lists are asked
//! for in rounds until enough items fit (tightened by whole words, never cut mid-word); each
//! social post is written for its platform's rules (words, characters, hashtags) and carries
//! the brief's offer; a product description is built from the parts the brief names (headline,
//! paragraph, bullet points) to the requested length. Short forms are complete even as
//! prototypes.

mod posts;

use super::compose::{Draft, Writer, check};
use super::prose::{self, ListSpec};
use super::requirements::Requirements;
use super::words::number_word;
use super::{GenerationPlan, clean, compose, general};
use crate::engine::EngineError;
use crate::protocol::{Brief, Phase};
use posts::write_posts;

pub(super) use posts::{PostSpec, post_checks, post_specs};

const SYSTEM: &str = "You write short, punchy, specific marketing copy for real brands. Use the brand's facts and \
names exactly as given. Write only the copy.";

/// Kinds that are lists of separate short items.
const LIST_KINDS: &[&str] = &[
    "headline",
    "description",
    "slogan",
    "tagline",
    "caption",
    "idea",
    "option",
    "variant",
    "name",
    "tweet",
    "title",
    "subject line",
    "hook",
    "cta",
];
/// Without a stated count, this many items of a list.
const DEFAULT_LIST_COUNT: usize = 8;

/// Rounds of asking for a list's missing items: a prototype settles sooner (it races the other
/// bidders); a final keeps asking until the items are about the brief.
const LIST_ROUNDS: usize = 8;
const PROTOTYPE_LIST_ROUNDS: usize = 5;

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let req = &plan.requirements;
    let subject = prose::subject(&brief.description);
    if !req.platforms.is_empty() {
        return write_posts(brief, req, &subject, writer).await;
    }
    let lists = list_specs(brief, req);
    if !lists.is_empty() {
        return write_lists(brief, req, &subject, &lists, writer).await;
    }
    if req.target_words.is_some() || parts_named(&brief.description).bullets.is_some() {
        return write_piece(brief, plan, &subject, writer).await;
    }
    general::write(brief, plan, writer).await
}

/// The lists the brief asks for: counted items (`headline_count: 10`), or the kind its type
/// names (`slogan`) with the count its text gives.
fn list_specs(brief: &Brief, req: &Requirements) -> Vec<ListSpec> {
    let is_list = |kind: &str| LIST_KINDS.iter().any(|k| kind.contains(k));
    let mut specs: Vec<ListSpec> = req
        .items
        .iter()
        .filter(|item| is_list(&item.kind))
        .map(|item| ListSpec {
            kind: item.kind.clone(),
            count: item.count as usize,
            max_chars: item.max_chars.map(|n| n as usize),
            example: prose::example_items(&item.kind),
        })
        .collect();
    // Headlines before descriptions, as an ad platform shows them.
    specs.sort_by_key(|s| !s.kind.contains("headline"));
    if specs.is_empty() && req.target_words.is_none() {
        let named = format!("{} {}", brief.task_type.as_deref().unwrap_or_default(), brief.title).to_lowercase();
        if let Some(kind) = LIST_KINDS.iter().find(|k| named.contains(*k)) {
            let kind = kind.to_string();
            let max_chars = match kind.as_str() {
                "slogan" | "tagline" | "headline" | "title" | "name" | "hook" | "cta" => Some(60),
                "subject line" => Some(70),
                _ => None,
            };
            let count = stated_count(&brief.description, &kind).unwrap_or(DEFAULT_LIST_COUNT);
            specs.push(ListSpec { example: prose::example_items(&kind), kind, count, max_chars });
        }
    }
    specs
}

/// "five slogans", "10 headlines": the number before the kind's plural.
fn stated_count(text: &str, kind: &str) -> Option<usize> {
    let words: Vec<String> = text
        .to_lowercase()
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .collect();
    let plural = prose::plural(kind);
    words.windows(2).find(|w| w[1] == plural || w[1] == kind).and_then(|w| number_word(&w[0]))
}

async fn write_lists(
    brief: &Brief,
    req: &Requirements,
    subject: &str,
    specs: &[ListSpec],
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let mut text = format!("# {}\n", title(brief));
    let mut checks = Vec::new();
    let mut complete = true;
    for spec in specs {
        let rounds = if brief.phase == Phase::Final { LIST_ROUNDS } else { PROTOTYPE_LIST_ROUNDS };
        let items = prose::write_list(writer, SYSTEM, subject, &req.names, spec, rounds).await?;
        let heading = prose::capitalise(&prose::plural(&spec.kind));
        text.push_str(&format!("\n## {heading}\n\n"));
        for (i, item) in items.iter().enumerate() {
            text.push_str(&format!("{}. {item}\n", i + 1));
        }
        let enough = items.len() == spec.count;
        // Unfinished means time ran out; too few items after every round is a failed check.
        complete &= enough || writer.has_time();
        checks.push(check(
            format!("count:{}", spec.kind),
            enough,
            format!("{} of {} {} written", items.len(), spec.count, prose::plural(&spec.kind)),
        ));
    }
    // The brand must appear as written: if no item carries it, the heading does.
    if let Some(name) = req.names.first()
        && !text.contains(name.as_str())
    {
        text = text.replacen('\n', &format!(" — {name}\n"), 1);
    }
    Ok(Draft { text, checks, complete, ..Draft::default() })
}

/// The parts a description names: "a short headline, a paragraph, and 5 bullet points".
#[derive(Debug, Default, PartialEq)]
struct NamedParts {
    headline: bool,
    bullets: Option<usize>,
}

fn parts_named(description: &str) -> NamedParts {
    let lower = description.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let bullets = words
        .windows(2)
        .find(|w| w[1].starts_with("bullet") || w[1].starts_with("feature"))
        .and_then(|w| number_word(w[0].trim_matches(|c: char| !c.is_alphanumeric())));
    NamedParts { headline: lower.contains("headline"), bullets }
}

/// Model calls at most for the paragraphs of a short piece.
const PIECE_PARAGRAPH_ROUNDS: usize = 8;

/// A product description (or any short piece with a length): headline, paragraph(s) and
/// bullets as the brief names them, to the requested length.
async fn write_piece(
    brief: &Brief,
    plan: &GenerationPlan,
    subject: &str,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let req = &plan.requirements;
    let parts = parts_named(&brief.description);
    let target = plan.target_words as usize;
    let mut headline = None;
    if parts.headline {
        let spec = ListSpec {
            kind: "headline".into(),
            count: 1,
            max_chars: Some(60),
            example: prose::example_items("headline"),
        };
        headline = prose::write_list(writer, SYSTEM, subject, &req.names, &spec, 3).await?.pop();
    }
    let mut bullets = Vec::new();
    if let Some(count) = parts.bullets {
        let features = prose::feature_list(&brief.description);
        bullets = if features.len() >= 2 {
            feature_bullets(&features, count)
        } else {
            let spec = ListSpec {
                kind: "bullet point".into(),
                count,
                max_chars: Some(90),
                example: prose::example_items("bullet"),
            };
            prose::write_list(writer, SYSTEM, subject, &req.names, &spec, 4).await?
        };
    }
    let fixed_words =
        headline.as_deref().map_or(0, clean::word_count) + bullets.iter().map(|b| clean::word_count(b)).sum::<usize>();
    let paragraph_words = target.saturating_sub(fixed_words).max(30);
    let tone = req.tone.as_deref().map(|t| format!(" in a {t} tone")).unwrap_or_default();
    let audience = req.audience.as_deref().map(|a| format!(" for {a}")).unwrap_or_default();
    let context = format!("Product: {subject}");
    let mut paragraph = String::new();
    // Paragraphs until the length is reached: a round that comes back short (or cut by the
    // filters) is followed by another while time allows, so the length converges on any CPU's
    // samples rather than on one machine's. Each round is held to the ceiling at a sentence's
    // end before the next is judged: a long last sentence cut away can leave the paragraph
    // short, and then another round fills it.
    let most_words = (paragraph_words as f64 * 1.08) as usize;
    for _ in 0..PIECE_PARAGRAPH_ROUNDS {
        let have = clean::word_count(&paragraph);
        if have * 10 >= paragraph_words * 9 || !writer.has_time() {
            break;
        }
        let instruction = match have {
            0 => format!(
                "Write one persuasive paragraph of about {paragraph_words} words{tone}{audience}, using the product's facts."
            ),
            _ => format!(
                "The description so far:\n{paragraph}\n\nWrite one more paragraph of about {} words{tone}, with facts not yet used.",
                paragraph_words - have
            ),
        };
        let Some(more) =
            prose::write_paragraphs(writer, SYSTEM, &context, &instruction, paragraph_words - have, 0.5).await?
        else {
            break;
        };
        if more.is_empty() {
            continue;
        }
        if !paragraph.is_empty() {
            paragraph.push_str("\n\n");
        }
        paragraph.push_str(&prose::fix_names(&more, &req.names));
        paragraph = compose::trim_to_words(&paragraph, most_words);
    }
    let mut text = String::new();
    text.push_str(&format!("# {}\n\n", headline.clone().unwrap_or_else(|| title(brief))));
    text.push_str(&paragraph);
    text.push('\n');
    if !bullets.is_empty() {
        text.push('\n');
        for bullet in &bullets {
            text.push_str(&format!("- {bullet}\n"));
        }
    }
    let mut checks = Vec::new();
    if let Some(count) = parts.bullets {
        checks.push(check(
            "count:bullet point",
            bullets.len() == count,
            format!("{} of {count} bullet points", bullets.len()),
        ));
    }
    if parts.headline {
        checks.push(check(
            "headline",
            headline.is_some(),
            if headline.is_some() { "a headline" } else { "no headline written" },
        ));
    }
    let complete = !paragraph.is_empty() && (checks.iter().all(|c| c.passed) || writer.has_time());
    Ok(Draft { text, checks, complete, ..Draft::default() })
}

/// Bullet points from the features the brief lists, in its words: the buyer's facts, none
/// invented. More features than bullets share the last ones; fewer stay fewer.
fn feature_bullets(features: &[String], count: usize) -> Vec<String> {
    let mut bullets: Vec<String> =
        features.iter().take(count.saturating_sub(1)).map(|f| prose::capitalise(f)).collect();
    let rest: Vec<&str> = features.iter().skip(bullets.len()).map(String::as_str).collect();
    if !rest.is_empty() {
        bullets.push(prose::capitalise(&rest.join(", ")));
    }
    bullets
}

fn title(brief: &Brief) -> String {
    if brief.title.is_empty() { prose::capitalise(&brief.kind_of_work()) } else { brief.title.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_brief;

    pub(super) fn fixture(name: &str) -> (Brief, Requirements) {
        let path = format!("{}/tests/fixtures/briefs/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let brief = parse_brief(&std::fs::read(path).unwrap()).unwrap();
        let req = Requirements::from_brief(&brief);
        (brief, req)
    }

    #[test]
    fn ads_become_two_limited_lists_headlines_first() {
        let (brief, req) = fixture("ad-copy-google-ads");
        let specs = list_specs(&brief, &req);
        let shape: Vec<_> = specs.iter().map(|s| (s.kind.as_str(), s.count, s.max_chars)).collect();
        assert_eq!(shape, [("headline", 10, Some(30)), ("description", 4, Some(90))]);
    }

    #[test]
    fn slogans_without_a_count_get_a_default_list() {
        let (brief, req) = fixture("minimal-brief");
        let specs = list_specs(&brief, &req);
        assert_eq!((specs[0].kind.as_str(), specs[0].count, specs[0].max_chars), ("slogan", 8, Some(60)));
        assert_eq!(stated_count("Give me five slogans please", "slogan"), Some(5));
    }

    /// A round whose last sentence is too long for the ceiling loses that sentence; the
    /// paragraph it leaves is short of the length, so another round fills it.
    #[tokio::test]
    async fn a_paragraph_cut_back_short_of_the_length_gets_another_round() {
        use crate::engine::Capability;
        use crate::engine::fake::ScriptedGenerator;
        use std::time::{Duration, Instant};
        let (brief, _) = fixture("product-description-bottle");
        let plan = crate::strategy::plan(&brief, &crate::strategy::StrategyConfig::default());
        assert_eq!(plan.target_words, 150);
        let ten_words = [
            "The bottle keeps your water cold on every long trail.",
            "Commuters love how easily it slides into the car holder.",
            "Its steel body shrugs off bumps, drops and daily wear.",
            "A sealed lid means your bag stays dry all day.",
            "Fill it with coffee at dawn and sip it hot.",
            "The slim shape fits a hand, a pack or a desk.",
            "Cleaning takes no effort because it goes in the dishwasher.",
            "Pick the colour that matches your gear and your mood.",
            "Hikers reach the summit with a drink that is still cold.",
            "Every detail is made for people who are always moving.",
        ];
        let long_sentence = "Whether you are crossing a windy ridge at first light, waiting for a delayed train in a \
                             crowded station, sitting through one more long meeting, or driving home late through \
                             the rain, this bottle stays beside you and keeps its promise.";
        let first = format!("{} {long_sentence}", ten_words.join(" "));
        let second = ten_words[..3].join(" ");
        let fake =
            ScriptedGenerator::new(Capability::Basic, ["1. Alpine 750 Goes Where You Go".to_string(), first, second]);
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(60), 1);
        let draft = write_piece(&brief, &plan, "the Alpine 750 water bottle", &mut writer).await.unwrap();
        let words = clean::word_count(&draft.text);
        assert!((128..=172).contains(&words), "{words} words for 150:\n{}", draft.text);
        assert_eq!(fake.prompts().len(), 3, "a second paragraph was asked for");
        assert!(fake.prompts()[2].contains("Write one more paragraph"), "{}", fake.prompts()[2]);
    }

    #[test]
    fn a_product_description_names_its_parts() {
        let (brief, _) = fixture("product-description-bottle");
        assert_eq!(parts_named(&brief.description), NamedParts { headline: true, bullets: Some(5) });
        let bullets = feature_bullets(&prose::feature_list(&brief.description), 5);
        assert_eq!(
            bullets,
            [
                "Keeps drinks cold 24h / hot 12h",
                "750 ml",
                "Leak-proof lid",
                "Fits car cup holders",
                "Dishwasher safe, 5 colours"
            ]
        );
    }
}
