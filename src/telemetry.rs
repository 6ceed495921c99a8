//! Logging (text or JSON, filtered by `RUST_LOG`) and the process-wide Prometheus recorder that
//! `/metrics` renders.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Latency buckets in seconds, from a fast health probe to a long final delivery.
const SECONDS_BUCKETS: &[f64] = &[0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0];

/// Sequences in one forward pass (`bidder_batch_sequences`), up to the largest `--max-batch`
/// worth having.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0];

/// A counter or histogram not touched for this long leaves `/metrics` (and memory). Every label
/// set is already bounded; this keeps even a bounded set from holding what nobody updates.
const IDLE_SERIES_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How often histogram samples are folded into their buckets when nobody scrapes: until then
/// every sample is held, one per request.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Logs go to stderr so `bidder execute` can print clean JSON on stdout.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The global Prometheus recorder, installed on first use (one per process, shared by every
/// server a test process starts), with a thread that does its upkeep.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("static buckets are valid")
                .set_buckets_for_metric(Matcher::Full("bidder_batch_sequences".into()), BATCH_BUCKETS)
                .expect("static buckets are valid")
                // Gauges are left out: some are set once at start-up (model load times).
                .idle_timeout(MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM, Some(IDLE_SERIES_TIMEOUT))
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(err) = spawned {
                tracing::warn!(%err, "no metrics upkeep thread: histogram samples wait for a scrape");
            }
            handle
        })
        .clone()
}
