//! `howl graph`: the topology as Graphviz dot or Mermaid.

use std::fmt::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{ConfigArgs, EXIT_CONFIG, load, report};
use crate::component_key::ComponentKind;
use crate::config::Graph;

/// Arguments of `howl graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
}

/// Graph output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// Graphviz (`howl graph | dot -Tsvg > topology.svg`).
    Dot,
    /// Mermaid (renders in GitHub and GitLab markdown).
    Mermaid,
}

/// Prints the graph of a valid config.
pub fn graph(args: GraphArgs) -> ExitCode {
    let loaded = load(&args.config);
    let ok = report(&loaded.diagnostics);
    match (ok, &loaded.graph) {
        (true, Some(graph)) => {
            let text = match args.format {
                GraphFormat::Dot => dot(graph),
                GraphFormat::Mermaid => mermaid(graph),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(EXIT_CONFIG),
    }
}

fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph howl {\n  rankdir=LR;\n");
    for (key, _) in &graph.nodes {
        let shape = match key.kind() {
            ComponentKind::Source => "trapezium",
            ComponentKind::Transform => "box",
            ComponentKind::Sink => "invtrapezium",
        };
        let _ = writeln!(
            out,
            "  \"{}\" [shape={shape} label=\"{}\\n({})\"];",
            escape(key.id()),
            escape(key.id()),
            escape(key.type_name())
        );
    }
    for edge in &graph.edges {
        let label = edge
            .from
            .output
            .as_ref()
            .map(|o| format!(" [label=\"{}\"]", escape(o)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\"{label};",
            escape(&edge.from.component),
            escape(&edge.to)
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid(graph: &Graph) -> String {
    // Mermaid ids must be plain; component ids may hold `-` and more.
    let node_id = |id: &str| {
        graph
            .nodes
            .iter()
            .position(|(k, _)| k.id() == id)
            .map_or_else(|| "n_unknown".to_string(), |i| format!("n{i}"))
    };
    let mut out = String::from("flowchart LR\n");
    for (index, (key, _)) in graph.nodes.iter().enumerate() {
        let label = format!("{} ({})", key.id(), key.type_name()).replace('"', "#quot;");
        let (open, close) = match key.kind() {
            ComponentKind::Source => ("[/", "/]"),
            ComponentKind::Transform => ("[", "]"),
            ComponentKind::Sink => ("[\\", "\\]"),
        };
        let _ = writeln!(out, "  n{index}{open}\"{label}\"{close}");
    }
    for edge in &graph.edges {
        let from = node_id(&edge.from.component);
        let to = node_id(&edge.to);
        match &edge.from.output {
            Some(output) => {
                let _ = writeln!(
                    out,
                    "  {from} -- \"{}\" --> {to}",
                    output.replace('"', "#quot;")
                );
            }
            None => {
                let _ = writeln!(out, "  {from} --> {to}");
            }
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
