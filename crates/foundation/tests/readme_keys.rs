//! The README's variable table and the key table (`config::KEYS`) agree:
//! every variable a key declares is documented, and every variable the
//! README documents exists.

use std::collections::BTreeSet;

use foundation::config::KEYS;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).expect("README.md at the workspace root")
}

/// `FOUNDATION_*` (and the standard `OTEL_*`) names in the README's
/// configuration table rows.
fn documented(readme: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ours = |s: &str| s.starts_with("FOUNDATION_") || s.starts_with("OTEL_");
    for line in readme
        .lines()
        .filter(|l| l.starts_with("| `FOUNDATION_") || l.starts_with("| `OTEL_"))
    {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        for name in first_cell.split('`') {
            if ours(name) {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_key_variable_is_in_the_readme_table_and_every_documented_one_exists() {
    let readme = readme();
    let documented = documented(&readme);
    assert!(
        documented.len() > 20,
        "the table was not found: {documented:?}"
    );
    let declared: BTreeSet<String> = KEYS
        .iter()
        .filter_map(|k| k.env)
        .map(str::to_owned)
        .chain(["FOUNDATION_CONFIG".to_owned()])
        .collect();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "variables of config::KEYS missing from the README table: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "README documents variables no key declares: {unknown:?}"
    );
}
