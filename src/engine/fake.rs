//! A deterministic [`TextGenerator`] for tests of everything above the engine: it "writes" a
//! fixed sentence word by word at a configurable pace, honours the deadline like the real engine,
//! counts its calls, and can be told to fail or to panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Capability, EngineError, FinishReason, Generation, GenerationFuture, GenerationRequest, TextGenerator};

const SENTENCE: &str = "The fake engine writes this sentence for the brief.";

#[derive(Debug, Clone)]
pub struct FakeGenerator {
    words: usize,
    word_delay: Duration,
    queue_delay: Duration,
    fail: bool,
    panic: bool,
    capability: Capability,
    calls: Arc<AtomicUsize>,
}

impl Default for FakeGenerator {
    fn default() -> Self {
        Self {
            words: 45,
            word_delay: Duration::ZERO,
            queue_delay: Duration::ZERO,
            fail: false,
            panic: false,
            capability: Capability::Basic,
            calls: Arc::default(),
        }
    }
}

impl FakeGenerator {
    /// Words written per request, unless the deadline or token limit comes first.
    pub fn with_words(mut self, words: usize) -> Self {
        self.words = words;
        self
    }

    /// Time taken per word.
    pub fn with_word_delay(mut self, delay: Duration) -> Self {
        self.word_delay = delay;
        self
    }

    /// Time each request waits before it starts, as behind a busy worker. A request whose
    /// deadline passes while it waits comes back empty, as the real engine's does.
    pub fn with_queue_delay(mut self, delay: Duration) -> Self {
        self.queue_delay = delay;
        self
    }

    /// Present itself to the strategies as a model of this level.
    pub fn with_capability(mut self, capability: Capability) -> Self {
        self.capability = capability;
        self
    }

    /// Answer every request with an inference error.
    pub fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    /// Panic inside every generation, as a bug in the code above the engine would: the caller's
    /// task unwinds.
    pub fn panicking(mut self) -> Self {
        self.panic = true;
        self
    }

    /// How many generations were started, shared by all clones.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The first line of the last user message: the fake's heading.
    fn heading(request: &GenerationRequest) -> String {
        let first_line = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .and_then(|m| m.content.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("Draft");
        first_line.trim_start_matches('#').trim().to_string()
    }
}

impl TextGenerator for FakeGenerator {
    fn model_name(&self) -> &str {
        "fake"
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        Box::pin(async move {
            if this.fail {
                return Err(EngineError::Inference("the fake engine was told to fail".into()));
            }
            if this.panic {
                panic!("the fake engine was told to panic");
            }
            let enqueued = Instant::now();
            // A queued job is given up at its deadline, not held past it.
            tokio::time::sleep(this.queue_delay.min(request.deadline.saturating_duration_since(enqueued))).await;
            let queued = enqueued.elapsed();
            if Instant::now() >= request.deadline {
                return Ok(Generation {
                    input_tokens: 0,
                    output_tokens: 0,
                    text: String::new(),
                    finish: FinishReason::Deadline,
                    queued,
                    prefill: Duration::ZERO,
                    decode: Duration::ZERO,
                    reused_tokens: 0,
                });
            }
            let started = Instant::now();
            let mut text = format!("# {}\n\n", Self::heading(&request));
            let mut written = 0;
            let mut words = SENTENCE.split(' ').cycle();
            let finish = loop {
                if written >= this.words {
                    break FinishReason::Eos;
                }
                if written >= request.max_new_tokens {
                    break FinishReason::Length;
                }
                if Instant::now() >= request.deadline {
                    break FinishReason::Deadline;
                }
                tokio::time::sleep(this.word_delay).await;
                if written > 0 {
                    text.push(' ');
                }
                text.push_str(words.next().expect("the sentence cycles forever"));
                written += 1;
            };
            Ok(Generation {
                input_tokens: request.messages.iter().map(|m| m.content.split_whitespace().count()).sum(),
                output_tokens: written,
                text,
                finish,
                queued,
                prefill: Duration::ZERO,
                decode: started.elapsed(),
                reused_tokens: 0,
            })
        })
    }
}

/// A [`TextGenerator`] that replays queued replies in order, for testing a strategy's repair
/// path without the real model: each call takes the next reply (an empty one once the queue is
/// spent, as a model that writes nothing would), and every prompt is kept for the test to read.
#[derive(Debug, Clone)]
pub struct ScriptedGenerator {
    replies: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    prompts: Arc<std::sync::Mutex<Vec<String>>>,
    capability: Capability,
}

impl ScriptedGenerator {
    pub fn new(capability: Capability, replies: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            replies: Arc::new(std::sync::Mutex::new(replies.into_iter().map(Into::into).collect())),
            prompts: Arc::default(),
            capability,
        }
    }

    /// The last user message of every call so far, in order.
    pub fn prompts(&self) -> Vec<String> {
        self.prompts.lock().expect("no test panics while holding it").clone()
    }
}

impl TextGenerator for ScriptedGenerator {
    fn model_name(&self) -> &str {
        "scripted"
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        let user = request.messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone());
        self.prompts.lock().expect("no test panics while holding it").push(user.unwrap_or_default());
        let reply = self.replies.lock().expect("no test panics while holding it").pop_front().unwrap_or_default();
        // The engine returns only what follows the response prefix; so does this stand-in.
        let text = reply.strip_prefix(request.response_prefix.as_str()).unwrap_or(&reply).to_string();
        let output_tokens = text.split_whitespace().count();
        Box::pin(async move {
            Ok(Generation {
                text,
                input_tokens: 0,
                output_tokens,
                finish: FinishReason::Eos,
                queued: Duration::ZERO,
                prefill: Duration::ZERO,
                decode: Duration::from_millis(1),
                reused_tokens: 0,
            })
        })
    }
}
