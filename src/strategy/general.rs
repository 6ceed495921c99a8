//! The strategy for work no family strategy claims: the whole brief in one prompt, the draft
//! checked against the requirements, and one repair round naming what failed while the deadline
//! allows. Never refuses a task.

use super::compose::{Ask, Draft, Writer};
use super::{GenerationPlan, checks, clean, prompt};
use crate::engine::{EngineError, FinishReason};
use crate::protocol::Brief;

/// A repair is attempted only with at least this share of the budget left.
const REPAIR_TIME_SHARE: f64 = 0.4;

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let translate_into = plan.requirements.translate_into();
    let messages = prompt::messages(brief, plan.requested_words, plan.target_words, translate_into.as_deref(), &[]);
    let mut ask = Ask::new(messages[0].content.clone(), messages[1].content.clone(), plan.max_new_tokens);
    ask.min_tokens = plan.min_new_tokens;
    let started_with = writer.time_left();
    let Some(reply) = writer.ask(&ask).await? else {
        return Ok(Draft::default());
    };
    let mut complete = reply.finish == FinishReason::Eos;
    let mut text = clean::clean_output(&reply.text, !complete);
    let failures = |text: &str| -> Vec<String> {
        checks::run(&plan.requirements, brief.phase, text).into_iter().filter(|c| !c.passed).map(|c| c.detail).collect()
    };
    let failed = failures(&text);
    if !failed.is_empty() && writer.time_left() > started_with.mul_f64(REPAIR_TIME_SHARE) {
        let repair = ask.repair(&format!("it {}", failed.join("; it ")));
        if let Some(again) = writer.ask(&repair).await? {
            let again_complete = again.finish == FinishReason::Eos;
            let candidate = clean::clean_output(&again.text, !again_complete);
            // Keep the better of the two: fewer failed checks, a finished draft on a tie.
            if (failures(&candidate).len(), !again_complete) < (failed.len(), !complete) {
                text = candidate;
                complete = again_complete;
            }
        }
    }
    Ok(Draft { text, complete, ..Draft::default() })
}
