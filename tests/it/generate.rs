//! `howl generate topology`: for every component type howl has, a topology
//! holding it validates as generated, lists every one of its options, and
//! the command line turns the issue's own example into a file `howl
//! validate` accepts.

use std::path::PathBuf;

use howl::cli::scaffold::scaffold;
use howl::components::ComponentType;
use howl::components::schema::OptionsSchema;
use howl::topology::REGISTRY;

use crate::common::{howl_in, validate, write};
use crate::docs::validate_text;

/// The expression that puts a type of `kind` between a source and a sink.
fn around(kind: &str, name: &str) -> String {
    match kind {
        "source" => format!("source:{name},console"),
        "transform" => format!("stdin,transform:{name},console"),
        _ => format!("stdin,sink:{name}"),
    }
}

fn types<C: ?Sized>(
    kind: &'static str,
    types: &[ComponentType<C>],
) -> Vec<(&'static str, &'static str, OptionsSchema)> {
    types.iter().map(|t| (kind, t.name, t.options())).collect()
}

#[test]
fn every_component_type_generates_a_valid_topology() {
    let mut all = types("source", REGISTRY.sources);
    all.extend(types("transform", REGISTRY.transforms));
    all.extend(types("sink", REGISTRY.sinks));
    assert!(
        all.len() >= 25,
        "the registry lists every type: {}",
        all.len()
    );
    let mut problems = Vec::new();
    for (kind, name, schema) in all {
        let expression = around(kind, name);
        let text = match scaffold(&expression, &REGISTRY) {
            Ok(text) => text,
            Err(error) => {
                problems.push(format!("{expression}: {error}"));
                continue;
            }
        };
        let table = format!("[{kind}s.{name}]\ntype = \"{name}\"\n");
        if !text.contains(&table) {
            problems.push(format!("{expression}: no `{}`", table.trim()));
        }
        let file = PathBuf::from(format!("<generate topology {expression}>"));
        for error in validate_text(file, &text) {
            problems.push(format!("{expression}: {error}\n{text}"));
        }
        // Every option is there, set or commented out, under its
        // description.
        for option in schema.scaffold() {
            let set = format!("\n{} = ", option.path);
            let listed = format!("\n# {} = ", option.path);
            if option.write && !text.contains(&set) {
                problems.push(format!("{expression}: required `{}` not set", option.path));
            } else if !option.write && !text.contains(&listed) {
                problems.push(format!("{expression}: `{}` not listed", option.path));
            }
            let first_words: String = option
                .description
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            if !text.contains(&format!("# {first_words}")) {
                problems.push(format!(
                    "{expression}: `{}` comes without its description",
                    option.path
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn generate_topology_from_the_command_line_validates() {
    let dir = tempfile::tempdir().unwrap();
    let expression = "stdin,pattern,llm_suppress,telegram";
    let (code, text, err) = howl_in(dir.path(), &["generate", "topology", expression], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
    for line in [
        "[sources.stdin]",
        "[transforms.pattern]\ntype = \"pattern\"\ninputs = [\"stdin\"]",
        "[transforms.llm_suppress]\ntype = \"llm_suppress\"\ninputs = [\"pattern\"]",
        "[sinks.telegram]\ntype = \"telegram\"\ninputs = [\"llm_suppress\"]",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("bot_token = ") && l.ends_with("# <- replace")),
        "{text}"
    );
    let file = write(dir.path(), "howl.toml", &text);
    let (code, out, err) = validate(dir.path(), &[&file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("warning"), "no warnings: {err}");
}

#[test]
fn generate_topology_refuses_an_unknown_type_and_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = howl_in(
        dir.path(),
        &["generate", "topology", "stdin,patern,console"],
        &[],
    );
    assert_eq!(code, 2, "a bad command line: {err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.contains("unknown component type `patern`"), "{err}");
    for known in [
        "sources: ",
        "stdin",
        "transforms: ",
        "pattern",
        "sinks: ",
        "telegram",
    ] {
        assert!(err.contains(known), "{known} missing from {err}");
    }
    let (code, _, err) = howl_in(dir.path(), &["generate", "topology", "stdin,pattern"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least one sink"), "{err}");
}
