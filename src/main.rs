//! The `bidder` binary: parse flags, then serve, execute one brief, tokenize, or run one of the
//! tools (benchmarks, the harness, synthetic models, the device parity check).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use bidder::config::{
    BenchModelArgs, Cli, Command, ExecuteArgs, FetchHfArgs, HarnessArgs, LogFormat, ModeArg, ParityCheckArgs,
    ServeArgs, SignArgs, StrategyArgs, SynthModelArgs, TokenizeArgs,
};
use bidder::engine::load_gguf_tokenizer;
use bidder::http::{self, AppState};
use bidder::pipeline::{PhaseRoutes, Pipeline};
use bidder::protocol::{Phase, parse_brief};
use bidder::sandbox::Availability;
use bidder::telemetry;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve(args),
        Command::Execute(args) => execute(args),
        Command::Tokenize(args) => tokenize(args),
        Command::BenchModel(args) => bench_model(args),
        Command::FetchHf(args) => fetch_hf(args),
        Command::Harness(args) => harness(args),
        Command::Sign(args) => sign(args),
        Command::SynthModel(args) => synth_model(args),
        Command::ParityCheck(args) => parity_check(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The inference thread pools read their sizes, and the kernels their tier, from the
/// environment on first use ([`bidder::engine::set_cpu_environment`]), so this runs before any
/// thread starts, which is why the runtime is built by hand.
fn pin_inference_threads(threads: usize, tier: Option<bidder_kernels::Tier>) {
    // SAFETY: called from `main` before any other thread exists.
    unsafe { bidder::engine::set_cpu_environment(threads, tier) };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.validate()?;
    pin_inference_threads(config.pool.threads(), args.model.cpu_features);
    telemetry::init_logging(config.log_format);
    runtime()?.block_on(async move {
        // Before anything is bound or loaded: with --code-exec required, no sandbox, no server.
        config.strategy.code_exec = code_execution(&args.strategy).await?;
        let tls = match &config.server.tls {
            Some(files) => Some(http::load_tls(files).await?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let address = listener.local_addr()?;
        if config.server.auth.is_open() {
            tracing::warn!(
                "no API key and no signing secret configured: anyone who can reach {address} can submit work"
            );
        }
        let metrics_listener = match config.server.metrics_listen {
            Some(metrics) => Some(tokio::net::TcpListener::bind(metrics).await.with_context(|| {
                format!("cannot serve metrics on {metrics} (--metrics-listen; `off` serves them nowhere)")
            })?),
            None => None,
        };
        let state = AppState::new(config.server.clone());
        // Tests and scripts read these lines to find the ports when listening on :0.
        println!("bidder listening on {scheme}://{address}");
        if let Some(listener) = metrics_listener {
            println!("bidder metrics on http://{}/metrics", listener.local_addr()?);
            tokio::spawn(async move {
                if let Err(err) = http::serve_metrics(listener, telemetry::metrics_handle()).await {
                    tracing::error!(%err, "the metrics listener stopped");
                }
            });
        }
        std::io::stdout().flush().ok();
        let models: Vec<String> =
            config.pool.models.iter().map(|m| m.engine.model_path.display().to_string()).collect();
        let cpu_tier = bidder_kernels::Tier::active().name();
        tracing::info!(%address, ?models, threads = config.pool.threads(), cpu_tier, "listening; loading the models");

        let (load_failed_tx, load_failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        let loader_state = state.clone();
        let pool = config.pool.clone();
        let strategy = config.strategy.clone();
        tokio::task::spawn_blocking(move || match PhaseRoutes::load(&pool, None) {
            Ok((routes, reports)) => {
                for (model, report) in reports {
                    metrics::gauge!("bidder_model_load_seconds", "model" => model.clone())
                        .set(report.load.as_secs_f64());
                    metrics::gauge!("bidder_model_warm_up_seconds", "model" => model.clone())
                        .set(report.warm_up.as_secs_f64());
                    tracing::info!(
                        %model,
                        load_ms = report.load.as_millis() as u64,
                        warm_up_ms = report.warm_up.as_millis() as u64,
                        prefill_tps = report.speed.prefill_tps.round(),
                        decode_tps = report.speed.decode_tps.round(),
                        parameters = report.parameters,
                        capability = report.capability.as_str(),
                        "model warm"
                    );
                }
                loader_state.set_ready(Pipeline::new(routes, strategy));
                tracing::info!("every model is warm: ready");
            }
            Err(err) => {
                let _ = load_failed_tx.send(anyhow::Error::new(err));
            }
        });

        // Stop on SIGINT/SIGTERM, or at once if the model cannot be loaded.
        let load_failure = Arc::new(Mutex::new(None));
        let stop = {
            let load_failure = load_failure.clone();
            async move {
                tokio::select! {
                    () = shutdown_signal() => {}
                    Ok(err) = load_failed_rx => *load_failure.lock().expect("not poisoned") = Some(err),
                }
            }
        };
        http::serve(listener, state, tls, stop).await?;
        match load_failure.lock().expect("not poisoned").take() {
            Some(err) => Err(err),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    })
}

/// Probes the sandbox once, as `--code-exec` asks, and says whether delivered code will run.
async fn code_execution(args: &StrategyArgs) -> anyhow::Result<Availability> {
    let availability = Availability::probe(args.code_exec, args.bwrap_path.as_deref())
        .await
        .context("--code-exec required, but code cannot run in the sandbox here")?;
    match availability.why_not() {
        None => tracing::info!("delivered code will be run in the bubblewrap sandbox before it is sent"),
        Some(why) => tracing::info!(%why, "delivered code will not be run"),
    }
    Ok(availability)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn execute(args: ExecuteArgs) -> anyhow::Result<()> {
    let pool = args.model.validate()?;
    let mut strategy = args.strategy.validate()?;
    pin_inference_threads(pool.threads(), args.model.cpu_features);
    telemetry::init_logging(LogFormat::Text);
    let runtime = runtime()?;
    strategy.code_exec = runtime.block_on(code_execution(&args.strategy))?;
    let body = std::fs::read(&args.brief).with_context(|| format!("cannot read {}", args.brief.display()))?;
    let mut brief =
        parse_brief(&body).with_context(|| format!("{} is not a brief we can work on", args.brief.display()))?;
    if let Some(mode) = args.mode {
        brief.phase = match mode {
            ModeArg::Prototype => Phase::Prototype,
            ModeArg::Final => Phase::Final,
        };
    }
    let (routes, _) = PhaseRoutes::load(&pool, Some(brief.phase))?;
    let pipeline = Pipeline::new(routes, strategy);
    let response = runtime.block_on(pipeline.execute(&brief, Instant::now()))?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}

fn tokenize(args: TokenizeArgs) -> anyhow::Result<()> {
    let tokenizer = load_gguf_tokenizer(&args.model)?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading text from stdin")?;
    let encoding = tokenizer.encode(text.as_str(), false).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
    if encoding.get_ids().is_empty() && !text.is_empty() {
        bail!("the tokenizer produced no tokens for non-empty input");
    }
    println!("{}", serde_json::to_string(encoding.get_ids())?);
    Ok(())
}

fn bench_model(args: BenchModelArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    pin_inference_threads(threads, args.cpu_features);
    let device = bidder::engine::open_device(args.device)?;
    let report = bidder::engine::bench::bench_model(
        &args.model,
        &device,
        threads,
        bidder::engine::bench::BenchWorkload {
            prompt_tokens: args.prompt_tokens,
            gen_tokens: args.gen_tokens,
            repetitions: args.repetitions,
            concurrency: args.concurrency,
        },
        bidder::config::LoadOptions { lean_memory: args.lean_memory, tier: args.cpu_features },
    )?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn fetch_hf(args: FetchHfArgs) -> anyhow::Result<()> {
    let installed =
        bidder::fetch::fetch_from_hub(&args.repo, &args.file, &args.revision, &args.dest, args.sha256.as_deref())?;
    println!("{}", installed.display());
    Ok(())
}

fn harness(args: HarnessArgs) -> anyhow::Result<()> {
    let briefs = bidder::harness::read_briefs(&args.briefs)?;
    let signer = bidder::harness::Signer { key: args.key, secret: args.secret };
    let timeout = std::time::Duration::from_secs(args.timeout_secs);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dispatch = match args.async_dispatch {
        true => bidder::harness::Dispatch::Async {
            receiver: std::net::TcpListener::bind(args.receiver_listen).with_context(|| {
                format!("cannot run the callback receiver on {} (--receiver-listen)", args.receiver_listen)
            })?,
        },
        false => bidder::harness::Dispatch::Sync,
    };
    let report = runtime.block_on(bidder::harness::run(&args.url, &briefs, &signer, timeout, dispatch))?;
    print!("{}", report.render());
    match report.violations() {
        0 => Ok(()),
        n => bail!("{n} contract violation(s)"),
    }
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.body).with_context(|| format!("cannot read {}", args.body.display()))?;
    let signer = bidder::harness::Signer { key: args.key, secret: Some(args.secret) };
    print!("{}", bidder::harness::sign_report(&signer, &body, &args.body, &args.url));
    Ok(())
}

fn synth_model(args: SynthModelArgs) -> anyhow::Result<()> {
    let plan = bidder::engine::synth::plan(args.arch, args.shape, args.quant)?;
    let report = bidder::engine::synth::write(&plan, &args.out)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Exits non-zero when the devices disagree, after printing what they did.
fn parity_check(args: ParityCheckArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    pin_inference_threads(threads, None);
    let device = bidder::engine::open_device(args.device)?;
    let report = bidder::engine::parity::parity_check(
        &args.model,
        &device,
        args.steps.max(1),
        args.tolerance,
        bidder::config::LoadOptions::default(),
    )?;
    println!("{}", serde_json::to_string(&report)?);
    if !report.passed {
        bail!(
            "{} and the CPU disagree: logits differ by {:.4} of their scale (tolerance {}){}",
            report.device,
            report.relative_diff,
            report.tolerance,
            if report.non_finite { ", and some are not finite" } else { "" }
        );
    }
    Ok(())
}
