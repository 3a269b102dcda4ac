//! `howl run`: load, build and run a topology until it finishes or is told
//! to stop. Fed a file on stdin (`< build.log`), it shows how far it has
//! read on a terminal's stderr.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::progress::StdinReading;
use super::validate::sort_by_position;
use super::{ConfigArgs, DEMO_NAME, EXIT_CONFIG, load, reload, report};
use crate::api::ApiContext;
use crate::internal_events::DURATION_BUCKETS_SECONDS;
use crate::shared::Shared;
use crate::topology::{self, RunOptions};

/// Arguments of `howl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seconds shutdown may take (draining buffers, flushing sinks) before
    /// howl gives up, names the components still busy and exits 1.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    graceful_shutdown_limit: u64,
    /// Reload the config when a config file changes (as on SIGHUP or
    /// `POST /api/v1/reload`): what changed is rebuilt, the rest runs on
    /// with its state; an invalid config is refused and the old one kept.
    #[arg(long)]
    watch_config: bool,
    /// Worker threads of the async runtime; unset: one per core. At the
    /// edge, `--threads 1` costs the least CPU per line (nothing is handed
    /// between cores, and no idle worker searches for work), at some
    /// throughput. At most 1024.
    #[arg(long, env = "HOWL_THREADS", value_name = "N", value_parser = parse_threads)]
    threads: Option<NonZeroUsize>,
}

/// The most `--threads` takes: far beyond any core count, yet a count the
/// OS grants at once. Unbounded, a typo such as `100000` had the runtime
/// spawn threads for a minute and gigabytes, then abort in a storm of
/// panics when the OS refused one.
const MAX_THREADS: usize = 1024;

/// `--threads`: from 1 to [`MAX_THREADS`].
fn parse_threads(text: &str) -> Result<NonZeroUsize, String> {
    let threads: NonZeroUsize = text
        .parse()
        .map_err(|error| format!("{error} (a number from 1 to {MAX_THREADS})"))?;
    if threads.get() > MAX_THREADS {
        return Err(format!(
            "at most {MAX_THREADS} (one per core is the default)"
        ));
    }
    Ok(threads)
}

/// Runs the topology; see the module docs of `cli` for exit codes.
pub fn run(args: RunArgs) -> ExitCode {
    if args.config.config.is_empty() {
        tracing::info!(
            "no --config given: running the built-in demo topology ({DEMO_NAME}); press Ctrl-C to stop"
        );
    }
    let loaded = load(&args.config);
    let built = match topology::build(&loaded.config) {
        Ok(built) if loaded.is_ok() => {
            report(&loaded.diagnostics);
            built
        }
        result => {
            let mut diagnostics = loaded.diagnostics.clone();
            if let Err(mut errors) = result {
                diagnostics.append(&mut errors);
            }
            sort_by_position(&mut diagnostics);
            report(&diagnostics);
            eprintln!("howl: the config is invalid; nothing was started (see `howl validate`)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(graph) = loaded.graph.clone() else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let config = loaded.config;
    if let Err(error) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!(
            "error: cannot create data_dir `{}`: {error}",
            config.data_dir.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }

    let runtime = match super::runtime(args.threads) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let shutting_down = Arc::new(AtomicBool::new(false));
        // Histograms are exposed as histograms, with buckets (the exporter's
        // default is a summary).
        let prometheus = match metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS_SECONDS)
            .and_then(|builder| builder.install_recorder())
        {
            Ok(handle) => handle,
            Err(error) => {
                eprintln!("error: cannot install the metrics recorder: {error}");
                return ExitCode::FAILURE;
            }
        };
        let upkeep = prometheus.clone();
        let readings = prometheus.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        // One state store and suppression registry for the topology and the
        // API, so an operator's suppression reaches running transforms.
        let state = crate::state::StateHandle::new(config.data_dir.clone())
            .with_fleet(config.shared_state.clone());
        let mut shared = Shared::with_state(state);
        if let Some(links) = &config.api.links {
            match links.signer() {
                Ok(signer) => shared = shared.with_links(signer),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // A fleet's shared triage state: started in the background, so a
        // NATS server out of reach never delays the start; it runs until
        // the topology has drained (its last verdicts are queued then).
        let fleet_stop = CancellationToken::new();
        if let Some(shared_nats) = &config.shared_state
            && let Err(error) = crate::fleet::Fleet::start(
                &shared_nats.bucket,
                shared_nats.connector.clone(),
                shared.state.clone(),
                shared.suppressions.clone(),
                fleet_stop.clone(),
            )
        {
            eprintln!("error: state.shared.nats: {error}");
            return ExitCode::FAILURE;
        }
        // Reloads: the demo has no file to read again.
        let (reload_requests, reloads) = tokio::sync::mpsc::channel(1);
        let reload_calls = if args.config.config.is_empty() {
            if args.watch_config {
                tracing::warn!("--watch-config needs -c FILE: the built-in demo is not reloaded");
            }
            None
        } else {
            let fixed = reload::Fixed {
                paths: args.config.config.clone(),
                data_dir: config.data_dir.clone(),
                api: config.api.clone(),
                shared_state: config.shared_state.clone(),
            };
            let calls = reload::coordinator(fixed, reload_requests);
            tokio::spawn(reload::on_sighup(calls.clone()));
            if args.watch_config {
                tokio::spawn(reload::watch(args.config.config.clone(), calls.clone()));
            }
            Some(calls)
        };
        let api_stop = CancellationToken::new();
        let api = if config.api.enabled {
            let cx = ApiContext {
                prometheus,
                shutting_down: Arc::clone(&shutting_down),
                shared: shared.clone(),
                reload: reload_calls.clone(),
            };
            match crate::api::serve(&config.api, cx, api_stop.clone()).await {
                Ok((address, task)) => {
                    tracing::info!(%address, "API listening (/health, /metrics, /api/v1)");
                    Some(task)
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        tokio::spawn(watch_signals(stop.clone()));
        let flag = Arc::clone(&shutting_down);
        let stopping = stop.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            flag.store(true, Ordering::Release);
        });

        tracing::info!(
            sources = config.sources.len(),
            transforms = config.transforms.len(),
            sinks = config.sinks.len(),
            data_dir = %config.data_dir.display(),
            "howl started"
        );
        let defaults = RunOptions::default();
        let options = RunOptions {
            graceful_shutdown_limit: Duration::from_secs(args.graceful_shutdown_limit),
            // No more copies of a transform at work than workers to run them.
            transform_concurrency: args
                .threads
                .map_or(defaults.transform_concurrency, NonZeroUsize::get),
        };
        let reading = StdinReading::start(&config, readings);
        let outcome =
            topology::run_reloadable(&config, &graph, built, options, shared, stop, reloads).await;
        drop(reload_calls);
        if let Some(reading) = reading {
            reading.finish().await;
        }
        shutting_down.store(true, Ordering::Release);
        api_stop.cancel();
        fleet_stop.cancel();
        if let Some(api) = api {
            let _ = api.await;
        }
        for (sink, undelivered) in &outcome.undelivered {
            if undelivered.on_disk > 0 {
                eprintln!(
                    "warning: {sink} keeps {} events in its disk buffer for the next start \
                     (those after the last record it finished; any of them it already delivered are sent again)",
                    undelivered.on_disk
                );
            }
            if undelivered.lost() > 0 {
                eprintln!(
                    "error: {sink} stopped without delivering {} events ({} in its buffer, {} being delivered); \
                     a file source reads them again on its next start, other sources count them as lost",
                    undelivered.lost(),
                    undelivered.in_buffer,
                    undelivered.in_flight,
                );
            }
        }
        if !outcome.still_running.is_empty() {
            eprintln!(
                "error: graceful shutdown limit of {}s reached; still busy: {}",
                args.graceful_shutdown_limit,
                outcome.still_running.join(", ")
            );
            return ExitCode::FAILURE;
        }
        if !outcome.failed.is_empty() {
            eprintln!("error: component(s) failed: {}", outcome.failed.join(", "));
            return ExitCode::FAILURE;
        }
        tracing::info!("howl stopped: all sinks flushed");
        ExitCode::SUCCESS
    })
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for signals; stop howl with SIGKILL");
        return;
    };
    let mut received = 0;
    loop {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        received += 1;
        if received == 1 {
            tracing::info!(
                signal = name,
                "received signal; shutting down gracefully: sources stop, buffers drain. \
                 Press Ctrl-C again (or send the signal again) to quit at once"
            );
            stop.cancel();
        } else {
            eprintln!("howl: second {name}; exiting without draining");
            std::process::exit(130);
        }
    }
}
