//! `route`: split events into named outputs by VRL conditions.
//!
//! Each `route.NAME = "<condition>"` becomes the output `ID.NAME`. An event
//! goes to every route whose condition is true (a copy each), and to
//! `ID._unmatched` when none is, so nothing disappears silently.

use std::collections::BTreeMap;
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

/// The output for events no route matched.
const UNMATCHED: &str = "_unmatched";

/// Options of the `route` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Routes: `route.NAME = "<VRL condition>"`. Events for which the
    /// condition is true go to the output `ID.NAME` (a copy to each route
    /// that matches). Names may not contain `.`, `*` or `?`, and
    /// `_unmatched` is reserved.
    #[schemars(with = "BTreeMap<String, VrlCondition>")]
    #[schemars(extend("x-placeholder" = { "errors": "contains(string!(.message), \"ERROR\")" }))]
    route: BTreeMap<String, Spanned<String>>,
}

impl TransformConfig for RouteConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        let mut outputs: Vec<OutputSpec> = self
            .route
            .keys()
            .map(|name| OutputSpec::named(name.clone(), true))
            .collect();
        outputs.push(OutputSpec::named(UNMATCHED, false));
        outputs
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        if self.route.is_empty() {
            return Err(BuildError::new(
                "`route` has no routes: add e.g. `route.errors = '.level == \"error\"'`",
            )
            .for_option("route"));
        }
        let mut conditions = Vec::new();
        for (name, condition) in &self.route {
            if name.is_empty() || name.contains(['.', '*', '?']) || name == UNMATCHED {
                return Err(BuildError::new(format!(
                    "invalid route name `{name}`: names may not be empty, contain `.`, `*` or `?`, \
                     or be `{UNMATCHED}` (reserved for events no route matched)"
                ))
                .at(condition.span()));
            }
            let program = compile_condition(
                condition.get_ref(),
                VrlOrigin::Inline(condition.span()),
                &cx.file,
                &format!("route.{name}"),
            )?;
            conditions.push(VrlRunner::new(Arc::new(program)));
        }
        Ok(Transform::Sync(Box::new(Route { conditions })))
    }
}

#[derive(Clone)]
struct Route {
    /// In output order; `_unmatched` is the output after the last one.
    conditions: Vec<VrlRunner>,
}

impl SyncTransform for Route {
    fn transform(
        &mut self,
        mut event: Event,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
    ) {
        let mut matched: Vec<usize> = Vec::new();
        for (index, condition) in self.conditions.iter_mut().enumerate() {
            match condition.run(event.value_mut()) {
                Ok(Value::Boolean(true)) => matched.push(index),
                Ok(_) => {}
                Err(error) => metrics.error(
                    ErrorType::ConditionFailed,
                    Stage::Processing,
                    &format_args!("route condition failed (treated as false): {error}"),
                ),
            }
        }
        let Some((&last, rest)) = matched.split_last() else {
            out.push_named(self.conditions.len(), event);
            return;
        };
        for &index in rest {
            out.push_named(index, event.clone());
        }
        out.push_named(last, event);
    }

    fn clone_box(&self) -> Box<dyn SyncTransform> {
        Box::new(self.clone())
    }
}
