//! The kinds of slide: the standard pitch-deck and generic sequences, each slide's title, routing
//! keywords and fallback outline points, and which of them a deck of a given length and kind gets.

use crate::protocol::Brief;

/// One kind of slide: its standard title, words that route a brief's fact to it, and the outline
/// points it falls back to.
#[derive(Debug)]
pub(super) struct Role {
    pub(super) title: &'static str,
    pub(super) keywords: &'static [&'static str],
    pub(super) fallback: [&'static str; 3],
}

const fn role(title: &'static str, keywords: &'static [&'static str], fallback: [&'static str; 3]) -> Role {
    Role { title, keywords, fallback }
}

/// The standard pitch-deck sequence.
pub(super) static PITCH: [Role; 10] = [
    role(
        "Problem",
        &["problem", "pain", "struggle", "challenge", "hard"],
        ["Who struggles today, and how often", "What current options get wrong", "What the problem costs them"],
    ),
    role(
        "Solution",
        &["solution", "solve", "deliver", "offer"],
        ["What we offer and how it works", "Why it fits the customer's day", "What makes it different"],
    ),
    role(
        "Market",
        &["market", "americans", "people", "population", "users", "customers", "million", "billion"],
        ["Who the customers are", "How large the market is", "How fast it is growing"],
    ),
    role(
        "Product",
        &["product", "app", "feature", "platform", "prototype"],
        ["What the customer receives", "How it is made and delivered", "What comes next on the roadmap"],
    ),
    role(
        "Business model",
        &["subscription", "pricing", "price", "per month", "margin", "model"],
        ["How we charge", "What a customer is worth over time", "How we acquire customers"],
    ),
    role(
        "Traction",
        &["traction", "pilot", "waitlist", "signed", "growth", "sold", "launched"],
        ["Pilots and early customers", "Partners and letters of intent", "Milestones reached so far"],
    ),
    role(
        "Competition",
        &["competitor", "competition", "rival", "alternative", "incumbent"],
        ["Who else serves these customers", "Where they fall short", "Why we win"],
    ),
    role(
        "Team",
        &["team", "founder", "ceo", "cto", "advisor", "expert"],
        ["Founders and their experience", "Advisors and experts behind the product", "Key hires planned"],
    ),
    role(
        "Financials",
        &["revenue", "profit", "cost", "break-even", "forecast", "financial"],
        ["Revenue projection for three years", "Costs and margin per unit", "Path to break-even"],
    ),
    role(
        "The ask",
        &["seed", "round", "raise", "raising", "funding", "invest", "seeking", "ask"],
        ["The amount we are raising", "How the funds will be used", "The milestones this round reaches"],
    ),
];

/// Further pitch slides for decks longer than ten, inserted before the ask.
static PITCH_EXTRA: [Role; 6] = [
    role(
        "Go-to-market",
        &["channel", "launch", "marketing", "partner"],
        ["First customers and how we reach them", "Channels and partners", "Cost to acquire a customer"],
    ),
    role(
        "Roadmap",
        &["roadmap", "next year", "plan"],
        ["The next six months", "The next eighteen months", "What each stage proves"],
    ),
    role("Use of funds", &["funds", "spend", "budget"], ["Product and operations", "Sales and marketing", "Hiring"]),
    role("Milestones", &["milestone", "goal"], ["What we have done", "What we do next", "How we measure it"]),
    role("Risks", &["risk", "regulation"], ["The main risks", "How we reduce them", "What we watch closely"]),
    role("Vision", &["vision", "mission"], ["Where this goes in five years", "Who else it can serve", "Why now"]),
];

/// Slides for a deck that is not a pitch.
pub(super) static GENERIC: [Role; 10] = [
    role("Overview", &["overview", "about"], ["What this deck covers", "Why it matters now", "What we ask of you"]),
    role(
        "Background",
        &["background", "history", "context"],
        ["Where things stand today", "What led here", "What has changed"],
    ),
    role(
        "The challenge",
        &["problem", "challenge", "issue"],
        ["The problem in one line", "Who it affects", "What it costs"],
    ),
    role("Our approach", &["approach", "solution", "method"], ["What we propose", "How it works", "Why this approach"]),
    role(
        "Benefits",
        &["benefit", "value", "saving"],
        ["For the people it serves", "For the organisation", "Over time"],
    ),
    role(
        "Evidence",
        &["evidence", "data", "result", "study", "million", "percent"],
        ["What the numbers show", "Examples so far", "What others have found"],
    ),
    role(
        "Plan and timeline",
        &["plan", "timeline", "schedule", "phase"],
        ["The main steps", "Dates and milestones", "Who does what"],
    ),
    role("Team", &["team", "staff", "people"], ["Who leads it", "Who takes part", "Who supports it"]),
    role("Budget", &["budget", "cost", "price", "funding"], ["What it costs", "How it is paid for", "What it returns"]),
    role("Next steps", &["next", "decision", "ask"], ["What we need decided", "Who acts next", "When we report back"]),
];

/// Priority of the pitch slides when fewer than ten are asked for (by index into [`PITCH`]).
const PITCH_PRIORITY: [usize; 10] = [0, 1, 9, 2, 4, 7, 3, 5, 6, 8];

pub(super) fn is_pitch(brief: &Brief) -> bool {
    let text =
        format!("{} {} {}", brief.title, brief.task_type.as_deref().unwrap_or(""), brief.description).to_lowercase();
    ["pitch", "investor", "seed", "fundrais", "series a", "raise", "raising"].iter().any(|w| text.contains(w))
}

/// The slides of a deck of `count`: the pitch sequence (trimmed by priority, or extended before the
/// ask), or the generic one.
pub(super) fn deck_roles(count: usize, pitch: bool) -> Vec<&'static Role> {
    if !pitch {
        let mut roles: Vec<&Role> = GENERIC[..GENERIC.len() - 1].iter().take(count.saturating_sub(1)).collect();
        while roles.len() + 1 < count {
            roles.push(&GENERIC[roles.len() % (GENERIC.len() - 1)]);
        }
        roles.push(&GENERIC[GENERIC.len() - 1]);
        return roles;
    }
    if count <= PITCH.len() {
        let mut chosen: Vec<usize> = PITCH_PRIORITY[..count].to_vec();
        chosen.sort_unstable();
        return chosen.into_iter().map(|i| &PITCH[i]).collect();
    }
    let (body, ask) = PITCH.split_at(PITCH.len() - 1);
    let mut roles: Vec<&Role> = body.iter().collect();
    let mut extra = PITCH_EXTRA.iter().cycle();
    while roles.len() + 1 < count {
        roles.push(extra.next().expect("cycle never ends"));
    }
    roles.push(&ask[0]);
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decks_of_any_length_keep_the_ask_last() {
        let titles = |n, pitch| deck_roles(n, pitch).iter().map(|r| r.title).collect::<Vec<_>>();
        assert_eq!(titles(10, true), PITCH.iter().map(|r| r.title).collect::<Vec<_>>());
        assert_eq!(titles(3, true), ["Problem", "Solution", "The ask"]);
        assert_eq!(titles(5, true), ["Problem", "Solution", "Market", "Business model", "The ask"]);
        let long = titles(12, true);
        assert_eq!((long.len(), long[10], long[11]), (12, "Roadmap", "The ask"));
        let generic = titles(4, false);
        assert_eq!(generic, ["Overview", "Background", "The challenge", "Next steps"]);
        assert_eq!(titles(1, false), ["Next steps"]);
    }
}
