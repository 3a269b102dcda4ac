//! Reloading the config of a running `howl run`: on SIGHUP, on `POST
//! /api/v1/reload`, and (with `--watch-config`) when a config file changes.
//!
//! Every trigger goes through one coordinator, so reloads never overlap.
//! It reads the files again and checks them exactly as `howl validate`
//! does; only a config with no error, the same `data_dir` and the same
//! `[api]` goes to the running topology, which rebuilds what changed (see
//! `topology::reload`). Otherwise the old config keeps running and every
//! reason is logged with its position.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::config::api::ApiConfig;
use crate::diagnostic::Diagnostic;
use crate::topology::reload::{ReloadCall, ReloadOutcome, ReloadRefused, ReloadRequest};
use crate::topology::{self, REGISTRY};

/// How often `--watch-config` looks at the files.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How long the files must stay unchanged before a watched change is
/// applied (an editor writes in several steps).
const SETTLE: Duration = Duration::from_millis(500);

/// What a reload may not change, as the process started with it.
pub(super) struct Fixed {
    /// The config files.
    pub paths: Vec<PathBuf>,
    /// `data_dir`, as started.
    pub data_dir: PathBuf,
    /// `[api]`, as started.
    pub api: ApiConfig,
    /// `[state.shared.nats]` as started.
    pub shared_state: Option<crate::nats::kv::SharedNats>,
}

/// Why a reload may not apply `new` in place of the `[state.shared.nats]`
/// howl started with (`started`): one reason per option that changed,
/// with where `[state]` is written; none when it is the same. The shared
/// state is connected once, at start, so "reloaded" would be untrue.
pub(super) fn shared_state_changes(
    started: Option<&crate::nats::kv::SharedNats>,
    new: Option<&crate::nats::kv::SharedNats>,
) -> Vec<String> {
    const RESTART: &str = "the shared state is connected only at start; restart howl to apply it";
    match (started, new) {
        (None, None) => Vec::new(),
        (None, Some(new)) => vec![format!(
            "{}: `[state.shared.nats]` was added: {RESTART}",
            new.defined_at
        )],
        (Some(started), None) => vec![format!(
            "`[state.shared.nats]` was removed (it was at {} at start): {RESTART}",
            started.defined_at
        )],
        (Some(started), Some(new)) => {
            let mut reasons = Vec::new();
            if started.bucket != new.bucket {
                reasons.push(format!(
                    "{}: `state.shared.nats.bucket` changed from `{}` to `{}`: {RESTART}",
                    new.defined_at, started.bucket, new.bucket
                ));
            }
            for option in started.connector.changed_options(&new.connector) {
                let what = match option {
                    "url" => format!(
                        " from `{}` to `{}`",
                        started.connector.servers(),
                        new.connector.servers()
                    ),
                    _ => String::new(),
                };
                reasons.push(format!(
                    "{}: `state.shared.nats.{option}` changed{what}: {RESTART}",
                    new.defined_at
                ));
            }
            reasons
        }
    }
}

/// Starts the coordinator; the returned sender asks it for a reload.
pub(super) fn coordinator(
    fixed: Fixed,
    topology: mpsc::Sender<ReloadRequest>,
) -> mpsc::Sender<ReloadCall> {
    let (calls, mut pending) = mpsc::channel::<ReloadCall>(8);
    tokio::spawn(async move {
        while let Some(call) = pending.recv().await {
            tracing::info!(trigger = call.trigger, "reloading the config");
            let outcome = reload_once(&fixed, &topology).await;
            match &outcome {
                Ok(report) => {
                    metrics::counter!("config_reloads_total", "result" => "applied").increment(1);
                    for warning in &report.warnings {
                        tracing::warn!("reload: {warning}");
                    }
                    tracing::info!(trigger = call.trigger, "config reloaded: {report}");
                }
                Err(refused) => {
                    metrics::counter!("config_reloads_total", "result" => "refused").increment(1);
                    for reason in &refused.0 {
                        tracing::error!("reload refused: {reason}");
                    }
                    tracing::error!(
                        trigger = call.trigger,
                        "the new config was not applied; the running one is kept"
                    );
                }
            }
            let _ = call.reply.send(outcome);
        }
    });
    calls
}

async fn reload_once(fixed: &Fixed, topology: &mpsc::Sender<ReloadRequest>) -> ReloadOutcome {
    let paths = fixed.paths.clone();
    // Reading and building compiles VRL: off the async threads, on a stack
    // as large as the main thread's, where the same config compiled at
    // start-up.
    let checked = crate::vrl_program::on_large_stack(move || check(&paths)).await;
    let (config, graph, built) = match checked {
        Ok(Ok(parts)) => parts,
        Ok(Err(reasons)) => return Err(ReloadRefused(reasons)),
        Err(error) => return Err(ReloadRefused(vec![format!("checking failed: {error}")])),
    };
    let mut reasons = Vec::new();
    if config.data_dir != fixed.data_dir {
        reasons.push(format!(
            "`data_dir` changed from `{}` to `{}`: the state moves only with a restart",
            fixed.data_dir.display(),
            config.data_dir.display()
        ));
    }
    if config.api != fixed.api {
        reasons.push(
            "`[api]` changed: the API is set up only at start; restart howl to apply it".into(),
        );
    }
    reasons.extend(shared_state_changes(
        fixed.shared_state.as_ref(),
        config.shared_state.as_ref(),
    ));
    if !reasons.is_empty() {
        return Err(ReloadRefused(reasons));
    }
    let (reply, answer) = oneshot::channel();
    let request = ReloadRequest {
        config,
        graph,
        built,
        reply,
    };
    if topology.send(request).await.is_err() {
        return Err(ReloadRefused(vec!["howl is shutting down".into()]));
    }
    answer
        .await
        .unwrap_or_else(|_| Err(ReloadRefused(vec!["howl is shutting down".into()])))
}

type Checked = (crate::config::Config, crate::config::Graph, topology::Built);

/// Loads and builds the files as `howl validate` does: every error, each
/// with its position, or the parts to switch to.
fn check(paths: &[PathBuf]) -> Result<Checked, Vec<String>> {
    let loaded = crate::config::load_files(paths, &REGISTRY);
    for warning in loaded.diagnostics.iter().filter(|d| !d.is_error()) {
        tracing::warn!("{warning}");
    }
    let errors = |diagnostics: &[Diagnostic]| -> Vec<String> {
        diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()
    };
    // Every error at once, as `howl validate` reports them: those of
    // loading and those of building what loaded.
    let built = topology::build(&loaded.config);
    if !loaded.is_ok() || built.is_err() {
        let mut diagnostics = loaded.diagnostics.clone();
        if let Err(mut more) = built {
            diagnostics.append(&mut more);
        }
        super::validate::sort_by_position(&mut diagnostics);
        return Err(errors(&diagnostics));
    }
    let (Some(graph), Ok(built)) = (loaded.graph, built) else {
        return Err(vec!["the config's inputs could not be resolved".into()]);
    };
    Ok((loaded.config, graph, built))
}

/// Asks for a reload on every SIGHUP (systemd's `ExecReload`).
pub(super) async fn on_sighup(calls: mpsc::Sender<ReloadCall>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the API instead");
        return;
    };
    while hangup.recv().await.is_some() {
        let (reply, _answer) = oneshot::channel();
        let call = ReloadCall {
            trigger: "SIGHUP",
            reply,
        };
        if calls.send(call).await.is_err() {
            return;
        }
    }
}

/// What identifies a file's content cheaply: its modification time and
/// length (`None` while it cannot be read, e.g. mid-rename).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// `--watch-config`: asks for a reload once the config files changed and
/// then stayed unchanged for a moment.
pub(super) async fn watch(paths: Vec<PathBuf>, calls: mpsc::Sender<ReloadCall>) {
    let stamps = |paths: &[PathBuf]| paths.iter().map(|p| stamp(p)).collect::<Vec<_>>();
    let mut applied = stamps(&paths);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut now = stamps(&paths);
        if now == applied {
            continue;
        }
        // Changed: wait until it settles.
        loop {
            tokio::time::sleep(SETTLE).await;
            let later = stamps(&paths);
            if later == now {
                break;
            }
            now = later;
        }
        applied = now;
        let (reply, answer) = oneshot::channel();
        let call = ReloadCall {
            trigger: "watch",
            reply,
        };
        if calls.send(call).await.is_err() {
            return;
        }
        // One reload at a time: changes made meanwhile are seen next tick.
        let _ = answer.await;
    }
}
