//! What a reload changes: the plan that compares the running topology with
//! a new config, and the messages that ask for a reload and answer it.
//!
//! A component is *rebuilt* when its type, options or (for a sink) its
//! buffer or acknowledgements changed; a change to its `inputs` alone only
//! rewires the fanouts that feed it, so it keeps running with its state.
//! Everything else keeps running untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tokio::sync::oneshot;

use crate::buffer::{BufferConfig, BufferKind};
use crate::component_key::ComponentKey;
use crate::config::Config;

/// What the running topology knows of one of its components, to compare.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub key: ComponentKey,
    pub fingerprint: String,
    /// Sinks: the buffer and whether acknowledgements are on.
    pub sink: Option<(BufferConfig, bool)>,
}

/// The components of a config, by id.
pub(super) fn nodes_of(config: &Config) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    for def in &config.sources {
        nodes.insert(
            def.key.id().to_string(),
            Node {
                key: def.key.clone(),
                fingerprint: def.fingerprint.clone(),
                sink: None,
            },
        );
    }
    for def in &config.transforms {
        nodes.insert(
            def.key.id().to_string(),
            Node {
                key: def.key.clone(),
                fingerprint: def.fingerprint.clone(),
                sink: None,
            },
        );
    }
    for sink in &config.sinks {
        let def = &sink.component;
        nodes.insert(
            def.key.id().to_string(),
            Node {
                key: def.key.clone(),
                fingerprint: def.fingerprint.clone(),
                sink: Some((sink.buffer.clone(), sink.acknowledgements)),
            },
        );
    }
    nodes
}

/// How a rebuilt sink's buffer changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BufferChange {
    /// The same buffer is handed to the new instance.
    Keep,
    /// A new buffer takes the upstream's events at once; the old instance
    /// delivers what its buffer holds, then stops.
    Switch,
    /// The change needs a restart (a disk buffer cannot be reopened while
    /// its old instance may still hold it): the old buffer is kept.
    AtRestart,
}

/// What a reload does, component by component (ids, sorted).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub added: BTreeSet<String>,
    pub removed: BTreeSet<String>,
    pub rebuilt: BTreeMap<String, BufferChange>,
}

impl Plan {
    /// Compares the running components with a new config's.
    pub fn new(old: &BTreeMap<String, Node>, new: &BTreeMap<String, Node>) -> Self {
        let mut plan = Self::default();
        for (id, node) in new {
            match old.get(id) {
                None => {
                    plan.added.insert(id.clone());
                }
                Some(before) if before.key.kind() != node.key.kind() => {
                    // The id now names another kind of component.
                    plan.removed.insert(id.clone());
                    plan.added.insert(id.clone());
                }
                Some(before) if before == node => {}
                Some(before) => {
                    let change = match (&before.sink, &node.sink) {
                        (Some((old_buffer, _)), Some((new_buffer, _)))
                            if old_buffer != new_buffer =>
                        {
                            if old_buffer.kind == BufferKind::Disk {
                                BufferChange::AtRestart
                            } else {
                                BufferChange::Switch
                            }
                        }
                        _ => BufferChange::Keep,
                    };
                    plan.rebuilt.insert(id.clone(), change);
                }
            }
        }
        for id in old.keys() {
            if !new.contains_key(id) {
                plan.removed.insert(id.clone());
            }
        }
        plan
    }

    /// Whether the component `id` stops in this reload.
    pub fn stops(&self, id: &str) -> bool {
        self.removed.contains(id) || self.rebuilt.contains_key(id)
    }
}

/// What a reload did.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    /// Components started.
    pub added: Vec<String>,
    /// Components stopped for good.
    pub removed: Vec<String>,
    /// Components stopped and started again with their new options.
    pub rebuilt: Vec<String>,
    /// Components that kept running, with new consumers or inputs.
    pub rewired: Vec<String>,
    /// What the reload could not apply (it applied the rest).
    pub warnings: Vec<String>,
}

impl ReloadReport {
    /// True when the reload changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.rebuilt.is_empty()
            && self.rewired.is_empty()
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing changed");
        }
        let mut parts = Vec::new();
        for (what, ids) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("rebuilt", &self.rebuilt),
            ("rewired", &self.rewired),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{what} {}", ids.join(", ")));
            }
        }
        f.write_str(&parts.join("; "))
    }
}

/// Why a reload was not applied at all: every reason, one per entry.
#[derive(Debug, Clone)]
pub struct ReloadRefused(pub Vec<String>);

impl fmt::Display for ReloadRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// The answer to a reload.
pub type ReloadOutcome = Result<ReloadReport, ReloadRefused>;

/// A request to reload the config files, from a signal, the API or the
/// file watcher, with where to send the answer.
pub struct ReloadCall {
    /// What asked (`SIGHUP`, `api`, `watch`), for the log.
    pub trigger: &'static str,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ReloadOutcome>,
}

/// A validated config for the running topology to switch to.
pub struct ReloadRequest {
    /// The new config (already loaded, validated and built once).
    pub config: Config,
    /// Its graph.
    pub graph: crate::config::Graph,
    /// Its components, built (the topology starts those it adds or
    /// rebuilds, and drops the rest).
    pub built: super::Built,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ReloadOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component_key::ComponentKind;

    fn node(kind: ComponentKind, id: &str, fingerprint: &str) -> (String, Node) {
        (
            id.to_string(),
            Node {
                key: ComponentKey::new(kind, id, "t"),
                fingerprint: fingerprint.to_string(),
                sink: (kind == ComponentKind::Sink).then(|| (BufferConfig::default(), false)),
            },
        )
    }

    #[test]
    fn a_plan_names_what_was_added_removed_and_rebuilt() {
        let old: BTreeMap<_, _> = [
            node(ComponentKind::Source, "in", "a"),
            node(ComponentKind::Transform, "parse", "b"),
            node(ComponentKind::Sink, "out", "c"),
            node(ComponentKind::Sink, "gone", "d"),
        ]
        .into();
        let new: BTreeMap<_, _> = [
            node(ComponentKind::Source, "in", "a"),
            node(ComponentKind::Transform, "parse", "b2"),
            node(ComponentKind::Sink, "out", "c"),
            node(ComponentKind::Sink, "more", "e"),
        ]
        .into();
        let plan = Plan::new(&old, &new);
        assert_eq!(plan.added, ["more".to_string()].into());
        assert_eq!(plan.removed, ["gone".to_string()].into());
        assert_eq!(
            plan.rebuilt,
            [("parse".to_string(), BufferChange::Keep)].into()
        );
        assert!(plan.stops("parse") && plan.stops("gone") && !plan.stops("out"));
    }

    #[test]
    fn a_buffer_change_switches_memory_buffers_and_waits_for_a_restart_on_disk() {
        let memory = node(ComponentKind::Sink, "out", "c");
        let mut bigger = memory.clone();
        bigger.1.sink = Some((
            BufferConfig {
                max_events: std::num::NonZeroUsize::new(9),
                ..BufferConfig::default()
            },
            false,
        ));
        let plan = Plan::new(&[memory.clone()].into(), &[bigger.clone()].into());
        assert_eq!(plan.rebuilt["out"], BufferChange::Switch);

        let mut disk = memory.clone();
        disk.1.sink = Some((
            BufferConfig {
                kind: BufferKind::Disk,
                ..BufferConfig::default()
            },
            false,
        ));
        let plan = Plan::new(&[disk.clone()].into(), &[memory].into());
        assert_eq!(plan.rebuilt["out"], BufferChange::AtRestart);
    }

    #[test]
    fn an_id_that_changes_kind_is_removed_and_added() {
        let plan = Plan::new(
            &[node(ComponentKind::Transform, "x", "a")].into(),
            &[node(ComponentKind::Sink, "x", "a")].into(),
        );
        assert!(plan.removed.contains("x") && plan.added.contains("x"));
        assert!(plan.rebuilt.is_empty());
    }
}
