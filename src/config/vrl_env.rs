//! No `${...}` inside VRL.
//!
//! Interpolation escapes a value for the TOML string it stands in, but a
//! VRL program has strings of its own: in `source = '''.team =
//! "${TEAM}"'''`, a `TEAM` of `ops"; .leak = get_env_var!("SECRET"); .x =
//! "` is valid TOML and rewrites the program. No escaping can be right for
//! every place in a program (a VRL string, a regex, a path, code), so a
//! reference is refused anywhere in an option that holds VRL, and the
//! error says what to write instead: the program reads the variable itself
//! with `get_env_var!("NAME")`, as data that can never become code.
//!
//! Which options hold VRL is told by the options' schema (`format` `vrl`
//! or `vrl-condition`, set by `vrl_program::VrlSource` and `VrlCondition`);
//! where each reference stands, by the interpolation
//! (`SourceFile::references_in`).

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::components::schema::OptionsSchema;
use crate::diagnostic::{Diagnostic, SourceFile};

/// One error per `${...}` reference inside an option of `table` whose
/// schema says it holds VRL, at the reference's position.
pub(super) fn references_in_vrl(
    file: &SourceFile,
    schema: &OptionsSchema,
    table: &DeTable<'_>,
) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    check_table(file, schema, &mut Vec::new(), table, &mut found);
    found
}

fn check_table(
    file: &SourceFile,
    schema: &OptionsSchema,
    path: &mut Vec<String>,
    table: &DeTable<'_>,
    found: &mut Vec<Diagnostic>,
) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        check_value(file, schema, path, value, found);
        path.pop();
    }
}

fn check_value(
    file: &SourceFile,
    schema: &OptionsSchema,
    path: &mut Vec<String>,
    value: &Spanned<DeValue<'_>>,
    found: &mut Vec<Diagnostic>,
) {
    // The schema knows list items as `[]`, whatever their index.
    let segments: Vec<&str> = path
        .iter()
        .map(|segment| {
            if segment.starts_with('[') {
                "[]"
            } else {
                segment
            }
        })
        .collect();
    if let Some(format @ ("vrl" | "vrl-condition")) = schema.format_at(&segments) {
        let option = display_path(path);
        for reference in file.references_in(&value.span()) {
            let written = file
                .text_on_disk()
                .get(reference.original_at..reference.original_at + reference.original_len)
                .unwrap_or("${...}");
            found.push(
                Diagnostic::error(message(&option, format, written))
                    .at_on_disk(file, reference.original_at),
            );
        }
        return;
    }
    match value.get_ref() {
        DeValue::Table(table) => check_table(file, schema, path, table, found),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(format!("[{index}]"));
                check_value(file, schema, path, item, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn message(option: &str, format: &str, written: &str) -> String {
    let what = if format == "vrl" {
        "a VRL program"
    } else {
        "a VRL condition"
    };
    let name = written
        .trim_start_matches("${")
        .trim_end_matches('}')
        .split(":-")
        .next()
        .unwrap_or_default();
    format!(
        "`{written}` in `{option}`, which holds {what}: environment values are not put into \
         VRL code (a value could rewrite the program); read the variable inside the program \
         with `get_env_var!(\"{name}\")` instead (or write `$${{` for a literal `${{`)"
    )
}

/// `rules[0].vrl` for the path `rules`, `[0]`, `vrl`.
fn display_path(path: &[String]) -> String {
    let mut shown = String::new();
    for segment in path {
        if !segment.starts_with('[') && !shown.is_empty() {
            shown.push('.');
        }
        shown.push_str(segment);
    }
    shown
}
