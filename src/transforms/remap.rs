//! `remap`: edit events with a VRL program, as Vector's `remap` does.
//!
//! On a run-time failure the event passes on *unchanged* (the program's
//! partial edits are discarded), unless `drop_on_error` is set; `abort`
//! drops the event unless `drop_on_abort = false`. With `reroute_dropped`,
//! dropped events are not lost but sent, unchanged, to the `ID.dropped`
//! output with a `dropped` field saying why, so a topology can keep them.

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use vrl::compiler::runtime::Terminate;
use vrl::value::{ObjectMap, Value};

use crate::component_key::ComponentKey;
use crate::components::transform::{SyncTransform, Transform, TransformConfig, TransformOutput};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::vrl_program::{VrlOrigin, VrlRunner, VrlSource, compile, read_program_file};

/// Options of the `remap` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemapConfig {
    /// The VRL program, inline. Give exactly one of `source` and `file`.
    #[schemars(with = "Option<VrlSource>")]
    #[schemars(extend("x-placeholder" = ".processed_at = now()"))]
    source: Option<Spanned<String>>,
    /// A file holding the VRL program; a relative path is resolved from the
    /// directory of the config file that names it.
    file: Option<PathBuf>,
    /// Drop an event when the program fails at run time, instead of passing
    /// it on unchanged.
    #[serde(default)]
    drop_on_error: bool,
    /// Drop an event when the program calls `abort`.
    #[serde(default = "default_true")]
    drop_on_abort: bool,
    /// Send dropped events (unchanged, with a `dropped` field saying why) to
    /// the `ID.dropped` output instead of discarding them.
    #[serde(default)]
    reroute_dropped: bool,
}

fn default_true() -> bool {
    true
}

/// The name of the output dropped events go to.
const DROPPED: &str = "dropped";

impl TransformConfig for RemapConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        let mut outputs = vec![OutputSpec::default_output()];
        if self.reroute_dropped {
            outputs.push(OutputSpec::named(DROPPED, true));
        }
        outputs
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let program = match (&self.source, &self.file) {
            (Some(source), None) => compile(
                source.get_ref(),
                VrlOrigin::Inline(source.span()),
                &cx.file,
                "source",
            )?,
            (None, Some(file)) => {
                let path = cx.resolve_path(file);
                let text = read_program_file(&path, "file")?;
                compile(&text, VrlOrigin::File(&path), &cx.file, "file")?
            }
            (Some(source), Some(_)) => {
                return Err(
                    BuildError::new("give either `source` or `file`, not both").at(source.span())
                );
            }
            (None, None) => {
                return Err(BuildError::new(
                    "missing the VRL program: set `source` (inline) or `file`",
                )
                .for_option("source"));
            }
        };
        let runner = VrlRunner::new(Arc::new(program));
        // A failing program must hand back the event as it was, unless the
        // event is simply dropped on every kind of failure.
        let keep_original = runner.is_fallible()
            && (self.reroute_dropped || !self.drop_on_error || !self.drop_on_abort);
        Ok(Transform::Sync(Box::new(Remap {
            runner,
            keep_original,
            drop_on_error: self.drop_on_error,
            drop_on_abort: self.drop_on_abort,
            reroute_dropped: self.reroute_dropped,
            key: cx.key.clone(),
        })))
    }
}

#[derive(Clone)]
struct Remap {
    runner: VrlRunner,
    /// Whether a failure needs the event as it was before the program ran.
    keep_original: bool,
    drop_on_error: bool,
    drop_on_abort: bool,
    reroute_dropped: bool,
    key: ComponentKey,
}

impl SyncTransform for Remap {
    fn transform(
        &mut self,
        mut event: Event,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
    ) {
        let (result, original) = if self.keep_original {
            self.runner.run_keeping_original(event.value_mut())
        } else {
            (self.runner.run(event.value_mut()), None)
        };
        let failure = match result {
            Ok(_) => {
                if !matches!(event.value(), Value::Object(_)) {
                    // `. = "text"`: keep the event an object.
                    let value = std::mem::replace(event.value_mut(), Value::Null);
                    event = Event::from_value(value)
                        .with_finalizers(std::mem::take(event.metadata_mut().finalizers_mut()));
                }
                out.push(event);
                return;
            }
            Err(failure) => failure,
        };
        let (reason, drop) = match &failure {
            Terminate::Abort(_) => ("abort", self.drop_on_abort),
            Terminate::Error(_) | Terminate::Interrupted => ("error", self.drop_on_error),
        };
        if reason == "error" {
            metrics.error(
                ErrorType::ScriptFailed,
                Stage::Processing,
                &format_args!("VRL failed: {failure}"),
            );
        }
        let original = match original {
            Some(value) => {
                *event.value_mut() = value;
                event
            }
            None => event,
        };
        if !drop {
            out.push(original);
        } else if self.reroute_dropped {
            let mut dropped = original;
            let mut info = ObjectMap::new();
            info.insert("reason".into(), Value::from(reason));
            info.insert("message".into(), Value::from(failure.to_string()));
            info.insert("component_id".into(), Value::from(self.key.id()));
            info.insert("component_type".into(), Value::from(self.key.type_name()));
            dropped.insert_field(DROPPED, Value::Object(info));
            out.push_named(0, dropped);
        } else {
            metrics.discarded_intentionally(1, reason);
        }
    }

    fn clone_box(&self) -> Box<dyn SyncTransform> {
        Box::new(self.clone())
    }
}
