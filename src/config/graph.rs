//! The topology as a graph: resolving `inputs`, finding cycles, and spotting
//! outputs nobody reads.
//!
//! Inputs name *outputs*: a source's or transform's default output is its id
//! (`parse`), a named output is `id.name` (`router.errors`). Globs use `*`
//! (any run of characters) and `?` (one character); neither crosses a `.`, so
//! `app_*` matches the default outputs of `app_a` and `app_b` but not
//! `app_a.errors`, and `router.*` matches every named output of `router`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::InputRef;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::OutputSpec;
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::diagnostic::{did_you_mean, name_list};

/// A component as the graph sees it, before its options are known to be valid.
#[derive(Debug, Clone)]
pub struct NodeDecl {
    /// Kind, id and type.
    pub key: ComponentKey,
    /// The file that defines it.
    pub file: Arc<SourceFile>,
    /// Its id in that file.
    pub span: Range<usize>,
    /// What it consumes.
    pub inputs: Vec<InputRef>,
    /// What it offers; `None` when its options failed to parse (then any
    /// `id.name` reference to it is accepted, to avoid follow-on errors).
    pub outputs: Option<Vec<OutputSpec>>,
}

/// One output of one component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId {
    /// The producing component's id.
    pub component: String,
    /// `None` for the default output.
    pub output: Option<String>,
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.output {
            Some(output) => write!(f, "{}.{output}", self.component),
            None => f.write_str(&self.component),
        }
    }
}

/// `from` feeds `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The producing output.
    pub from: OutputId,
    /// The consuming component's id.
    pub to: String,
}

/// The longest component id: ids label metrics and log lines.
const MAX_ID_BYTES: usize = 128;

/// A validated topology graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every component, in file order, with its outputs.
    pub nodes: Vec<(ComponentKey, Vec<OutputSpec>)>,
    /// Every edge, deduplicated.
    pub edges: Vec<Edge>,
}

impl Graph {
    /// The ids of the components consuming `from`.
    pub fn consumers<'a>(&'a self, from: &'a OutputId) -> impl Iterator<Item = &'a str> + 'a {
        self.edges
            .iter()
            .filter(move |e| &e.from == from)
            .map(|e| e.to.as_str())
    }
}

/// Resolves inputs and checks the graph, reporting every problem.
pub fn validate(nodes: &[NodeDecl]) -> (Option<Graph>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut complete = true;

    for node in nodes {
        let id = node.key.id();
        let unprintable = id.chars().any(|c| c.is_control() || c.is_whitespace());
        if id.is_empty()
            || id.len() > MAX_ID_BYTES
            || unprintable
            || id.contains(['.', '*', '?', '/'])
        {
            diagnostics.push(
                Diagnostic::error(format!(
                    "invalid component id `{id}`: ids must be 1 to {MAX_ID_BYTES} bytes without spaces \
                     or control characters, and may not contain `.`, `*`, `?` (used in `id.output` \
                     references and globs) or `/` (used in state keys)"
                ))
                .at(&node.file, Some(node.span.clone()))
                .component(&node.key),
            );
        }
    }

    // Every output a component may consume.
    let mut available: Vec<OutputId> = Vec::new();
    let mut open: BTreeSet<&str> = BTreeSet::new();
    for node in nodes {
        if node.key.kind() == ComponentKind::Sink {
            continue;
        }
        match &node.outputs {
            Some(outputs) => available.extend(outputs.iter().map(|o| OutputId {
                component: node.key.id().to_string(),
                output: o.name.clone(),
            })),
            None => {
                open.insert(node.key.id());
                complete = false;
            }
        }
    }
    let sinks: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.key.kind() == ComponentKind::Sink)
        .map(|n| n.key.id())
        .collect();

    let mut edges = BTreeSet::new();
    for node in nodes
        .iter()
        .filter(|n| n.key.kind() != ComponentKind::Source)
    {
        if node.inputs.is_empty() {
            diagnostics.push(
                Diagnostic::error(format!(
                    "{} has no inputs: add `inputs = [\"...\"]` naming what it consumes",
                    node.key.kind().as_str()
                ))
                .at(&node.file, Some(node.span.clone()))
                .component(&node.key),
            );
        }
        for input in &node.inputs {
            match resolve_input(input, node, &available, &open, &sinks) {
                Ok(matches) => edges.extend(matches.into_iter().map(|from| Edge {
                    from,
                    to: node.key.id().to_string(),
                })),
                Err(message) => diagnostics.push(
                    Diagnostic::error(message)
                        .at(&node.file, Some(input.span.clone()))
                        .component(&node.key),
                ),
            }
        }
    }
    let edges: Vec<Edge> = edges.into_iter().collect();

    diagnostics.extend(find_cycles(nodes, &edges));

    for node in nodes {
        let consumed = |name: &Option<String>| {
            edges
                .iter()
                .any(|e| e.from.component == node.key.id() && e.from.output == *name)
        };
        // Taking a named output (`patterns.new`) is a choice of what to
        // read from the component: its default output going unread then is
        // no mistake to warn about.
        let chose_named = node
            .outputs
            .iter()
            .flatten()
            .any(|output| output.name.is_some() && consumed(&output.name));
        for output in node.outputs.iter().flatten() {
            let id = OutputId {
                component: node.key.id().to_string(),
                output: output.name.clone(),
            };
            if output.name.is_none() && chose_named {
                continue;
            }
            if consumed(&output.name) {
                continue;
            }
            let message = if output.warn_if_unconsumed {
                let what = match &output.name {
                    Some(name) => format!("output `{id}` (named output `{name}`)"),
                    None => format!("output `{id}`"),
                };
                format!("{what} is not consumed by any component; its events are dropped")
            } else if let Some(sibling) = output
                .complements
                .as_ref()
                .filter(|sibling| consumed(&Some(sibling.to_string())))
            {
                let component = node.key.id();
                format!(
                    "output `{id}` is not consumed, but `{component}.{sibling}` is: events \
                     held back from `{component}.{sibling}` are sent on `{id}` instead, so \
                     they reach no one; add `{id}` to the inputs that read \
                     `{component}.{sibling}`"
                )
            } else {
                continue;
            };
            diagnostics.push(
                Diagnostic::warning(message)
                    .at(&node.file, Some(node.span.clone()))
                    .component(&node.key),
            );
        }
    }

    let ok = complete && !diagnostics.iter().any(Diagnostic::is_error);
    let graph = ok.then(|| Graph {
        nodes: nodes
            .iter()
            .map(|n| (n.key.clone(), n.outputs.clone().unwrap_or_default()))
            .collect(),
        edges,
    });
    (graph, diagnostics)
}

fn resolve_input(
    input: &InputRef,
    node: &NodeDecl,
    available: &[OutputId],
    open: &BTreeSet<&str>,
    sinks: &BTreeSet<&str>,
) -> Result<Vec<OutputId>, String> {
    let text = input.text.as_str();
    let own = node.key.id();
    if text.contains(['*', '?']) {
        let matches: Vec<OutputId> = available
            .iter()
            .filter(|o| o.component != own && glob_match(text, &o.to_string()))
            .cloned()
            .collect();
        if matches.is_empty() && !open.iter().any(|id| glob_match(text, id)) {
            return Err(format!(
                "input glob `{text}` matches no component output; available: {}",
                name_list(available.iter().map(ToString::to_string))
            ));
        }
        return Ok(matches);
    }
    if let Some(found) = available.iter().find(|o| o.to_string() == text) {
        return Ok(vec![found.clone()]);
    }
    let (component, output) = match text.split_once('.') {
        Some((component, output)) => (component, Some(output)),
        None => (text, None),
    };
    if open.contains(component) {
        return Ok(Vec::new());
    }
    if sinks.contains(component) {
        return Err(format!(
            "input `{text}` is a sink; sinks have no outputs to consume"
        ));
    }
    if let Some(output) = output {
        let outputs: Vec<String> = available
            .iter()
            .filter(|o| o.component == component)
            .map(ToString::to_string)
            .collect();
        if !outputs.is_empty() {
            return Err(format!(
                "`{component}` has no output named `{output}`; its outputs: {}",
                name_list(&outputs)
            ));
        }
    }
    let names: Vec<String> = available
        .iter()
        .map(ToString::to_string)
        .chain(open.iter().map(|id| id.to_string()))
        .collect();
    let mut message = format!("unknown input `{text}`; available: {}", name_list(&names));
    if let Some(close) = did_you_mean(text, names.iter().map(String::as_str)) {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    Err(message)
}

/// Matches `*` (any run) and `?` (one character); neither matches a `.`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some('?') if name[n] != '.' => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                // Let the last `*` swallow one more character, unless it is a dot.
                Some((star, start)) if name[start] != '.' => {
                    backtrack = Some((star, start + 1));
                    p = star + 1;
                    n = start + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Reports each cycle once, as `a -> b -> a`.
fn find_cycles(nodes: &[NodeDecl], edges: &[Edge]) -> Vec<Diagnostic> {
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in edges {
        next.entry(edge.from.component.as_str())
            .or_default()
            .push(edge.to.as_str());
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = nodes.iter().map(|n| (n.key.id(), Mark::New)).collect();
    let mut diagnostics = Vec::new();

    for start in nodes.iter().map(|n| n.key.id()) {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        // Iterative DFS keeping the current path, to print the chain.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Active);
        while let Some((current, index)) = path.last().copied() {
            let children = next.get(current).map(Vec::as_slice).unwrap_or_default();
            if let Some(child) = children.get(index).copied() {
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                match marks.get(child).copied().unwrap_or(Mark::Done) {
                    Mark::New => {
                        marks.insert(child, Mark::Active);
                        path.push((child, 0));
                    }
                    Mark::Active => {
                        let from = path.iter().position(|(id, _)| *id == child).unwrap_or(0);
                        let mut chain: Vec<&str> = path[from..].iter().map(|(id, _)| *id).collect();
                        chain.push(child);
                        if let Some(node) = nodes.iter().find(|n| n.key.id() == child) {
                            diagnostics.push(
                                Diagnostic::error(format!(
                                    "cycle in the topology: {}",
                                    chain.join(" -> ")
                                ))
                                .at(&node.file, Some(node.span.clone()))
                                .component(&node.key),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                marks.insert(current, Mark::Done);
                path.pop();
            }
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_stops_at_dots() {
        assert!(glob_match("app_*", "app_a"));
        assert!(!glob_match("app_*", "app_a.errors"));
        assert!(glob_match("router.*", "router.errors"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "a.c"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("x*y", "xay.b"));
    }
}
