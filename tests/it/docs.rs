//! Keeps the component pages in `sources/`, `transforms/` and `sinks/` in
//! step with the code, and checks that every example topology is valid.
//!
//! Each page's "## Options" table must list exactly the options the
//! component's config struct accepts (plus the options common to its kind),
//! and its "## Example" TOML must be a complete, valid topology.

use std::collections::BTreeSet;
use std::path::PathBuf;

use howl::components::schema::{OptionDoc, OptionsSchema, options_table};
use howl::config::{SinkEnvelope, SourceEnvelope, TransformEnvelope};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_blocks(page: &str) -> Vec<String> {
    page.split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next().map(str::to_string))
        .collect()
}

/// The byte range of the first table in the page's "## Options" section.
fn options_table_range(page: &str) -> Option<std::ops::Range<usize>> {
    let section = page.find("\n## Options\n")? + "\n## Options\n".len();
    let end_of_section = page[section..]
        .find("\n## ")
        .map_or(page.len(), |e| section + e + 1);
    let start = section + page[section..end_of_section].find("\n|")? + 1;
    let mut end = start;
    for line in page[start..end_of_section].split_inclusive('\n') {
        if !line.starts_with('|') {
            break;
        }
        end += line.len();
    }
    Some(start..end)
}

/// The Options table a page must show: `type`, the options common to the
/// kind, and the type's own, all from the schemas.
fn expected_table(name: &str, schema: &OptionsSchema, envelope: &OptionsSchema) -> String {
    let mut rows = vec![OptionDoc {
        path: "type".to_string(),
        kind: "string".to_string(),
        default: "required".to_string(),
        description: format!("`\"{name}\"`"),
    }];
    let common = envelope.docs();
    let (first, last): (Vec<OptionDoc>, Vec<OptionDoc>) = common
        .into_iter()
        .filter(|row| row.path != "type")
        .partition(|row| row.path == "inputs");
    rows.extend(first);
    rows.extend(schema.docs());
    rows.extend(last);
    options_table(&rows)
}

/// Checks (or, with `HOWL_UPDATE_DOCS=1`, rewrites) every page of a kind.
fn check_kind(dir: &str, types: Vec<(&'static str, OptionsSchema)>, envelope: OptionsSchema) {
    let update = std::env::var_os("HOWL_UPDATE_DOCS").is_some();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for (name, schema) in types {
        names.insert(format!("{name}.md"));
        let path = root().join(dir).join(format!("{name}.md"));
        let Ok(mut page) = std::fs::read_to_string(&path) else {
            problems.push(format!("{dir}/{name}.md is missing"));
            continue;
        };
        let expected = expected_table(name, &schema, &envelope);
        match options_table_range(&page) {
            None => problems.push(format!("{dir}/{name}.md has no table under \"## Options\"")),
            Some(range) if page[range.clone()] != expected => {
                if update {
                    page.replace_range(range, &expected);
                    std::fs::write(&path, &page).unwrap();
                } else {
                    problems.push(format!(
                        "{dir}/{name}.md: the Options table differs from the code; run \
                         `HOWL_UPDATE_DOCS=1 cargo nextest run -E 'test(/pages_match/)'` to \
                         regenerate it from the doc comments. Expected:\n{expected}"
                    ));
                }
            }
            Some(_) => {}
        }
        let examples = toml_blocks(&page);
        if examples.is_empty() {
            problems.push(format!("{dir}/{name}.md has no TOML example"));
        }
        for (index, example) in examples.iter().enumerate() {
            let file = PathBuf::from(format!("{dir}/{name}.md example {}", index + 1));
            problems.extend(validate_text(file, example));
        }
    }
    for entry in std::fs::read_dir(root().join(dir)).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if file != "README.md" && !names.contains(&file) {
            problems.push(format!(
                "{dir}/{file} documents a component that does not exist"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs out of step with code:\n{}",
        problems.join("\n")
    );
}

/// Loads and builds a topology; returns its errors (warnings are fine).
pub(crate) fn validate_text(file: PathBuf, text: &str) -> Vec<String> {
    let loaded = howl::config::load_texts(
        vec![(file, text.to_string())],
        |_| None,
        &howl::topology::REGISTRY,
    );
    let mut errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if let Err(build) = howl::topology::build(&loaded.config) {
        errors.extend(build.iter().map(ToString::to_string));
    }
    if let Some(graph) = &loaded.graph
        && let Err(tests) = howl::unit_test::prepare(&loaded.config, graph)
    {
        errors.extend(tests.iter().map(ToString::to_string));
    }
    errors
}

fn schemas<C: ?Sized>(
    types: &[howl::components::ComponentType<C>],
) -> Vec<(&'static str, OptionsSchema)> {
    types.iter().map(|t| (t.name, t.options())).collect()
}

#[test]
fn source_pages_match_the_code() {
    check_kind(
        "sources",
        schemas(howl::sources::TYPES),
        OptionsSchema::new(schemars::schema_for!(SourceEnvelope)),
    );
}

#[test]
fn transform_pages_match_the_code() {
    check_kind(
        "transforms",
        schemas(howl::transforms::TYPES),
        OptionsSchema::new(schemars::schema_for!(TransformEnvelope)),
    );
}

#[test]
fn sink_pages_match_the_code() {
    check_kind(
        "sinks",
        schemas(howl::sinks::TYPES),
        OptionsSchema::new(schemars::schema_for!(SinkEnvelope)),
    );
}

#[test]
fn every_example_topology_is_valid() {
    let dir = root().join("topologies");
    let mut checked = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        problems.extend(validate_text(path.clone(), &text));
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected at least demo, stdin-to-console and http-to-file"
    );
    assert!(
        problems.is_empty(),
        "invalid example topologies:\n{}",
        problems.join("\n")
    );
}

#[test]
fn readme_examples_are_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    // Examples of errors say so on their first line.
    let blocks: Vec<String> = toml_blocks(&readme)
        .into_iter()
        .filter(|block| {
            !block
                .lines()
                .next()
                .unwrap_or_default()
                .contains("invalid on purpose")
        })
        .collect();
    assert!(!blocks.is_empty(), "the README shows at least one topology");
    let problems: Vec<String> = blocks
        .iter()
        .enumerate()
        .flat_map(|(i, text)| {
            validate_text(PathBuf::from(format!("README.md example {}", i + 1)), text)
        })
        .collect();
    assert!(
        problems.is_empty(),
        "invalid README example:\n{}",
        problems.join("\n")
    );
}

#[test]
fn readme_documents_every_test_option() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Testing a topology")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a section \"Testing a topology\"");
    let schema = OptionsSchema::new(schemars::schema_for!(
        howl::config::unit_test::UnitTestConfig
    ));
    let missing: Vec<String> = schema
        .option_paths()
        .into_iter()
        .filter(|path| !section.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "options of [[tests]] missing from the README: {missing:?}"
    );
}

#[test]
fn readme_lists_every_error_type_and_no_other() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("`error_type` takes one of a fixed set of values")
        .nth(1)
        .expect("README documents the error_type values");
    let listed: BTreeSet<String> = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.split('`').nth(1))
        .filter(|name| *name != "error_type")
        .map(str::to_string)
        .collect();
    let code: BTreeSet<String> = howl::internal_events::ErrorType::ALL
        .iter()
        .map(|t| t.as_str().to_string())
        .collect();
    assert_eq!(
        listed, code,
        "README's error_type table differs from ErrorType"
    );
}

/// A string literal broken over lines without a `\` keeps the next line's
/// indentation: messages then show a run of spaces mid-sentence. Checks the
/// non-test code of `src/` (ordinary literals; raw strings are left alone).
#[test]
fn no_message_carries_indentation_from_a_missing_line_continuation() {
    fn scan(path: &std::path::Path, found: &mut Vec<String>) {
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let chars: Vec<char> = code.chars().collect();
        let (mut line, mut i) = (1, 0);
        let mut in_string = false;
        let mut spaces = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\n' {
                line += 1;
            }
            if in_string {
                match c {
                    '\\' => {
                        i += 2;
                        if chars.get(i - 1) == Some(&'\n') {
                            // A continuation: Rust drops the indentation.
                            line += 1;
                            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                                line += usize::from(chars[i] == '\n');
                                i += 1;
                            }
                        }
                        spaces = 0;
                        continue;
                    }
                    '"' => in_string = false,
                    '\n' if chars.get(i + 1) == Some(&' ') => {
                        found.push(format!(
                            "{}:{line}: a literal continues without `\\`",
                            path.display()
                        ));
                    }
                    ' ' => {
                        spaces += 1;
                        i += 1;
                        continue;
                    }
                    _ if spaces >= 6 => {
                        found.push(format!(
                            "{}:{line}: a run of spaces in a literal",
                            path.display()
                        ));
                    }
                    _ => {}
                }
                spaces = 0;
            } else if c == '/' && chars.get(i + 1) == Some(&'/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            } else if c == '\'' {
                // A char literal ('"', '\\'): skip it whole.
                if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                    continue;
                }
                if chars.get(i + 1) == Some(&'\\') && chars.get(i + 3) == Some(&'\'') {
                    i += 4;
                    continue;
                }
            } else if c == 'r' && matches!(chars.get(i + 1), Some('#') | Some('"')) {
                // A raw string: skip to its end.
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = chars[i + 2 + hashes..].iter().collect();
                let end = rest.find(&close).map_or(rest.len(), |e| e + close.len());
                line += rest[..end].matches('\n').count();
                i += 2 + hashes + rest[..end].chars().count();
                continue;
            } else if c == '"' {
                in_string = true;
                spaces = 0;
            }
            i += 1;
        }
    }
    fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                scan(&path, found);
            }
        }
    }
    let mut found = Vec::new();
    visit(&root().join("src"), &mut found);
    assert!(
        found.is_empty(),
        "indentation inside messages:\n{}",
        found.join("\n")
    );
}
