//! Interoperability with the official Phoenix JS client (`phoenix` npm package over `ws`):
//! `tests/interop/phoenix-js/interop.mjs` is refused with a wrong token, joins, pushes a sample,
//! sees heartbeats answered and leaves, against the real server binary.
//!
//! Needs `node` and `npm ci` in `tests/interop/phoenix-js` (`.ci/run` does it). Without them the
//! test says so and passes, unless `PM_REQUIRE_INTEROP=1`, which CI sets: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::PathBuf;
use std::process::Command;

use support::{ChildGuard, Server, PATIENCE};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/phoenix-js")
}

/// Whether the JS side can run; panics when it cannot but must (`PM_REQUIRE_INTEROP=1`).
fn js_client_available() -> bool {
    let required = std::env::var("PM_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let node = Command::new("node").arg("--version").output();
    let problem = if !node.is_ok_and(|o| o.status.success()) {
        Some("`node` is not installed".to_owned())
    } else if !interop_dir().join("node_modules/phoenix").is_dir()
        || !interop_dir().join("node_modules/ws").is_dir()
    {
        Some(format!(
            "{}/node_modules is missing; run `npm ci` there",
            interop_dir().display()
        ))
    } else {
        None
    };
    match problem {
        None => true,
        Some(problem) if required => panic!("PM_REQUIRE_INTEROP=1 but {problem}"),
        Some(problem) => {
            eprintln!("SKIPPED phoenix JS interop: {problem} (set PM_REQUIRE_INTEROP=1 to fail)");
            false
        }
    }
}

#[test]
fn phoenix_js_client_joins_pushes_and_leaves() {
    if !js_client_available() {
        return;
    }
    let server = Server::start("interop-js");
    let token = server.register("pve-js");
    let mut command = Command::new("node");
    command
        .current_dir(interop_dir())
        .arg("interop.mjs")
        .arg(server.port.to_string())
        .arg("pve-js")
        .arg(&token);
    let mut node = ChildGuard::spawn(command, &server.dir.path().join("node.log"));
    let status = node.wait_timeout(PATIENCE * 2).unwrap_or_else(|| {
        panic!(
            "the JS client did not finish; its output:\n{}\nserver log:\n{}",
            node.output(),
            server.log()
        )
    });
    assert!(
        status.success(),
        "the JS client failed ({status}); its output:\n{}\nserver log:\n{}",
        node.output(),
        server.log()
    );
    assert!(node.output().contains("[interop] OK"), "{}", node.output());
    let row = server
        .hosts()
        .into_iter()
        .find(|h| h.name == "pve-js")
        .unwrap();
    assert_eq!(row.agent, "phoenix-js");
    server.expect_status("pve-js", "offline");
}
