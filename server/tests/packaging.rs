//! The shipped example configuration is accepted by the server as it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::PathBuf;

#[test]
fn server_toml_example_is_a_valid_config() {
    let dir = support::TempDir::new("server-example");
    let example =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/server.toml.example");
    // --database after --config: the example's /var/lib path is not writable in tests.
    let out = std::process::Command::new(support::server_bin())
        .arg("--config")
        .arg(&example)
        .arg("--database")
        .arg(dir.path().join("db"))
        .arg("hosts")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("No hosts registered"));
}
