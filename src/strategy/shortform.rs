//! Short-form marketing: ad headlines and descriptions, slogans, social posts per platform,
//! product descriptions. Every item is written to its own limits and checked: lists are asked
//! for in rounds until enough items fit (tightened by whole words, never cut mid-word); each
//! social post is written for its platform's rules (words, characters, hashtags) and carries
//! the brief's offer; a product description is built from the parts the brief names (headline,
//! paragraph, bullet points) to the requested length. Short forms are complete even as
//! prototypes.

use super::compose::{Draft, Writer, check};
use super::prose::{self, ListSpec};
use super::requirements::Requirements;
use super::{GenerationPlan, clean, compose, general};
use crate::engine::EngineError;
use crate::protocol::{Brief, Check, Phase};

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
/// Model calls for one social post: a long post (LinkedIn's 120 words) comes in paragraphs, and
/// the grounding filters may leave little of an answer.
const POST_CALLS: usize = 8;

/// Rounds of asking for a list's missing items: a prototype settles sooner (it races the other
/// bidders); a final keeps asking until the items are about the brief.
const LIST_ROUNDS: usize = 8;
const PROTOTYPE_LIST_ROUNDS: usize = 5;
/// X's limit, when the brief gives none.
const X_MAX_CHARS: usize = 280;

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

fn number_word(word: &str) -> Option<usize> {
    const WORDS: &[&str] =
        &["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
    word.parse().ok().or_else(|| WORDS.iter().position(|w| *w == word).map(|i| i + 1)).filter(|n| (1..=50).contains(n))
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

/// One social post's rules, from the brief's text about that platform ("LinkedIn
/// (professional, 120-180 words)") and the platform's own limits.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PostSpec {
    pub(super) platform: String,
    pub(super) tone: Option<String>,
    pub(super) words: Option<(usize, usize)>,
    pub(super) max_chars: Option<usize>,
    pub(super) hashtags: Option<usize>,
}

pub(super) fn post_specs(brief: &Brief, req: &Requirements) -> Vec<PostSpec> {
    req.platforms
        .iter()
        .map(|platform| {
            let rules = platform_rules(&brief.description, platform).unwrap_or_default();
            let lower = rules.to_lowercase();
            let numbers: Vec<usize> =
                lower.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            let words = match (lower.contains("word"), numbers.as_slice()) {
                (true, [low, high, ..]) if low < high => Some((*low, *high)),
                (true, [n]) => Some((n * 8 / 10, *n)),
                _ => None,
            };
            let stated_chars =
                (lower.contains("character") || lower.contains("char")).then(|| numbers.last().copied()).flatten();
            let is_x = matches!(platform.to_lowercase().as_str(), "x" | "twitter" | "x (twitter)");
            let max_chars = stated_chars.or(is_x.then_some(X_MAX_CHARS));
            let hashtags = lower
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .find(|w| w[1].starts_with("hashtag"))
                .and_then(|w| number_word(w[0].trim_matches(|c: char| !c.is_alphanumeric())));
            let tone = rules
                .split(',')
                .next()
                .map(str::trim)
                .filter(|t| {
                    !t.is_empty() && t.split_whitespace().count() <= 2 && !t.chars().any(|c| c.is_ascii_digit())
                })
                .map(str::to_string)
                .or_else(|| req.tone.clone());
            PostSpec { platform: platform.clone(), tone, words, max_chars, hashtags }
        })
        .collect()
}

/// The parenthesis after the platform's name in `text`: "X (under 280 characters)".
fn platform_rules(text: &str, platform: &str) -> Option<String> {
    let mut from = 0;
    while let Some(found) = text[from..].find(platform) {
        let at = from + found;
        let before_ok = text[..at].chars().last().is_none_or(|c| !c.is_alphanumeric());
        let after = &text[at + platform.len()..];
        if before_ok && let Some(rest) = after.trim_start().strip_prefix('(') {
            return rest.split_once(')').map(|(inside, _)| inside.to_string());
        }
        from = at + platform.len();
    }
    None
}

async fn write_posts(
    brief: &Brief,
    req: &Requirements,
    subject: &str,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let specs = post_specs(brief, req);
    let facts = prose::facts(&brief.description, &[]);
    let offer = offer_sentence(&brief.description, &facts);
    let mut text = format!("# {}\n", title(brief));
    let mut checks = Vec::new();
    let mut complete = true;
    for (i, spec) in specs.iter().enumerate() {
        let share = 1.0 / (specs.len() - i) as f64;
        let post = write_post(writer, subject, spec, &req.names, &facts, offer.as_deref(), share).await?;
        complete &= post.is_some();
        let post = post.unwrap_or_default();
        checks.extend(post_checks(spec, &post));
        text.push_str(&format!("\n## {}\n\n{post}\n", spec.platform));
    }
    for fact in &facts {
        let used = text.contains(fact.as_str());
        checks.push(check(
            format!("fact:{fact}"),
            used,
            if used { format!("states {fact}") } else { format!("never states {fact}") },
        ));
    }
    Ok(Draft { text, checks, complete, ..Draft::default() })
}

/// The brief's sentence that carries its offer (a code or a discount), to fall back on when a
/// post leaves the offer out: the buyer's own words are never wrong.
fn offer_sentence(description: &str, facts: &[String]) -> Option<String> {
    compose::sentences(description).into_iter().find(|s| facts.iter().any(|f| s.contains(f.as_str())))
}

async fn write_post(
    writer: &mut Writer<'_>,
    subject: &str,
    spec: &PostSpec,
    names: &[String],
    facts: &[String],
    offer: Option<&str>,
    share: f64,
) -> Result<Option<String>, EngineError> {
    let mut rules = Vec::new();
    if let Some(tone) = &spec.tone {
        rules.push(tone.clone());
    }
    let (min_words, max_words) = match (spec.words, spec.max_chars) {
        (Some(range), _) => range,
        (None, Some(chars)) => (8, chars / 7),
        (None, None) => (40, 90),
    };
    rules.push(format!("{min_words} to {max_words} words"));
    if let Some(chars) = spec.max_chars {
        rules.push(format!("under {chars} characters"));
    }
    if !facts.is_empty() {
        rules.push(format!("mention {}", facts.join(" and ")));
    }
    let instruction =
        format!("Write the {} post: {}. Write only the post, with no hashtags.", spec.platform, rules.join(", "));
    let context = format!("Brand news: {subject}");
    let mut body = String::new();
    // Long posts come in paragraphs, each asked for on its own, until the length is reached;
    // an answer with nothing usable in it is asked for again.
    for _ in 0..POST_CALLS {
        let words_now = clean::word_count(&body);
        if words_now >= min_words || !writer.has_time() {
            break;
        }
        let (instruction, words) = match () {
            // Nothing usable yet: the same request again (each call samples anew).
            _ if body.is_empty() => (instruction.clone(), (min_words + max_words) / 2),
            _ => (
                format!(
                    "The {} post so far:\n{body}\n\nWrite the next paragraph of it ({} to {} words), adding a new detail from the brand news. Write only that paragraph.",
                    spec.platform,
                    (min_words - words_now).max(15),
                    (max_words - words_now).max(25)
                ),
                (min_words + max_words) / 2 - words_now,
            ),
        };
        let Some(paragraph) =
            prose::write_paragraphs(writer, SYSTEM, &context, &instruction, words, share / 2.0).await?
        else {
            break;
        };
        let paragraph = strip_hashtags(&paragraph);
        if paragraph.is_empty() {
            continue;
        }
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&paragraph);
    }
    if body.is_empty() {
        // Out of tries or time: the brand news in the buyer's own words still makes a post.
        body = compose::sentences(subject).into_iter().take(2).collect::<Vec<_>>().join(" ");
    }
    // Still short of the platform's length: the brand news the post does not carry yet, in the
    // buyer's own words, closes the gap as far as it can.
    for sentence in compose::sentences(subject) {
        if clean::word_count(&body) >= min_words {
            break;
        }
        if !body.contains(sentence.trim_end_matches('.')) {
            body.push_str(&format!("\n\n{sentence}"));
        }
    }
    let mut body = prose::fix_names(&body, names);
    // The offer, in the buyer's words, if the model left it out; it and the hashtags close
    // the post and are kept whole while the body is fitted around them.
    let offer = offer.filter(|_| facts.iter().any(|f| !body.contains(f.as_str())));
    let hashtags = match spec.hashtags {
        Some(n) => hashtags_for(n, names, subject),
        None => String::new(),
    };
    let tail = [offer.unwrap_or_default(), hashtags.as_str()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let fits = |body: &str| {
        let post = join_post(body, &tail);
        clean::word_count(&post) <= max_words && spec.max_chars.is_none_or(|max| post.chars().count() <= max)
    };
    // Whole sentences off the end of the body; a last long sentence loses whole words.
    while !fits(&body) {
        let sentences = compose::sentences(&body);
        if sentences.len() > 1 {
            body = sentences[..sentences.len() - 1].join(" ");
            continue;
        }
        let room_chars = spec.max_chars.map_or(usize::MAX, |max| max.saturating_sub(tail.chars().count() + 2));
        let room_words = max_words.saturating_sub(clean::word_count(&tail));
        let by_words: String = body.split_whitespace().take(room_words).collect::<Vec<_>>().join(" ");
        body = compose::tighten(&by_words, room_chars, 3).unwrap_or_default();
        break;
    }
    Ok(Some(join_post(&body, &tail)))
}

fn join_post(body: &str, hashtags: &str) -> String {
    if hashtags.is_empty() { body.trim().to_string() } else { format!("{}\n\n{hashtags}", body.trim()) }
}

/// `text` without hashtags, its paragraph breaks kept.
fn strip_hashtags(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().filter(|w| !w.starts_with('#')).collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `n` hashtags from the brief's own words: its names first, then its distinctive words (not
/// a name's parts again, not adverbs, not verbs of the announcement).
fn hashtags_for(n: usize, names: &[String], subject: &str) -> String {
    let mut tags: Vec<String> =
        names.iter().map(|name| name.split(|c: char| !c.is_alphanumeric()).map(prose::capitalise).collect()).collect();
    let name_words: Vec<String> = names.iter().flat_map(|n| n.split_whitespace()).map(str::to_lowercase).collect();
    let stop = [
        "with",
        "that",
        "this",
        "from",
        "your",
        "their",
        "within",
        "first",
        "month",
        "code",
        "launching",
        "delivered",
        "hours",
        "after",
        "before",
        "every",
    ];
    for word in subject.split(|c: char| !c.is_alphanumeric() && c != '-') {
        let word = word.replace('-', "");
        let lower = word.to_lowercase();
        let usable =
            word.len() >= 5 && !lower.ends_with("ly") && !lower.ends_with("ing") && !name_words.contains(&lower);
        if usable && !lower.chars().any(|c| c.is_ascii_digit()) && !stop.contains(&lower.as_str()) {
            tags.push(prose::capitalise(&lower));
        }
    }
    let mut unique: Vec<String> = Vec::new();
    for tag in tags {
        if !tag.is_empty() && !unique.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            unique.push(tag);
        }
    }
    unique.iter().take(n).map(|t| format!("#{t}")).collect::<Vec<_>>().join(" ")
}

pub(super) fn post_checks(spec: &PostSpec, post: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let platform = &spec.platform;
    if let Some((low, high)) = spec.words {
        let words = clean::word_count(post);
        let ok = (low..=high).contains(&words);
        checks.push(check(format!("post:{platform}:words"), ok, format!("{words} words, asked {low}-{high}")));
    }
    if let Some(max) = spec.max_chars {
        let chars = post.chars().count();
        checks.push(check(format!("post:{platform}:chars"), chars <= max, format!("{chars} characters, limit {max}")));
    }
    if let Some(n) = spec.hashtags {
        let found = post.split_whitespace().filter(|w| w.starts_with('#') && w.len() > 1).count();
        checks.push(check(format!("post:{platform}:hashtags"), found == n, format!("{found} hashtags, asked {n}")));
    }
    checks.push(check(format!("post:{platform}:written"), !post.trim().is_empty(), "the post is written"));
    checks
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
    // samples rather than on one machine's.
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
    }
    let paragraph = compose::trim_to_words(&paragraph, (paragraph_words as f64 * 1.08) as usize);
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

    fn fixture(name: &str) -> (Brief, Requirements) {
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

    #[test]
    fn each_platform_gets_the_rules_the_brief_gives_it() {
        let (brief, req) = fixture("social-media-coffee-launch");
        let specs = post_specs(&brief, &req);
        assert_eq!(
            specs[0],
            PostSpec {
                platform: "LinkedIn".into(),
                tone: Some("professional".into()),
                words: Some((120, 180)),
                max_chars: None,
                hashtags: None
            }
        );
        assert_eq!(
            specs[1],
            PostSpec {
                platform: "Instagram".into(),
                tone: Some("playful".into()),
                words: None,
                max_chars: None,
                hashtags: Some(5)
            }
        );
        assert_eq!(
            specs[2],
            PostSpec {
                platform: "X".into(),
                tone: Some("energetic".into()),
                words: None,
                max_chars: Some(280),
                hashtags: None
            }
        );
    }

    #[test]
    fn hashtags_come_from_the_brief_and_post_checks_can_fail() {
        let tags = hashtags_for(3, &["Daily Grind Club".into()], "A monthly subscription of freshly roasted beans");
        assert_eq!(tags, "#DailyGrindClub #Subscription #Roasted");
        let tags = hashtags_for(
            5,
            &["Daily Grind Club".into()],
            "We are launching Daily Grind Club, a monthly subscription of freshly roasted single-origin beans.",
        );
        assert_eq!(tags, "#DailyGrindClub #Subscription #Roasted #Singleorigin #Beans");
        let spec = PostSpec { platform: "X".into(), tone: None, words: None, max_chars: Some(20), hashtags: Some(2) };
        let checks = post_checks(&spec, "This post is far longer than twenty characters #one");
        assert!(checks.iter().any(|c| c.name == "post:X:chars" && !c.passed));
        assert!(checks.iter().any(|c| c.name == "post:X:hashtags" && !c.passed));
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
