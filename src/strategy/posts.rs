//! Social posts from a capable model: the whole set is written in one pass, then each platform's
//! post is held to that platform's rules from the brief (words, characters, hashtags — see
//! `shortform::post_specs`), and only a post that breaks them is written again, alone, with
//! what it broke named. A name of the brief (the brand, the product) that no post writes as given
//! is a rule of every post then: a launch post that never names what it launches is not one. The
//! posts go out under one heading per platform, without the quotation marks and sub-headings a
//! model wraps them in.

use super::compose::{Ask, Writer};
use super::shortform::{PostSpec, post_checks, post_specs};
use super::{clean, prose};
use crate::engine::EngineError;
use crate::protocol::{Brief, Check};
use crate::strategy::requirements::Requirements;

/// Rewrites at most for one post.
const ROUNDS: usize = 2;

const SYSTEM: &str = "You write social media posts for brands, to each platform's rules. Output only the post.";

/// The platform posts of `brief`, found in `draft`, each repaired where it breaks its rules;
/// the text rebuilt with one `## Platform` section per post, and every post's checks.
pub async fn fit_posts(
    brief: &Brief,
    requirements: &Requirements,
    draft: &str,
    writer: &mut Writer<'_>,
) -> Result<(String, Vec<Check>), EngineError> {
    let specs = post_specs(brief, requirements);
    let unnamed: Vec<&str> =
        requirements.names.iter().map(String::as_str).filter(|name| !draft.contains(name)).collect();
    // Each post's checks: its platform's rules, and the names no post of the draft writes.
    let checks_of = |spec: &PostSpec, post: &str| -> Vec<Check> {
        let mut found = post_checks(spec, post);
        found.extend(unnamed.iter().map(|&name| {
            let passed = post.contains(name);
            let detail =
                if passed { format!("names {name} as written") } else { format!("never writes {name} as given") };
            Check { name: format!("post:{}:name:{name}", spec.platform), passed, detail }
        }));
        found
    };
    let mut posts: Vec<(String, Vec<Check>)> = specs
        .iter()
        .map(|spec| {
            let post = post_in(draft, &spec.platform);
            let found = checks_of(spec, &post);
            (post, found)
        })
        .collect();
    let failures = |checks: &[Check]| checks.iter().filter(|c| !c.passed).count();
    for _ in 0..ROUNDS {
        // Every post that breaks its rules is written again, as many at once as the engine
        // decodes together: the posts do not depend on each other.
        let failing: Vec<usize> = (0..posts.len()).filter(|&i| failures(&posts[i].1) > 0).collect();
        if failing.is_empty() || !writer.has_time() {
            break;
        }
        for group in failing.chunks(writer.concurrency()) {
            let asks: Vec<Ask> = group
                .iter()
                .map(|&i| {
                    let failed: Vec<String> =
                        posts[i].1.iter().filter(|c| !c.passed).map(|c| c.detail.clone()).collect();
                    rewrite_ask(brief, &specs[i], &unnamed, &posts[i].0, &failed)
                })
                .collect();
            let replies = writer.ask_many(&asks).await?;
            for (&i, reply) in group.iter().zip(replies) {
                let Some(reply) = reply else { continue };
                let candidate = plain_post(&clean::clean_output(&reply.text, false));
                let candidate_checks = checks_of(&specs[i], &candidate);
                if failures(&candidate_checks) < failures(&posts[i].1) {
                    posts[i] = (candidate, candidate_checks);
                }
            }
        }
    }
    let mut sections = Vec::new();
    let mut checks = Vec::new();
    for (spec, (post, found)) in specs.iter().zip(posts) {
        if !post.is_empty() {
            sections.push(format!("## {}\n\n{post}", spec.platform));
        }
        checks.extend(found);
    }
    // The piece's own title, if it had one, stays on top.
    let title = draft.lines().find(|l| l.starts_with("# ")).map(|t| format!("{t}\n\n")).unwrap_or_default();
    Ok((format!("{title}{}", sections.join("\n\n")), checks))
}

/// Every platform post's checks, read from `text` as [`fit_posts`] writes it.
pub fn posts_checks(brief: &Brief, requirements: &Requirements, text: &str) -> Vec<Check> {
    post_specs(brief, requirements).iter().flat_map(|spec| post_checks(spec, &post_in(text, &spec.platform))).collect()
}

/// The call that writes one post again, its rules and its failures named.
fn rewrite_ask(brief: &Brief, spec: &PostSpec, names: &[&str], post: &str, failed: &[String]) -> Ask {
    let mut rules = Vec::new();
    if !names.is_empty() {
        rules.push(format!("{} written exactly as given", names.join(" and ")));
    }
    if let Some((low, high)) = spec.words {
        rules.push(format!("{low} to {high} words"));
    }
    if let Some(max) = spec.max_chars {
        rules.push(format!("at most {max} characters in all, hashtags included"));
    }
    if let Some(n) = spec.hashtags {
        rules.push(format!("exactly {n} hashtags at the end"));
    }
    if let Some(tone) = &spec.tone {
        rules.push(format!("a {tone} tone"));
    }
    let mut user = format!(
        "Brief: {}\n\nWrite the {} post for this brief: {}. Keep every fact and offer of the brief that fits.",
        prose::capitalise(brief.description.trim()),
        spec.platform,
        rules.join(", ")
    );
    if !post.is_empty() {
        user.push_str(&format!("\n\nThe last version was rejected because it has {}:\n{post}", failed.join("; ")));
    }
    let words = spec.words.map_or(80, |(_, high)| high);
    Ask::new(SYSTEM, user, words * 2 + 40).share(0.4)
}

/// The post under the heading that names `platform` in `draft`, made plain.
fn post_in(draft: &str, platform: &str) -> String {
    let names_platform = |line: &str| {
        let lower = line.to_lowercase();
        let platform = platform.to_lowercase();
        lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == platform)
    };
    let lines: Vec<&str> = draft.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_start().starts_with('#') && names_platform(l)) else {
        return String::new();
    };
    let level = lines[start].trim_start().chars().take_while(|c| *c == '#').count();
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| {
            let hashes = l.trim_start().chars().take_while(|c| *c == '#').count();
            // A heading as deep or deeper ends the post; `#hashtag` is not a heading.
            !(hashes > 0 && hashes <= level && l.trim_start()[hashes..].starts_with(' '))
        })
        .copied()
        .collect();
    plain_post(&body.join("\n"))
}

/// A post as it would be pasted: no sub-headings, no wrapping quotes, no rules.
fn plain_post(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let t = l.trim();
            let heading = t.starts_with('#') && t.trim_start_matches('#').starts_with(' ');
            !heading && t != "---" && t != "***"
        })
        .collect();
    let joined = kept.join("\n");
    let trimmed = joined.trim().trim_matches(|c| matches!(c, '"' | '“' | '”')).trim();
    trimmed.to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::Capability;
    use crate::engine::fake::ScriptedGenerator;
    use crate::protocol::parse_brief;

    const BRIEF: &str = r#"{"task_id":"t","mode":"prototype","task_type":"social-media-post",
        "description":"Launch posts for 'Daily Grind Club': one for LinkedIn (professional, 20-30 words) and one for X (under 280 characters). Code GRIND30.",
        "requirements":{"platforms":["LinkedIn","X"]}}"#;

    #[tokio::test]
    async fn only_the_post_that_breaks_its_rules_is_written_again() {
        let brief = parse_brief(BRIEF.as_bytes()).unwrap();
        let requirements = Requirements::from_brief(&brief);
        let draft = "## LinkedIn\n### Professional post\n\"Daily Grind Club is here. Code GRIND30.\"\n\n\
                     ## X\n\"Fresh beans, 48 hours from roast. Daily Grind Club. GRIND30 #coffee\"";
        let longer = "Daily Grind Club delivers single-origin beans within 48 hours of roasting, every month, \
                      to your door. Start today with 30% off your first month using code GRIND30.";
        let fake = ScriptedGenerator::new(Capability::Full, [longer]);
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        let (text, checks) = fit_posts(&brief, &requirements, draft, &mut writer).await.unwrap();
        let prompts = fake.prompts();
        assert_eq!(prompts.len(), 1, "X was within its rules");
        assert!(
            prompts[0].contains("Write the LinkedIn post") && prompts[0].contains("20 to 30 words"),
            "{}",
            prompts[0]
        );
        assert!(prompts[0].contains("7 words, asked 20-30"), "names what failed: {}", prompts[0]);
        assert_eq!(
            text,
            format!(
                "## LinkedIn\n\n{longer}\n\n## X\n\nFresh beans, 48 hours from roast. Daily Grind Club. GRIND30 #coffee"
            )
        );
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }

    /// A name of the brief that no post writes is asked of every post, and a rewrite that
    /// writes it replaces the post.
    #[tokio::test]
    async fn a_brand_no_post_names_is_asked_of_each_post() {
        let brief = parse_brief(BRIEF.as_bytes()).unwrap();
        let requirements = Requirements::from_brief(&brief);
        let draft = "## LinkedIn\nFresh single-origin beans reach your door every month, roasted within 48 hours. \
                     Start with 30% off using code GRIND30.\n\n## X\nFresh beans every month. GRIND30 #coffee";
        let linkedin = "Daily Grind Club brings fresh single-origin beans to your door every month, roasted within \
                        48 hours. Start with 30% off using code GRIND30.";
        let x = "Daily Grind Club: fresh beans every month. 30% off with GRIND30 #coffee";
        let fake = ScriptedGenerator::new(Capability::Full, [linkedin, x]);
        let mut writer = Writer::new(&fake, Instant::now() + Duration::from_secs(30), 1);
        let (text, checks) = fit_posts(&brief, &requirements, draft, &mut writer).await.unwrap();
        let prompts = fake.prompts();
        assert_eq!(prompts.len(), 2, "both posts lacked the name");
        for prompt in &prompts {
            assert!(prompt.contains("Daily Grind Club written exactly as given"), "{prompt}");
            assert!(prompt.contains("never writes Daily Grind Club as given"), "{prompt}");
        }
        assert_eq!(text, format!("## LinkedIn\n\n{linkedin}\n\n## X\n\n{x}"));
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }

    #[test]
    fn a_post_is_read_from_under_its_platform_heading_without_its_wrapping() {
        let draft = "## Instagram\n### Playful\n\"Hello #coffee #beans\"\n\n---\n## X\nShort.";
        assert_eq!(post_in(draft, "Instagram"), "Hello #coffee #beans");
        assert_eq!(post_in(draft, "X"), "Short.");
        assert_eq!(post_in(draft, "LinkedIn"), "");
    }
}
