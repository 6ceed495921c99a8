//! The translator: each sentence asked for on its own, several times while time allows, written
//! again piece by piece around its numbers and names when no candidate keeps them, and the best
//! candidate kept.

use std::time::{Duration, Instant};

use super::candidates::{Judged, end_at_whole_word, judge, tidy, without_dangling_words};
use super::facts::{Fact, facts, missing_numbers};
use super::languages::Languages;
use crate::engine::{EngineError, FinishReason};
use crate::protocol::Phase;
use crate::strategy::compose::{Ask, Writer, sentences};

/// How many candidates a sentence may get: written whole, then piece by piece around its
/// numbers and names. A prototype is the whole translation too, with fewer tries.
struct Attempts {
    whole: usize,
    anchored: usize,
}

impl Attempts {
    fn for_phase(phase: Phase) -> Self {
        match phase {
            Phase::Prototype => Self { whole: 2, anchored: 1 },
            Phase::Final => Self { whole: 3, anchored: 2 },
        }
    }
}

/// Translates sentence by sentence through one [`Writer`].
pub(super) struct Translator<'w, 'a> {
    writer: &'w mut Writer<'a>,
    languages: Languages,
    known_names: Vec<String>,
    attempts: Attempts,
    /// Time the calls took so far, to tell whether another candidate fits.
    spent: Duration,
    calls: u32,
}

impl<'w, 'a> Translator<'w, 'a> {
    /// A translator through `writer`, keeping `known_names` (the names the brief quotes) as
    /// written, with as many tries per sentence as `phase` allows.
    pub(super) fn new(
        writer: &'w mut Writer<'a>,
        languages: Languages,
        known_names: Vec<String>,
        phase: Phase,
    ) -> Self {
        Self { writer, languages, known_names, attempts: Attempts::for_phase(phase), spent: Duration::ZERO, calls: 0 }
    }

    /// The best translation of `sentence` that time allowed, if any call could be made.
    /// `sentences_after` is how many still wait after this one.
    pub(super) async fn sentence(
        &mut self,
        sentence: &str,
        sentences_after: usize,
    ) -> Result<Option<String>, EngineError> {
        let facts = facts(sentence, &self.known_names);
        let mut best: Option<Judged> = None;
        let keep = |best: &mut Option<Judged>, judged: Judged| {
            if best.as_ref().is_none_or(|b| judged.score > b.score) {
                *best = Some(judged);
            }
        };
        // Whole-sentence candidates, as many at once as the engine decodes together (for about
        // the price of one), round after round while one is still owed and time allows.
        let mut attempt = 0;
        while attempt < self.attempts.whole {
            if attempt > 0 && !self.can_afford_another(sentences_after) {
                break;
            }
            let ask = self.ask(sentence, &facts, sentences_after);
            let together = (self.attempts.whole - attempt).min(self.writer.concurrency());
            let replies = self.call_many(&ask, together).await?;
            if replies.iter().all(Option::is_none) {
                break;
            }
            attempt += together;
            let mut passed = false;
            for (mut text, finish) in replies.into_iter().flatten() {
                if finish != FinishReason::Eos && !text.trim().contains('\n') && !ends_a_sentence(&text) {
                    let stopwords = self.languages.target.map_or(&[][..], |t| t.profile().stopwords);
                    text = end_at_whole_word(&text, stopwords, false);
                }
                let judged = judge(&self.languages, sentence, &facts, &tidy(&text, sentence, &self.labels()));
                passed |= judged.failures.is_empty();
                keep(&mut best, judged);
            }
            if passed {
                break;
            }
        }
        if best.as_ref().is_some_and(|b| b.failures.is_empty()) {
            return Ok(best.map(|b| b.text));
        }
        if best.as_ref().is_none_or(|b| b.lost_facts) && !facts.is_empty() {
            for _ in 0..self.attempts.anchored {
                if !self.can_afford_another(sentences_after) {
                    break;
                }
                let Some(text) = self.anchored(sentence, &facts, sentences_after).await? else { break };
                let judged = judge(&self.languages, sentence, &facts, &tidy(&text, sentence, &self.labels()));
                let passed = judged.failures.is_empty();
                keep(&mut best, judged);
                if passed {
                    break;
                }
            }
        }
        if let Some(best) = &best
            && !best.failures.is_empty()
        {
            tracing::debug!(sentence, failures = ?best.failures, "no candidate translation passed every test");
        }
        Ok(best.map(|b| b.text))
    }

    /// The labels of the prompt's pairs, which a model may echo.
    fn labels(&self) -> [&str; 2] {
        [self.languages.source_name.as_str(), self.languages.target_name.as_str()]
    }

    /// Whether one more call leaves time for one call per sentence still waiting.
    fn can_afford_another(&self, sentences_after: usize) -> bool {
        let per_call = if self.calls == 0 { Duration::ZERO } else { self.spent / self.calls };
        self.writer.has_time() && self.writer.time_left() > per_call.mul_f64(1.5 * (sentences_after + 1) as f64)
    }

    /// Ask, timing the call. The reply's text without the prefix, and how generation ended.
    async fn call(&mut self, ask: &Ask) -> Result<Option<(String, FinishReason)>, EngineError> {
        Ok(self.call_many(ask, 1).await?.pop().flatten())
    }

    /// Ask the same `times` at once (each call samples differently), timed as one call: the
    /// engine decodes them together.
    async fn call_many(&mut self, ask: &Ask, times: usize) -> Result<Vec<Option<(String, FinishReason)>>, EngineError> {
        let started = Instant::now();
        let replies = self.writer.ask_many(&vec![ask.clone(); times.max(1)]).await?;
        self.spent += started.elapsed();
        self.calls += 1;
        let strip = |r: crate::strategy::compose::Reply| {
            (r.text.strip_prefix(&ask.prefix).unwrap_or(&r.text).to_string(), r.finish)
        };
        Ok(replies.into_iter().map(|reply| reply.map(strip)).collect())
    }

    /// The prompt for one sentence: example pairs when translating from English into a
    /// profiled language, then the sentence, and the answer started with the target's name.
    fn ask(&self, sentence: &str, facts: &[Fact], sentences_after: usize) -> Ask {
        let Languages { source_name, target_name, target_description, .. } = &self.languages;
        let mut system = format!(
            "You translate {source_name} into {target_description}. Keep names and numbers exactly as written. \
             Answer with the translation only, on one line."
        );
        if !facts.is_empty() {
            let kept: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
            system.push_str(&format!(" Keep these exactly as written: {}.", kept.join(", ")));
        }
        let mut user = String::new();
        for (source, translated) in self.languages.examples() {
            user.push_str(&format!("{source_name}: {source}\n{target_name}: {translated}\n\n"));
        }
        user.push_str(&format!("{source_name}: {sentence}"));
        // Other languages take more tokens per character than English; leave room for it.
        let max_tokens = (sentence.chars().count() / 2 + 8).min(256);
        let mut ask = Ask::new(system, user, max_tokens).prefix(format!("{target_name}:"));
        ask.min_tokens = 1;
        ask.share((1.0 / (sentences_after + 1) as f64).max(0.05))
    }

    /// The sentence written piece by piece: the model translates up to each number or name
    /// (seeing the whole sentence in the prompt), the fact is put where the source has it, and
    /// the model goes on from there. `None` when no call could be made.
    async fn anchored(
        &mut self,
        sentence: &str,
        facts: &[Fact],
        sentences_after: usize,
    ) -> Result<Option<String>, EngineError> {
        let ask = self.ask(sentence, facts, sentences_after);
        let mut written = String::new();
        let mut cursor = 0;
        for fact in facts {
            if fact.start < cursor {
                continue;
            }
            let piece = &sentence[cursor..fact.start];
            if piece.chars().any(char::is_alphanumeric) {
                let Some(continued) = self.continue_with(&ask, &written, (sentence, piece), Some(&fact.text)).await?
                else {
                    return Ok(None);
                };
                push_words(&mut written, &continued);
            }
            push_words(&mut written, &fact.text);
            cursor = fact.end;
        }
        let rest = &sentence[cursor..];
        if rest.chars().any(char::is_alphanumeric) {
            match self.continue_with(&ask, &written, (sentence, rest), None).await? {
                Some(continued) => push_words(&mut written, &continued),
                None => return Ok(None),
            }
        }
        Ok(Some(written))
    }

    /// What the model writes after `written` for the source `piece` of `sentence`, on the same
    /// line. Before a fact, it is cut where the model itself puts the fact, with no sentence
    /// ending; anywhere, it is cut where the model starts a number the source does not have.
    async fn continue_with(
        &mut self,
        ask: &Ask,
        written: &str,
        (sentence, piece): (&str, &str),
        next_fact: Option<&str>,
    ) -> Result<Option<String>, EngineError> {
        let mut piece_ask = ask.clone();
        piece_ask.prefix = match written.is_empty() {
            true => ask.prefix.clone(),
            false => format!("{} {written}", ask.prefix),
        };
        let words = piece.split_whitespace().count();
        piece_ask.max_tokens = match next_fact {
            Some(_) => words * 2 + 2,
            None => words * 2 + 4,
        };
        let Some((text, finish)) = self.call(&piece_ask).await? else { return Ok(None) };
        // Going on from written text, a line break first means the model ended the sentence.
        let text = if written.is_empty() { text.trim_start() } else { text.trim_start_matches(' ') };
        let mut text = text.lines().next().unwrap_or_default().to_string();
        // Cut off by the token limit, the last word may be half a word.
        let mut half_word = finish != FinishReason::Eos;
        let mut cut_at_number = false;
        if let Some(invented) = missing_numbers(&text, sentence).first()
            && let Some(at) = text.find(invented)
        {
            text.truncate(at);
            (half_word, cut_at_number) = (false, true);
        }
        let stopwords = self.languages.target.map_or(&[][..], |t| t.profile().stopwords);
        match next_fact {
            // Cut before the model ended the sentence: end at a whole word that ends something.
            None if half_word && !ends_a_sentence(&text) => Ok(Some(end_at_whole_word(&text, stopwords, false))),
            None if cut_at_number => Ok(Some(without_dangling_words(&text, stopwords))),
            None => Ok(Some(text)),
            Some(fact) => {
                if let Some(at) = text.find(fact) {
                    text.truncate(at);
                } else if half_word {
                    // A function word just before the fact is whole, and leads into it
                    // (`El equipo de` Green Leaf).
                    text = end_at_whole_word(&text, stopwords, true);
                }
                if let Some(first) = sentences(&text).into_iter().next() {
                    text = first;
                }
                Ok(Some(text.trim_end_matches(['.', '!', '?', ':', ';']).trim().to_string()))
            }
        }
    }
}

/// Whether `text` has a sentence's end in it (the model finished at least one).
fn ends_a_sentence(text: &str) -> bool {
    text.trim_end().ends_with(['.', '!', '?']) || sentences(text).len() > 1
}

fn push_words(written: &mut String, words: &str) {
    let words = words.trim();
    if words.is_empty() {
        return;
    }
    // Punctuation goes on from the word before it.
    if !written.is_empty() && !words.starts_with([',', '.', ';', ':', '!', '?']) {
        written.push(' ');
    }
    written.push_str(words);
}
