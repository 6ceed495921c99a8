//! Writing one piece in several model calls against one deadline: the [`Writer`] asks the model
//! for a part at a time (a section, a list of items, one post), shares the remaining time out
//! between the calls, adds up what they cost, and stops asking when time runs out. The
//! [`Draft`] is what a strategy hands back to the pipeline: the text, any extra artifacts, the
//! checks only it can run, and whether the plan was completed.
//!
//! Small models follow a started shape far better than an instruction, so each [`Ask`] may
//! begin the answer itself ([`Ask::prefix`]): `1.` for a list, a code fence for code.

use std::time::{Duration, Instant};

use crate::engine::{
    Capability, ChatMessage, EngineError, FinishReason, Generation, GenerationRequest, Repetition, TextGenerator,
};
use crate::protocol::{Artifact, Check};

/// Below this much time left, no new call is started: its prompt alone would eat it.
const MIN_CALL_TIME: Duration = Duration::from_millis(400);

/// A strategy's result.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The deliverable, in Markdown.
    pub text: String,
    /// Artifacts besides the Markdown text (a code file, a cleaned CSV).
    pub artifacts: Vec<Artifact>,
    /// Checks the strategy ran itself (per-item limits, per-platform rules); reported with the
    /// general ones.
    pub checks: Vec<Check>,
    /// False when time ran out before every part of the plan was written.
    pub complete: bool,
    /// One sentence for the buyer about what this draft is or leaves for the final.
    pub note: Option<String>,
}

/// One model call: the instructions, the answer's opening, its length.
#[derive(Debug, Clone)]
pub struct Ask {
    pub system: String,
    pub user: String,
    /// The answer starts with this (returned as part of the text).
    pub prefix: String,
    pub max_tokens: usize,
    pub min_tokens: usize,
    /// Code: repeated runs of tokens are legitimate, so n-gram blocking is off.
    pub code: bool,
    /// Share of the remaining time this call may use (0 < share ≤ 1).
    pub share: f64,
}

impl Ask {
    pub fn new(system: impl Into<String>, user: impl Into<String>, max_tokens: usize) -> Self {
        Self {
            system: system.into(),
            user: user.into(),
            prefix: String::new(),
            max_tokens,
            min_tokens: 4,
            code: false,
            share: 1.0,
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn share(mut self, share: f64) -> Self {
        self.share = share.clamp(0.05, 1.0);
        self
    }

    pub fn code(mut self) -> Self {
        self.code = true;
        self
    }

    /// The same request with a failure of the last attempt named, for a repair.
    pub fn repair(&self, failure: &str) -> Self {
        let mut ask = self.clone();
        ask.user =
            format!("{}\n\nImportant: the previous attempt was rejected because {failure}. Fix that.", self.user);
        ask
    }
}

/// What one call wrote.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The prefix and what the model wrote after it.
    pub text: String,
    pub finish: FinishReason,
}

/// Asks the model for the parts of one piece; see the module docs.
pub struct Writer<'a> {
    generator: &'a dyn TextGenerator,
    deadline: Instant,
    seed: u64,
    /// The calls' costs added up (its `text` is unused).
    pub usage: Generation,
    calls: u64,
}

impl<'a> Writer<'a> {
    pub fn new(generator: &'a dyn TextGenerator, deadline: Instant, seed: u64) -> Self {
        let usage = Generation {
            text: String::new(),
            input_tokens: 0,
            output_tokens: 0,
            finish: FinishReason::Eos,
            queued: Duration::ZERO,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
            reused_tokens: 0,
        };
        Self { generator, deadline, seed, usage, calls: 0 }
    }

    /// How far the model behind this writer can be trusted (see [`Capability`]).
    pub fn capability(&self) -> Capability {
        self.generator.capability()
    }

    /// How many calls the engine runs at once (see [`TextGenerator::concurrency`]): what
    /// [`ask_many`](Self::ask_many) gets for about the price of one.
    pub fn concurrency(&self) -> usize {
        self.generator.concurrency().max(1)
    }

    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether another call can still be made.
    pub fn has_time(&self) -> bool {
        self.time_left() > MIN_CALL_TIME
    }

    /// Ask the model. `None` when no time is left for it, or when the engine turns a later call
    /// away (the parts written so far still make a draft). The first call's rejection is the
    /// request's: nothing has been written yet.
    pub async fn ask(&mut self, ask: &Ask) -> Result<Option<Reply>, EngineError> {
        let mut replies = self.ask_many(std::slice::from_ref(ask)).await?;
        Ok(replies.pop().flatten())
    }

    /// Ask the model several independent things at once (parts that do not depend on each
    /// other, candidates for one part): the engine decodes them together, one pass over the
    /// weights for all, so they cost little more than the longest of them. Each may use its
    /// [`Ask::share`] of the time left now. One reply per ask, `None` where there was no time
    /// or the engine turned a later call away; a rejection of the first calls of all is the
    /// request's.
    pub async fn ask_many(&mut self, asks: &[Ask]) -> Result<Vec<Option<Reply>>, EngineError> {
        if !self.has_time() || asks.is_empty() {
            return Ok(vec![None; asks.len()]);
        }
        let left = self.time_left();
        let first_calls = self.calls == 0;
        let requests: Vec<GenerationRequest> = asks.iter().map(|ask| self.request(ask, left, first_calls)).collect();
        let generations =
            futures_util::future::join_all(requests.into_iter().map(|request| self.generator.generate(request))).await;
        let mut replies = Vec::with_capacity(asks.len());
        for (ask, generation) in asks.iter().zip(generations) {
            let generation = match generation {
                Ok(generation) => generation,
                Err(EngineError::Overloaded { .. }) if !first_calls => {
                    replies.push(None);
                    continue;
                }
                Err(err) => return Err(err),
            };
            self.add_usage(&generation);
            let text = format!("{}{}", ask.prefix, super::clean::strip_template_tokens(&generation.text));
            // Buyer content: debug level only.
            tracing::debug!(prompt = %ask.user, reply = %text, finish = generation.finish.as_str(), "model call");
            replies.push(Some(Reply { text, finish: generation.finish }));
        }
        Ok(replies)
    }

    /// The engine request for `ask`, with `left` of the writer's time when it was made.
    fn request(&mut self, ask: &Ask, left: Duration, first_calls: bool) -> GenerationRequest {
        // The first call may use all the time (its token limit bounds it anyway): admission
        // judges the request by it, and a share of a short budget would be turned away.
        let share = if first_calls { 1.0 } else { ask.share };
        let deadline = Instant::now() + left.mul_f64(share).max(MIN_CALL_TIME.min(left));
        let mut messages = Vec::new();
        if !ask.system.is_empty() {
            messages.push(ChatMessage::system(ask.system.clone()));
        }
        messages.push(ChatMessage::user(ask.user.clone()));
        // Each call samples differently, yet the same brief replays the same calls.
        let seed = self.seed.wrapping_add(self.calls.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.calls += 1;
        GenerationRequest {
            messages,
            max_new_tokens: ask.max_tokens,
            min_new_tokens: ask.min_tokens,
            deadline,
            seed,
            response_prefix: ask.prefix.clone(),
            repetition: match ask.code {
                true => Repetition::Allowed,
                false => Repetition::Controlled,
            },
        }
    }

    fn add_usage(&mut self, generation: &Generation) {
        let usage = &mut self.usage;
        usage.input_tokens += generation.input_tokens;
        usage.reused_tokens += generation.reused_tokens;
        usage.output_tokens += generation.output_tokens;
        usage.queued += generation.queued;
        usage.prefill += generation.prefill;
        usage.decode += generation.decode;
        if generation.finish == FinishReason::Deadline {
            usage.finish = FinishReason::Deadline;
        }
    }

    /// Ask until `accept` takes an answer or `attempts` run out, naming each rejection in the
    /// next prompt. Returns the accepted value, or the last rejection.
    pub async fn ask_until<T>(
        &mut self,
        ask: &Ask,
        attempts: usize,
        mut accept: impl FnMut(&Reply) -> Result<T, String>,
    ) -> Result<Result<T, String>, EngineError> {
        let mut current = ask.clone();
        let mut last_failure = "no time was left to write it".to_string();
        for _ in 0..attempts.max(1) {
            let Some(reply) = self.ask(&current).await? else { break };
            match accept(&reply) {
                Ok(value) => return Ok(Ok(value)),
                Err(failure) => {
                    tracing::debug!(%failure, "a draft part failed its check; asking again");
                    current = ask.repair(&failure);
                    last_failure = failure;
                }
            }
        }
        Ok(Err(last_failure))
    }
}

/// A check in the response's format.
pub fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check { name: name.into(), passed, detail: detail.into() }
}

/// Sentences of `text`, each with its closing punctuation (a sentence ends at `.`, `!` or `?`
/// followed by whitespace, or at a line break).
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|next| next.is_whitespace()) {
                let sentence = current.trim().to_string();
                if !sentence.is_empty() {
                    out.push(sentence);
                }
                current.clear();
            }
        }
        let rest = current.trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

/// `text` cut to at most `max_words` words, at the end of a sentence; never mid-word, and never
/// to nothing (the first sentence stays even if it alone is longer).
pub fn trim_to_words(text: &str, max_words: usize) -> String {
    let mut kept = String::new();
    let mut words = 0;
    for paragraph in text.split("\n\n") {
        let mut para = String::new();
        for sentence in sentences(paragraph) {
            let n = sentence.split_whitespace().count();
            if words + n > max_words && words > 0 {
                if !para.is_empty() {
                    push_paragraph(&mut kept, &para);
                }
                return kept;
            }
            words += n;
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(&sentence);
        }
        if !para.is_empty() {
            push_paragraph(&mut kept, &para);
        }
    }
    kept
}

fn push_paragraph(out: &mut String, paragraph: &str) {
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(paragraph);
}

/// `text` made to fit `max_chars` by dropping whole words from the end (and a dangling
/// connective or trailing punctuation left behind). `None` if fewer than `min_words` would remain.
pub fn tighten(text: &str, max_chars: usize, min_words: usize) -> Option<String> {
    const DANGLING: &[&str] = &[
        "and", "or", "with", "for", "to", "the", "a", "an", "of", "in", "on", "at", "by", "per", "from", "who", "that",
        "your", "our", "&", "-", "–", "—",
    ];
    let mut words: Vec<&str> = text.split_whitespace().collect();
    loop {
        while words.last().is_some_and(|w| {
            DANGLING.contains(&w.to_lowercase().trim_matches(|c: char| !c.is_alphanumeric() && c != '&'))
        }) {
            words.pop();
        }
        let candidate = words.join(" ");
        let candidate = candidate.trim_end_matches([',', ';', ':', '-', '–', '—']).trim().to_string();
        if words.len() < min_words {
            return None;
        }
        if candidate.chars().count() <= max_chars {
            return Some(candidate);
        }
        words.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_closing_punctuation_and_lines() {
        assert_eq!(
            sentences("Hi there. It is 3.5 km! Ok?\nNext line"),
            ["Hi there.", "It is 3.5 km!", "Ok?", "Next line"]
        );
    }

    #[test]
    fn trimming_keeps_whole_sentences_and_paragraphs() {
        let text = "One two three. Four five six.\n\nSeven eight nine. Ten.";
        assert_eq!(trim_to_words(text, 7), "One two three. Four five six.");
        assert_eq!(trim_to_words(text, 9), "One two three. Four five six.\n\nSeven eight nine.");
        assert_eq!(trim_to_words(text, 2), "One two three.", "never to nothing");
    }

    #[test]
    fn tightening_drops_whole_words_and_dangling_connectives() {
        assert_eq!(tighten("Learn Spanish in 10 minutes a day", 20, 2).as_deref(), Some("Learn Spanish in 10"));
        assert_eq!(
            tighten("Speak Spanish with confidence and", 30, 2).as_deref(),
            Some("Speak Spanish with confidence")
        );
        assert_eq!(tighten("Short one", 30, 2).as_deref(), Some("Short one"));
        assert_eq!(tighten("Supercalifragilistic expialidocious", 10, 1), None);
        for cut in ["Learn Spanish in 10", "Speak Spanish"] {
            assert!(!cut.ends_with(char::is_whitespace));
        }
    }
}
