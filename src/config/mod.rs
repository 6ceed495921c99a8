//! Command-line flags and environment variables (every flag has one), and their validation into
//! the settings each layer consumes. Nothing here knows about HTTP or models beyond their
//! settings; validation happens once, at start-up, with a message that names the flag.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::attachments::AttachmentPolicy;
use crate::callback::CallbackPolicy;
use crate::egress::AllowList;

mod dev_tools;
mod pool;

pub use dev_tools::{ParityCheckArgs, SynthModelArgs};
pub use pool::{PoolConfig, PooledModel};

/// The platform drops a prototype that arrives after its 420 s bidding window; our internal
/// budgets must stay well inside it.
pub const PLATFORM_WINDOW_SECS: u64 = 420;

/// What `cargo run --release` serves: the strongest instruct model the catalog ships
/// (`scripts/fetch-models.sh` with no argument fetches it).
pub const DEFAULT_MODEL_PATH: &str = "models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// Where `/metrics` is served unless configured: loopback, the port OpenTelemetry's Prometheus
/// exporters use.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

// Strategy defaults, shared by the flags and `StrategyConfig::default()`.
const DEFAULT_PROTOTYPE_DEADLINE_SECS: u64 = 120;
const DEFAULT_FINAL_DEADLINE_SECS: u64 = 300;
const DEFAULT_COST_PER_HOUR_USD: f64 = 0.10;
const DEFAULT_BID_FRACTION: f64 = 0.8;
// Sampling defaults, shared by the flags and `SamplingConfig::default()`.
const DEFAULT_TEMPERATURE: f64 = 0.4;
const DEFAULT_TOP_K: usize = 40;
const DEFAULT_TOP_P: f64 = 0.9;
const DEFAULT_REPEAT_PENALTY: f32 = 1.15;
const DEFAULT_REPEAT_LAST_N: usize = 128;
const DEFAULT_NO_REPEAT_NGRAM: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { flag, reason: reason.into() }
}

/// An AITasker bidder agent that answers task briefs with a local language model.
#[derive(Debug, Parser)]
#[command(name = "bidder", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, which is what a bare `bidder` runs.
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once per process; the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the AITasker contract over HTTP (the default).
    Serve(ServeArgs),
    /// Run one brief through the same pipeline as `/execute`, without HTTP, and print the
    /// response JSON.
    Execute(ExecuteArgs),
    /// Read text on stdin and print its token ids as a JSON array.
    Tokenize(TokenizeArgs),
    /// Measure load time, prefill and decode speed and peak memory of a GGUF on this machine;
    /// prints one JSON line (compare with scripts/bench-vs-llama.sh).
    BenchModel(BenchModelArgs),
    /// Download a GGUF from the Hugging Face hub (honours HF_ENDPOINT, HF_HOME and HF_TOKEN)
    /// into the models directory.
    FetchHf(FetchHfArgs),
    /// Act as the platform against a running agent: a signed prototype and final for each
    /// brief, every answer checked against the contract, the negative cases run once; prints a
    /// table and exits non-zero on any violation.
    Harness(HarnessArgs),
    /// Print the headers the platform would send for a brief body, and a ready `curl` line.
    Sign(SignArgs),
    /// Write a GGUF of a real model's shape with random weights, for measuring speed where no
    /// real model can be fetched (speed does not depend on the values); prints one JSON line.
    SynthModel(SynthModelArgs),
    /// Run a model on the CPU and on --device through the same batched forward passes and
    /// compare their logits; prints one JSON line and fails above --tolerance (a GPU build's
    /// check, for a machine with no cargo; see scripts/gpu-check.sh).
    ParityCheck(ParityCheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HarnessArgs {
    /// The agent's base URL (its `/execute` is this plus `/execute`).
    #[arg(long, env = "BIDDER_HARNESS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A directory of brief JSON files.
    #[arg(long, env = "BIDDER_HARNESS_BRIEFS", default_value = "tests/fixtures/briefs")]
    pub briefs: PathBuf,
    /// The API key the agent expects (sent as X-AITasker-Key).
    #[arg(long, env = "AITASKER_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The signing secret the agent verifies (HMAC-SHA256 in X-AITasker-Signature).
    #[arg(long, env = "BIDDER_HARNESS_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Seconds to wait for one answer.
    #[arg(long, env = "BIDDER_HARNESS_TIMEOUT_SECS", default_value_t = 420)]
    pub timeout_secs: u64,
    /// Dispatch every brief in async mode, with a callback to a receiver the harness runs on
    /// --receiver-listen (so the agent must run on this machine, with that origin in its
    /// --callback-allow-hosts, e.g. `http://127.0.0.1:8099`).
    #[arg(long = "async", env = "BIDDER_HARNESS_ASYNC")]
    pub async_dispatch: bool,
    /// Where the --async receiver listens.
    #[arg(long, env = "BIDDER_HARNESS_RECEIVER_LISTEN", default_value = crate::harness::DEFAULT_RECEIVER_LISTEN)]
    pub receiver_listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The signing secret.
    #[arg(long, env = "BIDDER_HARNESS_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The API key, if the agent expects one.
    #[arg(long, env = "AITASKER_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Where the curl line sends the body.
    #[arg(long, env = "BIDDER_HARNESS_URL", default_value = "http://127.0.0.1:8080/execute")]
    pub url: String,
    /// The brief body, as the platform would POST it.
    pub body: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs an API key or a signing secret (or
    /// --insecure-no-auth).
    #[arg(long, env = "BIDDER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The developer API key (`ait_…`); when set, `X-AITasker-Key` must equal it.
    #[arg(long, env = "AITASKER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Comma-separated HMAC signing secrets; a signature under any one of them is accepted (the
    /// platform rotates secrets with an overlap).
    #[arg(long, env = "AITASKER_SIGNING_SECRETS", hide_env_values = true)]
    pub signing_secrets: Option<String>,
    /// How far `X-AITasker-Timestamp` may be from our clock, in seconds, either way.
    #[arg(long, env = "BIDDER_TIMESTAMP_TOLERANCE_SECS", default_value_t = 300)]
    pub timestamp_tolerance_secs: u64,
    /// Also serve every route under this prefix (e.g. `/aitasker` → `/aitasker/execute`).
    #[arg(long, env = "BIDDER_PATH_PREFIX")]
    pub path_prefix: Option<String>,
    /// Agent slug reported by `/health`.
    #[arg(long, env = "BIDDER_AGENT_SLUG", default_value = "bidder")]
    pub agent_slug: String,
    /// Comma-separated category slugs reported by `/health`.
    #[arg(
        long,
        env = "BIDDER_CAPABILITIES",
        value_delimiter = ',',
        default_value = "writing-translation,digital-marketing,programming-automation,data,business,graphics-design"
    )]
    pub capabilities: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BIDDER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// PEM certificate chain: serve HTTPS in-process with rustls (needs --tls-key). Without it
    /// the server speaks plain HTTP, for a TLS-terminating proxy or ingress in front.
    #[arg(long, env = "BIDDER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "BIDDER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow listening on a non-loopback address with neither an API key nor a signing secret.
    #[arg(long, env = "BIDDER_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish, in seconds.
    #[arg(long, env = "BIDDER_DRAIN_SECS", default_value_t = 60)]
    pub drain_secs: u64,
    /// How long a finished response is replayed to duplicate calls, in seconds.
    #[arg(long, env = "BIDDER_IDEMPOTENCY_TTL_SECS", default_value_t = 3600)]
    pub idempotency_ttl_secs: u64,
    /// How many finished responses are kept for replay.
    #[arg(long, env = "BIDDER_IDEMPOTENCY_CAPACITY", default_value_t = 1024)]
    pub idempotency_capacity: u64,
    /// Seconds a client has to send a request's headers (counted from the connection's start,
    /// or from the previous response on a kept-alive connection); then it is closed.
    #[arg(long, env = "BIDDER_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body once its headers are in; then it
    /// gets 408 and the connection is closed.
    #[arg(long, env = "BIDDER_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Connections open at once, at most; one more is closed as soon as it is accepted.
    #[arg(long, env = "BIDDER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// `/execute` requests handled at once, at most; one more is answered 429 at once.
    #[arg(long, env = "BIDDER_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Where to serve `/metrics` (Prometheus text, plain HTTP), or `off`. It is never served on
    /// --listen: it tells refusals apart, which is for operators only.
    #[arg(long, env = "BIDDER_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: String,
    /// Comma-separated origins an async callback may use besides public https hosts, written
    /// `host[:port]` (https) or `http://host[:port]`, e.g. the harness's receiver,
    /// `http://127.0.0.1:8099`. Callback URLs are written by whoever sends the brief: every
    /// origin listed is one they can make this machine call.
    #[arg(long, env = "BIDDER_CALLBACK_ALLOW_HOSTS", value_delimiter = ',')]
    pub callback_allow_hosts: Vec<String>,
    /// Comma-separated domains (the platform's own, e.g. `aitasker.co`): when set, callbacks go
    /// only to these domains and their subdomains (and to --callback-allow-hosts).
    #[arg(long, env = "BIDDER_CALLBACK_DOMAINS", value_delimiter = ',')]
    pub callback_domains: Vec<String>,
    /// Log format.
    #[arg(long, env = "BIDDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub strategy: StrategyArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which model to run and how to sample from it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Path of the GGUF model file (serves both phases unless --final-model is given).
    #[arg(long, env = "BIDDER_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// CPU threads for inference (default: all available cores).
    #[arg(long, env = "BIDDER_THREADS")]
    pub threads: Option<usize>,
    /// Where inference runs: `cpu`, or `cuda` / `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, env = "BIDDER_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Inference workers, each with its own copy of the model. On a CPU keep 1: candle's
    /// forward pass already uses every core.
    #[arg(long, env = "BIDDER_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// CPU with AVX-512 VNNI: leave out the repacked copy of Q8_0 weights that candle's
    /// prefill kernels keep beside ours (a Q8_0 model in about half the memory, for a prefill
    /// about 3× slower). Other types never keep a second copy.
    #[arg(long, env = "BIDDER_LEAN_MEMORY")]
    pub lean_memory: bool,
    /// CPU kernels to use: `avx512`, `avx2` or `generic` (default: the best this CPU runs). A
    /// lower tier runs exactly what a CPU without the higher one would, for tests and benchmarks.
    #[arg(long, env = "BIDDER_CPU_FEATURES", value_parser = parse_cpu_tier)]
    pub cpu_features: Option<bidder_kernels::Tier>,
    /// Jobs that may wait for a worker; beyond this, requests are answered 429 at once.
    #[arg(long, env = "BIDDER_QUEUE_CAPACITY", default_value_t = 8)]
    pub queue_capacity: usize,
    /// Sequences a worker decodes together, each forward pass reading the weights once for all
    /// of them: a job joins the running ones at the next pass and leaves when it is done.
    #[arg(long, env = "BIDDER_MAX_BATCH", default_value_t = 4)]
    pub max_batch: usize,
    /// Memory for the KV caches of the sequences a worker runs together, in MiB: a job waits
    /// while those running leave too little for its prompt and answer.
    #[arg(long, env = "BIDDER_KV_CACHE_MB", default_value_t = 2048)]
    pub kv_cache_mb: usize,
    /// How far the strategies trust the models given by flags: `full` ones write every piece
    /// whole and are repaired where a check fails, `prose` ones write prose whole and are led on
    /// lists, posts, code and translation, `basic` ones are led a part at a time. Default: from
    /// the parameter count (prose from 1B, full from 7B).
    #[arg(long, env = "BIDDER_CAPABILITY", value_enum)]
    pub capability: Option<crate::engine::Capability>,
    /// A second GGUF, kept warm beside --model, that serves final deliveries (prototypes stay
    /// on --model).
    #[arg(long, env = "BIDDER_FINAL_MODEL")]
    pub final_model: Option<PathBuf>,
    /// A TOML file naming the models to keep warm, the phases each serves, and workers and
    /// queue capacity per model. Replaces --model and --final-model.
    #[arg(long, env = "BIDDER_POOL")]
    pub pool: Option<PathBuf>,
    /// Sampling temperature; 0 picks the most likely token every time. Small models stay on
    /// topic better when it is low.
    #[arg(long, env = "BIDDER_TEMPERATURE", default_value_t = DEFAULT_TEMPERATURE)]
    pub temperature: f64,
    /// Consider only the k most likely tokens (0 = all). Besides trimming the long tail, it
    /// spares a sort of the whole vocabulary (151k tokens for Qwen) on every token.
    #[arg(long, env = "BIDDER_TOP_K", default_value_t = DEFAULT_TOP_K)]
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long, env = "BIDDER_TOP_P", default_value_t = DEFAULT_TOP_P)]
    pub top_p: f64,
    /// Penalty on tokens already generated recently (1.0 = none).
    #[arg(long, env = "BIDDER_REPEAT_PENALTY", default_value_t = DEFAULT_REPEAT_PENALTY)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    #[arg(long, env = "BIDDER_REPEAT_LAST_N", default_value_t = DEFAULT_REPEAT_LAST_N)]
    pub repeat_last_n: usize,
    /// Never repeat a run of this many tokens within one answer (0 = off): small models loop,
    /// and a penalty alone does not stop a whole sentence coming round again. Code turns it off.
    #[arg(long, env = "BIDDER_NO_REPEAT_NGRAM", default_value_t = DEFAULT_NO_REPEAT_NGRAM)]
    pub no_repeat_ngram: usize,
}

/// How a brief becomes a bid: time budgets, pricing.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// Internal time budget for a prototype, in seconds (the platform's window is 420 s).
    #[arg(long, env = "BIDDER_PROTOTYPE_DEADLINE_SECS", default_value_t = DEFAULT_PROTOTYPE_DEADLINE_SECS)]
    pub prototype_deadline_secs: u64,
    /// Internal time budget for a final delivery, in seconds.
    #[arg(long, env = "BIDDER_FINAL_DEADLINE_SECS", default_value_t = DEFAULT_FINAL_DEADLINE_SECS)]
    pub final_deadline_secs: u64,
    /// Hourly price of this machine in USD, to turn measured compute time into `cost_usd`.
    #[arg(long, env = "BIDDER_COST_PER_HOUR_USD", default_value_t = DEFAULT_COST_PER_HOUR_USD)]
    pub cost_per_hour_usd: f64,
    /// Share of the buyer's `budget_usd` to bid (0 < f ≤ 1).
    #[arg(long, env = "BIDDER_BID_FRACTION", default_value_t = DEFAULT_BID_FRACTION)]
    pub bid_fraction: f64,
    /// Run the code a task delivers (in the bubblewrap sandbox) before sending it: `off`,
    /// `auto` (when bubblewrap works here) or `required` (refuse to start without it).
    #[arg(long, env = "BIDDER_CODE_EXEC", value_enum, default_value_t = crate::sandbox::CodeExec::Auto)]
    pub code_exec: crate::sandbox::CodeExec,
    /// The bubblewrap binary to use (default: `bwrap` on PATH).
    #[arg(long, env = "BIDDER_BWRAP")]
    pub bwrap_path: Option<PathBuf>,
    #[command(flatten)]
    pub attachments: AttachmentArgs,
}

/// Which attachments a brief may make us download, and how much of them.
#[derive(Debug, Clone, Args)]
pub struct AttachmentArgs {
    /// Largest attachment read, in bytes; a larger one is left out with a note to the buyer.
    #[arg(long, env = "BIDDER_ATTACHMENT_MAX_BYTES", default_value_t = AttachmentPolicy::default().max_bytes)]
    pub attachment_max_bytes: u64,
    /// Time for downloading all of a brief's attachments, in seconds; it comes out of the
    /// phase's budget, so it must be shorter than --prototype-deadline-secs.
    #[arg(long, env = "BIDDER_ATTACHMENT_TIMEOUT_SECS", default_value_t = AttachmentPolicy::default().timeout.as_secs())]
    pub attachment_timeout_secs: u64,
    /// Comma-separated origins exempt from the private-address guard, written `host[:port]`
    /// (https) or `http://host[:port]` (plain http), e.g. a storage service on the local
    /// network. Links are written by strangers: every origin listed here is one they can make
    /// this machine call.
    #[arg(long, env = "BIDDER_ATTACHMENT_ALLOW_HOSTS", value_delimiter = ',')]
    pub attachment_allow_hosts: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExecuteArgs {
    /// The brief, as the platform would POST it.
    pub brief: PathBuf,
    /// Override the brief's phase.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub strategy: StrategyArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Prototype,
    Final,
}

#[derive(Debug, Clone, Args)]
pub struct BenchModelArgs {
    /// Path of the GGUF model file.
    #[arg(long, env = "BIDDER_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Prompt length: prefill is timed over it, and decode runs after it.
    #[arg(long, default_value_t = 332)]
    pub prompt_tokens: usize,
    /// Tokens to decode.
    #[arg(long = "gen", default_value_t = 128)]
    pub gen_tokens: usize,
    /// CPU threads (default: all available cores).
    #[arg(long, env = "BIDDER_THREADS")]
    pub threads: Option<usize>,
    /// Where the model runs: `cpu`, or `cuda` / `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, env = "BIDDER_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Timed repetitions; the mean is reported.
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Also decode this many sequences together (one batch, each with its own prompt and
    /// KV cache slot) and report their aggregate speed beside one sequence's.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// CPU with AVX-512 VNNI: leave out the repacked copy of Q8_0 weights that candle's
    /// prefill kernels keep beside ours (a Q8_0 model in about half the memory, for a prefill
    /// about 3× slower). Other types never keep a second copy.
    #[arg(long, env = "BIDDER_LEAN_MEMORY")]
    pub lean_memory: bool,
    /// CPU kernels to use: `avx512`, `avx2` or `generic` (default: the best this CPU runs). A
    /// lower tier runs exactly what a CPU without the higher one would, for tests and benchmarks.
    #[arg(long, env = "BIDDER_CPU_FEATURES", value_parser = parse_cpu_tier)]
    pub cpu_features: Option<bidder_kernels::Tier>,
}

#[derive(Debug, Clone, Args)]
pub struct FetchHfArgs {
    /// Repository, e.g. `Qwen/Qwen2.5-7B-Instruct-GGUF`.
    pub repo: String,
    /// File in the repository, e.g. `qwen2.5-7b-instruct-q4_k_m.gguf`.
    pub file: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Directory to place the file in.
    #[arg(long, default_value = "models")]
    pub dest: PathBuf,
    /// Expected sha256 of the file; a mismatch is an error and installs nothing.
    #[arg(long)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TokenizeArgs {
    /// Path of the GGUF model file whose tokenizer to use.
    #[arg(long, env = "BIDDER_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
}

/// A value that must never reach a log line: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Authentication as protocol §3: each scheme is on when configured.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub api_key: Option<Secret>,
    pub signing_secrets: Vec<Secret>,
    pub timestamp_tolerance: Duration,
}

impl AuthConfig {
    pub fn is_open(&self) -> bool {
        self.api_key.is_none() && self.signing_secrets.is_empty()
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub path_prefix: Option<String>,
    pub agent_slug: String,
    pub capabilities: Vec<String>,
    pub max_body_bytes: usize,
    pub drain: Duration,
    pub idempotency_ttl: Duration,
    pub idempotency_capacity: u64,
    /// Serve HTTPS with these PEM files; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// Time for a request's headers, and for a TLS handshake.
    pub header_timeout: Duration,
    /// Time for a request's whole body.
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// `/execute` requests handled at once.
    pub max_in_flight: usize,
    /// Where `/metrics` is served; nowhere when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// Where async callbacks may go.
    pub callbacks: CallbackPolicy,
}

/// The certificate chain and private key of an HTTPS listener, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub device: DeviceChoice,
    pub threads: usize,
    pub workers: usize,
    pub queue_capacity: usize,
    /// Sequences one worker decodes together (`--max-batch`).
    pub max_batch: usize,
    /// Bytes for the KV caches of a worker's running sequences (`--kv-cache-mb`).
    pub kv_cache_bytes: usize,
    /// What the strategies trust the model with; `None`: from its parameter count.
    pub capability: Option<crate::engine::Capability>,
    pub sampling: SamplingConfig,
    pub load: LoadOptions,
}

/// How a model's weights are held in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip candle's repacked prefill copy of Q8_0 weights on CPU (`--lean-memory`).
    pub lean_memory: bool,
    /// The CPU kernel tier; `None`: [`bidder_kernels::Tier::active`] (`--cpu-features`).
    pub tier: Option<bidder_kernels::Tier>,
}

/// The device a model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

/// A kernel tier by name, refused if this CPU cannot run it. An empty value (`BIDDER_CPU_FEATURES=`
/// in a script that clears it) sets no ceiling: the best tier this CPU runs, as when unset.
fn parse_cpu_tier(raw: &str) -> Result<bidder_kernels::Tier, String> {
    match raw.trim().is_empty() {
        true => Ok(bidder_kernels::Tier::best()),
        false => bidder_kernels::Tier::parse(raw).map_err(|e| e.to_string()),
    }
}

fn parse_device(raw: &str) -> Result<DeviceChoice, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse) {
            Some(Ok(ordinal)) => Ok(DeviceChoice::Cuda(ordinal)),
            _ => Err(format!("{raw:?} is not a device: use cpu, cuda or cuda:N")),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    /// Block any token that would repeat a run of this many tokens of the answer (0 = off).
    pub no_repeat_ngram: usize,
}

impl Default for SamplingConfig {
    /// The flags' defaults.
    fn default() -> Self {
        Self {
            temperature: DEFAULT_TEMPERATURE,
            top_k: DEFAULT_TOP_K,
            top_p: DEFAULT_TOP_P,
            repeat_penalty: DEFAULT_REPEAT_PENALTY,
            repeat_last_n: DEFAULT_REPEAT_LAST_N,
            no_repeat_ngram: DEFAULT_NO_REPEAT_NGRAM,
        }
    }
}

/// Settings of the strategy layer.
#[derive(Debug, Clone)]
pub struct StrategyConfig {
    pub prototype_deadline: Duration,
    pub final_deadline: Duration,
    pub cost_per_hour_usd: f64,
    pub bid_fraction: f64,
    pub attachments: AttachmentPolicy,
    /// Where the code a task delivers may be run, or why it may not (`--code-exec`, probed once
    /// at start-up).
    pub code_exec: crate::sandbox::Availability,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            prototype_deadline: Duration::from_secs(DEFAULT_PROTOTYPE_DEADLINE_SECS),
            final_deadline: Duration::from_secs(DEFAULT_FINAL_DEADLINE_SECS),
            cost_per_hour_usd: DEFAULT_COST_PER_HOUR_USD,
            bid_fraction: DEFAULT_BID_FRACTION,
            attachments: AttachmentPolicy::default(),
            code_exec: crate::sandbox::Availability::Unavailable { why: "code execution was not set up".into() },
        }
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub server: ServerConfig,
    pub pool: PoolConfig,
    pub strategy: StrategyConfig,
    pub log_format: LogFormat,
}

impl ServeArgs {
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let api_key = match self.api_key.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(invalid("--api-key", "is set but empty")),
            Some(key) => Some(Secret::new(key)),
        };
        let signing_secrets: Vec<Secret> = self
            .signing_secrets
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        if self.signing_secrets.is_some() && signing_secrets.is_empty() {
            return Err(invalid("--signing-secrets", "is set but holds no secret"));
        }
        if self.timestamp_tolerance_secs == 0 {
            return Err(invalid("--timestamp-tolerance-secs", "must be at least 1"));
        }
        let auth = AuthConfig {
            api_key,
            signing_secrets,
            timestamp_tolerance: Duration::from_secs(self.timestamp_tolerance_secs),
        };
        if auth.is_open() && !self.listen.ip().is_loopback() && !self.insecure_no_auth {
            return Err(invalid(
                "--listen",
                format!(
                    "{} is not a loopback address and neither --api-key nor --signing-secrets is \
                     set; anyone could make this machine work for them. Configure authentication \
                     or pass --insecure-no-auth",
                    self.listen
                ),
            ));
        }
        let path_prefix = normalise_path_prefix(self.path_prefix.as_deref())?;
        if self.max_body_bytes < 1024 {
            return Err(invalid("--max-body-bytes", "must be at least 1024"));
        }
        let capabilities: Vec<String> =
            self.capabilities.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
        if self.agent_slug.trim().is_empty() {
            return Err(invalid("--agent-slug", "must not be empty"));
        }
        if self.idempotency_capacity == 0 {
            return Err(invalid("--idempotency-capacity", "must be at least 1"));
        }
        for (flag, secs) in
            [("--header-timeout-secs", self.header_timeout_secs), ("--body-timeout-secs", self.body_timeout_secs)]
        {
            if !(1..=PLATFORM_WINDOW_SECS).contains(&secs) {
                return Err(invalid(flag, format!("must be between 1 and {PLATFORM_WINDOW_SECS}")));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("--max-connections", "must be at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("--max-in-flight", "must be at least 1"));
        }
        let metrics_listen = match self.metrics_listen.trim() {
            "off" | "none" | "" => None,
            raw => Some(raw.parse::<SocketAddr>().map_err(|_| {
                invalid("--metrics-listen", format!("{raw:?} is not an address such as 127.0.0.1:9464, or off"))
            })?),
        };
        if metrics_listen.is_some_and(|metrics| metrics == self.listen && metrics.port() != 0) {
            return Err(invalid("--metrics-listen", "must differ from --listen"));
        }
        let callbacks = CallbackPolicy {
            allow: AllowList::parse(&self.callback_allow_hosts).map_err(|e| invalid("--callback-allow-hosts", e))?,
            domains: self.callback_domains.iter().map(|d| platform_domain(d)).collect::<Result<_, _>>()?,
        };
        Ok(ServeConfig {
            server: ServerConfig {
                listen: self.listen,
                auth,
                path_prefix,
                agent_slug: self.agent_slug.trim().to_string(),
                capabilities,
                max_body_bytes: self.max_body_bytes,
                drain: Duration::from_secs(self.drain_secs),
                idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs.max(1)),
                idempotency_capacity: self.idempotency_capacity,
                tls: match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
                    _ => None,
                },
                header_timeout: Duration::from_secs(self.header_timeout_secs),
                body_timeout: Duration::from_secs(self.body_timeout_secs),
                max_connections: self.max_connections,
                max_in_flight: self.max_in_flight,
                metrics_listen,
                callbacks,
            },
            pool: self.model.validate()?,
            strategy: self.strategy.validate()?,
            log_format: self.log_format,
        })
    }
}

/// A `--callback-domains` entry: a bare domain name, compared in lower case without a leading
/// `*.` or trailing dot.
fn platform_domain(raw: &str) -> Result<String, ConfigError> {
    let domain = raw.trim().trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
    let is_name = !domain.is_empty()
        && domain.contains('.')
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if is_name {
        Ok(domain)
    } else {
        Err(invalid("--callback-domains", format!("{raw:?} is not a domain name such as aitasker.co")))
    }
}

fn normalise_path_prefix(prefix: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(prefix) = prefix.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if !trimmed.starts_with('/') {
        return Err(invalid("--path-prefix", format!("{prefix:?} must start with '/'")));
    }
    if trimmed.contains(['{', '}', '*', '?', '#']) {
        return Err(invalid("--path-prefix", format!("{prefix:?} must be a plain path")));
    }
    Ok(Some(trimmed.to_string()))
}

impl ModelArgs {
    /// Settings for one model at `model_path`, from the shared flags. `flag` names the flag or
    /// file the path came from, for the error message.
    fn engine_config(&self, flag: &'static str, model_path: &Path) -> Result<EngineConfig, ConfigError> {
        if !model_path.is_file() {
            return Err(invalid(
                flag,
                format!(
                    "{} does not exist or is not a file (run scripts/fetch-models.sh to fetch the \
                     catalog models)",
                    model_path.display()
                ),
            ));
        }
        let threads = match self.threads {
            Some(0) => return Err(invalid("--threads", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if !(self.temperature >= 0.0 && self.temperature <= 5.0) {
            return Err(invalid("--temperature", "must be between 0 and 5"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid("--top-p", "must be in (0, 1]"));
        }
        if !(self.repeat_penalty >= 1.0 && self.repeat_penalty <= 3.0) {
            return Err(invalid("--repeat-penalty", "must be between 1 and 3"));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(invalid("--workers", "must be between 1 and 64"));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("--queue-capacity", "must be at least 1"));
        }
        if self.max_batch == 0 || self.max_batch > 256 {
            return Err(invalid("--max-batch", "must be between 1 and 256"));
        }
        if self.kv_cache_mb < 16 {
            return Err(invalid("--kv-cache-mb", "must be at least 16"));
        }
        if matches!(self.device, DeviceChoice::Cuda(_)) && !cfg!(feature = "cuda") {
            return Err(invalid("--device", "this binary was built without CUDA: rebuild with `--features cuda`"));
        }
        Ok(EngineConfig {
            model_path: model_path.to_path_buf(),
            device: self.device,
            threads,
            workers: self.workers,
            queue_capacity: self.queue_capacity,
            max_batch: self.max_batch,
            kv_cache_bytes: self.kv_cache_mb << 20,
            capability: self.capability,
            load: LoadOptions { lean_memory: self.lean_memory, tier: self.cpu_features },
            sampling: SamplingConfig {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: self.repeat_last_n,
                no_repeat_ngram: self.no_repeat_ngram,
            },
        })
    }
}

impl StrategyArgs {
    pub fn validate(&self) -> Result<StrategyConfig, ConfigError> {
        for (flag, secs) in [
            ("--prototype-deadline-secs", self.prototype_deadline_secs),
            ("--final-deadline-secs", self.final_deadline_secs),
        ] {
            if secs == 0 || secs >= PLATFORM_WINDOW_SECS {
                return Err(invalid(
                    flag,
                    format!(
                        "must be between 1 and {} (the platform's window is {PLATFORM_WINDOW_SECS} s)",
                        PLATFORM_WINDOW_SECS - 1
                    ),
                ));
            }
        }
        if !(self.cost_per_hour_usd >= 0.0 && self.cost_per_hour_usd.is_finite()) {
            return Err(invalid("--cost-per-hour-usd", "must be a non-negative number"));
        }
        if !(self.bid_fraction > 0.0 && self.bid_fraction <= 1.0) {
            return Err(invalid("--bid-fraction", "must be in (0, 1]"));
        }
        Ok(StrategyConfig {
            prototype_deadline: Duration::from_secs(self.prototype_deadline_secs),
            final_deadline: Duration::from_secs(self.final_deadline_secs),
            cost_per_hour_usd: self.cost_per_hour_usd,
            bid_fraction: self.bid_fraction,
            attachments: self.attachments.validate()?,
            // Probed at start-up, after validation (it runs the sandbox once).
            code_exec: crate::sandbox::Availability::Unavailable { why: "code execution was not set up".into() },
        })
    }
}

/// Attachments larger than this are never worth reading into a prompt.
const MAX_ATTACHMENT_BYTES: u64 = 64 * 1024 * 1024;

impl AttachmentArgs {
    fn validate(&self) -> Result<AttachmentPolicy, ConfigError> {
        if self.attachment_max_bytes == 0 || self.attachment_max_bytes > MAX_ATTACHMENT_BYTES {
            return Err(invalid("--attachment-max-bytes", format!("must be between 1 and {MAX_ATTACHMENT_BYTES}")));
        }
        // A short request budget shortens the fetch at run time (see the pipeline), so the two
        // flags need not be set together.
        if self.attachment_timeout_secs == 0 {
            return Err(invalid("--attachment-timeout-secs", "must be at least 1".to_string()));
        }
        let allow =
            AllowList::parse(&self.attachment_allow_hosts).map_err(|e| invalid("--attachment-allow-hosts", e))?;
        Ok(AttachmentPolicy {
            max_bytes: self.attachment_max_bytes,
            timeout: Duration::from_secs(self.attachment_timeout_secs),
            allow,
            ..AttachmentPolicy::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["bidder", "--model", "Cargo.toml"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("flags parse").serve.validate()
    }

    #[test]
    fn public_address_without_auth_is_refused_unless_insecure() {
        let err = parse(&["--listen", "0.0.0.0:8080"]).unwrap_err();
        assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
        assert!(parse(&["--listen", "0.0.0.0:8080", "--insecure-no-auth"]).is_ok());
        assert!(parse(&["--listen", "0.0.0.0:8080", "--api-key", "ait_x"]).is_ok());
        assert!(parse(&["--listen", "127.0.0.1:0"]).is_ok());
    }

    #[test]
    fn an_empty_cpu_tier_is_no_ceiling_and_a_wrong_one_an_error() {
        assert_eq!(parse_cpu_tier(""), Ok(bidder_kernels::Tier::best()));
        assert_eq!(parse_cpu_tier(" "), Ok(bidder_kernels::Tier::best()));
        assert_eq!(parse_cpu_tier("generic"), Ok(bidder_kernels::Tier::Generic));
        assert!(parse_cpu_tier("sse").unwrap_err().contains("generic, avx2 or avx512"));
    }

    #[test]
    fn signing_secrets_split_on_commas() {
        let cfg = parse(&["--signing-secrets", " one, two ,,"]).unwrap();
        let secrets: Vec<&str> = cfg.server.auth.signing_secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["one", "two"]);
        assert!(parse(&["--signing-secrets", " , "]).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let cfg = parse(&["--api-key", "ait_topsecret", "--signing-secrets", "hush"]).unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("topsecret") && !debug.contains("hush"), "{debug}");
    }

    #[test]
    fn path_prefix_is_normalised() {
        assert_eq!(parse(&["--path-prefix", "/aitasker/"]).unwrap().server.path_prefix.as_deref(), Some("/aitasker"));
        assert_eq!(parse(&["--path-prefix", "/"]).unwrap().server.path_prefix, None);
        assert!(parse(&["--path-prefix", "aitasker"]).is_err());
    }

    #[test]
    fn deadlines_must_fit_the_platform_window() {
        assert!(parse(&["--prototype-deadline-secs", "420"]).is_err());
        assert!(parse(&["--final-deadline-secs", "0"]).is_err());
        assert!(parse(&["--bid-fraction", "1.5"]).is_err());
    }

    #[test]
    fn attachment_flags_become_a_policy() {
        assert_eq!(parse(&[]).unwrap().strategy.attachments, AttachmentPolicy::default());
        let cfg = parse(&[
            "--attachment-max-bytes",
            "4096",
            "--attachment-timeout-secs",
            "3",
            "--attachment-allow-hosts",
            "http://127.0.0.1:8080, Files.LAN.,[::1]:8443",
        ])
        .unwrap();
        let policy = cfg.strategy.attachments;
        assert_eq!((policy.max_bytes, policy.timeout), (4096, Duration::from_secs(3)));
        assert_eq!(policy.allow.describe(), ["http://127.0.0.1:8080", "https://files.lan:443", "https://[::1]:8443"]);
        assert!(parse(&["--attachment-max-bytes", "0"]).is_err());
        assert!(parse(&["--attachment-timeout-secs", "0"]).is_err());
        assert!(
            parse(&["--attachment-timeout-secs", "120", "--prototype-deadline-secs", "8"]).is_ok(),
            "the budget shortens it at run time"
        );
        let err = parse(&["--attachment-allow-hosts", "http://files.lan:8080/share"]).unwrap_err().to_string();
        assert!(err.contains("--attachment-allow-hosts") && err.contains("files.lan"), "{err}");
    }

    #[test]
    fn connection_limits_timeouts_and_the_metrics_listener_are_validated() {
        let cfg = parse(&[]).unwrap().server;
        assert_eq!((cfg.header_timeout, cfg.body_timeout), (Duration::from_secs(10), Duration::from_secs(30)));
        assert_eq!((cfg.max_connections, cfg.max_in_flight), (1024, 256));
        assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()), "loopback by default");
        assert_eq!(parse(&["--metrics-listen", "off"]).unwrap().server.metrics_listen, None);
        for bad in [
            &["--header-timeout-secs", "0"][..],
            &["--body-timeout-secs", "0"],
            &["--max-connections", "0"],
            &["--max-in-flight", "0"],
            &["--metrics-listen", "localhost"],
            &["--listen", "127.0.0.1:9000", "--metrics-listen", "127.0.0.1:9000"],
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad[bad.len() - 2]), "{bad:?}: {err}");
        }
    }

    #[test]
    fn callback_origins_and_platform_domains_become_a_policy() {
        let cfg = parse(&["--callback-allow-hosts", "http://127.0.0.1:8099", "--callback-domains", "*.AITasker.co."])
            .unwrap();
        assert_eq!(cfg.server.callbacks.allow.describe(), ["http://127.0.0.1:8099"]);
        assert_eq!(cfg.server.callbacks.domains, ["aitasker.co"]);
        assert!(parse(&["--callback-domains", "https://aitasker.co"]).is_err());
        assert!(parse(&["--callback-allow-hosts", "ftp://127.0.0.1"]).is_err());
    }

    #[test]
    fn devices_parse_and_cuda_needs_the_feature() {
        assert_eq!(parse_device("cuda:1"), Ok(DeviceChoice::Cuda(1)));
        assert_eq!(parse_device("CPU"), Ok(DeviceChoice::Cpu));
        assert!(parse_device("tpu").is_err());
        let cuda = parse(&["--device", "cuda"]);
        assert_eq!(cuda.is_ok(), cfg!(feature = "cuda"), "{cuda:?}");
    }

    #[test]
    fn missing_model_file_names_the_fetch_script() {
        let cli = Cli::try_parse_from(["bidder", "--model", "/nonexistent/model.gguf"]).unwrap();
        let err = cli.serve.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/model.gguf") && err.contains("fetch-models.sh"), "{err}");
    }
}
