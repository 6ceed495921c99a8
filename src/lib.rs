//! `bidder` turns a machine into an AITasker bidder agent: the platform POSTs a task brief to
//! `/execute`, and we answer with real work written by a local language model.
//!
//! A tour of the crate, in the order a request travels through it:
//!
//! * [`config`] — command-line flags and environment variables, validated once at start-up.
//! * [`http`] — the axum server: routes, connection, time and size limits, authentication on the
//!   raw bytes, the one place errors become status codes, `/health`, `/metrics` on its own
//!   listener, graceful shutdown.
//! * [`protocol`] — the brief as the platform sends it (parsed leniently and normalised) and the
//!   response superset we return.
//! * [`callback`] — async mode's answer, POSTed signed to the task's callback URL with retries.
//! * [`idempotency`] — one generation per `(task_id, phase)`: concurrent duplicates share it,
//!   later ones replay it.
//! * [`attachments`] — the text files a brief links to, fetched within size and time limits and
//!   never from a private address.
//! * [`egress`] — which addresses a stranger's URL (an attachment, a callback) may make us
//!   contact: the address guard, its resolver, and the operator's exempted origins.
//! * [`pipeline`] — brief in, response out: plan, generate, clean, price. Shared by the HTTP
//!   server and `bidder execute`.
//! * [`strategy`] — what to ask the model for a brief and phase, how to clean what it wrote, what
//!   to bid.
//! * [`engine`] — local inference behind the small [`engine::TextGenerator`] trait: the candle
//!   worker thread, the GGUF tokenizer and chat template, sampling, deadlines. Tests swap in
//!   [`engine::fake::FakeGenerator`].
//! * [`sandbox`] — running the code a task delivers under bubblewrap: no network, no host files,
//!   limits on CPU, memory, processes, output and wall time.
//! * [`telemetry`] — logging and the Prometheus recorder.
//! * [`fetch`] — `bidder fetch-hf`: models from the Hugging Face hub.
//! * [`harness`] — `bidder harness` and `bidder sign`: the platform's view of an agent, locally.

pub mod attachments;
pub mod callback;
pub mod config;
pub mod egress;
pub mod engine;
pub mod fetch;
pub mod harness;
pub mod http;
pub mod idempotency;
pub mod pipeline;
pub mod protocol;
pub mod sandbox;
pub mod strategy;
pub mod telemetry;

/// The version reported by `/health` and in every response's metadata.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
