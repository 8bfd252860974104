//! README's configuration table names every key the config file accepts:
//! the keys are taken from the config parser itself (its "expected one of"
//! list for an unknown key at each level), so a new field without a row
//! fails here.

use std::collections::BTreeSet;
use std::path::Path;

/// Puts a JSON object where one level of the config expects one.
type Wrap = fn(&str) -> String;

/// The keys the parser accepts in the object that `wrap` places.
fn keys_at(wrap: Wrap) -> Vec<String> {
    let json = wrap(r#"{"\u0001": 1}"#);
    let err = dashvault::config::parse(Path::new("probe.json"), json.as_bytes())
        .expect_err("an unknown key is refused");
    let message = &err.problems[0].message;
    let (_, expected) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no list of keys in {message:?}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Key paths (`cameras[].fps`) named in the first column of the table
/// under "## Configuration". A row may list siblings after the first full
/// path (`cameras[].res_width`, `res_height`).
fn documented() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let mut out = BTreeSet::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        let mut prefix = String::new();
        for name in first_cell.split('`').skip(1).step_by(2) {
            let full = if name.contains('.') {
                prefix = name[..=name.rfind('.').unwrap()].to_string();
                name.to_string()
            } else {
                format!("{prefix}{name}")
            };
            out.insert(full);
        }
    }
    out
}

#[test]
fn readme_config_table_names_every_key_the_config_accepts() {
    let levels: [(&str, Wrap); 6] = [
        ("", |o| o.to_string()),
        ("cameras[].", |o| format!(r#"{{"cameras": [{o}]}}"#)),
        ("incident.", |o| format!(r#"{{"incident": {o}}}"#)),
        ("triggers.", |o| format!(r#"{{"triggers": {o}}}"#)),
        ("wifi.", |o| format!(r#"{{"wifi": {o}}}"#)),
        ("gps.", |o| format!(r#"{{"gps": {o}}}"#)),
    ];
    let table = documented();
    let mut missing = Vec::new();
    for (prefix, wrap) in levels {
        let keys = keys_at(wrap);
        assert!(keys.len() >= 2, "{prefix}: only {keys:?}");
        for key in keys {
            let path = format!("{prefix}{key}");
            // An object documented below the table by its own example.
            let nested =
                ["cameras", "incident", "triggers", "wifi", "gps"].contains(&path.as_str());
            if !nested && !table.contains(&path) {
                missing.push(path);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README's configuration table lacks {missing:?} (it has {table:?})"
    );
}
