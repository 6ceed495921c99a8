//! Brief in, response out: fetch the brief's text attachments, route it to the model serving
//! its phase, let its family's strategy write it against the deadline, add the general checks,
//! price and present it. The HTTP server and `bidder execute` share this path exactly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{PoolConfig, StrategyConfig};
use crate::engine::admission::Speed;
use crate::engine::{Capability, EngineError, FinishReason, LoadReport, LocalEngine, TextGenerator};
use crate::protocol::{Artifact, Brief, Check, ExecuteResponse, Phase, ResponseMetadata, TokenUsage};
use crate::strategy::compose::Writer;
use crate::strategy::{self, checks, clean, logo, markdown, presentation, pricing};

/// Time kept back from the budget for cleaning, serialising and sending the response.
const RESPONSE_MARGIN: Duration = Duration::from_millis(750);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Every call came back empty: there is no draft to send, only an error.
    #[error("the model wrote nothing for this brief")]
    NothingWritten,
    /// The deadline came before the model wrote anything (the job waited behind others): the
    /// caller is told to come back, as for any other overload, rather than shown a failure.
    #[error("no time was left to write this brief after waiting {waited:?}")]
    OutOfTime { waited: Duration },
}

/// Which generator serves each phase: typically a fast model for prototypes and a stronger one
/// for finals, or one model for both.
#[derive(Clone)]
pub struct PhaseRoutes {
    prototype: Arc<dyn TextGenerator>,
    final_delivery: Arc<dyn TextGenerator>,
    /// Each loaded model's speed, measured while it warmed up.
    measured: Vec<(String, Speed)>,
}

/// One model of the pool, for `/health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutedModel {
    pub name: String,
    pub phases: Vec<Phase>,
    /// How the strategies use it (`basic` or `capable`).
    pub capability: Capability,
    /// Tokens per second measured at warm-up (absent for a stand-in engine), so a client can
    /// size its deadlines to this machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_tokens_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_second: Option<f64>,
}

impl PhaseRoutes {
    pub fn single(generator: Arc<dyn TextGenerator>) -> Self {
        Self { prototype: generator.clone(), final_delivery: generator, measured: Vec::new() }
    }

    pub fn new(prototype: Arc<dyn TextGenerator>, final_delivery: Arc<dyn TextGenerator>) -> Self {
        Self { prototype, final_delivery, measured: Vec::new() }
    }

    /// Load and warm every model of `pool` (only the one serving `only`, when given). Blocking.
    pub fn load(pool: &PoolConfig, only: Option<Phase>) -> Result<(Self, Vec<(String, LoadReport)>), EngineError> {
        let mut reports = Vec::new();
        let mut engines: Vec<(Vec<Phase>, Arc<dyn TextGenerator>)> = Vec::new();
        for model in &pool.models {
            if only.is_some_and(|phase| !model.phases.contains(&phase)) {
                continue;
            }
            let (engine, report) = LocalEngine::start(&model.engine)?;
            reports.push((engine.model_name().to_string(), report));
            engines.push((model.phases.clone(), Arc::new(engine)));
        }
        let serving = |phase: Phase| engines.iter().find(|(phases, _)| phases.contains(&phase)).map(|(_, e)| e.clone());
        let routes = match (serving(Phase::Prototype), serving(Phase::Final)) {
            (Some(prototype), Some(final_delivery)) => Self::new(prototype, final_delivery),
            (Some(only), None) | (None, Some(only)) => Self::single(only),
            (None, None) => unreachable!("a validated pool serves every phase"),
        };
        let measured = reports.iter().map(|(name, report)| (name.clone(), report.speed)).collect();
        Ok((Self { measured, ..routes }, reports))
    }

    fn for_phase(&self, phase: Phase) -> &Arc<dyn TextGenerator> {
        match phase {
            Phase::Prototype => &self.prototype,
            Phase::Final => &self.final_delivery,
        }
    }

    /// Each distinct model with the phases it serves.
    pub fn models(&self) -> Vec<RoutedModel> {
        let routed = |generator: &Arc<dyn TextGenerator>, phases: Vec<Phase>| {
            let name = generator.model_name().to_string();
            let speed = self.measured.iter().find(|(measured, _)| *measured == name).map(|(_, speed)| *speed);
            RoutedModel {
                name,
                phases,
                capability: generator.capability(),
                prefill_tokens_per_second: speed.map(|s| s.prefill_tps.round()),
                decode_tokens_per_second: speed.map(|s| s.decode_tps.round()),
            }
        };
        if Arc::ptr_eq(&self.prototype, &self.final_delivery) {
            return vec![routed(&self.prototype, vec![Phase::Prototype, Phase::Final])];
        }
        vec![routed(&self.prototype, vec![Phase::Prototype]), routed(&self.final_delivery, vec![Phase::Final])]
    }
}

pub struct Pipeline {
    routes: PhaseRoutes,
    strategy: StrategyConfig,
}

impl Pipeline {
    pub fn new(routes: PhaseRoutes, strategy: StrategyConfig) -> Self {
        Self { routes, strategy }
    }

    pub fn models(&self) -> Vec<RoutedModel> {
        self.routes.models()
    }

    /// How long `brief` may take, from its arrival to its answer.
    pub fn time_budget(&self, brief: &Brief) -> Duration {
        strategy::time_budget(brief, &self.strategy)
    }

    /// Produce the response for `brief`, which arrived at `received` (its deadline counts from
    /// then, not from when a worker picks it up).
    pub async fn execute(&self, brief: &Brief, received: Instant) -> Result<ExecuteResponse, PipelineError> {
        // Text attachments become part of the brief the strategies read; a failed fetch is a
        // note to the buyer, never a failed bid.
        let fetched = match brief.attachments.is_empty() {
            true => None,
            false => {
                // Fetching may take at most a quarter of the request's budget.
                let budget = strategy::time_budget(brief, &self.strategy);
                let policy = crate::attachments::AttachmentPolicy {
                    timeout: self.strategy.attachments.timeout.min(budget / 4),
                    ..self.strategy.attachments.clone()
                };
                Some(crate::attachments::fetch_attachments(&brief.attachments, &policy).await)
            }
        };
        let with_attachments = fetched.as_ref().map(|report| with_attachment_text(brief, report));
        let brief = with_attachments.as_ref().unwrap_or(brief);
        let plan = strategy::plan(brief, &self.strategy);
        let margin = RESPONSE_MARGIN.min(plan.time_budget / 10);
        let deadline = received + plan.time_budget - margin;
        let generator = self.routes.for_phase(brief.phase);
        let mut writer = Writer::new(generator.as_ref(), deadline, plan.seed);
        let mut draft = strategy::write(brief, &plan, &mut writer).await?;
        let generation = writer.usage;

        let truncated = !draft.complete;
        // Nothing empty is ever delivered: a section or item that could not be written is taken
        // out, and the checks and the note say so.
        let (output, mut dropped) = markdown::drop_empty_parts(&draft.text);
        draft.artifacts.retain(|file| {
            let empty = file.content.trim().is_empty();
            if empty {
                dropped.files.push(file.filename.clone().or(file.title.clone()).unwrap_or_else(|| file.kind.clone()));
            }
            !empty
        });
        if output.trim().is_empty() && draft.artifacts.is_empty() {
            let out_of_time = generation.finish == FinishReason::Deadline || Instant::now() >= deadline;
            return Err(match out_of_time {
                true => PipelineError::OutOfTime { waited: generation.queued },
                false => PipelineError::NothingWritten,
            });
        }
        let words = clean::word_count(&output);
        let title = if brief.title.is_empty() { brief.kind_of_work() } else { brief.title.clone() };
        let text = Artifact::markdown(title, output.clone());
        let artifacts = match plan.wordmark {
            // The image first: it is the deliverable; the rationale goes with it.
            Some(_) => draft.artifacts.into_iter().chain([text]).collect(),
            None => [text].into_iter().chain(draft.artifacts).collect(),
        };
        // The strategy's own checks replace general ones of the same name.
        let mut checks: Vec<Check> = checks::run(&plan.requirements, brief.phase, &output)
            .into_iter()
            .filter(|general| !draft.checks.iter().any(|own| own.name == general.name))
            .collect();
        checks.extend(draft.checks);
        checks.push(match dropped.is_empty() {
            true => Check {
                name: "no_empty_parts".into(),
                passed: true,
                detail: "every section, list item and file has content".into(),
            },
            false => Check {
                name: "no_empty_parts".into(),
                passed: false,
                detail: format!("we left out {}, which came back empty", dropped.describe()),
            },
        });
        let mut agent_message =
            presentation::agent_message(brief, plan.requested_words, words, draft.note.as_deref(), truncated, &checks);
        if let Some(report) = &fetched {
            agent_message.push_str(&presentation::attachment_note(report));
        }
        let cost_usd = pricing::compute_cost_usd(generation.compute_time(), self.strategy.cost_per_hour_usd);
        record_generation_metrics(brief, &generation);

        Ok(ExecuteResponse {
            task_id: brief.task_id.clone(),
            mode: brief.phase,
            status: "completed".into(),
            prototype_summary: presentation::summary(brief, &output, words),
            agent_message,
            bid_price_usd: pricing::bid_price_usd(brief.budget_usd, self.strategy.bid_fraction, plan.size_words()),
            artifacts,
            output,
            cost_usd,
            token_usage: TokenUsage {
                input_tokens: generation.input_tokens as u64,
                output_tokens: generation.output_tokens as u64,
                cost_usd,
            },
            metadata: ResponseMetadata {
                agent_version: crate::AGENT_VERSION.into(),
                model: match plan.wordmark {
                    Some(_) => logo::BUILDER_NAME.into(),
                    None => generator.model_name().into(),
                },
                latency_ms: received.elapsed().as_millis() as u64,
                truncated,
                finish_reason: match truncated {
                    true => FinishReason::Deadline.as_str().into(),
                    false => generation.finish.as_str().into(),
                },
                queue_ms: generation.queued.as_millis() as u64,
                prefill_ms: generation.prefill.as_millis() as u64,
                decode_ms: generation.decode.as_millis() as u64,
                output_words: words,
                checks,
            },
        })
    }
}

/// `brief` with the text of its fetched attachments appended to the description, each under
/// its file name, so every strategy reads them as part of the brief.
fn with_attachment_text(brief: &Brief, report: &crate::attachments::AttachmentReport) -> Brief {
    let mut brief = brief.clone();
    // What was read is in the description now; the prompt lists only what could not be.
    brief.attachments.retain(|a| !report.fetched.iter().any(|f| f.filename == a.filename));
    for file in &report.fetched {
        brief.description.push_str(&format!("\n\nAttached file {}:\n{}", file.filename, file.text.trim_end()));
    }
    brief
}

fn record_generation_metrics(brief: &Brief, generation: &crate::engine::Generation) {
    let phase = brief.phase.as_str();
    metrics::counter!("bidder_generations_total", "phase" => phase, "finish" => generation.finish.as_str())
        .increment(1);
    metrics::counter!("bidder_prompt_tokens_total").increment(generation.input_tokens as u64);
    metrics::counter!("bidder_generated_tokens_total").increment(generation.output_tokens as u64);
    metrics::histogram!("bidder_queue_seconds").record(generation.queued.as_secs_f64());
    metrics::histogram!("bidder_prefill_seconds").record(generation.prefill.as_secs_f64());
    metrics::histogram!("bidder_decode_seconds").record(generation.decode.as_secs_f64());
    if generation.output_tokens > 0 && !generation.decode.is_zero() {
        metrics::gauge!("bidder_decode_tokens_per_second")
            .set(generation.output_tokens as f64 / generation.decode.as_secs_f64());
    }
    if generation.finish != FinishReason::Eos {
        metrics::counter!("bidder_truncations_total", "phase" => phase, "reason" => generation.finish.as_str())
            .increment(1);
    }
}
