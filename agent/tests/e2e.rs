//! End to end with the real binaries as subprocesses: register a host, serve, run the agent,
//! see the host online and its samples in the server's log, stop both with SIGINT.
//!
//! The server binary is the sibling of the agent binary in the target directory;
//! `cargo test --workspace` builds both (see `support::server_bin`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{ChildGuard, Server, PATIENCE};

const AGENT: &str = env!("CARGO_BIN_EXE_proxmox-monitor-agent");

/// Writes an agent config into `dir` and returns its path.
pub fn write_agent_config(dir: &Path, server_url: &str, token: &str, host: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        "server_url = \"{server_url}\"\ntoken = \"{token}\"\nhost_id = \"{host}\"\n\
         state_dir = \"{}\"\nlog_level = \"info\"\n\n[intervals]\nfast_seconds = 1\n",
        dir.join("agent-state").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start_agent(config: &Path, log: &Path) -> ChildGuard {
    let mut command = Command::new(AGENT);
    command.arg("--config").arg(config).arg("run");
    ChildGuard::spawn(command, log)
}

#[test]
fn agent_reports_in_and_both_stop_cleanly_on_sigint() {
    let mut server = Server::start("e2e");
    let token = server.register("pve-e2e");
    let config = write_agent_config(server.dir.path(), &server.socket_url(), &token, "pve-e2e");
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));

    server.expect_status("pve-e2e", "online");
    // A fast sample is stored: its series exist (the ingest line is at debug level now).
    assert!(
        support::wait_until(PATIENCE, || String::from_utf8_lossy(
            &server.admin(&["metrics", "pve-e2e"]).stdout
        )
        .lines()
        .any(|l| l.trim() == "load1")),
        "no sample arrived; server log:\n{}\nagent log:\n{}",
        server.log(),
        agent.output()
    );
    let row = server
        .hosts()
        .into_iter()
        .find(|h| h.name == "pve-e2e")
        .unwrap();
    assert_eq!(row.agent, env!("CARGO_PKG_VERSION"));

    let (status, took) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    assert!(
        took < Duration::from_secs(2),
        "agent took {took:?} to stop; log:\n{}",
        agent.output()
    );
    server.expect_status("pve-e2e", "offline");
    assert!(
        !agent.output().contains("panicked"),
        "agent log:\n{}",
        agent.output()
    );

    let (status, took) = server.process.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "server log:\n{}", server.log());
    assert!(
        took < Duration::from_secs(2),
        "server took {took:?} to stop"
    );
}

#[test]
fn agent_with_a_wrong_token_says_so_and_keeps_running() {
    let server = Server::start("e2e-bad-token");
    server.register("pve-e2e");
    let config = write_agent_config(
        server.dir.path(),
        &server.socket_url(),
        "definitely-not-the-token",
        "pve-e2e",
    );
    let mut agent = start_agent(&config, &server.dir.path().join("agent.log"));
    assert!(
        agent.wait_for_output("invalid_token", PATIENCE),
        "agent did not report the refusal; agent log:\n{}\nserver log:\n{}",
        agent.output(),
        server.log()
    );
    let log = agent.output();
    assert!(
        log.contains("ERROR"),
        "refusal not logged as an error:\n{log}"
    );
    // Still running, retrying slowly, and the host never came online.
    assert!(agent.try_wait().is_none(), "agent exited:\n{log}");
    assert_ne!(server.status("pve-e2e").as_deref(), Some("online"));
    assert!(server.log().contains("wrong token"), "{}", server.log());
    let (status, _) = agent.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "agent log:\n{}", agent.output());
    assert_ne!(server.status("pve-e2e").as_deref(), Some("online"));
}

#[test]
fn agent_with_a_missing_config_file_exits_non_zero_naming_the_file() {
    let dir = support::TempDir::new("e2e-no-config");
    let missing = dir.path().join("nope").join("agent.toml");
    let out = Command::new(AGENT)
        .arg("--config")
        .arg(&missing)
        .arg("run")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()),
        "message does not name the file: {stderr}"
    );
    // The same through $AGENT_CONFIG.
    let out = Command::new(AGENT)
        .env("AGENT_CONFIG", &missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing.display().to_string()));
}

#[test]
fn collect_on_the_fixture_tree_prints_json_for_pve1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
    let out = Command::new(AGENT)
        .arg("collect")
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("collect prints JSON");
    assert!(json.is_object(), "{stdout}");
    assert!(stdout.contains(r#""hostname": "pve1""#), "{stdout}");
}

#[test]
fn agent_toml_example_is_a_valid_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.toml.example");
    let config = agent::config::AgentConfig::load(&example).unwrap();
    assert!(config.server_url.starts_with("wss://"));
    assert_eq!(config.fast, Duration::from_secs(30));
}
