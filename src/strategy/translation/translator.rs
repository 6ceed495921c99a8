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

    /// The best translation of each of `sentences` that time allowed (`None` where no call
    /// could be made). The first candidates of as many sentences as the engine decodes together
    /// are asked for at once (for about the price of one); a sentence whose candidate fails a
    /// test then gets its further tries on its own.
    pub(super) async fn sentences(&mut self, sentences: &[&str]) -> Result<Vec<Option<String>>, EngineError> {
        let mut translated = Vec::with_capacity(sentences.len());
        let mut done = 0;
        for group in sentences.chunks(self.writer.concurrency().max(1)) {
            let after_group = sentences.len() - done - group.len();
            let firsts = match self.can_afford_another(after_group + group.len() - 1) {
                true => {
                    // Decoded together, the group's calls may take the time of its size in
                    // sentences.
                    let share = group.len() as f64 / (after_group + group.len()) as f64;
                    let asks: Vec<Ask> = group
                        .iter()
                        .map(|sentence| {
                            let facts = facts(sentence, &self.known_names);
                            self.ask(sentence, &facts, 0).share(share.max(0.05))
                        })
                        .collect();
                    self.call_asks(&asks).await?
                }
                false => vec![None; group.len()],
            };
            for (i, (sentence, first)) in group.iter().zip(firsts).enumerate() {
                let sentences_after = after_group + group.len() - 1 - i;
                translated.push(self.sentence(sentence, sentences_after, first).await?);
            }
            done += group.len();
        }
        Ok(translated)
    }

    /// The best translation of `sentence` that time allowed, if any call could be made, given
    /// its `first` candidate if one was asked for already. `sentences_after` is how many still
    /// wait after this one.
    async fn sentence(
        &mut self,
        sentence: &str,
        sentences_after: usize,
        first: Option<(String, FinishReason)>,
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
        if let Some((text, finish)) = first {
            attempt = 1;
            let first = self.judged(sentence, &facts, text, finish);
            let passed = first.failures.is_empty();
            keep(&mut best, first);
            if passed {
                attempt = self.attempts.whole;
            }
        }
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
            for (text, finish) in replies.into_iter().flatten() {
                let candidate = self.judged(sentence, &facts, text, finish);
                passed |= candidate.failures.is_empty();
                keep(&mut best, candidate);
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

    /// A whole-sentence candidate tidied and judged: one cut off before its end (length or
    /// deadline) ends at a whole word.
    fn judged(&self, sentence: &str, facts: &[Fact], mut text: String, finish: FinishReason) -> Judged {
        if finish != FinishReason::Eos && !text.trim().contains('\n') && !ends_a_sentence(&text) {
            let stopwords = self.languages.target.map_or(&[][..], |t| t.profile().stopwords);
            text = end_at_whole_word(&text, stopwords, false);
        }
        judge(&self.languages, sentence, facts, &tidy(&text, sentence, &self.labels()))
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
        self.call_asks(&vec![ask.clone(); times.max(1)]).await
    }

    /// Ask all of `asks` at once, timed as one call. Each reply's text without its prefix, and
    /// how generation ended.
    async fn call_asks(&mut self, asks: &[Ask]) -> Result<Vec<Option<(String, FinishReason)>>, EngineError> {
        let started = Instant::now();
        let replies = self.writer.ask_many(asks).await?;
        self.spent += started.elapsed();
        self.calls += 1;
        Ok(asks
            .iter()
            .zip(replies)
            .map(|(ask, reply)| {
                reply.map(|r| (r.text.strip_prefix(&ask.prefix).unwrap_or(&r.text).to_string(), r.finish))
            })
            .collect())
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
