//! The warm model pool: which GGUF files to load at start, the phases each serves, and the
//! workers and queue capacity of each. From `--model` (one model for both phases), `--model` +
//! `--final-model` (a fast model for prototypes, a stronger one for finals), or a TOML `--pool`
//! file:
//!
//! ```toml
//! [[model]]
//! path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
//! phases = ["prototype"]
//!
//! [[model]]
//! path = "models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
//! phases = ["final"]
//! workers = 1          # optional, default --workers
//! queue_capacity = 4   # optional, default --queue-capacity
//! capability = "full"   # optional: "basic" | "prose" | "full", default from the parameter count
//! ```
//!
//! Relative paths are relative to the working directory, like `--model`. Every phase is served
//! by exactly one model.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, EngineConfig, ModelArgs, invalid};
use crate::protocol::Phase;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub models: Vec<PooledModel>,
}

#[derive(Debug, Clone)]
pub struct PooledModel {
    pub engine: EngineConfig,
    pub phases: Vec<Phase>,
}

impl PoolConfig {
    /// The model that serves `phase` (validation guarantees there is exactly one).
    pub fn for_phase(&self, phase: Phase) -> &PooledModel {
        self.models.iter().find(|m| m.phases.contains(&phase)).expect("validated: every phase has a model")
    }

    /// Inference threads (the same for every model: candle has one CPU thread pool).
    pub fn threads(&self) -> usize {
        self.models[0].engine.threads
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    model: Vec<PoolFileModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFileModel {
    path: PathBuf,
    #[serde(default = "both_phases")]
    phases: Vec<Phase>,
    workers: Option<usize>,
    queue_capacity: Option<usize>,
    capability: Option<crate::engine::Capability>,
}

fn both_phases() -> Vec<Phase> {
    vec![Phase::Prototype, Phase::Final]
}

impl ModelArgs {
    /// The pool these flags describe, every file checked to exist.
    pub fn validate(&self) -> Result<PoolConfig, ConfigError> {
        let models = match (&self.pool, &self.final_model) {
            (Some(file), _) => self.pool_from_file(file)?,
            (None, Some(final_model)) => vec![
                PooledModel { engine: self.engine_config("--model", &self.model)?, phases: vec![Phase::Prototype] },
                PooledModel { engine: self.engine_config("--final-model", final_model)?, phases: vec![Phase::Final] },
            ],
            (None, None) => {
                vec![PooledModel { engine: self.engine_config("--model", &self.model)?, phases: both_phases() }]
            }
        };
        for phase in both_phases() {
            let serving = models.iter().filter(|m| m.phases.contains(&phase)).count();
            if serving != 1 {
                return Err(invalid(
                    "--pool",
                    format!("the {phase} phase must be served by exactly one model, not {serving}"),
                ));
            }
        }
        Ok(PoolConfig { models })
    }

    fn pool_from_file(&self, file: &std::path::Path) -> Result<Vec<PooledModel>, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid("--pool", format!("cannot read {}: {e}", file.display())))?;
        let parsed: PoolFile =
            toml::from_str(&text).map_err(|e| invalid("--pool", format!("{}: {e}", file.display())))?;
        if parsed.model.is_empty() {
            return Err(invalid("--pool", format!("{} names no [[model]]", file.display())));
        }
        parsed
            .model
            .into_iter()
            .map(|entry| {
                if entry.phases.is_empty() {
                    return Err(invalid("--pool", format!("{} serves no phase", entry.path.display())));
                }
                let mut engine = self.engine_config("--pool", &entry.path)?;
                engine.workers = entry.workers.unwrap_or(engine.workers);
                engine.queue_capacity = entry.queue_capacity.unwrap_or(engine.queue_capacity);
                engine.capability = entry.capability.or(engine.capability);
                if engine.workers == 0 || engine.queue_capacity == 0 {
                    return Err(invalid(
                        "--pool",
                        format!("{}: workers and queue_capacity must be at least 1", entry.path.display()),
                    ));
                }
                Ok(PooledModel { engine, phases: entry.phases })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Cli;

    fn pool(args: &[&str]) -> Result<PoolConfig, ConfigError> {
        let mut argv = vec!["bidder"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("flags parse").serve.model.validate()
    }

    fn pool_file(toml: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), toml).unwrap();
        file
    }

    #[test]
    fn one_model_serves_both_phases_by_default() {
        let p = pool(&["--model", "Cargo.toml"]).unwrap();
        assert_eq!(p.models.len(), 1);
        assert_eq!(p.for_phase(Phase::Final).engine.model_path, p.for_phase(Phase::Prototype).engine.model_path);
    }

    #[test]
    fn a_final_model_takes_the_finals() {
        let p = pool(&["--model", "Cargo.toml", "--final-model", "README.md"]).unwrap();
        assert_eq!(p.for_phase(Phase::Prototype).engine.model_path, PathBuf::from("Cargo.toml"));
        assert_eq!(p.for_phase(Phase::Final).engine.model_path, PathBuf::from("README.md"));
        let err = pool(&["--model", "Cargo.toml", "--final-model", "/nope.gguf"]).unwrap_err().to_string();
        assert!(err.starts_with("--final-model") && err.contains("/nope.gguf"), "{err}");
    }

    #[test]
    fn a_pool_file_routes_phases_with_per_model_settings() {
        let file = pool_file(
            "[[model]]\npath = \"Cargo.toml\"\nphases = [\"prototype\"]\n\n\
             [[model]]\npath = \"README.md\"\nphases = [\"final\"]\nworkers = 2\nqueue_capacity = 3\n",
        );
        let p = pool(&["--pool", file.path().to_str().unwrap()]).unwrap();
        let fin = p.for_phase(Phase::Final);
        assert_eq!((fin.engine.workers, fin.engine.queue_capacity), (2, 3));
        assert_eq!(p.for_phase(Phase::Prototype).engine.workers, 1);
    }

    #[test]
    fn a_pool_must_serve_each_phase_exactly_once() {
        let twice =
            pool_file("[[model]]\npath = \"Cargo.toml\"\n\n[[model]]\npath = \"README.md\"\nphases = [\"final\"]\n");
        let err = pool(&["--pool", twice.path().to_str().unwrap()]).unwrap_err().to_string();
        assert!(err.contains("final phase must be served by exactly one model, not 2"), "{err}");
        let none = pool_file("[[model]]\npath = \"Cargo.toml\"\nphases = [\"prototype\"]\n");
        let err = pool(&["--pool", none.path().to_str().unwrap()]).unwrap_err().to_string();
        assert!(err.contains("not 0"), "{err}");
        let typo = pool_file("[[model]]\npath = \"Cargo.toml\"\nphase = [\"final\"]\n");
        assert!(pool(&["--pool", typo.path().to_str().unwrap()]).unwrap_err().to_string().contains("phase"));
    }
}
