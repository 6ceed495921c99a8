//! Social posts, one per platform the brief names: each platform's rules read from the brief
//! ([`PostSpec`], [`post_specs`]), the post written to them in paragraphs with the brief's offer
//! and hashtags from its own words kept whole, and the checks a post must pass ([`post_checks`]).

use super::{SYSTEM, title};
use crate::engine::EngineError;
use crate::protocol::{Brief, Check};
use crate::strategy::compose::{self, Draft, Writer, check};
use crate::strategy::requirements::Requirements;
use crate::strategy::words::number_word;
use crate::strategy::{clean, prose};

/// Model calls for one social post: a long post (LinkedIn's 120 words) comes in paragraphs, and
/// the grounding filters may leave little of an answer.
const POST_CALLS: usize = 8;
/// X's limit, when the brief gives none.
const X_MAX_CHARS: usize = 280;

/// One social post's rules, from the brief's text about that platform ("LinkedIn
/// (professional, 120-180 words)") and the platform's own limits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PostSpec {
    pub(crate) platform: String,
    pub(crate) tone: Option<String>,
    pub(crate) words: Option<(usize, usize)>,
    pub(crate) max_chars: Option<usize>,
    pub(crate) hashtags: Option<usize>,
}

pub(crate) fn post_specs(brief: &Brief, req: &Requirements) -> Vec<PostSpec> {
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

pub(super) async fn write_posts(
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
        // The brief's names that no post so far writes: this post must.
        let unnamed: Vec<String> = req.names.iter().filter(|name| !text.contains(name.as_str())).cloned().collect();
        let post = write_post(
            writer,
            subject,
            spec,
            Names { all: &req.names, unnamed: &unnamed },
            &facts,
            offer.as_deref(),
            share,
        )
        .await?;
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

/// The brief's names, and those no earlier post wrote (which this one must).
#[derive(Clone, Copy)]
struct Names<'a> {
    all: &'a [String],
    unnamed: &'a [String],
}

async fn write_post(
    writer: &mut Writer<'_>,
    subject: &str,
    spec: &PostSpec,
    names: Names<'_>,
    facts: &[String],
    offer: Option<&str>,
    share: f64,
) -> Result<Option<String>, EngineError> {
    let mut rules = Vec::new();
    if let Some(tone) = &spec.tone {
        rules.push(tone.clone());
    }
    if !names.unnamed.is_empty() {
        rules.push(format!("name {}", names.unnamed.join(" and ")));
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
    let mut body = prose::fix_names(&body, names.all);
    // A launch post that never names what it launches is not one: where the model left a name
    // out, the buyer's own sentence that names it leads the post (the fitting below trims from
    // the end, so it stays).
    if names.unnamed.iter().any(|name| !body.contains(name.as_str()))
        && let Some(lead) = compose::sentences(subject).into_iter().find(|sentence| {
            names.unnamed.iter().any(|name| sentence.contains(name.as_str()) && !body.contains(name.as_str()))
        })
    {
        let gap = if spec.max_chars.is_some() { " " } else { "\n\n" };
        body = format!("{lead}{gap}{body}");
    }
    // The offer, in the buyer's words, if the model left it out; it and the hashtags close
    // the post and are kept whole while the body is fitted around them.
    let offer = offer.filter(|_| facts.iter().any(|f| !body.contains(f.as_str())));
    let hashtags = match spec.hashtags {
        Some(n) => hashtags_for(n, names.all, subject),
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

pub(crate) fn post_checks(spec: &PostSpec, post: &str) -> Vec<Check> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::*;

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

    /// A post whose model never names the brand is led by the buyer's sentence that does, and
    /// still keeps to its platform's limit.
    #[tokio::test]
    async fn a_post_that_never_names_the_brand_is_led_by_the_briefs_sentence_that_does() {
        use std::time::{Duration, Instant};

        use crate::engine::Capability;
        use crate::engine::fake::ScriptedGenerator;
        use crate::protocol::parse_brief;

        let brief = parse_brief(
            br#"{"task_id":"t","mode":"final","task_type":"social-media-post","title":"Launch post",
            "description":"We are launching 'Daily Grind Club', a monthly subscription of freshly roasted beans. Write one post for X (under 280 characters). First month is 30% off with code GRIND30.",
            "requirements":{"platforms":["X"]}}"#,
        )
        .unwrap();
        let req = Requirements::from_brief(&brief);
        assert_eq!(req.names, ["Daily Grind Club"]);
        let reply = "Freshly roasted beans arrive at your door every month, within days of roasting.";
        let fake = ScriptedGenerator::new(Capability::Basic, [reply]);
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        let subject = prose::subject(&brief.description);
        let draft = write_posts(&brief, &req, &subject, &mut writer).await.unwrap();
        assert!(fake.prompts()[0].contains("name Daily Grind Club"), "{}", fake.prompts()[0]);
        let post = draft.text.split("## X").nth(1).unwrap().trim();
        assert!(post.starts_with("We are launching 'Daily Grind Club'"), "{post}");
        assert!(post.contains("Freshly roasted beans arrive"), "the model's post is kept: {post}");
        assert!(draft.checks.iter().all(|c| c.passed), "{:?}\n{post}", draft.checks);
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
}
