//! `filter`: keep the events for which a VRL condition is true.
//!
//! Events for which the condition is false, or fails, are discarded and
//! counted (`intentional="true"` for false, an error for a failure), as in
//! Vector's `filter`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use vrl::value::Value;

use crate::components::transform::{SyncTransform, Transform, TransformConfig, TransformOutput};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::vrl_program::{VrlCondition, VrlOrigin, VrlRunner, compile_condition};

/// Options of the `filter` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A VRL expression returning a boolean; events for which it is `true`
    /// pass, the others are discarded.
    #[schemars(with = "VrlCondition")]
    #[schemars(extend("x-placeholder" = "contains(string!(.message), \"ERROR\")"))]
    condition: Spanned<String>,
}

impl TransformConfig for FilterConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![OutputSpec::default_output()]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let program = compile_condition(
            self.condition.get_ref(),
            VrlOrigin::Inline(self.condition.span()),
            &cx.file,
            "condition",
        )?;
        Ok(Transform::Sync(Box::new(Filter {
            condition: VrlRunner::new(Arc::new(program)),
        })))
    }
}

#[derive(Clone)]
struct Filter {
    condition: VrlRunner,
}

impl SyncTransform for Filter {
    fn transform(
        &mut self,
        mut event: Event,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
    ) {
        match self.condition.run(event.value_mut()) {
            Ok(Value::Boolean(true)) => out.push(event),
            Ok(_) => metrics.discarded_intentionally(1, "condition is false"),
            Err(error) => {
                metrics.error(
                    ErrorType::ConditionFailed,
                    Stage::Processing,
                    &format_args!("condition failed: {error}"),
                );
                metrics.discarded_on_error(1, &"the filter condition failed");
            }
        }
    }

    fn clone_box(&self) -> Box<dyn SyncTransform> {
        Box::new(self.clone())
    }
}
