//! No response has an empty section, list or item, whatever the model does: every fixture brief,
//! in both phases and for both kinds of model, goes through the real pipeline on a stand-in that
//! writes nothing on some calls. What could not be written is left out, is a failed check, and
//! the note to the buyer says so instead of calling the answer complete.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bidder::config::StrategyConfig;
use bidder::engine::fake::FakeGenerator;
use bidder::engine::{Capability, GenerationFuture, GenerationRequest, TextGenerator};
use bidder::pipeline::{PhaseRoutes, Pipeline};
use bidder::protocol::parse_brief;
use bidder::strategy::markdown::drop_empty_parts;

/// Writes what the fake engine writes, except on the calls its pattern marks, where it writes
/// nothing at all.
struct Flaky {
    inner: FakeGenerator,
    capability: Capability,
    calls: AtomicUsize,
    /// Call `n` comes back empty when `pattern[n % len]` is true.
    pattern: &'static [bool],
}

impl TextGenerator for Flaky {
    fn model_name(&self) -> &str {
        "flaky"
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    fn generate(&self, request: GenerationRequest) -> GenerationFuture {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let empty = self.pattern[n % self.pattern.len()];
        let written = self.inner.generate(request);
        Box::pin(async move {
            let mut generation = written.await?;
            if empty {
                generation.text.clear();
                generation.output_tokens = 0;
            }
            Ok(generation)
        })
    }
}

#[tokio::test]
async fn no_fixture_ever_answers_with_an_empty_section_list_or_item() {
    let patterns: [&'static [bool]; 3] = [&[true, false], &[false, true, true], &[true, true, false]];
    let mut answered = 0;
    for capability in [Capability::Basic, Capability::Prose, Capability::Full] {
        for pattern in patterns {
            for (name, mut brief) in common::fixture_briefs() {
                for phase in ["prototype", "final"] {
                    brief["mode"] = phase.into();
                    let brief = parse_brief(brief.to_string().as_bytes()).unwrap();
                    let flaky =
                        Flaky { inner: FakeGenerator::default(), capability, calls: AtomicUsize::new(0), pattern };
                    let pipeline = Pipeline::new(PhaseRoutes::single(Arc::new(flaky)), StrategyConfig::default());
                    let context = format!("{name} {phase} {capability:?} {pattern:?}");
                    let response = match pipeline.execute(&brief, Instant::now()).await {
                        Ok(response) => response,
                        // Nothing at all written is an error, never an empty answer.
                        Err(bidder::pipeline::PipelineError::NothingWritten) => continue,
                        Err(err) => panic!("{context}: {err}"),
                    };
                    answered += 1;
                    assert!(!response.output.trim().is_empty(), "{context}: an empty answer");
                    let (_, dropped) = drop_empty_parts(&response.output);
                    assert!(dropped.is_empty(), "{context}: {dropped:?} in\n{}", response.output);
                    for artifact in &response.artifacts {
                        assert!(
                            !artifact.content.trim().is_empty(),
                            "{context}: an empty artifact {:?}",
                            artifact.filename
                        );
                    }
                    let failed: Vec<_> = response.metadata.checks.iter().filter(|c| !c.passed).collect();
                    if failed.is_empty() {
                        assert!(
                            !response.agent_message.contains("Not yet right"),
                            "{context}: {}",
                            response.agent_message
                        );
                    } else {
                        assert!(
                            response.agent_message.contains("Not yet right")
                                && !response.agent_message.contains("passes all"),
                            "{context}: the note hides {failed:?}: {}",
                            response.agent_message
                        );
                    }
                }
            }
        }
    }
    assert!(answered > 100, "most runs write something: {answered}");
}
