//! Keeps the crate the layered house `ARCHITECTURE.md` draws.
//!
//! The layer table of `ARCHITECTURE.md` is the source of truth: this test
//! reads it, reads every `crate::` path in `src/` (comments and strings
//! skipped), and fails when a top-level module uses one of a higher layer,
//! when the top-level modules form an import cycle (even within a layer),
//! or when the table, the picture and `src/` disagree on which modules
//! exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Layer number of each module, from the table under "## The layers".
fn layer_table(page: &str) -> BTreeMap<String, usize> {
    let section = page
        .split("\n## ")
        .find(|s| s.starts_with("The layers"))
        .expect("ARCHITECTURE.md has a section \"The layers\"");
    let mut layers = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(Ok(layer)) = cells.get(1).map(|c| c.parse::<usize>()) else {
            continue; // the header row
        };
        for module in cells[3].split('`').skip(1).step_by(2) {
            let previous = layers.insert(module.to_string(), layer);
            assert!(
                previous.is_none(),
                "`{module}` is listed in two layers of ARCHITECTURE.md"
            );
        }
    }
    layers
}

/// The text of the mermaid picture.
fn picture(page: &str) -> &str {
    page.split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md draws the layers in a mermaid block")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a Rust file with comments, strings and char literals
/// blanked out (newlines kept, so offsets still give line numbers).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let blank = |out: &mut Vec<u8>, b: u8| out.push(if b == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            // r"...", r#"..."#, br"...": ends at a quote and as many hashes.
            let open = rest.iter().position(|&b| b == b'"').unwrap() + 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let end = bytes[i + open..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(bytes.len(), |p| i + open + p + close.len());
            while i < end {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if bytes[i] == b'"' {
            blank(&mut out, bytes[i]);
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
                if i < bytes.len() {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
            if i < bytes.len() {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if bytes[i] == b'\'' && rest.len() >= 3 && (rest[1] == b'\\' || rest[2] == b'\'') {
            // A char literal ('x', '\n', '\''), not a lifetime.
            let end = rest[2..]
                .iter()
                .position(|&b| b == b'\'')
                .map_or(bytes.len(), |p| i + 2 + p + 1);
            while i < end {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Some(hashes)` when `rest` starts a raw string (`r"`, `r#"`, `br"`).
fn raw_string_start(rest: &[u8]) -> Option<usize> {
    let after_prefix = rest
        .strip_prefix(b"br")
        .or_else(|| rest.strip_prefix(b"r"))?;
    let hashes = after_prefix.iter().take_while(|&&b| b == b'#').count();
    (after_prefix.get(hashes) == Some(&b'"')).then_some(hashes)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The top-level modules a file's code names through `crate::` paths, with
/// the byte offset of each mention: `crate::a::x`, `crate::{a, b::y}`.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `$crate::` (in a macro) is ours too; `other_crate::` is not.
        if start > 0 && is_ident(bytes[start - 1]) {
            continue;
        }
        if bytes.get(from) == Some(&b'{') {
            // A group: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            let mut i = from;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => item_start = true,
                    b if item_start && is_ident(b) => {
                        let end = (i..bytes.len())
                            .find(|&j| !is_ident(bytes[j]))
                            .unwrap_or(bytes.len());
                        found.push((code[i..end].to_string(), i));
                        item_start = false;
                        i = end;
                        continue;
                    }
                    b if !b.is_ascii_whitespace() => item_start = false,
                    _ => {}
                }
                i += 1;
            }
        } else {
            let end = (from..bytes.len())
                .find(|&j| !is_ident(bytes[j]))
                .unwrap_or(bytes.len());
            found.push((code[from..end].to_string(), start));
        }
    }
    found
}

/// An import of `to` by `from`, with where it is written.
struct Use {
    to: String,
    at: String,
}

fn module_graph(src: &Path) -> (BTreeSet<String>, BTreeMap<String, Vec<Use>>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules = BTreeSet::new();
    let mut uses: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        modules.insert(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        let code = code_only(&text);
        for (to, offset) in crate_paths(&code) {
            if to == module {
                continue;
            }
            let line = code[..offset].matches('\n').count() + 1;
            uses.entry(module.clone()).or_default().push(Use {
                to,
                at: format!("src/{}:{line}", relative.display()),
            });
        }
    }
    (modules, uses)
}

/// One cycle among `modules` (as a path `a -> b -> a`), if there is any.
fn find_cycle(
    modules: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|m| m == next).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for module in modules {
        if marks.get(module).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(cycle) = visit(module, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn modules_use_only_their_own_and_lower_layers() {
    let page = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let layers = layer_table(&page);
    let (modules, uses) = module_graph(&root().join("src"));
    let mut problems = Vec::new();

    for module in &modules {
        if !layers.contains_key(module) {
            problems.push(format!(
                "src/{module} is in no layer: add it to the table in ARCHITECTURE.md"
            ));
        }
    }
    let drawn = picture(&page);
    for module in layers.keys() {
        if !modules.contains(module) {
            problems.push(format!(
                "ARCHITECTURE.md lists `{module}`, which is not a module of src/"
            ));
        }
        if !drawn
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| w == module)
        {
            problems.push(format!(
                "the picture in ARCHITECTURE.md does not show `{module}`"
            ));
        }
    }
    for (from, list) in &uses {
        for found in list {
            let (Some(&own), Some(&used)) = (layers.get(from), layers.get(&found.to)) else {
                continue;
            };
            if used > own {
                problems.push(format!(
                    "{}: `{from}` (layer {own}) uses `{}` (layer {used}), a layer above it",
                    found.at, found.to
                ));
            }
        }
    }

    let edges: BTreeMap<String, BTreeSet<String>> = uses
        .iter()
        .map(|(from, list)| {
            let targets = list
                .iter()
                .map(|u| u.to.clone())
                .filter(|to| modules.contains(to))
                .collect();
            (from.clone(), targets)
        })
        .collect();
    if let Some(cycle) = find_cycle(&modules, &edges) {
        let mut detail = Vec::new();
        for pair in cycle.windows(2) {
            let first = uses[&pair[0]].iter().find(|u| u.to == pair[1]).unwrap();
            detail.push(format!("    {} -> {} at {}", pair[0], pair[1], first.at));
        }
        problems.push(format!(
            "import cycle among top-level modules: {}\n{}",
            cycle.join(" -> "),
            detail.join("\n")
        ));
    }
    assert!(
        problems.is_empty(),
        "the crate is not the layered house ARCHITECTURE.md draws:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_imports_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{event::Event, state::{A, B}};\n\
         // crate::cli in a comment\n\
         let s = \"crate::api in a string\"; let r = r#\"crate::topology\"#;\n\
         let c = '\"'; crate::http::get(); $crate::components::x;\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(m, _)| m).collect();
    assert_eq!(names, ["event", "state", "http", "components"]);
}

#[test]
fn the_checker_finds_cycles_and_names_them() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(find_cycle(&modules, &edges), None);
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&modules, &edges),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}
