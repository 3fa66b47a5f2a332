//! `collect_once` over the shared fixture tree, checked against a golden file: what the
//! `collect --root fixtures/pve-node` subcommand prints. `UPDATE_GOLDEN=1` rewrites it.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn collect_pve_node_matches_golden() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let actual = agent::collect::collect_once(&fixtures.join("pve-node"));
    let golden_path = fixtures.join("golden/collect-pve-node.json");
    let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden_path, &pretty).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden_path.display()));
    let expected: serde_json::Value = serde_json::from_str(&golden).unwrap();
    assert!(
        actual == expected,
        "collect_once differs from {}; actual:\n{pretty}",
        golden_path.display()
    );
}
