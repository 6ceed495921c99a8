//! The final delivery of each writing and marketing fixture brief, on the default model
//! through `bidder execute`: every check the response reports passes, and what a buyer would
//! measure is measured here again, independently of those checks (lengths, counts, character
//! limits, keywords, facts). Code, business and translation briefs have their own files.

mod common;

use common::{execute_fixture, failed_checks};
use serde_json::Value;

/// One model run at a time: runs in parallel would share two cores and measure nothing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn final_of(name: &str) -> (Value, String) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let body = execute_fixture(name, "final", &[]);
    let output = body["output"].as_str().expect("output").to_string();
    let failed = failed_checks(&body);
    assert!(failed.is_empty(), "{name}: failed checks {failed:#?}\n{output}");
    assert!(!body["metadata"]["truncated"].as_bool().unwrap(), "{name}: truncated\n{output}");
    (body, output)
}

fn words(text: &str) -> usize {
    text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

fn assert_length(name: &str, output: &str, target: usize) {
    let n = words(output) as f64;
    let ratio = n / target as f64;
    assert!((0.85..=1.15).contains(&ratio), "{name}: {n} words for {target} ({ratio:.2})\n{output}");
}

/// The text under the `## heading` (up to the next heading).
fn section<'a>(output: &'a str, heading: &str) -> &'a str {
    let marker = format!("## {heading}");
    let start = output.find(&marker).unwrap_or_else(|| panic!("no section {marker:?} in:\n{output}"));
    let body = &output[start + marker.len()..];
    let body = body.split_once('\n').map_or("", |(_, rest)| rest);
    // The next heading ends it (a line of hashtags does not).
    body.find("\n## ").or_else(|| body.find("\n# ")).map_or(body, |end| &body[..end])
}

/// The numbered items of a section.
fn numbered(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let digits = l.chars().take_while(char::is_ascii_digit).count();
            (digits > 0).then(|| l[digits..].trim_start_matches(['.', ')']).trim().to_string())
        })
        .collect()
}

#[test]
fn the_blog_post_has_its_length_and_every_keyword() {
    let (_, output) = final_of("blog-post-sustainable-investing");
    assert_length("blog", &output, 1500);
    let lower = output.to_lowercase();
    for keyword in ["sustainable investing", "esg funds", "greenwashing"] {
        assert!(lower.contains(keyword), "blog: never uses {keyword:?}\n{output}");
    }
    assert!(output.matches("\n## ").count() >= 4, "blog: written under headings\n{output}");
}

#[test]
fn the_newsletter_has_its_length_subject_line_and_every_fact() {
    let (_, output) = final_of("email-newsletter-gym");
    assert_length("newsletter", &output, 350);
    assert!(output.contains("Subject line:"), "{output}");
    for fact in ["Ironworks Gym", "6am", "Nov 27", "8am-2pm", "Nov 28", "Maria"] {
        assert!(output.contains(fact), "newsletter: never states {fact:?}\n{output}");
    }
}

#[test]
fn the_ads_have_every_asset_within_its_limit() {
    let (_, output) = final_of("ad-copy-google-ads");
    let headlines = numbered(section(&output, "Headlines"));
    let descriptions = numbered(section(&output, "Descriptions"));
    assert_eq!((headlines.len(), descriptions.len()), (10, 4), "{output}");
    for (items, limit) in [(&headlines, 30), (&descriptions, 90)] {
        for item in items {
            assert!(item.chars().count() <= limit, "over {limit} characters: {item:?}");
            assert!(words(item) >= 2, "not a phrase: {item:?}");
        }
    }
    assert!(output.contains("LinguaLeap"), "{output}");
}

#[test]
fn each_launch_post_follows_its_platforms_rules() {
    let (_, output) = final_of("social-media-coffee-launch");
    let linkedin = section(&output, "LinkedIn");
    assert!((120..=180).contains(&words(linkedin)), "LinkedIn: {} words\n{linkedin}", words(linkedin));
    let instagram = section(&output, "Instagram");
    let hashtags = instagram.split_whitespace().filter(|w| w.starts_with('#') && w.len() > 1).count();
    assert_eq!(hashtags, 5, "Instagram:\n{instagram}");
    let x = section(&output, "X").trim();
    assert!(!x.is_empty() && x.chars().count() <= 280, "X: {} characters\n{x}", x.chars().count());
    for post in [linkedin, instagram, x] {
        assert!(post.contains("GRIND30"), "every post carries the offer:\n{post}");
    }
}

#[test]
fn the_product_description_has_its_parts_and_length() {
    let (_, output) = final_of("product-description-bottle");
    assert_length("product description", &output, 150);
    let bullets = output.lines().filter(|l| l.starts_with("- ")).count();
    assert_eq!(bullets, 5, "{output}");
    assert!(output.starts_with("# "), "a headline first: {output}");
    for fact in ["Alpine 750", "24h", "12h", "750 ml"] {
        assert!(output.contains(fact), "never states {fact:?}:\n{output}");
    }
}

#[test]
fn the_minimal_brief_gets_a_list_of_slogans() {
    let (_, output) = final_of("minimal-brief");
    let slogans = numbered(section(&output, "Slogans"));
    assert!(slogans.len() >= 5, "{output}");
    assert!(slogans.iter().all(|s| s.chars().count() <= 60), "{slogans:?}");
}
